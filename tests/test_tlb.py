# amaranth: UnusedElaboratable=no
"""The RTL TLB (hwgen/rtl/memory/tlb.py) in Amaranth's simulator, in lockstep with the model sim.model.memory.tlb.Tlb.

Every response is checked against the model translating the same access at the cycle the request is accepted:
the physical address, the fault, the five counters and the contents of every set in LRU order; every walk
address against ``PageTable.entry_address``; every latency against the component's timing properties. Page
tables come from ``PageAllocator`` (seeded: scattered physical pages), with read-only tensors and holes left
by ``free`` (unmapped pages), and accesses beyond the table (outside).

The linter comment above: constructors that raise ValueError leave an unused Elaboratable behind."""
import random
from itertools import pairwise

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hwgen.compiler.page_allocator import PageAllocator
from hwgen.rtl.memory.tlb import MAX_ENTRIES, Tlb
from hwgen.spec import config
from hwgen.spec.page_table import FAULT_BITS, FAULT_OF_REASON, Fault, PageFault, PageTable
from sim.model.memory.tlb import Tlb as ModelTlb

COUNTERS = ("hits", "misses", "walks", "evictions", "faults")


def _config(page_bytes=4096, **memory):
    return config.from_dict({"base": "tiny", "memory": {"page_bytes": page_bytes, **memory}})


def _table(cfg, seed: int) -> PageTable:
    """Scattered pages (seeded free list), some tensors read-only, two freed (unmapped holes)."""
    pb = cfg.memory.page_bytes
    rng = random.Random(seed)
    pages = max(48, 4 * cfg.memory.tlb_entries)
    alloc = PageAllocator(cfg, pages * pb, base=16 * pb, seed=seed)
    names = []
    while alloc.free_pages > pages // 8:
        name = f"t{len(names)}"
        alloc.alloc(name, rng.randint(1, 5 * pb), writable=rng.random() < 0.6)
        names.append(name)
    for name in rng.sample(names, 2):
        alloc.free(name)
    return alloc.page_table()


