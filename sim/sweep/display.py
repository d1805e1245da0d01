"""How a sweep shows itself: a progress bar with the rate and the time left (one log line per tenth when the output
is not a terminal), then a summary and the Pareto set."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sim.sweep.metrics import METRICS


class SweepProgress:
    def __init__(self, console: Console, name: str):
        self.console, self.name = console, name
        self.counts = {"ok": 0, "invalid": 0, "error": 0}
        self.t0, self.last_tenth = time.perf_counter(), -1
        self._progress = self._task = None

    def __call__(self, done: int, total: int, record: dict[str, Any] | None) -> None:
        if record is not None:          # points finished before this run are not part of the rate
            self.counts[record["status"]] += 1
        ran = sum(self.counts.values())
        rate = ran / (time.perf_counter() - self.t0) * 3600 if ran else 0.0
        counts = f"{self.counts['invalid']} invalid, {self.counts['error']} errors, {rate:,.0f} points/h"
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self.name, total=total, completed=done, counts=counts)
            self._progress.update(self._task, completed=done, total=total, counts=counts)
        elif total and (tenth := 10 * done // total) != self.last_tenth:
            self.last_tenth = tenth
            self.console.print(f"... {self.name}: {done}/{total} points ({counts})", markup=False, soft_wrap=True)

    @contextmanager
    def shown(self):
        if self.console.is_terminal:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("left"),
                                      TimeRemainingColumn(), console=self.console)
            with self._progress:
                yield self
            self._progress = None
        else:
            yield self

    @property
    def points_per_hour(self) -> float:
        ran = sum(self.counts.values())
        return ran / (time.perf_counter() - self.t0) * 3600 if ran else 0.0


def short(value: Any) -> str:
    """A value for a narrow table: sizes in KiB / MiB, floats to 4 digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) and value >= 1024 and value & (value - 1) == 0:
        return f"{value >> 20}Mi" if value >= 1 << 20 else f"{value >> 10}Ki"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def pareto_table(rows: list[dict[str, Any]], objectives: list[str], limit: int = 12) -> Table:
    """The Pareto set: its points' axes, objectives and config digests (OUT/configs/<digest>.yaml holds each
    config, for dsa generate --config)."""
    best = [r for r in rows if r.get("pareto")]
    best.sort(key=lambda r: r[f"metric.{objectives[0]}"])
    axes = [k for k in (best[0] if best else {}) if k.startswith("axis.") and len({str(r[k]) for r in rows}) > 1]
    more = f" (first {limit})" if len(best) > limit else ""
    table = Table(title=f"Pareto set: {len(best)} of {len(rows)} points{more}")
    for col in ["trial", *(a.rsplit(".", 1)[-1] for a in axes), *(f"{o} ({METRICS[o].unit})" for o in objectives)]:
        table.add_column(col, overflow="fold")
    table.add_column("config", no_wrap=True)
    for r in best[:limit]:
        table.add_row(str(r["trial"]), *(short(r[a]) for a in axes), *(short(float(r[f"metric.{o}"]))
                                                                        for o in objectives), r["config_digest"])
    return table


__all__ = ["SweepProgress", "pareto_table"]
