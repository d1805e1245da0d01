"""The one definition of the accelerator's integer numerics (pure functions of tensors and two numbers).

The engine multiplies int8 by int8 exactly and adds each product into an ``acc_bits``-bit signed
accumulator in increasing k order, applying the overflow rule after EVERY addition:

    acc = 0
    for k in range(K):
        acc = overflow(acc + a[:, k, None] * b[None, k, :], acc_bits, mode)

``wrap`` is arithmetic mod 2**acc_bits, so the order does not matter and one exact matmul followed by a
single wrap gives the same answer. ``saturate`` clamps after each step, so it is order-dependent: a sum that
leaves the range and comes back differs from clamp-at-end. :func:`accumulate` computes exactly the loop above,
using one matmul wherever no partial sum can leave the range.

Everything here is int64; callers upcast int8 first (torch ``int8 @ int8`` wraps mod 256).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

import torch

from hwgen.spec.softmax import (
    SOFTMAX_SCORE_BITS,
    check_frac_bits,
    check_k,
    round_half_up,
    softmax_constants,
)

Mode = Literal["wrap", "saturate"]
MODES = ("wrap", "saturate")
FLOAT64_EXACT = 1 << 53  # integers below this in magnitude are exact in float64 (and so are their sums)


def _check(acc_bits: int, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"overflow: {mode!r} is not allowed (allowed: {', '.join(MODES)})")
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, int) or not 2 <= acc_bits <= 64:
        raise ValueError(f"acc_bits: {acc_bits!r} is not allowed (allowed: an int in 2..64)")


def acc_range(acc_bits: int) -> tuple[int, int]:
    """(min, max) of an ``acc_bits``-bit two's-complement accumulator."""
    return -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1


def overflow(x: torch.Tensor, acc_bits: int, mode: Mode) -> torch.Tensor:
    """Apply the accumulator's overflow rule to int64 ``x``.

    wrap: two's-complement wrap to ``acc_bits`` signed bits; saturate: clamp to [-(2^(acc_bits-1)),
    2^(acc_bits-1) - 1]. With ``acc_bits == 64`` both are the identity on int64.
    """
    _check(acc_bits, mode)
    if x.dtype != torch.int64:
        raise TypeError(f"overflow: dtype {x.dtype} is not allowed (allowed: torch.int64)")
    if acc_bits == 64:
        return x
    lo, hi = acc_range(acc_bits)
    if mode == "saturate":
        return x.clamp(lo, hi)
    low = x & ((1 << acc_bits) - 1)  # low acc_bits bits, as a non-negative number (no int64 overflow)
    return torch.where(low > hi, low - (1 << acc_bits), low)


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """Where the golden model runs.

    None or "cpu" -> cpu; "auto" -> cuda when available, else cpu; "cuda" (or "cuda:N") -> that GPU, and a
    clear error when CUDA is not available (an explicit request never silently falls back).
    """
    if requested is None:
        return torch.device("cpu")
    if isinstance(requested, torch.device):
        requested = str(requested)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {requested!r} is not allowed (allowed: cpu, cuda, cuda:N, auto)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {requested!r} was requested but CUDA is not available "
                           "(use 'cpu', or 'auto' to fall back to the CPU)")
    return dev


def exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int64 ``a @ b`` (wraps mod 2^64 on CPU like any int64 arithmetic).

    CPU: int64 matmul. CUDA has no int64 matmul: float64, which is exact while every partial sum stays
    below 2^53 in magnitude (always true for int8 operands with K < 2^16: |sum| <= 2^14 * 2^16 = 2^30).
    """
    if a.device.type != "cuda":
        return a @ b
    bound = _row_bounds(a, b).max().item() if a.numel() and b.numel() else 0
    assert bound < FLOAT64_EXACT, f"float64 matmul would be inexact: partial sums up to {bound} >= 2^53"
    return (a.double() @ b.double()).round().long()


def _row_bounds(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row i: sum_k |a_ik| * max|b|, an upper bound on |any partial sum| of row i of C."""
    bmax = b.abs().max() if b.numel() else torch.zeros((), dtype=torch.int64, device=b.device)
    return a.abs().sum(dim=1) * bmax


