"""The `dsa` command line: its contract for scripts (files written, exit codes, error lines)."""
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import numpy as np
import pytest

from sim.cli import main


@dataclass
class Outcome:
    exit_code: int
    output: str       # stdout and stderr


def invoke(*args) -> Outcome:
    """`dsa ARGS` in this process, through the same entry point as the shell command."""
    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        code = main([str(a) for a in args])
    return Outcome(code, buffer.getvalue())


def test_generate_is_deterministic(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert invoke("generate", "--config", "tiny", "--out", first).exit_code == 0
    assert invoke("generate", "--config", "tiny", "--out", second).exit_code == 0
    (folder,) = first.iterdir()
    assert folder.name.startswith("tiny-")
    names = sorted(p.name for p in folder.iterdir())
    # tiny has an L3: its tag and data RAM modules come beside the top
    assert names == ["README.md", "chip_component.json", "component.json", "config.json", "csr_map.json",
                     "csr_map.md", "files.f", "l3_data_ram_w128_d2048.v", "l3_tag_ram_w120_d128.v", "tiny.core",
                     "tiny.v", "tiny_chip.v", "tiny_csr.h"]
    for name in names:
        assert (folder / name).read_bytes() == (second / folder.name / name).read_bytes(), name
    assert "module dsa_tiny(" in (folder / "tiny.v").read_text()
    assert "module dsa_tiny_chip(" in (folder / "tiny_chip.v").read_text()
    csrs = json.loads((folder / "csr_map.json").read_text())
    assert [r["name"] for r in csrs][:3] == ["version", "control", "status"]
    assert "| 0x0028 | program_base | RW | 40 |" in (folder / "README.md").read_text()
    assert json.loads((folder / "config.json").read_text())["digest"] == folder.name.split("-")[1]


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: tiny\nengine:\n  lanes: 12\n  color: red\nl1:\n  banks: 3\n")
    result = invoke("generate", "--config", bad, "--out", tmp_path)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: engine.lanes: 12 is not allowed: must be a power of two in [2, 64]",
        "error: engine.color: unknown key (allowed: rows, lanes, scan_bytes, operand_bits, acc_bits, overflow, "
        "threshold)",
        "error: l1.banks: 3 is not allowed: must be a power of two in [1, 16]",
    ]


def test_unknown_preset_exits_2():
    result = invoke("run", "--config", "huge", "--out", "x")
    assert result.exit_code == 2
    assert ("error: config: 'huge' is neither a preset (allowed: default, tiny, u55c, ulx3s) nor a YAML file"
            in result.output)


def test_run_sim_writes_result_and_c(tmp_path):
    result = invoke("run", "--config", "tiny", "--backend", "sim", "--m", 9, "--k", 40, "--n", 7,
                    "--density", 0.25, "--seed", 3, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "result.json").read_text())
    for key in ("kernel", "backend", "config_digest", "cycles", "useful_macs", "dense_macs", "utilization",
                "wall_s"):
        assert key in record
    assert record["dense_macs"] == 9 * 40 * 7
    assert record["useful_macs"] == round(0.25 * 9 * 40) * 7
    assert 0 < record["utilization"] <= 1
    c = np.load(tmp_path / "c.npy")
    assert c.shape == (9, 7) and c.dtype == np.int32      # tiny's accumulators are 32 bits


def test_run_from_npy_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (5, 20)).astype(np.int8)
    b = rng.integers(-128, 128, (20, 6)).astype(np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    result = invoke("run", "--config", "tiny", "--backend", "golden", "--a", tmp_path / "a.npy",
                    "--b", tmp_path / "b.npy", "--format", "bitmask", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "c.npy"), a.astype(np.int64) @ b)
    assert json.loads((tmp_path / "out" / "result.json").read_text())["cycles"] is None


