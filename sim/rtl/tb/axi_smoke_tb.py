"""cocotb smoke tests of the AXI building blocks against cocotbext-axi 0.1.28, plus tests of AxiMonitor.

The top (built by tests/test_axi.py, ports named by hwgen.rtl.memory.axi.VivadoTop) holds:
  hbm0      AxiBurstReader, 64-bit data, 2 bursts in flight, RREADY from ``hbm0_r_allow``  -> m_axi_hbm0_*
  hbm1      AxiBurstReader, 256-bit data, 1 burst in flight, RREADY always high            -> m_axi_hbm1_*
  bad0      AxiBurstReader(cross_4k=True), 64-bit, RREADY from ``bad0_r_allow`` (BROKEN)   -> m_axi_bad0_*
  ctrl      AxiLiteRegisters(4), 32-bit                                                    -> s_axi_ctrl_*
  loop      a wire from an AXI4 slave port to a master port (64-bit)       s_axi_loop_* -> m_axi_loop_*

Every test resets the DUT first, so the tests are independent of their order. Randomness comes from
``random.Random(AXI_TB_SEED)`` (environment, default 1). Idle/backpressure generators run on every
channel of every cocotbext-axi model, and on RREADY of the readers that have ``r_allow``.

cocotbext-axi 0.1.28 calls cocotb-1 APIs that cocotb 2.1 deprecates (``Task.kill()``): those
DeprecationWarnings are ignored for the ``cocotbext.axi`` modules only; for this package they are errors.
"""
from __future__ import annotations

import os
import random
import warnings
from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from hwgen.rtl.memory.axi_burst_reader import plan
from sim.rtl.tb.axi_monitor import AxiMonitor, AxiProtocolError

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi(\.|$)")
warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster, AxiRam  # noqa: E402

from sim.rtl.tb.clock import PERIOD_NS, start_clock  # noqa: E402

RAM_BYTES = 1 << 16          # the AxiRam of a port (always an explicit size: the default is 2**64)
SEED = int(os.environ.get("AXI_TB_SEED", "1"))


def pauses(rng: random.Random, p: float):
    """A cocotbext-axi pause generator: True (pause) with probability ``p`` each cycle."""
    while True:
        yield rng.random() < p


async def reset(dut) -> None:
    start_clock(dut)
    for name in ("hbm0_start", "hbm1_start", "bad0_start"):
        getattr(dut, name).value = 0
    dut.hbm0_r_allow.value = 1
    dut.bad0_r_allow.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def toggle(signal, clock, rng: random.Random, p_low: float) -> None:
    """Drive ``signal`` low with probability ``p_low`` each cycle (backpressure)."""
    edge = RisingEdge(clock)
    while True:
        signal.value = int(rng.random() >= p_low)
        await edge


async def run_command(dut, port: str, addr: int, length: int, budget: int) -> None:
    """Pulse ``<port>_start`` with addr/length and wait until ``<port>_done`` rises."""
    getattr(dut, f"{port}_addr").value = addr
    getattr(dut, f"{port}_length").value = length
    getattr(dut, f"{port}_start").value = 1
    await RisingEdge(dut.clk)
    getattr(dut, f"{port}_start").value = 0
    fired = await First(RisingEdge(getattr(dut, f"{port}_done")), Timer(budget * PERIOD_NS, unit="ns"))
    if isinstance(fired, Timer):
        raise TimeoutError(f"{port}: read of {length} bytes at 0x{addr:x} not done after {budget} cycles")
    await RisingEdge(dut.clk)


def checksums(data: bytes, beat_bytes: int) -> tuple[int, int]:
    """(XOR of the beats as little-endian integers, sum of the bytes mod 2**32)."""
    x = 0
    for i in range(0, len(data), beat_bytes):
        x ^= int.from_bytes(data[i:i + beat_bytes], "little")
    return x, sum(data) & 0xFFFF_FFFF


