"""cocotb tests of HbmResponder (sim/rtl/tb/hbm_responder.py) against AXI masters in Verilog.

The top (built by tests/test_hbm_responder.py, ports named by hwgen.rtl.memory.axi.VivadoTop, data width = one beat
of the ``tiny`` preset):
  rd0  AxiBurstReader, RREADY always high                     -> m_axi_hbm0_*
  rd1  AxiBurstReader(backpressure=True), RREADY = rd1_r_allow -> m_axi_hbm1_*
  wr0  AxiBurstWriter (test-only, in the test file)            -> m_axi_hbm2_*

Every test resets the DUT, creates its responder while reset is active and releases reset right after a
rising edge: that edge starts cycle 0 (``release`` returns in it). The tests check data (reader checksums,
the image after writes), the AXI rules (an ``AxiMonitor`` per port, strict), and timing: the responder's
``calls`` are replayed through a fresh ``HbmPorts``; with no stalls the R/B handshake cycles must equal
``ResponseChannel`` of the replayed ready cycles exactly, with stalls each must be at or after its bound.
Randomness: ``random.Random`` seeded from HBM_TB_SEED (environment, default 1).
"""
from __future__ import annotations

import os
import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotb.utils import get_sim_steps

from hwgen.rtl.memory.axi_burst_reader import plan
from hwgen.spec import config
from sim.model.memory.axi_port import KINDS, HbmPorts, ResponseChannel, controller_cycles
from sim.model.memory.hbm import HbmTiming
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import PERIOD_NS, start_clock
from sim.rtl.tb.hbm_responder import HbmResponder

warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

SEED = int(os.environ.get("HBM_TB_SEED", "1"))
CFG = config.load("tiny")                                               # one port
CFG4 = config.from_dict({"base": "tiny", "memory": {"ports": 4}})       # rd0, rd1, wr0 on ports 0, 1, 2
B = CFG.beat_bytes
PREFIX = {"rd0": "m_axi_hbm0", "rd1": "m_axi_hbm1", "wr0": "m_axi_hbm2"}
IMAGE_BYTES = 1 << 16
FULL_STRB = (1 << B) - 1
_release_step: int | None = None          # simulation step of the edge that starts cycle 0 (this test)


# ---------------------------------------------------------------------------------------------------
# helpers

def lone_latency(cfg: config.HwConfig) -> int:
    """AR (or completed write) to first RVALID (BVALID) for a lone access to closed rows."""
    t = HbmTiming.of(cfg)
    return controller_cycles(cfg) + t.tRCD + t.tCL + t.data_cycles


async def start(dut) -> Clock:
    """Clock on, reset active, every DUT input quiet; returns the clock (the responder needs its period)."""
    clock = start_clock(dut)
    dut.rst.value = 1
    for name in ("rd0", "rd1", "wr0"):
        getattr(dut, f"{name}_start").value = 0
    dut.rd1_r_allow.value = 1
    for prefix in PREFIX.values():
        for sig in ("arready", "rvalid", "awready", "wready", "bvalid"):
            getattr(dut, f"{prefix}_{sig}").value = 0
    await ClockCycles(dut.clk, 2)
    return clock


async def release(dut) -> None:
    """Release reset right after a rising edge: that edge starts cycle 0."""
    global _release_step
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    _release_step = get_sim_time("step")


def tb_cycle() -> int:
    """The cycle in progress, counted by the testbench itself (in a rising-edge callback: the one it starts)."""
    return (get_sim_time("step") - _release_step) // get_sim_steps(PERIOD_NS, "ns")


def image_of(rng: random.Random, nbytes: int = IMAGE_BYTES) -> np.ndarray:
    return np.frombuffer(rng.randbytes(nbytes), dtype=np.uint8).copy()


def checksums(data: bytes) -> tuple[int, int]:
    """(XOR of the beats as little-endian integers, sum of the bytes mod 2**32), as AxiBurstReader folds them."""
    x = 0
    for i in range(0, len(data), B):
        x ^= int.from_bytes(data[i:i + B], "little")
    return x, sum(data) & 0xFFFF_FFFF


