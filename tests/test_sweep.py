"""`dsa sweep`: bad sweep files are refused with one line each; grid and Optuna sweeps run end to end on the cycle
model (MiniLM among the workloads) and store what the model says; a sweep killed with -9 and started again loses
no point; a Ray cluster on localhost runs the same points to the same results."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hwgen.spec import config
from sim.sweep import runner
from sim.sweep.spec import load
from sim.sweep.store import Store, records

pytestmark = pytest.mark.xdist_group("sweep")     # worker pools and a Ray cluster: not two at once on 2 cores

GOOD = """name: small
base: tiny
strategy: grid
axes:
  scheduler.engines: [1, 2]
  engine.lanes: [8, 16, 32]
workloads:
  - {kind: minilm, part: scores}
  - {kind: multimodal}
objectives: [latency_s, energy_j]
constraints: {fits: ulx3s}
"""


def dsa(*argv, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSA_CACHE": str(cwd / ".cache"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sim.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    (folder / name).write_text(text)
    return folder / name


def rows_of(folder: Path) -> list[dict]:
    with open(folder / "points.csv") as f:
        return list(csv.DictReader(f))


# ---- bad sweep files ----

BAD = [
    ("unknown-field", ("engine.lanes: [8, 16, 32]", "engine.lanez: [8]"),
     "axes.engine.lanez: unknown field 'lanez' in engine (allowed: rows, lanes,"),
    ("unknown-section", ("engine.lanes: [8, 16, 32]", "engin.lanes: [8]"),
     "axes.engin.lanes: unknown field 'engin' in the config (allowed: name, engine,"),
    ("a-section", ("engine.lanes: [8, 16, 32]", "engine: [8]"), "axes.engine: is a section, not a field"),
    ("unknown-key", ("strategy: grid", "strategi: grid"), "strategi: unknown key"),
    ("empty-range", ("engine.lanes: [8, 16, 32]", "engine.lanes: {low: 16, high: 8, step: 8}"),
     "axes.engine.lanes: empty range low 16 > high 8 (allowed: low <= high)"),
    ("empty-list", ("engine.lanes: [8, 16, 32]", "engine.lanes: []"),
     "axes.engine.lanes: empty list (allowed: one or more values)"),
    ("empty-pow2", ("engine.lanes: [8, 16, 32]", "l3.bytes: {pow2: [5, 7]}"), "holds no power of two"),
    ("grid-needs-step", ("engine.lanes: [8, 16, 32]", "clock.mhz: {low: 10, high: 20}"),
     "axes.clock.mhz: a range needs a step on a grid"),
    ("no-objective", ("objectives: [latency_s, energy_j]", "objectives: [latency_s, speed]"),
     "objectives: 'speed' does not exist (allowed: latency_s, cycles, energy_j,"),
    ("duplicate-key", ("strategy: grid\n", "strategy: grid\nstrategy: random\n"), "strategy: duplicate key"),
    ("duplicate-axis", ("engine.lanes: [8, 16, 32]", "engine.lanes: [8]\n  engine.lanes: [16]"),
     "axes.engine.lanes: duplicate key"),
    ("value-type", ("scheduler.engines: [1, 2]", "scheduler.engines: [1, two]"),
     "axes.scheduler.engines: 'two' is not allowed"),
    ("value-bound", ("scheduler.engines: [1, 2]", "scheduler.engines: [0, 2]"),
     "axes.scheduler.engines: 0 is not allowed (Input should be greater than or equal to 1)"),
    ("policy-name", ("scheduler.engines: [1, 2]", "scheduler.policy: [fastest]"),
     "axes.scheduler.policy: 'fastest' is not allowed"),
    ("workload-kind", ("{kind: multimodal}", "{kind: resnet}"), "workloads.1.kind: 'resnet' is not allowed"),
    ("workload-field", ("{kind: multimodal}", "{kind: multimodal, depht: 2}"), "workloads.1.multimodal.depht: "
                                                                                "unknown key"),
    ("workload-file", ("{kind: multimodal}", "{kind: file, path: nowhere.yaml}"), "nowhere.yaml"),
    ("same-workload", ("{kind: multimodal}", "{kind: minilm, part: scores}"), "two workloads are called"),
    ("trials-missing", ("strategy: grid", "strategy: tpe"), "trials: missing (required by strategy tpe"),
    ("trials-on-grid", ("strategy: grid", "strategy: grid\ntrials: 5"), "trials: not allowed with strategy grid"),
    ("strategy", ("strategy: grid", "strategy: annealing"), "strategy: 'annealing' is not allowed"),
    ("constraint-metric", ("{fits: ulx3s}", "{watts: 3}"), "constraints.watts: unknown metric (allowed: fits,"),
    ("constraint-board", ("{fits: ulx3s}", "{fits: zedboard}"), "constraints.fits: 'zedboard' is not allowed "
                                                                "(allowed: ulx3s)"),
    ("base", ("base: tiny", "base: huge"), "base: config: 'huge' is neither a preset"),
    ("not-yaml", ("objectives: [latency_s, energy_j]", "objectives: [latency_s"), "not valid YAML"),
]


@pytest.mark.parametrize(("old", "new", "message"), [(*c[1], c[2]) for c in BAD], ids=[c[0] for c in BAD])
def test_bad_sweep_files_exit_2_with_one_line(tmp_path, old, new, message):
    assert old in GOOD
    write(tmp_path, GOOD.replace(old, new, 1))
    proc = dsa("sweep", "s.yaml", "--out", "out", cwd=tmp_path)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()          # refused before any work


def test_a_missing_sweep_file_and_bad_options(tmp_path):
    proc = dsa("sweep", "none.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "sweep: 'none.yaml' is not a file" in proc.stderr
    write(tmp_path, GOOD)
    proc = dsa("sweep", "s.yaml", "--address", "1.2.3.4:6379", cwd=tmp_path)
    assert proc.returncode == 2 and "--address: '1.2.3.4:6379' is not allowed with --backend local" in proc.stderr


def test_a_folder_of_another_sweep_is_refused(tmp_path):
    write(tmp_path, GOOD.replace("engine.lanes: [8, 16, 32]", "engine.lanes: [8]"))
    assert dsa("sweep", "s.yaml", "--out", "out", "--jobs", "1", cwd=tmp_path).returncode == 0
    write(tmp_path, GOOD.replace("engine.lanes: [8, 16, 32]", "engine.lanes: [16]"))
    proc = dsa("sweep", "s.yaml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "holds the results of another sweep" in proc.stderr


# ---- grid ----

def test_grid_end_to_end_stores_what_the_model_says(tmp_path):
    from golden.generators.library import Multimodal
    from sim.sweep.evaluate import run_workload
    write(tmp_path, GOOD)
    proc = dsa("sweep", "s.yaml", "--out", "out", "--jobs", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "small: 6 points (0 finished before), ran 6: 4 ok, 2 invalid, 0 errors" in " ".join(proc.stdout.split())
    out = tmp_path / "out"
    assert (out / "report.html").is_file() and (out / "plots" / "pareto_latency_s_energy_j.png").is_file()
    rows = rows_of(out)
    assert len(rows) == 6 and len({(r["axis.scheduler.engines"], r["axis.engine.lanes"]) for r in rows}) == 6
    bad = [r for r in rows if r["status"] == "invalid"]
    assert {r["axis.engine.lanes"] for r in bad} == {"32"}      # tiny's scan_bytes is 16
    assert all("engine.scan_bytes" in r["error"] and r["metric.cycles"] == "" for r in bad)
    # a point's numbers are the cycle model's, for that point's config
    ok = next(r for r in rows if r["status"] == "ok" and r["axis.scheduler.engines"] == "2")
    cfg = config.changed(config.load("tiny"), {"scheduler": {"engines": 2}, "engine": {"lanes": int(
        ok["axis.engine.lanes"])}})
    direct = run_workload(cfg, Multimodal(kind="multimodal"))
    assert int(ok["multimodal.cycles"]) == direct["cycles"] and ok["config_digest"] == cfg.digest()
    assert float(ok["metric.latency_s"]) == pytest.approx(
        (int(ok["multimodal.cycles"]) + int(ok["minilm_partscores.cycles"])) / (cfg.clock.mhz * 1e6))
    assert 0.5 < float(ok["minilm_partscores.cosine"]) < 1
    # Parquet holds the same rows; the Pareto set is non-dominated and its configs load back to their digests
    table = pq.read_table(out / "points.parquet").to_pylist()
    assert [r["trial"] for r in table] == [int(r["trial"]) for r in rows]
    best = [r for r in table if r["pareto"]]
    assert best
    for r in best:
        assert config.load(tmp_path / r["config_file"]).digest() == r["config_digest"]
        assert not any(o["status"] == "ok" and o["feasible"] and o["metric.latency_s"] <= r["metric.latency_s"]
                       and o["metric.energy_j"] <= r["metric.energy_j"]
                       and (o["metric.latency_s"], o["metric.energy_j"]) != (r["metric.latency_s"],
                                                                            r["metric.energy_j"]) for o in table)


def test_random_points_are_distinct_and_seeded(tmp_path):
    text = GOOD.replace("strategy: grid", "strategy: random\ntrials: 5").replace(
        "engine.lanes: [8, 16, 32]", "engine.lanes: [8, 16, 32]\n  clock.mhz: {low: 50, high: 80, step: 10}")
    plan = load(write(tmp_path, text))
    points = plan.points()
    assert len(points) == 5 and len({json.dumps(p, sort_keys=True) for p in points}) == 5
    assert points == load(write(tmp_path, text, "again.yaml")).points()
    small = load(write(tmp_path, text.replace("trials: 5", "trials: 100"), "small.yaml"))
    assert len(small.points()) == small.grid_size() == 2 * 3 * 4       # every combination, once


# ---- Optuna ----

TPE = GOOD.replace("strategy: grid", "strategy: tpe\ntrials: 6\nseed: 5").replace(
    "engine.lanes: [8, 16, 32]", "engine.lanes: [8, 16]\n  clock.mhz: {low: 50.0, high: 150.0}")


def test_an_optuna_sweep_is_seeded_and_reproducible(tmp_path):
    write(tmp_path, TPE)
    for out in ("a", "b"):
        proc = dsa("sweep", "s.yaml", "--out", out, "--jobs", "1", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    a, b = rows_of(tmp_path / "a"), rows_of(tmp_path / "b")
    assert len(a) == 6 and all(r["status"] == "ok" for r in a)
    key = ("axis.scheduler.engines", "axis.engine.lanes", "axis.clock.mhz", "metric.cycles")
    assert [tuple(r[k] for k in key) for r in a] == [tuple(r[k] for k in key) for r in b]


def test_nsga2_records_its_constraints_for_the_sampler(tmp_path):
    write(tmp_path, TPE.replace("strategy: tpe", "strategy: nsga2").replace("{fits: ulx3s}", "{fits: ulx3s, dsp: 30}"))
    plan = load(tmp_path / "s.yaml")
    summary = runner.run(plan, tmp_path / "out", jobs=2)
    assert summary.counts["ok"] == 6
    store = Store(tmp_path / "out", plan)
    try:
        for t in store.trials():
            constraints = {k: v for k, v in t.system_attrs.items() if k.startswith("constraints")}
            assert set(constraints) == {"constraints:fits", "constraints:dsp"} or constraints == {}, constraints
            assert t.user_attrs["feasible"] == all(v <= 0 for v in t.user_attrs["constraints"].values())
    finally:
        store.close()


def test_trials_a_killed_sampler_sweep_had_started_run_again_with_their_parameters(tmp_path):
    write(tmp_path, TPE)
    plan = load(tmp_path / "s.yaml")
    store = Store(tmp_path / "out", plan, runner.sampler(plan))
    started = [store.ask() for _ in range(2)]      # running when the sweep "died"
    params = [t.params for t in started]
    store.close()
    summary = runner.run(plan, tmp_path / "out", jobs=2)
    assert summary.total == 6 and sum(summary.counts.values()) == 6
    done = {r["trial"]: r for r in records(tmp_path / "out")}
    assert len(done) == 6
    for t, p in zip(started, params, strict=True):
        assert {k.removeprefix("axis."): v for k, v in done[t.number].items() if k.startswith("axis.")} == p


# ---- kill -9 and resume ----

SLOW = """name: slow
base: tiny
strategy: grid
axes:
  engine.rows: [1, 2, 3, 4]
  scheduler.engines: [1, 2]
  l3.ways: [2, 4, 8]