def accumulate(a: torch.Tensor, b: torch.Tensor, acc_bits: int, mode: Mode,
               init: torch.Tensor | None = None) -> torch.Tensor:
    """C = A @ B as the engine computes it: int64 (M, K) x int64 (K, N) -> int64 (M, N) on a's device.

    Exactly ``acc = init; for k: acc = overflow(acc + a[:, k, None] * b[None, k, :])``, with ``init`` an int64
    (M, N) of in-range values (default 0; a task with the descriptor's ``accumulate`` bit starts from the output
    buffer's lines). The first product is added to ``init`` and the rest follow in k order, so
    accumulate(A[:, k1:], B[k1:], init=accumulate(A[:, :k1], B[:k1])) == accumulate(A, B) in both modes: a
    K-split loses nothing (adding partial sums at the end would, under saturate).
    wrap: one exact matmul then the rule. saturate: rows whose bound (max |init| + sum_k |a_ik| * max|b|) fits
    the range cannot clamp, so they take one matmul; only the other rows run the k loop (vectorised over their
    (rows, N)).
    """
    _check(acc_bits, mode)
    if a.dtype != torch.int64 or b.dtype != torch.int64:
        raise TypeError(f"accumulate: dtypes {a.dtype}, {b.dtype} are not allowed (allowed: torch.int64; "
                        "upcast int8 first, since torch int8 @ int8 wraps mod 256)")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"accumulate: shapes {tuple(a.shape)} @ {tuple(b.shape)} do not match "
                         "(allowed: (M, K) @ (K, N))")
    lo, hi = acc_range(acc_bits)
    if init is None:
        init = torch.zeros((a.shape[0], b.shape[1]), dtype=torch.int64, device=a.device)
    else:
        init = torch.as_tensor(init).to(a.device)
        if init.dtype != torch.int64 or tuple(init.shape) != (a.shape[0], b.shape[1]):
            raise ValueError(f"accumulate: init {init.dtype} {tuple(init.shape)} is not allowed (allowed: "
                             f"torch.int64 of shape {(a.shape[0], b.shape[1])})")
        if init.numel() and (int(init.min()) < lo or int(init.max()) > hi):
            raise ValueError(f"accumulate: init holds values outside int{acc_bits} (allowed: {lo}..{hi}, what "
                             "an accumulator can hold)")
    if mode == "wrap":
        return overflow(init + exact_matmul(a, b), acc_bits, mode)
    # |partial sum| <= max|init| + bound <= hi < -lo: no clamp can happen in a safe row
    start = init.abs().amax(dim=1) if init.shape[1] else torch.zeros(a.shape[0], dtype=torch.int64, device=a.device)
    risky = start + _row_bounds(a, b) > hi
    out = torch.empty((a.shape[0], b.shape[1]), dtype=torch.int64, device=a.device)
    if not bool(risky.all()):
        out[~risky] = init[~risky] + exact_matmul(a[~risky], b)
    if bool(risky.any()):
        ar = a[risky]
        acc = init[risky].clone()
        for k in ar.any(dim=0).nonzero().flatten().tolist():  # adding 0 to an in-range acc changes nothing
            acc = (acc + ar[:, k, None] * b[None, k, :]).clamp_(lo, hi)
        out[risky] = acc
    return out


# ==== requantization ========================================================================================
#
# int64 accumulator -> int8 activation: y = clamp((x * multiplier + round) >> shift, -128, 127), with
# round = 2^(shift-1) (0 when shift == 0) and ">>" an arithmetic (floor) shift, i.e. round half toward +inf.

REQ_MULTIPLIER_BITS = 15  # 1 <= multiplier < 2^15 (an unsigned 15-bit field)
REQ_SHIFT_MAX = 47        # 0 <= shift <= 47 (a 6-bit field)
REQ_X_BITS = 48           # x in the signed 48-bit range [-2^47, 2^47 - 1]
INT8_MIN, INT8_MAX = -128, 127


def requant_constants() -> dict[str, int]:
    """The requantizer's limits as plain ints (read by the RTL generator; the single source of truth).

    ``x_bits``: x is a signed ``x_bits``-bit integer; ``product_bits``: |x * multiplier| < 2^62, so the
    product plus the rounding term (< 2^46) fits a signed 63-bit (and so int64) datapath.
    """
    return {
        "multiplier_min": 1,
        "multiplier_max": (1 << REQ_MULTIPLIER_BITS) - 1,
        "multiplier_bits": REQ_MULTIPLIER_BITS,
        "shift_min": 0,
        "shift_max": REQ_SHIFT_MAX,
        "shift_bits": REQ_SHIFT_MAX.bit_length(),
        "x_bits": REQ_X_BITS,
        "x_min": -(1 << (REQ_X_BITS - 1)),
        "x_max": (1 << (REQ_X_BITS - 1)) - 1,
        "product_bits": 63,
        "out_min": INT8_MIN,
        "out_max": INT8_MAX,
    }


