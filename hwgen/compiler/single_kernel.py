"""Programs for one engine: a matmul, a chain of layers, top-k attention, with their operands in L1.

``compile_matmul`` places operands following ``hwgen.spec.layout`` and checks every input before anything runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwgen.spec import isa
from hwgen.spec.config import HwConfig
from hwgen.spec.formats import (
    DEFAULT_NM,
    CsrMatrix,
    NmMatrix,
    OperandError,
    bitmask_encode,
    check_nm,
    csr_encode,
    csr_validate,
    nm_encode,
    nm_validate,
)
from hwgen.spec.layout import Layout, log2
from hwgen.spec.program import A_FORMATS, KERNELS, ROW_ORDERS, OutputSpec, Program


def _check_operand(name: str, x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise OperandError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype != np.int8:
        raise OperandError(f"{name}: dtype {x.dtype} is not allowed (allowed: int8)")
    if x.ndim != 2:
        raise OperandError(f"{name}: shape {x.shape} is not allowed (allowed: a 2-D matrix)")
    if 0 in x.shape or max(x.shape) >= 1 << 16:
        raise OperandError(f"{name}: shape {x.shape} is not allowed (each dimension in 1..65535)")
    return x


class L1FullError(OperandError):
    """The operands do not fit L1: ``compile_matmul_hbm`` (``hwgen.compiler.tiling``) tiles them through HBM."""


class _Image:
    """Bump allocator over L1 lines ``first .. limit - 1``."""

    def __init__(self, cfg: HwConfig, first: int = 0, limit: int | None = None):
        self.cfg = cfg
        self.lines = np.zeros((cfg.l1_lines, cfg.line_bytes), dtype=np.uint8)
        self.first = self.next = first
        self.limit = cfg.l1_lines if limit is None else limit

    def place(self, what: str, blob: np.ndarray) -> int:
        """Copy ``blob`` (uint8, already padded to whole lines) and return its first line."""
        nlines = blob.size // self.cfg.line_bytes
        if self.next + nlines > self.limit:
            raise L1FullError(
                f"{what}: needs L1 lines {self.next}..{self.next + nlines - 1} but l1.bytes = {self.cfg.l1.bytes} "
                f"holds {self.cfg.l1_lines} lines of {self.cfg.line_bytes} bytes and lines {self.first}.."
                f"{self.limit - 1} are free for it (operands in HBM are tiled: hwgen.compiler.tiling)")
        start = self.next
        self.lines[start:start + nlines] = blob.reshape(nlines, self.cfg.line_bytes)
        self.next += nlines
        return start


def _rows_padded(x: np.ndarray, row_bytes: int) -> np.ndarray:
    out = np.zeros((x.shape[0], row_bytes), dtype=np.uint8)
    out[:, :x.shape[1]] = x.view(np.uint8)
    return out


def _pad_lines(blob: np.ndarray, line_bytes: int) -> np.ndarray:
    blob = blob.reshape(-1).view(np.uint8)
    return np.concatenate([blob, np.zeros(-blob.size % line_bytes, dtype=np.uint8)])


def _check_threshold(kernel: str, threshold, default: int) -> int:
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer))
                                  or not 0 <= threshold <= isa.THRESHOLD_MAX):
        raise OperandError(f"threshold: {threshold!r} is not allowed (allowed: an integer 0..{isa.THRESHOLD_MAX})")
    if kernel == "gemm":
        if threshold:
            raise OperandError(f"threshold: {threshold} is not allowed for gemm (allowed: 0; gemm is dense)")
        return 0
    return default if threshold is None else int(threshold)


def _as_format(a, a_format: str, nm: tuple[int, int]):
    """The operand in its storage format, plus the logical dense matrix for the golden model."""
    if isinstance(a, NmMatrix):
        if a_format != "nm":
            raise OperandError(f"format: {a_format!r} does not match an N:M operand (allowed: nm)")
        a = nm_validate(a.values, a.indices, a.n, a.m, a.k)
        return a, _check_operand("A", a.dense())
    if isinstance(a, CsrMatrix):
        if a_format != "csr":
            raise OperandError(f"format: {a_format!r} does not match a CSR operand (allowed: csr)")
        a = csr_validate(a.rowptr, a.col, a.values, a.shape)
        return a, _check_operand("A", a.dense())
    a = _check_operand("A", a)
    if a_format == "nm":
        return nm_encode(a, *nm), a
    if a_format == "csr":
        return csr_encode(a), a
    return a, a


def _requant_table(cfg: HwConfig, requant, n: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(isa.Requant, multipliers, shifts) from ``(multiplier, shift)`` (ints: per tensor; length-n arrays:
    per channel), checked against the ranges of golden.numerics.requantize."""
    if requant is None:
        return None
    if cfg.engine.acc_bits > 48:
        raise OperandError(f"requant: engine.acc_bits = {cfg.engine.acc_bits} is not allowed (allowed: <= 48, "
                           "the input range of the requantizer)")
    mult, shift = (np.atleast_1d(np.asarray(x)) for x in requant)
    kind = isa.Requant.PER_TENSOR if mult.size == 1 and shift.size == 1 else isa.Requant.PER_CHANNEL
    if kind == isa.Requant.PER_CHANNEL:
        if cfg.line_bytes < 2 * cfg.engine.lanes:
            raise OperandError(f"requant: per-channel needs engine.scan_bytes >= 2 x lanes "
                               f"({cfg.line_bytes} < {2 * cfg.engine.lanes})")
        mult, shift = np.broadcast_to(mult, (n,)), np.broadcast_to(shift, (n,))
        if mult.shape != (n,) or shift.shape != (n,):
            raise OperandError(f"requant: {mult.shape}/{shift.shape} multipliers/shifts for {n} columns "
                               "(allowed: one each, or one per column)")
    if not np.issubdtype(mult.dtype, np.integer) or mult.min() < 1 or mult.max() >= 1 << 15:
        raise OperandError(f"requant: multiplier {mult.tolist()[:4]} is not allowed (allowed: integers 1..32767)")
    if not np.issubdtype(shift.dtype, np.integer) or shift.min() < 0 or shift.max() > 47:
        raise OperandError(f"requant: shift {shift.tolist()[:4]} is not allowed (allowed: integers 0..47)")
    return kind, mult.astype("<u2"), shift.astype(np.uint8)


