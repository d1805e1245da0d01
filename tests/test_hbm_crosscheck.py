"""Operands in HBM: golden == sim == RTL for tiled spmm/gemm, under random AXI stalls, with the AXI monitor on.

The RTL's HBM port is answered by the cocotb responder timed by the same HbmPorts model the simulator uses,
so at 0 % stalls every task is taken in the same cycle and the program ends in the same cycle. With stalls
the RTL is slower (the simulator does not model the random pauses) but must stay bit-exact, and the
monitor fails the run on any AXI rule broken.

Every HBM program is paged (virtual addresses in the descriptors, the page table in the image, a TLB per DMA
unit walking over the read channel). The paged tests scatter the physical pages (seeded) and use TLBs small
enough to miss, so walks run while the other unit moves data; at 0 % stalls the TLB counters agree too. The
fault tests point a descriptor outside the table, at an unmapped page and (a STORE) at a read-only page:
the simulator and the RTL report the same fault, take the same tasks and stop in the same cycle.
"""
import dataclasses

import numpy as np
import pytest
from conftest import VARIANTS, three_way, variant

from golden import executor
from golden.generators.operands import prune_nm, random_operands
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.spec import config, isa
from hwgen.spec.formats import OperandError
from sim.model.engine import EngineModel
from sim.rtl.runner import run_rtl_batch

# tiny: an output line is one beat; odd: two beats per line (8-byte beats); wrap16: two lines per beat
HBM_VARIANTS = ["tiny", "odd", "wrap16"]
# small TLBs: 4 KiB pages, one entry per unit (tiny) / 2 sets of 1 way with 8-byte beats (odd); wrap16 keeps
# the preset's 64 KiB pages and 32 entries (compulsory misses only)
PAGED = {
    "tlb1": {**VARIANTS["tiny"], "name": "tlb1", "memory": {"page_bytes": 4096, "tlb_entries": 1}},
    "odd_tlb2": {**VARIANTS["odd"], "name": "odd_tlb2", "memory": {"page_bytes": 4096, "tlb_entries": 2,
                                                                   "tlb_sets": 2}},
    "wrap16": VARIANTS["wrap16"],
}
TLB_COUNTERS = ("tlb_hits", "tlb_misses", "tlb_walks")


def paged(name):
    return config.from_dict(PAGED[name])


def _programs(cfg, seed=0, page_seed=None):
    rng = np.random.default_rng(seed)
    out = []
    for kernel, fmt, density in [("spmm", "dense", 0.3), ("spmm", "bitmask", 0.1), ("spmm", "csr", 0.05),
                                 ("spmm", "nm", 0.5), ("gemm", "dense", 1.0)]:
        m, k, n = int(rng.integers(24, 60)) * 2, int(rng.integers(20, 90)), int(rng.integers(3, 12))
        a, b = random_operands(m, k, n, density, seed=seed)
        if fmt == "nm":
            a = prune_nm(a, 2, 4)
        out.append((f"{kernel}/{fmt} {m}x{k}x{n}", compile_matmul_hbm(cfg, a, b, kernel, fmt, tile_rows=16,
                                                                      page_seed=page_seed)))
    return out


@pytest.mark.rtl
@pytest.mark.parametrize("name", HBM_VARIANTS)
@pytest.mark.parametrize("stall", [0.0, 0.3, 0.9])
def test_hbm_programs_agree(name, stall, build_root):
    cfg = variant(name)
    cases = _programs(cfg)
    assert all(program.params["tiles"] >= 3 for _, program in cases)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=7)
    three_way(cfg, cases, rtl, stall)


def test_compute_overlaps_dma():
    """Double buffering: the program takes less than its tasks back to back."""
    cfg = variant("tiny")
    a, b = random_operands(96, 64, 8, 0.5, seed=1)
    program = compile_matmul_hbm(cfg, a, b, tile_rows=16)
    sim = EngineModel(cfg).run(program)
    compute = sum(sim.stats["task_cycles"]) + len(sim.stats["task_cycles"])
    assert compute < sim.cycles < compute * 2
    assert sim.stats["load_beats"] == sum(f["lines"] for f in program.fields if f["opcode"] == 4)