def _requant_arg(name: str, value, lo: int, hi: int, channels: int | None, device: torch.device):
    """Check ``multiplier`` / ``shift``: a Python int in lo..hi, or a 1-D int64 tensor of length ``channels``."""
    allowed = f"an int in {lo}..{hi}, or a 1-D torch.int64 tensor of such ints with one entry per channel"
    if isinstance(value, int) and not isinstance(value, bool):
        if not lo <= value <= hi:
            raise ValueError(f"{name}: {value!r} is not allowed (allowed: {allowed})")
        return value
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: {value!r} is not allowed (allowed: {allowed})")
    if value.dtype != torch.int64 or value.ndim != 1 or channels is None or value.shape[0] != channels:
        raise ValueError(f"{name}: a {value.dtype} tensor of shape {tuple(value.shape)} is not allowed (allowed: "
                         f"{allowed}; x has {channels} channels in its last dim)")
    bad = (value < lo) | (value > hi)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name}[{i}]: {int(value[i])} is not allowed (allowed: {allowed})")
    return value.to(device)


def requantize(x: torch.Tensor, multiplier, shift) -> torch.Tensor:
    """int64 ``x`` (any shape, last dim = channels) -> torch.int8, the requantizer bit for bit.

    ``multiplier`` / ``shift``: a Python int (per-tensor) or a 1-D int64 tensor of length ``x.shape[-1]``
    (per-channel), with 1 <= multiplier <= 2^15 - 1 and 0 <= shift <= 47. ``x`` must lie in the signed 48-bit
    range [-2^47, 2^47 - 1]. Steps, per element (all exact in int64):

    1. prod = x * multiplier                      |prod| <= 2^47 * (2^15 - 1) < 2^62
    2. rnd  = 2^(shift - 1) if shift > 0 else 0   rnd <= 2^46, so prod + rnd < 2^63: no int64 overflow
    3. y    = (prod + rnd) >> shift               arithmetic shift = floor division by 2^shift, so this is
                                                  round(prod / 2^shift) with exact halves rounded UP (toward
                                                  +inf): 2.5 -> 3, -2.5 -> -2
    4. out  = clamp(y, -128, 127) as int8         saturation

    Errors: TypeError for a non-int64 ``x``; ValueError naming the argument, the offending value and the
    allowed range for a multiplier, shift or x out of range (or a per-channel tensor of the wrong shape).
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int64:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x: {got} is not allowed (allowed: a torch.int64 tensor)")
    channels = x.shape[-1] if x.ndim else None
    multiplier = _requant_arg("multiplier", multiplier, 1, (1 << REQ_MULTIPLIER_BITS) - 1, channels, x.device)
    shift = _requant_arg("shift", shift, 0, REQ_SHIFT_MAX, channels, x.device)
    lo, hi = -(1 << (REQ_X_BITS - 1)), (1 << (REQ_X_BITS - 1)) - 1
    bad = (x < lo) | (x > hi)
    if bool(bad.any()):
        raise ValueError(f"x: {int(x[bad][0])} is not allowed (allowed: the signed {REQ_X_BITS}-bit range "
                         f"{lo}..{hi})")
    if isinstance(shift, int):
        rnd = (1 << (shift - 1)) if shift > 0 else 0
    else:
        rnd = torch.where(shift > 0, torch.ones_like(shift) << (shift - 1).clamp(min=0), 0)
    y = (x * multiplier + rnd) >> shift
    return y.clamp(INT8_MIN, INT8_MAX).to(torch.int8)


def requant_params(real_scale: float) -> tuple[int, int]:
    """(multiplier, shift) with multiplier / 2^shift ~= ``real_scale``, for :func:`requantize`.

    The pair with the LARGEST shift <= 47 whose multiplier = round(real_scale * 2^shift) is < 2^15, where
    round is half up (the same rule as the requantizer) computed exactly on the float's rational value.
    So |multiplier / 2^shift - real_scale| <= 2^-(shift + 1), and multiplier >= 2^14 whenever shift < 47.

    ValueError for real_scale <= 0 or non-finite, < 2^-48 (multiplier would be 0 even at shift 47) or
    >= 32767.5 (multiplier would be >= 2^15 even at shift 0).
    """
    allowed = "a finite number with 2**-48 <= real_scale < 32767.5"
    if isinstance(real_scale, bool) or not isinstance(real_scale, (int, float)) or not math.isfinite(real_scale):
        raise ValueError(f"real_scale: {real_scale!r} is not allowed (allowed: {allowed})")
    if real_scale <= 0:
        raise ValueError(f"real_scale: {real_scale!r} is not allowed (allowed: {allowed})")
    exact = Fraction(real_scale)
    for shift in range(REQ_SHIFT_MAX, -1, -1):
        m = round_half_up(exact * (1 << shift))
        if m < (1 << REQ_MULTIPLIER_BITS):
            if m < 1:
                raise ValueError(f"real_scale: {real_scale!r} is not allowed (allowed: {allowed}; too small: "
                                 "the multiplier would be 0 even at shift 47)")
            return m, shift
    raise ValueError(f"real_scale: {real_scale!r} is not allowed (allowed: {allowed}; too large: the multiplier "
                     "would be >= 2**15 even at shift 0)")


# ==== streaming top-k ======================================================================================
#
# The hardware unit scans a row in index order, keeping a list of at most k (value, index) entries sorted by
# value descending then index ascending. A new entry goes in only if the list has < k entries or its value is
# STRICTLY greater than the smallest kept value (which is then dropped). Since every newcomer has a larger
# index than everything kept, this keeps exactly the k greatest entries under the total order
# "value descending, then index ascending": among equal values the EARLIER index wins. The functions below
# compute that set with one stable sort (tests check them against the literal streaming loop).


def topk_row(scores: torch.Tensor, k: int, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest valid entries of a 1-D int64 row, as the streaming unit keeps them.

    ``valid``: optional 1-D bool of the same length (False = not a candidate). Returns (values, indices),
    both int64 of length k' = min(k, number of valid entries), ordered by value descending then index
    ascending; ties are broken by the LOWER index. Steps: take the valid indices in ascending order, then a
    stable descending sort of their values (stable keeps equal values in ascending index order), keep k'.
    """
    check_k(k)
    if not isinstance(scores, torch.Tensor) or scores.dtype != torch.int64 or scores.ndim != 1:
        raise ValueError("scores: expected a 1-D torch.int64 tensor")
    if valid is None:
        idx = torch.arange(scores.shape[0], device=scores.device)
    else:
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != scores.shape:
            raise ValueError(f"valid: expected a 1-D torch.bool tensor of shape {tuple(scores.shape)}")
        idx = valid.to(scores.device).nonzero().flatten()
    vals = scores[idx]
    order = torch.sort(vals, descending=True, stable=True).indices[:k]
    return vals[order], idx[order]


