"""Program: the single input of all three executors, and Result: what each returns.

A Program is a descriptor table plus the L1 memory image the descriptors point into. ``compile_matmul``
places operands following ``hwgen.layout`` and checks every input before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import isa
from .config import HwConfig
from .formats import (
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
from .layout import Layout, log2

KERNELS = ("spmm", "gemm", "gnn_aggregate")   # gnn_aggregate: spmm of a CSR adjacency (edge weights)
A_FORMATS = ("dense", "bitmask", "nm", "csr")
ROW_ORDERS = ("natural", "longest_first")


@dataclass(frozen=True)
class OutputSpec:
    """Where an output lives and how its lines are ordered.

    In the output buffer (``hbm_addr`` None): ``m * ceil(n / L)`` lines from ``c_addr``, row-major over
    (row, lane block). In HBM (``hbm_addr``: where the STOREs left it, a virtual address when the program is
    paged): the same number of lines from ``hbm_addr``, row-major over (row, lane block) too, unless
    ``panel_blocks`` is set: then C is panel-major, as ``hwgen.tiling`` stores B's column panels: panel p
    covers lane blocks ``p * panel_blocks ..`` (the last panel may have fewer) and holds rows 0..m-1 of them,
    row-major over (row, lane block of the panel). With ``int8_rows`` the lines at ``hbm_addr`` are L1 lines
    instead, as a STORE with ``source`` = 1 writes them: m rows of ``words(n)`` lines of int8 (requantized C,
    bytes n.. of a row are padding). Whoever reads C back reads the lines in storage order (``hbm_lines``)
    and leaves the reordering to ``decode_output``.
    """
    c_addr: int
    m: int
    n: int
    row_order: tuple[int, ...] | None = None   # stored row p holds logical row row_order[p]
    hbm_addr: int | None = None                # where a STORE left C in HBM, a virtual address when the program
                                               # is paged (None: read the output buffer)
    panel_blocks: int | None = None            # C in HBM is panel-major with this many lane blocks per panel
    int8_rows: bool = False                    # C in HBM is int8 rows of L1 lines (a STORE from L1)

    def __post_init__(self):
        if self.panel_blocks is not None:
            if isinstance(self.panel_blocks, bool) or not isinstance(self.panel_blocks, int) or self.panel_blocks < 1:
                raise ValueError(f"panel_blocks: {self.panel_blocks!r} is not allowed (allowed: None or an "
                                 "integer >= 1)")
            if self.hbm_addr is None:
                raise ValueError("panel_blocks: only allowed for an output in HBM (hbm_addr is None: the output "
                                 "buffer holds C row-major)")
        if self.int8_rows and (self.hbm_addr is None or self.panel_blocks is not None):
            raise ValueError("int8_rows: only allowed for an output in HBM without panel_blocks (a STORE from L1 "
                             "writes whole rows)")


@dataclass(frozen=True)
class Program:
    config_digest: str
    descriptors: tuple[int, ...]
    l1: np.ndarray  # uint8, shape (l1_lines, line_bytes)
    outputs: dict[str, OutputSpec]
    l1_lines_used: int
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # logical operands, for the golden model
    kernel: str = "matmul"                                        # what the golden model runs
    params: dict[str, Any] = field(default_factory=dict)
    hbm: np.ndarray | None = None   # uint8: the physical HBM image at the start (operands in HBM)
    # paged programs (LOAD/STORE hbm_addr are virtual): the page table in ``hbm``, as the engine's
    # page_table_base / page_table_entries inputs get it, and the allocator's fragmentation report
    page_table_base: int | None = None
    page_table_entries: int = 0
    fragmentation: dict[str, Any] = field(default_factory=dict)
    # DAG programs (hwgen/compiler.py): the scheduler's tasks, each its TASK fields (hwgen/task_table.py) plus
    # "succ", "kernel", "tile", "rows"; the header's physical address (the CSR program_base). Empty: the
    # descriptors run in order on one engine.
    tasks: tuple[dict[str, Any], ...] = ()
    program_base: int | None = None

    def page_table(self, cfg: HwConfig, image: np.ndarray | None = None):
        """The program's page table (``hwgen.paging.PageTable``) read out of ``image`` (default: ``hbm``), or
        None for a program that is not paged."""
        if self.page_table_base is None:
            return None
        from .paging import PageTable
        return PageTable.in_image(self.hbm if image is None else image, self.page_table_base,
                                  self.page_table_entries, cfg.memory.page_bytes)

    @property
    def fields(self) -> list[dict[str, int]]:
        return [isa.unpack(d) for d in self.descriptors]

    def work(self) -> dict[str, int]:
        """MACs a matmul program needs: useful ones have a nonzero A element at or above the threshold."""
        tasks = [f for f in self.fields if isa.unit_of(f["opcode"]) == isa.Unit.COMPUTE]
        a = self.tensors["A"].astype(np.int16)
        useful = int(((a != 0) & (np.abs(a) >= tasks[0]["threshold"])).sum()) * self.tensors["B"].shape[1]
        return {"useful_macs": useful, "dense_macs": sum(f["m"] * f["k"] * f["n"] for f in tasks)}


@dataclass
class Result:
    outputs: dict[str, np.ndarray]
    cycles: int | None  # None where the executor has no notion of time (golden)
    stats: dict[str, Any] = field(default_factory=dict)


def output_lines(cfg: HwConfig, spec: OutputSpec) -> list[int]:
    """Output-buffer lines holding C, row-major over (row i, lane block j) (C in HBM: ``hbm_lines``)."""
    lay = Layout.of(cfg)
    nbj = lay.blocks(spec.n)
    return [lay.c_line(spec.c_addr, i * nbj, j) for i in range(spec.m) for j in range(nbj)]


def stored_line_order(cfg: HwConfig, spec: OutputSpec) -> np.ndarray:
    """For each (row, lane block), row-major, the index of its line in storage order: ``arange`` for
    row-major C, the panel-major position when ``spec.panel_blocks`` is set (see ``OutputSpec``)."""
    nbj = Layout.of(cfg).blocks(spec.n)
    order = np.arange(spec.m * nbj).reshape(spec.m, nbj)
    pb = spec.panel_blocks
    if pb is None or pb >= nbj:
        return order.reshape(-1)
    for j0 in range(0, nbj, pb):
        j1 = min(j0 + pb, nbj)
        order[:, j0:j1] = spec.m * j0 + np.arange(spec.m * (j1 - j0)).reshape(spec.m, j1 - j0)
    return order.reshape(-1)


def hbm_lines(cfg: HwConfig, spec: OutputSpec) -> tuple[int, int]:
    """(lines, bytes per line) of an output in HBM: m rows of ``words(n)`` L1 lines with ``int8_rows``, else
    its output lines."""
    lay = Layout.of(cfg)
    if spec.int8_rows:
        return spec.m * lay.words(spec.n), cfg.line_bytes
    return spec.m * lay.blocks(spec.n), cfg.out_line_bits // 8


def decode_output(cfg: HwConfig, spec: OutputSpec, words: list[int]) -> np.ndarray:
    """Output lines (as read, in storage order: ``output_lines`` order, or panel-major in HBM when
    ``spec.panel_blocks`` is set, or L1 lines of int8 rows with ``spec.int8_rows``) -> C as int64 (M, N).

    Lane l of an output line is bits [l*acc_bits, (l+1)*acc_bits), two's complement; byte b of an L1 line is
    element b of its part of a row, int8."""
    if spec.int8_rows:
        count, line_bytes = hbm_lines(cfg, spec)
        if len(words) != count:
            raise ValueError(f"output: {len(words)} lines read, expected {count} ({spec.m} int8 rows of {spec.n} "
                             f"in lines of {line_bytes} bytes)")
        blob = b"".join(w.to_bytes(line_bytes, "little") for w in words)
        rows = np.frombuffer(blob, np.int8).reshape(spec.m, -1)[:, :spec.n]
        return unpermute_rows(spec, rows.astype(np.int64))
    L, bits = cfg.engine.lanes, cfg.engine.acc_bits
    expect = spec.m * Layout.of(cfg).blocks(spec.n)
    if len(words) != expect:
        raise ValueError(f"output: {len(words)} lines read, expected {expect} ({spec.m}x{spec.n} in lines of "
                         f"{L} lanes)")
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    lanes = [(w >> (lane * bits)) & mask for w in words for lane in range(L)]
    c = np.array([v - (1 << bits) if v & sign else v for v in lanes], dtype=np.int64).reshape(-1, L)
    c = c[stored_line_order(cfg, spec)]
    return unpermute_rows(spec, c.reshape(spec.m, -1)[:, :spec.n])


def unpermute_rows(spec: OutputSpec, stored: np.ndarray) -> np.ndarray:
    """Rows as the engine stored them -> logical order."""
    if spec.row_order is None:
        return stored
    out = np.empty_like(stored)
    out[list(spec.row_order)] = stored
    return out


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
            raise OperandError(
                f"{what}: needs L1 lines {self.next}..{self.next + nlines - 1} but l1.bytes = {self.cfg.l1.bytes} "
                f"holds {self.cfg.l1_lines} lines of {self.cfg.line_bytes} bytes and lines {self.first}.."
                f"{self.limit - 1} are free for it (operands in HBM are tiled: hwgen.tiling)")
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
                                  or not 0 <= threshold <= 128):
        raise OperandError(f"threshold: {threshold!r} is not allowed (allowed: an integer 0..128)")
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


def output_words(cfg: HwConfig, blob: bytes, line_bytes: int | None = None) -> list[int]:
    """Lines as a STORE wrote them to HBM (bytes) -> one int per line, as ``decode_output`` takes;
    ``line_bytes``: as ``hbm_lines`` says (default: output lines)."""
    step = line_bytes or cfg.out_line_bits // 8
    return [int.from_bytes(blob[i:i + step], "little") for i in range(0, len(blob), step)]


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
