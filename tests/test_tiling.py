"""B tiled over N and K (``hwgen/compiler/tiling.py``): column panels of B when it does not fit L1 with two A
buffers, chunks of K (``accumulate``) when not even a panel of one lane block does.

Compile level: panels are whole lane blocks (only the last may be narrower), every descriptor's L1 and
output-buffer ranges lie inside the memories, the STOREs cover C in HBM exactly once, and every pair of tasks
that touch the same lines is ordered by the ``wait`` bits or by the in-order, one-task-per-unit issue (a
checker of the rule the module docstring argues with). C comes back panel-major through ``decode_output``.
Then golden == sim on every variant and format, and golden == sim == RTL with exact cycles at 0 % stalls
(bit-exact at 30 %) for an spmm with bitmask A (3 panels), an spmm with CSR A (2 panels, an odd number of row
tiles so buffer parity flips between panels) and a gemm (2 panels, the last one half a lane block).

K chunks: the same compile-level checks plus the accumulation chains (every output line's sum opened by a
compute without ``accumulate``, grown by computes with it over all of K, then stored once), golden == sim on
every variant, format and page placement, and golden == sim == RTL (exact cycles at 0 % stalls, bit-exact at
30 %) on tiny and on the 16-bit accumulators, whose partial sums wrap or saturate and come back across chunk
boundaries.
"""
import dataclasses

import numpy as np
import pytest
from conftest import three_way, variant
from test_hbm_crosscheck import PAGED, paged

from golden import executor
from golden.generators.operands import prune_nm, random_operands
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.spec import config, isa
from hwgen.spec.formats import OperandError
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, decode_output
from sim.model.engine import EngineModel
from sim.rtl.runner import run_rtl_batch

# (kernel, format, m, k, n, density): B does not fit the tiny preset's 256 L1 lines with two A buffers
PANELLED = [
    ("spmm", "bitmask", 20, 120, 70, 0.15),   # 3 panels: 32, 32, 6 columns
    ("spmm", "csr", 24, 100, 40, 0.1),        # 2 panels: 32, 8; 3 row tiles (parity flips per panel)
    ("gemm", "dense", 16, 72, 50, 1.0),       # 2 panels: 48, 2 (half a lane block)
    ("spmm", "nm", 24, 96, 60, 0.5),
    ("spmm", "dense", 16, 20, 600, 0.5),      # a row of C does not fit half the output buffer either
]
RTL_CASES = PANELLED[:3]
# K does not fit even one lane block of B beside two A buffers on tiny (256 lines of 16 bytes) nor on odd
# (512 lines of 8 bytes): K chunks
K_SPLIT = [
    ("spmm", "dense", 8, 600, 64, 0.5),      # tiny: 4 panels of one row tile
    ("spmm", "bitmask", 64, 600, 20, 0.2),
    ("spmm", "csr", 64, 600, 20, 0.2),       # tiny: an odd number of row tiles
    ("spmm", "nm", 64, 600, 20, 0.5),        # chunks of whole groups of 4
    ("gemm", "dense", 32, 600, 10, 1.0),
]


def _compile(cfg, kernel, fmt, m, k, n, density, seed=1, **kw):
    a, b = random_operands(m, k, n, density, seed=seed)
    if fmt == "nm":
        a = prune_nm(a, 2, 4)
    return compile_matmul_hbm(cfg, a, b, kernel, fmt, **kw)


def _tasks(program):
    return [(isa.unit_of(f["opcode"]), f) for f in program.fields]


def _panels(program):
    """[(columns, [rows of each compute])] in program order: a new panel starts at each LOAD of B."""
    panels, b_vaddr = [], program.fields[0]["hbm_addr"]
    for unit, f in _tasks(program):
        if unit == isa.Unit.LOAD and not f["stream"]:
            assert b_vaddr <= f["hbm_addr"], "B's panels lie in one tensor, in order"
            panels.append([None, []])
        elif unit == isa.Unit.COMPUTE:
            assert panels[-1][0] in (None, f["n"]), "one width per panel"
            panels[-1][0] = f["n"]
            panels[-1][1].append(f["m"])
    return panels


