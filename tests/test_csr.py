# amaranth: UnusedElaboratable=no
"""hwgen.spec.csr_map: the register table (validation, Markdown, JSON); hwgen.rtl.scheduler.csr: CsrBlock in
Amaranth's simulator with the AXI4-Lite bus driven by hand, and CsrBlock in VivadoTop under Verilator +
cocotbext-axi (sim/rtl/tb/csr_tb.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen.rtl.memory.axi import AxiLiteSignature, VivadoTop
from hwgen.rtl.scheduler.csr import CsrBlock
from hwgen.spec.axi import RESP_OKAY, RESP_SLVERR
from hwgen.spec.csr_map import Access, BitField, CsrMap, Register
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "csr"
TOP = "csr_top"
TB_MODULE = "sim.rtl.tb.csr_tb"
COCOTB_TESTS = ["rw_ro_w1p_and_wide_registers", "w1c_set_and_clear", "unmapped_address_answers_slverr"]

RW, RO, W1P, W1C = Access.RW, Access.RO, Access.W1P, Access.W1C
CSR = CsrMap([
    Register("ctrl", 0x00, 12, RW, "control bits", reset=0x5A),
    Register("status", 0x04, 32, RO, "status word"),
    Register("go", 0x08, 3, W1P, "start pulses"),
    Register("irq", 0x0C, 4, W1C, "interrupt flags"),
    # 0x10 is a hole
    Register("cycles", 0x14, 64, RO, "cycle counter | 64 bits"),
    Register("scratch", 0x1C, 40, RW, "scratch", reset=0x12_0000_0001),
    Register("version", 0x24, 16, RO, "hardware version"),
    Register("events", 0x28, 48, W1C, "sticky events"),
])
HOLE = 0x10
PAST_END = 0x3C        # inside the 6 address bits, after the last register


# ---------------------------------------------------------------------------------------------------
# the table

def test_map_properties():
    assert [r.name for r in CSR] == ["ctrl", "status", "go", "irq", "cycles", "scratch", "version", "events"]
    assert CSR.address_bits == 6                       # the last word is 0x2c
    assert CsrMap([Register("a", 0, 1, RW)]).address_bits == 4
    assert CsrMap([Register("a", 0x1000, 32, RO)]).address_bits == 13
    assert CsrMap([]).address_bits == 4
    assert (CSR["cycles"].words, CSR["cycles"].end, CSR["cycles"].latched) == (2, 0x1C, True)
    assert (CSR["scratch"].words, CSR["scratch"].latched) == (2, False)   # RW reads live


@pytest.mark.parametrize("registers, message", [
    ([Register("a", 0, 64, RW), Register("b", 4, 8, RO)],
     "register 'b': offset 0x4 overlaps register 'a' at 0x0..0x7 (allowed: offsets from 0x8)"),
    ([Register("a", 0, 8, RW), Register("b", 0, 8, RO)],
     "register 'b': offset 0x0 overlaps register 'a' at 0x0..0x3 (allowed: offsets from 0x4)"),
    ([Register("a", 6, 8, RW)],
     "register 'a': offset 0x6 is not word aligned (allowed: a non-negative multiple of 4)"),
    ([Register("a", -4, 8, RW)],
     "register 'a': offset -4 is not word aligned (allowed: a non-negative multiple of 4)"),
    ([Register("a", 0, 8, RW), Register("a", 4, 8, RO)],
     "register 'a' at 0x4: name is taken by register 'a' at 0x0 "
     "(allowed: unique names; a W1C register also takes <name>_set)"),
    ([Register("irq", 0, 8, W1C), Register("irq_set", 4, 8, RO)],
     "register 'irq_set' at 0x4: name is taken by the set input of W1C register 'irq' at 0x0 "
     "(allowed: unique names; a W1C register also takes <name>_set)"),
    ([Register("a", 0, 0, RW)], "register 'a': width 0 is not allowed (allowed: 1..64)"),
    ([Register("a", 0, 65, RW)], "register 'a': width 65 is not allowed (allowed: 1..64)"),
    ([Register("2a", 0, 8, RW)],
     "register '2a': name is not an identifier (allowed: a letter, then letters, digits or _; "
     "not a Python keyword)"),
    ([Register("bus", 0, 8, RW)],
     "register 'bus': name is reserved (not allowed: bus, csr_map, elaborate, metadata, signature)"),
    ([Register("a", 0, 8, RW, reset=0x100)], "register 'a': reset 0x100 does not fit 8 bits (allowed: 0..0xff)"),
    ([Register("a", 0, 8, RO, reset=1)],
     "register 'a': reset 0x1 on a RO register (allowed: a reset value on RW registers only)"),
    ([Register("a", 0, 8, "rw")], "register 'a': access 'rw' is not an Access (allowed: RW, RO, W1P, W1C)"),
    ([Register("a", 0, 8, RW, fields=(BitField("x", 6, 3),))],
     "register 'a': field 'x': bits 6, width 3 leave the register (allowed: within bits 0..7)"),
    ([Register("a", 0, 8, RW, fields=(BitField("x", 0, 4), BitField("y", 3)))],
     "register 'a': field 'y': bits taken by field 'x' (allowed: unique names, disjoint bits)"),
    ([Register("a", 0, 8, RW, fields=(BitField("x", 0), BitField("x", 1)))],
     "register 'a': field 'x': name taken by field 'x' (allowed: unique names, disjoint bits)"),
    ([Register("a", 0, 8, RW, fields=(BitField("1x", 0),))],
     "register 'a': field '1x': name is not an identifier (allowed: a letter, then letters, digits or _)"),
])
def test_map_rejects(registers, message):
    with pytest.raises(ValueError) as err:
        CsrMap(registers)
    assert str(err.value) == message


def test_map_reports_every_problem():
    with pytest.raises(ValueError) as err:
        CsrMap([Register("a", 2, 8, RW), Register("b", 4, 99, RO)])
    assert str(err.value).splitlines() == [
        "register 'a': offset 0x2 is not word aligned (allowed: a non-negative multiple of 4)",
        "register 'b': width 99 is not allowed (allowed: 1..64)",
    ]


def test_map_markdown():
    lines = CSR.to_markdown().splitlines()
    assert lines[:2] == ["| Offset | Name | Access | Width | Reset | Description |", "|---|---|---|---|---|---|"]
    assert lines[2] == "| 0x0000 | ctrl | RW | 12 | 0x5a | control bits |"
    assert lines[5] == "| 0x000c | irq | W1C | 4 | - | interrupt flags |"
    assert lines[6] == "| 0x0014 | cycles | RO | 64 | - | cycle counter \\| 64 bits |"
    assert lines[7] == "| 0x001c | scratch | RW | 40 | 0x1200000001 | scratch |"
    assert len(lines) == 2 + len(CSR)


def test_map_json():
    table = CSR.to_json()
    assert json.loads(json.dumps(table)) == table
    assert [r["name"] for r in table] == [r.name for r in CSR]
    assert table[0] == {"name": "ctrl", "offset": 0, "width": 12, "access": "RW", "reset": 0x5A,
                        "description": "control bits"}
    assert table[3]["access"] == "W1C"
    assert CsrMap(Register(**{**r, "access": Access[r["access"]]}) for r in table).registers == CSR.registers


def test_block_members():
    block = CsrBlock(CSR)
    members = block.signature.members
    assert list(members) == ["bus", "ctrl", "status", "go", "irq", "irq_set", "cycles", "scratch", "version",
                             "events", "events_set"]
    assert members["bus"].signature == AxiLiteSignature(addr_width=6, data_width=32).flip()
    ports = {name: (m.flow, m.shape) for name, m in members.items() if name != "bus"}
    assert ports == {"ctrl": (Out, 12), "status": (In, 32), "go": (Out, 3), "irq": (Out, 4),
                     "irq_set": (In, 4), "cycles": (In, 64), "scratch": (Out, 40),
                     "version": (In, 16), "events": (Out, 48), "events_set": (In, 48)}
    with pytest.raises(TypeError, match="csr_map: expected a CsrMap, not list"):
        CsrBlock(list(CSR))


# ---------------------------------------------------------------------------------------------------
# Amaranth simulation, the AXI4-Lite bus driven by hand

async def axi_write(ctx, bus, addr: int, data: int, strb: int = 0xF) -> int:
    """One write (AW and W together), then take B: returns BRESP. B must come one cycle after the handshake."""
    ctx.set(bus.aw.payload.addr, addr)
    ctx.set(bus.w.payload, {"data": data, "strb": strb})
    ctx.set(bus.aw.valid, 1)
    ctx.set(bus.w.valid, 1)
    while True:
        taken = ctx.get(bus.aw.ready) and ctx.get(bus.w.ready)
        await ctx.tick()
        if taken:
            break
    ctx.set(bus.aw.valid, 0)
    ctx.set(bus.w.valid, 0)
    assert ctx.get(bus.b.valid), "B one cycle after the handshake"
    resp = ctx.get(bus.b.payload.resp)
    ctx.set(bus.b.ready, 1)
    await ctx.tick()
    ctx.set(bus.b.ready, 0)
    assert not ctx.get(bus.b.valid)
    return resp


async def axi_read(ctx, bus, addr: int) -> tuple[int, int]:
    """One read: returns (RDATA, RRESP). R must come one cycle after the handshake."""
    ctx.set(bus.ar.payload.addr, addr)
    ctx.set(bus.ar.valid, 1)
    while True:
        taken = ctx.get(bus.ar.ready)
        await ctx.tick()
        if taken:
            break
    ctx.set(bus.ar.valid, 0)
    assert ctx.get(bus.r.valid), "R one cycle after the handshake"
    data, resp = ctx.get(bus.r.payload.data), ctx.get(bus.r.payload.resp)
    ctx.set(bus.r.ready, 1)
    await ctx.tick()
    ctx.set(bus.r.ready, 0)
    assert not ctx.get(bus.r.valid)
    return data, resp


def simulate(testbench, *background) -> CsrBlock:
    """Run ``testbench(ctx, dut)`` (and background testbenches) on a CsrBlock of CSR."""
    dut = CsrBlock(CSR)

    def bind(bench):                       # add_testbench takes an async function of ctx only
        async def run(ctx):
            await bench(ctx, dut)
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in background:
        sim.add_testbench(bind(bench), background=True)
    sim.add_testbench(bind(testbench))
    sim.run()
    return dut


def test_sim_rw_with_wstrb():
    async def bench(ctx, dut):
        assert await axi_read(ctx, dut.bus, 0x00) == (0x5A, RESP_OKAY)          # reset value
        assert ctx.get(dut.ctrl) == 0x5A and ctx.get(dut.scratch) == 0x12_0000_0001
        assert await axi_write(ctx, dut.bus, 0x00, 0xFFFF_FFFF) == RESP_OKAY
        assert await axi_read(ctx, dut.bus, 0x00) == (0xFFF, RESP_OKAY)          # 12 bits
        assert await axi_write(ctx, dut.bus, 0x01, 0x0000_0000, strb=0b0010) == RESP_OKAY
        assert ctx.get(dut.ctrl) == 0x0FF                                       # only bits 15..8 written
        assert await axi_write(ctx, dut.bus, 0x1C, 0xAABB_CCDD) == RESP_OKAY
        assert await axi_write(ctx, dut.bus, 0x20, 0x1122_3344, strb=0b0101) == RESP_OKAY
        assert ctx.get(dut.scratch) == 0x44_AABB_CCDD                           # high word: 8 bits
        assert await axi_write(ctx, dut.bus, 0x1C, 0x0000_EE00, strb=0b0010) == RESP_OKAY
        assert await axi_read(ctx, dut.bus, 0x1C) == (0xAABB_EEDD, RESP_OKAY)
        assert await axi_read(ctx, dut.bus, 0x20) == (0x44, RESP_OKAY)
    simulate(bench)


def test_sim_ro_reads_the_driven_value():
    async def bench(ctx, dut):
        ctx.set(dut.status, 0xDEAD_BEEF)
        ctx.set(dut.version, 0x0102)
        assert await axi_read(ctx, dut.bus, 0x04) == (0xDEAD_BEEF, RESP_OKAY)
        assert await axi_read(ctx, dut.bus, 0x24) == (0x0102, RESP_OKAY)
        assert await axi_write(ctx, dut.bus, 0x04, 0) == RESP_OKAY             # ignored, not an error
        assert await axi_read(ctx, dut.bus, 0x04) == (0xDEAD_BEEF, RESP_OKAY)
    simulate(bench)


def test_sim_w1p_pulses_one_cycle():
    pulses = []

    async def watch(ctx, dut):
        async for _, _, go in ctx.tick().sample(dut.go):                       # go during each cycle
            if go:
                pulses.append(go)

    async def bench(ctx, dut):
        assert await axi_write(ctx, dut.bus, 0x08, 0b101) == RESP_OKAY
        assert await axi_write(ctx, dut.bus, 0x08, 0b111, strb=0) == RESP_OKAY  # no byte written: no pulse
        assert await axi_write(ctx, dut.bus, 0x08, 0b010) == RESP_OKAY
        await ctx.tick().repeat(3)
        assert await axi_read(ctx, dut.bus, 0x08) == (0, RESP_OKAY)             # reads 0
    simulate(bench, watch)
    assert pulses == [0b101, 0b010]


def test_sim_w1c_set_and_clear():
    async def bench(ctx, dut):
        ctx.set(dut.irq_set, 0b0111)
        await ctx.tick()
        ctx.set(dut.irq_set, 0)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.irq) == 0b0111                                       # sticky
        assert await axi_read(ctx, dut.bus, 0x0C) == (0b0111, RESP_OKAY)
        assert await axi_write(ctx, dut.bus, 0x0C, 0b0001) == RESP_OKAY
        assert await axi_read(ctx, dut.bus, 0x0C) == (0b0110, RESP_OKAY)
        # a set in the cycle of the clear wins: no event is lost
        ctx.set(dut.bus.aw.payload.addr, 0x0C)
        ctx.set(dut.bus.w.payload, {"data": 0b0110, "strb": 0xF})
        ctx.set(dut.bus.aw.valid, 1)
        ctx.set(dut.bus.w.valid, 1)
        ctx.set(dut.irq_set, 0b0010)
        assert ctx.get(dut.bus.aw.ready)                                        # taken at this edge
        await ctx.tick()
        ctx.set(dut.irq_set, 0)
        ctx.set(dut.bus.aw.valid, 0)
        ctx.set(dut.bus.w.valid, 0)
        assert ctx.get(dut.irq) == 0b0010
        ctx.set(dut.bus.b.ready, 1)
        await ctx.tick()
        ctx.set(dut.bus.b.ready, 0)
        # 48 bits over two words, cleared per word
        ctx.set(dut.events_set, 0xF000_0000_000F)
        await ctx.tick()
        ctx.set(dut.events_set, 0)
        assert await axi_write(ctx, dut.bus, 0x2C, 0x1000) == RESP_OKAY
        assert ctx.get(dut.events) == 0xE000_0000_000F
        assert await axi_read(ctx, dut.bus, 0x28) == (0x0000_000F, RESP_OKAY)
        assert await axi_read(ctx, dut.bus, 0x2C) == (0xE000, RESP_OKAY)
    simulate(bench)


def test_sim_64bit_counter_reads_consistently():
    async def bench(ctx, dut):
        ctx.set(dut.cycles, 0x1_FFFF_FFFF)
        assert await axi_read(ctx, dut.bus, 0x14) == (0xFFFF_FFFF, RESP_OKAY)  # latches the high word
        ctx.set(dut.cycles, 0x2_0000_0003)                                      # the counter carries
        assert await axi_read(ctx, dut.bus, 0x18) == (0x1, RESP_OKAY)           # 0x1_FFFF_FFFF, not 0x2_FFFF_FFFF
        assert await axi_read(ctx, dut.bus, 0x18) == (0x1, RESP_OKAY)           # until the low word is read again
        assert await axi_read(ctx, dut.bus, 0x14) == (0x3, RESP_OKAY)
        assert await axi_read(ctx, dut.bus, 0x18) == (0x2, RESP_OKAY)
    simulate(bench)


def test_sim_unmapped_address_answers_slverr():
    async def bench(ctx, dut):
        outputs = ("ctrl", "go", "irq", "scratch", "events")
        before = {name: ctx.get(getattr(dut, name)) for name in outputs}
        for addr in (HOLE, HOLE + 3, PAST_END):
            assert await axi_write(ctx, dut.bus, addr, 0xFFFF_FFFF) == RESP_SLVERR
            assert {name: ctx.get(getattr(dut, name)) for name in outputs} == before
            assert await axi_read(ctx, dut.bus, addr) == (0, RESP_SLVERR)
        assert await axi_read(ctx, dut.bus, 0x00) == (0x5A, RESP_OKAY)          # the next access is fine
        assert await axi_write(ctx, dut.bus, 0x00, 1) == RESP_OKAY
    simulate(bench)


def test_sim_one_response_at_a_time():
    """A write needs AW and W both valid and no B pending; a read needs no R pending."""
    async def bench(ctx, dut):
        bus = dut.bus
        ctx.set(bus.aw.payload.addr, 0x00)
        ctx.set(bus.aw.valid, 1)
        assert not ctx.get(bus.aw.ready)                                        # W not there yet
        ctx.set(bus.w.payload, {"data": 7, "strb": 0xF})
        ctx.set(bus.w.valid, 1)
        assert ctx.get(bus.aw.ready) and ctx.get(bus.w.ready)
        await ctx.tick()
        ctx.set(bus.w.payload.data, 9)                                          # a second write, held off
        for _ in range(3):
            assert ctx.get(bus.b.valid) and not ctx.get(bus.aw.ready) and not ctx.get(bus.w.ready)
            await ctx.tick()
        assert ctx.get(dut.ctrl) == 7
        ctx.set(bus.b.ready, 1)
        await ctx.tick()                                                        # B taken
        assert not ctx.get(bus.b.valid) and ctx.get(bus.aw.ready)
        await ctx.tick()                                                        # second write taken
        ctx.set(bus.aw.valid, 0)
        ctx.set(bus.w.valid, 0)
        assert ctx.get(dut.ctrl) == 9 and ctx.get(bus.b.valid)
        ctx.set(bus.ar.payload.addr, 0x00)
        ctx.set(bus.ar.valid, 1)
        await ctx.tick()
        for _ in range(2):
            assert ctx.get(bus.r.valid) and not ctx.get(bus.ar.ready)
            await ctx.tick()
        assert ctx.get(bus.r.payload.data) == 9
    simulate(bench)


def test_block_converts_to_verilog():
    text = verilog.convert(VivadoTop(CsrBlock(CSR), {"bus": "s_axi_ctrl"}), name=TOP, emit_src=False)
    for port in ("input [5:0] s_axi_ctrl_awaddr", "output [31:0] s_axi_ctrl_rdata", "output [11:0] ctrl",
                 "input [63:0] cycles", "input [3:0] irq_set", "output [2:0] go"):
        assert f"{port};" in text, port


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb

@pytest.fixture(scope="module")
def csr_results() -> dict[str, str | None]:
    folder = runner.build_component(VivadoTop(CsrBlock(CSR), {"bus": "s_axi_ctrl"}), TOP, BUILD_ROOT)
    table = folder / "csr_map.json"
    table.write_text(json.dumps(CSR.to_json()))
    return runner.run_cocotb(folder, TOP, TB_MODULE,
                             extra_env={"CSR_TB_MAP": str(table), "CSR_TB_HOLE": str(HOLE),
                                        "CSR_TB_SEED": os.environ.get("CSR_TB_SEED", "1")})


@pytest.mark.rtl
def test_cocotb_ran_every_test(csr_results):
    assert sorted(csr_results) == sorted(COCOTB_TESTS)


@pytest.mark.rtl
@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_cocotb(csr_results, name):
    assert name in csr_results, f"{name} did not run: {sorted(csr_results)}"
    assert csr_results[name] is None, csr_results[name]
