"""The L3 with several HBM ports: one slice per port behind the interleaver (``hwgen/rtl/top.py: memory_side``),
timed by ``sim/model/memory/l3_slices.py``.

- The config: ``check_memory_side`` refuses what the sliced cache cannot be (an interleave chunk smaller than
  an L3 line, a slice smaller than one set per bank, ports sharing HBM pseudo-channels), with one line per
  problem naming the field, the value and what is allowed; the generator, the simulator and the CLI (exit 2)
  alike.
- The model: a slice indexes its sets with the address bits that vary within it (every set used), answers on
  its own HBM port, and the slices' responses come back in request order over all of them.
- golden == sim == RTL: for one engine at 2 and 4 ports, exact cycles (task issue cycles and the end) and the
  L3's counters summed over the slices equal the simulator's, with bursts on every port; bit-exact under
  random stalls; a DAG on the whole chip within ``DAG_CYCLE_TOLERANCE`` (the chip model's bound: measured
  below 2.2 % here, where the engines' requests meet at the arbiter; one engine on the chip is exact).
"""
import numpy as np
import pytest
from conftest import VARIANTS, three_way
from test_hbm_crosscheck import _programs

from golden.executor import run as golden_run
from golden.generators import dags as dw
from golden.generators.operands import random_operands
from hwgen.compiler.dag import compile_workload
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.rtl.build import extra_sources, top_component
from hwgen.rtl.memory.l3_cache import ram_shapes
from hwgen.spec import config
from hwgen.spec.l3 import L3Timing
from sim.model.chip import ChipModel
from sim.model.engine import EngineModel
from sim.model.memory.axi_port import HbmPorts
from sim.model.memory.l3_slices import L3Slices
from sim.verify import DAG_CYCLE_TOLERANCE

# tiny with its L3 cut in 2 slices of 64-byte chunks (one L3 line each: consecutive lines alternate between the
# slices) and in 4 slices of 256-byte chunks with streaming bypass and random replacement (one LFSR per slice)
SLICED = {
    "l3ports2": {**VARIANTS["tiny"], "name": "l3ports2", "memory": {"ports": 2, "interleave_bytes": 64}},
    "l3ports4": {**VARIANTS["tiny"], "name": "l3ports4", "memory": {"ports": 4, "interleave_bytes": 256},
                 "l3": {"bypass": "streaming", "replacement": "random"}},
}
COUNTERS = ("hits", "misses", "evictions", "writebacks")


def sliced(name: str) -> config.HwConfig:
    return config.from_dict(SLICED[name])


# ---- the config ------------------------------------------------------------------------------------------

BAD = [
    ({"memory": {"ports": 2, "interleave_bytes": 4096}},
     ["memory.interleave_bytes: 4096 is not allowed with the L3 on 2 ports: must be <= 512 (memory.hbm.access_bytes "
      "x pseudo-channels / ports = 1024 / 2), so that each port and its L3 slice own their HBM pseudo-channels"]),
    ({"memory": {"ports": 4, "interleave_bytes": 128}, "l3": {"line_bytes": 256}},
     ["memory.interleave_bytes: 128 is not allowed with the L3 on 4 ports: must be >= l3.line_bytes (256), so that "
      "a line lives in one port's L3 slice"]),
]


def test_bad_combinations_are_refused_by_generator_and_simulator():
    for diff, lines in BAD:
        cfg = config.from_dict({"base": "tiny", "name": "bad", **diff})
        with pytest.raises(config.ConfigError) as err:
            config.check_memory_side(cfg)
        assert err.value.problems == lines
        with pytest.raises(config.ConfigError):
            top_component(cfg)
        program = compile_matmul_hbm(cfg, *random_operands(8, 16, 4, 0.5, seed=0), "spmm", "bitmask")
        with pytest.raises(config.ConfigError):
            EngineModel(cfg).run(program)


