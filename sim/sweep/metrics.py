"""What a sweep can optimize and constrain: each metric's direction, unit and meaning, in one table, and the code
that computes a point's metrics from its workloads' runs and its config.

Per workload the cycle model gives cycles and its energy report; a point adds them up over its workloads
(``latency_s`` is the time to run every workload once, one after another) and adds what depends on the config
alone (the ASIC area of ``sim.model.area``, the FPGA resources of ``sim.fpga.resource_model``, fitted to Yosys
on ECP5).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hwgen.spec.config import HwConfig
from sim.fpga.parts import BOARDS as PARTS_OF_BOARDS
from sim.model.area import area_mm2


@dataclass(frozen=True)
class Metric:
    direction: str        # "minimize" or "maximize"
    unit: str
    meaning: str


METRICS = {
    "latency_s": Metric("minimize", "s", "time to run every workload once: sum of cycles / clock.mhz"),
    "cycles": Metric("minimize", "cycles", "sum of the workloads' cycles"),
    "energy_j": Metric("minimize", "J", "sum of the workloads' energy (sim/model/memory/energy.py)"),
    "edp": Metric("minimize", "J*s", "energy x latency"),
    "macs_per_s": Metric("maximize", "MAC/s", "useful MACs of every workload / latency_s"),
    "area_mm2": Metric("minimize", "mm2", "ASIC area at 45 nm of the MAC lanes and every SRAM (sim/model/area.py)"),
    "macs_per_s_per_mm2": Metric("maximize", "MAC/s/mm2", "throughput per area: macs_per_s / area_mm2"),
    "lut": Metric("minimize", "LUT4", "ECP5 LUTs of the chip, predicted by the fitted resource model"),
    "ff": Metric("minimize", "FF", "ECP5 flip-flops, predicted"),
    "dsp": Metric("minimize", "MULT18X18D", "ECP5 multipliers, predicted"),
    "ram": Metric("minimize", "DP16KD", "ECP5 18 Kb block RAMs, predicted"),
}
OBJECTIVES = tuple(METRICS)
FPGA = ("lut", "ff", "dsp", "ram")
#: boards a sweep may ask a point to fit: those whose FPGA family has a fitted resource model
BOARDS = ("ulx3s",)


@lru_cache(maxsize=2)
def _resource_model(family: str):
    from sim.fpga.resource_model import ResourceModel
    return ResourceModel.load(family)


def fpga_resources(cfg: HwConfig) -> dict[str, float]:
    return _resource_model("ecp5").predict(cfg)


def point_metrics(cfg: HwConfig, runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Metrics of a point from its workloads' runs (``cycles``, ``energy_j``, ``macs`` each)."""
    cycles = sum(r["cycles"] for r in runs.values())
    latency = cycles / (cfg.clock.mhz * 1e6)
    energy = sum(r["energy_j"] for r in runs.values())
    macs = sum(r["macs"] for r in runs.values())
    area = area_mm2(cfg)
    throughput = macs / latency if latency else 0.0
    out = {"latency_s": latency, "cycles": cycles, "energy_j": energy, "edp": energy * latency,
           "macs_per_s": throughput, "area_mm2": area, "macs_per_s_per_mm2": throughput / area}
    out.update(fpga_resources(cfg))
    return out


def constraint_values(cfg: HwConfig, metrics: dict[str, float], constraints: dict[str, Any]) -> dict[str, float]:
    """Per constraint, a value that is <= 0 when it is met (Optuna's convention): ``metric - max``, and for
    ``fits: BOARD`` the worst resource's ``predicted x (1 + stated model error) / available - 1``."""
    out = {}
    for key, limit in constraints.items():
        if key == "fits":
            model, part = _resource_model("ecp5"), PARTS_OF_BOARDS[limit]
            out["fits"] = max(metrics[r] * (1 + model.chip_error[r]) / getattr(part, r) - 1 for r in FPGA)
        else:
            out[key] = metrics[key] - float(limit)
    return out


__all__ = ["BOARDS", "METRICS", "OBJECTIVES", "Metric", "constraint_values", "point_metrics"]
