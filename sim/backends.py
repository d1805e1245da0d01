"""One interface over the three executors: golden (PyTorch), sim (cycle model), rtl (Verilator). DAG programs
(``Program.tasks``, ``hwgen/compiler/dag.py``) run on the whole chip (``sim.model.chip.ChipModel``, the chip's
Verilog); the others on one engine."""
from __future__ import annotations

from pathlib import Path

from hwgen.spec.config import HwConfig
from hwgen.spec.program import Program, Result

BACKENDS = ("golden", "sim", "rtl")
DEFAULT_BUILD_ROOT = Path("build") / "rtl"


def run_programs(backend: str, cfg: HwConfig, programs: list[Program], *, device: str | None = None,
                 build_root: Path = DEFAULT_BUILD_ROOT, start_cycles: list[int | None] | None = None) -> list[Result]:
    """Run each program on one backend; the RTL runs them all in one simulator process. ``start_cycles``
    (sim, DAG programs): the cycle each program's host start lands, e.g. the RTL run's (default: the first
    cycle the chip is ready)."""
    if backend == "golden":
        from golden import executor
        return [executor.run(cfg.numeric(), p, device=device) for p in programs]
    if backend == "sim":
        from sim.model.chip import ChipModel
        from sim.model.engine import EngineModel
        engine, chip = EngineModel(cfg), ChipModel(cfg)
        starts = start_cycles or [None] * len(programs)
        return [chip.run(p, start_cycle=s) if p.tasks else engine.run(p) for p, s in zip(programs, starts)]
    if backend == "rtl":           # DAG programs on the whole chip, the others on one engine
        from sim.rtl.runner import run_chip_batch, run_rtl_batch
        dags = [i for i, p in enumerate(programs) if p.tasks]
        engine = [i for i, p in enumerate(programs) if not p.tasks]
        results = dict(zip(dags, run_chip_batch(cfg, [programs[i] for i in dags], build_root=build_root)))
        results.update(zip(engine, run_rtl_batch(cfg, [programs[i] for i in engine], build_root=build_root)))
        return [results[i] for i in range(len(programs))]
    raise ValueError(f"backend: {backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
