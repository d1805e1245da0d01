"""Golden model (golden.numerics, golden.kernels) against an independent numpy reference written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golden import kernels, numerics
from golden.generators.operands import random_operands
from golden.kernels import gemm, spmm, threshold_a
from golden.numerics import accumulate, overflow, pick_device

MODES = ("wrap", "saturate")


# ---- the reference: explicit per-step loop, numpy int64, nothing shared with golden/ --------------------

def ref_rule(x: np.ndarray, acc_bits: int, mode: str) -> np.ndarray:
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    if mode == "saturate":
        return np.minimum(np.maximum(x, lo), hi)
    return (x - lo) % (2 ** acc_bits) + lo  # numpy % with a positive modulus is >= 0


def ref_matmul(a: np.ndarray, b: np.ndarray, acc_bits: int, mode: str, threshold: int = 0) -> np.ndarray:
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    a = np.where(np.abs(a) < threshold, 0, a)
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for k in range(a.shape[1]):  # increasing k, rule after every addition, including zero products
        acc = ref_rule(acc + a[:, k, None] * b[None, k, :], acc_bits, mode)
    return acc


def unclamped(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def num(acc_bits: int, mode: str) -> dict:
    return {"acc_bits": acc_bits, "overflow": mode}


def check(a, b, acc_bits, mode, threshold=0):
    got = spmm(num(acc_bits, mode), a, b, threshold=threshold)
    assert got.dtype == torch.int64 and got.device.type == "cpu"
    assert got.shape == (a.shape[0], b.shape[1])
    np.testing.assert_array_equal(got.numpy(), ref_matmul(a, b, acc_bits, mode, threshold))
    return got.numpy()


# ---- overflow --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("acc_bits", [16, 20, 32, 48])
@pytest.mark.parametrize("mode", MODES)
def test_overflow_matches_reference(acc_bits, mode):
    half = 2 ** (acc_bits - 1)
    vals = np.array([0, 1, -1, half - 1, half, -half, -half - 1, 3 * half + 5, -5 * half - 3,
                     2 ** 40 + 7, -(2 ** 40) - 7], dtype=np.int64)
    got = overflow(torch.from_numpy(vals), acc_bits, mode).numpy()
    np.testing.assert_array_equal(got, ref_rule(vals, acc_bits, mode))


def test_overflow_wrap_extremes_and_64_bits():
    x = torch.tensor([torch.iinfo(torch.int64).max, torch.iinfo(torch.int64).min, -1], dtype=torch.int64)
    assert overflow(x, 16, "wrap").tolist() == [-1, 0, -1]
    assert overflow(x, 16, "saturate").tolist() == [32767, -32768, -1]
    assert overflow(x, 64, "wrap").tolist() == x.tolist()
    assert overflow(x, 64, "saturate").tolist() == x.tolist()


def test_overflow_rejects_bad_arguments():
    x = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"overflow: 'clamp' is not allowed \(allowed: wrap, saturate\)"):
        overflow(x, 16, "clamp")
    with pytest.raises(ValueError, match=r"acc_bits: 65 is not allowed"):
        overflow(x, 65, "wrap")
    with pytest.raises(TypeError, match="int8"):
        overflow(x.to(torch.int8), 16, "wrap")


# ---- densities, shapes, rows --------------------------------------------------------------------------

@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("acc_bits", [16, 32])
def test_random_densities(density, mode, acc_bits):
    a, b = random_operands(24, 40, 12, density, seed=int(density * 100) + acc_bits)
    got = check(a, b, acc_bits, mode)
    if density == 0.0:
        assert not got.any()


@pytest.mark.parametrize("k", [1, 7, 15, 17, 33, 100])
@pytest.mark.parametrize("mode", MODES)
def test_k_not_multiple_of_16(k, mode):
    a, b = random_operands(5, k, 9, 0.5, seed=k)
    check(a, b, 16, mode)


@pytest.mark.parametrize("mode", MODES)
def test_skewed_and_zero_rows(mode):
    rng = np.random.default_rng(7)
    m, k, n = 12, 64, 8
    a = np.zeros((m, k), dtype=np.int8)
    a[0] = rng.integers(-128, 128, k)                   # dense
    a[1] = -128                                         # dense, max magnitude
    a[3, 5] = 127                                       # one nonzero
    a[4, -1] = -128                                     # last column only
    a[6, ::16] = rng.integers(-128, 128, k // 16)       # sparse
    a[9] = rng.integers(-128, 128, k)                   # dense
    # rows 2, 5, 7, 8, 10, 11 stay all-zero
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    got = check(a, b, 16, mode)  # 16 bits: the dense rows overflow, the sparse rows do not
    assert not got[[2, 5, 7, 8, 10, 11]].any()
    assert np.abs(unclamped(a, b)[[0, 1, 9]]).max() > 32767


def test_gemm_equals_spmm_without_threshold_and_torch_inputs():
    a, b = random_operands(10, 20, 6, 0.3, seed=3)
    n = num(16, "saturate")
    ref = spmm(n, a, b)
    assert torch.equal(gemm(n, a, b), ref)
    assert torch.equal(spmm(n, torch.from_numpy(a), torch.from_numpy(b)), ref)
    assert torch.equal(spmm(n, a[:, ::-1].T.copy().T[:, ::-1], b), ref)  # non-contiguous view works


def test_int8_matmul_in_torch_wraps_so_golden_upcasts():
    a = torch.full((1, 4), 100, dtype=torch.int8)
    b = torch.full((4, 1), 100, dtype=torch.int8)
    assert (a @ b).item() != 40000  # the trap: int8 @ int8 wraps mod 256
    assert spmm(num(32, "wrap"), a, b).item() == 40000


def test_kernel_input_errors():
    a, b = random_operands(3, 4, 5, 1.0, seed=0)
    n = num(32, "wrap")
    with pytest.raises(TypeError, match=r"A: dtype int16 is not allowed \(allowed: int8\)"):
        spmm(n, a.astype(np.int16), b)
    with pytest.raises(TypeError, match=r"B: dtype torch.int64 is not allowed"):
        spmm(n, a, torch.from_numpy(b).long())
    with pytest.raises(ValueError, match=r"A: shape \(4,\) is not allowed"):
        spmm(n, a[0], b)
    with pytest.raises(ValueError, match=r"B: shape \(3, 5\) does not match A \(3, 4\): B needs 4 rows"):
        spmm(n, a, b[:3])
    with pytest.raises(ValueError, match="threshold: -1 is not allowed"):
        spmm(n, a, b, threshold=-1)


# ---- overflow of max-magnitude operands --------------------------------------------------------------

@pytest.mark.parametrize("acc_bits", [16, 20])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("b_val", [-128, 127])
def test_max_magnitude_overflows(acc_bits, mode, b_val):
    k = 40  # 40 * 2^14 = 655360 > 2^19: overflows 16 and 20 bits
    a = np.full((3, k), -128, dtype=np.int8)
    b = np.full((k, 5), b_val, dtype=np.int8)
    hi = 2 ** (acc_bits - 1) - 1
    assert np.abs(unclamped(a, b)).min() > hi  # it really overflows
    got = check(a, b, acc_bits, mode)
    if mode == "saturate":
        assert (got == (hi if b_val < 0 else -hi - 1)).all()
    else:
        assert (got == ref_rule(unclamped(a, b), acc_bits, "wrap")).all()  # wrap: order-free


def test_wrap_is_exact_power_of_two():
    a = np.full((1, 64), -128, dtype=np.int8)
    b = np.full((64, 1), -128, dtype=np.int8)  # sum = 64 * 2^14 = 2^20
    assert spmm(num(20, "wrap"), a, b).item() == 0
    assert spmm(num(20, "saturate"), a, b).item() == 2 ** 19 - 1
    assert spmm(num(32, "wrap"), a, b).item() == 2 ** 20


# ---- thresholds -----------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0, 1, 64, 128])
@pytest.mark.parametrize("mode", MODES)
def test_thresholds(threshold, mode):
    a, b = random_operands(16, 48, 8, 0.6, seed=threshold + 1)
    a[0, :4] = [-128, 127, -64, 64]  # the edge values are present
    got = check(a, b, 16, mode, threshold=threshold)
    if threshold == 0:
        assert np.array_equal(got, spmm(num(16, mode), a, b).numpy())


def test_threshold_a_semantics():
    a = torch.tensor([[-128, -127, -64, -63, -1, 0, 1, 63, 64, 127]], dtype=torch.int8)
    assert torch.equal(threshold_a(a, 0), a)
    assert torch.equal(threshold_a(a, 1), a)
    assert threshold_a(a, 64).tolist() == [[-128, -127, -64, 0, 0, 0, 0, 0, 64, 127]]
    assert threshold_a(a, 128).tolist() == [[-128, 0, 0, 0, 0, 0, 0, 0, 0, 0]]  # |-128| = 128
    assert threshold_a(a, 129).abs().sum() == 0
    assert threshold_a(a, 64).dtype == torch.int8


# ---- saturation order -------------------------------------------------------------------------------

def test_saturate_is_per_step_not_at_end():
    # 3 x 127*127 = 48387 clamps to 32767 after the 2nd step; then 3 x (-128*127) = -48768
    a = np.array([[127, 127, 127, -128, -128, -128]], dtype=np.int8)
    b = np.full((6, 1), 127, dtype=np.int8)
    per_step = 32767 - 3 * 16256
    at_end = int(np.clip(unclamped(a, b), -32768, 32767).item())
    assert per_step != at_end and at_end == 3 * 16129 - 3 * 16256
    assert spmm(num(16, "saturate"), a, b).item() == per_step
    # reversing k changes the saturating answer but not the wrapping one
    rev = a[:, ::-1].copy()
    assert spmm(num(16, "saturate"), rev, b).item() == -32768 + 3 * 16129
    assert spmm(num(16, "wrap"), rev, b).item() == spmm(num(16, "wrap"), a, b).item()


def test_saturate_fast_path_and_loop_rows_mix():
    # rows 0/1 can never clamp (one matmul); rows 2/3 must run the loop; all must match the reference
    a = np.zeros((4, 32), dtype=np.int8)
    a[0, :2] = [100, -100]
    a[1, 3] = -128
    a[2] = 127
    a[3, ::2] = -128
    a[3, 1::2] = 127
    b = np.random.default_rng(1).integers(-128, 128, (32, 6)).astype(np.int8)
    check(a, b, 16, "saturate")


def test_accumulate_takes_int64_only():
    with pytest.raises(TypeError, match="upcast int8 first"):
        accumulate(torch.ones(2, 2, dtype=torch.int8), torch.ones(2, 2, dtype=torch.int8), 16, "wrap")
    with pytest.raises(ValueError, match="do not match"):
        accumulate(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 2, dtype=torch.int64), 16, "wrap")


def ref_matmul_from(a: np.ndarray, b: np.ndarray, init: np.ndarray, acc_bits: int, mode: str) -> np.ndarray:
    acc = init.astype(np.int64).copy()
    for k in range(a.shape[1]):
        acc = ref_rule(acc + a[:, k, None].astype(np.int64) * b[None, k, :].astype(np.int64), acc_bits, mode)
    return acc


@pytest.mark.parametrize("acc_bits", [16, 20, 32])
@pytest.mark.parametrize("mode", MODES)
def test_accumulate_with_init_is_one_pass_over_the_concatenated_k(acc_bits, mode):
    """K tiling: chunks run one after another, each starting from what the last one left (``init``), equal one
    pass over all of K, in both modes, for every way of cutting K; the reference loop agrees."""
    rng = np.random.default_rng(acc_bits)
    a = rng.integers(-128, 128, (12, 90)).astype(np.int8)
    a[:6, :45] = np.abs(a[:6, :45].astype(np.int16)).clip(0, 127).astype(np.int8)   # climb, then fall back
    a[:6, 45:] = -np.abs(a[:6, 45:].astype(np.int16)).clip(0, 128).astype(np.int8)
    a[8] = 0                                                                           # a row with no product
    b = rng.integers(0, 128, (90, 7)).astype(np.int8)
    num_ = num(acc_bits, mode)
    one_pass = spmm(num_, a, b).numpy()
    np.testing.assert_array_equal(one_pass, ref_matmul(a, b, acc_bits, mode))
    for cuts in ([45], [1, 2, 89], [16, 32, 48, 64, 80], list(range(1, 90, 7))):
        acc = None
        for k0, k1 in zip([0, *cuts], [*cuts, 90], strict=True):
            acc = spmm(num_, a[:, k0:k1], b[k0:k1], init=acc)
        np.testing.assert_array_equal(acc.numpy(), one_pass, err_msg=f"cuts {cuts}")
    # init is added before the first product, under the rule: the reference from the same start agrees
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    init = rng.integers(lo, hi + 1, (12, 7))
    init[0] = hi
    got = accumulate(torch.from_numpy(a.astype(np.int64)), torch.from_numpy(b.astype(np.int64)), acc_bits, mode,
                     init=torch.from_numpy(init))
    np.testing.assert_array_equal(got.numpy(), ref_matmul_from(a, b, init, acc_bits, mode))
    if mode == "saturate" and acc_bits == 16:
        # the sums leave the range and come back: adding the chunks' partial sums at the end is not the same
        halves = [spmm(num_, a[:, k0:k1], b[k0:k1]).numpy() for k0, k1 in ((0, 45), (45, 90))]
        assert not np.array_equal(ref_rule(halves[0] + halves[1], 16, "saturate"), one_pass)


def test_accumulate_init_is_checked():
    a, b = torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"^accumulate: init torch.int64 \(2, 3\) is not allowed"):
        accumulate(a, b, 16, "wrap", init=torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^accumulate: init torch.int32 \(2, 4\) is not allowed"):
        accumulate(a, b, 16, "wrap", init=torch.zeros(2, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"^accumulate: init holds values outside int16 \(allowed: -32768..32767"):
        accumulate(a, b, 16, "saturate", init=torch.full((2, 4), 1 << 15, dtype=torch.int64))
    assert torch.equal(accumulate(a, b, 16, "wrap", init=torch.full((2, 4), 32767, dtype=torch.int64)),
                       torch.full((2, 4), -32768 + 2, dtype=torch.int64))


# ---- devices ----------------------------------------------------------------------------------------

def test_pick_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match=r"device: 'cuda' was requested but CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda:1")
    with pytest.raises(ValueError, match=r"device: 'tpu' is not allowed \(allowed: cpu, cuda, cuda:N, auto\)"):
        pick_device("tpu")
    a, b = random_operands(4, 8, 4, 0.5, seed=0)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        spmm(num(32, "wrap"), a, b, device="cuda")
    assert torch.equal(spmm(num(32, "wrap"), a, b, device="auto"), spmm(num(32, "wrap"), a, b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    for density in (0.0, 0.1, 1.0):
        a, b = random_operands(64, 300, 40, density, seed=5)
        for bits in (16, 20, 32):
            cpu = spmm(num(bits, mode), a, b, threshold=3)
            gpu = spmm(num(bits, mode), a, b, threshold=3, device="cuda")
            assert gpu.device.type == "cpu" and torch.equal(cpu, gpu)


def test_module_exports():
    assert kernels.pick_device is numerics.pick_device
