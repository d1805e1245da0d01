"""One design point: its config, each workload compiled for it and run on the cycle model, its metrics. The same
function runs in a local worker process or a Ray task (``sim.sweep.backends``); it never raises: a point the
config or the compiler refuses is ``invalid`` with their message, any other failure ``error`` with the exception
and its traceback (the sweep goes on and says so at the end).
"""
from __future__ import annotations

import time
import traceback
from typing import Any

from hwgen.spec import config as hwconfig
from hwgen.spec.formats import OperandError
from hwgen.spec.workload import WorkloadError

REFUSED = (hwconfig.ConfigError, OperandError, WorkloadError)   # what a design point may legitimately be refused with


def compile_entry(cfg: hwconfig.HwConfig, entry):
    """A library workload's program for ``cfg``: a layer for one engine with its operands in HBM (tiled), a DAG for
    the whole chip. Returns (program, "layer" or "dag", the built workload)."""
    from golden.generators.library import Layer
    from hwgen.compiler.dag import compile_workload
    from hwgen.compiler.tiling import compile_matmul_hbm
    item = entry.build()
    if isinstance(item, Layer):
        return (compile_matmul_hbm(cfg, item.a, item.b, item.kernel, item.a_format, item.threshold, nm=item.nm),
                "layer", item)
    return compile_workload(cfg, item), "dag", item


def run_workload(cfg: hwconfig.HwConfig, entry) -> dict[str, Any]:
    """Compile one library workload for ``cfg`` and run it on the cycle model (cycles, energy, no outputs)."""
    from sim.model.chip import ChipModel
    from sim.model.engine import EngineModel
    program, kind, item = compile_entry(cfg, entry)
    if kind == "layer":
        result = EngineModel(cfg).run(program, outputs=False)
        macs = program.work()["useful_macs"]
    else:
        result = ChipModel(cfg).run(program, outputs=False)
        macs = result.stats.get("lane_macs", 0) - result.stats.get("gated_macs", 0)
    s = result.stats
    hz = cfg.clock.mhz * 1e6
    engines = 1 if kind == "layer" else cfg.scheduler.engines
    roof_bytes = min(cfg.memory.hbm.peak_gbytes_per_s * 1e9, cfg.memory.ports * cfg.beat_bytes * hz)
    return {"kind": kind, "cycles": int(result.cycles), "latency_s": result.cycles / hz,
            "energy_j": s["energy"]["total_pj"] * 1e-12, "macs": int(macs),
            "hbm_bytes": int(s["hbm"]["bytes_read"] + s["hbm"]["bytes_written"]),
            "l3_hit_rate": s["l3"]["hit_rate"] if s.get("l3") else None, "wall_s": round(float(s["wall_s"]), 4),
            # the roofline of what ran: MACs per second of the engines it had, bytes per second of HBM or the ports
            "peak_macs_per_s": cfg.macs_per_cycle * engines * hz, "peak_bytes_per_s": roof_bytes,
            **_meta(item)}


def _meta(item) -> dict[str, Any]:
    """What a library workload says of itself that a sweep keeps (MiniLM: the int8 pruned layer's fidelity)."""
    meta = getattr(item, "meta", None) or {}
    return {k: meta[k] for k in ("cosine", "weight_density") if k in meta}


def evaluate(plan, point: dict[str, Any]) -> dict[str, Any]:
    """The record of one point (``status`` ok / invalid / error)."""
    from sim.sweep.metrics import constraint_values, point_metrics
    start = time.perf_counter()
    record: dict[str, Any] = {"point": point, "status": "ok", "error": None}
    try:
        cfg = plan.config(point)
        hwconfig.check_memory_side(cfg)
        record["config_digest"] = cfg.digest()
        runs = {entry.label(): run_workload(cfg, entry) for entry in plan.workloads}
        metrics = point_metrics(cfg, runs)
        record.update(workloads=runs, metrics=metrics,
                      constraints=constraint_values(cfg, metrics, plan.constraints))
        record["feasible"] = all(v <= 0 for v in record["constraints"].values())
    except REFUSED as e:
        lines = e.problems if isinstance(e, hwconfig.ConfigError) else [str(e)]
        record.update(status="invalid", error="; ".join(lines))
    except Exception as e:   # a bug in the model or the compiler: kept with its traceback, the sweep goes on
        record.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    record["wall_s"] = round(time.perf_counter() - start, 4)
    return record


__all__ = ["compile_entry", "evaluate", "run_workload"]