@pytest.mark.parametrize("a_arr, b_arr, message", [
    (np.zeros((4, 8), np.float32), np.zeros((8, 4), np.int8),
     "holds float32 (4, 8) (allowed: a 2-D int8 array, each dimension 1..65535)"),
    (np.zeros((4, 8), np.int8), np.zeros((7, 4), np.int8), "--b: 7 rows is not allowed (allowed: 8, the columns of A)"),
    (np.zeros((4, 8, 1), np.int8), np.zeros((8, 4), np.int8), "holds int8 (4, 8, 1) (allowed: a 2-D int8 array"),
])
def test_bad_tensors_exit_2_without_traceback(tmp_path, a_arr, b_arr, message):
    np.save(tmp_path / "a.npy", a_arr)
    np.save(tmp_path / "b.npy", b_arr)
    result = invoke("run", "--config", "tiny", "--backend", "sim", "--a", tmp_path / "a.npy", "--b",
                    tmp_path / "b.npy", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_unreadable_npy_exits_2(tmp_path):
    (tmp_path / "a.npy").write_text("not numpy")
    result = invoke("run", "--config", "tiny", "--a", tmp_path / "a.npy", "--b", tmp_path / "a.npy",
                    "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "--a: cannot read" in result.output


def test_cuda_request_without_cuda_exits_2(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("run", "--config", "tiny", "--backend", "golden", "--device", "cuda", "--m", 4, "--k", 8,
                    "--n", 4, "--out", tmp_path)
    assert result.exit_code == 2
    assert "error: --device: device: 'cuda' was requested but CUDA is not available" in result.output


def test_help_texts():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("generate", "run", "verify", "compare", "lint"):
        assert command in result.output


@pytest.mark.rtl
def test_verify_tiny_passes(build_root):
    result = invoke("verify", "--config", "tiny", "--build-root", build_root)
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_run_topk_attention_and_requant(tmp_path):
    result = invoke("run", "--config", "tiny", "--kernel", "topk_attention", "--m", 5, "--k", 8, "--n", 9,
                    "--topk", 3, "--causal", "--backend", "sim", "--out", tmp_path / "att")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "att" / "result.json").read_text())
    assert record["output"] == "O" and record["shape"] == [5, 8] and len(record["task_cycles"]) == 3
    assert record["cycles"] == sum(record["task_cycles"]) + 3   # each task also takes its issue cycle
    result = invoke("run", "--config", "tiny", "--m", 6, "--k", 30, "--n", 8, "--requant", "300:12",
                    "--backend", "golden", "--out", tmp_path / "rq")
    assert result.exit_code == 0, result.output
    c = np.load(tmp_path / "rq" / "c.npy")
    assert c.min() >= -128 and c.max() <= 127


@pytest.mark.parametrize("args, message", [
    (("--requant", "3x"), "--requant: '3x' is not allowed (allowed: MULT:SHIFT such as 181:15)"),
    (("--requant", "0:4"), "requant: multiplier [0] is not allowed (allowed: integers 1..32767)"),
    (("--kernel", "topk_attention", "--topk", 99), "topk: 99 is not allowed (allowed: 1..16"),
    (("--format", "nm", "--nm", "3:4"), "nm: 3:4 is not allowed"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    result = invoke("run", "--config", "tiny", "--m", 4, "--k", 8, "--n", 4, *args, "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_run_workload_writes_outputs_and_task_counts(tmp_path):
    result = invoke("run", "--config", "tiny", "--workload", "workloads/two_branches.yaml", "--backend", "sim",
                    "--policy", "static_list", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "result.json").read_text())
    assert (record["policy"], record["engines"], record["skipped"]) == ("static_list", 2, record["tasks"] -
                                                                        record["issued"])
    assert record["skipped"] >= 1 and record["cycles"] > 0
    outputs = np.load(tmp_path / "outputs.npz")
    assert not outputs["o2"].any()          # the gated-off branch left its output zero


def test_bad_workload_exits_2_naming_the_problem(tmp_path):
    bad = tmp_path / "cyclic.yaml"
    bad.write_text("name: c\ntensors:\n  w: {shape: [8, 8]}\nkernels:\n"
                   "  - {name: a, op: spmm, a: q, b: w, out: p, requant: [1, 0]}\n"
                   "  - {name: b, op: spmm, a: p, b: w, out: q, requant: [1, 0]}\n")
    result = invoke("run", "--config", "tiny", "--workload", bad, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "the graph has a cycle through a -> b -> a" in result.output


@pytest.mark.rtl
def test_run_tiles_what_does_not_fit_l1_on_every_backend(tmp_path, build_root):
    """256x256x64 on tiny: B alone would take all 256 L1 lines, so `dsa run` tiles it through HBM (K split
    too) and says so; golden, sim and RTL give the same C, and sim cycles equal RTL cycles."""
    records, outputs = {}, {}
    for backend in ("golden", "sim", "rtl"):
        result = invoke("run", "--config", "tiny", "--m", 256, "--k", 256, "--n", 64, "--density", 0.1,
                        "--backend", backend, "--build-root", build_root, "--out", tmp_path / backend)
        assert result.exit_code == 0, result.output
        assert "operands in HBM, tiled (they do not fit the 4096-byte L1)" in result.output
        assert "K in " in result.output
        records[backend] = json.loads((tmp_path / backend / "result.json").read_text())
        outputs[backend] = np.load(tmp_path / backend / "c.npy")
    for backend in ("sim", "rtl"):
        np.testing.assert_array_equal(outputs[backend], outputs["golden"], err_msg=backend)
    assert records["sim"]["cycles"] == records["rtl"]["cycles"] > 0
    assert records["rtl"]["build_s"] is not None and records["rtl"]["wall_s"] > 0


@pytest.mark.parametrize("preset", ["tiny", "default", "ulx3s", "u55c"])
def test_default_shapes_run_on_every_preset(tmp_path, preset):
    """`dsa run` with no shape options works on every preset (on tiny the operands go through HBM)."""
    result = invoke("run", "--config", preset, "--backend", "sim", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "c.npy").shape == (64, 64)
