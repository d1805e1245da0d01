"""Golden requantizer, streaming top-k, integer softmax and top-k attention, against references written here.

The references use plain Python ints (or numpy) and the literal step-by-step rules of the spec, and share
nothing with golden/ except the constants they are checking the use of.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from golden import attention, numerics
from golden.attention import causal_mask, topk_attention
from golden.numerics import (
    int_softmax,
    int_softmax_rows,
    int_softmax_stages,
    requant_constants,
    requant_params,
    requantize,
    topk_row,
    topk_rows,
)
from hwgen.spec.softmax import softmax_constants, softmax_widths

MODES = ("wrap", "saturate")
I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


# ==== references ==========================================================================================

def ref_requant(x: int, m: int, sh: int) -> int:
    y = (x * m + (2 ** (sh - 1) if sh > 0 else 0)) // 2 ** sh  # Python // is floor: the arithmetic shift
    return max(-128, min(127, y))


def ref_topk(row: list[int], k: int, valid: list[bool] | None = None) -> list[tuple[int, int]]:
    """The streaming unit, literally: scan in index order, insert if < k kept or strictly above the minimum."""
    kept: list[tuple[int, int]] = []  # (value, index), value descending then index ascending
    for i, val in enumerate(row):
        if valid is not None and not valid[i]:
            continue
        if len(kept) == k:
            if val <= kept[-1][0]:
                continue
            kept.pop()
        pos = 0
        while pos < len(kept) and kept[pos][0] >= val:  # after every kept entry of >= value (they are earlier)
            pos += 1
        kept.insert(pos, (val, i))
    return kept


def ref_softmax(s: list[int], f: int) -> list[int]:
    """The spec's eight steps with Python ints (the clamped z and p = q + z * q_ln2, literally)."""
    q_ln2 = round(math.log(2) * 2 ** f)
    q_b = math.floor(1.353 * 2 ** f)
    q_c = math.floor((0.344 / 0.3585) * 2 ** (2 * f))
    z_max, recip_bits, p_bits = 30, 32, 7
    m = max(s)
    e = []
    for si in s:
        q = si - m
        z_raw = (-q) // q_ln2
        z = min(z_raw, z_max)
        p = q + z * q_ln2
        big = (p + q_b) ** 2 + q_c
        e.append(0 if z_raw > z_max else big >> z)
    total = sum(e)
    r = 2 ** recip_bits // total
    return [min(2 ** p_bits - 1, (ei * r) >> (recip_bits - p_bits)) for ei in e]


def ref_rule(x: int, acc_bits: int, mode: str) -> int:
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    return max(lo, min(hi, x)) if mode == "saturate" else (x - lo) % 2 ** acc_bits + lo


def ref_matmul(a: list[list[int]], b: list[list[int]], acc_bits: int, mode: str) -> list[list[int]]:
    out = []
    for row in a:
        acc = [0] * len(b[0]) if b else []
        for kk, aval in enumerate(row):  # increasing k, the rule after every addition
            acc = [ref_rule(acc[j] + aval * b[kk][j], acc_bits, mode) for j in range(len(acc))]
        out.append(acc)
    return out


def ref_attention(q, k, v, topk, f, mask, acc_bits, mode):
    q, k, v = q.tolist(), k.tolist(), v.tolist()
    t, s = len(q), len(k)
    kt = [[k[j][i] for j in range(s)] for i in range(len(q[0]))]
    scores = ref_matmul(q, kt, acc_bits, mode)
    rowptr, col, p = [0], [], []
    p_dense = [[0] * s for _ in range(t)]
    for i in range(t):
        kept = ref_topk(scores[i], topk, mask[i])
        probs = ref_softmax([val for val, _ in kept], f) if kept else []
        for (_, j), pj in sorted(zip(kept, probs, strict=True), key=lambda e: e[0][1]):
            col.append(j)
            p.append(pj)
            p_dense[i][j] = pj
        rowptr.append(len(col))
    out = ref_matmul(p_dense, v, acc_bits, mode)
    masked = [[scores[i][j] if mask[i][j] else 0 for j in range(s)] for i in range(t)]
    return {"scores": masked, "rowptr": rowptr, "col": col, "p": p, "out": out}


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.int64)


# ==== requantization ======================================================================================

