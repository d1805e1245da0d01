"""Operands in HBM: tile C = A @ B over row blocks of A, double-buffered in L1 and in the output buffer.

Paged memory (``hwgen/paging.py``): the tensors are B as its L1 image (``b_row_lines(N)`` lines per row), each
row tile of A encoded on its own in the chosen format (its rows, bitmask/CSR pointers relative to the tile)
and C, written by the STOREs as output lines (row-major over (row, lane block), ``acc_bits`` per lane). A
``PageAllocator`` with pages of ``memory.page_bytes`` places each of them, in that order, on whole pages: B
and the A tiles read-only, C writable. The LOAD / STORE descriptors carry VIRTUAL addresses; the HBM image
(``Program.hbm``, physical) holds the tensors in their physical pages and, right after the page pool, the
page table (``Program.page_table_base`` / ``page_table_entries``, what the engine's inputs of the same names
take). The pool has exactly the pages the tensors need, handed out lowest first (virtual == physical), or,
with ``page_seed``, twice as many handed out in an order drawn from the seed (scattered: every burst is
really translated, and the free pages are fragmented). ``Program.fragmentation`` is the allocator's report.
Pages are >= 4 KiB and a burst never crosses 4 KiB, so each burst is one translation.

L1: B at line 0, then two A buffers; the output buffer: two halves. Tile i uses A buffer and output half
``i % 2``. Task order, with the ``wait`` bits that make it safe::

    LOAD B, LOAD A0, C0 [wait LOAD], LOAD A1, S0 [wait COMPUTE], C1 [wait LOAD], LOAD A2, S1 [wait COMPUTE], ...

so compute of tile i overlaps the LOAD of tile i+1 and the STORE of tile i-1. Why nothing else is needed:
tasks issue in order and each unit runs one task at a time, so when LOAD A(i+1) is taken, C(i-1) (which read
that buffer) is done, since C(i) was taken before; and when C(i) is taken, S(i-2) (which read that output
half) is done, since S(i-1) was taken before.

Rows per tile: the most that let both A buffers (the largest encoded tile) and B fit in L1, and a tile's C
fit in half the output buffer.
"""
from __future__ import annotations

import numpy as np

from . import isa
from .config import HwConfig
from .dma_store import beats_per_line
from .formats import OperandError
from .layout import Layout
from .paging import PageAllocator
from .program import (
    OutputSpec,
    Program,
    _Image,
    check_kernel,
    check_matmul,
    place_a,
    place_b,
)

WAIT_LOAD, WAIT_COMPUTE = 1 << isa.Unit.LOAD, 1 << isa.Unit.COMPUTE
SCATTER = 2   # with a page seed, the pool has this many times the pages the tensors need


def _encode_tile(cfg: HwConfig, stored, a_format: str, rows: slice, k: int, first: int, limit: int):
    """One row tile of A placed in an L1 image from line ``first``: (fields, lines used, image)."""
    img = _Image(cfg, first, limit)
    if a_format in ("dense", "bitmask"):
        tile = stored[rows]
    elif a_format == "nm":
        from .formats import NmMatrix
        tile = NmMatrix(stored.values[rows], stored.indices[rows], stored.n, stored.m, stored.k)
    else:
        from .formats import CsrMatrix
        lo, hi = stored.rowptr[rows.start], stored.rowptr[rows.stop]
        tile = CsrMatrix(stored.rowptr[rows.start:rows.stop + 1] - lo, stored.col[lo:hi], stored.values[lo:hi],
                         (rows.stop - rows.start, k))
    fields = place_a(img, tile, a_format, rows.stop - rows.start, k)
    return fields, img.next - first, img


