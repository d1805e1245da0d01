"""cocotb tests of hwgen.rtl.scheduler.csr.CsrBlock through cocotbext-axi 0.1.28's AxiLiteMaster.

The top (built by tests/test_csr.py) is ``VivadoTop(CsrBlock(csr_map), {"bus": "s_axi_ctrl"})``; the map
arrives as ``CsrMap.to_json()`` in the file named by ``CSR_TB_MAP``, so this module and the test share
one table. It holds at least the registers used below:
  ctrl (RW, reset), status (RO), go (W1P), irq (W1C, ``irq_set``), cycles (RO, 64 bits), scratch (RW)
and ``CSR_TB_HOLE``, a byte address no register maps.

Every test resets the DUT first. All AXI channels pause at random (``random.Random(CSR_TB_SEED)``) and
``AxiMonitor`` checks the port. cocotbext-axi's ``read``/``write`` return the response code
(``.resp``) rather than raising on SLVERR; ``read_dword``/``write_dword`` drop it.
"""
from __future__ import annotations

import json
import os
import random
import warnings

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from hwgen.spec.csr_map import Access, CsrMap, Register
from sim.rtl.tb.axi_monitor import AxiMonitor

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi(\.|$)")
warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp  # noqa: E402

from sim.rtl.tb.clock import start_clock  # noqa: E402

PREFIX = "s_axi_ctrl"
SEED = int(os.environ.get("CSR_TB_SEED", "1"))


def csr_map() -> CsrMap:
    with open(os.environ["CSR_TB_MAP"]) as fh:
        return CsrMap(Register(**{**r, "access": Access[r["access"]]}) for r in json.load(fh))


def pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


async def setup(dut, name: str) -> tuple[AxiLiteMaster, AxiMonitor, CsrMap]:
    """Reset with every RO / set input at 0; a master whose channels pause at random; a monitor."""
    regs = csr_map()
    start_clock(dut)
    for r in regs:
        if r.access is Access.RO:
            getattr(dut, r.name).value = 0
        if r.access is Access.W1C:
            getattr(dut, f"{r.name}_set").value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, PREFIX), dut.clk, dut.rst)
    rng = random.Random(f"{SEED}-{name}")
    for channel in (master.write_if.aw_channel, master.write_if.w_channel, master.write_if.b_channel,
                    master.read_if.ar_channel, master.read_if.r_channel):
        channel.set_pause_generator(pauses(rng, 0.3))
    return master, AxiMonitor(dut, PREFIX, dut.clk, dut.rst), regs


async def count_pulses(signal, clock, seen: list[int]) -> None:
    """Append the value of ``signal`` at every rising edge where it is non-zero."""
    while True:
        await RisingEdge(clock)
        if int(signal.value):
            seen.append(int(signal.value))


@cocotb.test()
async def rw_ro_w1p_and_wide_registers(dut):
    """RW (reset, whole word, one byte), RO, a W1P pulse of one cycle, a 64-bit RO read low then high."""
    master, monitor, regs = await setup(dut, "rw")
    ctrl = regs["ctrl"]
    assert await master.read_dword(ctrl.offset) == ctrl.reset
    await master.write_dword(ctrl.offset, 0xFFFF_FFFF)
    mask = (1 << ctrl.width) - 1
    assert await master.read_dword(ctrl.offset) == mask      # bits above the register's width read 0
    await master.write(ctrl.offset + 1, b"\x00")             # wstrb 0b0010: only bits 15..8
    assert await master.read_dword(ctrl.offset) == mask & ~0xFF00
    assert int(dut.ctrl.value) == mask & ~0xFF00

    scratch = regs["scratch"]
    await master.write(scratch.offset, (0x12_3456_789A).to_bytes(8, "little"))
    assert int(dut.scratch.value) == 0x12_3456_789A & ((1 << scratch.width) - 1)
    assert await master.read_dword(scratch.offset + 4) == 0x12 & ((1 << (scratch.width - 32)) - 1)

    dut.status.value = 0xC0FFEE
    assert await master.read_dword(regs["status"].offset) == 0xC0FFEE
    await master.write_dword(regs["status"].offset, 0)       # RO: the write is ignored
    assert await master.read_dword(regs["status"].offset) == 0xC0FFEE

    pulses: list[int] = []
    cocotb.start_soon(count_pulses(dut.go, dut.clk, pulses))
    await master.write_dword(regs["go"].offset, 0b101)
    await master.write_dword(regs["go"].offset, 0b010)
    await ClockCycles(dut.clk, 3)
    assert pulses == [0b101, 0b010], pulses                  # one cycle each
    assert await master.read_dword(regs["go"].offset) == 0

    cycles = regs["cycles"]
    dut.cycles.value = 0x1_FFFF_FFFF
    assert await master.read_dword(cycles.offset) == 0xFFFF_FFFF
    dut.cycles.value = 0x2_0000_0005                          # the counter carries between the two reads
    assert await master.read_dword(cycles.offset + 4) == 1   # the high word latched with the low word
    assert await master.read_dword(cycles.offset) == 5
    assert await master.read_dword(cycles.offset + 4) == 2
    monitor.assert_clean()


@cocotb.test()
async def w1c_set_and_clear(dut):
    """Hardware sets sticky bits, the host reads them and writes 1s to clear; set wins over clear."""
    master, monitor, regs = await setup(dut, "w1c")
    irq = regs["irq"].offset
    dut.irq_set.value = 0b1001
    await RisingEdge(dut.clk)
    dut.irq_set.value = 0
    await RisingEdge(dut.clk)
    assert await master.read_dword(irq) == 0b1001
    await master.write_dword(irq, 0b0001)
    assert await master.read_dword(irq) == 0b1000
    assert int(dut.irq.value) == 0b1000
    dut.irq_set.value = 0b1000                                # still set while the host clears it
    await master.write_dword(irq, 0b1000)
    dut.irq_set.value = 0
    assert await master.read_dword(irq) == 0b1000
    await master.write_dword(irq, 0b1111)
    assert await master.read_dword(irq) == 0
    monitor.assert_clean()


@cocotb.test()
async def unmapped_address_answers_slverr(dut):
    """A read or write of an address no register maps answers SLVERR (read data 0) and changes nothing."""
    master, monitor, regs = await setup(dut, "slverr")
    hole = int(os.environ["CSR_TB_HOLE"])
    await master.write_dword(regs["ctrl"].offset, 0x33)
    before = {r.name: int(getattr(dut, r.name).value) for r in regs if r.access is not Access.RO}
    write = await master.write(hole, b"\xff\xff\xff\xff")
    assert write.resp == AxiResp.SLVERR, write
    read = await master.read(hole, 4)
    assert (read.resp, read.data) == (AxiResp.SLVERR, bytes(4)), read
    assert {r.name: int(getattr(dut, r.name).value) for r in regs if r.access is not Access.RO} == before
    ok = await master.read(regs["ctrl"].offset, 4)            # and the next access is answered normally
    assert (ok.resp, int.from_bytes(ok.data, "little")) == (AxiResp.OKAY, 0x33), ok
    monitor.assert_clean()