def _ranges(cfg, program):
    """Per task: (L1 lines written, L1 lines read, output lines written, output lines read) as sets."""
    lay, out = Layout.of(cfg), []
    filled = {}     # L1 line -> the range of the LOAD that last wrote it
    for unit, f in _tasks(program):
        l1w = l1r = ow = orr = range(0)
        if unit == isa.Unit.LOAD:
            l1w = range(f["a_addr"], f["a_addr"] + f["lines"])
            for line in l1w:
                filled[line] = l1w
        elif unit == isa.Unit.STORE:
            orr = range(f["c_addr"], f["c_addr"] + f["lines"])
        else:
            a_load = filled[f["a_addr"]]
            assert all(f[key] in a_load for key in ("a_ptr", "a_meta") if f[key]), "A's streams in one LOAD"
            l1r = set(a_load) | set(range(f["b_addr"], f["b_addr"] + f["k"] * lay.b_row_lines(f["n"])))
            ow = range(f["c_addr"], f["c_addr"] + f["m"] * lay.blocks(f["n"]))
            if f["accumulate"]:       # each job starts from its output line
                orr = ow
        out.append((unit, f, set(l1w), set(l1r), set(ow), set(orr)))
    return out


def _chains(cfg, program):
    """Problems with the accumulation over K: per output line, a compute without ``accumulate`` opens a sum
    (not over one still to be stored), computes with it add their k to an open sum, and a STORE reads only a
    sum over all of K, which it closes; nothing may be left open at the end."""
    lay, k, sums, bad = Layout.of(cfg), program.tensors["A"].shape[1], {}, []
    for index, (unit, f) in enumerate(_tasks(program)):
        if unit == isa.Unit.COMPUTE:
            for line in range(f["c_addr"], f["c_addr"] + f["m"] * lay.blocks(f["n"])):
                if f["accumulate"] and line not in sums:
                    bad.append((index, line, "adds to no sum"))
                elif not f["accumulate"] and line in sums:
                    bad.append((index, line, "overwrites a sum not stored yet"))
                sums[line] = sums.get(line, 0) * f["accumulate"] + f["k"]
        elif unit == isa.Unit.STORE:
            for line in range(f["c_addr"], f["c_addr"] + f["lines"]):
                if sums.pop(line, None) != k:
                    bad.append((index, line, "stores a partial sum"))
    return bad + [(None, line, "never stored") for line in sums]


def _unordered(cfg, program):
    """Pairs (earlier, later) of tasks on different units that touch the same lines (one of them writing)
    and that nothing orders: the later neither waits for the earlier's unit nor comes after another task of
    that unit (tasks issue in order, a unit takes a task only when idle, so the earlier one is then done)."""
    tasks, bad = _ranges(cfg, program), []
    for j, (uj, fj, wj, rj, owj, orj) in enumerate(tasks):
        for i in range(j):
            ui, _, wi, ri, owi, ori = tasks[i]
            if ui == uj or fj["wait"] >> ui & 1 or any(u == ui for u, *_ in tasks[i + 1:j]):
                continue
            if (wi & (wj | rj)) or (ri & wj) or (owi & (owj | orj)) or (ori & owj):
                bad.append((i, j))
    return bad


@pytest.mark.parametrize("name", ["tiny", "odd", "wrap16"])
@pytest.mark.parametrize("case", PANELLED, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}x{c[3]}x{c[4]}")
def test_panels_are_whole_lane_blocks_and_inside_the_memories(name, case):
    cfg = variant(name)
    program = _compile(cfg, *case)
    m, n, L = case[2], case[4], cfg.engine.lanes
    lay, W = Layout.of(cfg), cfg.line_bytes
    panels = _panels(program)
    widths = [w for w, _ in panels]
    assert len(panels) == program.params["panels"] >= 2 and sum(widths) == n
    nb = program.params["panel_cols"]
    assert nb % L == 0 and widths[:-1] == [nb] * (len(widths) - 1) and 0 < widths[-1] <= nb
    assert all(sum(rows) == m for _, rows in panels), "every panel runs every row of A once"
    assert program.outputs["C"].panel_blocks == lay.blocks(nb)
    # L1 and output-buffer ranges inside the memories, B's region apart from the A buffers
    b_region = case[3] * lay.b_row_lines(nb)
    for unit, f, l1w, l1r, ow, orr in _ranges(cfg, program):
        assert max(l1w | l1r, default=0) < cfg.l1_lines and max(ow | orr, default=0) < cfg.out_lines
        if unit == isa.Unit.LOAD:
            assert (max(l1w) < b_region) == (not f["stream"]), "B loads below the A buffers, A above"
    # the STOREs write C's lines in HBM exactly once
    line_bytes, c = cfg.out_line_bits // 8, program.outputs["C"].hbm_addr
    written = sorted((f["hbm_addr"] - c) // line_bytes + x for u, f in _tasks(program) if u == isa.Unit.STORE
                     for x in range(f["lines"]))
    assert written == list(range(m * lay.blocks(n)))
    assert _unordered(cfg, program) == [] and _chains(cfg, program) == []
    assert program.fields[0]["hbm_addr"] % W == 0
    assert program.params["k_chunks"] == 1 and not any(f["accumulate"] for f in program.fields)


