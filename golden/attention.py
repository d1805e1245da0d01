"""Golden top-k sparse attention: what the accelerator must return, stage by stage, from plain tensors.

``numeric`` is the dict ``HwConfig.numeric()`` returns: ``{"acc_bits": int, "overflow": "wrap"|"saturate"}``.
Operands are int8 numpy arrays or int8 torch tensors; results are torch tensors on the CPU. Every step is a
primitive of :mod:`golden.numerics` (accumulate, topk_rows, int_softmax), so an executor can be checked
against each returned stage separately.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from golden.kernels import int8_matrix
from golden.numerics import accumulate, int_softmax_rows, pick_device, topk_rows


def _mask(mask: Any, shape: tuple[int, int]) -> torch.Tensor:
    """Check the (T, S) bool mask (None = all True) and return it as a CPU bool tensor."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool)
    if isinstance(mask, np.ndarray):
        if mask.dtype != np.bool_:
            raise TypeError(f"mask: dtype {mask.dtype} is not allowed (allowed: bool)")
        mask = torch.from_numpy(np.array(mask, copy=True))
    elif not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask: {got} is not allowed (allowed: a bool numpy array or torch.bool tensor)")
    if tuple(mask.shape) != shape:
        raise ValueError(f"mask: shape {tuple(mask.shape)} is not allowed (allowed: {shape} = (T, S))")
    return mask


def causal_mask(t: int, s: int | None = None) -> torch.Tensor:
    """(T, S) bool mask, True where query row i may attend key column j, i.e. j <= i + (S - T).

    With S == T (the default) this is the lower triangle including the diagonal; with S > T the queries
    are the LAST T positions of a length-S sequence (decoding with a key/value cache).
    """
    s = t if s is None else s
    return torch.ones((t, s), dtype=torch.bool).tril(diagonal=s - t)


def topk_attention(numeric: dict, q: Any, k_mat: Any, v: Any, topk: int, frac_bits: int,
                   mask: Any = None, device: str | None = None) -> dict[str, torch.Tensor]:
    """Top-k sparse attention, every stage returned (CPU tensors; identical on every device).

    Inputs: q (T, d), k_mat (S, d), v (S, dv) int8; ``topk`` >= 1; ``frac_bits`` in 0..12 (the scores'
    fixed-point scale for the softmax); ``mask`` (T, S) bool, True = may attend (e.g. :func:`causal_mask`),
    None = all True; ``device`` as in :func:`golden.numerics.pick_device`.

    Steps and returned keys:

    1. "scores" int64 (T, S): S = accumulate(q, k_matᵀ) with the ``numeric`` overflow rule (k in increasing
       d order). Masked-out entries are set to 0 in the returned tensor (they take no part in anything).
    2. Top-k per row t: ``topk_row(scores[t], topk, valid=mask[t])`` (value descending, lower index wins
       ties), k'_t = min(topk, valid entries of row t) kept columns.
    3. Softmax per row: P = ``int_softmax`` of the kept scores in that top-k order (values in [0, 127]).
    4. CSR of the kept entries, columns re-sorted ASCENDING within each row (the order the sparse P·V
       product reads V): "rowptr" int64 (T + 1), rowptr[0] = 0, rowptr[t + 1] - rowptr[t] = k'_t;
       "col" int64 (nnz); "p" int8 (nnz) aligned with "col". A row with no valid entry has no entries.
    5. "out" int64 (T, dv): O = accumulate(P_dense, v) with the same overflow rule, where P_dense (T, S)
       int64 holds p at (t, col) and 0 elsewhere (a row with no entries gives zeros).

    Kept scores must be in the signed 32-bit range (always true for int8 operands with d < 2^17; ValueError
    otherwise).
    """
    q, k_mat, v = int8_matrix("q", q), int8_matrix("k_mat", k_mat), int8_matrix("v", v)
    t, d = q.shape
    s = k_mat.shape[0]
    if k_mat.shape[1] != d:
        raise ValueError(f"k_mat: shape {tuple(k_mat.shape)} does not match q {tuple(q.shape)}: k_mat needs {d} "
                         "columns")
    if v.shape[0] != s:
        raise ValueError(f"v: shape {tuple(v.shape)} does not match k_mat {tuple(k_mat.shape)}: v needs {s} rows")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk: {topk!r} is not allowed (allowed: an int >= 1)")
    mask = _mask(mask, (t, s))
    acc_bits, mode = numeric["acc_bits"], numeric["overflow"]
    dev = pick_device(device)
    mask = mask.to(dev)

    scores = accumulate(q.to(dev, torch.int64), k_mat.to(dev, torch.int64).T.contiguous(), acc_bits, mode)

    width = max(1, min(topk, s))  # k' <= S: wider padding would change nothing
    vals, idx, count = topk_rows(scores, width, mask)
    kept = torch.arange(width, device=dev)[None, :] < count[:, None]
    p_topk = int_softmax_rows(vals, frac_bits, kept)

    order = torch.sort(torch.where(kept, idx, s), dim=1, stable=True).indices  # padding sorts last
    col_sorted, p_sorted = idx.gather(1, order), p_topk.gather(1, order)        # kept stays the leading prefix
    col, p = col_sorted[kept], p_sorted[kept]
    rowptr = torch.zeros(t + 1, dtype=torch.int64, device=dev)
    rowptr[1:] = count.cumsum(0)

    rows = torch.repeat_interleave(torch.arange(t, device=dev), count)
    p_dense = torch.zeros((t, s), dtype=torch.int64, device=dev)
    p_dense[rows, col] = p
    out = accumulate(p_dense, v.to(dev, torch.int64), acc_bits, mode)

    return {
        "scores": torch.where(mask, scores, 0).cpu(),
        "rowptr": rowptr.cpu(),
        "col": col.cpu(),
        "p": p.to(torch.int8).cpu(),
        "out": out.cpu(),
    }