def commands(rng: random.Random, beat_bytes: int, count: int) -> list[tuple[int, int]]:
    """(addr, length) reads: every edge case around a 4 KiB boundary, then random 1..256-beat reads."""
    b = beat_bytes
    fixed = [
        (0, b), (0, 256 * b), (4096 - b, b), (4096 - b, 2 * b),          # 1 beat; 256 beats; at/over the edge
        (4096 - 3 * b, 256 * b), (0x2000 - 128 * b, 256 * b),          # 256 beats that would cross
        (0x3000, 4096), (0x5000 - b, 600 * b),                          # a whole page; several bursts
        (0x100, 0),                                                     # nothing to read
    ]
    out = [(a, n) for a, n in fixed if a + n <= RAM_BYTES]
    while len(out) < len(fixed) + count:
        beats = rng.randint(1, 256)
        addr = rng.randrange(0, RAM_BYTES - beats * b + 1, b)
        if rng.random() < 0.5:   # half of them start just below a 4 KiB boundary and run past it
            addr = rng.randrange(1, RAM_BYTES // 4096) * 4096 - rng.randint(1, beats) * b
        if 0 <= addr and addr + beats * b <= RAM_BYTES:
            out.append((addr, beats * b))
    return out


# ---------------------------------------------------------------------------------------------------
# AxiBurstReader + AxiRam

@cocotb.test()
@cocotb.parametrize(port=["hbm0", "hbm1"])
async def reader_against_axiram(dut, port: str):
    """Random reads (1..256 beats, across 4 KiB boundaries) answered by AxiRam under idle/backpressure."""
    rng = random.Random(f"{SEED}-{port}")
    await reset(dut)
    ram = AxiRam(AxiBus.from_prefix(dut, f"m_axi_{port}"), dut.clk, dut.rst, size=RAM_BYTES)
    ram.write(0, rng.randbytes(RAM_BYTES))
    for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel):
        channel.set_pause_generator(pauses(rng, 0.3))
    if port == "hbm0":
        cocotb.start_soon(toggle(dut.hbm0_r_allow, dut.clk, rng, 0.3))
    monitor = AxiMonitor(dut, f"m_axi_{port}", dut.clk, dut.rst)
    beat_bytes = len(getattr(dut, f"m_axi_{port}_rdata")) // 8
    cycles = 0
    for addr, length in commands(rng, beat_bytes, count=12):
        expect = plan(addr, length, beat_bytes)
        seen = len(monitor.reads)
        start = get_sim_time("ns")
        await run_command(dut, port, addr, length, budget=64 + 8 * (length // beat_bytes))
        cycles += int((get_sim_time("ns") - start) // PERIOD_NS)
        what = f"{port} read 0x{addr:x}+{length}"
        assert int(getattr(dut, f"{port}_error").value) == 0, what
        assert int(getattr(dut, f"{port}_nbytes").value) == length, what
        assert int(getattr(dut, f"{port}_bursts").value) == len(expect), what
        assert [(r.addr, r.beats) for r in monitor.reads[seen:]] == expect, what
        x, s = checksums(ram.read(addr, length), beat_bytes)
        assert int(getattr(dut, f"{port}_data_xor").value) == x, f"{what}: data_xor"
        assert int(getattr(dut, f"{port}_byte_sum").value) == s, f"{what}: byte_sum"
    monitor.assert_clean()
    dut._log.info("%s: %d bursts in %d cycles; the monitor woke on %d edges", port, len(monitor.reads),
                  cycles, monitor.edges)


# ---------------------------------------------------------------------------------------------------
# AxiLiteMaster + AxiLiteRegisters; AxiMaster -> loop -> AxiRam

@cocotb.test()
async def axilite_registers(dut):
    """AxiLiteMaster writes registers (whole and single bytes) and reads them back."""
    rng = random.Random(f"{SEED}-ctrl")
    await reset(dut)
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), dut.clk, dut.rst)
    for channel in (master.write_if.aw_channel, master.write_if.w_channel, master.write_if.b_channel,
                    master.read_if.ar_channel, master.read_if.r_channel):
        channel.set_pause_generator(pauses(rng, 0.3))
    monitor = AxiMonitor(dut, "s_axi_ctrl", dut.clk, dut.rst)
    values = [rng.getrandbits(32) for _ in range(4)]
    for i, v in enumerate(values):
        await master.write_dword(4 * i, v)
    assert [await master.read_dword(4 * i) for i in range(4)] == values
    await master.write(4 * 2 + 1, b"\xa5")             # one byte: wstrb = 0b0010
    values[2] = (values[2] & ~0xFF00) | 0xA500
    assert await master.read_dword(8) == values[2]
    await RisingEdge(dut.clk)
    assert [int(getattr(dut, f"ctrl_regs_{i}").value) for i in range(4)] == values
    assert monitor.lite and len(monitor.writes) == 5 and len(monitor.reads) == 5
    monitor.assert_clean()


@cocotb.test()
async def axi_master_through_loop(dut):
    """cocotbext's AxiMaster writes and reads AxiRam through a wire: the monitor checks AW/W/B traffic."""
    rng = random.Random(f"{SEED}-loop")
    await reset(dut)
    master = AxiMaster(AxiBus.from_prefix(dut, "s_axi_loop"), dut.clk, dut.rst)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_loop"), dut.clk, dut.rst, size=RAM_BYTES)
    for model in (master, ram):
        for channel in (model.write_if.aw_channel, model.write_if.w_channel, model.write_if.b_channel,
                        model.read_if.ar_channel, model.read_if.r_channel):
            channel.set_pause_generator(pauses(rng, 0.3))
    monitor = AxiMonitor(dut, "m_axi_loop", dut.clk, dut.rst)
    for _ in range(6):
        length = rng.randint(1, 3000)
        addr = rng.randrange(0, RAM_BYTES - length)
        data = rng.randbytes(length)
        await master.write(addr, data)
        assert ram.read(addr, length) == data
        assert (await master.read(addr, length)).data == data
    assert monitor.writes and monitor.reads
    monitor.assert_clean()


# ---------------------------------------------------------------------------------------------------
# the monitor must catch broken masters and slaves

async def loose_responder(dut, prefix: str, mem: bytes, fault: str | None = None) -> None:
    """A read slave that answers any burst (even one crossing 4 KiB), optionally breaking one rule once.

    fault: "rid" (wrong RID on the first beat), "rlast" (RLAST one beat early), "drop" (RVALID dropped
    while stalled), "change" (RDATA changed while stalled).
    """
    def sig(name):
        return getattr(dut, f"{prefix}_{name}")

    beat_bytes = len(sig("rdata")) // 8
    sig("arready").value = 1
    sig("rvalid").value = 0
    bursts: deque = deque()
    beat = 0           # beat of bursts[0] presented (or next to present)
    presenting = False
    edge = RisingEdge(dut.clk)
    while True:
        await edge
        if sig("arvalid").value == 1:
            bursts.append((int(sig("arid").value), int(sig("araddr").value), int(sig("arlen").value) + 1))
        if presenting and sig("rready").value == 0:         # stalled: hold (or break the rule once)
            if fault == "drop":
                sig("rvalid").value, presenting, fault = 0, False, None
            elif fault == "change":
                sig("rdata").value, fault = int(sig("rdata").value) ^ 1, None
            continue
        if presenting:                                       # the beat was accepted at this edge
            beat += 1
            if beat == bursts[0][2]:
                bursts.popleft()
                beat = 0
        if not bursts:
            sig("rvalid").value, presenting = 0, False
            continue
        rid, addr, beats = bursts[0]
        at = (addr + beat * beat_bytes) % len(mem)
        last = beat == beats - 1
        if fault == "rid":
            rid, fault = rid ^ 1, None
        elif fault == "rlast" and beat == beats - 2:
            last, fault = True, None
        sig("rid").value = rid
        sig("rdata").value = int.from_bytes(mem[at:at + beat_bytes], "little")
        sig("rresp").value = 0
        sig("rlast").value = int(last)
        sig("rvalid").value, presenting = 1, True


@cocotb.test()
async def monitor_flags_4k_crossing(dut):
    """The deliberately broken reader (bad0) crosses 4 KiB; the monitor reports it, once per bad burst."""
    await reset(dut)
    mem = random.Random(SEED).randbytes(RAM_BYTES)
    cocotb.start_soon(loose_responder(dut, "m_axi_bad0", mem))
    monitor = AxiMonitor(dut, "m_axi_bad0", dut.clk, dut.rst, strict=False)
    addr, length = 0x1000 - 16, 64 * 8                      # 64 beats from 16 bytes below a 4 KiB boundary
    await run_command(dut, "bad0", addr, length, budget=400)
    assert plan(addr, length, 8, cross_4k=True) == [(addr, 64)]
    assert [(r.addr, r.beats) for r in monitor.reads] == [(addr, 64)]
    assert [v.rule for v in monitor.violations] == ["4k"], monitor.violations
    assert "crosses a 4 KiB boundary" in monitor.violations[0].message
    x, s = checksums(mem[addr:addr + length], 8)
    assert (int(dut.bad0_data_xor.value), int(dut.bad0_byte_sum.value)) == (x, s)


@cocotb.test(expect_error=AxiProtocolError)
async def strict_monitor_fails_the_test(dut):
    """A strict monitor (the default) raises AxiProtocolError in its task, which fails the running test."""
    await reset(dut)
    cocotb.start_soon(loose_responder(dut, "m_axi_bad0", bytes(RAM_BYTES)))
    AxiMonitor(dut, "m_axi_bad0", dut.clk, dut.rst)
    await run_command(dut, "bad0", 0x2000 - 8, 16, budget=100)


@cocotb.test()
@cocotb.parametrize(fault=["rid", "rlast", "drop", "change"])
async def monitor_flags_bad_read_responses(dut, fault: str):
    """A slave that breaks one R-channel rule once; the monitor names that rule."""
    await reset(dut)
    cocotb.start_soon(loose_responder(dut, "m_axi_bad0", bytes(RAM_BYTES), fault))
    monitor = AxiMonitor(dut, "m_axi_bad0", dut.clk, dut.rst, strict=False)
    if fault in ("drop", "change"):
        dut.bad0_r_allow.value = 0                          # stall R so the slave can misbehave
        cocotb.start_soon(_allow_later(dut, 6))
    try:
        await run_command(dut, "bad0", 0x400, 4 * 8, budget=60)
    except TimeoutError:
        pass                                                # a broken response may leave the reader waiting
    want = {"rid": "rid", "rlast": "rlast", "drop": "stable", "change": "stable"}[fault]
    assert monitor.violations and monitor.violations[0].rule == want, monitor.violations


async def _allow_later(dut, cycles: int) -> None:
    await ClockCycles(dut.clk, cycles)
    dut.bad0_r_allow.value = 1


@cocotb.test()
async def monitor_flags_bad_writes(dut):
    """A hand-driven write with WLAST one beat early, answered with a B of an unknown ID."""
    await reset(dut)
    monitor = AxiMonitor(dut, "m_axi_loop", dut.clk, dut.rst, strict=False)
    for name in ("awready", "wready"):
        getattr(dut, f"m_axi_loop_{name}").value = 1
    dut.s_axi_loop_bready.value = 1
    dut.m_axi_loop_bvalid.value = 0
    dut.s_axi_loop_awid.value, dut.s_axi_loop_awaddr.value = 1, 0x80
    dut.s_axi_loop_awlen.value, dut.s_axi_loop_awsize.value, dut.s_axi_loop_awburst.value = 3, 3, 1
    dut.s_axi_loop_awvalid.value = 1
    await RisingEdge(dut.clk)
    dut.s_axi_loop_awvalid.value = 0
    for beat in range(3):                                   # 3 beats of a 4-beat burst, WLAST on the third
        dut.s_axi_loop_wdata.value, dut.s_axi_loop_wstrb.value = beat, 0xFF
        dut.s_axi_loop_wlast.value, dut.s_axi_loop_wvalid.value = int(beat == 2), 1
        await RisingEdge(dut.clk)
    dut.s_axi_loop_wvalid.value = 0
    dut.m_axi_loop_bid.value, dut.m_axi_loop_bresp.value, dut.m_axi_loop_bvalid.value = 2, 0, 1
    await RisingEdge(dut.clk)
    dut.m_axi_loop_bvalid.value = 0
    await ClockCycles(dut.clk, 2)
    assert [v.rule for v in monitor.violations] == ["wlast", "bid"], monitor.violations