def test_the_checker_finds_a_missing_wait():
    """Drop the wait of a LOAD of B: it may overwrite B while the last compute of the panel still reads it."""
    cfg = variant("tiny")
    program = _compile(cfg, *PANELLED[1])
    descs = list(program.descriptors)
    i = next(i for i, f in enumerate(program.fields) if i and f["opcode"] == isa.Opcode.LOAD and not f["stream"])
    descs[i] = isa.pack(**{**program.fields[i], "wait": 0})
    assert _unordered(cfg, dataclasses.replace(program, descriptors=tuple(descs))) != []


def test_b_that_fits_is_one_panel_in_the_old_task_order():
    cfg = variant("tiny")
    program = _compile(cfg, "spmm", "bitmask", 64, 40, 6, 0.3, tile_rows=16)
    assert (program.params["panels"], program.outputs["C"].panel_blocks) == (1, None)
    units = "".join("LCS"[u] for u, _ in _tasks(program))
    tiles = program.params["tiles"]
    assert units == "LL" + "CLS" * (tiles - 1) + "CS"
    assert _unordered(cfg, program) == []


@pytest.mark.parametrize("k", [240, 300])
def test_k_that_leaves_no_room_for_a_is_split(k):
    """What used to be refused (one lane block of B leaves too few lines for two A buffers of one row) is split
    along K; K that fits is never split."""
    cfg = variant("tiny")
    a, b = random_operands(8, k, 64, 0.5, seed=3)
    program = compile_matmul_hbm(cfg, a, b)
    assert program.params["k_chunks"] >= 2 and _chains(cfg, program) == [] and _unordered(cfg, program) == []
    np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"],
                                  executor.run(cfg.numeric(), program).outputs["C"])
    assert compile_matmul_hbm(cfg, a[:, :200], b[:200]).params["k_chunks"] == 1


def test_l1_too_small_even_for_k_chunks():
    """Four L1 lines of 64 bytes: two B chunks of one row of one lane block take two, and the smallest tile of
    A over one column does not fit one line: bitmask A is three streams (mask, row offsets, values), and dense
    C lines of 16 bytes must fill 64-byte AXI beats, so a tile has 4 rows."""
    cfg = config.from_dict({"base": "tiny", "name": "l1_4", "engine": {"scan_bytes": 64}, "l1": {"bytes": 256}})
    a, b = random_operands(8, 40, 4, 0.5, seed=3)
    for fmt, least, lines in (("bitmask", 4, 3), ("dense", 4, 4)):
        with pytest.raises(OperandError, match=(
                r"^l1.bytes: 256 is too small for one tile: B \(40x4\) takes 40 of 4 L1 lines, and even with K split "
                r"into chunks of 1, two chunks of one lane block \(1x4\) take 2, which leaves 2 lines for two A "
                rf"buffers while the smallest tile of A \({least} x 1, {fmt}\) takes {lines} lines$")):
            compile_matmul_hbm(cfg, a, b, "spmm", fmt)


def test_decode_output_panel_major():
    """Lines in HBM panel-major -> C row-major, through the one decode every reader uses."""
    cfg = variant("tiny")      # 4 lanes of 32 bits
    m, n, L = 3, 18, 4          # 5 lane blocks: panels of 2, 2, 1 blocks
    c = np.arange(m * n, dtype=np.int64).reshape(m, n) - 20
    padded = np.zeros((m, 5 * L), np.int64)
    padded[:, :n] = c
    words = []
    for j0 in (0, 2, 4):
        for i in range(m):
            for j in range(j0, min(j0 + 2, 5)):
                words.append(sum((int(v) & 0xFFFFFFFF) << (32 * lane) for lane, v in
                                 enumerate(padded[i, j * L:(j + 1) * L])))
    np.testing.assert_array_equal(decode_output(cfg, OutputSpec(0, m, n, hbm_addr=0, panel_blocks=2), words), c)
    with pytest.raises(ValueError, match=r"^output: 14 lines read, expected 15"):
        decode_output(cfg, OutputSpec(0, m, n, hbm_addr=0, panel_blocks=2), words[:-1])
    with pytest.raises(ValueError, match=r"^panel_blocks: only allowed for an output in HBM"):
        OutputSpec(0, m, n, panel_blocks=2)
    with pytest.raises(ValueError, match=r"^panel_blocks: 0 is not allowed"):
        OutputSpec(0, m, n, hbm_addr=0, panel_blocks=0)


