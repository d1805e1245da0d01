"""hwgen.spec.formats (N:M and CSR encoders, validators, decoders) and how compile_matmul lays each format of A in L1.

The L1 decoders below are written from hwgen/spec/layout.py (its docstring and address functions) byte by byte,
independently of hwgen.spec.program's packers, so a packing bug shows up as a mismatch here.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from golden.generators.operands import power_law_rows, prune_nm, random_operands, skewed_operands
from hwgen.compiler.single_kernel import compile_matmul
from hwgen.spec import isa
from hwgen.spec.config import from_dict, load
from hwgen.spec.formats import (
    CsrMatrix,
    NmMatrix,
    OperandError,
    check_nm,
    csr_encode,
    csr_validate,
    nm_encode,
    nm_validate,
    parse_nm,
)
from hwgen.spec.program import OutputSpec, unpermute_rows

NM_PAIRS = [(1, 2), (1, 4), (2, 4), (4, 8), (1, 16), (8, 16)]
NM_INDEX_BITS = {2: 1, 4: 2, 8: 4, 16: 4}   # b: width of an in-group index in L1 (layout.nm_meta_bits_log2)

CONFIGS = {
    "tiny": load("tiny"),                                                          # W = 16, L = 4
    "default": load("default"),                                                    # W = 64, L = 16
    "w8": from_dict({"name": "w8", "engine": {"lanes": 4, "scan_bytes": 8}, "l1": {"bytes": 4096, "banks": 2}}),
}


def cdiv(x: int, y: int) -> int:
    return -(-x // y)


def raises(message: str):
    """The exact message, not a prefix or a search."""
    return pytest.raises(OperandError, match="^" + re.escape(message) + "$")


def random_int8(rng: np.random.Generator, shape, density: float) -> np.ndarray:
    """Nonzeros in the full int8 range (-128 included) at a random share of places."""
    vals = rng.integers(-128, 128, size=shape, dtype=np.int16)
    vals[vals == 0] = 1
    return np.where(rng.random(shape) < density, vals, 0).astype(np.int8)


def nm_matrix(rng: np.random.Generator, rows: int, k: int, n: int, m: int, density: float = 1.0) -> np.ndarray:
    """A random N:M matrix: pruned, with some all-zero groups and an all-zero row."""
    a = prune_nm(random_int8(rng, (rows, k), density), n, m)
    if rows > 1:
        a[1] = 0
    if k > m:
        a[:, m:2 * m] = 0                  # group 1 of every row is empty
    a[0, (k - 1) // m * m:] = 0            # so is the last (maybe partial) group of row 0
    return a


# ==== N:M ============================================================================================

NM_SHAPES = [(1, 1), (3, 5), (4, 16), (5, 17), (6, 31), (7, 64), (2, 100)]


@pytest.mark.parametrize("n,m", NM_PAIRS)
def test_nm_round_trip_and_structure(n, m):
    rng = np.random.default_rng(n * 100 + m)
    for rows, k in NM_SHAPES:
        for density in (1.0, 0.5, 0.1):
            a = nm_matrix(rng, rows, k, n, m, density)
            groups = cdiv(k, m)
            enc = nm_encode(a, n, m)
            assert (enc.n, enc.m, enc.k, enc.shape) == (n, m, k, (rows, k))
            assert enc.values.dtype == np.int8 and enc.indices.dtype == np.uint8
            assert enc.values.shape == enc.indices.shape == (rows, groups * n)
            back = enc.dense()
            assert back.dtype == np.int8 and back.shape == a.shape
            assert np.array_equal(back, a)

            idx = enc.indices.astype(np.int64).reshape(rows, groups, n)
            vals = enc.values.reshape(rows, groups, n)
            assert (idx < m).all()
            assert (np.diff(idx, axis=2) > 0).all(), "indices strictly increasing within each group"
            cols = np.arange(groups)[None, :, None] * m + idx
            inside = cols < k
            # every kept value is A's element at its column; past column K-1 only zeros are kept
            assert np.array_equal(vals[inside], a[np.nonzero(inside)[0], cols[inside]])
            assert not vals[~inside].any()
            # every nonzero of A is kept (none dropped)
            assert np.count_nonzero(vals) == np.count_nonzero(a)
            # an all-zero group keeps the lowest positions 0..N-1
            padded = np.zeros((rows, groups * m), np.int8)
            padded[:, :k] = a
            empty = ~padded.reshape(rows, groups, m).any(axis=2)
            assert (idx[empty] == np.arange(n)).all()

            # the validator accepts what the encoder wrote and gives the same matrix back
            again = nm_validate(enc.values, enc.indices, n, m, k)
            assert again.indices.dtype == np.uint8 and np.array_equal(again.dense(), a)


@pytest.mark.parametrize("n,m", NM_PAIRS)
def test_nm_validate_hand_written_padding_positions(n, m):
    """Any strictly increasing positions may hold the zero padding, not only those the encoder picks."""
    rng = np.random.default_rng(7 + m)
    k = 3 * m - 1
    rows, groups = 4, 3
    indices = np.stack([np.sort(rng.permutation(m)[:n]) for _ in range(rows * groups)]).reshape(rows, groups * n)
    values = random_int8(rng, indices.shape, 0.6)
    cols = np.arange(groups * n)[None, :] // n * m + indices
    values[cols >= k] = 0
    enc = nm_validate(values, indices.astype(np.uint8), n, m, k)
    expect = np.zeros((rows, groups * m), np.int8)
    np.put_along_axis(expect, cols, values, axis=1)
    assert np.array_equal(enc.dense(), expect[:, :k])


def test_prune_nm_gives_n_m_matrices():
    rng = np.random.default_rng(3)
    a = random_int8(rng, (9, 37), 1.0)
    for n, m in NM_PAIRS:
        p = prune_nm(a, n, m)
        padded = np.zeros((9, cdiv(37, m) * m), np.int8)
        padded[:, :37] = p
        assert ((padded.reshape(9, -1, m) != 0).sum(axis=2) <= n).all()
        assert ((p == a) | (p == 0)).all()
        assert np.array_equal(nm_encode(p, n, m).dense(), p)


@pytest.mark.parametrize("a,n,m,message", [
    (np.array([[1, 2, 3, 0]], np.int8), 2, 4,
     "A: group 0 of row 0 (columns 0..3) has 3 nonzeros (allowed: at most 2 for 2:4)"),
    (np.array([[1, 0, 0, 0, 5, 0, 6, 0], [0, 0, 0, 0, 0, 0, 0, 0]], np.int8), 1, 4,
     "A: group 1 of row 0 (columns 4..7) has 2 nonzeros (allowed: at most 1 for 1:4)"),
    (np.array([[1, 1, 0, 0], [0, 0, 7, -128]], np.int8), 1, 2,
     "A: group 0 of row 0 (columns 0..1) has 2 nonzeros (allowed: at most 1 for 1:2)"),
    # the first offending group in row-major order is named, here in a partial last group (K = 10)
    (np.array([[0] * 10, [0] * 8 + [-1, 4], [9] * 10], np.int8), 1, 4,
     "A: group 2 of row 1 (columns 8..11) has 2 nonzeros (allowed: at most 1 for 1:4)"),
    (np.ones((2, 20), np.int8), 8, 16,
     "A: group 0 of row 0 (columns 0..15) has 16 nonzeros (allowed: at most 8 for 8:16)"),
])
def test_nm_encode_refuses_too_many_nonzeros(a, n, m, message):
    with raises(message):
        nm_encode(a, n, m)


BAD_NM = [(3, 4), (4, 4), (2, 3), (1, 32), (0, 4), (8, 8), (2, 1), (1, 1), (16, 16), (4, 2), (-2, 4), (2, 0)]


@pytest.mark.parametrize("n,m", BAD_NM)
def test_check_nm_refuses(n, m):
    message = (f"nm: {n}:{m} is not allowed (allowed: N < M, both powers of two, M in 2..16, "
               "e.g. 1:4, 2:4, 4:8)")
    with raises(message):
        check_nm(n, m)
    with raises(message):
        parse_nm(f"{n}:{m}")
    with raises(message):
        nm_encode(np.zeros((1, 8), np.int8), n, m)
    with raises(message):
        nm_validate(np.zeros((1, 2), np.int8), np.array([[0, 1]], np.uint8), n, m, 4)


@pytest.mark.parametrize("n,m", NM_PAIRS)
def test_check_nm_and_parse_nm_accept(n, m):
    check_nm(n, m)
    assert parse_nm(f"{n}:{m}") == (n, m)


@pytest.mark.parametrize("text", ["2-4", "a:b", "2:4:8", "", "2", "2:", ":4", "2.0:4", "two:four"])
def test_parse_nm_refuses_text(text):
    with raises(f"nm: {text!r} is not allowed (allowed: N:M such as 2:4)"):
        parse_nm(text)


def nm_ok(rows: int = 2, n: int = 2, m: int = 4, k: int = 8):
    """Valid (values, indices) for nm_validate."""
    enc = nm_encode(prune_nm(random_int8(np.random.default_rng(0), (rows, k), 1.0), n, m), n, m)
    return enc.values.copy(), enc.indices.copy()


def test_nm_validate_index_past_m():
    values, indices = nm_ok(rows=3)
    indices[1, 3] = 4   # row 1, group 1, slot 1
    with raises("A.indices: row 1 group 1 slot 1 is 4 (allowed: 0..3)"):
        nm_validate(values, indices, 2, 4, 8)
    values, indices = nm_ok(rows=1, n=1, m=16, k=32)
    indices[0, 1] = 255
    with raises("A.indices: row 0 group 1 slot 0 is 255 (allowed: 0..15)"):
        nm_validate(values, indices, 1, 16, 32)


def int_list(*xs: int) -> str:
    """A regex for the list of indices in the message, whether numpy prints its scalars plainly or not."""
    return r"\[" + ", ".join(rf"(?:np\.int64\({x}\)|{x})" for x in xs) + r"\]"


@pytest.mark.parametrize("group,expect", [([1, 1], (1, 1)), ([3, 0], (3, 0)), ([2, 2], (2, 2))])
def test_nm_validate_duplicate_or_decreasing_indices(group, expect):
    values, indices = nm_ok()
    indices[1, 2:4] = group   # row 1 group 1
    pattern = (re.escape("A.indices: row 1 group 1 has ") + int_list(*expect)
               + re.escape(" (allowed: strictly increasing indices within a group, no duplicates)"))
    with pytest.raises(OperandError, match="^" + pattern + "$"):
        nm_validate(values, indices, 2, 4, 8)


def test_nm_validate_duplicate_message_lists_plain_ints():
    values, indices = nm_ok()
    indices[0, 0:2] = [2, 1]
    with raises("A.indices: row 0 group 0 has [2, 1] (allowed: strictly increasing indices within a group, "
                "no duplicates)"):
        nm_validate(values, indices, 2, 4, 8)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64, np.float32, bool])
def test_nm_validate_values_dtype(dtype):
    values, indices = nm_ok()
    with raises(f"A.values: dtype {np.dtype(dtype)} is not allowed (allowed: int8)"):
        nm_validate(values.astype(dtype), indices, 2, 4, 8)


@pytest.mark.parametrize("values_shape,indices_shape,k", [
    ((2, 3), (2, 3), 8),       # too few kept values for K = 8
    ((2, 6), (2, 6), 8),       # too many
    ((2, 4), (2, 6), 8),       # indices differ from values
    ((2, 4), (4,), 8),
    ((8,), (8,), 8),           # values 1-D
    ((2, 4, 1), (2, 4, 1), 8),
    ((2, 4), (2, 4), 9),       # K = 9 needs 3 groups
    ((2, 4), (2, 4), 4),       # K = 4 needs 1 group
])
def test_nm_validate_shapes(values_shape, indices_shape, k):
    kept = cdiv(k, 4) * 2
    with raises(f"A.values/A.indices: shapes {values_shape}/{indices_shape} are not allowed "
                f"(allowed: (rows, {kept}) each for K={k} and 2:4)"):
        nm_validate(np.zeros(values_shape, np.int8), np.zeros(indices_shape, np.uint8), 2, 4, k)


def test_nm_validate_nonzero_past_k():
    # K = 10 and 2:4: the last group covers columns 8..11, so only positions 0 and 1 are inside
    values = np.zeros((2, 6), np.int8)
    indices = np.tile(np.array([0, 1], np.uint8), (2, 3))
    indices[1, 4:6] = [1, 2]
    assert np.array_equal(nm_validate(values, indices, 2, 4, 10).dense(), np.zeros((2, 10), np.int8))  # zeros fine
    values[1, 4:6] = [5, 0]     # column 9: inside
    assert nm_validate(values, indices, 2, 4, 10).dense()[1, 9] == 5
    values[1, 5] = -3           # column 10: past K - 1
    with raises("A.indices: a nonzero value points past column 9 (K = 10)"):
        nm_validate(values, indices, 2, 4, 10)


def test_nm_validate_refuses_negative_index():
    values = np.array([[5, 0, 0, 0]], np.int8)
    with raises("A.indices: row 0 group 0 slot 0 is -1 (allowed: 0..3)"):
        nm_validate(values, np.array([[-1, 2, 0, 1]], np.int64), 2, 4, 8)


def test_nm_validate_refuses_float_indices():
    with pytest.raises(OperandError):
        nm_validate(np.array([[5, 6, 0, 0]], np.int8), np.array([[1.7, 2.2, 0.0, 1.0]]), 2, 4, 8)


# ==== CSR ============================================================================================

def check_csr_of(a: np.ndarray, c: CsrMatrix) -> None:
    rows, k = a.shape
    assert c.shape == a.shape
    assert c.rowptr.dtype == np.int64 and c.col.dtype == np.int64 and c.values.dtype == np.int8
    assert c.rowptr.shape == (rows + 1,) and c.rowptr[0] == 0 and c.rowptr[-1] == np.count_nonzero(a)
    assert np.array_equal(c.row_lengths(), (a != 0).sum(axis=1))
    for i in range(rows):
        cols = c.col[c.rowptr[i]:c.rowptr[i + 1]]
        assert np.array_equal(cols, np.flatnonzero(a[i]))
        assert np.array_equal(c.values[c.rowptr[i]:c.rowptr[i + 1]], a[i, cols])
    assert (c.values != 0).all()
    back = c.dense()
    assert back.dtype == np.int8 and np.array_equal(back, a)


def csr_cases():
    rng = np.random.default_rng(11)
    yield np.zeros((1, 1), np.int8)
    yield np.zeros((4, 9), np.int8)                        # no nonzeros at all
    yield np.full((3, 5), -128, np.int8)
    for m, k, density in ((1, 33, 0.5), (7, 13, 0.3), (16, 64, 0.05), (20, 3, 0.9)):
        yield random_operands(m, k, 1, density, seed=int(rng.integers(1 << 20)))[0]
    yield skewed_operands(12, 40, 1, seed=5)[0]
    for seed in range(3):
        adj, _ = power_law_rows(48, 48, 4, 0.06, seed=seed)
        adj[::7] = 0                                        # empty rows besides the hubs
        yield adj


def test_csr_round_trip():
    for a in csr_cases():
        c = csr_encode(a)
        check_csr_of(a, c)
        again = csr_validate(c.rowptr, c.col, c.values, c.shape)
        check_csr_of(a, again)
        # narrower integer arrays, as they sit in L1, validate too
        check_csr_of(a, csr_validate(c.rowptr.astype(np.uint32), c.col.astype(np.int32), c.values, a.shape))


def test_power_law_rows_differ():
    adj, _ = power_law_rows(48, 48, 4, 0.06, seed=0)
    adj[::7] = 0
    lengths = csr_encode(adj).row_lengths()
    assert lengths.min() == 0 and lengths.max() >= 4 * max(1, int(np.median(lengths)))


def test_csr_validate_accepts_lists_and_edge_shapes():
    c = csr_validate([0, 2, 2, 3], [1, 6, 0], np.array([4, -5, 6], np.int8), (3, 7))
    assert np.array_equal(c.dense(), np.array([[0, 4, 0, 0, 0, 0, -5], [0] * 7, [6, 0, 0, 0, 0, 0, 0]], np.int8))
    empty = csr_validate(np.zeros(4, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8), (3, 2))
    assert not empty.dense().any() and empty.dense().shape == (3, 2)


def test_csr_columns_may_decrease_across_rows():
    # row 0 ends at column 6, row 1 starts at column 0; an empty row between does not matter either
    c = csr_validate(np.array([0, 2, 2, 4]), np.array([3, 6, 0, 6]), np.array([1, 2, 3, 4], np.int8), (3, 7))
    assert c.dense()[2, 0] == 3 and c.dense()[0, 6] == 2 and c.dense()[2, 6] == 4
    csr_validate(np.array([0, 1, 2]), np.array([5, 5]), np.array([1, 1], np.int8), (2, 6))  # same column, other row


V3 = np.array([1, 2, 3], np.int8)


@pytest.mark.parametrize("rowptr,col,values,shape,message", [
    # rowptr
    ([0, 3], [0, 1, 2], V3, (2, 4), "A.rowptr: 2 entries is not allowed (allowed: rows + 1 = 3)"),
    ([0, 1, 2, 3, 3], [0, 1, 2], V3, (3, 4), "A.rowptr: 5 entries is not allowed (allowed: rows + 1 = 4)"),
    ([1, 2, 3], [0, 1, 2], V3, (2, 4), "A.rowptr: rowptr[0] = 1 is not allowed (allowed: 0)"),
    ([-1, 2, 3], [0, 1, 2], V3, (2, 4), "A.rowptr: rowptr[0] = -1 is not allowed (allowed: 0)"),
    ([0, 2, 1, 3], [0, 1, 2], V3, (3, 4), "A.rowptr: not monotone: rowptr[2] = 1 < rowptr[1] = 2"),
    ([0, 3, 3, 2, 3], [0, 1, 2], V3, (4, 4), "A.rowptr: not monotone: rowptr[3] = 2 < rowptr[2] = 3"),
    ([0, 1, 2], [0, 1, 2], V3, (2, 4),
     "A.rowptr: last entry 2 is not allowed (allowed: nnz = 3, with 3 column indices and 3 values)"),
    ([0, 1, 4], [0, 1, 2], V3, (2, 4),
     "A.rowptr: last entry 4 is not allowed (allowed: nnz = 3, with 3 column indices and 3 values)"),
    # values and columns of different lengths (reported through the last entry of rowptr)
    ([0, 1, 3], [0, 1], V3, (2, 4),
     "A.rowptr: last entry 3 is not allowed (allowed: nnz = 3, with 2 column indices and 3 values)"),
    ([0, 1, 2], [0, 1], V3, (2, 4),
     "A.rowptr: last entry 2 is not allowed (allowed: nnz = 3, with 2 column indices and 3 values)"),
    ([0, 2, 4], [0, 1, 2, 3], V3, (2, 4),
     "A.rowptr: last entry 4 is not allowed (allowed: nnz = 3, with 4 column indices and 3 values)"),
    # column range
    ([0, 2, 3], [0, -1, 2], V3, (2, 4), "A.col: entry 1 is column -1 (allowed: 0..3)"),
    ([0, 2, 3], [0, 1, 4], V3, (2, 4), "A.col: entry 2 is column 4 (allowed: 0..3)"),
    ([0, 2, 3], [70000, 1, 2], V3, (2, 4), "A.col: entry 0 is column 70000 (allowed: 0..3)"),
    # order within a row
    ([0, 1, 3], [3, 2, 0], V3, (2, 4),
     "A.col: row 1 has unsorted columns 2, 0 at entries 1, 2 (allowed: strictly increasing columns within a row)"),
    ([0, 3, 3], [0, 3, 1], V3, (2, 4),
     "A.col: row 0 has unsorted columns 3, 1 at entries 1, 2 (allowed: strictly increasing columns within a row)"),
    ([0, 0, 3], [2, 2, 3], V3, (2, 4),
     "A.col: row 1 has duplicate columns 2, 2 at entries 0, 1 (allowed: strictly increasing columns within a row)"),
    ([0, 1, 3, 3], [3, 1, 1], V3, (3, 4),
     "A.col: row 1 has duplicate columns 1, 1 at entries 1, 2 (allowed: strictly increasing columns within a row)"),
    # the uint16 column index of L1
    ([0, 1], [65536], np.array([1], np.int8), (1, 70000),
     "A.col: column 65536 does not fit the uint16 index (allowed: K <= 65536)"),
    # dtype / ndim of each array
    ([0, 3], [0, 1, 2], np.array([1, 2, 3], np.int16), (1, 4),
     "A.values: dtype int16, shape (3,) is not allowed (allowed: a 1-D int8 array)"),
    ([0, 3], [0, 1, 2], np.array([1, 2, 3], np.uint8), (1, 4),
     "A.values: dtype uint8, shape (3,) is not allowed (allowed: a 1-D int8 array)"),
    ([0, 3], [0, 1, 2], [1, 2, 3], (1, 4),
     "A.values: dtype int64, shape (3,) is not allowed (allowed: a 1-D int8 array)"),
    ([0, 3], [0, 1, 2], np.array([[1, 2, 3]], np.int8), (1, 4),
     "A.values: dtype int8, shape (1, 3) is not allowed (allowed: a 1-D int8 array)"),
    ([0, 3], [0, 1, 2], np.int8(1), (1, 4),
     "A.values: dtype int8, shape () is not allowed (allowed: a 1-D int8 array)"),
    (np.array([0.0, 3.0]), [0, 1, 2], V3, (1, 4),
     "A.rowptr: dtype float64, shape (2,) is not allowed (allowed: 1-D integers)"),
    (np.array([[0, 3]]), [0, 1, 2], V3, (1, 4),
     "A.rowptr: dtype int64, shape (1, 2) is not allowed (allowed: 1-D integers)"),
    (np.array([False, True]), [0, 1, 2], V3, (1, 4),
     "A.rowptr: dtype bool, shape (2,) is not allowed (allowed: 1-D integers)"),
    ([0, 3], np.array([0.0, 1.0, 2.0]), V3, (1, 4),
     "A.col: dtype float64, shape (3,) is not allowed (allowed: 1-D integers)"),
    ([0, 3], np.array([[0, 1, 2]]), V3, (1, 4),
     "A.col: dtype int64, shape (1, 3) is not allowed (allowed: 1-D integers)"),
    ([0, 3], np.array([True, False, True]), V3, (1, 4),
     "A.col: dtype bool, shape (3,) is not allowed (allowed: 1-D integers)"),
])
def test_csr_validate_refuses(rowptr, col, values, shape, message):
    with raises(message):
        csr_validate(rowptr, col, values, shape)


def test_csr_validate_unsorted_unsigned_columns():
    with raises("A.col: row 0 has unsorted columns 3, 1 at entries 0, 1 "
                "(allowed: strictly increasing columns within a row)"):
        csr_validate(np.array([0, 2]), np.array([3, 1], np.uint16), np.array([1, 1], np.int8), (1, 8))


def test_csr_validate_non_monotone_unsigned_rowptr():
    # uint16 here so the bug stays small: the wrapped row length 65535 ends in a broadcasting ValueError
    with raises("A.rowptr: not monotone: rowptr[2] = 2 < rowptr[1] = 3"):
        csr_validate(np.array([0, 3, 2, 4], np.uint16), np.arange(4), np.ones(4, np.int8), (3, 8))


# ==== compile_matmul: the L1 image of each format ====================================================

def flat(l1: np.ndarray, line: int, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes of L1 from the start of ``line`` on (lines are consecutive)."""
    return l1[line:].reshape(-1)[:nbytes]


