"""``dsa report SWEEP_DIR``: what a finished (or still running) sweep found, as Markdown and HTML with plots.

The stages:

1. read every finished point of the folder (``sim.sweep.store.records``) and mark the Pareto set;
2. plot (matplotlib, files in ``SWEEP_DIR/plots/``):
   - the Pareto front of each pair of objectives, every feasible point grey, infeasible ones crossed, the
     non-dominated set in red;
   - the hypervolume of the front over the points in the order they finished (objectives scaled to [0, 1] over
     the sweep, reference point 1.1 each: how fast the search found the front);
   - per workload, speedup and energy against one axis (``--axis``, default the first), each value's best point;
   - per workload, a roofline: useful MAC/s against MACs per HBM byte, with the roofs of the fastest point;
3. a table of the Pareto set with config digests and the config files ``dsa generate --config`` takes back, and
   the Verilator check of the best points where ``--verify-top`` ran.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from sim.sweep.metrics import METRICS
from sim.sweep.store import META, pareto, records


def _ok(rows):
    return [r for r in rows if r["status"] == "ok"]


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both minimized) up to ``ref``."""
    front = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in front:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def _scaled(rows, objectives):
    """Objectives of ok feasible rows, minimized and scaled to [0, 1] over the sweep."""
    sign = [1.0 if METRICS[o].direction == "minimize" else -1.0 for o in objectives]
    vals = [[s * r[f"metric.{o}"] for s, o in zip(sign, objectives, strict=True)] for r in rows]
    lo = [min(v[i] for v in vals) for i in range(len(objectives))]
    hi = [max(v[i] for v in vals) for i in range(len(objectives))]
    return [[(v[i] - lo[i]) / (hi[i] - lo[i]) if hi[i] > lo[i] else 0.0 for i in range(len(objectives))]
            for v in vals]


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_fronts(plt, rows, objectives, folder: Path) -> list[Path]:
    paths = []
    pairs = [(objectives[i], objectives[j]) for i in range(len(objectives)) for j in range(i + 1, len(objectives))]
    for x, y in pairs[:3]:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ok = _ok(rows)
        feasible = [r for r in ok if r.get("feasible", True)]
        infeasible = [r for r in ok if not r.get("feasible", True)]
        best = sorted((r for r in ok if r["pareto"]), key=lambda r: r[f"metric.{x}"])
        ax.scatter([r[f"metric.{x}"] for r in feasible], [r[f"metric.{y}"] for r in feasible], s=14, c="0.6",
                   label=f"feasible ({len(feasible)})")
        if infeasible:
            ax.scatter([r[f"metric.{x}"] for r in infeasible], [r[f"metric.{y}"] for r in infeasible], s=14,
                       marker="x", c="0.8", label=f"outside the constraints ({len(infeasible)})")
        ax.plot([r[f"metric.{x}"] for r in best], [r[f"metric.{y}"] for r in best], "o-", c="tab:red", ms=5,
                drawstyle="steps-post", label=f"Pareto set ({len(best)})")
        ax.set_xlabel(f"{x} ({METRICS[x].unit}, {METRICS[x].direction})")
        ax.set_ylabel(f"{y} ({METRICS[y].unit}, {METRICS[y].direction})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_title(f"Pareto front: {x} vs {y}")
        path = folder / f"pareto_{x}_{y}.png"
        paths.append(_save(plt, fig, path))
    return paths


def _plot_hypervolume(plt, rows, objectives, folder: Path) -> tuple[Path | None, float | None]:
    ok = [r for r in _ok(rows) if r.get("feasible", True)]
    if len(objectives) < 2 or len(ok) < 2:
        return None, None
    ok.sort(key=lambda r: r["finished_at"] or "")
    scaled = [tuple(v[:2]) for v in _scaled(ok, objectives[:2])]
    hv = [hypervolume_2d(scaled[:i + 1], (1.1, 1.1)) for i in range(len(scaled))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(hv) + 1), hv, c="tab:blue")
    ax.set_xlabel("feasible points finished")
    ax.set_ylabel(f"hypervolume ({objectives[0]}, {objectives[1]} scaled)")
    ax.set_title("hypervolume of the front over the sweep")
    return _save(plt, fig, folder / "hypervolume.png"), hv[-1]


def _plot_axis(plt, rows, workloads, axis: str, folder: Path) -> Path | None:
    ok = _ok(rows)
    values = sorted({r[f"axis.{axis}"] for r in ok if r.get(f"axis.{axis}") is not None}, key=_order)
    if len(values) < 2:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for w in workloads:
        best = [min((r[f"{w}.latency_s"], r[f"{w}.energy_j"]) for r in ok if r[f"axis.{axis}"] == v) for v in values]
        base = best[0][0]
        ax1.plot(range(len(values)), [base / b[0] for b in best], "o-", label=w)
        ax2.plot(range(len(values)), [b[1] for b in best], "o-", label=w)
    for ax, what in ((ax1, f"speedup over {axis} = {values[0]}"), (ax2, "energy (J)")):
        ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=30)
        ax.set_xlabel(axis)
        ax.set_ylabel(what)
    ax2.set_yscale("log")
    ax1.legend(fontsize=7)
    fig.suptitle(f"each value of {axis}: its best point per workload")
    return _save(plt, fig, folder / f"axis_{axis.replace('.', '_')}.png")


