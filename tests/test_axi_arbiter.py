# amaranth: UnusedElaboratable=no
"""The AXI4 arbiter (hwgen/rtl/memory/axi_arbiter.py): ID tagging and round robin in Amaranth's simulator, behaviour
under cocotb.

The RTL tests build ``AxiArbiter`` alone in ``VivadoTop`` (masters ``s_axi_m<i>_*``, the joined master
``m_axi_bus_*``) for 1, 2 and 4 masters and run every test of ``sim/rtl/tb/arbiter_tb.py`` in one simulator
process per build, each reported as its own pytest test: cocotbext-axi AxiMasters doing random reads and
writes (disjoint and overlapping ranges) into one AxiRam, random stalls on every channel, data checked per
master, every write landed, AxiMonitors with 0 violations on every port, and every cycle of every
channel equal to the module docstring's rule (zero added latency, round robin with hold).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth import Signal
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hwgen.rtl.memory.axi import AxiSignature, VivadoTop
from hwgen.rtl.memory.axi_arbiter import OUTSTANDING, AxiArbiter
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "arbiter"
TB_MODULE = "sim.rtl.tb.arbiter_tb"
COCOTB_TESTS = ["zero_contention", "random_traffic/p=0.0", "random_traffic/p=0.5", "random_traffic/p=0.9"]
# (masters, id bits, W order depth); 16-byte data, 16-bit addresses
POINTS = [(1, 2, 8), (2, 2, 8), (4, 3, 2)]
PARAMS = {"addr_width": 16, "data_width": 128}


class _ClockedTop(VivadoTop):
    """VivadoTop with a clock and reset even when the inner design has none (one master: a wire), since the
    testbench's models and monitors run on ``clk`` / ``rst``."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        toggle = Signal()
        m.d.sync += toggle.eq(~toggle)
        return m


def arbiter_top(masters: int, id_width: int, outstanding: int) -> VivadoTop:
    arb = AxiArbiter(None, masters, id_width=id_width, outstanding=outstanding, **PARAMS)
    return _ClockedTop(arb, {"bus": "m_axi_bus", **{f"m{i}": f"s_axi_m{i}" for i in range(masters)}})


# ---------------------------------------------------------------------------------------------------
# Python: structure

