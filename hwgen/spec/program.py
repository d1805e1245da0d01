"""Program: the single input of all three executors, and Result: what each returns.

A Program is a descriptor table plus the L1 memory image the descriptors point into (and, for operands in
HBM or DAG programs, the HBM image and its tasks). The compiler (``hwgen.compiler``) makes them; the golden
model, the cycle model and the RTL runner read them. ``decode_output`` and friends are the one reading of
the output formats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwgen.spec import isa
from hwgen.spec.config import HwConfig
from hwgen.spec.layout import Layout

KERNELS = ("spmm", "gemm", "gnn_aggregate")   # gnn_aggregate: spmm of a CSR adjacency (edge weights)
A_FORMATS = ("dense", "bitmask", "nm", "csr")
ROW_ORDERS = ("natural", "longest_first")


@dataclass(frozen=True)
class OutputSpec:
    """Where an output lives and how its lines are ordered.

    In the output buffer (``hbm_addr`` None): ``m * ceil(n / L)`` lines from ``c_addr``, row-major over
    (row, lane block). In HBM (``hbm_addr``: where the STOREs left it, a virtual address when the program is
    paged): the same number of lines from ``hbm_addr``, row-major over (row, lane block) too, unless
    ``panel_blocks`` is set: then C is panel-major, as ``hwgen.compiler.tiling`` stores B's column panels: panel p
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
    # DAG programs (hwgen/compiler/dag.py): the scheduler's tasks, each its TASK fields (hwgen/spec/task_table.py) plus
    # "succ", "kernel", "tile", "rows"; the header's physical address (the CSR program_base). Empty: the
    # descriptors run in order on one engine.
    tasks: tuple[dict[str, Any], ...] = ()
    program_base: int | None = None

    def page_table(self, cfg: HwConfig, image: np.ndarray | None = None):
        """The program's page table (``hwgen.spec.page_table.PageTable``) read out of ``image`` (default: ``hbm``), or
        None for a program that is not paged."""
        if self.page_table_base is None:
            return None
        from hwgen.spec.page_table import PageTable
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


def output_words(cfg: HwConfig, blob: bytes, line_bytes: int | None = None) -> list[int]:
    """Lines as a STORE wrote them to HBM (bytes) -> one int per line, as ``decode_output`` takes;
    ``line_bytes``: as ``hbm_lines`` says (default: output lines)."""
    step = line_bytes or cfg.out_line_bits // 8
    return [int.from_bytes(blob[i:i + step], "little") for i in range(0, len(blob), step)]