def le(l1: np.ndarray, line: int, slot: int, width: int) -> int:
    """Little-endian unsigned integer at byte ``slot * width`` of ``line``."""
    return int.from_bytes(l1[line, slot * width:(slot + 1) * width].tobytes(), "little")


def decode_dense(l1, W, f):
    m, k = f["m"], f["k"]
    nw = cdiv(k, W)
    out = np.zeros((m, nw * W), np.uint8)
    for i in range(m):
        for w in range(nw):
            out[i, w * W:(w + 1) * W] = l1[f["a_addr"] + i * nw + w]
    assert not out[:, k:].any(), "padding of a dense row is zero"
    regions = [(f["a_addr"], m * nw)]
    return out[:, :k].view(np.int8), regions


def decode_bitmask(l1, W, f):
    m, k = f["m"], f["k"]
    nw = cdiv(k, W)
    ptr = [le(l1, f["a_ptr"] + i // (W // 4), i % (W // 4), 4) for i in range(m + 1)]
    assert ptr[0] == 0
    out = np.zeros((m, k), np.int8)
    for i in range(m):
        byte = ptr[i]
        for c in range(nw * W):
            g, t = i * nw + c // W, c % W
            word = l1[f["a_addr"] + g // 8, (g % 8) * (W // 8):(g % 8 + 1) * (W // 8)]
            if (word[t // 8] >> (t % 8)) & 1:
                assert c < k, "no mask bit in the padding"
                out[i, c] = np.uint8(l1[f["a_meta"] + byte // W, byte % W]).view(np.int8)
                assert out[i, c] != 0
                byte += 1
        assert byte == ptr[i + 1]
    regions = [(f["a_addr"], cdiv(m * nw, 8)), (f["a_ptr"], cdiv((m + 1) * 4, W)),
               (f["a_meta"], cdiv(max(1, ptr[-1]), W))]
    return out, regions


def decode_nm_fields(l1, W, f):
    """Kept values and in-group indices as stored (rows in stored order), from the two L1 streams."""
    m, k = f["m"], f["k"]
    n, gm = 1 << f["nm_n_log2"], 1 << f["nm_m_log2"]
    b = NM_INDEX_BITS[gm]
    kept = cdiv(k, gm) * n
    nwk = cdiv(kept, W)                       # value words (lines) per row
    per_line = 8 // b                         # value words whose indices share one meta line
    slot_bytes = W * b // 8
    values = np.zeros((m, kept), np.int8)
    indices = np.zeros((m, kept), np.int64)
    for i in range(m):
        for q in range(nwk * W):
            g, e = i * nwk + q // W, q % W
            value = np.uint8(l1[f["a_addr"] + g, e]).view(np.int8)
            meta = l1[f["a_meta"] + g // per_line, (g % per_line) * slot_bytes + (e * b) // 8]
            index = (int(meta) >> ((e * b) % 8)) & ((1 << b) - 1)
            if q < kept:
                values[i, q], indices[i, q] = value, index
            else:
                assert value == 0 and index == 0, "padding of the last value word is zero"
    regions = [(f["a_addr"], m * nwk), (f["a_meta"], cdiv(m * nwk * b, 8))]
    return values, indices, n, gm, regions


def decode_nm(l1, W, f):
    values, indices, n, gm, regions = decode_nm_fields(l1, W, f)
    m, k = f["m"], f["k"]
    out = np.zeros((m, cdiv(k, gm) * gm), np.int8)
    groups = indices.reshape(m, -1, n)
    assert (groups < gm).all() and (np.diff(groups, axis=2) > 0).all()
    cols = np.arange(indices.shape[1])[None, :] // n * gm + indices
    assert not values[cols >= k].any()
    np.put_along_axis(out, cols, values, axis=1)
    return out[:, :k], regions


def decode_csr_fields(l1, W, f):
    m = f["m"]
    ptr = np.array([le(l1, f["a_ptr"] + i // (W // 4), i % (W // 4), 4) for i in range(m + 1)], np.int64)
    nnz = int(ptr[-1])
    col = np.array([le(l1, f["a_meta"] + p // (W // 2), p % (W // 2), 2) for p in range(nnz)], np.int64)
    vals = np.array([l1[f["a_addr"] + p // W, p % W] for p in range(nnz)], np.uint8).view(np.int8)
    regions = [(f["a_addr"], cdiv(max(1, nnz), W)), (f["a_ptr"], cdiv((m + 1) * 4, W)),
               (f["a_meta"], cdiv(max(1, nnz) * 2, W))]
    return ptr, col, vals, regions


def decode_csr(l1, W, f):
    ptr, col, vals, regions = decode_csr_fields(l1, W, f)
    m, k = f["m"], f["k"]
    assert ptr[0] == 0 and (np.diff(ptr) >= 0).all()
    out = np.zeros((m, k), np.int8)
    for i in range(m):
        cols = col[ptr[i]:ptr[i + 1]]
        assert (np.diff(cols) > 0).all() and (cols < k).all()
        out[i, cols] = vals[ptr[i]:ptr[i + 1]]
    return out, regions


DECODERS = {"dense": decode_dense, "bitmask": decode_bitmask, "nm": decode_nm, "csr": decode_csr}


def decode_b(l1, W, f):
    k, n = f["k"], f["n"]
    nbl = cdiv(n, W)
    b = np.stack([flat(l1, f["b_addr"] + r * nbl, nbl * W) for r in range(k)])
    assert not b[:, n:].any()
    return b[:, :n].view(np.int8), [(f["b_addr"], k * nbl)]


def check_image(cfg, prog, a_format: str, logical: np.ndarray, b: np.ndarray, order) -> np.ndarray:
    """Decode the L1 image; check it holds A's rows in ``order`` and B, back to back, and nothing else."""
    W = cfg.line_bytes
    (f,) = prog.fields
    m, k = logical.shape
    assert (f["m"], f["k"], f["n"], f["c_addr"]) == (m, k, b.shape[1], 0)
    assert f["a_format"] == isa.AFormat[a_format.upper()]
    stored, regions = DECODERS[a_format](prog.l1, W, f)
    assert np.array_equal(stored, logical[order])
    b_back, b_region = decode_b(prog.l1, W, f)
    assert np.array_equal(b_back, b)
    pos = 0
    for start, size in regions + b_region:
        assert start == pos
        pos += size
    assert prog.l1_lines_used == pos and not prog.l1[pos:].any()
    assert np.array_equal(prog.tensors["A"], logical) and prog.tensors["B"] is b
    return stored


def operands_for(a_format: str, rng: np.random.Generator, m: int, k: int, n: int, nm=(2, 4)):
    a = random_int8(rng, (m, k), 0.4)
    if a_format == "nm":
        a = prune_nm(a, *nm)
    a[m // 2] = 0                        # an empty row
    a[-1, :] = prune_nm(np.full((1, k), -128, np.int8), *nm)[0] if a_format == "nm" else -128   # a full row
    return a, random_int8(rng, (k, n), 0.9)


def natural(m: int) -> np.ndarray:
    return np.arange(m)


def longest_first(a: np.ndarray, threshold: int = 0) -> np.ndarray:
    work = (np.abs(a.astype(np.int16)) >= max(threshold, 1)).sum(axis=1)
    order = sorted(range(a.shape[0]), key=lambda i: (-work[i], i))   # decreasing work, ties in logical order
    return np.array(order)


SHAPES = {"tiny": [(1, 1, 1), (5, 17, 5), (9, 40, 4)], "default": [(3, 130, 17), (16, 64, 33)],
          "w8": [(6, 9, 3), (4, 24, 8)]}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("a_format", ["dense", "bitmask", "nm", "csr"])
@pytest.mark.parametrize("row_order", [None, "natural", "longest_first"])
def test_l1_image_per_format(name, a_format, row_order):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name} {a_format} {row_order}".encode()))
    for m, k, n in SHAPES[name]:
        a, b = operands_for(a_format, rng, m, k, n)
        prog = compile_matmul(cfg, a, b, a_format=a_format, row_order=row_order)
        spec = prog.outputs["C"]
        effective = row_order or ("longest_first" if a_format == "csr" else "natural")
        order = longest_first(a) if effective == "longest_first" else natural(m)
        if effective == "natural":
            assert spec.row_order is None
        else:
            assert spec.row_order == tuple(int(i) for i in order)
            assert all(type(i) is int for i in spec.row_order)
        stored = check_image(cfg, prog, a_format, a, b, order)
        assert np.array_equal(unpermute_rows(spec, stored), a)


@pytest.mark.parametrize("n,m", NM_PAIRS)
def test_l1_image_nm_every_ratio(n, m):
    rng = np.random.default_rng(m * 17 + n)
    for name, (rows, k, cols) in (("tiny", (4, 2 * m + 3, 3)), ("default", (5, 70, 9)), ("w8", (3, m - 1 or 1, 2))):
        cfg = CONFIGS[name]
        a = nm_matrix(rng, rows, k, n, m, 0.7)
        b = random_int8(rng, (k, cols), 1.0)
        for order_name in ("natural", "longest_first"):
            prog = compile_matmul(cfg, a, b, a_format="nm", nm=(n, m), row_order=order_name)
            (f,) = prog.fields
            assert (1 << f["nm_n_log2"], 1 << f["nm_m_log2"]) == (n, m)
            order = longest_first(a) if order_name == "longest_first" else natural(rows)
            check_image(cfg, prog, "nm", a, b, order)
            # the stored streams are exactly the encoder's values and indices, rows permuted
            values, indices, *_ = decode_nm_fields(prog.l1, cfg.line_bytes, f)
            enc = nm_encode(a, n, m)
            assert np.array_equal(values, enc.values[order]) and np.array_equal(indices, enc.indices[order])


def test_precompressed_nm_is_stored_as_given():
    cfg = CONFIGS["tiny"]
    # the padding slots sit at positions other than the encoder's choice (it would pick the lowest ones)
    values = np.array([[0, 7, 0, 0, -128, 3], [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 0]], np.int8)
    indices = np.array([[2, 3, 1, 3, 0, 1], [1, 2, 0, 3, 2, 3], [0, 1, 0, 2, 0, 1]], np.uint8)
    op = nm_validate(values, indices, 2, 4, 10)
    b = random_int8(np.random.default_rng(1), (10, 6), 1.0)
    for order_name in ("natural", "longest_first"):
        prog = compile_matmul(cfg, op, b, a_format="nm", row_order=order_name)   # nm= left at its default
        (f,) = prog.fields
        order = longest_first(op.dense()) if order_name == "longest_first" else natural(3)
        check_image(cfg, prog, "nm", op.dense(), b, order)
        got_v, got_i, *_ = decode_nm_fields(prog.l1, cfg.line_bytes, f)
        assert np.array_equal(got_v, values[order]) and np.array_equal(got_i, indices[order])
    assert compile_matmul(cfg, op, b, a_format="nm").outputs["C"].row_order is None
    # a 1:16 operand keeps its own N:M whatever the default nm= says
    op16 = nm_encode(nm_matrix(np.random.default_rng(2), 2, 20, 1, 16), 1, 16)
    (f,) = compile_matmul(cfg, op16, b[:4].repeat(5, axis=0), a_format="nm").fields
    assert (f["nm_n_log2"], f["nm_m_log2"]) == (0, 4)


def test_precompressed_csr_is_stored_as_given():
    cfg = CONFIGS["default"]
    adj, x = power_law_rows(40, 40, 8, 0.08, seed=4)
    adj[5] = 0
    enc = csr_encode(adj)
    op = csr_validate(enc.rowptr.astype(np.int32), enc.col.astype(np.uint16), enc.values, adj.shape)
    for kernel in ("spmm", "gnn_aggregate"):
        for order_name in (None, "natural", "longest_first"):
            prog = compile_matmul(cfg, op, x, kernel=kernel, a_format="csr", row_order=order_name)
            (f,) = prog.fields
            assert f["opcode"] == isa.Opcode.SPMM
            order = natural(40) if order_name == "natural" else longest_first(adj)
            stored = check_image(cfg, prog, "csr", adj, x, order)
            ptr, col, vals, _ = decode_csr_fields(prog.l1, cfg.line_bytes, f)
            lengths = op.row_lengths()[order]
            assert np.array_equal(np.diff(ptr), lengths)
            take = np.concatenate([np.arange(op.rowptr[i], op.rowptr[i + 1]) for i in order])
            assert np.array_equal(col, op.col[take]) and np.array_equal(vals, op.values[take])
            if order_name == "longest_first" or order_name is None:
                assert (np.diff(lengths) <= 0).all()            # rows by decreasing length
                assert lengths[-1] == 0 and ptr[-1] == op.values.size
            assert np.array_equal(unpermute_rows(prog.outputs["C"], stored), adj)


def test_longest_first_counts_work_above_the_threshold():
    cfg = CONFIGS["tiny"]
    a = np.zeros((4, 8), np.int8)
    a[0, :6] = 1            # 6 small values
    a[1, :3] = 100          # 3 large ones
    a[2, :3] = -100         # 3 large ones (tie with row 1: logical order kept)
    a[3, :1] = 2
    b = np.ones((8, 4), np.int8)
    for threshold, expect in ((None, (0, 1, 2, 3)), (0, (0, 1, 2, 3)), (1, (0, 1, 2, 3)), (2, (1, 2, 3, 0)),
                              (101, (0, 1, 2, 3))):
        for a_format in ("dense", "bitmask", "csr"):
            prog = compile_matmul(cfg, a, b, a_format=a_format, threshold=threshold, row_order="longest_first")
            assert prog.outputs["C"].row_order == expect
            check_image(cfg, prog, a_format, a, b, np.array(expect))
    # gemm has no threshold (0): all nonzeros are work
    assert compile_matmul(cfg, a, b, kernel="gemm", row_order="longest_first").outputs["C"].row_order == (0, 1, 2, 3)


def test_unpermute_rows_inverts_the_row_order():
    rng = np.random.default_rng(9)
    for m in (1, 2, 7, 30):
        c = rng.integers(-1000, 1000, size=(m, 5))
        order = rng.permutation(m)
        spec = OutputSpec(0, m, 5, tuple(int(i) for i in order))
        assert np.array_equal(unpermute_rows(spec, c[order]), c)   # stored row p holds logical row order[p]
        assert unpermute_rows(OutputSpec(0, m, 5), c) is c


# ==== compile_matmul: format / operand mismatches ====================================================

A8 = np.array([[1, 0, 0, 2, 0, 0, 0, -3], [0, 0, 0, 0, 0, 5, 0, 0]], np.int8)
B8 = np.ones((8, 4), np.int8)
NM8 = nm_encode(A8, 2, 4)
CSR8 = csr_encode(A8)


@pytest.mark.parametrize("operand,a_format,kernel,message", [
    (NM8, "dense", "spmm", "format: 'dense' does not match an N:M operand (allowed: nm)"),
    (NM8, "bitmask", "spmm", "format: 'bitmask' does not match an N:M operand (allowed: nm)"),
    (NM8, "csr", "spmm", "format: 'csr' does not match an N:M operand (allowed: nm)"),
    (CSR8, "dense", "spmm", "format: 'dense' does not match a CSR operand (allowed: csr)"),
    (CSR8, "bitmask", "spmm", "format: 'bitmask' does not match a CSR operand (allowed: csr)"),
    (CSR8, "nm", "spmm", "format: 'nm' does not match a CSR operand (allowed: csr)"),
    # the kernel's rules come first
    (NM8, "nm", "gemm", "format: 'nm' is not allowed for gemm (allowed: dense)"),
    (CSR8, "csr", "gemm", "format: 'csr' is not allowed for gemm (allowed: dense)"),
    (NM8, "nm", "gnn_aggregate", "format: 'nm' is not allowed for gnn_aggregate (allowed: csr)"),
    (CSR8, "dense", "gnn_aggregate", "format: 'dense' is not allowed for gnn_aggregate (allowed: csr)"),
    (A8, "dense", "gnn_aggregate", "format: 'dense' is not allowed for gnn_aggregate (allowed: csr)"),
    (A8, "bitmask", "gnn_aggregate", "format: 'bitmask' is not allowed for gnn_aggregate (allowed: csr)"),
    (A8, "nm", "gnn_aggregate", "format: 'nm' is not allowed for gnn_aggregate (allowed: csr)"),
    (A8, "coo", "spmm", "format: 'coo' is not allowed (allowed: dense, bitmask, nm, csr)"),
])
def test_format_mismatch_errors(operand, a_format, kernel, message):
    with raises(message):
        compile_matmul(CONFIGS["tiny"], operand, B8, kernel=kernel, a_format=a_format)


def test_compile_errors_for_compressed_operands():
    cfg = CONFIGS["tiny"]
    with raises("A: group 0 of row 0 (columns 0..3) has 2 nonzeros (allowed: at most 1 for 1:4)"):
        compile_matmul(cfg, A8, B8, a_format="nm", nm=(1, 4))
    with raises("nm: 3:4 is not allowed (allowed: N < M, both powers of two, M in 2..16, e.g. 1:4, 2:4, 4:8)"):
        compile_matmul(cfg, A8, B8, a_format="nm", nm=(3, 4))
    with raises("B: shape (7, 4) does not match A (2, 8): B needs 8 rows"):
        compile_matmul(cfg, CSR8, B8[:7], a_format="csr")
    with raises("B: shape (9, 4) does not match A (2, 8): B needs 8 rows"):
        compile_matmul(cfg, NM8, np.ones((9, 4), np.int8), a_format="nm")
    with raises("row_order: 'shortest_first' is not allowed (allowed: natural, longest_first)"):
        compile_matmul(cfg, CSR8, B8, a_format="csr", row_order="shortest_first")


def test_gnn_aggregate_requires_csr_and_runs_as_spmm():
    cfg = CONFIGS["default"]
    adj, x = power_law_rows(32, 32, 16, 0.06, seed=1)
    for operand in (adj, csr_encode(adj)):
        prog = compile_matmul(cfg, operand, x, kernel="gnn_aggregate", a_format="csr")
        (f,) = prog.fields
        assert f["opcode"] == isa.Opcode.SPMM and f["a_format"] == isa.AFormat.CSR
        assert prog.outputs["C"].row_order == tuple(int(i) for i in longest_first(adj))
        check_image(cfg, prog, "csr", adj, x, longest_first(adj))
    with raises("format: 'dense' is not allowed for gnn_aggregate (allowed: csr)"):
        compile_matmul(cfg, adj, x, kernel="gnn_aggregate")   # the default format is dense


def test_compile_validates_precompressed_csr():
    dup = CsrMatrix(np.array([0, 2]), np.array([1, 1]), np.array([1, 2], np.int8), (1, 8))
    with pytest.raises(OperandError):
        compile_matmul(CONFIGS["tiny"], dup, B8, a_format="csr")


def test_compile_validates_precompressed_nm():
    bad = NmMatrix(np.array([[1, 2, 0, 0]], np.int8), np.array([[2, 1, 0, 1]], np.uint8), 2, 4, 8)
    with pytest.raises(OperandError):
        compile_matmul(CONFIGS["tiny"], bad, B8, a_format="nm")