@pytest.mark.parametrize("masters, sel_bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (9, 4)])
def test_signatures(masters, sel_bits):
    arb = AxiArbiter(None, masters, addr_width=20, data_width=64, id_width=3)
    assert arb.sel_bits == sel_bits and arb.outstanding == OUTSTANDING
    up = AxiSignature(addr_width=20, data_width=64, id_width=3)
    assert set(arb.signature.members) == {*(f"m{i}" for i in range(masters)), "bus"}
    assert all(arb.signature.members[f"m{i}"].signature == up.flip() for i in range(masters))
    assert arb.signature.members["bus"].signature == AxiSignature(addr_width=20, data_width=64, id_width=3 + sel_bits)
    assert arb.tag(masters - 1, 5) == (masters - 1) << 3 | 5 and arb.untag(arb.tag(masters - 1, 5)) == (masters - 1, 5)
    Fragment.get(arb, None)


def test_params_from_a_signature_or_config():
    sig = AxiSignature(addr_width=40, data_width=256, id_width=2)
    arb = AxiArbiter(sig, 3, id_width=4, outstanding=4)
    assert arb.up_signature == AxiSignature(addr_width=40, data_width=256, id_width=4) and arb.outstanding == 4
    from hwgen.rtl import signatures
    from hwgen.spec import config
    cfg = config.load("tiny")
    assert AxiArbiter(cfg, 2).up_signature == signatures.hbm_axi(cfg)
    with pytest.raises(TypeError, match="addr_width"):
        AxiArbiter(None, 2, data_width=64, id_width=1)
    with pytest.raises(ValueError, match="masters"):
        AxiArbiter(sig, 0)
    with pytest.raises(ValueError, match="outstanding"):
        AxiArbiter(sig, 2, outstanding=0)


def _sim(arb, bench):
    sim = Simulator(arb)
    sim.add_clock(1e-8, if_exists=True)      # one master: no register, no clock domain
    sim.add_testbench(bench)
    sim.run()


def test_round_robin_alternates_and_tags_ids():
    """Two masters that always request: grants alternate 0, 1, 0, 1 (the last granted waits), each request
    goes out with ID (master << I) | id in the cycle it is granted, and AR/AW arbitrate independently."""
    arb = AxiArbiter(None, 2, addr_width=16, data_width=32, id_width=2)
    grants = {"ar": [], "aw": []}

    async def bench(ctx):
        ctx.set(arb.bus.ar.ready, 1)
        ctx.set(arb.bus.aw.ready, 1)
        ctx.set(arb.bus.w.ready, 1)
        sent = {(ch, i): 0 for ch in ("ar", "aw") for i in range(2)}
        ctx.set(arb.m1.aw.valid, 1)          # AW: master 1 alone first, then both
        for cycle in range(12):
            for ch in ("ar", "aw"):
                for i, up in enumerate((arb.m0, arb.m1)):
                    chan = getattr(up, ch)
                    ctx.set(chan.payload, {"id": (i + sent[ch, i]) % 4, "addr": 0x100 * i + 16 * sent[ch, i],
                                           "len": 0, "size": 2, "burst": 1})
                    if ch == "ar" or cycle >= 1:
                        ctx.set(chan.valid, 1)
            for up in (arb.m0, arb.m1):      # one-beat W bursts, always offered, so the W order drains
                ctx.set(up.w.valid, 1)
                ctx.set(up.w.payload, {"data": 0, "strb": 15, "last": 1})
            for ch in ("ar", "aw"):
                down = getattr(arb.bus, ch)
                assert ctx.get(down.valid)
                who = [i for i, up in enumerate((arb.m0, arb.m1)) if ctx.get(getattr(up, ch).ready)]
                assert len(who) == 1
                i = who[0]
                p = ctx.get(down.payload)
                assert (p.id, p.addr) == ((i << 2) | (i + sent[ch, i]) % 4, 0x100 * i + 16 * sent[ch, i])
                grants[ch].append(i)
                sent[ch, i] += 1
            await ctx.tick()

    _sim(arb, bench)
    assert grants["ar"] == [0, 1] * 6
    assert grants["aw"] == [1, 0] * 6


def test_held_request_stays_and_three_masters_rotate():
    """A request shown while the bus stalls stays shown (a higher-priority master arriving does not take over);
    with three masters always asking, each waits for the two others."""
    arb = AxiArbiter(None, 3, addr_width=16, data_width=32, id_width=1)
    order = []

    async def bench(ctx):
        ups = (arb.m0, arb.m1, arb.m2)
        ctx.set(arb.m2.ar.valid, 1)
        ctx.set(arb.m2.ar.payload, {"id": 1, "addr": 0x20})
        ctx.set(arb.bus.ar.ready, 0)
        assert ctx.get(arb.bus.ar.valid) and ctx.get(arb.bus.ar.payload.id) == (2 << 1) | 1
        await ctx.tick()
        ctx.set(arb.m0.ar.valid, 1)          # master 0 has priority now, but 2 is held
        ctx.set(arb.m0.ar.payload, {"id": 0, "addr": 0x40})
        for _ in range(3):
            assert ctx.get(arb.bus.ar.payload.id) == (2 << 1) | 1 and ctx.get(arb.bus.ar.payload.addr) == 0x20
            assert not any(ctx.get(u.ar.ready) for u in ups)
            await ctx.tick()
        ctx.set(arb.bus.ar.ready, 1)
        for u in ups:
            ctx.set(u.ar.valid, 1)
        for _ in range(9):
            order.append(ctx.get(arb.bus.ar.payload.id) >> 1)
            await ctx.tick()

    _sim(arb, bench)
    assert order == [2, 0, 1] * 3


def test_responses_go_to_the_master_in_the_id():
    """R/B: only the master named by the ID's top bits sees VALID, with its own ID; RREADY/BREADY is its."""
    arb = AxiArbiter(None, 3, addr_width=16, data_width=32, id_width=2)

    async def bench(ctx):
        ups = (arb.m0, arb.m1, arb.m2)
        for i in range(3):
            ctx.set(ups[i].r.ready, i == 1)
            ctx.set(ups[i].b.ready, i != 1)
        for target in range(3):
            ctx.set(arb.bus.r.valid, 1)
            ctx.set(arb.bus.r.payload, {"id": target << 2 | 3, "data": 0xABCD, "resp": 0, "last": 1})
            ctx.set(arb.bus.b.valid, 1)
            ctx.set(arb.bus.b.payload, {"id": target << 2 | 2, "resp": 2})
            for i, up in enumerate(ups):
                assert ctx.get(up.r.valid) == (i == target) and ctx.get(up.b.valid) == (i == target)
            assert ctx.get(ups[target].r.payload.id) == 3 and ctx.get(ups[target].r.payload.data) == 0xABCD
            assert ctx.get(ups[target].b.payload.id) == 2 and ctx.get(ups[target].b.payload.resp) == 2
            assert ctx.get(arb.bus.r.ready) == (target == 1) and ctx.get(arb.bus.b.ready) == (target != 1)
            await ctx.tick()
        ctx.set(arb.bus.r.payload.id, 3 << 2)         # no master 3: dropped, the bus does not hang
        assert ctx.get(arb.bus.r.ready) and not any(ctx.get(u.r.valid) for u in ups)

    _sim(arb, bench)


def test_one_master_is_a_wire():
    arb = AxiArbiter(None, 1, addr_width=16, data_width=32, id_width=2)

    async def bench(ctx):
        ctx.set(arb.m0.ar.valid, 1)
        ctx.set(arb.m0.ar.payload, {"id": 3, "addr": 0x1230, "len": 7})
        ctx.set(arb.bus.ar.ready, 1)
        assert ctx.get(arb.bus.ar.valid) and ctx.get(arb.m0.ar.ready)
        assert (ctx.get(arb.bus.ar.payload.id), ctx.get(arb.bus.ar.payload.addr)) == (3, 0x1230)
        ctx.set(arb.bus.r.valid, 1)
        ctx.set(arb.bus.r.payload, {"id": 0b111, "data": 5, "last": 1})
        assert ctx.get(arb.m0.r.valid) and ctx.get(arb.m0.r.payload.id) == 3
        ctx.set(arb.m0.w.valid, 1)
        ctx.set(arb.m0.w.payload, {"data": 9, "strb": 15, "last": 1})
        assert ctx.get(arb.bus.w.valid) and ctx.get(arb.bus.w.payload.data) == 9

    _sim(arb, bench)
    frag = Fragment.get(arb, None)
    assert not frag.subfragments                      # no FIFO


def test_w_follows_aw_order_and_may_lead_the_aw_handshake():
    """W: the master of the AW shown on the bus passes its W even while AWREADY is low (no deadlock with a
    slave that waits for WVALID); the next AW's W waits for the head burst's WLAST."""
    arb = AxiArbiter(None, 2, addr_width=16, data_width=32, id_width=1, outstanding=2)

    async def bench(ctx):
        m0, m1, bus = arb.m0, arb.m1, arb.bus
        ctx.set(m1.aw.valid, 1)
        ctx.set(m1.aw.payload, {"id": 0, "addr": 0x40, "len": 1})
        ctx.set(m1.w.valid, 1)
        ctx.set(m1.w.payload, {"data": 11, "strb": 15, "last": 0})
        ctx.set(m0.w.valid, 1)                          # m0 offers W with no AW: must wait
        ctx.set(m0.w.payload, {"data": 22, "strb": 15, "last": 1})
        ctx.set(bus.w.ready, 1)
        assert ctx.get(bus.aw.valid) and ctx.get(bus.w.valid) and ctx.get(bus.w.payload.data) == 11
        assert ctx.get(m1.w.ready) and not ctx.get(m0.w.ready)
        await ctx.tick()                                # beat 0 of m1 passed ahead of its AW
        ctx.set(m1.w.payload, {"data": 12, "strb": 15, "last": 1})
        ctx.set(m0.aw.valid, 1)
        ctx.set(m0.aw.payload, {"id": 1, "addr": 0x80, "len": 0})
        assert ctx.get(bus.aw.payload.addr) == 0x40      # m1's AW is held
        await ctx.tick()                                # m1's last beat passed: its AW is now w_ahead
        ctx.set(m1.w.valid, 0)
        assert ctx.get(bus.aw.payload.addr) == 0x40 and not ctx.get(bus.w.valid)
        ctx.set(bus.aw.ready, 1)
        await ctx.tick()                                # m1's AW taken (not queued: its W is done)
        ctx.set(m1.aw.valid, 0)
        assert ctx.get(bus.aw.payload.addr) == 0x80 and ctx.get(bus.w.payload.data) == 22
        assert ctx.get(m0.w.ready) and ctx.get(m0.aw.ready)
        await ctx.tick()                                # both of m0 in one cycle
        ctx.set(m0.aw.valid, 0)
        ctx.set(m0.w.valid, 0)
        assert not ctx.get(bus.aw.valid) and not ctx.get(bus.w.valid)
        await ctx.tick()
        assert not ctx.get(bus.w.valid) and ctx.get(arb.bus.aw.ready)

    _sim(arb, bench)


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb

@pytest.fixture(scope="module", params=POINTS, ids=[f"n{n}i{i}o{o}" for n, i, o in POINTS])
def point_results(request) -> dict[str, str | None]:
    masters, id_width, outstanding = request.param
    name = f"arbiter_{masters}x{id_width}x{outstanding}"
    folder = runner.build_component(arbiter_top(masters, id_width, outstanding), name, BUILD_ROOT)
    env = {"ARBITER_TB_PARAMS": json.dumps({"masters": masters, "id_width": id_width, "outstanding": outstanding,
                                            **PARAMS})}
    return runner.run_cocotb(folder, name, TB_MODULE, env)


@pytest.mark.rtl
def test_arbiter_ran_every_cocotb_test(point_results):
    assert sorted(point_results) == sorted(COCOTB_TESTS)


@pytest.mark.rtl
@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_arbiter(point_results, name):
    assert name in point_results, f"{name} did not run: {sorted(point_results)}"
    assert point_results[name] is None, point_results[name]
