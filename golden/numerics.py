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

from typing import Literal

import torch

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


def accumulate(a: torch.Tensor, b: torch.Tensor, acc_bits: int, mode: Mode) -> torch.Tensor:
    """C = A @ B as the engine computes it: int64 (M, K) x int64 (K, N) -> int64 (M, N) on a's device.

    Exactly ``acc = 0; for k: acc = overflow(acc + a[:, k, None] * b[None, k, :])``. wrap: one exact matmul
    then the rule. saturate: rows whose bound (sum_k |a_ik| * max|b|) fits the range cannot clamp, so they
    take one matmul; only the other rows run the k loop (vectorised over their (rows, N)).
    """
    _check(acc_bits, mode)
    if a.dtype != torch.int64 or b.dtype != torch.int64:
        raise TypeError(f"accumulate: dtypes {a.dtype}, {b.dtype} are not allowed (allowed: torch.int64; "
                        "upcast int8 first, since torch int8 @ int8 wraps mod 256)")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"accumulate: shapes {tuple(a.shape)} @ {tuple(b.shape)} do not match "
                         "(allowed: (M, K) @ (K, N))")
    if mode == "wrap":
        return overflow(exact_matmul(a, b), acc_bits, mode)
    lo, hi = acc_range(acc_bits)
    risky = _row_bounds(a, b) > hi  # |partial sum| <= hi < -lo: no clamp can happen in a safe row
    out = torch.empty((a.shape[0], b.shape[1]), dtype=torch.int64, device=a.device)
    if not bool(risky.all()):
        out[~risky] = exact_matmul(a[~risky], b)
    if bool(risky.any()):
        ar = a[risky]
        acc = torch.zeros((ar.shape[0], b.shape[1]), dtype=torch.int64, device=a.device)
        for k in ar.any(dim=0).nonzero().flatten().tolist():  # adding 0 to an in-range acc changes nothing
            acc = (acc + ar[:, k, None] * b[None, k, :]).clamp_(lo, hi)
        out[risky] = acc
    return out
