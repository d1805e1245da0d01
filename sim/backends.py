"""One interface over the three executors: golden (PyTorch), sim (cycle model), rtl (Verilator). DAG programs
(``Program.tasks``, ``hwgen/compiler/dag.py``) run on the whole chip (``sim.model.chip.ChipModel``, the chip's
Verilog); the others on one engine.

``stats["wall_s"]`` means the same on every backend: the run of the program alone, with imports, Verilog
generation, Verilator builds and the simulator's start excluded (the RTL reports those as ``build_s`` and
``process_s``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hwgen.spec.config import HwConfig
from hwgen.spec.program import Program, Result

BACKENDS = ("golden", "sim", "rtl")


def default_build_root() -> Path:
    """One Verilator build cache per user, shared by every working folder: ``$DSA_BUILD_ROOT`` if set, else
    ``rtl/`` in the user cache (``$XDG_CACHE_HOME/dsa``, ``~/.cache/dsa``)."""
    from sim.console import cache_dir
    return Path(os.environ["DSA_BUILD_ROOT"]) if os.environ.get("DSA_BUILD_ROOT") else cache_dir() / "rtl"


def run_programs(backend: str, cfg: HwConfig, programs: list[Program], *, device: str | None = None,
                 build_root: Path | None = None, start_cycles: list[int | None] | None = None,
                 stage: Callable[[str], None] = lambda what: None,
                 progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Run each program on one backend; the RTL runs them all in one simulator process. ``start_cycles``
    (sim, DAG programs): the cycle each program's host start lands, e.g. the RTL run's (default: the first
    cycle the chip is ready). ``stage`` hears what is being done, ``progress`` (sim, one engine) how many
    tasks of a program are taken."""
    if backend == "golden":
        from golden import executor
        stage(f"running {len(programs)} program(s) on the golden model ({device or 'cpu'})")
        return [executor.run(cfg.numeric(), p, device=device) for p in programs]
    if backend == "sim":
        import golden.kernels  # noqa: F401 -- the model's arithmetic: imported before any clock starts
        from sim.model.chip import ChipModel
        from sim.model.engine import EngineModel
        stage(f"running {len(programs)} program(s) on the cycle model")
        engine, chip = EngineModel(cfg), ChipModel(cfg)
        starts = start_cycles or [None] * len(programs)
        return [chip.run(p, start_cycle=s) if p.tasks else engine.run(p, progress=progress)
                for p, s in zip(programs, starts, strict=True)]
    if backend == "rtl":           # DAG programs on the whole chip, the others on one engine
        from sim.rtl.runner import run_chip_batch, run_rtl_batch
        root = build_root or default_build_root()
        dags = [i for i, p in enumerate(programs) if p.tasks]
        engine = [i for i, p in enumerate(programs) if not p.tasks]
        chip = run_chip_batch(cfg, [programs[i] for i in dags], build_root=root, stage=stage)
        one = run_rtl_batch(cfg, [programs[i] for i in engine], build_root=root, stage=stage)
        results = dict(zip(dags, chip, strict=True)) | dict(zip(engine, one, strict=True))
        return [results[i] for i in range(len(programs))]
    raise ValueError(f"backend: {backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