workloads:
  - {kind: spmm, m: 256, k: 256, n: 32, density: 0.3}
objectives: [latency_s]
"""


def test_a_sweep_killed_with_sigkill_resumes_and_loses_nothing(tmp_path):
    write(tmp_path, SLOW)
    env = {**os.environ, "DSA_CACHE": str(tmp_path / ".cache")}
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "sweep", "s.yaml", "--out", "out", "--jobs", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal = tmp_path / "out" / "study.journal"
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count('"state":1') >= 4:   # 4 points finished
            break
        time.sleep(0.05)
    else:
        pytest.fail("the sweep finished no point in 120 s")
    os.killpg(proc.pid, signal.SIGKILL)                          # the sweep and its workers, mid-flight
    proc.wait()
    before = len(records(tmp_path / "out"))
    assert 4 <= before < 24, "killed too late to test a resume"
    again = dsa("sweep", "s.yaml", "--out", "out", "--jobs", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"24 points ({before} finished before)" in " ".join(again.stdout.split())
    rows = records(tmp_path / "out")
    points = [tuple(v for k, v in r.items() if k.startswith("axis.")) for r in rows]
    assert len(rows) == 24 and len(set(points)) == 24, "a point was lost or ran twice"
    assert all(r["status"] == "ok" for r in rows)


# ---- Ray ----

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_cluster_on_localhost_runs_the_same_points(tmp_path):
    ray = Path(sys.executable).parent / "ray"
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([str(ray), "start", "--head", f"--port={port}", "--num-cpus=2",
                              "--include-dashboard=false", "--disable-usage-stats"], env=env, capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        write(tmp_path, GOOD)
        on_ray = dsa("sweep", "s.yaml", "--out", "ray", "--backend", "ray", "--address", f"127.0.0.1:{port}",
                     cwd=tmp_path)
        assert on_ray.returncode == 0, on_ray.stderr
    finally:
        subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True, timeout=120)
    local = dsa("sweep", "s.yaml", "--out", "local", "--jobs", "2", cwd=tmp_path)
    assert local.returncode == 0, local.stderr

    def by_point(rows):
        return {tuple(v for k, v in r.items() if k.startswith("axis.")): (r["status"], r["metric.cycles"],
                                                                           r["metric.energy_j"]) for r in rows}
    assert by_point(rows_of(tmp_path / "ray")) == by_point(rows_of(tmp_path / "local"))
    assert json.loads((tmp_path / "ray" / "sweep.json").read_text())["name"] == "small"


# ---- the Verilator check of the best points, and the report ----

def test_verify_top_runs_the_best_points_on_verilator_and_the_report_shows_it(tmp_path, build_root):
    from sim.verify import DAG_CYCLE_TOLERANCE
    write(tmp_path, GOOD.replace("scheduler.engines: [1, 2]", "scheduler.engines: [2]").replace(
        "engine.lanes: [8, 16, 32]", "engine.lanes: [4]").replace("constraints: {fits: ulx3s}\n", ""))
    # ^ the tiny preset itself: its Verilator builds are cached
    proc = dsa("sweep", "s.yaml", "--out", "out", "--jobs", "1", "--verify-top", "1", "--build-root", str(build_root),
               cwd=tmp_path, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    checked = json.loads((tmp_path / "out" / "verify.json").read_text())["points"]
    assert {v["workload"] for v in checked} == {"minilm_partscores", "multimodal"}
    for v in checked:
        assert v["outputs_equal"] and v["config_digest"] == config.load("tiny").digest()
        limit = 0 if v["workload"] == "minilm_partscores" else DAG_CYCLE_TOLERANCE   # one engine: exact
        assert abs(v["difference"]) <= limit, v
    report = dsa("report", "out", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Checked on Verilator (--verify-top)" in md and "| minilm_partscores | " in md
    assert f"configs/{config.load('tiny').digest()}.yaml" in md


def test_the_report_has_its_plots_and_refuses_bad_input(tmp_path):
    write(tmp_path, TPE.replace("trials: 6", "trials: 8"))
    assert dsa("sweep", "s.yaml", "--out", "out", "--jobs", "2", cwd=tmp_path).returncode == 0
    proc = dsa("report", "out", "--axis", "clock.mhz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plots = {p.name for p in (tmp_path / "out" / "plots").iterdir()}
    assert plots == {"pareto_latency_s_energy_j.png", "hypervolume.png", "axis_clock_mhz.png", "roofline.png"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert all(f"plots/{p}" in html for p in plots) and "<h2>Pareto set</h2>" in html
    md = (tmp_path / "out" / "report.md").read_text()
    assert "8 points: 8 ok" in md
    bad = dsa("report", "out", "--axis", "engine.rows", cwd=tmp_path)
    assert bad.returncode == 2 and "--axis: 'engine.rows' is not an axis of this sweep (allowed: scheduler.engines, " \
                                   "engine.lanes, clock.mhz)" in bad.stderr
    bad = dsa("report", "nowhere", cwd=tmp_path)
    assert bad.returncode == 2 and "SWEEP_DIR: 'nowhere' is not a sweep's results folder" in bad.stderr


def test_hypervolume_of_a_known_front():
    from sim.sweep.report import hypervolume_2d
    assert hypervolume_2d([(0.0, 0.0)], (1.0, 1.0)) == 1.0
    assert hypervolume_2d([(0.5, 0.0), (0.0, 0.5), (0.6, 0.6)], (1.0, 1.0)) == pytest.approx(0.75)
    assert hypervolume_2d([(2.0, 0.0)], (1.0, 1.0)) == 0.0


def test_the_docs_name_every_metric_strategy_and_workload_kind():
    from golden.generators.library import KINDS
    from sim.sweep.metrics import METRICS
    from sim.sweep.spec import STRATEGIES
    doc = (Path(__file__).resolve().parent.parent / "docs" / "sweeps.md").read_text()
    missing = [name for name in (*METRICS, *STRATEGIES, *KINDS) if f"`{name}`" not in doc]
    assert not missing, f"docs/sweeps.md does not mention {missing}"