def topk_rows(scores: torch.Tensor, k: int, valid: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`topk_row` on every row of an (M, N) int64 matrix, as padded tensors.

    Returns (values (M, k) int64, indices (M, k) int64, count (M,) int64): row i's first count[i] = min(k,
    valid entries of row i) columns are exactly ``topk_row(scores[i], k, valid[i])``; the remaining columns
    are padding with value 0 and index -1. Steps: stable descending sort of each row by value, then a stable
    sort of that order by validity (valid first), which keeps (value desc, index asc) among the valid ones.
    """
    check_k(k)
    if not isinstance(scores, torch.Tensor) or scores.dtype != torch.int64 or scores.ndim != 2:
        raise ValueError("scores: expected a 2-D torch.int64 tensor")
    m, n = scores.shape
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    if valid is None:
        count = torch.full((m,), min(k, n), dtype=torch.int64, device=scores.device)
    else:
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != scores.shape:
            raise ValueError(f"valid: expected a 2-D torch.bool tensor of shape {tuple(scores.shape)}")
        valid = valid.to(scores.device)
        by_valid = torch.sort(valid.gather(1, order).to(torch.uint8), dim=1, descending=True, stable=True).indices
        order = order.gather(1, by_valid)
        count = valid.sum(dim=1).clamp(max=k)
    width = min(k, n)
    order = order[:, :width]
    keep = torch.arange(width, device=scores.device)[None, :] < count[:, None]
    values = torch.zeros((m, k), dtype=torch.int64, device=scores.device)
    indices = torch.full((m, k), -1, dtype=torch.int64, device=scores.device)
    values[:, :width] = torch.where(keep, scores.gather(1, order), 0)
    indices[:, :width] = torch.where(keep, order, -1)
    return values, indices, count


# ==== integer softmax (I-BERT style; constants and widths: hwgen/spec/softmax.py) =========================

def _softmax_core(s: torch.Tensor, live: torch.Tensor, frac_bits: int) -> dict[str, torch.Tensor]:
    """Every stage of the integer softmax on each row of int64 ``s`` (M, K), over the entries where ``live``.

    Entries that are not live get 0 in every per-entry stage; rows with no live entry get m = total = r = 0
    and P = 0. Score range is checked by the callers.
    """
    c = softmax_constants(frac_bits)
    q_ln2, q_b, q_c, z_max = c["q_ln2"], c["q_b"], c["q_c"], c["z_max"]
    recip_bits, p_bits, p_max = c["recip_bits"], c["p_bits"], c["p_max"]
    any_live = live.any(dim=1)
    m = torch.where(live, s, torch.iinfo(torch.int64).min).amax(dim=1) if s.shape[1] else \
        torch.zeros(s.shape[0], dtype=torch.int64, device=s.device)
    m = torch.where(any_live, m, 0)
    neg_q = torch.where(live, m[:, None] - s, 0)                       # 1. -q = m - s >= 0
    z_raw = torch.div(neg_q, q_ln2, rounding_mode="floor")             # 2. floor(-q / q_ln2) ...
    dead = live & (z_raw > z_max)
    z = z_raw.clamp(max=z_max)                                         #    ... clamped to z_max
    p = -(neg_q - z_raw * q_ln2)                                       # 3. p = -((-q) mod q_ln2) in (-q_ln2, 0]
    big = (p + q_b) * (p + q_b) + q_c                                  # 4. L
    e = torch.where(live & ~dead, big >> z, 0)                         # 5. e = L >> z, 0 when dead
    total = e.sum(dim=1)                                               # 6.
    r = torch.where(total > 0, torch.div(torch.full_like(total, 1 << recip_bits), total.clamp(min=1),
                                         rounding_mode="floor"), 0)    # 7.
    prod = e * r[:, None]
    big_p = (prod >> (recip_bits - p_bits)).clamp(max=p_max)           # 8.
    # cheap width checks (see int_softmax_stages)
    assert bool(((p <= 0) & (p > -q_ln2)).all()) and bool((big <= c["l_max"]).all())
    assert bool((prod <= (1 << recip_bits)).all())
    return {"m": m, "q": -neg_q, "z": torch.where(live, z, 0), "dead": dead, "p": torch.where(live, p, 0),
            "L": torch.where(live, big, 0), "e": e, "total": total, "r": r, "P": torch.where(live, big_p, 0)}


def _check_scores(name: str, s: torch.Tensor, ndim: int, live: torch.Tensor | None = None) -> None:
    if not isinstance(s, torch.Tensor) or s.dtype != torch.int64 or s.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D torch.int64 tensor")
    lo, hi = -(1 << (SOFTMAX_SCORE_BITS - 1)), (1 << (SOFTMAX_SCORE_BITS - 1)) - 1
    bad = (s < lo) | (s > hi)
    if live is not None:
        bad &= live
    if bool(bad.any()):
        raise ValueError(f"{name}: {int(s[bad][0])} is not allowed (allowed: the signed {SOFTMAX_SCORE_BITS}-bit "
                         f"range {lo}..{hi})")


def int_softmax_stages(scores: torch.Tensor, frac_bits: int) -> dict[str, torch.Tensor]:
    """Every intermediate of :func:`int_softmax` on one row, for checking an executor stage by stage.

    Input: 1-D int64 ``scores`` s_1..s_k (k >= 1) in the signed 32-bit range, real value s / 2^frac_bits,
    0 <= frac_bits <= 12. Constants from :func:`softmax_constants`. Returned keys (per entry unless noted):

    1. "m" (0-d): m = max(s).  "q": q_i = s_i - m <= 0.
    2. "z": z_i = min(floor(-q_i / q_ln2), z_max), a non-negative integer division; "dead": the unclamped
       quotient is > z_max.
    3. "p": p_i = q_i + floor(-q_i / q_ln2) * q_ln2 = -((-q_i) mod q_ln2), in (-q_ln2, 0]. For every entry
       that is not dead this is q_i + z_i * q_ln2; for dead entries the clamped form would be far below
       -q_ln2 (and L huge), so the remainder form is used; their e is 0 either way, so P is unchanged.
    4. "L": L_i = (p_i + q_b)^2 + q_c, with 0 < p_i + q_b <= q_b, so L_i <= l_max = q_b^2 + q_c.
    5. "e": e_i = L_i >> z_i, and 0 when dead. (For frac_bits <= 12, L < 2^26, so e = 0 already for z >= 26.)
    6. "total" (0-d): sum(e_i) >= l_max > 0, since the maximum has q = z = p = 0 and e = l_max.
    7. "r" (0-d): floor(2^recip_bits / total).
    8. "P": min(2^p_bits - 1, (e_i * r) >> (recip_bits - p_bits)), int64 in [0, 127].

    Bit widths (:func:`softmax_widths`; unsigned unless signed; f = frac_bits, k <= 256):

    ============  ==================================  ======  ======  ======  ======  ======
    value         range                               f=0     f=4     f=8     f=10    f=12
    ============  ==================================  ======  ======  ======  ======  ======
    s, m          [-2^31, 2^31 - 1]                   32 s    32 s    32 s    32 s    32 s
    -q = m - s    [0, 2^32 - 1]                       32      32      32      32      32
    z             [0, 30] (+ 1-bit dead flag)         5       5       5       5       5
    -p            [0, q_ln2 - 1]                      1       4       8       10      12
    p + q_b       [q_b - q_ln2 + 1, q_b]              1       5       9       11      13
    (p + q_b)^2   <= q_b^2                            1       9       17      21      25
    L, e          <= l_max = q_b^2 + q_c              1       10      18      22      26
    total         [l_max, k * l_max]                  9       18      26      30      34
    r             [0, 2^32 // l_max]                  33      23      15      11      7
    e * r         <= total * r <= 2^32                33      32      32      32      32
    P             [0, 127]                            7       7       7       7       7
    ============  ==================================  ======  ======  ======  ======  ======

    Properties (tested): sum(P) <= 128 (the sum of floors is <= floor(r * total / 2^25) <= 128; 128 happens,
    e.g. f = 0 and two equal maxima give 64 + 64), every P_i <= 127, e and so P are non-increasing in -q (a
    larger score never gets a smaller P; the maximum gets the largest P), and
    |P_i / 128 - e_i / total| <= l_max / 2^32 + 1/128 (r loses < 1 unit, the shift < 1 unit of P).
    Caveat: total can exceed 2^32 when k * l_max > 2^32 (f = 12 with k >= 92, f = 11 with k >= 368, f = 10
    with k >= 1469); then r = 0 and every P is 0 (each true probability is then < l_max / 2^32 anyway).
    """
    check_frac_bits(frac_bits)
    _check_scores("scores", scores, 1)
    if scores.shape[0] == 0:
        raise ValueError("scores: an empty row is not allowed (allowed: k >= 1 entries)")
    st = _softmax_core(scores[None, :], torch.ones((1, scores.shape[0]), dtype=torch.bool, device=scores.device),
                       frac_bits)
    return {key: val[0] for key, val in st.items()}


def int_softmax(scores: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Integer softmax of one row: int64 P (same length) in [0, 127], P ~= 128 * softmax(s / 2^frac_bits).

    The exact steps, constants, bit widths and guarantees are in :func:`int_softmax_stages`.
    """
    return int_softmax_stages(scores, frac_bits)["P"]


def int_softmax_rows(scores: torch.Tensor, frac_bits: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`int_softmax` on each row of an (M, K) int64 matrix over the entries where ``valid`` (default all).

    Returns int64 P (M, K): each row's valid entries get exactly ``int_softmax`` of that row's valid scores;
    other entries and rows with no valid entry get 0. Only valid scores must be in the signed 32-bit range.
    """
    check_frac_bits(frac_bits)
    if not isinstance(scores, torch.Tensor) or scores.dtype != torch.int64 or scores.ndim != 2:
        raise ValueError("scores: expected a 2-D torch.int64 tensor")
    if valid is None:
        valid = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    elif not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != scores.shape:
        raise ValueError(f"valid: expected a 2-D torch.bool tensor of shape {tuple(scores.shape)}")
    valid = valid.to(scores.device)
    _check_scores("scores", scores, 2, valid)
    return _softmax_core(scores, valid, frac_bits)["P"]