def test_requant_constants():
    c = requant_constants()
    assert c["multiplier_max"] == 32767 and c["multiplier_min"] == 1 and c["shift_max"] == 47
    assert c["x_min"] == -(2 ** 47) and c["x_max"] == 2 ** 47 - 1 and (c["out_min"], c["out_max"]) == (-128, 127)
    assert abs(c["x_min"]) * c["multiplier_max"] + 2 ** (c["shift_max"] - 1) < 2 ** c["product_bits"]
    assert all(type(val) is int for val in c.values())


def test_requantize_per_tensor_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(60):
        m, sh = int(rng.integers(1, 2 ** 15)), int(rng.integers(0, 48))
        mag = int(rng.integers(1, 48))
        x = [int(v) for v in rng.integers(-(2 ** mag), 2 ** mag, size=40)] + [2 ** 47 - 1, -(2 ** 47), 0]
        got = requantize(t64(x), m, sh)
        assert got.dtype == torch.int8
        assert got.tolist() == [ref_requant(xi, m, sh) for xi in x]


def test_requantize_per_channel_matches_reference():
    rng = np.random.default_rng(1)
    c = 7
    m = rng.integers(1, 2 ** 15, size=c)
    sh = rng.integers(0, 48, size=c)
    sh[0], m[1] = 0, 1
    x = rng.integers(-(2 ** 40), 2 ** 40, size=(5, 3, c))
    x[0, 0] = 2 ** 47 - 1
    x[0, 1] = -(2 ** 47)
    x[1] >>= 20
    got = requantize(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(sh))
    want = [[[ref_requant(int(x[a, b, ch]), int(m[ch]), int(sh[ch])) for ch in range(c)] for b in range(3)]
            for a in range(5)]
    assert got.dtype == torch.int8 and got.tolist() == want
    # mixing a per-tensor multiplier with a per-channel shift
    got = requantize(torch.from_numpy(x), 3, torch.from_numpy(sh))
    assert got.tolist() == [[[ref_requant(int(x[a, b, ch]), 3, int(sh[ch])) for ch in range(c)] for b in range(3)]
                            for a in range(5)]


def test_requantize_rounds_exact_halves_up_both_signs():
    # m = 1, shift = 1: x / 2 with halves toward +inf
    x = t64([5, -5, 3, -3, 1, -1, 4, -4])
    assert requantize(x, 1, 1).tolist() == [3, -2, 2, -1, 1, 0, 2, -2]
    # m = 3, shift = 3: 3x / 8; x = 4 -> 1.5 -> 2, x = -4 -> -1.5 -> -1, x = 12 -> 4.5 -> 5, x = -12 -> -4
    assert requantize(t64([4, -4, 12, -12, 5, -5]), 3, 3).tolist() == [2, -1, 5, -4, 2, -2]
    # just below / above a half
    assert requantize(t64([2 ** 46 - 1, 2 ** 46, -(2 ** 46), -(2 ** 46) - 1]), 1, 47).tolist() == [0, 1, 0, -1]
    # shift 0 adds nothing: the identity, then saturation
    assert requantize(t64([0, 7, -7, 127, -128]), 1, 0).tolist() == [0, 7, -7, 127, -128]


def test_requantize_saturates_both_sides():
    x = t64([127, 128, 10 ** 6, 2 ** 47 - 1, -128, -129, -(10 ** 6), -(2 ** 47)])
    assert requantize(x, 1, 0).tolist() == [127, 127, 127, 127, -128, -128, -128, -128]
    assert requantize(x, 32767, 0).tolist() == [127, 127, 127, 127, -128, -128, -128, -128]
    # 127.5 rounds up to 128 -> 127; -128.5 rounds up to -128 (kept); -128.5 - 2^-1 = -129 -> -128
    assert requantize(t64([255, 256, -257, -258, -259]), 1, 1).tolist() == [127, 127, -128, -128, -128]