def _place_requant(img: "_Image", fields: dict, table, m: int, n: int) -> None:
    lay, W = Layout.of(img.cfg), img.cfg.line_bytes
    kind, mult, shift = table
    fields["requant"] = kind
    fields["rq_addr"] = img.place("requant.multipliers", _pad_lines(mult, W))
    img.place("requant.shifts", _pad_lines(shift, W))
    fields["d_addr"] = img.place("D", np.zeros(m * lay.words(n) * W, dtype=np.uint8))


def check_kernel(kernel: str, a_format: str) -> None:
    """The kernel and A format exist and go together."""
    if kernel not in KERNELS:
        raise OperandError(f"kernel: {kernel!r} is not allowed (allowed: {', '.join(KERNELS)})")
    if a_format not in A_FORMATS:
        raise OperandError(f"format: {a_format!r} is not allowed (allowed: {', '.join(A_FORMATS)})")
    if kernel == "gemm" and a_format != "dense":
        raise OperandError(f"format: {a_format!r} is not allowed for gemm (allowed: dense)")
    if kernel == "gnn_aggregate" and a_format != "csr":
        raise OperandError(f"format: {a_format!r} is not allowed for gnn_aggregate (allowed: csr)")


def check_matmul(cfg: HwConfig, a, b, kernel: str, a_format: str, threshold, nm: tuple[int, int]):
    """Checked operands of C = A @ B: (A in its storage format, A dense, B, threshold)."""
    if a_format == "nm":
        check_nm(*nm)
    stored, logical = _as_format(a, a_format, nm)
    b = _check_operand("B", b)
    if logical.shape[1] != b.shape[0]:
        raise OperandError(f"B: shape {b.shape} does not match A {logical.shape}: B needs {logical.shape[1]} rows")
    return stored, logical, b, _check_threshold(kernel, threshold, cfg.engine.threshold)


