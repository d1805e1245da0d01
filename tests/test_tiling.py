"""B tiled over N (``hwgen/compiler/tiling.py``): column panels of B when it does not fit L1 with two A buffers.

Compile level: panels are whole lane blocks (only the last may be narrower), every descriptor's L1 and
output-buffer ranges lie inside the memories, the STOREs cover C in HBM exactly once, and every pair of tasks
that touch the same lines is ordered by the ``wait`` bits or by the in-order, one-task-per-unit issue (a
checker of the rule the module docstring argues with). C comes back panel-major through ``decode_output``.
Then golden == sim on every variant and format, and golden == sim == RTL with exact cycles at 0 % stalls
(bit-exact at 30 %) for an spmm with bitmask A (3 panels), an spmm with CSR A (2 panels, an odd number of row
tiles so buffer parity flips between panels) and a gemm (2 panels, the last one half a lane block).
"""
import dataclasses

import numpy as np
import pytest
from conftest import three_way, variant
from test_hbm_crosscheck import PAGED, paged

from golden import executor
from golden.generators.operands import prune_nm, random_operands
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.spec import isa
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
        out.append((unit, f, set(l1w), set(l1r), set(ow), set(orr)))
    return out


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
    assert _unordered(cfg, program) == []
    assert program.fields[0]["hbm_addr"] % W == 0


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


@pytest.mark.parametrize("k, one_row", [(240, 15), (300, 19)])
def test_l1_too_small_for_one_lane_block(k, one_row):
    cfg = variant("tiny")
    a, b = random_operands(8, k, 64, 0.5, seed=3)
    block = min(k, cfg.l1_lines)
    with pytest.raises(OperandError, match=(
            rf"^l1.bytes: 4096 is too small for one tile: B \({k}x64\) takes {4 * k} of 256 L1 lines, and even a "
            rf"panel of one lane block \({k}x4\) takes {k}, which leaves {256 - block} lines for two A buffers "
            rf"while one row of A \(dense\) takes {one_row} lines$")):
        compile_matmul_hbm(cfg, a, b)


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
    three_way(cfg, list(zip(RTL_CASES, programs)), rtl, stall)