def test_requantize_argument_errors():
    x = t64([[1, 2, 3]])
    allowed_m = "an int in 1..32767, or a 1-D torch.int64 tensor of such ints with one entry per channel"
    allowed_s = "an int in 0..47, or a 1-D torch.int64 tensor of such ints with one entry per channel"
    cases = [
        ((x, 0, 1), f"multiplier: 0 is not allowed (allowed: {allowed_m})"),
        ((x, 32768, 1), f"multiplier: 32768 is not allowed (allowed: {allowed_m})"),
        ((x, 1.5, 1), f"multiplier: 1.5 is not allowed (allowed: {allowed_m})"),
        ((x, True, 1), f"multiplier: True is not allowed (allowed: {allowed_m})"),
        ((x, 1, -1), f"shift: -1 is not allowed (allowed: {allowed_s})"),
        ((x, 1, 48), f"shift: 48 is not allowed (allowed: {allowed_s})"),
        ((x, t64([1, 0, 2]), 1), f"multiplier[1]: 0 is not allowed (allowed: {allowed_m})"),
        ((x, 1, t64([0, 1, 48])), f"shift[2]: 48 is not allowed (allowed: {allowed_s})"),
        ((x, t64([1, 2]), 1), f"multiplier: a torch.int64 tensor of shape (2,) is not allowed (allowed: "
                              f"{allowed_m}; x has 3 channels in its last dim)"),
        ((x, torch.tensor([1, 2, 3], dtype=torch.int32), 1),
         f"multiplier: a torch.int32 tensor of shape (3,) is not allowed (allowed: {allowed_m}; x has 3 channels "
         "in its last dim)"),
        ((t64([2 ** 47]), 1, 0), "x: 140737488355328 is not allowed (allowed: the signed 48-bit range "
                                 "-140737488355328..140737488355327)"),
        ((t64([5, -(2 ** 47) - 1]), 1, 0), "x: -140737488355329 is not allowed (allowed: the signed 48-bit range "
                                           "-140737488355328..140737488355327)"),
    ]
    for args, msg in cases:
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            requantize(*args)
    with pytest.raises(TypeError, match=re.escape("x: torch.int32 is not allowed (allowed: a torch.int64 tensor)")):
        requantize(torch.tensor([1], dtype=torch.int32), 1, 0)


def test_requant_params_round_trip():
    rng = np.random.default_rng(2)
    scales = [1.0, 0.5, 2.0 ** -20, 1 / 3, 0.1, 1e-3, 123.456, 32767.0, 3e-14] + list(10 ** rng.uniform(-13, 4, 200))
    x = rng.integers(-(2 ** 20), 2 ** 20, size=200)
    for scale in scales:
        m, sh = requant_params(float(scale))
        assert type(m) is int and type(sh) is int and 1 <= m < 2 ** 15 and 0 <= sh <= 47
        assert abs(m / 2 ** sh - scale) <= 2.0 ** -(sh + 1)
        if sh < 47:  # largest shift: one more would overflow the multiplier
            assert math.floor(scale * 2 ** (sh + 1) + 0.5) >= 2 ** 15 and m >= 2 ** 14
        xs = x[np.abs(x * scale) < 120]
        got = requantize(torch.from_numpy(xs), m, sh).numpy().astype(np.int64)
        assert np.all(np.abs(got - xs * scale) <= 0.5 + np.abs(xs) * 2.0 ** -(sh + 1) + 1e-9)
    assert requant_params(1.0) == (2 ** 14, 14)
    assert requant_params(32767.4) == (32767, 0)
    assert requant_params(2.0 ** -48) == (1, 47)
    assert requant_params(2.0 ** -47 * 1.5) == (2, 47)  # exact half rounds up, like the requantizer
    assert requant_params(2.0 ** -47 * 2.5) == (3, 47)


def test_requant_params_errors():
    allowed = "a finite number with 2**-48 <= real_scale < 32767.5"
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="^" + re.escape(f"real_scale: {bad!r} is not allowed (allowed: "
                                                             f"{allowed})") + "$"):
            requant_params(bad)
    with pytest.raises(ValueError, match=re.escape("too small")):
        requant_params(2.0 ** -49)
    with pytest.raises(ValueError, match=re.escape("too small")):
        requant_params(1e-20)
    with pytest.raises(ValueError, match=re.escape(f"real_scale: 32767.5 is not allowed (allowed: {allowed}; too "
                                                   "large")):
        requant_params(32767.5)


# ==== top-k ===============================================================================================

def test_topk_row_matches_streaming_reference_with_ties_and_masks():
    rng = np.random.default_rng(3)
    for trial in range(600):
        n = int(rng.integers(0, 40))
        spread = int(rng.choice([1, 2, 3, 5, 1000]))  # tiny spreads: lots of ties
        row = [int(v) for v in rng.integers(-spread, spread + 1, size=n)]
        if trial % 7 == 0 and n:
            row[int(rng.integers(n))] = I32_MIN
        valid = None if trial % 3 == 0 else [bool(b) for b in rng.random(n) < rng.random()]
        k = int(rng.integers(1, n + 4))
        vals, idx = topk_row(t64(row), k, None if valid is None else torch.tensor(valid, dtype=torch.bool))
        want = ref_topk(row, k, valid)
        assert vals.dtype == idx.dtype == torch.int64
        assert list(zip(vals.tolist(), idx.tolist(), strict=True)) == want