def _plot_rooflines(plt, rows, workloads, folder: Path) -> Path | None:
    ok = _ok(rows)
    if not ok:
        return None
    n = len(workloads)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, w in zip(axes[0], workloads, strict=True):
        pts = [(r[f"{w}.macs"] / max(r[f"{w}.hbm_bytes"], 1), r[f"{w}.macs"] / r[f"{w}.latency_s"]) for r in ok]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, c="tab:blue", label="points")
        fastest = min(ok, key=lambda r: r[f"{w}.latency_s"])
        peak, bw = fastest[f"{w}.peak_macs_per_s"], fastest[f"{w}.peak_bytes_per_s"]
        lo, hi = min(p[0] for p in pts) / 4, max(max(p[0] for p in pts) * 4, peak / bw * 4)
        xs = [lo * (hi / lo) ** (i / 64) for i in range(65)]
        ax.plot(xs, [min(peak, bw * x) for x in xs], c="tab:red", label="roof of the fastest point")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("useful MACs per HBM byte")
        ax.set_ylabel("useful MAC/s")
        ax.set_title(w, fontsize=9)
        ax.legend(fontsize=7)
    return _save(plt, fig, folder / "roofline.png")


def _order(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write(folder: Path, axis: str | None = None) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` (and ``plots/``) into the sweep folder; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    meta = json.loads((folder / META).read_text())
    objectives, axes, workloads = meta["objectives"], meta["axes"], meta["workloads"]
    axis = axis or axes[0]
    rows = records(folder)
    for row, flag in zip(rows, pareto(rows, objectives), strict=True):
        row["pareto"] = flag
    plots_dir = folder / "plots"
    plots_dir.mkdir(exist_ok=True)
    for old in plots_dir.glob("*.png"):      # a report's plots are this report's only (an earlier --axis goes)
        old.unlink()
    plots = _plot_fronts(plt, rows, objectives, plots_dir) if len(objectives) > 1 else []
    hv_path, hv = _plot_hypervolume(plt, rows, objectives, plots_dir)
    plots += [p for p in (hv_path, _plot_axis(plt, rows, workloads, axis, plots_dir),
                          _plot_rooflines(plt, rows, workloads, plots_dir)) if p]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "invalid", "error")}
    best = sorted((r for r in rows if r["pareto"]), key=lambda r: r[f"metric.{objectives[0]}"])
    head = ["trial", *axes, *objectives, "config digest", "config file"]
    table = [[_fmt(r["trial"]), *(_fmt(r.get(f"axis.{a}")) for a in axes),
              *(_fmt(r[f"metric.{o}"]) for o in objectives), r["config_digest"],
              f"configs/{r['config_digest']}.yaml"] for r in best]
    verified = _verified(folder)
    summary = (f"{len(rows)} points: {counts['ok']} ok, {counts['invalid']} invalid (the config or the compiler "
               f"refused them), {counts['error']} errors; Pareto set {len(best)} on {', '.join(objectives)}"
               + (f"; hypervolume {hv:.3f} (scaled)" if hv is not None else ""))
    invalid = sorted({r["error"] for r in rows if r["status"] == "invalid"})[:10]
    md = [f"# Sweep {meta['name']}", "", f"Base config `{meta['base']}`, strategy `{meta['strategy']}`, axes "
          f"{', '.join(f'`{a}`' for a in axes)}, workloads {', '.join(f'`{w}`' for w in workloads)}.", "", summary,
          "", "## Pareto set", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
          *("| " + " | ".join(row) + " |" for row in table), ""]
    if verified:
        md += ["## Checked on Verilator (--verify-top)", "", "| trial | workload | sim cycles | RTL cycles | "
               "difference | outputs |", "|---|---|---|---|---|---|",
               *(f"| {v['trial']} | {v['workload']} | {v['sim_cycles']} | {v['rtl_cycles']} | "
                 f"{v['difference']:+.2%} | {'equal' if v['outputs_equal'] else 'DIFFER'} |" for v in verified), ""]
    if invalid:
        md += ["## Why points were invalid (first 10 reasons)", "", *(f"- {e}" for e in invalid), ""]
    md += ["## Plots", "", *(f"![{p.stem}](plots/{p.name})" for p in plots), ""]
    (folder / "report.md").write_text("\n".join(md))
    (folder / "report.html").write_text(_html(meta["name"], summary, head, table, verified, invalid, plots))
    return {"md": folder / "report.md", "html": folder / "report.html", **{p.stem: p for p in plots}}


def _verified(folder: Path) -> list[dict[str, Any]]:
    path = folder / "verify.json"
    return json.loads(path.read_text())["points"] if path.exists() else []


CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto} table{border-collapse:collapse} "
       "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px} img{max-width:100%}")


def _html(name, summary, head, table, verified, invalid, plots) -> str:
    e = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {e(name)}</title><style>{CSS}</style>"
             "</head><body>",
             f"<h1>Sweep {e(name)}</h1><p>{e(summary)}</p><h2>Pareto set</h2><table><tr>"
             + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr>{rows}</table>"]
    if verified:
        parts.append("<h2>Checked on Verilator (--verify-top)</h2><table><tr><th>trial</th><th>workload</th><th>sim "
                     "cycles</th><th>RTL cycles</th><th>difference</th><th>outputs</th></tr>" + "".join(
                         f"<tr><td>{v['trial']}</td><td>{e(v['workload'])}</td><td>{v['sim_cycles']}</td>"
                         f"<td>{v['rtl_cycles']}</td><td>{v['difference']:+.2%}</td><td>"
                         f"{'equal' if v['outputs_equal'] else 'DIFFER'}</td></tr>" for v in verified) + "</table>")
    if invalid:
        parts.append("<h2>Why points were invalid</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in invalid) + "</ul>")
    parts.append("<h2>Plots</h2>" + "".join(f"<p><img src='plots/{e(p.name)}' alt='{e(p.stem)}'></p>" for p in plots))
    parts.append("</body></html>\n")
    return "".join(parts)


__all__ = ["hypervolume_2d", "write"]