def compile_matmul_hbm(cfg: HwConfig, a, b: np.ndarray, kernel: str = "spmm", a_format: str = "dense",
                       threshold: int | None = None, nm: tuple[int, int] = (2, 4),
                       tile_rows: int | None = None, page_seed: int | None = None) -> Program:
    """C = A @ B with A, B and C in paged HBM, as LOAD / compute / STORE tasks over row tiles (see the module
    docstring). ``tile_rows`` caps the rows per tile (default: as many as fit); ``page_seed`` scatters the
    physical pages (default: deterministic, lowest first)."""
    check_kernel(kernel, a_format)
    stored, logical, b, threshold = check_matmul(cfg, a, b, kernel, a_format, threshold, nm)
    (m, k), n = logical.shape, b.shape[1]
    lay, W = Layout.of(cfg), cfg.line_bytes
    nbj = lay.blocks(n)
    parts, gather = beats_per_line(cfg)

    b_lines = k * lay.b_row_lines(n)
    if b_lines >= cfg.l1_lines:
        raise OperandError(f"l1.bytes: {cfg.l1.bytes} is too small for one tile: B ({k}x{n}) takes {b_lines} of "
                           f"{cfg.l1_lines} L1 lines (B is not tiled yet: split N)")
    b_img = _Image(cfg)
    b_addr = place_b(b_img, b)
    # rows per tile: C fits half the output buffer (a whole number of beats), both A buffers fit L1
    rows = min(m, cfg.out_lines // 2 // nbj, tile_rows or m)
    while rows > 0 and (rows * nbj) % gather and rows < m:
        rows -= 1
    buf_lines = (cfg.l1_lines - b_lines) // 2
    while rows > 0:
        try:
            sizes = [_encode_tile(cfg, stored, a_format, slice(i, min(i + rows, m)), k, 0, buf_lines)[1]
                     for i in range(0, m, rows)]
        except OperandError:       # a tile does not fit one buffer
            sizes = [buf_lines + 1]
        if max(sizes) <= buf_lines:
            break
        rows = rows // 2 if rows > 1 else 0
        while rows > 0 and (rows * nbj) % gather:
            rows -= 1
    if rows == 0:
        raise OperandError(
            f"l1.bytes: {cfg.l1.bytes} is too small for one tile: B ({k}x{n}) takes {b_lines} of {cfg.l1_lines} "
            f"L1 lines and two buffers of one row of A do not fit in the rest (or l1.out_bytes = "
            f"{cfg.l1.out_bytes} cannot hold one row of C twice)")
    if (m * nbj) % gather:
        raise OperandError(f"C: {m}x{n} is {m * nbj} output lines, not a whole number of {gather}-line AXI beats "
                           "(engine.lanes x acc_bits < scan_bytes x 8); pad M")

    # the tensors: B, the A tiles, C
    opcode = isa.Opcode.GEMM if kernel == "gemm" else isa.Opcode.SPMM
    base = dict(opcode=opcode, a_format=isa.AFormat[a_format.upper()], k=k, n=n, threshold=threshold,
                b_addr=b_addr)
    blobs = {"B": b_img.lines[:b_lines].tobytes()}
    tiles = []
    for t, i in enumerate(range(0, m, rows)):
        first = b_lines + (t % 2) * buf_lines
        fields, used, img = _encode_tile(cfg, stored, a_format, slice(i, min(i + rows, m)), k, first,
                                         first + buf_lines)
        blobs[f"A{t}"] = img.lines[first:first + used].tobytes()
        tiles.append((i, min(i + rows, m), fields, used, f"A{t}", first))
    out_line_bytes = cfg.out_line_bits // 8
    c_bytes = m * nbj * out_line_bytes

    # pages: place them, write them and the page table into the physical image
    pb = cfg.memory.page_bytes
    need = sum(-(-len(blob) // pb) for blob in blobs.values()) + -(-c_bytes // pb)
    alloc = PageAllocator(cfg, need * pb * (1 if page_seed is None else SCATTER), seed=page_seed)
    where = {name: alloc.alloc(name, len(blob), writable=False) for name, blob in blobs.items()}
    where["C"] = alloc.alloc("C", c_bytes)
    table = alloc.page_table()
    image = np.zeros(-(-(table.base + table.size_bytes) // pb) * pb, dtype=np.uint8)
    image[table.base:table.base + table.size_bytes] = np.frombuffer(table.image, np.uint8)
    for name, blob in blobs.items():
        table.write(image, where[name].vaddr, blob, check=False)
    c_hbm = where["C"].vaddr

    def load(hbm: int, line: int, lines: int, stream: bool, wait: int = 0) -> int:
        return isa.pack(opcode=isa.Opcode.LOAD, hbm_addr=hbm, a_addr=line, lines=lines, stream=int(stream),
                        wait=wait)

    def store(t: int) -> int:
        i0, i1 = tiles[t][0], tiles[t][1]
        return isa.pack(opcode=isa.Opcode.STORE, c_addr=(t % 2) * (cfg.out_lines // 2), lines=(i1 - i0) * nbj,
                        hbm_addr=c_hbm + i0 * nbj * out_line_bytes, wait=WAIT_COMPUTE)

    def compute(t: int) -> int:
        i0, i1, fields, *_ = tiles[t]
        return isa.pack(**base, **fields, m=i1 - i0, c_addr=(t % 2) * (cfg.out_lines // 2), wait=WAIT_LOAD)

    def load_a(t: int) -> int:
        _, _, _, used, name, first = tiles[t]
        return load(where[name].vaddr, first, used, stream=True)

    descs = [load(where["B"].vaddr, b_addr, b_lines, stream=False), load_a(0)]
    for t in range(len(tiles)):
        descs.append(compute(t))
        if t + 1 < len(tiles):
            descs.append(load_a(t + 1))
        descs.append(store(t))
    return Program(config_digest=cfg.digest(), descriptors=tuple(descs), l1=np.zeros((cfg.l1_lines, W), np.uint8),
                   outputs={"C": OutputSpec(0, m, n, hbm_addr=c_hbm)}, l1_lines_used=0,
                   tensors={"A": logical, "B": b}, kernel=kernel, hbm=image,
                   params={"tiles": len(tiles), "tile_rows": rows, "placement": "hbm", "page_seed": page_seed,
                           "pages": {name: t.ppns for name, t in where.items()}},
                   page_table_base=table.base, page_table_entries=table.num_entries,
                   fragmentation=alloc.fragmentation())