def test_topk_rows_equals_topk_row_and_pads():
    rng = np.random.default_rng(4)
    for trial in range(30):
        m, n = int(rng.integers(0, 9)), int(rng.integers(0, 20))
        scores = torch.from_numpy(rng.integers(-2, 3, size=(m, n)))
        valid = None if trial % 4 == 0 else torch.from_numpy(rng.random((m, n)) < 0.6)
        if valid is not None and m:
            valid[0] = False  # an all-masked row
        k = int(rng.integers(1, n + 5))
        vals, idx, count = topk_rows(scores, k, valid)
        assert vals.shape == idx.shape == (m, k) and count.shape == (m,)
        for i in range(m):
            v1, i1 = topk_row(scores[i], k, None if valid is None else valid[i])
            c = int(count[i])
            assert c == len(v1) and torch.equal(vals[i, :c], v1) and torch.equal(idx[i, :c], i1)
            assert (vals[i, c:] == 0).all() and (idx[i, c:] == -1).all()


def test_topk_edge_cases_and_errors():
    v, i = topk_row(t64([4, 4, 4]), 2, torch.tensor([False, False, False]))
    assert v.numel() == 0 and i.numel() == 0
    v, i = topk_row(t64([1, 9, 9, 1]), 10)
    assert v.tolist() == [9, 9, 1, 1] and i.tolist() == [1, 2, 0, 3]
    for bad in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match=re.escape(f"k: {bad!r} is not allowed (allowed: an int >= 1)")):
            topk_row(t64([1]), bad)
    with pytest.raises(ValueError, match="valid"):
        topk_row(t64([1, 2]), 1, torch.tensor([True]))
    with pytest.raises(ValueError, match="scores"):
        topk_row(torch.tensor([1, 2], dtype=torch.int32), 1)


# ==== integer softmax =====================================================================================

def test_softmax_constants():
    want = {0: (1, 1, 0), 1: (1, 2, 3), 4: (11, 21, 245), 8: (177, 346, 62885), 10: (710, 1385, 1006164),
            12: (2839, 5541, 16098639)}
    for f in range(13):
        c = softmax_constants(f)
        assert all(type(val) is int for val in c.values())
        assert (c["q_ln2"], c["q_b"], c["q_c"]) == (round(math.log(2) * 2 ** f), math.floor(1.353 * 2 ** f),
                                                    math.floor((0.344 / 0.3585) * 2 ** (2 * f)))
        if f in want:
            assert (c["q_ln2"], c["q_b"], c["q_c"]) == want[f]
        assert (c["z_max"], c["recip_bits"], c["p_bits"], c["p_max"]) == (30, 32, 7, 127)
        assert c["l_max"] == c["q_b"] ** 2 + c["q_c"] and c["l_max"] < 2 ** 26
    for bad in (-1, 13, 4.0, True):
        with pytest.raises(ValueError, match=re.escape(f"frac_bits: {bad!r} is not allowed (allowed: an int in "
                                                       "0..12)")):
            softmax_constants(bad)


def test_softmax_widths_table():
    w12 = softmax_widths(12)
    assert (w12["neg_q"], w12["z"], w12["neg_p"], w12["p_plus_b"], w12["square"], w12["L"], w12["total"], w12["r"],
            w12["prod"], w12["P"]) == (32, 5, 12, 13, 25, 26, 34, 7, 32, 7)
    w0 = softmax_widths(0)
    assert (w0["L"], w0["total"], w0["r"], w0["prod"]) == (1, 9, 33, 33)
    assert softmax_widths(8, max_k=1)["total"] == softmax_widths(8)["L"]


def random_rows(rng, f, n_rows, max_k=64, spread=None):
    for _ in range(n_rows):
        k = int(rng.integers(1, max_k + 1))
        sd = spread if spread is not None else float(rng.choice([0.3, 1.0, 3.0, 10.0, 1e4]))
        yield [int(v) for v in np.clip(np.round(rng.normal(0, sd, k) * 2 ** f), I32_MIN, I32_MAX)]


