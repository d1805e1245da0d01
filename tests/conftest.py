"""Shared fixtures: configs used across the suite, and one RTL build root for the whole session."""
from pathlib import Path

import pytest

from hwgen.spec import config

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build" / "rtl"   # reused across tests and runs: one Verilator build per config digest

# Small engines that differ in every timing-relevant parameter, and narrow accumulators that overflow.
VARIANTS = {
    "tiny": {"base": "tiny"},
    "odd": {"base": "tiny", "name": "odd", "engine": {"rows": 3, "lanes": 4, "scan_bytes": 8}, "l1": {"banks": 1}},
    "wrap16": {"base": "tiny", "name": "wrap16", "engine": {"acc_bits": 16, "overflow": "wrap"}},
    "sat16": {"base": "tiny", "name": "sat16", "engine": {"acc_bits": 16, "overflow": "saturate", "rows": 1}},
}


def variant(name: str) -> config.HwConfig:
    return config.from_dict(VARIANTS[name])


@pytest.fixture(scope="session")
def build_root() -> Path:
    return BUILD_ROOT


def three_way(cfg: config.HwConfig, cases, rtl, stall: float):
    """Golden == simulator == RTL for ``cases`` ((label, program) pairs) and their RTL results; at 0 % stalls
    also the same task issue cycles, total cycles and element / gated-MAC counters, under stalls more cycles.
    Returns ``(label, program, rtl result, sim result)`` per case for the caller's own checks."""
    import numpy as np

    from golden import executor
    from sim.model.engine import EngineModel
    model = EngineModel(cfg)
    out = []
    for (label, program), r in zip(cases, rtl, strict=True):
        golden = executor.run(cfg.numeric(), program).outputs["C"]
        sim = model.run(program)
        np.testing.assert_array_equal(sim.outputs["C"], golden, err_msg=f"{label}: sim")
        np.testing.assert_array_equal(r.outputs["C"], golden, err_msg=f"{label}: rtl, stall {stall}")
        if stall == 0:
            assert (r.stats["task_issue"], r.cycles) == (sim.stats["task_issue"], sim.cycles), label
            assert (r.stats["elems"], r.stats["gated_macs"]) == (sim.stats["elems"], sim.stats["gated_macs"]), label
        else:
            assert r.cycles > sim.cycles, f"{label}: stalls of {stall} should cost cycles"
        out.append((label, program, r, sim))
    return out
