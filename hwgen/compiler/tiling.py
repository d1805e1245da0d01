"""Operands in HBM: tile C = A @ B over row blocks of A and, where B is too big for L1, column panels of B.

Paged memory (``hwgen/spec/page_table.py``): the tensors are B as its L1 image(s), each row tile of A encoded on its own
in the chosen format (its rows, bitmask/CSR pointers relative to the tile) and C, written by the STOREs as
output lines (``acc_bits`` per lane). A ``PageAllocator`` with pages of ``memory.page_bytes`` places each of
them, in that order, on whole pages: B and the A tiles read-only, C writable. The LOAD / STORE descriptors
carry VIRTUAL addresses; the HBM image (``Program.hbm``, physical) holds the tensors in their physical pages
and, right after the page pool, the page table (``Program.page_table_base`` / ``page_table_entries``, what the
engine's inputs of the same names take). The pool has exactly the pages the tensors need, handed out lowest
first (virtual == physical), or, with ``page_seed``, twice as many handed out in an order drawn from the seed
(scattered: every burst is really translated, and the free pages are fragmented). ``Program.fragmentation``
is the allocator's report. Pages are >= 4 KiB and a burst never crosses 4 KiB, so each burst is one
translation.

Panels. B (K x N) takes ``K * b_row_lines(N)`` L1 lines. When that does not leave room for two A buffers of
at least one row (or a row of C does not fit half the output buffer), N is split into panels of ``nb``
columns, ``nb`` a multiple of ``engine.lanes`` (whole lane blocks, so a panel's C lines are whole output
lines), as wide as fits; the last panel holds the rest and may be narrower (and end inside a lane block where
N does). When B fits there is one panel of N columns and the program is what it was before panels existed.
- B in HBM is ONE tensor holding the panels' L1 images back to back (panel p: K rows of ``b_row_lines(nb_p)``
  lines). A slice of B's own image would not do: a panel's rows are not contiguous there, so loading it
  would take one LOAD per row of B. Back to back, each panel is one LOAD of contiguous lines, and B keeps
  one set of pages (no page rounding per panel); with one panel it is exactly B's image.
- A is re-streamed once per panel: the row tiles are encoded once (one tensor each in HBM), and every panel
  LOADs all of them again (HBM traffic for A is ``panels`` times A). The tiles are the same for every
  panel; rows per tile are chosen for the widest panel.
- C in HBM is panel-major: panel p holds rows 0..M-1 x its lane blocks, row-major over (row, lane block
  of the panel), from output line ``M * (lane blocks of the panels before p)``. ``OutputSpec.panel_blocks``
  (lane blocks per panel, None with one panel, which is plain row-major over (row, lane block)) tells
  ``hwgen.spec.program.decode_output`` how to put C back together; the simulator and the testbench read the same
  ``M * ceil(N / L)`` lines from ``hbm_addr`` and decode them with it. One STORE per tile, as before.

L1: the B panel at line 0 (sized for the widest panel), then two A buffers; the output buffer: two halves.
Number the (panel, row tile) pairs g = p * T + t (T row tiles per panel): tile g uses A buffer and output
half ``g % 2`` (parity runs on across panels, so with T odd a row tile alternates buffers from one panel to
the next; the tile encodings are position-independent, only the descriptor's L1 addresses move). Task
order, with the ``wait`` bits that make it safe::

    LOAD B0, LOAD A0, C0 [wait LOAD], LOAD A1, S0 [wait COMPUTE], C1 [wait LOAD], LOAD A2, S1 [wait COMPUTE], ...
    ... C(g-1) [wait LOAD], LOAD A(g), S(g-1) [wait COMPUTE], LOAD Bp [wait COMPUTE], C(g) [wait LOAD], ...

(the second line where g is the first tile of panel p > 0). Compute of tile g overlaps the LOAD of tile g+1
and the STORE of tile g-1. Why nothing else is needed: tasks issue in order and each unit runs one task at a
time, so when LOAD A(g+1) is taken, C(g-1) (which read that buffer) is done, since C(g) was taken before;
when C(g) is taken, S(g-2) (which read that output half) is done, since S(g-1) was taken before; LOAD Bp
waits until the compute unit is idle, so C(g-1), the last task that reads panel p-1 of B, is done before B
is overwritten; and C(g) waits for the LOAD unit, so Bp and A(g) are in L1 when it starts. Between panels
the compute unit idles while Bp loads (one B buffer: two would halve the panel width and double the times
A is re-streamed).

Rows per tile: the most that let both A buffers (the largest encoded tile) and the B panel fit in L1, and a
tile's C fit in half the output buffer.
"""
from __future__ import annotations

