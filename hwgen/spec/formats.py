"""Compressed formats of a sparse operand A: encoders from dense, validators for given data, decoders.

Every validator raises OperandError naming the array, the offending position, the value and what is
allowed, before anything runs. ``dense()`` of any format gives back the logical int8 matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.spec.layout import INDEX_BYTES

NM_MAX_M = 16


class OperandError(ValueError):
    """A tensor or program that cannot run: the message names the operand, the value and what is allowed."""


def _log2_exact(x: int) -> int | None:
    return x.bit_length() - 1 if x > 0 and x & (x - 1) == 0 else None


# ---- bitmask -----------------------------------------------------------------------------------------

def bitmask_encode(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask bool (M,K), row offsets uint32 (M+1), packed nonzero values int8 in row-major order)."""
    mask = a != 0
    ptr = np.zeros(a.shape[0] + 1, dtype=np.uint32)
    np.cumsum(mask.sum(axis=1), out=ptr[1:])
    return mask, ptr, a[mask]


# ---- N:M structured ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NmMatrix:
    """N kept values per group of M consecutive elements along K, each with its index in the group."""
    values: np.ndarray   # int8 (rows, ceil(K/M) * N)
    indices: np.ndarray  # uint8, same shape, strictly increasing within a group, < M
    n: int
    m: int
    k: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.values.shape[0], self.k)

    def dense(self) -> np.ndarray:
        rows, kept = self.values.shape
        group = np.arange(kept) // self.n
        cols = group[None, :] * self.m + self.indices.astype(np.int64)
        out = np.zeros((rows, -(-self.k // self.m) * self.m), dtype=np.int8)
        np.put_along_axis(out, cols, self.values, axis=1)
        return out[:, :self.k]


DEFAULT_NM = (2, 4)   # the N:M ratio when none is named (compile_matmul, tiling, workloads)


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` -> (2, 4), checked."""
    try:
        n, m = (int(part) for part in text.split(":"))
    except ValueError:
        raise OperandError(f"nm: {text!r} is not allowed (allowed: N:M such as 2:4)") from None
    check_nm(n, m)
    return n, m


def check_nm(n: int, m: int) -> None:
    if _log2_exact(m) is None or not 2 <= m <= NM_MAX_M or _log2_exact(n) is None or not 1 <= n < m:
        raise OperandError(f"nm: {n}:{m} is not allowed (allowed: N < M, both powers of two, "
                           f"M in 2..{NM_MAX_M}, e.g. 1:4, 2:4, 4:8)")


def nm_encode(a: np.ndarray, n: int, m: int) -> NmMatrix:
    """Keep each group's nonzeros; a group with more than N nonzeros is an error (not pruned silently)."""
    check_nm(n, m)
    rows, k = a.shape
    groups = -(-k // m)
    padded = np.zeros((rows, groups * m), dtype=np.int8)
    padded[:, :k] = a
    g = padded.reshape(rows, groups, m)
    count = (g != 0).sum(axis=2)
    if (count > n).any():
        r, grp = np.argwhere(count > n)[0]
        raise OperandError(f"A: group {grp} of row {r} (columns {grp * m}..{grp * m + m - 1}) has {count[r, grp]} "
                           f"nonzeros (allowed: at most {n} for {n}:{m})")
    # kept positions: the nonzeros first, then the lowest unused positions, then sorted ascending
    order = np.argsort(g == 0, axis=2, kind="stable")[:, :, :n]
    order.sort(axis=2)
    values = np.take_along_axis(g, order, axis=2).reshape(rows, groups * n)
    return NmMatrix(values, order.reshape(rows, groups * n).astype(np.uint8), n, m, k)


def nm_validate(values: np.ndarray, indices: np.ndarray, n: int, m: int, k: int) -> NmMatrix:
    check_nm(n, m)
    values, indices = np.asarray(values), np.asarray(indices)
    groups = -(-k // m)
    if values.dtype != np.int8:
        raise OperandError(f"A.values: dtype {values.dtype} is not allowed (allowed: int8)")
    if values.ndim != 2 or values.shape[1] != groups * n or indices.shape != values.shape:
        raise OperandError(f"A.values/A.indices: shapes {values.shape}/{indices.shape} are not allowed "
                           f"(allowed: (rows, {groups * n}) each for K={k} and {n}:{m})")
    if not np.issubdtype(indices.dtype, np.integer):
        raise OperandError(f"A.indices: dtype {indices.dtype} is not allowed (allowed: integers)")
    idx = indices.astype(np.int64).reshape(values.shape[0], groups, n)
    bad = np.argwhere((idx < 0) | (idx >= m))
    if bad.size:
        r, grp, s = bad[0]
        raise OperandError(f"A.indices: row {r} group {grp} slot {s} is {idx[r, grp, s]} (allowed: 0..{m - 1})")
    bad = np.argwhere(np.diff(idx, axis=2) <= 0)
    if bad.size:
        r, grp, s = bad[0]
        raise OperandError(f"A.indices: row {r} group {grp} has {idx[r, grp].tolist()} (allowed: strictly "
                           "increasing indices within a group, no duplicates)")
    cols = (np.arange(groups)[None, :, None] * m + idx)
    if ((cols >= k) & (values.reshape(idx.shape) != 0)).any():
        raise OperandError(f"A.indices: a nonzero value points past column {k - 1} (K = {k})")
    return NmMatrix(values, indices.astype(np.uint8), n, m, k)


# ---- CSR -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CsrMatrix:
    rowptr: np.ndarray  # int64 (rows + 1)
    col: np.ndarray     # int64 (nnz), sorted and unique within a row
    values: np.ndarray  # int8 (nnz)
    shape: tuple[int, int]

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.int8)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.rowptr))
        out[rows, self.col] = self.values
        return out

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.rowptr)


def csr_encode(a: np.ndarray) -> CsrMatrix:
    rows, cols = np.nonzero(a)
    rowptr = np.zeros(a.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=rowptr[1:])
    return CsrMatrix(rowptr, cols.astype(np.int64), a[rows, cols].astype(np.int8), a.shape)


def csr_validate(rowptr, col, values, shape: tuple[int, int]) -> CsrMatrix:
    """Check a user's CSR arrays; every rule a malformed CSR can break has its own message."""
    rowptr, col, values = np.asarray(rowptr), np.asarray(col), np.asarray(values)
    rows, k = shape
    if values.dtype != np.int8 or values.ndim != 1:
        raise OperandError(f"A.values: dtype {values.dtype}, shape {values.shape} is not allowed "
                           "(allowed: a 1-D int8 array)")
    for name, arr in (("A.rowptr", rowptr), ("A.col", col)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise OperandError(f"{name}: dtype {arr.dtype}, shape {arr.shape} is not allowed (allowed: 1-D integers)")
    rowptr, col = rowptr.astype(np.int64), col.astype(np.int64)   # unsigned differences would wrap
    if rowptr.size != rows + 1:
        raise OperandError(f"A.rowptr: {rowptr.size} entries is not allowed (allowed: rows + 1 = {rows + 1})")
    if rowptr[0] != 0:
        raise OperandError(f"A.rowptr: rowptr[0] = {rowptr[0]} is not allowed (allowed: 0)")
    drop = np.flatnonzero(np.diff(rowptr) < 0)
    if drop.size:
        i = int(drop[0])
        raise OperandError(f"A.rowptr: not monotone: rowptr[{i + 1}] = {rowptr[i + 1]} < rowptr[{i}] = {rowptr[i]}")
    if rowptr[-1] != col.size or col.size != values.size:
        raise OperandError(f"A.rowptr: last entry {rowptr[-1]} is not allowed (allowed: nnz = {values.size}, "
                           f"with {col.size} column indices and {values.size} values)")
    out = np.flatnonzero((col < 0) | (col >= k))
    if out.size:
        p = int(out[0])
        raise OperandError(f"A.col: entry {p} is column {col[p]} (allowed: 0..{k - 1})")
    row_of = np.repeat(np.arange(rows), np.diff(rowptr))
    step = np.diff(col)
    same_row = row_of[1:] == row_of[:-1]
    bad = np.flatnonzero(same_row & (step <= 0))
    if bad.size:
        p = int(bad[0])
        what = "duplicate" if step[p] == 0 else "unsorted"
        raise OperandError(f"A.col: row {row_of[p]} has {what} columns {col[p]}, {col[p + 1]} at entries {p}, {p + 1} "
                           "(allowed: strictly increasing columns within a row)")
    if col.size and col.max() >= 1 << (8 * INDEX_BYTES):
        raise OperandError(f"A.col: column {col.max()} does not fit the uint16 index (allowed: K <= 65536)")
    return CsrMatrix(rowptr.astype(np.int64), col.astype(np.int64), values, (rows, k))
