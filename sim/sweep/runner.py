"""A sweep, start to end. The stages:

1. open the results folder (``sim.sweep.store``): what is finished there is skipped, trials a kill interrupted run
   again;
2. pick the points: every grid combination, seeded random draws, or a sampler's (Optuna TPE / NSGA-II) asks;
3. run them on the backend, at most two per worker in flight, each stored as it finishes (one writer);
4. export every finished point to CSV and Parquet, with the Pareto set marked.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.sweep.spec import Plan


@dataclass
class Summary:
    total: int
    skipped: int                      # finished before this run (resumed)
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "invalid": 0, "error": 0})
    errors: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)     # every finished point, Pareto flag included


def sampler(plan: Plan):
    """The Optuna sampler of a tpe / nsga2 sweep, seeded (None for grid and random, which need none)."""
    import optuna
    s = plan.sweep
    if s.strategy == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed)
    if s.strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(4, min(50, (s.trials or 8) // 4)))
    return None


def run(plan: Plan, folder: Path, *, jobs: int | None = None, backend: str = "local", address: str | None = None,
        progress: Callable[[int, int, dict[str, Any] | None], None] = lambda done, total, record: None) -> Summary:
    """Run (or resume) ``plan`` into ``folder``. ``progress(done, total, record)`` hears each finished point."""
    from sim.sweep.backends import open_backend
    from sim.sweep.store import Store, _key, export
    store = Store(folder, plan, sampler(plan))
    try:
        if plan.sweep.strategy in ("grid", "random"):
            points = plan.points()
            finished = store.finished_keys()
            todo = [p for p in points if _key(p) not in finished]
            summary = Summary(len(points), len(points) - len(todo))
            queue: list[tuple[Any, dict]] = [(None, p) for p in todo]
            asks = 0
        else:
            done_before = sum(t.state.is_finished() for t in store.trials())
            stale = store.stale()
            summary = Summary(plan.sweep.trials, min(done_before, plan.sweep.trials))
            queue = [(t.number, t.params) for t in stale]
            asks = max(0, plan.sweep.trials - done_before - len(stale))
        done = summary.skipped
        progress(done, summary.total, None)
        if not queue and not asks:
            summary.files, summary.rows = export(folder, plan)
            return summary
        pool = open_backend(backend, plan, jobs, address)
        try:
            while queue or asks or pool.in_flight:
                while (queue or asks) and pool.in_flight < 2 * pool.jobs:
                    if queue:
                        pool.submit(*queue.pop(0))
                    else:
                        trial = store.ask()
                        pool.submit(trial.number, trial.params)
                        asks -= 1
                for tag, record in pool.wait():
                    store.add(record) if tag is None else store.tell(tag, record)
                    summary.counts[record["status"]] += 1
                    if record["status"] == "error":
                        summary.errors.append(record)
                    done += 1
                    progress(done, summary.total, record)
        finally:
            pool.close()
        summary.files, summary.rows = export(folder, plan)
        return summary
    finally:
        store.close()


__all__ = ["Summary", "run", "sampler"]
