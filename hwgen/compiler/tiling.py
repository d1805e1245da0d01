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

K tiling (only when even a panel of one lane block of B leaves no room for two A buffers of one row; every
program that fits without it is built exactly as above). K is cut into ``chunks`` of ``chunk_k`` columns of
A / rows of B (N:M: whole groups of M; bitmask and CSR: each chunk's columns of a tile encoded on their own,
column indices relative to the chunk), as even as the granule allows. A step is one (panel p, row tile t,
chunk c), in the order p, t, c (c innermost, so a tile's C stays in its output half while its chunks run):

- L1: two B chunk buffers at line 0 (sized for the widest panel), then two A buffers; step s uses B buffer
  and A buffer ``s % 2``. A tile's chunks lie back to back in its tensor in HBM (one tensor per tile, as
  before); a B chunk is the rows k0..k1 of its panel's image, contiguous lines of the one B tensor.
- Compute of step s is a gemm/spmm over its chunk with ``accumulate`` = 0 for c = 0 and 1 after, so each job
  starts from what the tile's previous chunk left in its output line; in increasing k, the overflow rule
  applied after every addition, it is the same int32 (acc_bits) as one pass, saturation included (partial
  sums added at the end would not be). Tile g = p * T + t keeps output half ``g % 2`` for all its chunks;
  its STORE follows its last chunk.
- Order::

    LOAD B(0), LOAD A(0), C(0) [wait LOAD], LOAD B(1), LOAD A(1), C(1) [wait LOAD], ...
    ... C(s) [wait LOAD], LOAD B(s+1), LOAD A(s+1), S(g) [wait COMPUTE], C(s+1) [wait LOAD], ...

  (S(g) where s is the last chunk of tile g.) Why this is safe, with the same arguments as above: LOAD B/A(s+1)
  overwrite the buffers C(s-1) read, and C(s) was taken before them, so C(s-1) is done; C(s) waits for the
  LOAD unit, so its chunks are in L1; the chunks of tile g write and read output half g % 2, which S(g-2)
  read, and S(g-1) was taken before C(s), so S(g-2) is done; C(s) with ``accumulate`` reads what C(s-1)
  wrote, on the same unit, so it is done; S(g) waits for COMPUTE, so the last chunk is in the output buffer
  before it is read. Two B buffers (not one as between panels) because B changes every step: with one,
  every step would wait for its B.
- B is re-read once per row tile (A still once per panel; keeping a whole panel of B in L1 is what does not
  fit), so rows per tile matter more than before. The plan (panel width, rows per tile, chunk_k, each
  chunk as long as fits beside the others) is the one with the least estimated time: loads and compute
  overlap, so the larger of the two (``_estimate``); ties go to fewer steps.
