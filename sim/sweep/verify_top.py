"""The fidelity ladder's last rung: the sweep's best points run again on the Verilog (Verilator), so a Pareto front
found on the cycle model is shown to hold on the RTL.

The K Pareto points best in the first objective are rebuilt from their axes; each workload is compiled for the
point's config and run on the golden model and on the RTL (one Verilator build per config, cached by digest in
the build root). Per point and workload: the sweep's model cycles, the RTL's cycles, their difference, and whether
golden and RTL outputs are equal bit for bit. Written to ``SWEEP_DIR/verify.json``; the report shows it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.sweep.spec import Plan
from sim.sweep.store import pareto, records


def best_points(folder: Path, plan: Plan, k: int) -> list[dict[str, Any]]:
    rows = records(folder)
    flags = pareto(rows, plan.objectives)
    best = [r for r, f in zip(rows, flags, strict=True) if f]
    return sorted(best, key=lambda r: r[f"metric.{plan.objectives[0]}"])[:k]


def verify_top(plan: Plan, folder: Path, k: int, build_root: Path,
               stage: Callable[[str], None] = lambda what: None) -> list[dict[str, Any]]:
    from sim.backends import run_programs
    from sim.sweep.evaluate import compile_entry
    checked = []
    for row in best_points(folder, plan, k):
        point = {key.removeprefix("axis."): v for key, v in row.items() if key.startswith("axis.")}
        cfg = plan.config(point)
        programs = [compile_entry(cfg, entry)[0] for entry in plan.workloads]
        stage(f"trial {row['trial']} ({cfg.digest()}): {len(programs)} workload(s) on the golden model and the RTL")
        golden = run_programs("golden", cfg, programs)
        rtl = run_programs("rtl", cfg, programs, build_root=build_root, stage=stage)
        for entry, g, r in zip(plan.workloads, golden, rtl, strict=True):
            label = entry.label()
            sim_cycles = int(row[f"{label}.cycles"])
            equal = all(np.array_equal(np.asarray(g.outputs[n]), np.asarray(r.outputs[n])) for n in g.outputs)
            checked.append({"trial": row["trial"], "config_digest": cfg.digest(), "workload": label,
                            "sim_cycles": sim_cycles, "rtl_cycles": int(r.cycles),
                            "difference": (sim_cycles - r.cycles) / r.cycles if r.cycles else 0.0,
                            "outputs_equal": bool(equal)})
    (folder / "verify.json").write_text(json.dumps({"k": k, "points": checked}, indent=1) + "\n")
    return checked


__all__ = ["best_points", "verify_top"]