def compile_matmul(cfg: HwConfig, a, b: np.ndarray, kernel: str = "spmm", a_format: str = "dense",
                   threshold: int | None = None, nm: tuple[int, int] = DEFAULT_NM,
                   row_order: str | None = None, requant=None) -> Program:
    """One C = A @ B task: check the operands, place them in L1, write its descriptor.

    ``a`` is a dense int8 matrix (encoded into ``a_format`` here) or an already compressed NmMatrix or
    CsrMatrix (validated). ``row_order="longest_first"`` (the default for CSR) stores the rows with the most
    work first, so a long row never starts last and idles the other row units (C comes back unpermuted).
    ``requant=(multiplier, shift)`` (per tensor, or arrays per column) makes C int8 on the way out.
    """
    check_kernel(kernel, a_format)
    row_order = row_order or ("longest_first" if a_format == "csr" else "natural")
    if row_order not in ROW_ORDERS:
        raise OperandError(f"row_order: {row_order!r} is not allowed (allowed: {', '.join(ROW_ORDERS)})")
    stored, logical, b, threshold = check_matmul(cfg, a, b, kernel, a_format, threshold, nm)
    (m, k), n = logical.shape, b.shape[1]
    lay = Layout.of(cfg)

    order = None
    if row_order == "longest_first":
        work = (np.abs(logical.astype(np.int16)) >= max(threshold, 1)).sum(axis=1)
        order = np.argsort(-work, kind="stable")
        stored = _permute_rows(stored, order)

    img = _Image(cfg)
    fields: dict[str, int] = dict(opcode=isa.Opcode.GEMM if kernel == "gemm" else isa.Opcode.SPMM,
                                  a_format=isa.AFormat[a_format.upper()], m=m, k=k, n=n, threshold=threshold)
    fields.update(place_a(img, stored, a_format, m, k))
    fields["b_addr"] = place_b(img, b)
    table = _requant_table(cfg, requant, n)
    if table is not None:
        if order is not None:
            raise OperandError("requant: row_order 'longest_first' is not allowed with requant (allowed: natural, "
                               "so that the int8 rows land in order for the next layer)")
        _place_requant(img, fields, table, m, n)

    out_lines = m * lay.blocks(n)
    if out_lines > cfg.out_lines:
        raise OperandError(f"C: {m}x{n} needs {out_lines} output lines but l1.out_bytes = {cfg.l1.out_bytes} "
                           f"holds {cfg.out_lines} lines of {cfg.engine.lanes} x int{cfg.engine.acc_bits}")
    fields["c_addr"] = 0
    spec = OutputSpec(0, m, n, None if order is None else tuple(int(x) for x in order))
    tensors = {"A": logical, "B": b}
    if table is not None:
        tensors.update(requant_multiplier=table[1].astype(np.int64), requant_shift=table[2].astype(np.int64))
    return Program(config_digest=cfg.digest(), descriptors=(isa.pack(**fields),), l1=img.lines,
                   outputs={"C": spec}, l1_lines_used=img.next, tensors=tensors, kernel=kernel)