"""
from __future__ import annotations

import numpy as np

from hwgen.compiler.page_allocator import PageAllocator
from hwgen.compiler.single_kernel import _Image, _rows_padded, check_kernel, check_matmul, place_a
from hwgen.spec import isa
from hwgen.spec.axi import beats_per_line
from hwgen.spec.config import HwConfig
from hwgen.spec.formats import DEFAULT_NM, CsrMatrix, NmMatrix, OperandError, csr_encode
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, Program
from hwgen.spec.timing import EngineTiming, RowUnitTiming

WAIT_LOAD, WAIT_COMPUTE = 1 << isa.Unit.LOAD, 1 << isa.Unit.COMPUTE
SCATTER = 2   # with a page seed, the pool has this many times the pages the tensors need
A_ADDRS = ("a_addr", "a_ptr", "a_meta")   # the L1 lines of a tile's A fields: moved to the tile's buffer


def _encode_tile(cfg: HwConfig, stored, a_format: str, rows: slice, k: int, first: int, limit: int,
                 cols: slice | None = None):
    """One row tile of A (with ``cols``: only columns cols.start .. cols.stop - 1 of K, a chunk; N:M: starting
    on a group) placed in an L1 image from line ``first``: (fields, lines used, image)."""
    img = _Image(cfg, first, limit)
    k0, k1 = (0, k) if cols is None else (cols.start, cols.stop)
    if a_format in ("dense", "bitmask"):
        tile = stored[rows] if cols is None else np.ascontiguousarray(stored[rows, k0:k1])
    elif a_format == "nm":
        v0, v1 = k0 // stored.m * stored.n, -(-k1 // stored.m) * stored.n   # the chunk's groups' kept values
        tile = NmMatrix(stored.values[rows, v0:v1], stored.indices[rows, v0:v1], stored.n, stored.m, k1 - k0)
    else:
        lo, hi = stored.rowptr[rows.start], stored.rowptr[rows.stop]
        tile = CsrMatrix(stored.rowptr[rows.start:rows.stop + 1] - lo, stored.col[lo:hi], stored.values[lo:hi],
                         (rows.stop - rows.start, k))
        if cols is not None:      # the chunk's entries, columns relative to it
            row = np.repeat(np.arange(rows.stop - rows.start), np.diff(tile.rowptr))
            keep = (tile.col >= k0) & (tile.col < k1)
            ptr = np.zeros(rows.stop - rows.start + 1, dtype=np.int64)
            np.cumsum(np.bincount(row[keep], minlength=rows.stop - rows.start), out=ptr[1:])
            tile = CsrMatrix(ptr, tile.col[keep] - k0, tile.values[keep], (rows.stop - rows.start, k1 - k0))
    fields = place_a(img, tile, a_format, rows.stop - rows.start, k1 - k0)
    return fields, img.next - first, img


def _row_counts(m: int, nbjs: tuple[int, ...], out_lines: int, tile_rows: int | None, gather: int):
    """Rows per tile to try, most first: a tile's C fits half the output buffer as whole AXI beats for each
    panel width (``nbjs``: lane blocks of the widest and of the last panel), then halving."""
    nbj = max(nbjs)

    def odd_beats(rows: int) -> bool:
        return any((rows * j) % gather for j in nbjs)
    rows = min(m, out_lines // 2 // nbj, tile_rows or m)
    while rows > 0 and odd_beats(rows) and rows < m:
        rows -= 1
    while rows > 0:
        yield rows
        rows = rows // 2 if rows > 1 else 0
        while rows > 0 and odd_beats(rows):
            rows -= 1


def _fit_rows(cfg: HwConfig, stored, a_format: str, m: int, k: int, nbjs: tuple[int, ...], buf_lines: int,
              tile_rows: int | None, gather: int):
    """The most rows per tile (0: none) of ``_row_counts`` such that the largest encoded tile fits
    ``buf_lines``; with the tiles encoded from line 0: [(fields, lines used, image)]."""
    for rows in _row_counts(m, nbjs, cfg.out_lines, tile_rows, gather):
        try:
            tiles = [_encode_tile(cfg, stored, a_format, slice(i, min(i + rows, m)), k, 0, buf_lines)
                     for i in range(0, m, rows)]
        except OperandError:       # a tile does not fit one buffer
            tiles = None
        if tiles is not None and max(used for _, used, _ in tiles) <= buf_lines:
            return rows, tiles
    return 0, []


def _panel_widths(n: int, nb: int) -> list[int]:
    return [min(nb, n - j) for j in range(0, n, nb)]


def _plan(cfg: HwConfig, stored, logical: np.ndarray, a_format: str, kernel: str, threshold: int, n: int,
          tile_rows: int | None):
    """(panel width nb, rows per tile, chunk_k, blocks[tile][chunk] encoded from line 0): one panel of N
    columns when B fits with two A buffers, else the widest panel (whole lane blocks) that does, both with K
    in one chunk (chunk_k = K); when even one lane block of B leaves no room for two buffers of one row of A,
    K tiling (``_plan_k``)."""
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
        return n, rows, k, [[tile] for tile in tiles]
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
            return nb, rows, k, [[tile] for tile in tiles]
    block = k * lay.b_row_lines(L)
    if widths and not beats_ok and block < cfg.l1_lines:
        raise OperandError(f"C: {m} rows of a panel of B is not a whole number of {gather}-line AXI beats "
                           "(engine.lanes x acc_bits < scan_bytes x 8); pad M")
    return _plan_k(cfg, stored, logical, a_format, kernel, threshold, n, tile_rows)


def _granules(cfg: HwConfig, stored, a_format: str) -> list[int]:
    """Chunk sizes along K are multiples of a granule: first one that ends chunks on whole scan words (a word
    cut in two costs a cycle on each side; N:M: W kept values), then the finest one (N:M: a group of M)."""
    W = cfg.line_bytes
    if a_format == "nm":
        return sorted({stored.m * max(1, W // stored.n), stored.m}, reverse=True)
    return [W, 1]


def _plan_k(cfg: HwConfig, stored, logical: np.ndarray, a_format: str, kernel: str, threshold: int, n: int,
            tile_rows: int | None):
    """K tiling (see the module docstring): (panel width nb, rows per tile, chunk_k, blocks[tile][chunk]
    encoded from line 0). Every (panel width, rows per tile) is tried with the longest chunk that fits beside
    it; the least estimated time wins. Raises OperandError when not even the smallest tile over the finest
    granule of K fits."""
    (m, k), lay, L, W = logical.shape, Layout.of(cfg), cfg.engine.lanes, cfg.line_bytes
    _, gather = beats_per_line(cfg)
    entries = None                           # what a bitmask / CSR encoding stores per element: its size
    if a_format in ("bitmask", "csr"):
        flags = logical != 0 if a_format == "bitmask" else np.zeros((m, k), bool)
        if a_format == "csr":
            flags[np.repeat(np.arange(m), np.diff(stored.rowptr)), stored.col] = True
        entries = np.zeros((m + 1, k + 1), dtype=np.int32 if m * k < 1 << 31 else np.int64)
        entries[1:, 1:] = flags.cumsum(axis=0, dtype=entries.dtype).cumsum(axis=1)
    marked = logical != 0 if kernel != "gemm" else np.ones_like(logical, bool)
    if kernel != "gemm" and threshold > 1:
        marked &= np.abs(logical.astype(np.int16)) >= threshold
    scanned = m * (lay.nm_kept(k, _log2(stored.n), _log2(stored.m)) if a_format == "nm" else k)
    density = min(1.0, float(marked.sum()) / scanned)

    def block_lines(rows: int, kc: int) -> int:
        """The most L1 lines a block of rows x kc of A encodes to (the largest block's size: dense and N:M
        depend on the shape only, bitmask and CSR on the most entries of any block too)."""
        if entries is None:
            return _encode_tile(cfg, stored, a_format, slice(0, rows), k, 0, cfg.l1_lines, slice(0, kc))[1]
        r, c = np.r_[0:m:rows, m], np.r_[0:k:kc, k]
        most = int((entries[np.ix_(r[1:], c[1:])] - entries[np.ix_(r[:-1], c[1:])]
                    - entries[np.ix_(r[1:], c[:-1])] + entries[np.ix_(r[:-1], c[:-1])]).max())
        worst = np.zeros((rows, kc), dtype=np.int8)
        worst.reshape(-1)[:most] = 1
        worst_stored = worst if a_format == "bitmask" else csr_encode(worst)
        return _encode_tile(cfg, worst_stored, a_format, slice(0, rows), kc, 0, cfg.l1_lines)[1]

    def chunk(rows: int, nb: int, granule: int) -> int:
        """The longest chunk_k (a multiple of the granule, evened out over the chunks) that fits two B chunk
        buffers of panel width nb and two A buffers of ``rows``; 0 if none."""
        def fits(kc: int) -> bool:
            b_lines = 2 * kc * lay.b_row_lines(nb)
            if b_lines >= cfg.l1_lines:
                return False
            try:
                return b_lines + 2 * block_lines(rows, kc) <= cfg.l1_lines
            except OperandError:
                return False
        lo, hi = 0, _ceil_div(k, granule)       # fits(lo * granule) (0: nothing), hi: K in one chunk
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(min(mid * granule, k)):
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            return 0
        chunks = _ceil_div(k, min(lo * granule, k))
        return min(_ceil_div(_ceil_div(k, chunks), granule) * granule, k)

    best = None
    for granule in _granules(cfg, stored, a_format):
        cap = min(n, cfg.out_lines // 2 * L)
        for nb in sorted({*range(L, min(W, cap) + 1, L), *range(W, cap + 1, W), cap}, reverse=True):
            widths = _panel_widths(n, nb)
            if any((m * lay.blocks(w)) % gather for w in widths):
                continue
            nbjs = tuple(sorted({lay.blocks(w) for w in widths}))
            for rows in _row_counts(m, nbjs, cfg.out_lines, tile_rows, gather):
                kc = chunk(rows, nb, granule)
                if kc:
                    cost = _estimate(cfg, a_format, kernel, density, m, k, widths, rows, kc, block_lines(rows, kc))
                    if best is None or cost < best[0]:
                        best = (cost, nb, rows, kc)
        if best is not None:
            break
    if best is None:
        granule = _granules(cfg, stored, a_format)[-1]
        b1 = 2 * granule * lay.b_row_lines(L)
        least = min(m, gather)                   # rows of the smallest tile: its C lines are whole AXI beats
        try:
            row = f"{block_lines(least, granule)} lines"
        except OperandError:
            row = f"more than {cfg.l1_lines} lines"
        raise OperandError(
            f"l1.bytes: {cfg.l1.bytes} is too small for one tile: B ({k}x{n}) takes {k * lay.b_row_lines(n)} of "
            f"{cfg.l1_lines} L1 lines, and even with K split into chunks of {granule}, two chunks of one lane block "
            f"({granule}x{L}) take {b1}, which leaves {max(cfg.l1_lines - b1, 0)} lines for two A buffers while "
            f"the smallest tile of A ({least} x {granule}, {a_format}) takes {row}")
    _, nb, rows, kc = best
    blocks = [[_encode_tile(cfg, stored, a_format, slice(i, min(i + rows, m)), k, 0, cfg.l1_lines,
                            slice(k0, min(k0 + kc, k))) for k0 in range(0, k, kc)] for i in range(0, m, rows)]
    assert 2 * kc * lay.b_row_lines(nb) + 2 * max(used for tile in blocks for _, used, _ in tile) <= cfg.l1_lines
    return nb, rows, kc, blocks


def _estimate(cfg: HwConfig, a_format: str, kernel: str, density: float, m: int, k: int, widths: list[int],
              rows: int, kc: int, a_block: int) -> tuple[float, int]:
    """(estimated cycles, steps) of a K-tiled plan. Loads and compute overlap, so the larger of the two counts:
    loads are the A blocks (once per panel) and the B chunks (once per row tile), each LOAD the HBM's
    first-access latency then a beat per cycle; compute is every job's front end and encode cycles (a scan
    word costs max(1, marked): W d + (1 - d)^W expected) over the row units, plus each task's drain."""
    lay, W, R, hbm = Layout.of(cfg), cfg.line_bytes, cfg.engine.rows, cfg.memory.hbm
    tiles, chunks = _ceil_div(m, rows), _ceil_div(k, kc)
    steps = len(widths) * tiles * chunks
    b_lines = sum(k * lay.b_row_lines(w) for w in widths) * tiles
    latency = (hbm.controller_ns + hbm.tRCD_ns + hbm.tCL_ns) * cfg.clock.mhz / 1000
    load = 2 * steps * latency + (steps * a_block + b_lines) * max(1, W // cfg.beat_bytes)
    fmt = isa.AFormat[a_format.upper()]
    front = RowUnitTiming.front_latency(fmt)
    if kernel == "gemm":
        encode = kc
    elif a_format == "csr":
        encode = max(1.0, density * kc)
    else:
        encode = _ceil_div(kc, W) * (W * density + (1 - density) ** W)
    per_job = max(front - 1 + encode, RowUnitTiming.min_period(cfg))
    jobs = chunks * m * sum(lay.blocks(w) for w in widths)
    drain = front + RowUnitTiming.result_latency + EngineTiming.done_delay
    return max(load, jobs * per_job / R + steps * drain), steps


def _log2(x: int) -> int:
    return x.bit_length() - 1


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def compile_matmul_hbm(cfg: HwConfig, a, b: np.ndarray, kernel: str = "spmm", a_format: str = "dense",
                       threshold: int | None = None, nm: tuple[int, int] = DEFAULT_NM,
                       tile_rows: int | None = None, page_seed: int | None = None) -> Program:
    """C = A @ B with A, B and C in paged HBM, as LOAD / compute / STORE tasks over row tiles of A and, when B
    does not fit L1 with two A buffers, column panels of B (see the module docstring: A is then re-streamed
    once per panel), and when not even a panel of one lane block fits, chunks of K run one after another
    into the same output lines (``accumulate``). ``tile_rows`` caps the rows per tile (default: as many as
    fit); ``page_seed`` scatters the physical pages (default: deterministic, lowest first)."""
    check_kernel(kernel, a_format)
    stored, logical, b, threshold = check_matmul(cfg, a, b, kernel, a_format, threshold, nm)
    (m, k), n = logical.shape, b.shape[1]
    lay, W = Layout.of(cfg), cfg.line_bytes
    nb, rows, kc, encoded = _plan(cfg, stored, logical, a_format, kernel, threshold, n, tile_rows)
    split = kc < k
    widths = _panel_widths(n, nb)
    chunks = [(k0, min(k0 + kc, k)) for k0 in range(0, k, kc)]
    # the B region of L1: the widest panel (K split: two buffers of a chunk of it)
    b_buf = kc * lay.b_row_lines(nb)
    b_lines = 2 * b_buf if split else k * lay.b_row_lines(nb)
    buf_lines = (cfg.l1_lines - b_lines) // 2

    # the tensors: B (the panels' L1 images back to back), the A tiles (their chunks back to back), C
    opcode = isa.Opcode.GEMM if kernel == "gemm" else isa.Opcode.SPMM
    base = dict(opcode=opcode, a_format=isa.AFormat[a_format.upper()], k=k, threshold=threshold)
    panels, images = [], []                       # (first column, width, first line in B's blob, lines)
    for j0, w in zip(range(0, n, nb), widths, strict=True):
        image = _rows_padded(b[:, j0:j0 + w], lay.b_row_lines(w) * W).reshape(-1, W)   # B as place_b lays it out
        panels.append((j0, w, sum(len(x) for x in images), len(image)))
        images.append(image)
    blobs = {"B": np.concatenate(images).tobytes()}
    tiles = []            # (first row, end row, [(fields from line 0, lines, first line in the tensor)], tensor)
    for t, (i, blocks) in enumerate(zip(range(0, m, rows), encoded, strict=True)):
        offsets = np.cumsum([0] + [used for _, used, _ in blocks[:-1]]).tolist()
        blobs[f"A{t}"] = b"".join(img.lines[:used].tobytes() for _, used, img in blocks)
        tiles.append((i, min(i + rows, m), [(f, used, o) for (f, used, _), o in zip(blocks, offsets, strict=True)],
                      f"A{t}"))
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

    def half(g: int) -> int:
        return (g % 2) * (cfg.out_lines // 2)

    def store(g: int) -> int:
        p, t = divmod(g, len(tiles))
        nbj, (i0, i1) = lay.blocks(panels[p][1]), tiles[t][:2]
        first_line = m * lay.blocks(panels[p][0]) + i0 * nbj      # panel-major C (panel widths: whole blocks)
        return isa.pack(opcode=isa.Opcode.STORE, c_addr=half(g), lines=(i1 - i0) * nbj,
                        hbm_addr=c_hbm + first_line * out_line_bytes, wait=WAIT_COMPUTE)

    def a_fields(t: int, c: int, buf: int) -> dict[str, int]:
        """Chunk c of tile t: its A fields, its encoding moved from line 0 to A buffer ``buf``."""
        first = b_lines + buf * buf_lines
        return {key: (v + first if key in A_ADDRS else v) for key, v in tiles[t][2][c][0].items()}

    def load_a(t: int, c: int, buf: int) -> int:
        _, used, offset = tiles[t][2][c]
        return load(where[tiles[t][3]].vaddr + offset * W, b_lines + buf * buf_lines, used, stream=True)

    if split:
        descs = _k_tasks(cfg, panels, tiles, chunks, b_buf, where["B"].vaddr, base, load, load_a, a_fields, store,
                         half)
    else:
        descs = _tasks(panels, tiles, where["B"].vaddr, W, base, load, load_a, a_fields, store, half)
    spec = OutputSpec(0, m, n, hbm_addr=c_hbm, panel_blocks=lay.blocks(nb) if len(panels) > 1 else None)
    return Program(config_digest=cfg.digest(), descriptors=tuple(descs), l1=np.zeros((cfg.l1_lines, W), np.uint8),
                   outputs={"C": spec}, l1_lines_used=0,
                   tensors={"A": logical, "B": b}, kernel=kernel, hbm=image,
                   params={"tiles": len(tiles), "tile_rows": rows, "panels": len(panels), "panel_cols": nb,
                           "k_chunks": len(chunks), "chunk_k": kc,
                           "placement": "hbm", "page_seed": page_seed,
                           "pages": {name: t.ppns for name, t in where.items()}},
                   page_table_base=table.base, page_table_entries=table.num_entries,
                   fragmentation=alloc.fragmentation())


def _tasks(panels, tiles, b_vaddr, W, base, load, load_a, a_fields, store, half) -> list[int]:
    """K in one chunk: one B buffer (at line 0) per panel, tile g in A buffer and output half g % 2."""
    def load_b(p: int, wait: int = 0) -> int:
        _, _, first, lines = panels[p]
        return load(b_vaddr + first * W, 0, lines, stream=False, wait=wait)

    def compute(g: int) -> int:
        p, t = divmod(g, len(tiles))
        i0, i1 = tiles[t][0], tiles[t][1]
        return isa.pack(**base, **a_fields(t, 0, g % 2), m=i1 - i0, n=panels[p][1], b_addr=0, c_addr=half(g),
                        wait=WAIT_LOAD)

    descs = [load_b(0), load_a(0, 0, 0)]
    count = len(panels) * len(tiles)
    for g in range(count):
        if g and g % len(tiles) == 0:             # first tile of a panel: its B once C(g-1) is done
            descs.append(load_b(g // len(tiles), wait=WAIT_COMPUTE))
        descs.append(compute(g))
        if g + 1 < count:
            descs.append(load_a((g + 1) % len(tiles), 0, (g + 1) % 2))
        descs.append(store(g))
    return descs


def _k_tasks(cfg, panels, tiles, chunks, b_buf, b_vaddr, base, load, load_a, a_fields, store, half) -> list[int]:
    """K split: steps (panel, tile, chunk), chunk innermost; step s in B and A buffer s % 2, tile g in output
    half g % 2 for all its chunks, accumulating from the second chunk on (module docstring)."""
    lay, W = Layout.of(cfg), cfg.line_bytes
    steps = [(p, t, c) for p in range(len(panels)) for t in range(len(tiles)) for c in range(len(chunks))]

    def loads(s: int) -> list[int]:
        """Step s's B chunk (rows k0..k1 of its panel's image) and A chunk into buffer s % 2."""
        p, t, c = steps[s]
        (k0, k1), (_, w, first, _) = chunks[c], panels[p]
        return [load(b_vaddr + (first + k0 * lay.b_row_lines(w)) * W, (s % 2) * b_buf, (k1 - k0) * lay.b_row_lines(w),
                     stream=False), load_a(t, c, s % 2)]

    def compute(s: int) -> int:
        p, t, c = steps[s]
        (k0, k1), (i0, i1) = chunks[c], tiles[t][:2]
        return isa.pack(**{**base, "k": k1 - k0}, **a_fields(t, c, s % 2), m=i1 - i0, n=panels[p][1],
                        b_addr=(s % 2) * b_buf, c_addr=half(p * len(tiles) + t),
                        accumulate=int(c > 0), wait=WAIT_LOAD)

    descs = loads(0)
    for s, (p, t, c) in enumerate(steps):
        descs.append(compute(s))
        if s + 1 < len(steps):
            descs += loads(s + 1)
        if c == len(chunks) - 1:
            descs.append(store(p * len(tiles) + t))
    return descs