@pytest.mark.parametrize("name", ["tiny", "odd", "wrap16", "sat16", *PAGED])
def test_panels_sim_equals_golden(name):
    cfg = paged(name) if name in PAGED else variant(name)
    model = EngineModel(cfg)
    for case in PANELLED:
        for page_seed in (None, 11):
            program = _compile(cfg, *case, page_seed=page_seed)
            np.testing.assert_array_equal(model.run(program).outputs["C"],
                                          executor.run(cfg.numeric(), program).outputs["C"],
                                          err_msg=f"{name} {case} page_seed={page_seed}")


@pytest.mark.rtl
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_panels_rtl_equals_sim_and_golden(stall, build_root):
    cfg = variant("tiny")
    programs = [_compile(cfg, *case) for case in RTL_CASES]
    assert [p.params["panels"] for p in programs] == [3, 2, 2]
    rtl = run_rtl_batch(cfg, programs, build_root, stall=stall, seed=3)
    three_way(cfg, list(zip(RTL_CASES, programs, strict=True)), rtl, stall)


# ---- K chunks -------------------------------------------------------------------------------------------

def _climbing(m, k, n, seed):
    """Dense-ish A whose row sums climb through the first half of K and fall back in the second (B >= 0): a
    16-bit accumulator wraps or saturates inside a chunk and the sum comes back in a later one."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 128, (m, k)) * np.where(np.arange(k) < k // 2, 1, -1)
    a[rng.random((m, k)) < 0.1] = 0
    return a.astype(np.int8), rng.integers(0, 128, (k, n)).astype(np.int8)


@pytest.mark.parametrize("name", ["tiny", "odd", "wrap16", "sat16"])
@pytest.mark.parametrize("case", K_SPLIT, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}x{c[3]}x{c[4]}")
def test_k_chunks_accumulate_in_order_inside_the_memories(name, case):
    cfg = variant(name)
    program = _compile(cfg, *case)
    kernel, fmt, m, k, n = case[:5]
    lay, params = Layout.of(cfg), program.params
    chunks, kc = params["k_chunks"], params["chunk_k"]
    assert chunks == -(-k // kc) >= 2 and (fmt != "nm" or kc % 4 == 0)
    computes = [f for u, f in _tasks(program) if u == isa.Unit.COMPUTE]
    assert len(computes) == params["panels"] * params["tiles"] * chunks
    # per (panel, row tile) the chunks in order: the first starts from 0, the others accumulate, K in all
    for s in range(0, len(computes), chunks):
        group = computes[s:s + chunks]
        assert [f["accumulate"] for f in group] == [0] + [1] * (chunks - 1)
        assert [f["k"] for f in group] == [kc] * (chunks - 1) + [k - kc * (chunks - 1)]
        assert len({(f["m"], f["n"], f["c_addr"]) for f in group}) == 1
    assert _chains(cfg, program) == [] and _unordered(cfg, program) == []
    # two B chunk buffers below two A buffers; every range inside L1 and the output buffer
    b_bufs = 2 * kc * lay.b_row_lines(params["panel_cols"])
    for unit, f, l1w, l1r, ow, orr in _ranges(cfg, program):
        assert max(l1w | l1r, default=0) < cfg.l1_lines and max(ow | orr, default=0) < cfg.out_lines
        if unit == isa.Unit.LOAD:
            assert (max(l1w) < b_bufs) == (not f["stream"]), "B chunks below the A buffers, A above"
    line_bytes, c = cfg.out_line_bits // 8, program.outputs["C"].hbm_addr
    written = sorted((f["hbm_addr"] - c) // line_bytes + x for u, f in _tasks(program) if u == isa.Unit.STORE
                     for x in range(f["lines"]))
    assert written == list(range(m * lay.blocks(n)))


def test_the_checkers_find_a_broken_chain_and_a_missing_wait():
    """A later chunk that does not accumulate overwrites the sum; a first chunk that does adds to the last
    tile's stored sum; a STORE that does not wait for COMPUTE may read the sum before its last chunk."""
    cfg = variant("tiny")
    program = _compile(cfg, *K_SPLIT[1])
    computes = [i for i, f in enumerate(program.fields) if isa.unit_of(f["opcode"]) == isa.Unit.COMPUTE]
    stores = [i for i, f in enumerate(program.fields) if f["opcode"] == isa.Opcode.STORE]

    def changed(index, **fields):
        descs = list(program.descriptors)
        descs[index] = isa.pack(**{**program.fields[index], **fields})
        return dataclasses.replace(program, descriptors=tuple(descs))
    assert [why for *_, why in _chains(cfg, changed(computes[1], accumulate=0))][0] == "overwrites a sum not stored yet"
    chunks = program.params["k_chunks"]
    assert [why for *_, why in _chains(cfg, changed(computes[chunks], accumulate=1))][0] == "adds to no sum"
    assert _unordered(cfg, changed(stores[1], wait=0)) != []


