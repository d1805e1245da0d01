"""golden == sim == RTL, bit for bit, and sim cycles == RTL cycles (the spine's contract)."""
from itertools import pairwise

import numpy as np
import pytest
from conftest import VARIANTS, variant

from golden.generators.operands import extreme_operands, random_operands, skewed_operands
from hwgen.compiler.single_kernel import compile_matmul
from hwgen.spec.formats import OperandError
from sim.verify import DENSITIES, FORMATS, Case, cross_check, standard_cases, standard_shape

pytestmark = pytest.mark.rtl


def _assert_all_agree(rows):
    for row in rows:
        for name, golden in row.results["golden"].outputs.items():
            for backend in ("sim", "rtl"):
                np.testing.assert_array_equal(row.results[backend].outputs[name], golden,
                                              err_msg=f"{row.label}: {backend} {name} != golden")
        sim, rtl = row.results["sim"], row.results["rtl"]
        assert (sim.stats["task_issue"], sim.cycles) == (rtl.stats["task_issue"], rtl.cycles), \
            f"{row.label}: sim issued tasks in {sim.stats['task_issue']} ({sim.cycles} cycles), " \
            f"rtl in {rtl.stats['task_issue']} ({rtl.cycles})"
        for counter in ("elems", "gated_macs"):
            assert row.results["sim"].stats[counter] == row.results["rtl"].stats[counter], (row.label, counter)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_standard_set(name, build_root):
    """Densities 0..1, both formats, gemm, thresholds, skewed rows, max magnitude, K and N ragged; 3 seeds."""
    cfg = variant(name)
    _assert_all_agree(cross_check(cfg, standard_cases(cfg, seeds=3), build_root=build_root))


def _overflow_cases(cfg):
    m, k, n = standard_shape(cfg)
    a, b = extreme_operands(m, k, n, seed=0)
    full = a.astype(np.int64) @ b.astype(np.int64)
    assert full.max() > cfg.acc_max and full.min() < cfg.acc_min, "operands must overflow both ways"
    return [Case(f"extreme {fmt}", compile_matmul(cfg, a, b, "spmm", fmt)) for fmt in ("dense", "bitmask")] + \
           [Case("extreme gemm", compile_matmul(cfg, a, b, "gemm"))]


@pytest.mark.parametrize("name", ["wrap16", "sat16"])
def test_overflow_both_modes(name, build_root):
    cfg = variant(name)
    rows = cross_check(cfg, _overflow_cases(cfg), build_root=build_root)
    _assert_all_agree(rows)
    c = rows[0].results["rtl"].outputs["C"]
    if cfg.engine.overflow == "saturate":
        assert c[:, 0].max() == cfg.acc_max and c[:, -1].min() == cfg.acc_min
    else:
        assert c.max() <= cfg.acc_max and c.min() >= cfg.acc_min


def test_all_zero_rows_and_skew(build_root):
    cfg = variant("tiny")
    m, k, n = standard_shape(cfg)
    a, b = skewed_operands(m, k, n, seed=5)
    a[::2] = 0
    rows = cross_check(cfg, [Case("half the rows empty", compile_matmul(cfg, a, b, "spmm", fmt))
                             for fmt in ("dense", "bitmask")], build_root=build_root)
    _assert_all_agree(rows)


def test_rtl_cycles_fall_with_density(build_root):
    """The project's core claim on the RTL itself: zeros of A cost no cycle. 64x256x64 spmm on the default
    preset: cycles fall at every step of d = 1, 0.5, 0.2, 0.1, 0.05, d = 0.1 needs at most 0.15x the cycles of
    d = 1 (the ideal is 0.1x), and sim == RTL at each point (the same claim would hold for a model that skipped
    nothing only if the RTL skipped nothing too)."""
    from hwgen.spec import config
    cfg = config.load("default")
    densities = (1.0, 0.5, 0.2, 0.1, 0.05)
    cases = [Case(f"d={d}", compile_matmul(cfg, *random_operands(64, 256, 64, d, seed=0), "spmm", "dense"))
             for d in densities]
    rows = cross_check(cfg, cases, build_root=build_root)
    _assert_all_agree(rows)
    cycles = [row.results["rtl"].cycles for row in rows]
    assert all(a > b for a, b in pairwise(cycles)), dict(zip(densities, cycles, strict=True))
    assert cycles[3] <= 0.15 * cycles[0], dict(zip(densities, cycles, strict=True))


def test_default_preset_tile(build_root):
    """The bench tile on the default preset (4x16 MACs, 64-byte scan)."""
    from hwgen.spec import config
    cfg = config.load("default")
    cases = [Case(f"d={d}", compile_matmul(cfg, *random_operands(32, 256, 40, d, seed=1), "spmm", fmt))
             for d in (0.1, 1.0) for fmt in ("dense", "bitmask")]
    _assert_all_agree(cross_check(cfg, cases, build_root=build_root))


@pytest.mark.full
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_standard_set_many_seeds(name, build_root):
    cfg = variant(name)
    _assert_all_agree(cross_check(cfg, standard_cases(cfg, seeds=12), build_root=build_root))


def test_standard_set_covers_every_density_and_format():
    """The case set itself: every density of DENSITIES in every format, so a density or format the set drops
    cannot pass unnoticed."""
    cfg = variant("tiny")
    labels = {c.label for c in standard_cases(cfg, seeds=1)}
    missing = [(d, fmt) for d in DENSITIES for fmt in FORMATS if f"spmm {fmt} d={d} s0" not in labels]
    assert not missing and len(FORMATS) == 4, missing


@pytest.mark.full
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_random_shapes_sweep(name, build_root):
    """Random shapes up to what L1 holds, every kernel and format, random thresholds."""
    cfg = variant(name)
    rng = np.random.default_rng(len(name))
    cases = []
    while len(cases) < 40:
        m, k, n = (int(x) for x in rng.integers(1, [48, 200, 40]))
        kernel = str(rng.choice(["spmm", "spmm", "gemm"]))
        fmt = "dense" if kernel == "gemm" else str(rng.choice(["dense", "bitmask"]))
        threshold = 0 if kernel == "gemm" else int(rng.choice([0, 0, 1, 30, 128]))
        a, b = random_operands(m, k, n, float(rng.random()), seed=len(cases))
        try:
            program = compile_matmul(cfg, a, b, kernel, fmt, threshold)
        except OperandError:
            continue   # larger than this config's L1: tiling arrives with the memory hierarchy
        cases.append(Case(f"{kernel} {fmt} {m}x{k}x{n} thr={threshold}", program))
    _assert_all_agree(cross_check(cfg, cases, build_root=build_root))