@pytest.mark.parametrize("f", range(13))
def test_int_softmax_equals_pure_int_reference(f):
    rng = np.random.default_rng(10 + f)
    rows = list(random_rows(rng, f, 60)) + [[0], [I32_MIN], [I32_MAX, I32_MIN], [I32_MIN, I32_MAX, I32_MAX],
                                             [5] * 7, [0, -1, -2, -3] * 5]
    for row in rows:
        got = int_softmax(t64(row), f)
        assert got.dtype == torch.int64 and got.shape == (len(row),)
        assert got.tolist() == ref_softmax(row, f)


def test_int_softmax_dead_entries_and_stages():
    f = 6
    c = softmax_constants(f)
    q_ln2 = c["q_ln2"]
    row = t64([0, -31 * q_ln2, -31 * q_ln2 - 5, -30 * q_ln2 - (q_ln2 - 1), -30 * q_ln2, -q_ln2]) + 100
    st = int_softmax_stages(row, f)
    assert int(st["m"]) == 100 and st["q"].tolist() == (row - 100).tolist()
    assert st["dead"].tolist() == [False, True, True, False, False, False]
    assert st["z"].tolist() == [0, 30, 30, 30, 30, 1]
    assert st["p"].tolist() == [0, 0, -5, -(q_ln2 - 1), 0, 0]
    assert st["e"][1] == 0 and st["e"][2] == 0 and int(st["e"][0]) == c["l_max"]
    assert int(st["total"]) == int(st["e"].sum()) and int(st["r"]) == 2 ** 32 // int(st["total"])
    assert st["P"].tolist() == ref_softmax(row.tolist(), f)


@pytest.mark.parametrize("f", range(13))
def test_e_is_monotone_in_the_score(f):
    """e(q) never increases as q decreases, across every z boundary, until it reaches 0 for good."""
    c = softmax_constants(f)
    row = -torch.arange(0, 33 * c["q_ln2"], dtype=torch.int64)
    e = int_softmax_stages(row, f)["e"]
    assert (e[1:] <= e[:-1]).all() and e[-1] == 0 and int(e[0]) == c["l_max"]


@pytest.mark.parametrize("f", range(4, 11))
@pytest.mark.parametrize("spread", [0.5, 1.0, 2.0, 4.0])
def test_int_softmax_close_to_float(f, spread):
    """Within 0.05 of float softmax for f in 4..10 (measured worst: 0.031 at f = 4, < 0.015 for f >= 5).

    (f <= 2 is not usable as a softmax: q_ln2 = 1 makes f = 0 a 0/1 indicator of the maximum.)
    """
    rng = np.random.default_rng(20 + f + int(10 * spread))
    c = softmax_constants(f)
    worst = 0.0
    for row in random_rows(rng, f, 40, spread=spread):
        p = int_softmax(t64(row), f).numpy()
        x = np.array(row, dtype=np.float64) / 2 ** f
        sm = np.exp(x - x.max())
        sm /= sm.sum()
        worst = max(worst, float(np.abs(p / 127 - sm).max()))
        # the exact bound against the integer exponentials
        st = int_softmax_stages(t64(row), f)
        exact = st["e"].numpy() / int(st["total"])
        assert np.all(np.abs(p / 128 - exact) <= c["l_max"] / 2 ** 32 + 1 / 128 + 1e-12)
    assert worst < 0.05


@pytest.mark.parametrize("f", range(13))
def test_int_softmax_properties(f):
    rng = np.random.default_rng(30 + f)
    for row in random_rows(rng, f, 40, max_k=256):
        st = int_softmax_stages(t64(row), f)
        p = st["P"]
        n_pos = int((st["e"] > 0).sum())
        total = int(st["total"])
        assert int(p.sum()) <= 128 and int(p.max()) <= 127 and int(p.min()) >= 0
        if total <= 2 ** 32:
            assert (128 - 1 - n_pos - int(p.sum())) * 2 ** 25 < total  # sum(P) > 127 - n - total / 2^25
        s = t64(row)
        order = torch.argsort(s, stable=True)
        assert (p[order][1:] >= p[order][:-1]).all()  # a larger score never gets a smaller P
        assert int(p[int(s.argmax())]) == int(p.max())