@pytest.mark.parametrize("name", ["tiny", "odd", "wrap16", "sat16", *PAGED])
def test_k_chunks_sim_equals_golden(name):
    cfg = paged(name) if name in PAGED else variant(name)
    model = EngineModel(cfg)
    for case in K_SPLIT:
        for page_seed in (None, 11):
            program = _compile(cfg, *case, page_seed=page_seed)
            assert program.params["k_chunks"] >= 2
            sim = model.run(program)
            np.testing.assert_array_equal(sim.outputs["C"], executor.run(cfg.numeric(), program).outputs["C"],
                                          err_msg=f"{name} {case} page_seed={page_seed}")
            # output-buffer reads: the STOREs, and each accumulating job's line
            lines = sum(f["lines"] if f["opcode"] == isa.Opcode.STORE else f["m"] * Layout.of(cfg).blocks(f["n"])
                        for f in program.fields if f["opcode"] == isa.Opcode.STORE or f["accumulate"])
            assert sim.stats["out_read_bytes"] == lines * cfg.out_line_bits // 8


@pytest.mark.parametrize("name", ["wrap16", "sat16"])
def test_k_chunks_carry_overflow_across_chunks_sim(name):
    """The partial sums leave the 16-bit range inside a chunk and come back in a later one; the chunks
    still give the one-pass result (saturate: per step, not clamp-at-end)."""
    cfg = variant(name)
    for fmt in ("dense", "bitmask", "csr"):
        a, b = _climbing(16, 400, 12, seed=4)
        program = compile_matmul_hbm(cfg, a, b, "spmm", fmt)
        assert program.params["k_chunks"] >= 3
        golden = executor.run(cfg.numeric(), program).outputs["C"]
        wide = a.astype(np.int64) @ b.astype(np.int64)
        assert (np.abs(np.cumsum(a[:, :, None].astype(np.int64) * b[None].astype(np.int64), axis=1)) > 1 << 15).any()
        assert not np.array_equal(golden, wide), "some sums must leave int16 for the test to mean anything"
        np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"], golden, err_msg=f"{name} {fmt}")


# RTL: tiny (chunks x 4 panels; an odd number of row tiles; N:M chunks of whole groups), 16-bit wrap and
# saturate (one row unit)
K_RTL = {
    "tiny": [("spmm", "dense", 8, 300, 64, 0.5), ("spmm", "csr", 64, 300, 20, 0.2), ("spmm", "nm", 64, 300, 20, 0.5)],
    "wrap16": [("spmm", "dense", 16, 400, 12, "climbing"), ("spmm", "bitmask", 12, 300, 6, "climbing")],
    "sat16": [("spmm", "dense", 16, 400, 12, "climbing"), ("spmm", "bitmask", 12, 300, 6, "climbing")],
}


def _k_rtl_cases(cfg, name):
    cases = []
    for kernel, fmt, m, k, n, density in K_RTL[name]:
        if density == "climbing":
            program = compile_matmul_hbm(cfg, *_climbing(m, k, n, seed=m), kernel, fmt)
        else:
            program = _compile(cfg, kernel, fmt, m, k, n, density)
        assert program.params["k_chunks"] >= 3
        cases.append((f"{name} {kernel}/{fmt} {m}x{k}x{n} ({program.params['k_chunks']} chunks)", program))
    return cases


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(K_RTL))
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_k_chunks_rtl_equals_sim_and_golden(name, stall, build_root):
    cfg = variant(name)
    cases = _k_rtl_cases(cfg, name)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=5)
    three_way(cfg, cases, rtl, stall)