def test_every_problem_gets_its_line():
    cfg = config.from_dict({"base": "tiny", "name": "bad", "memory": {"ports": 32, "interleave_bytes": 64},
                            "l3": {"bytes": 4096, "ways": 4, "banks": 2, "line_bytes": 128}})
    with pytest.raises(config.ConfigError) as err:
        config.check_memory_side(cfg)
    assert [line.split(":")[0] for line in err.value.problems] == ["memory.interleave_bytes", "l3.bytes",
                                                                   "memory.interleave_bytes"]
    assert "each slice (l3.bytes / ports = 128) must hold one set per bank" in err.value.problems[1]


def test_what_still_builds():
    """One port with the L3, or several without it, is what it was; the sliced cache needs nothing else."""
    for diff in ({}, {"l3": {"enabled": False}, "memory": {"ports": 4}}, SLICED["l3ports2"], SLICED["l3ports4"]):
        config.check_memory_side(config.from_dict({"base": "tiny", **{k: v for k, v in diff.items() if k != "base"}}))


# ---- the model ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SLICED))
def test_a_slice_indexes_every_set_and_answers_on_its_port(name):
    cfg = sliced(name)
    t = L3Timing.of(cfg)
    P, il, lb = cfg.memory.ports, cfg.memory.interleave_bytes, cfg.l3.line_bytes
    assert (t.slices, t.sets, t.init_cycles) == (P, cfg.l3.sets // P, cfg.l3.sets // P // cfg.l3.banks)
    for s in range(P):
        lines = [a for a in range(0, 2 * cfg.l3.bytes, lb) if t.slice_of(a) == s]
        assert sorted({t.local(a) // lb % t.sets for a in lines}) == list(range(t.sets))   # every set, no aliasing
        assert all(t.physical(t.local(a), s) == a for a in lines)
        assert all(a // il % P == s for a in lines)
    # the RAM modules are a slice's: sets / P rows, and the tag loses the slice bits
    tag, data = ram_shapes(cfg)
    one = config.from_dict({**SLICED[name], "memory": {"ports": 1}})
    tag1, data1 = ram_shapes(one)
    assert data.depth * P == data1.depth and tag.depth * P == tag1.depth
    assert set(extra_sources(cfg)) == {f"{tag.module}.v", f"{data.module}.v"}


def test_slices_fill_from_their_own_ports_and_answer_in_request_order():
    cfg = sliced("l3ports2")
    mem = L3Slices(cfg)
    beats = cfg.l3.line_bytes // cfg.beat_bytes
    # a miss on slice 0, then a line of slice 1, then again slice 0's line (a hit)
    r0 = mem.serve_read(0, 0, 0, beats)
    r1 = mem.serve_read(1, 1, 64, beats)
    r2 = mem.serve_read(2, 0, 0, beats)
    merged = r0 + r1 + r2
    assert merged == sorted(merged) and len(set(merged)) == len(merged)          # one beat per cycle, in order
    assert r2[0] == r1[-1] + 1                                                    # the hit waited for its turn
    calls = [c for s in mem.slices for c in s.master_calls]
    assert sorted((port, address) for _, port, _, address, _ in calls) == [(0, 0), (1, 64)]
    s = mem.stats
    assert (s["hits"], s["misses"]) == (1, 2)
    assert s["slices"] == [{"hits": 1, "misses": 1, "evictions": 0, "writebacks": 0},
                           {"hits": 0, "misses": 1, "evictions": 0, "writebacks": 0}]
    with pytest.raises(ValueError, match=r"^read: port 0 is not allowed: address 0x40 is in port 1's"):
        mem.read(9, 0, 64, 1)


def test_a_full_output_fifo_holds_the_slice_back():
    """Slice 1's hits wait behind slice 0's miss, and once ``response_fifo`` of its beats wait, its data stage stops:
    the second hit's last data micro-op runs the cycle after the first hit's last beat leaves."""
    cfg = sliced("l3ports2")
    beats = cfg.l3.line_bytes // cfg.beat_bytes
    assert beats == L3Timing.of(cfg).response_fifo
    mem = L3Slices(cfg)
    for address in (64, 192):                                  # two lines of slice 1
        mem.serve_read(mem.idle_cycle, 1, address, beats)
    c = mem.idle_cycle
    miss = mem.serve_read(c, 0, 0, beats)                      # slice 0: a miss, long
    hit1 = mem.serve_read(c + 1, 1, 64, beats)                 # slice 1: hits, ready long before their turn
    hit2 = mem.serve_read(c + 2, 1, 192, beats)
    assert hit1[0] == miss[-1] + 1 and hit2[0] == hit1[-1] + 1
    assert miss[-1] > c + 3 * cfg.l3.hit_cycles
    assert mem.slices[1]._u == hit1[-1] + 1                    # the last data micro-op (``hit_cycles`` after c)


def test_ports_that_share_pseudo_channels_cannot_be_called_out_of_order():
    cfg = config.from_dict({"base": "tiny", "memory": {"ports": 2, "interleave_bytes": 4096},
                            "l3": {"enabled": False}})
    with pytest.raises(ValueError, match=r"^own_channels: the ports share pseudo-channels"):
        HbmPorts(cfg, own_channels=True)
    shared = HbmPorts(cfg)
    shared.read(10, 1, 4096, 1)
    with pytest.raises(ValueError, match="out of order"):
        shared.read(9, 0, 0, 1)
    own = HbmPorts(sliced("l3ports2"), own_channels=True)
    own.read(10, 1, 64, 1)
    own.read(9, 0, 0, 1)                                       # another port's pseudo-channels: commutes
    with pytest.raises(ValueError, match="out of order after read on port 0 in cycle 9"):
        own.read(8, 0, 128, 1)


# ---- golden == sim == RTL ---------------------------------------------------------------------------------

@pytest.mark.rtl
@pytest.mark.parametrize(("name", "stall"), [("l3ports2", 0.0), ("l3ports2", 0.3), ("l3ports4", 0.0)])
def test_sliced_l3_programs_agree(name, stall, build_root):
    from sim.rtl.runner import run_rtl_batch
    cfg = sliced(name)
    cases = _programs(cfg)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=9)
    read = np.zeros(cfg.memory.ports, dtype=np.int64)
    for label, _, r, sim in three_way(cfg, cases, rtl, stall):
        read += [p["bytes_read"] for p in sim.stats["hbm"]["ports"]]
        per_slice = sim.stats["l3"]["slices"]
        assert all(s["misses"] for s in per_slice), f"{label}: a slice went unused: {per_slice}"
        summed = {k: sum(s[k] for s in per_slice) for k in COUNTERS}
        assert summed == {k: sim.stats["l3"][k] for k in COUNTERS}, label
        if stall == 0:                         # the counters do not depend on timing with one engine
            assert r.stats["l3"] == summed, label
    assert read.all(), f"bytes read per port: {read.tolist()}"


@pytest.mark.rtl
def test_sliced_l3_on_the_chip(build_root):
    from sim.rtl.runner import run_chip_batch
    cfg = sliced("l3ports2")
    workloads = [dw.multimodal(0), dw.random_dag(0, kernels=6, shape="diamonds")]
    programs = [compile_workload(cfg, w) for w in workloads]
    results = run_chip_batch(cfg, programs, build_root, seed=7)
    for w, p, rtl in zip(workloads, programs, results, strict=True):
        g = golden_run(cfg.numeric(), p)
        sim = ChipModel(cfg).run(p, start_cycle=rtl.stats["start_cycle"])
        for out in g.outputs:
            assert np.array_equal(rtl.outputs[out], g.outputs[out]), (w.name, out)
            assert np.array_equal(sim.outputs[out], g.outputs[out]), (w.name, out)
        assert rtl.stats["error"] == 0 and rtl.stats["dma_error"] == 0 and rtl.stats["page_fault"] == 0
        assert abs(sim.cycles - rtl.cycles) <= DAG_CYCLE_TOLERANCE * rtl.cycles, (w.name, sim.cycles, rtl.cycles)
        assert all(s["misses"] for s in sim.stats["l3"]["slices"]), w.name