def test_int_softmax_extremes():
    # f = 0, two equal maxima: 64 + 64 = 128 (the sum bound is tight); one entry: 128 clamped to 127
    assert int_softmax(t64([3, 3, 0]), 0).tolist() == [64, 64, 0]
    assert int_softmax(t64([7]), 0).tolist() == [127]
    # a single entry at f = 12: l_max * (2^32 // l_max) >> 25 = 126 (r has only 7 bits there)
    assert int_softmax(t64([123]), 12).tolist() == [126]
    assert int_softmax(t64([123]), 10).tolist() == [127]
    # f = 12 with 256 equal scores: total = 256 * l_max > 2^32, so r = 0 and every P is 0 (documented caveat)
    st = int_softmax_stages(t64([0] * 256), 12)
    assert int(st["total"]) > 2 ** 32 and int(st["r"]) == 0 and int(st["P"].sum()) == 0


def test_int_softmax_errors():
    with pytest.raises(ValueError, match=re.escape("scores: 2147483648 is not allowed (allowed: the signed 32-bit "
                                                   "range -2147483648..2147483647)")):
        int_softmax(t64([0, 2 ** 31]), 4)
    with pytest.raises(ValueError, match="empty row"):
        int_softmax(t64([]), 4)
    with pytest.raises(ValueError, match="frac_bits"):
        int_softmax(t64([1]), 13)


def test_int_softmax_rows():
    rng = np.random.default_rng(5)
    s = torch.from_numpy(rng.integers(-500, 500, size=(9, 13)))
    valid = torch.from_numpy(rng.random((9, 13)) < 0.5)
    valid[2] = False
    s[3, ~valid[3]] = 2 ** 40  # out-of-range scores are fine where not valid
    p = int_softmax_rows(s, 6, valid)
    for i in range(9):
        want = torch.zeros(13, dtype=torch.int64)
        if valid[i].any():
            want[valid[i]] = int_softmax(s[i][valid[i]], 6)
        assert torch.equal(p[i], want)
    assert torch.equal(int_softmax_rows(s[:2], 6), torch.stack([int_softmax(s[0], 6), int_softmax(s[1], 6)]))


# ==== top-k attention =====================================================================================

def num(acc_bits: int, mode: str) -> dict:
    return {"acc_bits": acc_bits, "overflow": mode}


def operands(rng, t, s, d, dv):
    return tuple(rng.integers(-128, 128, size=shape, dtype=np.int8) for shape in ((t, d), (s, d), (s, dv)))


def check_attention(q, k, v, topk, f, mask, acc_bits, mode):
    got = topk_attention(num(acc_bits, mode), q, k, v, topk, f, mask=mask)
    m = np.ones((q.shape[0], k.shape[0]), dtype=bool) if mask is None else np.asarray(mask)
    want = ref_attention(q, k, v, topk, f, m.tolist(), acc_bits, mode)
    assert set(got) == {"scores", "rowptr", "col", "p", "out"}
    assert got["scores"].dtype == got["rowptr"].dtype == got["col"].dtype == got["out"].dtype == torch.int64
    assert got["p"].dtype == torch.int8
    for key in want:
        assert got[key].device.type == "cpu"
        assert got[key].tolist() == want[key], key
    return got


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("acc_bits", [16, 32])
def test_attention_matches_loop_reference(mode, acc_bits):
    rng = np.random.default_rng(acc_bits + len(mode))
    for trial in range(6):
        t, s, d, dv = (int(rng.integers(1, hi)) for hi in (9, 12, 9, 6))
        q, k, v = operands(rng, t, s, d, dv)
        if trial == 0:  # heavy score ties
            q[:] = 1
            k = rng.integers(-1, 2, size=(s, d), dtype=np.int8)
        mask = [None, causal_mask(t, s).numpy(), rng.random((t, s)) < 0.5][trial % 3]
        topk = int(rng.choice([1, 2, 3, s, s + 3]))
        check_attention(q, k, v, topk, int(rng.choice([0, 4, 8, 12])), mask, acc_bits, mode)


def test_attention_overflows_in_scores_and_output():
    q = np.full((2, 8), -128, dtype=np.int8)
    k = np.full((3, 8), -128, dtype=np.int8)  # every score 8 * 2^14 = 2^17: outside 16 bits
    v = np.full((3, 2), 127, dtype=np.int8)
    for mode in MODES:
        got = check_attention(q, k, v, 3, 6, None, 16, mode)
        assert got["scores"][0, 0] == (2 ** 15 - 1 if mode == "saturate" else 0)


