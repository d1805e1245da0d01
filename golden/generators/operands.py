"""Operand generators for tests, `dsa run`, `dsa verify` and the benchmark (numpy int8, seeded)."""
from __future__ import annotations

import numpy as np

from hwgen.spec.formats import OperandError
from hwgen.spec.workload import nonzero_int8, sparse_int8


def random_operands(m: int, k: int, n: int, density: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A with exactly round(density*M*K) nonzeros at random places; dense B; full int8 range."""
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not 1 <= v < 1 << 16:
            raise OperandError(f"{name}: {v} is not allowed (allowed: 1..65535)")
    rng = np.random.default_rng(seed)
    a = sparse_int8(m, k, density, rng)
    return a, rng.integers(-128, 128, size=(k, n), dtype=np.int16).astype(np.int8)


def skewed_operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of very different length: a few dense rows, the rest nearly or wholly empty."""
    rng = np.random.default_rng(seed)
    a = np.zeros((m, k), dtype=np.int8)
    for i in range(m):
        density = (1.0, 0.5, 0.02, 0.0)[i % 4]
        cols = rng.permutation(k)[:round(density * k)]
        a[i, cols] = nonzero_int8(rng, cols.size)
    return a, rng.integers(-128, 128, size=(k, n), dtype=np.int16).astype(np.int8)


def extreme_operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Max-magnitude operands (-128 and 127) whose sums leave narrow accumulators in both directions."""
    rng = np.random.default_rng(seed)
    a = np.full((m, k), -128, dtype=np.int8)
    b = np.where(rng.random((k, n)) < 0.5, -128, 127).astype(np.int8)
    b[:, 0] = -128   # column 0: (-128)(-128) k times, far past the positive limit
    b[:, -1] = 127   # last column: far past the negative limit
    return a, b


def prune_nm(a: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the N largest-magnitude entries of every group of M along K (ties: lower index), zero the rest."""
    rows, k = a.shape
    groups = -(-k // m)
    padded = np.zeros((rows, groups * m), dtype=np.int16)
    padded[:, :k] = a
    g = padded.reshape(rows, groups, m)
    rank = np.argsort(-np.abs(g), axis=2, kind="stable")
    keep = np.zeros_like(g, dtype=bool)
    np.put_along_axis(keep, rank[:, :, :n], True, axis=2)
    return np.where(keep, g, 0).reshape(rows, groups * m)[:, :k].astype(np.int8)


def power_law_rows(m: int, k: int, n: int, density: float, seed: int,
                   exponent: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A whose row lengths follow a power law (a few hub rows, many short ones) with mean density
    ``density``; a GNN adjacency when M = K. Weights span the int8 range, so an edge threshold drops a
    real share of them. B: dense node features."""
    if not 0.0 <= density <= 1.0:
        raise OperandError(f"density: {density} is not allowed (allowed: 0.0..1.0)")
    rng = np.random.default_rng(seed)
    raw = rng.pareto(exponent - 1.0, size=m) + 1.0
    lengths = np.minimum(np.round(raw / raw.mean() * density * k), k).astype(int)
    a = np.zeros((m, k), dtype=np.int8)
    for i, length in enumerate(lengths):
        a[i, rng.choice(k, size=length, replace=False)] = nonzero_int8(rng, length)
    return a, rng.integers(-128, 128, size=(k, n), dtype=np.int16).astype(np.int8)


def relu_operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Activations after ReLU on both sides: zeros in A are skipped, zeros in B gate their lanes."""
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.integers(-128, 128, size=(m, k)), 0).astype(np.int8)
    b = np.maximum(rng.integers(-128, 128, size=(k, n)), 0).astype(np.int8)
    return a, b