def test_tile_rows_follow_l1_and_output_buffer():
    cfg = variant("tiny")
    a, b = random_operands(300, 100, 8, 0.5, seed=2)
    program = compile_matmul_hbm(cfg, a, b)
    # tiny: 256 L1 lines, 256 output lines; C takes 2 lines per row, so a half holds 64 rows
    assert program.params["tile_rows"] <= 64
    np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"],
                                  executor.run(cfg.numeric(), program).outputs["C"])


def test_k_larger_than_l1_is_split():
    """B alone needs 4000 of 256 lines, one lane block of it 1000: K runs in chunks (hwgen/compiler/tiling.py)."""
    cfg = variant("tiny")
    a, b = random_operands(8, 1000, 64, 0.5, seed=3)
    program = compile_matmul_hbm(cfg, a, b)
    assert program.params["k_chunks"] >= 8
    np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"],
                                  executor.run(cfg.numeric(), program).outputs["C"])


def _k_split_256(cfg):
    """The tiny preset's 256x256 spmm at density 0.1 (dense-stored A) times a 256x64 B: K does not fit."""
    a, b = random_operands(256, 256, 64, 0.1, seed=0)
    return compile_matmul_hbm(cfg, a, b, "spmm", "dense")


@pytest.mark.rtl
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_k_split_256x256x64_end_to_end(stall, build_root):
    cfg = variant("tiny")
    program = _k_split_256(cfg)
    assert program.params["k_chunks"] >= 2
    rtl = run_rtl_batch(cfg, [program], build_root, stall=stall, seed=7)
    three_way(cfg, [("spmm/dense 256x256x64 d=0.1", program)], rtl, stall)


def test_default_k_4096_sim_equals_golden():
    """default: one lane block of B over K = 4096 is 4096 of L1's 1024 lines."""
    cfg = config.from_dict({"base": "default"})
    a, b = random_operands(64, 4096, 64, 0.1, seed=5)
    program = compile_matmul_hbm(cfg, a, b)
    assert program.params["k_chunks"] >= 4
    np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"],
                                  executor.run(cfg.numeric(), program).outputs["C"])


def test_bad_nm_ratio_is_refused_like_in_l1():
    a, b = random_operands(8, 16, 4, 0.5, seed=0)
    with pytest.raises(OperandError, match=r"^nm: 3:4 is not allowed"):
        compile_matmul_hbm(variant("tiny"), a, b, "spmm", "nm", nm=(3, 4))


# ---- paged tensors: scattered pages, small TLBs, faults ----------------------------------------------

@pytest.mark.rtl
@pytest.mark.parametrize("name", list(PAGED))
@pytest.mark.parametrize("stall", [0.0, 0.3, 0.9])
def test_paged_programs_agree(name, stall, build_root):
    cfg = paged(name)
    cases = _programs(cfg, seed=1, page_seed=11)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=5)
    for label, program, r, sim in three_way(cfg, cases, rtl, stall):
        pages = [p for ppns in program.params["pages"].values() for p in ppns]
        assert pages != sorted(pages), f"{label}: physical pages not scattered"
        assert sim.stats["tlb_walks"] > 0 and sim.stats["page_fault"] == {"load": "NONE", "store": "NONE"}
        assert r.stats["page_fault"] == sim.stats["page_fault"], label
        if stall == 0:
            assert {k: r.stats[k] for k in TLB_COUNTERS} == {k: sim.stats[k] for k in TLB_COUNTERS}, label


def _with(program, index, **fields):
    """The program with descriptor ``index`` changed."""
    descs = list(program.descriptors)
    descs[index] = isa.pack(**{**isa.unpack(descs[index]), **fields})
    return dataclasses.replace(program, descriptors=tuple(descs))


