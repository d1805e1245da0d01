"""One interface over the three executors: golden (PyTorch), sim (cycle model), rtl (Verilator)."""
from __future__ import annotations

from pathlib import Path

from hwgen.config import HwConfig
from hwgen.program import Program, Result

BACKENDS = ("golden", "sim", "rtl")
DEFAULT_BUILD_ROOT = Path("build") / "rtl"


def run_programs(backend: str, cfg: HwConfig, programs: list[Program], *, device: str | None = None,
                 build_root: Path = DEFAULT_BUILD_ROOT) -> list[Result]:
    """Run each program on one backend; the RTL runs them all in one simulator process."""
    if backend == "golden":
        from golden import executor
        return [executor.run(cfg.numeric(), p, device=device) for p in programs]
    if backend == "sim":
        from .engine import EngineModel
        model = EngineModel(cfg)
        return [model.run(p) for p in programs]
    if backend == "rtl":
        from .runner import run_rtl_batch
        return run_rtl_batch(cfg, programs, build_root=build_root)
    raise ValueError(f"backend: {backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