def place_a(img: _Image, stored, a_format: str, m: int, k: int) -> dict[str, int]:
    """Place operand A (already in its storage format) in ``img``; returns its descriptor fields."""
    cfg = img.cfg
    lay, W = Layout.of(cfg), cfg.line_bytes
    fields: dict[str, int] = {}
    if a_format == "dense":
        fields["a_addr"] = img.place("A", _rows_padded(stored, lay.words(k) * W))
    elif a_format == "bitmask":
        nw = lay.words(k)
        mask, ptr, vals = bitmask_encode(stored)
        mask_rows = np.zeros((m, nw * W), dtype=bool)
        mask_rows[:, :k] = mask
        fields["a_addr"] = img.place("A.mask", _pad_lines(np.packbits(mask_rows.reshape(-1), bitorder="little"), W))
        fields["a_ptr"] = img.place("A.ptr", _pad_lines(ptr.astype("<u4"), W))
        fields["a_meta"] = img.place("A.vals", _pad_lines(vals if vals.size else np.zeros(1, np.int8), W))
    elif a_format == "nm":
        fields.update(nm_n_log2=log2(stored.n), nm_m_log2=log2(stored.m))
        fields["a_addr"] = img.place("A.values", _rows_padded(stored.values, lay.words(stored.values.shape[1]) * W))
        fields["a_meta"] = img.place("A.indices", _pad_lines(_nm_index_bits(cfg, stored), W))
    else:
        fields["a_addr"] = img.place("A.values", _pad_lines(stored.values if stored.values.size
                                                            else np.zeros(1, np.int8), W))
        fields["a_ptr"] = img.place("A.rowptr", _pad_lines(stored.rowptr.astype("<u4"), W))
        fields["a_meta"] = img.place("A.col", _pad_lines(stored.col.astype("<u2") if stored.col.size
                                                         else np.zeros(1, "<u2"), W))
    return fields


def place_b(img: _Image, b: np.ndarray) -> int:
    return img.place("B", _rows_padded(b, Layout.of(img.cfg).b_row_lines(b.shape[1]) * img.cfg.line_bytes))


def compile_layers(cfg: HwConfig, a: np.ndarray, layers: list[tuple[np.ndarray, tuple]]) -> Program:
    """A chain of spmm layers, each requantized to int8 into L1 where the next layer reads it as its A:
    x_0 = a, x_{l+1} = requant_l(x_l @ B_l). The output "C" is the last layer's int8 result."""
    if not layers:
        raise OperandError("layers: an empty list is not allowed (allowed: one or more (B, requant) pairs)")
    x = _check_operand("A", a)
    lay, W = Layout.of(cfg), cfg.line_bytes
    img = _Image(cfg)
    rows, k = x.shape
    a_addr = img.place("A", _rows_padded(x, lay.words(k) * W))
    descriptors, tensors = [], {"A": x}
    for index, (b, requant) in enumerate(layers):
        b = _check_operand(f"B{index}", b)
        if b.shape[0] != k:
            raise OperandError(f"B{index}: shape {b.shape} does not match the layer input: needs {k} rows")
        n = b.shape[1]
        fields = dict(opcode=isa.Opcode.SPMM, a_format=isa.AFormat.DENSE, m=rows, k=k, n=n, threshold=0,
                      a_addr=a_addr, b_addr=img.place(f"B{index}", _rows_padded(b, lay.b_row_lines(n) * W)),
                      c_addr=0)
        table = _requant_table(cfg, requant, n)
        if table is None:
            raise OperandError(f"layers[{index}]: requant is required (allowed: (multiplier, shift))")
        _place_requant(img, fields, table, rows, n)
        if rows * lay.blocks(n) > cfg.out_lines:
            raise OperandError(f"C{index}: {rows}x{n} needs {rows * lay.blocks(n)} output lines but "
                               f"l1.out_bytes = {cfg.l1.out_bytes} holds {cfg.out_lines}")
        descriptors.append(isa.pack(**fields))
        tensors.update({f"B{index}": b, f"requant_multiplier{index}": table[1].astype(np.int64),
                        f"requant_shift{index}": table[2].astype(np.int64)})
        a_addr, k = fields["d_addr"], n          # the next layer reads this layer's int8 output as its A
    return Program(config_digest=cfg.digest(), descriptors=tuple(descriptors), l1=img.lines,
                   outputs={"C": OutputSpec(0, rows, k)}, l1_lines_used=img.next, tensors=tensors,
                   kernel="layers", params={"layers": len(layers)})