def _faulty(cfg):
    """(label, program, expected page_fault) for each fault kind, each hitting a different task."""
    a, b = random_operands(64, 40, 6, 0.3, seed=4)
    good = compile_matmul_hbm(cfg, a, b, "spmm", "bitmask", tile_rows=16, page_seed=3)
    pb, entries = cfg.memory.page_bytes, good.page_table_entries
    kinds = [isa.unit_of(f["opcode"]) for f in good.fields]
    loads = [i for i, u in enumerate(kinds) if u == isa.Unit.LOAD]
    stores = [i for i, u in enumerate(kinds) if u == isa.Unit.STORE]
    b_vaddr = good.fields[0]["hbm_addr"]
    mapped = {good.fields[i]["hbm_addr"] // pb for i in loads + stores}
    unmapped = max(v for v in range(entries) if v not in mapped and v > max(mapped))
    return [
        ("outside: a LOAD past the table", _with(good, loads[2], hbm_addr=entries * pb + 64),
         {"load": "OUTSIDE", "store": "NONE"}),
        ("unmapped: a LOAD of a page no tensor owns", _with(good, loads[1], hbm_addr=unmapped * pb),
         {"load": "UNMAPPED", "store": "NONE"}),
        ("permission: a STORE into read-only B", _with(good, stores[1], hbm_addr=b_vaddr),
         {"load": "NONE", "store": "PERMISSION"}),
    ]


def test_faults_in_the_simulator():
    cfg = paged("tlb1")
    model = EngineModel(cfg)
    for label, program, want in _faulty(cfg):
        sim = model.run(program)
        assert sim.stats["page_fault"] == want, label
        assert len(sim.stats["task_issue"]) < len(program.descriptors), f"{label}: the engine should halt"
        assert sim.stats["tlb"]["load" if want["load"] != "NONE" else "store"]["faults"] == 1, label


def test_outside_is_a_miss_but_not_a_walk():
    """The model counts an access beyond the table as a miss and a fault but not a walk, as the RTL does."""
    cfg = paged("tlb1")
    label, program, _ = _faulty(cfg)[0]
    s = EngineModel(cfg).run(program).stats["tlb"]["load"]
    assert s["misses"] == s["walks"] + 1 and s["faults"] == 1, label


@pytest.mark.rtl
def test_faults_agree(build_root):
    cfg = paged("tlb1")
    cases = _faulty(cfg)
    rtl = run_rtl_batch(cfg, [p for _, p, _ in cases], build_root)
    model = EngineModel(cfg)
    for (label, program, want), r in zip(cases, rtl, strict=True):
        sim = model.run(program)
        assert r.stats["page_fault"] == sim.stats["page_fault"] == want, label
        assert (r.stats["task_issue"], r.cycles) == (sim.stats["task_issue"], sim.cycles), label
        assert {k: r.stats[k] for k in TLB_COUNTERS} == {k: sim.stats[k] for k in TLB_COUNTERS}, label


def test_paging_stats_and_compulsory_misses():
    """The simulator reports the TLB counters and the allocator's fragmentation. The tiled program touches each
    tensor's pages once, in order, per unit, so its misses are compulsory: one walk per page a unit touches, as
    many with one TLB entry per unit as with 32, and a lookup per burst."""
    a, b = random_operands(96, 64, 8, 0.3, seed=2)
    runs = {}
    for entries in (1, 32):
        cfg = config.from_dict({**VARIANTS["tiny"], "memory": {"page_bytes": 4096, "tlb_entries": entries}})
        program = compile_matmul_hbm(cfg, a, b, "spmm", "dense", tile_rows=16, page_seed=7)
        runs[entries] = run = EngineModel(cfg).run(program)
        f = run.stats["fragmentation"]
        assert f == program.fragmentation and f["tensors"] == program.params["tiles"] + 2
        assert f["used_pages"] * 2 == f["physical_pages"] and 0 < f["internal"] < 1
        pb, W = cfg.memory.page_bytes, cfg.beat_bytes
        touched = {u: set() for u in (isa.Unit.LOAD, isa.Unit.STORE)}
        for fl in program.fields:
            unit = isa.unit_of(fl["opcode"])
            if unit in touched:
                beats = fl["lines"] if unit == isa.Unit.LOAD else fl["lines"] * cfg.out_line_bits // (8 * W)
                touched[unit] |= set(range(fl["hbm_addr"] // pb, (fl["hbm_addr"] + beats * W - 1) // pb + 1))
        tlb = run.stats["tlb"]
        assert (tlb["load"]["walks"], tlb["store"]["walks"]) == (len(touched[isa.Unit.LOAD]),
                                                                len(touched[isa.Unit.STORE]))
        assert run.stats["tlb_hits"] + run.stats["tlb_misses"] == run.stats["load_bursts"] + run.stats["store_bursts"]
        assert run.stats["tlb_walk_cycles"] > run.stats["tlb_walks"]
    assert runs[1].cycles == runs[32].cycles


def test_page_seed_scatters_and_default_is_identity():
    cfg = variant("tiny")
    a, b = random_operands(64, 40, 6, 0.3, seed=4)
    plain = compile_matmul_hbm(cfg, a, b, tile_rows=16)
    pages = [p for ppns in plain.params["pages"].values() for p in ppns]
    assert pages == list(range(len(pages)))                              # deterministic: virtual == physical
    assert plain.page_table_base == len(pages) * cfg.memory.page_bytes   # the table right after the pool
    s1, s2 = (compile_matmul_hbm(cfg, a, b, tile_rows=16, page_seed=s) for s in (1, 2))
    assert s1.params["pages"] != s2.params["pages"]
    assert s1.descriptors == plain.descriptors                           # virtual addresses do not move
    for p in (plain, s1):
        np.testing.assert_array_equal(EngineModel(cfg).run(p).outputs["C"], executor.run(cfg.numeric(), p).outputs["C"])


# ---- several HBM ports: the interleaver (hwgen/rtl/memory/hbm_interleaver.py) -------------------------------------

# tiny with 2 ports of 64-byte chunks (bursts of <= 4 beats) and 4 ports of 256-byte chunks (<= 16 beats):
# bursts rotate over the ports, and a port's beats often wait for an earlier port's
INTERLEAVED = {
    "ports2": {**VARIANTS["tiny"], "name": "ports2", "memory": {"ports": 2, "interleave_bytes": 64},
               "l3": {"enabled": False}},
    "ports4": {**VARIANTS["tiny"], "name": "ports4", "memory": {"ports": 4, "interleave_bytes": 256},
               "l3": {"enabled": False}},
}


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(INTERLEAVED))
@pytest.mark.parametrize("stall", [0.0, 0.3, 0.9])
def test_interleaved_ports_agree(name, stall, build_root):
    """P ports: RTL == sim == golden; exact cycles at 0 % stalls (the interleaver adds no cycle and returns
    responses in request order, as sim/model/memory/dma.py assumes), bit-exact with every port stalled."""
    cfg = config.from_dict(INTERLEAVED[name])
    cases = _programs(cfg)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=9)
    read = np.zeros(cfg.memory.ports, dtype=np.int64)
    for *_, sim in three_way(cfg, cases, rtl, stall):
        read += [p["bytes_read"] for p in sim.stats["hbm"]["ports"]]
    assert read.all(), f"bytes read per port: {read.tolist()}: a port went untested"


# the L3's other policies in the chip: streaming bypass (the LOADs of A tiles carry `stream`, sent to the
# L3 as `hbm_ar_stream`) and write-through (no dirty lines: the flush before the readback has nothing to do)
L3_POLICIES = {
    "l3_stream_wt": {**VARIANTS["tiny"], "name": "l3_stream_wt",
                     "l3": {"bypass": "streaming", "write_policy": "write_through", "replacement": "random"}},
}


@pytest.mark.rtl
@pytest.mark.parametrize("stall", [0.0, 0.9])
def test_l3_policies_in_the_chip(stall, build_root):
    cfg = config.from_dict(L3_POLICIES["l3_stream_wt"])
    cases = _programs(cfg)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=5)
    runs = three_way(cfg, cases, rtl, stall)
    assert sum(sim.stats["l3"]["bypassed"] for *_, sim in runs) > 0   # the A tiles' read-once loads skipped it