def pattern(seed: int, length: int) -> bytes:
    """What AxiBurstWriter writes: 32-bit words seed, seed + 1, ... (little-endian)."""
    words = (np.arange(length // 4, dtype=np.uint64) + seed) & 0xFFFF_FFFF
    return words.astype("<u4").tobytes()


def apply_write(expect: np.ndarray, addr: int, length: int, seed: int, strb: int) -> None:
    data = np.frombuffer(pattern(seed, length), dtype=np.uint8)
    enable = np.tile(np.array([(strb >> i) & 1 for i in range(B)], dtype=bool), length // B)
    region = expect[addr:addr + length]
    region[enable] = data[enable]


async def command(dut, name: str, budget: int, **inputs) -> tuple[int, int]:
    """Set ``<name>_<input>``, pulse ``<name>_start`` and wait for ``<name>_done``.

    Returns (the cycle ``start`` is high, the first cycle ``done`` is high), counted by the testbench."""
    for key, value in inputs.items():
        getattr(dut, f"{name}_{key}").value = value
    getattr(dut, f"{name}_start").value = 1
    cycle = tb_cycle()
    await RisingEdge(dut.clk)
    getattr(dut, f"{name}_start").value = 0
    fired = await First(RisingEdge(getattr(dut, f"{name}_done")), Timer(budget * PERIOD_NS, unit="ns"))
    if isinstance(fired, Timer):
        raise TimeoutError(f"{name}: {inputs} not done after {budget} cycles")
    done = tb_cycle()
    await RisingEdge(dut.clk)
    return cycle, done


async def read(dut, name: str, addr: int, length: int, image, stall: float = 0.0) -> tuple[int, int]:
    """One reader command; checks its bytes, bursts and checksums against ``image``; returns ``command``'s."""
    budget = 200 + int((length // B) * (4 + 40 * stall))
    cycles = await command(dut, name, budget, addr=addr, length=length)
    what = f"{name} read 0x{addr:x}+{length}"
    assert int(getattr(dut, f"{name}_error").value) == 0, what
    assert int(getattr(dut, f"{name}_nbytes").value) == length, what
    assert int(getattr(dut, f"{name}_bursts").value) == len(plan(addr, length, B)), what
    a = addr - addr % B                             # the reader ignores the low address bits
    want = checksums(bytes(image[a:a + length]))
    got = (int(getattr(dut, f"{name}_data_xor").value), int(getattr(dut, f"{name}_byte_sum").value))
    assert got == want, f"{what}: checksums {got} != {want}"
    return cycles


async def write(dut, addr: int, length: int, seed: int, strb: int, expect: np.ndarray | None,
                stall: float = 0.0) -> tuple[int, int]:
    """One writer command; checks error and bursts, updates ``expect``; returns ``command``'s."""
    budget = 200 + int((length // B) * (4 + 40 * stall))
    cycles = await command(dut, "wr0", budget, addr=addr, length=length, seed=seed, strb=strb)
    what = f"wr0 write 0x{addr:x}+{length}"
    assert int(dut.wr0_error.value) == 0, what
    assert int(dut.wr0_bursts.value) == len(plan(addr, length, B)), what
    if expect is not None:
        apply_write(expect, addr - addr % B, length, seed, strb)     # the writer ignores the low address bits
    return cycles


async def toggle(signal, clock, rng: random.Random, p_low: float) -> None:
    """Drive ``signal`` low with probability ``p_low`` each cycle (master backpressure)."""
    edge = RisingEdge(clock)
    while True:
        signal.value = int(rng.random() >= p_low)
        await edge


def replay(cfg: config.HwConfig, calls) -> dict[int, dict[str, list[int]]]:
    """Ready cycles of every R beat and B response per port, from the responder's HbmPorts calls."""
    ports = HbmPorts(cfg)
    out = {p: {"r": [], "b": []} for p in range(cfg.memory.ports)}
    for cycle, port, kind, addr, beats in calls:
        if kind == "read":
            out[port]["r"] += ports.read(cycle, port, addr, beats)
        else:
            out[port]["b"].append(ports.write(cycle, port, addr, beats))
    return out


def check_timing(cfg, responder: HbmResponder, exact: bool) -> int:
    """Compare the recorded R/B handshakes with the replay; returns how many responses came late (stalls)."""
    calls = responder.calls
    keys = [(c, p, KINDS.index(k)) for c, p, k, _, _ in calls]
    assert keys == sorted(set(keys)), "HbmPorts calls out of order"
    ready = replay(cfg, calls)
    late = 0
    for prefix, rec in responder.records.items():
        port = responder.port_index[prefix]
        for ch, got in (("r", rec.r), ("b", rec.b)):
            want = ready[port][ch]
            assert len(got) == len(want), f"{prefix} {ch}: {len(got)} handshakes, {len(want)} responses"
            if exact:
                assert got == ResponseChannel().take_all(want), f"{prefix} {ch}: {got} != prediction"
            prev = -1
            for g, w in zip(got, want, strict=True):
                bound = max(w, prev + 1)
                assert g >= bound, f"{prefix} {ch}: a response in cycle {g} before its bound {bound}"
                late += g > bound
                prev = g
    return late


def port_map(cfg, *names: str) -> dict[str, int]:
    """Responder ports for these masters: their index in the top with CFG4, port 0 with one port."""
    if cfg.memory.ports == 1:
        (name,) = names
        return {PREFIX[name]: 0}
    return {PREFIX[n]: int(PREFIX[n][-1]) for n in names}


def monitors(dut, *names: str) -> list[AxiMonitor]:
    return [AxiMonitor(dut, PREFIX[n], dut.clk, dut.rst) for n in names]


def finish(responder: HbmResponder, mons: list[AxiMonitor]) -> None:
    for m in mons:
        m.assert_clean()
    assert responder.idle, "responses left over"


# ---------------------------------------------------------------------------------------------------
# tests

@cocotb.test()
async def cycle_zero_and_read_latency(dut):
    """Cycle 0 as documented, and a lone 1-beat read: R exactly controller + tRCD + tCL + burst after AR."""
    rng = random.Random(f"{SEED}-latency")
    image = image_of(rng)
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports=port_map(CFG, "rd0"))
    mons = monitors(dut, "rd0")
    await release(dut)
    await ClockCycles(dut.clk, 5)
    assert tb_cycle() == 5 and resp.cycle == 5
    k, done = await read(dut, "rd0", 0x40, B, image)
    assert k == 5
    rec = resp.records[PREFIX["rd0"]]
    # start in cycle k -> busy in k+1 (issues) -> ARVALID in k+2, accepted at once (ARREADY high at p = 0)
    assert rec.ar == [(k + 2, 0, 0x40, 1)], rec.ar
    assert rec.r == [k + 2 + lone_latency(CFG)], rec.r
    # the same cycles seen from elsewhere: the monitor's AR time, and the reader's done (2 cycles after RLAST)
    ar_cycle = (get_sim_steps(mons[0].reads[0].time_ns, "ns") - _release_step) // get_sim_steps(PERIOD_NS, "ns")
    assert ar_cycle - 1 == k + 2 and done == rec.r[-1] + 2, (ar_cycle, done)
    assert resp.cycle == tb_cycle()
    finish(resp, mons)


@cocotb.test()
async def reset_restarts_cycle_zero(dut):
    """A second reset: cycles, records and the HBM state (closed rows) start again."""
    rng = random.Random(f"{SEED}-reset")
    image = image_of(rng)
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports=port_map(CFG, "rd0"))
    await release(dut)
    await read(dut, "rd0", 0x200, 4 * B, image)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    assert resp.cycle is None and not resp.calls
    await release(dut)
    await ClockCycles(dut.clk, 3)
    k, _ = await read(dut, "rd0", 0x200, B, image)         # the same row again: closed by the reset
    rec = resp.records[PREFIX["rd0"]]
    assert rec.ar == [(k + 2, 0, 0x200, 1)] and rec.r == [k + 2 + lone_latency(CFG)], (rec.ar, rec.r)


@cocotb.test()
async def reads_exact_at_p0(dut):
    """Reads of 1..256 beats (4 KiB edges, unaligned starts) at p = 0: R beats exactly as predicted."""
    rng = random.Random(f"{SEED}-reads")
    image = image_of(rng)
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports=port_map(CFG, "rd0"))
    mons = monitors(dut, "rd0")
    await release(dut)
    cmds = [(0, B), (0, 256 * B), (4096 - B, 2 * B), (0x2000 - 3 * B, 256 * B), (0x5008, 40 * B),
            (0x7000, 4096)]
    for _ in range(6):
        beats = rng.randint(1, 256)
        cmds.append((rng.randrange(0, IMAGE_BYTES - beats * B, B), beats * B))
    for addr, length in cmds:
        await read(dut, "rd0", addr, length, image)
    rec = resp.records[PREFIX["rd0"]]
    want = [b for a, n in cmds for b in plan(a - a % B, n, B)]
    assert [(a, n) for _, _, a, n in rec.ar] == want
    assert [(r.addr, r.beats) for r in mons[0].reads] == want
    assert len(rec.r) == sum(n for a, n in cmds) // B
    assert check_timing(CFG, resp, exact=True) == 0
    assert resp.timing.stats["ports"][0]["bytes_read"] == sum(n for _, n in cmds)
    assert not resp.errors
    finish(resp, mons)


@cocotb.test()
async def writes_exact_at_p0(dut):
    """Writes of 1..256 beats with full and partial WSTRB at p = 0: image contents and B exactly as predicted."""
    rng = random.Random(f"{SEED}-writes")
    image = image_of(rng)
    expect = image.copy()
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports=port_map(CFG, "wr0"))
    mons = monitors(dut, "wr0")
    await release(dut)
    k, _ = await write(dut, 0x1000 - B, B, 0x1000, FULL_STRB, expect)
    rec = resp.records[PREFIX["wr0"]]
    # AW in k+2; the W beat a cycle later (its length reaches the W side through a FIFO); B after the HBM write
    assert rec.aw == [(k + 2, 0, 0x1000 - B, 1)] and rec.w_last == rec.w_done == [k + 3], (rec.aw, rec.w_last)
    assert rec.b == [k + 3 + lone_latency(CFG)], rec.b
    cmds = [(0x2000 - 3 * B, 256 * B, FULL_STRB), (0x4000, 16 * B, 0x00FF), (0x4100, 5 * B, 0xA5A5),
            (0x4200 + 8, 3 * B, 0x8001), (0x6000, 100 * B, 0)]
    for addr, length, strb in cmds:
        await write(dut, addr, length, rng.getrandbits(32), strb, expect)
    assert np.array_equal(image, expect), np.flatnonzero(image != expect)[:8]
    assert len(rec.b) == 1 + sum(len(plan(a, n, B)) for a, n, _ in cmds)
    assert check_timing(CFG, resp, exact=True) == 0
    assert not resp.errors
    finish(resp, mons)


@cocotb.test()
@cocotb.parametrize(p=[0.0, 0.5, 0.9])
async def mixed_traffic(dut, p: float):
    """Both readers and the writer at once on three ports of one HBM, every channel stalled with probability p
    (and rd1's RREADY low 30 % of cycles when p > 0): data, image, monitors; exact timing at p = 0."""
    rng = random.Random(f"{SEED}-mixed")          # the same traffic at every p
    image = image_of(rng)
    original, expect = image.copy(), image.copy()
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG4), image, clock, dut.rst, ports=port_map(CFG4, "rd0", "rd1", "wr0"),
                        stall=p, seed=SEED)
    mons = monitors(dut, "rd0", "rd1", "wr0")
    await release(dut)
    if p > 0:
        cocotb.start_soon(toggle(dut.rd1_r_allow, dut.clk, random.Random(f"{SEED}-allow"), 0.3))
    half = IMAGE_BYTES // 2

    def reads(n):
        out = [(4096 - 2 * B, 8 * B)]
        for _ in range(n):
            beats = rng.randint(1, 48)
            out.append((rng.randrange(0, half - beats * B, B), beats * B))
        return out

    cmds = {"rd0": reads(8), "rd1": reads(8)}
    writes = [(half + 4096 - 4 * B, 12 * B, 7, FULL_STRB)]
    for _ in range(8):
        beats = rng.randint(1, 48)
        writes.append((rng.randrange(half, IMAGE_BYTES - beats * B, B), beats * B, rng.getrandbits(32),
                       rng.choice([FULL_STRB, rng.getrandbits(B)])))

    async def reader(name):
        for addr, length in cmds[name]:
            await read(dut, name, addr, length, original, stall=p)

    async def writer():
        for addr, length, seed, strb in writes:
            await write(dut, addr, length, seed, strb, expect, stall=p)

    tasks = [cocotb.start_soon(reader("rd0")), cocotb.start_soon(reader("rd1")), cocotb.start_soon(writer())]
    for task in tasks:
        await task
    assert np.array_equal(image, expect), np.flatnonzero(image != expect)[:8]
    late = check_timing(CFG4, resp, exact=p == 0)
    ahead = resp.records[PREFIX["wr0"]].w_ahead
    if p > 0:
        assert late > 0, "stalls were asked for but no response came late"
    if p >= 0.9:                                   # AWREADY low for long: some W beats must come first
        assert ahead > 0, "no W beat came before its AW: that path went untested"
    stats = resp.timing.stats["ports"]
    assert [stats[i]["bytes_read"] for i in (0, 1)] == [sum(n for _, n in cmds[x]) for x in ("rd0", "rd1")]
    assert stats[2]["bytes_written"] == sum(w[1] for w in writes)
    assert not resp.errors
    finish(resp, mons)
    dut._log.info("p=%s: %d calls, %d late responses, %d W beats ahead of AW, responder woke on %d edges, "
                  "last cycle %d", p, len(resp.calls), late, ahead, resp.edges, resp.cycle)


@cocotb.test()
async def slverr_outside_image(dut):
    """Beats past the end of the image: SLVERR (reader and writer raise error), recorded; the rest served."""
    rng = random.Random(f"{SEED}-slverr")
    size = 8192 - 4 * B                        # so that the bursts below end past the image, not at 4 KiB
    image = image_of(rng, size)
    original = image.copy()
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG4), image, clock, dut.rst, ports=port_map(CFG4, "rd0", "wr0"))
    mons = monitors(dut, "rd0", "wr0")
    await release(dut)
    await command(dut, "rd0", 300, addr=size - 2 * B, length=4 * B)
    assert int(dut.rd0_error.value) == 1
    want = checksums(bytes(image[size - 2 * B:]) + bytes(2 * B))     # out-of-range beats read as zeros
    assert (int(dut.rd0_data_xor.value), int(dut.rd0_byte_sum.value)) == want
    await command(dut, "wr0", 300, addr=size - B, length=3 * B, seed=99, strb=FULL_STRB)
    assert int(dut.wr0_error.value) == 1
    assert bytes(image[size - B:]) == pattern(99, B) and bytes(image[:size - B]) == bytes(original[:size - B])
    assert [(e.prefix, e.channel, e.address) for e in resp.errors] == [
        (PREFIX["rd0"], "r", size - 2 * B), (PREFIX["wr0"], "w", size - B)], resp.errors
    assert "past the end" in resp.errors[0].message
    await read(dut, "rd0", 0, 8 * B, image)                            # and the next command is clean
    assert check_timing(CFG4, resp, exact=True) == 0
    finish(resp, mons)


@cocotb.test()
async def idle_responder_sleeps(dut):
    """Idle time and HBM latency cost no Python wake-ups: a lone read wakes the responder on a few edges."""
    rng = random.Random(f"{SEED}-idle")
    image = image_of(rng)
    clock = await start(dut)
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports=port_map(CFG, "rd0"))
    await release(dut)
    await ClockCycles(dut.clk, 1000)
    idle_edges = resp.edges
    assert idle_edges <= 6, idle_edges                 # the reset edges and the first after it
    await read(dut, "rd0", 0x100, B, image)
    await ClockCycles(dut.clk, 1000)
    rec = resp.records[PREFIX["rd0"]]
    assert rec.r == [rec.ar[0][0] + lone_latency(CFG)]
    # the AR edge, the edge R is presented on (after a timer over the HBM latency), the R handshake edge
    assert resp.edges - idle_edges <= 4, resp.edges - idle_edges
    assert check_timing(CFG, resp, exact=True) == 0