def compile_attention(cfg: HwConfig, q: np.ndarray, k: np.ndarray, v: np.ndarray, topk: int,
                      causal: bool = False) -> Program:
    """Top-k sparse attention as three tasks on one engine:
    1. S = Q Kᵀ (spmm; zeros of Q skipped; with ``causal`` only the lane blocks that hold allowed keys);
    2. TOPK: per query row the top-k scores -> integer softmax -> P bytes in a zeroed L1 region;
    3. O = P V (spmm over dense-stored P: its zeros are skipped at run time).
    """
    q, k, v = _check_operand("Q", q), _check_operand("K", k), _check_operand("V", v)
    (t, d), s, dv = q.shape, k.shape[0], v.shape[1]
    if k.shape[1] != d:
        raise OperandError(f"K: shape {k.shape} does not match Q {q.shape}: K needs {d} columns")
    if v.shape[0] != s:
        raise OperandError(f"V: shape {v.shape} does not match K {k.shape}: V needs {s} rows")
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or not 1 <= topk <= cfg.attention.topk_max:
        raise OperandError(f"topk: {topk!r} is not allowed (allowed: 1..{cfg.attention.topk_max}, "
                           "attention.topk_max of the config)")
    if causal and s < t:
        raise OperandError(f"K: {s} keys for {t} queries is not allowed with causal (allowed: keys >= queries)")
    lay, W = Layout.of(cfg), cfg.line_bytes
    img = _Image(cfg)
    q_addr = img.place("Q", _rows_padded(q, lay.words(d) * W))
    kt_addr = img.place("K^T", _rows_padded(np.ascontiguousarray(k.T), lay.b_row_lines(s) * W))
    p_addr = img.place("P", np.zeros(t * lay.words(s) * W, dtype=np.uint8))
    v_addr = img.place("V", _rows_padded(v, lay.b_row_lines(dv) * W))
    for name, cols in (("S", s), ("O", dv)):
        if t * lay.blocks(cols) > cfg.out_lines:
            raise OperandError(f"{name}: {t}x{cols} needs {t * lay.blocks(cols)} output lines but l1.out_bytes = "
                               f"{cfg.l1.out_bytes} holds {cfg.out_lines}")
    dense = dict(opcode=isa.Opcode.SPMM, a_format=isa.AFormat.DENSE, threshold=0, c_addr=0)
    scores = isa.pack(**dense, m=t, k=d, n=s, causal=int(causal), a_addr=q_addr, b_addr=kt_addr)
    select = isa.pack(opcode=isa.Opcode.TOPK, m=t, n=s, causal=int(causal), topk=topk, c_addr=0, a_addr=p_addr)
    output = isa.pack(**dense, m=t, k=s, n=dv, a_addr=p_addr, b_addr=v_addr)
    return Program(config_digest=cfg.digest(), descriptors=(scores, select, output), l1=img.lines,
                   outputs={"O": OutputSpec(0, t, dv)}, l1_lines_used=img.next,
                   tensors={"Q": q, "K": k, "V": v}, kernel="topk_attention",
                   params={"topk": int(topk), "causal": bool(causal), "frac_bits": cfg.attention.frac_bits})


def _permute_rows(stored, order: np.ndarray):
    if isinstance(stored, CsrMatrix):
        lengths = stored.row_lengths()[order]
        rowptr = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=rowptr[1:])
        take = np.concatenate([np.arange(stored.rowptr[i], stored.rowptr[i + 1]) for i in order] or [[]]).astype(int)
        return CsrMatrix(rowptr, stored.col[take], stored.values[take], stored.shape)
    if isinstance(stored, NmMatrix):
        return NmMatrix(stored.values[order], stored.indices[order], stored.n, stored.m, stored.k)
    return stored[order]


def _nm_index_bits(cfg: HwConfig, a: NmMatrix) -> np.ndarray:
    """Each value word's in-group indices, b bits each (layout.nm_meta_*), words back to back."""
    lay, W = Layout.of(cfg), cfg.line_bytes
    bits = 1 << lay.nm_meta_bits_log2(log2(a.m))
    rows, kept = a.indices.shape
    words = np.zeros((rows, lay.words(kept) * W), dtype=np.uint8)
    words[:, :kept] = a.indices
    fields = ((words.reshape(-1, 1) >> np.arange(bits, dtype=np.uint8)) & 1).astype(np.uint8)
    return np.packbits(fields.reshape(-1), bitorder="little")