import numpy as np

from hwgen.compiler.page_allocator import PageAllocator
from hwgen.compiler.single_kernel import _Image, check_kernel, check_matmul, place_a, place_b
from hwgen.spec import isa
from hwgen.spec.axi import beats_per_line
from hwgen.spec.config import HwConfig
from hwgen.spec.formats import DEFAULT_NM, OperandError
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, Program

WAIT_LOAD, WAIT_COMPUTE = 1 << isa.Unit.LOAD, 1 << isa.Unit.COMPUTE
SCATTER = 2   # with a page seed, the pool has this many times the pages the tensors need
A_ADDRS = ("a_addr", "a_ptr", "a_meta")   # the L1 lines of a tile's A fields: moved to the tile's buffer


def _encode_tile(cfg: HwConfig, stored, a_format: str, rows: slice, k: int, first: int, limit: int):
    """One row tile of A placed in an L1 image from line ``first``: (fields, lines used, image)."""
    img = _Image(cfg, first, limit)
    if a_format in ("dense", "bitmask"):
        tile = stored[rows]
    elif a_format == "nm":
        from hwgen.spec.formats import NmMatrix
        tile = NmMatrix(stored.values[rows], stored.indices[rows], stored.n, stored.m, stored.k)
    else:
        from hwgen.spec.formats import CsrMatrix
        lo, hi = stored.rowptr[rows.start], stored.rowptr[rows.stop]
        tile = CsrMatrix(stored.rowptr[rows.start:rows.stop + 1] - lo, stored.col[lo:hi], stored.values[lo:hi],
                         (rows.stop - rows.start, k))
    fields = place_a(img, tile, a_format, rows.stop - rows.start, k)
    return fields, img.next - first, img


