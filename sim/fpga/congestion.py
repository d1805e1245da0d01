"""Where a design is congested, from nextpnr's router2 heatmaps (``--router2-heatmap PREFIX``).

Each router2 iteration writes ``PREFIX_congestion_by_net_<iteration>.csv``: per net, how much of the routing
it holds beyond capacity. Nets are named by their place in the design (``board.chip.asa.slot0_valid``, with Yosys'
suffixes after the signal name), so summing them by their module says which component the router cannot fit, and
the largest groups of nets say what in it (a bus, an enable).

``progress(log)`` reads a router2 log's last iteration; ``summary(folder, prefix)`` ranks the modules and nets of the
latest heatmap; ``describe(...)`` is the one line a failed build prints; ``prune`` keeps only the latest heatmaps.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_ITERATION = re.compile(r"iter=(\d+)\s+wires=(\d+)\s+overused=(\d+)")
_CELL_SUFFIX = re.compile(r"_(LUT4|TRELLIS|PFUMX|L6MUX21|CCU2C|DP16KD|MULT18X18D)_.*$")


@dataclass
class Congestion:
    iteration: int
    total: int                                             # overuse summed over every net
    modules: list[tuple[str, int]] = field(default_factory=list)   # (module, overuse), largest first
    nets: list[tuple[str, int, int]] = field(default_factory=list)  # (module.signal, overuse, nets), largest first

    def share(self, overuse: int) -> float:
        return overuse / self.total if self.total else 0.0


def progress(log_text: str) -> tuple[int, int, int] | None:
    """(iteration, wires used, wires overused) of a router2 log's last iteration, or None before the first."""
    found = _ITERATION.findall(log_text)
    return tuple(int(x) for x in found[-1]) if found else None


def prune(folder: Path, prefix: str) -> None:
    """Keep only the heatmaps from the latest complete iteration on (router2 writes four files of up to a few MB
    every iteration, the per-net one last)."""
    latest = max(map(_iteration_of, Path(folder).glob(f"{prefix}_congestion_by_net_*.csv")), default=None)
    if latest is None:
        return
    for path in Path(folder).glob(f"{prefix}_*_*.csv"):
        if _iteration_of(path) < latest:
            path.unlink(missing_ok=True)


def clear(folder: Path, prefix: str) -> None:
    """Remove a run's heatmaps before it starts: an earlier run's (a build again in the same folder) would look
    later than the new run's first iterations, so ``prune`` would keep them and delete the new ones."""
    for path in Path(folder).glob(f"{prefix}_*_*.csv"):
        path.unlink(missing_ok=True)


def _iteration_of(path: Path) -> int:
    tail = path.stem.rsplit("_", 1)[1]
    return int(tail) if tail.isdigit() else -1


def _signal(net: str) -> tuple[str, str]:
    """A net's module and signal: ``board.chip.asa.slot0_valid_LUT4_A_Z[3]`` -> (board.chip.asa, slot0_valid)."""
    name = re.sub(r"\[\d+\]$", "", net)
    module, _, signal = name.rpartition(".")
    return module, _CELL_SUFFIX.sub("", signal) or signal


def summary(folder: Path, prefix: str, top: int = 8) -> Congestion | None:
    """The latest ``<prefix>_congestion_by_net_<i>.csv`` in ``folder``, summed by module and by signal."""
    maps = sorted(Path(folder).glob(f"{prefix}_congestion_by_net_*.csv"), key=_iteration_of)
    if not maps:
        return None
    by_module, by_signal, nets = Counter(), Counter(), Counter()
    with maps[-1].open(newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[1].strip().lstrip("-").isdigit():
                continue
            overuse = int(row[1])
            if overuse <= 0:
                continue
            module, signal = _signal(row[0])
            by_module[module or "(top)"] += overuse
            by_signal[f"{module}.{signal}" if module else signal] += overuse
            nets[f"{module}.{signal}" if module else signal] += 1
    return Congestion(iteration=_iteration_of(maps[-1]), total=sum(by_module.values()),
                      modules=by_module.most_common(top),
                      nets=[(name, v, nets[name]) for name, v in by_signal.most_common(top)])


def describe(c: Congestion | None, modules: int = 4, nets: int = 4) -> str:
    """One line: the most congested modules with their share, then the largest groups of nets."""
    if c is None or not c.total:
        return "no congestion heatmap was written"
    where = ", ".join(f"{m} {100 * c.share(v):.0f} %" for m, v in c.modules[:modules])
    what = ", ".join(f"{n} ({k} net{'s' if k != 1 else ''})" for n, _, k in c.nets[:nets])
    return f"congestion at router2 iteration {c.iteration} by module: {where}; largest: {what}"
