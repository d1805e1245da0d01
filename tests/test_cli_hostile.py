"""Hostile input to the `dsa` command, as a shell user types it: each case exits 2 with one `error:` line per
problem naming the field, the value and what is allowed, prints no traceback, writes no file, and is refused
before any work (a case that generated or simulated would run into the timeout)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GOOD_WORKLOAD = """name: w
tensors:
  x: {shape: [8, 16], density: 0.5, seed: 1}
  w: {shape: [16, 8], seed: 2}
  wg: {shape: [8, 2], seed: 3}
kernels:
  - {name: l1, op: spmm, a: x, b: w, out: h, requant: [16384, 20]}
  - {name: g, op: gemm, a: h, b: wg, out: gv, gate: {op: threshold, threshold: 0}}
  - {name: l2, op: spmm, a: h, b: w, out: y, when: {gate: g, column: 1}}
outputs: [y]
"""


def workload(old: str, new: str) -> dict[str, str]:
    assert old in GOOD_WORKLOAD
    return {"w.yaml": GOOD_WORKLOAD.replace(old, new)}


RUN = ("run", "--config", "tiny", "--out", "out")
WORK = ("run", "--config", "tiny", "--workload", "w.yaml", "--out", "out")

# (id, argv, files to create first, the message)
CASES = [
    ("seed", (*RUN, "--seed", "-1"), {}, "--seed: -1 is not allowed (allowed: 0..9223372036854775807)"),
    ("density", (*RUN, "--density", "2"), {}, "--density: 2.0 is not allowed (allowed: 0.0..1.0)"),
    ("dim-zero", (*RUN, "--m", "0"), {}, "--m: 0 is not allowed (allowed: 1..65535)"),
    ("dim-text", (*RUN, "--m", "abc"), {}, "Invalid value for '--m'"),
    ("huge", (*RUN, "--m", "65535", "--k", "65535", "--n", "65535"), {},
     "--m/--k/--n: 65535x65535x65535 needs about"),
    ("threshold", (*RUN, "--threshold", "200"), {}, "--threshold: 200 is not allowed (allowed: 0..128)"),
    ("kernel", (*RUN, "--kernel", "conv"), {}, "Invalid value for '--kernel': 'conv' is not one of"),
    ("nm", (*RUN, "--format", "nm", "--nm", "3:5"), {}, "--nm: 3:5 is not allowed"),
    ("requant", (*RUN, "--requant", "1x"), {}, "--requant: '1x' is not allowed (allowed: MULT:SHIFT"),
    ("policy-alone", (*RUN, "--policy", "adaptive"), {}, "--policy: only with --workload"),
    ("a-alone", (*RUN, "--a", "a.npy"), {"a.npy": "int8"}, "--a and --b go together"),
    ("a-unreadable", (*RUN, "--a", "a.npy", "--b", "a.npy"), {"a.npy": "text"}, "--a: cannot read 'a.npy'"),
    ("unknown-option", (*RUN, "--mm", "3"), {}, "No such option: --mm"),
    ("missing-out", ("run", "--config", "tiny"), {}, "Missing option '--out'"),
    ("out-file", ("run", "--config", "tiny", "--out", "taken"), {"taken": "text"},
     "--out: 'taken' is a file (allowed: a folder, new or existing)"),
    ("out-empty", ("run", "--config", "tiny", "--out", ""), {}, "--out: '' is not allowed (allowed: a folder path)"),
    ("out-unwritable", ("run", "--config", "tiny", "--out", "/proc/dsa-out"), {}, "--out: '/proc/dsa-out' cannot be"),
    ("build-root-empty", (*RUN, "--backend", "rtl", "--build-root", ""), {}, "--build-root: '' is not allowed"),
    ("generate-out-file", ("generate", "--config", "tiny", "--out", "taken"), {"taken": "text"},
     "--out: 'taken' is a file"),
    ("generate-out-empty", ("generate", "--config", "tiny", "--out", ""), {}, "--out: '' is not allowed"),
    ("preset", ("run", "--config", "huge", "--out", "out"), {}, "config: 'huge' is neither a preset"),
    ("config-empty", ("run", "--config", "c.yaml", "--out", "out"), {"c.yaml": ""}, "config: 'c.yaml' is empty"),
    ("config-markup", ("run", "--config", "c.yaml", "--out", "out"), {"c.yaml": "engine: {lanes: '[a-z]'}\n"},
     "engine.lanes: '[a-z]' is not allowed"),
    ("l3-ports", ("generate", "--config", "c.yaml", "--out", "out"),
     {"c.yaml": "base: tiny\nmemory: {ports: 2, interleave_bytes: 4096}\n"},
     "memory.interleave_bytes: 4096 is not allowed with the L3 on 2 ports: must be <= 512"),
    ("seeds", ("verify", "--config", "tiny", "--seeds", "0"), {}, "--seeds: 0 is not allowed (allowed: 1..64)"),
    ("workload-missing", WORK, {}, "w.yaml: cannot read the workload file (No such file or directory)"),
    ("workload-duplicate-key", WORK, workload("name: w\n", "name: w\nname: v\n"), "name: duplicate key (w.yaml"),
    ("workload-syntax", WORK, {"w.yaml": "name: [w\n"}, "w.yaml, line 2 column 1: not valid YAML"),
    ("workload-list", WORK, {"w.yaml": "- a\n- b\n"}, "w.yaml: top level must be a mapping, got list"),
    ("workload-empty", WORK, {"w.yaml": ""}, "w.yaml: empty"),
    ("workload-unknown-key", WORK, workload("outputs: [y]", "outputs: [y]\ncolor: red"),
     "workload.color: unknown key"),
    ("when-column", WORK, workload("column: 1", "column: one"),
     "kernels.l2.when.column: 'one' is not allowed (allowed: an integer 0..65535)"),
    ("tile-rows-text", WORK, workload("out: y,", "out: y, tile_rows: x,"),
     "kernels.l2.tile_rows: 'x' is not allowed"),
    ("tile-rows-zero", WORK, workload("out: y,", "out: y, tile_rows: 0,"),
     "kernels.l2.tile_rows: 0 is not allowed"),
    ("gate-k", WORK, workload("{op: threshold, threshold: 0}", "{op: topk, k: two}"),
     "kernels.g.gate.k: 'two' is not allowed (allowed: an integer 1..15)"),
    ("seed-text", WORK, workload("seed: 1", "seed: one"), "tensors.x.seed: 'one' is not allowed"),
    ("density-text", WORK, workload("density: 0.5", "density: half"),
     "tensors.x.density: 'half' is not allowed (allowed: a number 0.0..1.0)"),
    ("tensor-file", WORK, workload("{shape: [16, 8], seed: 2}", "{file: nowhere.npy}"),
     "tensors.w.file: cannot read 'nowhere.npy' as a .npy array"),
    ("kernel-threshold", WORK, workload("out: y,", "out: y, threshold: 200,"),
     "kernels.l2.threshold: 200 is not allowed (allowed: an integer 0..128, or leave it out)"),
]


def _make(folder: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        if content == "int8":
            np.save(folder / name, np.ones((4, 4), np.int8))
        else:
            (folder / name).write_text(content)


@pytest.mark.parametrize(("argv", "files", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_exits_2_with_one_clear_line(tmp_path, argv, files, message):
    _make(tmp_path, files)
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "DSA_CACHE": str(tmp_path / ".cache")}     # a crash log would land here
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert lines and all(line.startswith("error: ") for line in lines), proc.stderr
    assert any(message in line for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "bad input must write nothing"


def test_an_internal_error_exits_3_and_points_at_its_log(tmp_path, monkeypatch):
    """A bug (here: the config loader raising something unexpected) is no traceback on the terminal, but exit 3
    and a line that names the log holding it."""
    from sim import cli
    monkeypatch.setenv("DSA_CACHE", str(tmp_path))

    def broken(name, policy=None):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(cli, "_load_config", broken)
    assert cli.main(["config", "tiny"]) == 3
    (log,) = (tmp_path / "logs").iterdir()
    assert "ZeroDivisionError: planted" in log.read_text() and "Traceback" in log.read_text()