def _fit_rows(cfg: HwConfig, stored, a_format: str, m: int, k: int, nbjs: tuple[int, ...], buf_lines: int,
              tile_rows: int | None, gather: int):
    """The most rows per tile (0: none) such that every tile's C fits half the output buffer as whole AXI
    beats for each panel width (``nbjs``: lane blocks of the widest and of the last panel) and the largest
    encoded tile fits ``buf_lines``; with the tiles encoded from line 0: [(fields, lines used, image)]."""
    nbj = max(nbjs)

    def odd_beats(rows: int) -> bool:
        return any((rows * j) % gather for j in nbjs)
    rows = min(m, cfg.out_lines // 2 // nbj, tile_rows or m)
    while rows > 0 and odd_beats(rows) and rows < m:
        rows -= 1
    while rows > 0:
        try:
            tiles = [_encode_tile(cfg, stored, a_format, slice(i, min(i + rows, m)), k, 0, buf_lines)
                     for i in range(0, m, rows)]
        except OperandError:       # a tile does not fit one buffer
            tiles = None
        if tiles is not None and max(used for _, used, _ in tiles) <= buf_lines:
            return rows, tiles
        rows = rows // 2 if rows > 1 else 0
        while rows > 0 and odd_beats(rows):
            rows -= 1
    return 0, []


def _panel_widths(n: int, nb: int) -> list[int]:
    return [min(nb, n - j) for j in range(0, n, nb)]


def _plan(cfg: HwConfig, stored, logical: np.ndarray, a_format: str, n: int, tile_rows: int | None):
    """(panel width nb, rows per tile, encoded tiles): one panel of N columns when B fits with two A buffers,
    else the widest panel (whole lane blocks) that does. Raises OperandError naming the sizes when even one
    lane block of B leaves no room for two buffers of one row of A."""
    (m, k), lay, L = logical.shape, Layout.of(cfg), cfg.engine.lanes
    _, gather = beats_per_line(cfg)

    def attempt(nb: int):
        b_lines = k * lay.b_row_lines(nb)
        if b_lines >= cfg.l1_lines:
            return 0, []
        nbjs = tuple(sorted({lay.blocks(w) for w in _panel_widths(n, nb)}))
        return _fit_rows(cfg, stored, a_format, m, k, nbjs, (cfg.l1_lines - b_lines) // 2, tile_rows, gather)

    rows, tiles = attempt(n)
    if rows:
        if (m * lay.blocks(n)) % gather:
            raise OperandError(f"C: {m}x{n} is {m * lay.blocks(n)} output lines, not a whole number of {gather}-line "
                               "AXI beats (engine.lanes x acc_bits < scan_bytes x 8); pad M")
        return n, rows, tiles
    # panels: for each B footprint (lines per row of B, widest first) the widest whole-lane-block panel
    # narrower than N whose C row fits half the output buffer
    cap = min((n - 1) // L * L, cfg.out_lines // 2 * L)
    widths = sorted({min(r * cfg.line_bytes, cap) for r in range(1, lay.b_row_lines(cap) + 1)} - {0}, reverse=True)
    beats_ok = False
    for nb in widths:
        if k * lay.b_row_lines(nb) >= cfg.l1_lines:
            continue
        if any((m * lay.blocks(w)) % gather for w in _panel_widths(n, nb)):
            continue
        beats_ok = True
        rows, tiles = attempt(nb)
        if rows:
            return nb, rows, tiles
    block = k * lay.b_row_lines(L)
    if widths and not beats_ok and block < cfg.l1_lines:
        raise OperandError(f"C: {m} rows of a panel of B is not a whole number of {gather}-line AXI beats "
                           "(engine.lanes x acc_bits < scan_bytes x 8); pad M")
    heavy = int(np.argmax((logical != 0).sum(axis=1)))     # the row whose encoding is the largest
    try:
        row = f"{_encode_tile(cfg, stored, a_format, slice(heavy, heavy + 1), k, 0, cfg.l1_lines)[1]} lines"
    except OperandError:
        row = f"more than {cfg.l1_lines} lines"
    raise OperandError(
        f"l1.bytes: {cfg.l1.bytes} is too small for one tile: B ({k}x{n}) takes {k * lay.b_row_lines(n)} of "
        f"{cfg.l1_lines} L1 lines, and even a panel of one lane block ({k}x{L}) takes {block}, which leaves "
        f"{max(cfg.l1_lines - block, 0)} lines for two A buffers while one row of A ({a_format}) takes {row}")


def compile_matmul_hbm(cfg: HwConfig, a, b: np.ndarray, kernel: str = "spmm", a_format: str = "dense",
                       threshold: int | None = None, nm: tuple[int, int] = DEFAULT_NM,
                       tile_rows: int | None = None, page_seed: int | None = None) -> Program:
    """C = A @ B with A, B and C in paged HBM, as LOAD / compute / STORE tasks over row tiles of A and, when B
    does not fit L1 with two A buffers, column panels of B (see the module docstring: A is then re-streamed
    once per panel). ``tile_rows`` caps the rows per tile (default: as many as fit); ``page_seed`` scatters
    the physical pages (default: deterministic, lowest first)."""
    check_kernel(kernel, a_format)
    stored, logical, b, threshold = check_matmul(cfg, a, b, kernel, a_format, threshold, nm)
    (m, k), n = logical.shape, b.shape[1]
    lay, W = Layout.of(cfg), cfg.line_bytes
    nb, rows, encoded = _plan(cfg, stored, logical, a_format, n, tile_rows)
    widths = _panel_widths(n, nb)
    b_lines = k * lay.b_row_lines(nb)            # the B region of L1: the widest panel
    buf_lines = (cfg.l1_lines - b_lines) // 2

    # the tensors: B (the panels' L1 images back to back), the A tiles, C
    opcode = isa.Opcode.GEMM if kernel == "gemm" else isa.Opcode.SPMM
    base = dict(opcode=opcode, a_format=isa.AFormat[a_format.upper()], k=k, threshold=threshold)
    panels, images = [], []                       # (first column, width, first line in B's blob, lines)
    for j0, w in zip(range(0, n, nb), widths):
        img = _Image(cfg)
        b_addr = place_b(img, b[:, j0:j0 + w])
        lines = k * lay.b_row_lines(w)
        panels.append((j0, w, sum(len(x) for x in images), lines, b_addr))
        images.append(img.lines[:lines])
    blobs = {"B": np.concatenate(images).tobytes()}
    tiles = []                                    # (first row, end row, fields from line 0, lines, tensor)
    for t, (i, (fields, used, img)) in enumerate(zip(range(0, m, rows), encoded)):
        blobs[f"A{t}"] = img.lines[:used].tobytes()
        tiles.append((i, min(i + rows, m), fields, used, f"A{t}"))
    out_line_bytes = cfg.out_line_bits // 8
    c_bytes = m * lay.blocks(n) * out_line_bytes

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

    def load_b(p: int, wait: int = 0) -> int:
        _, _, first, lines, b_addr = panels[p]
        return load(where["B"].vaddr + first * W, b_addr, lines, stream=False, wait=wait)

    def half(g: int) -> int:
        return (g % 2) * (cfg.out_lines // 2)

    def store(g: int) -> int:
        p, t = divmod(g, len(tiles))
        nbj, (i0, i1) = lay.blocks(panels[p][1]), tiles[t][:2]
        first_line = m * lay.blocks(panels[p][0]) + i0 * nbj      # panel-major C (panel widths: whole blocks)
        return isa.pack(opcode=isa.Opcode.STORE, c_addr=half(g), lines=(i1 - i0) * nbj,
                        hbm_addr=c_hbm + first_line * out_line_bytes, wait=WAIT_COMPUTE)

    def a_fields(g: int) -> dict[str, int]:
        """Tile g's A fields: its encoding moved from line 0 to its buffer."""
        first = b_lines + (g % 2) * buf_lines
        return {key: (v + first if key in A_ADDRS else v) for key, v in tiles[g % len(tiles)][2].items()}

    def compute(g: int) -> int:
        p, t = divmod(g, len(tiles))
        i0, i1 = tiles[t][0], tiles[t][1]
        return isa.pack(**base, **a_fields(g), m=i1 - i0, n=panels[p][1], b_addr=panels[p][4], c_addr=half(g),
                        wait=WAIT_LOAD)

    def load_a(g: int) -> int:
        _, _, _, used, name = tiles[g % len(tiles)]
        return load(where[name].vaddr, b_lines + (g % 2) * buf_lines, used, stream=True)

    descs = [load_b(0), load_a(0)]
    count = len(panels) * len(tiles)
    for g in range(count):
        if g and g % len(tiles) == 0:             # first tile of a panel: its B once C(g-1) is done
            descs.append(load_b(g // len(tiles), wait=WAIT_COMPUTE))
        descs.append(compute(g))
        if g + 1 < count:
            descs.append(load_a(g + 1))
        descs.append(store(g))
    spec = OutputSpec(0, m, n, hbm_addr=c_hbm, panel_blocks=lay.blocks(nb) if len(panels) > 1 else None)
    return Program(config_digest=cfg.digest(), descriptors=tuple(descs), l1=np.zeros((cfg.l1_lines, W), np.uint8),
                   outputs={"C": spec}, l1_lines_used=0,
                   tensors={"A": logical, "B": b}, kernel=kernel, hbm=image,
                   params={"tiles": len(tiles), "tile_rows": rows, "panels": len(panels), "panel_cols": nb,
                           "placement": "hbm", "page_seed": page_seed,
                           "pages": {name: t.ppns for name, t in where.items()}},
                   page_table_base=table.base, page_table_entries=table.num_entries,
                   fragmentation=alloc.fragmentation())