def _accesses(table: PageTable, n: int, entries: int, seed: int, addr_width: int = 40) -> list:
    """Random accesses with locality: mostly pages seen lately (hits), else any page of a pool of mapped pages a
    few times larger than the TLB (misses, evictions), plus some unmapped and outside pages."""
    rng = random.Random(seed)
    pb = table.page_bytes
    mapped = [v for v in range(table.num_entries) if table.entries[v] & 1]
    unmapped = [v for v in range(table.num_entries) if not table.entries[v] & 1]
    outside = [table.num_entries, table.num_entries + 1, (1 << (addr_width - table.page_shift)) - 1]
    pool = rng.sample(mapped, min(len(mapped), 3 * entries + 2)) + rng.sample(unmapped, entries // 2 + 2) + outside
    recent: list[int] = []
    ops = []
    for _ in range(n):
        if recent and rng.random() < 0.6:
            vpn = rng.choice(recent[-max(2, entries):])
        else:
            vpn = rng.choice(pool)
        recent.append(vpn)
        ops.append(("req", vpn * pb + rng.randrange(pb), rng.random() < 0.3))
    return ops


class Knobs:
    """Stimulus: request gaps, resp.ready low runs, walk_req.ready, walk answer delay (cycles after the walk
    handshake, on top of the one cycle the TLB needs)."""

    def __init__(self, seed=0, gap=0.0, resp_stall=0.0, stall_len=(1, 10), walk_ready=1.0, walk_delay=(0, 0)):
        self.rng = random.Random(seed)
        self.gap, self.resp_stall, self.stall_len = gap, resp_stall, stall_len
        self.walk_ready, self.walk_delay = walk_ready, walk_delay


def _run(dut: Tlb, table: PageTable, ops: list, knobs: Knobs, model_ways=None):
    """Drive ``ops`` (("req", vaddr, write) or ("flush",)) through the DUT in lockstep with the model.
    Returns (model, records): one record per request with its kind and the cycles of its events."""
    model = ModelTlb(table, dut.entries, dut.ways if model_ways is None else model_ways)
    memory = {table.entry_address(v): int(table.entries[v]) for v in range(table.num_entries)}
    records = []
    rng = knobs.rng

    async def tb(ctx):
        ctx.set(dut.table_base, table.base)
        ctx.set(dut.table_entries, table.num_entries)
        cycle = op_i = progress = stall = 0
        flight = None     # the request in flight
        walk = None       # the scheduled walk answer: [due cycle, word]
        gap = False
        while op_i < len(ops) or flight is not None:
            assert cycle - progress < 200, f"no progress since cycle {progress}"
            op = ops[op_i] if op_i < len(ops) else None
            # drive
            if stall:
                stall -= 1
            elif rng.random() < knobs.resp_stall:
                stall = rng.randint(*knobs.stall_len)
            ctx.set(dut.resp.ready, not stall)
            flushing = op is not None and op[0] == "flush" and flight is None
            ctx.set(dut.flush, flushing)
            nxt = ops[op_i + 1] if flushing and op_i + 1 < len(ops) else op
            offer = nxt is not None and nxt[0] == "req" and not gap
            ctx.set(dut.req.valid, offer)
            if offer:
                ctx.set(dut.req.payload.vaddr, nxt[1])
                ctx.set(dut.req.payload.write, nxt[2])
            ctx.set(dut.walk_req.ready, rng.random() < knobs.walk_ready)
            ctx.set(dut.walk_resp.valid, walk is not None and cycle >= walk[0])
            if walk is not None:
                ctx.set(dut.walk_resp.payload, walk[1])
            gap = rng.random() < knobs.gap

            # observe (the order matters: a response taken in this cycle frees the TLB for the next request)
            if flushing:
                assert not ctx.get(dut.req.ready), "a request accepted during flush"
                model.flush()
                op_i, progress = op_i + 1, cycle
            if ctx.get(dut.walk_req.valid):
                assert flight is not None and flight["kind"] == "miss", "a walk without a miss in flight"
                assert ctx.get(dut.walk_req.payload) == flight["walk_addr"]
                if flight["walk_first"] is None:
                    flight["walk_first"] = cycle
                if ctx.get(dut.walk_req.ready):
                    assert walk is None
                    flight["walk_hs"] = cycle
                    walk = [cycle + 1 + rng.randint(*knobs.walk_delay), memory[flight["walk_addr"]]]
            if ctx.get(dut.walk_resp.valid) and ctx.get(dut.walk_resp.ready):
                flight["walk_resp_hs"], walk = cycle, None
            if ctx.get(dut.resp.valid):
                assert flight is not None, "a response without a request"
                payload = ctx.get(dut.resp.payload)
                got = (payload.paddr, Fault(payload.fault.value))   # the RTL enum, read as the spec code
                if flight["resp_first"] is None:
                    flight["resp_first"], flight["got"] = cycle, got
                assert got == flight["got"], "resp.payload changed while resp.ready was low"
                if ctx.get(dut.resp.ready):
                    assert got == flight["expect"], (flight, got)
                    assert {c: ctx.get(getattr(dut, c)) for c in COUNTERS} == flight["stats"]
                    assert dut.contents(ctx.get(dut.store)) == flight["contents"]
                    flight["resp_hs"], flight, progress = cycle, None, cycle
            if offer and ctx.get(dut.req.ready):
                assert flight is None, "a request accepted while one is in flight"
                flight = _expect(model, table, nxt[1], nxt[2], cycle)
                records.append(flight)
                op_i, progress = op_i + 1, cycle
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return model, records


def _expect(model: ModelTlb, table: PageTable, vaddr: int, write: bool, cycle: int) -> dict:
    """The model's answer to one access, and what the DUT must show when it responds."""
    hits = model.stats["hits"]
    try:
        paddr, _ = model.translate(vaddr, write)
        fault = Fault.NONE
    except PageFault as e:
        paddr, fault = 0, FAULT_OF_REASON[e.reason]
    stats = model.stats
    kind = "hit" if stats["hits"] > hits else "outside" if fault == Fault.OUTSIDE else "miss"
    return {"vaddr": vaddr, "write": write, "kind": kind, "expect": (paddr, fault), "acc": cycle,
            "stats": {c: stats[c] for c in COUNTERS}, "contents": model.contents(),
            "walk_addr": table.entry_address(vaddr // table.page_bytes), "walk_first": None, "walk_hs": None,
            "walk_resp_hs": None, "resp_first": None, "resp_hs": None}


def _check_latencies(dut: Tlb, records: list) -> None:
    for r in records:
        if r["kind"] == "miss":
            assert r["walk_first"] == r["acc"] + dut.walk_issue_latency, r
            assert r["resp_first"] == r["walk_resp_hs"] + dut.fill_latency, r
        else:
            assert r["walk_first"] is None, r
            assert r["resp_first"] == r["acc"] + dut.hit_latency, r


# fully associative, 2-way, 4-way, one entry, direct mapped, the preset's 32 entries (64 KiB pages), narrow
CONFIGS = [
    ("fa8", dict(tlb_entries=8, tlb_sets=1), 40),
    ("2way", dict(tlb_entries=8, tlb_sets=4), 40),
    ("4way", dict(tlb_entries=16, tlb_sets=4), 40),
    ("one", dict(tlb_entries=1, tlb_sets=1), 40),
    ("direct", dict(tlb_entries=8, tlb_sets=8), 40),
    ("fa32_64k", dict(tlb_entries=32, tlb_sets=1, page_bytes=65536), 40),
    ("2way_narrow", dict(tlb_entries=4, tlb_sets=2), 24),
]


@pytest.mark.parametrize("name,memory,addr_width", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_lockstep_with_model(name, memory, addr_width):
    """Random accesses, random gaps, resp.ready low runs, walk answers after 0..20 cycles, flushes."""
    seed = sum(map(ord, name))
    cfg = _config(**memory)
    table = _table(cfg, seed)
    dut = Tlb(cfg, addr_width=addr_width)
    ops = _accesses(table, 300, dut.entries, seed, addr_width)
    for at in (100, 220):
        ops.insert(at, ("flush",))
    knobs = Knobs(seed, gap=0.3, resp_stall=0.1, walk_ready=0.6, walk_delay=(0, 20))
    model, records = _run(dut, table, ops, knobs)
    _check_latencies(dut, records)
    stats = model.stats
    assert stats["hits"] and stats["misses"] and stats["faults"]
    assert stats["evictions"]       # the pool is a few times the TLB
    assert {r["expect"][1] for r in records} == set(Fault), "every fault kind occurs"


def test_back_to_back_hits_one_per_cycle():
    """Producer always valid, consumer always ready, walks answered at once: hits every ``hit_interval`` cycles,
    a miss takes ``miss_latency(1)`` cycles to its response."""
    cfg = _config(tlb_entries=8, tlb_sets=1)
    table = _table(cfg, 3)
    dut = Tlb(cfg)
    pb = table.page_bytes
    mapped = [v for v in range(table.num_entries) if table.entries[v] & 1][:4]
    ops = [("req", v * pb + 8 * i, False) for i in range(3) for v in mapped]   # 4 misses, then 8 hits
    _, records = _run(dut, table, ops, Knobs())
    _check_latencies(dut, records)
    assert [r["kind"] for r in records] == ["miss"] * 4 + ["hit"] * 8
    for r in records[:4]:
        assert r["resp_first"] == r["acc"] + dut.miss_latency(1)
    for a, b in pairwise(records[4:]):
        assert b["acc"] == a["acc"] + dut.hit_interval
        assert b["resp_hs"] == a["resp_hs"] + dut.hit_interval
    assert records[4]["acc"] == records[3]["resp_hs"]   # accepted in the cycle the miss's response is taken


def test_resp_backpressure_holds_and_blocks():
    """resp.ready low for long runs: the response holds (checked every cycle by the harness), no request is
    accepted meanwhile, and the stall shows up one for one in the handshake cycle."""
    cfg = _config(tlb_entries=4, tlb_sets=2)
    table = _table(cfg, 5)
    dut = Tlb(cfg)
    ops = _accesses(table, 80, dut.entries, 5)
    _, records = _run(dut, table, ops, Knobs(5, resp_stall=0.5, stall_len=(5, 15), walk_delay=(0, 3)))
    _check_latencies(dut, records)
    stalled = [r["resp_hs"] - r["resp_first"] for r in records]
    assert max(stalled) >= 5
    for a, b in pairwise(records):
        assert b["acc"] >= a["resp_hs"]


def test_flush_empties_and_refills():
    cfg = _config(tlb_entries=4, tlb_sets=1)
    table = _table(cfg, 9)
    dut = Tlb(cfg)
    pb = table.page_bytes
    mapped = [v for v in range(table.num_entries) if table.entries[v] & 1][:3]
    reqs = [("req", v * pb, False) for v in mapped]
    _, records = _run(dut, table, reqs + reqs + [("flush",)] + reqs + [("flush",), ("flush",)] + reqs,
                      Knobs(9, walk_delay=(0, 4)))
    assert [r["kind"] for r in records] == ["miss"] * 3 + ["hit"] * 3 + ["miss"] * 3 + ["miss"] * 3
    assert records[6]["contents"] == [[mapped[0]]]   # the first access after the flush finds an empty TLB


def test_flush_during_walk_still_fills():
    """A flush while a walk is under way: the walked entry is filled afterwards (the model's order: flush, then
    the translation), the entries before the flush are gone."""
    cfg = _config(tlb_entries=4, tlb_sets=1)
    table = _table(cfg, 11)
    dut = Tlb(cfg)
    pb = table.page_bytes
    a, b = [v for v in range(table.num_entries) if table.entries[v] & 1][:2]
    memory = {table.entry_address(v): int(table.entries[v]) for v in range(table.num_entries)}

    async def tb(ctx):
        ctx.set(dut.table_base, table.base)
        ctx.set(dut.table_entries, table.num_entries)
        ctx.set(dut.resp.ready, 1)
        ctx.set(dut.walk_req.ready, 1)
        for vpn in (a, b):
            ctx.set(dut.req.valid, 1)
            ctx.set(dut.req.payload.vaddr, vpn * pb)
            await ctx.tick()
            ctx.set(dut.req.valid, 0)
            await ctx.tick().repeat(dut.walk_issue_latency - 1)
            assert ctx.get(dut.walk_req.valid)
            addr = ctx.get(dut.walk_req.payload)
            await ctx.tick()
            if vpn == b:          # the walk of b is in flight: flush now
                ctx.set(dut.flush, 1)
                await ctx.tick()
                ctx.set(dut.flush, 0)
                assert dut.contents(ctx.get(dut.store)) == [[]]
            ctx.set(dut.walk_resp.valid, 1)
            ctx.set(dut.walk_resp.payload, memory[addr])
            await ctx.tick()
            ctx.set(dut.walk_resp.valid, 0)
            assert ctx.get(dut.resp.valid) and ctx.get(dut.resp.payload.fault).value == Fault.NONE
            await ctx.tick()
        assert dut.contents(ctx.get(dut.store)) == [[b]]
        assert (ctx.get(dut.misses), ctx.get(dut.walks), ctx.get(dut.evictions)) == (2, 2, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_fault_codes_cover_the_model():
    assert set(FAULT_OF_REASON.values()) | {Fault.NONE} == set(Fault)
    assert Fault.NONE.value == 0     # an all-zero response is a success


def test_rtl_fault_is_the_spec_encoding():
    from hwgen.rtl.memory.tlb import Fault as RtlFault
    assert [(f.name, f.value) for f in RtlFault] == [(f.name, f.value) for f in Fault]
    assert RtlFault.as_shape().width == FAULT_BITS


def test_rejects_sizes():
    with pytest.raises(ValueError, match="memory.tlb_entries: 128 is not allowed"):
        Tlb(_config(tlb_entries=2 * MAX_ENTRIES))
    with pytest.raises(ValueError, match="addr_width"):
        Tlb(_config(page_bytes=65536), addr_width=16)
    with pytest.raises(ValueError, match="walk_cycles"):
        Tlb(_config()).miss_latency(0)


@pytest.mark.parametrize("memory", [dict(tlb_entries=8, tlb_sets=4), dict(tlb_entries=1, tlb_sets=1)])
def test_converts_to_verilog(memory):
    text = verilog.convert(Tlb(_config(**memory)), name="tlb")
    assert "module tlb" in text and "walk_req__payload" in text