def test_causal_mask_behaviour():
    rng = np.random.default_rng(7)
    t = s = 6
    q, k, v = operands(rng, t, s, 5, 3)
    got = check_attention(q, k, v, 3, 6, causal_mask(t), 32, "wrap")
    counts = (got["rowptr"][1:] - got["rowptr"][:-1]).tolist()
    assert counts == [min(3, i + 1) for i in range(t)]
    for i in range(t):
        cols = got["col"][got["rowptr"][i]:got["rowptr"][i + 1]]
        assert (cols <= i).all() and (cols[1:] > cols[:-1]).all()  # causal, and ascending within the row
        assert (got["scores"][i, i + 1:] == 0).all()
    # row 0 attends only to key 0 with P = 127
    assert got["p"][0] == 127 and got["out"][0].tolist() == (127 * v[0].astype(np.int64)).tolist()
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


def test_fully_masked_row_and_numpy_torch_agree():
    rng = np.random.default_rng(8)
    q, k, v = operands(rng, 4, 5, 3, 2)
    mask = rng.random((4, 5)) < 0.7
    mask[1] = False
    got = check_attention(q, k, v, 2, 8, mask, 32, "saturate")
    assert got["rowptr"][1] == got["rowptr"][2]
    assert (got["out"][1] == 0).all() and (got["scores"][1] == 0).all()
    got_t = topk_attention(num(32, "saturate"), torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), 2,
                           8, mask=torch.from_numpy(mask))
    for key in got:
        assert torch.equal(got[key], got_t[key])
    none = topk_attention(num(32, "wrap"), q, k, v, 2, 8, mask=np.zeros((4, 5), dtype=bool))
    assert none["rowptr"].tolist() == [0] * 5 and none["col"].numel() == 0 and (none["out"] == 0).all()


def test_attention_errors():
    rng = np.random.default_rng(9)
    q, k, v = operands(rng, 3, 4, 2, 2)
    n = num(32, "wrap")
    with pytest.raises(ValueError, match="k_mat needs 2 columns"):
        topk_attention(n, q, k[:, :1], v, 2, 4)
    with pytest.raises(ValueError, match="v needs 4 rows"):
        topk_attention(n, q, k, v[:3], 2, 4)
    with pytest.raises(ValueError, match=re.escape("topk: 0 is not allowed (allowed: an int >= 1)")):
        topk_attention(n, q, k, v, 0, 4)
    with pytest.raises(ValueError, match="frac_bits"):
        topk_attention(n, q, k, v, 2, 13)
    with pytest.raises(ValueError, match=re.escape("mask: shape (4, 3) is not allowed (allowed: (3, 4) = (T, S))")):
        topk_attention(n, q, k, v, 2, 4, mask=np.ones((4, 3), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        topk_attention(n, q, k, v, 2, 4, mask=np.ones((3, 4), dtype=np.int8))
    with pytest.raises(TypeError, match="q: dtype int16"):
        topk_attention(n, q.astype(np.int16), k, v, 2, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    rng = np.random.default_rng(11)
    q, k, v = operands(rng, 40, 64, 32, 16)
    mask = causal_mask(40, 64)
    for bits, f in ((16, 4), (32, 10)):
        cpu = topk_attention(num(bits, mode), q, k, v, 8, f, mask=mask)
        gpu = topk_attention(num(bits, mode), q, k, v, 8, f, mask=mask, device="cuda")
        for key in cpu:
            assert gpu[key].device.type == "cpu" and torch.equal(cpu[key], gpu[key]), key
    x = torch.from_numpy(rng.integers(-(2 ** 40), 2 ** 40, size=(9, 5)))
    m, sh = torch.from_numpy(rng.integers(1, 2 ** 15, size=5)), torch.from_numpy(rng.integers(0, 48, size=5))
    assert torch.equal(requantize(x, m, sh), requantize(x.cuda(), m.cuda(), sh.cuda()).cpu())
    s = torch.from_numpy(rng.integers(-3, 4, size=(16, 50)))
    valid = torch.from_numpy(rng.random((16, 50)) < 0.7)
    for a, b in zip(topk_rows(s, 9, valid), topk_rows(s.cuda(), 9, valid.cuda()), strict=True):
        assert torch.equal(a, b.cpu())
    assert torch.equal(int_softmax_rows(s * 100, 7, valid), int_softmax_rows((s * 100).cuda(), 7, valid.cuda()).cpu())


def test_module_exports():
    assert attention.accumulate is numerics.accumulate
