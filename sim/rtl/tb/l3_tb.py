"""cocotb tests of the L3 cache RTL (hwgen/rtl/memory/l3_cache.py) against its model
(sim/model/memory/l3.py ``L3Ports``).

The top (built by tests/test_l3_rtl.py) is ``L3Cache`` in ``VivadoTop``: slave ``s_axi_l3_*`` (driven here),
master ``m_axi_hbm0_*`` (answered by ``HbmResponder`` from a byte image), ``ar_stream``, ``ready`` and the
counters. The config comes as JSON in L3_TB_CONFIG; randomness from L3_TB_SEED (default 1).

Two ways to start. ``reset``: the trace starts in the cycle after reset, while the tag RAMs are being cleared
(requests wait); cycle 0 is the first cycle out of reset for the master, the responder and the model
(``L3Ports(cfg)``), and ``ready`` must rise in cycle ``init_cycles = sets / banks``. ``ready``: the
testbench waits for ``ready`` (after checking it rises in cycle ``init_cycles``); cycle 0 is the first
cycle ``ready`` is high for the master, the responder (its reset is ``ready`` low) and the model
(``L3Ports(cfg, cleared=True)``); the master presents its first request in the cycle after it saw
``ready``, as a master that waits for it does.

A master (``Master``) issues a random trace of read and write bursts (1..8 beats, any start beat, full or
random WSTRB, some reads marked ``stream``) on the slave, at most ``memory.outstanding`` per direction in
flight, over a few hot sets so that hits, misses, conflicts, dirty evictions and full MSHRs all happen.
Checked:
(a) data: the cache handles requests in call order (AR before a write completed in the same cycle), so the
    expected bytes of a read are a flat reference memory with every earlier write applied; after the trace,
    every line the model says is not dirty holds the reference bytes in the HBM image, and (at 0 % stalls)
    after a sweep reading twice the capacity elsewhere, with LRU no line is left dirty;
(b) at 0 % stalls: every R and B handshake cycle equals the model's prediction, and the responder's HbmPorts
    calls (the master's AR and completed writes) equal the model's ``master_calls``;
(c) under random stalls on both sides: data exact, an ``AxiMonitor`` on each port clean;
(d) the RTL counters (hits, misses, evictions, writebacks, bypassed) equal the model's;
(e) ``ready`` is low for exactly ``init_cycles`` cycles after reset;
(f) flush (``flush_*``): after a write-heavy trace the testbench pulses ``flush`` in the cycle after the
    last response (write-backs may still be in flight: the cache takes it in its first ``idle`` cycle) and a
    second trace starts in the cycle after the take, so its requests wait in the slave buffers while
    ``flushing`` is high; ``flushing`` must be high from the cycle after the pulse until it falls, with
    ``idle`` low from the cycle after the take. When it falls the HBM image holds every byte the first trace
    wrote (the whole region equals the reference); after the second trace a second flush leaves the image
    equal to the reference again and a third one, pulsed in the cycle after that fall with nothing dirty, is
    taken at once, has ``flushing`` high for exactly one cycle (it falls two cycles after the pulse) and makes
    no HBM call. At 0 % stalls every take and fall cycle, R / B handshake and master HbmPorts call equals the
    model's (``L3Ports.flush``, ``flush_take``); at any stall rate the data are exact, the counters (with
    ``flush_writebacks``) equal the model's and the AXI monitors are clean.
"""
from __future__ import annotations

import json
import os
import random
import warnings

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_steps

from hwgen.spec import config
from hwgen.spec.l3 import L3Timing
from sim.model.memory.axi_port import HbmPorts
from sim.model.memory.l3 import L3Ports
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import PERIOD_NS, start_clock
from sim.rtl.tb.hbm_responder import HbmResponder

warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

SLAVE, MASTER = "s_axi_l3", "m_axi_hbm0"
SEED = int(os.environ.get("L3_TB_SEED", "1"))
CFG = config.HwConfig.model_validate(json.loads(os.environ["L3_TB_CONFIG"])) if "L3_TB_CONFIG" in os.environ \
    else config.load("tiny")
B = CFG.beat_bytes
LB = CFG.l3.line_bytes
WAY_BYTES = CFG.l3.sets * LB                 # addresses this far apart share a set
FULL = (1 << B) - 1
INIT_CYCLES = L3Timing.of(CFG).init_cycles
COUNTERS = ("hits", "misses", "evictions", "writebacks", "bypassed", "flush_writebacks")


class Master:
    """Drives the slave port from a trace, one decision per clock edge; records every handshake cycle.

    ``trace`` items: ("r", address, beats, stream) or ("w", address, beats, [(data, strb)] per beat). Bursts
    go out in trace order (AR or AW), at most ``outstanding`` reads and writes in flight; W beats of a write
    follow its AW (from the cycle its AW is presented). ``p``: probability that a VALID or READY of this
    side is held low in a cycle."""

    def __init__(self, dut, trace, p: float, rng: random.Random, outstanding: int):
        self.dut, self.trace, self.p, self.rng, self.out = dut, list(trace), p, rng, outstanding
        self.next = 0
        self.ar = self.aw = None                 # (index, item) presented, not yet accepted
        self.w_items: list = []                  # (index, beats left [(data, strb)]) whose W beats are not all sent
        self.w_on = None                         # (data, strb, last) presented on W
        self.reads_inflight: list[int] = []      # trace indices, AR order
        self.writes_inflight = 0
        self.r_beats: list[tuple[int, int, int, int]] = []      # (cycle, data, id, last)
        self.b_cycles: list[int] = []
        self.ar_cycle: dict[int, int] = {}
        self.aw_cycle: dict[int, int] = {}
        self.wlast_cycle: dict[int, int] = {}
        self.rready = self.bready = 1
        self.done = False
        self.ready_cycle: int | None = None      # the first cycle ``ready`` was seen high

    def _go(self) -> bool:
        return self.p == 0 or self.rng.random() >= self.p

    def sample(self, n: int) -> None:
        """Handshakes of cycle ``n`` (called at the edge that ends it)."""
        d = self.dut
        if self.ready_cycle is None and int(d.ready.value):
            self.ready_cycle = n
        if self.ar is not None and int(d.s_axi_l3_arready.value):
            self.ar_cycle[self.ar[0]] = n
            self.ar = None
        if self.aw is not None and int(d.s_axi_l3_awready.value):
            self.aw_cycle[self.aw[0]] = n
            self.aw = None
        if self.w_on is not None and int(d.s_axi_l3_wready.value):
            index = self.w_items[0][0]
            self.w_items[0][1].pop(0)
            if not self.w_items[0][1]:
                self.wlast_cycle[index] = n
                self.w_items.pop(0)
            self.w_on = None
        if self.rready and int(d.s_axi_l3_rvalid.value):
            last = int(d.s_axi_l3_rlast.value)
            self.r_beats.append((n, int(d.s_axi_l3_rdata.value), int(d.s_axi_l3_rid.value), last))
            if last:
                self.reads_inflight.pop(0)
        if self.bready and int(d.s_axi_l3_bvalid.value):
            self.b_cycles.append(n)
            self.writes_inflight -= 1

    def drive(self) -> None:
        """Outputs for the cycle that starts."""
        d = self.dut
        if self.ar is None and self.aw is None and self.next < len(self.trace) and self._go():
            item = self.trace[self.next]
            if item[0] == "r" and len(self.reads_inflight) < self.out:
                self.ar = (self.next, item)
                self.reads_inflight.append(self.next)
                d.s_axi_l3_araddr.value = item[1]
                d.s_axi_l3_arlen.value = item[2] - 1
                d.s_axi_l3_arid.value = self.next % 2
                d.ar_stream.value = int(item[3])
                self.next += 1
            elif item[0] == "w" and self.writes_inflight < self.out:
                self.aw = (self.next, item)
                self.writes_inflight += 1
                self.w_items.append((self.next, list(item[3])))
                d.s_axi_l3_awaddr.value = item[1]
                d.s_axi_l3_awlen.value = item[2] - 1
                d.s_axi_l3_awid.value = self.next % 2
                self.next += 1
        d.s_axi_l3_arvalid.value = int(self.ar is not None)
        d.s_axi_l3_awvalid.value = int(self.aw is not None)
        if self.w_on is None and self.w_items and self._go():
            beats = self.w_items[0][1]
            self.w_on = (beats[0][0], beats[0][1], len(beats) == 1)
            d.s_axi_l3_wdata.value, d.s_axi_l3_wstrb.value, d.s_axi_l3_wlast.value = self.w_on
        d.s_axi_l3_wvalid.value = int(self.w_on is not None)
        self.rready = int(self._go())
        self.bready = int(self._go())
        d.s_axi_l3_rready.value = self.rready
        d.s_axi_l3_bready.value = self.bready
        self.done = (self.next == len(self.trace) and self.ar is None and self.aw is None and not self.w_items
                     and not self.reads_inflight and self.writes_inflight == 0)


async def run_master(dut, master: Master, t0: int, budget: int) -> None:
    period = get_sim_steps(PERIOD_NS, "ns")
    for _ in range(budget):
        await RisingEdge(dut.clk)
        n = (get_sim_time("step") - t0) // period        # the cycle this edge starts
        master.sample(n - 1)
        master.drive()
        if master.done:
            return
    raise TimeoutError(f"trace not done after {budget} cycles: {master.next}/{len(master.trace)} issued")


# ---------------------------------------------------------------------------------------------------
# stimulus and reference

def beat_data(rng: random.Random, beats: int, partial: float) -> list[tuple[int, int]]:
    return [(rng.getrandbits(8 * B), FULL if rng.random() >= partial else rng.getrandbits(B)) for _ in range(beats)]


def random_trace(rng: random.Random, n: int, hot_sets: int, tags: int, writes: float = 0.45) -> list:
    """Bursts over ``hot_sets`` sets x ``tags`` lines each (more lines than ways: conflicts), plus runs of
    consecutive lines (several misses at once: full MSHRs); a burst is a write with probability ``writes``."""
    out = []
    for _ in range(n):
        if rng.random() < 0.15:                          # a run of whole lines
            base = rng.randrange(tags) * WAY_BYTES + rng.randrange(hot_sets) * LB
            beats = min(16, (4096 - base % 4096) // B)
        else:
            base = rng.randrange(tags) * WAY_BYTES + rng.randrange(hot_sets) * LB + rng.randrange(LB // B) * B
            beats = rng.randint(1, min(8, (4096 - base % 4096) // B))
        if rng.random() < writes:
            out.append(("w", base, beats, beat_data(rng, beats, 0.3)))
        else:
            out.append(("r", base, beats, rng.random() < 0.3))
    return out


def sweep(region: int, nbytes: int) -> list:
    """Reads of 16 beats over ``nbytes`` from ``region``: touches every set, evicting what was there."""
    step = 16 * B
    return [("r", a, 16, False) for a in range(region, region + nbytes, step)]


def calls_in_order(master: Master) -> list[tuple[int, int, int]]:
    """(cycle, kind, trace index) of every request as the cache takes them: reads at their AR, writes when
    complete (max of AW and last W), the AR first within a cycle."""
    out = []
    for i, item in enumerate(master.trace):
        if item[0] == "r":
            out.append((master.ar_cycle[i], 0, i))
        else:
            out.append((max(master.aw_cycle[i], master.wlast_cycle[i]), 1, i))
    return sorted(out)


def check_data(master: Master, ref: np.ndarray) -> None:
    """Replay the requests in the cache's order on ``ref``; compare every R beat."""
    beats_by_read = {}
    pos = 0
    ar_order = sorted((master.ar_cycle[i], i) for i, it in enumerate(master.trace) if it[0] == "r")
    for _, i in ar_order:
        beats = master.trace[i][2]
        beats_by_read[i] = master.r_beats[pos:pos + beats]
        pos += beats
    assert pos == len(master.r_beats), f"{len(master.r_beats)} R beats for {pos} requested"
    for _, kind, i in calls_in_order(master):
        item = master.trace[i]
        a = item[1] - item[1] % B
        if kind == 1:
            for k, (data, strb) in enumerate(item[3]):
                raw = data.to_bytes(B, "little")
                for j in range(B):
                    if strb >> j & 1:
                        ref[a + k * B + j] = raw[j]
            continue
        got = beats_by_read[i]
        for k, (_, data, rid, last) in enumerate(got):
            want = int.from_bytes(bytes(ref[a + k * B:a + (k + 1) * B]), "little")
            assert data == want, f"read {i} at {a + k * B:#x} (beat {k}): {data:#x} != {want:#x}"
            assert rid == i % 2 and last == (k == len(got) - 1), f"read {i} beat {k}: rid {rid}, rlast {last}"


def replay(master: Master, cfg, cleared: bool = False, model: L3Ports | None = None, shift: int = 0) -> L3Ports:
    """The model (a new one unless given) fed with the calls the slave saw, ``shift`` cycles later; its R/B
    predictions under no stalls are checked by the caller."""
    if model is None:
        model = L3Ports(cfg, cleared=cleared)
        model.predicted_r, model.predicted_b = [], []
    for cycle, kind, i in calls_in_order(master):
        item = master.trace[i]
        if kind == 0:
            model.predicted_r += model.serve_read(cycle + shift, 0, item[1], item[2], item[3])
        else:
            full = all(strb == FULL for _, strb in item[3])
            model.predicted_b.append(model.serve_write(cycle + shift, 0, item[1], item[2], full))
    model.drain()
    return model


def diff(got: list, want: list) -> str:
    """Where two lists of cycles (or calls) first differ."""
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            return f"item {i}: RTL {g} != model {w} (RTL {got[max(i - 2, 0):i + 3]}, model {want[max(i - 2, 0):i + 3]})"
    return f"lengths: RTL {len(got)} != model {len(want)}"


def counters(dut) -> dict[str, int]:
    return {name: int(getattr(dut, name).value) for name in COUNTERS}


async def setup(dut, image, p: float, start: str):
    """Clock, reset, responder and monitors; returns them and the simulation step of the edge that starts
    cycle 0 (``start``: "reset" or "ready", see the module docstring)."""
    clock = start_clock(dut)
    dut.rst.value = 1
    for sig in ("arvalid", "awvalid", "wvalid", "rready", "bready"):
        getattr(dut, f"{SLAVE}_{sig}").value = 0
    dut.ar_stream.value = 0
    dut.flush.value = 0
    for sig in ("arready", "rvalid", "awready", "wready", "bvalid"):
        getattr(dut, f"{MASTER}_{sig}").value = 0
    if start == "reset":
        resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports={MASTER: 0}, stall=p, seed=SEED)
    mons = [AxiMonitor(dut, prefix, dut.clk, dut.rst) for prefix in (SLAVE, MASTER)]
    await ClockCycles(dut.clk, 2)
    if start == "ready":
        # the responder's cycle 0 is the first cycle ``ready`` is high; made once the reset has pulled it low
        resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.ready, ports={MASTER: 0}, stall=p, seed=SEED,
                            reset_active_level=False)
    await RisingEdge(dut.clk)
    dut.rst.value = 0                    # this edge starts cycle 0 (out of reset)
    t0 = get_sim_time("step")
    if start == "ready":                 # the master sees ready high in its cycle 0 (checked: (e))
        for n in range(INIT_CYCLES):
            await RisingEdge(dut.clk)    # ends cycle n: reads its values
            assert not int(dut.ready.value), f"ready high in cycle {n} after reset (init_cycles {INIT_CYCLES})"
        t0 = get_sim_time("step")        # this edge starts the first ready cycle
    return resp, mons, t0


async def body(dut, p: float, start: str = "reset", sweep_after: bool = True) -> None:
    rng = random.Random(f"{SEED}-{p}-{start}")
    tags = max(2 * CFG.l3.ways + 2, 4)
    hot = min(8, CFG.l3.sets)
    region = tags * WAY_BYTES
    image = np.frombuffer(rng.randbytes(region + 2 * CFG.l3.bytes), dtype=np.uint8).copy()
    ref = image.copy()
    resp, mons, t0 = await setup(dut, image, p, start)
    cleared = start == "ready"
    trace = random_trace(rng, 250, hot, tags)
    master = Master(dut, trace, p, random.Random(f"{SEED}-{p}-master"), CFG.memory.outstanding)
    await run_master(dut, master, t0, budget=400 * len(trace) + 2000)
    await ClockCycles(dut.clk, 200)
    want_ready = 0 if cleared else INIT_CYCLES                                # (e)
    assert master.ready_cycle == want_ready, f"ready first high in cycle {master.ready_cycle}, not {want_ready}"
    check_data(master, ref)                                                   # (a) reads
    model = replay(master, CFG, cleared)
    got = counters(dut)
    want = {name: model.stats[name] for name in COUNTERS}
    assert got == want, f"counters: RTL {got} != model {want}"               # (d)
    for line in range(0, region, LB):                                         # (a) write-backs reached HBM
        if not model.dirty(line):
            assert bytes(image[line:line + LB]) == bytes(ref[line:line + LB]), f"HBM line {line:#x} stale"
    if p == 0:                                                                # (b) exact timing
        got_r = [c for c, *_ in master.r_beats]
        bad = [f"{what} != model: {diff(got, want)}" for what, got, want in (
            ("master HbmPorts calls", resp.calls, model.master_calls), ("R handshakes", got_r, model.predicted_r),
            ("B handshakes", master.b_cycles, model.predicted_b)) if got != want]
        assert not bad, "; ".join(bad)
    for m in mons:                                                            # (c)
        m.assert_clean()
    if p > 0 or not sweep_after:
        assert not resp.errors, resp.errors[:3]
        return
    # sweep: read twice the capacity elsewhere, then every line of the hot region must be in HBM
    sweep_trace = sweep(region, 2 * CFG.l3.bytes)
    m2 = Master(dut, sweep_trace, p, random.Random(f"{SEED}-{p}-sweep"), CFG.memory.outstanding)
    m2.ar_cycle = {}
    await run_master(dut, m2, t0, budget=40 * len(sweep_trace) * 16 + 2000)
    await ClockCycles(dut.clk, 200)
    full = [item for item in master.trace] + sweep_trace
    combined = Master(dut, full, p, rng, 1)               # only its records are used
    n0 = len(master.trace)
    combined.ar_cycle = {**master.ar_cycle, **{n0 + i: c for i, c in m2.ar_cycle.items()}}
    combined.aw_cycle, combined.wlast_cycle = master.aw_cycle, master.wlast_cycle
    model = replay(combined, CFG, cleared)
    got = counters(dut)
    assert got == {name: model.stats[name] for name in COUNTERS}, f"counters after the sweep: {got}"
    for line in range(0, region, LB):
        if not model.dirty(line):
            assert bytes(image[line:line + LB]) == bytes(ref[line:line + LB]), f"HBM line {line:#x} stale"
    if CFG.l3.replacement == "lru":
        assert not any(model.dirty(a) for a in range(0, region, LB)), "the sweep left dirty lines"
    assert [c for c, *_ in master.r_beats + m2.r_beats] == model.predicted_r, "R handshakes != model (sweep)"
    assert resp.calls == model.master_calls, "master HbmPorts calls != model (sweep)"
    for m in mons:
        m.assert_clean()
    assert not resp.errors, resp.errors[:3]
    dut._log.info("p=%s: counters %s, %d master calls, mshr stalls %d", p, got, len(resp.calls),
                  model.stats["mshr_stall_cycles"])


async def request_flush(dut, t0: int, then: Master | None = None, budget: int = 100_000) -> tuple[int, int, int]:
    """Pulse ``flush`` in the cycle that starts now (``r``); find the take (the first cycle ``>= r`` with
    ``idle`` high) and wait until ``flushing`` falls. Checks ``flushing`` is low in ``r`` and high from
    ``r + 1`` until the fall, ``idle`` low from the cycle after the take. ``then``: a master that starts its
    trace in the cycle after the take (its requests wait while ``flushing`` is high); ``then.finished`` is the
    task that runs it. Returns (r, take, first cycle ``flushing`` is low again) at the edge that ends the fall
    cycle."""
    period = get_sim_steps(PERIOD_NS, "ns")
    dut.flush.value = 1
    r = take = None
    for _ in range(budget):
        await RisingEdge(dut.clk)
        n = (get_sim_time("step") - t0) // period - 1      # the cycle that just ended: its values
        flushing, idle = int(dut.flushing.value), int(dut.idle.value)
        if r is None:
            r = n
            dut.flush.value = 0
            assert not flushing, f"flushing high in cycle {n}, the cycle of the request"
        elif take is None or n == r + 1 or flushing:
            assert flushing, f"flushing low in cycle {n} (request {r}, take {take})"
            assert take is None or not idle, f"idle high in cycle {n} during the flush taken in {take}"
        else:
            return r, take, n
        if take is None and idle:
            take = n
            if then is not None:
                then.drive()                        # the cycle after the take: its first request
                then.finished = cocotb.start_soon(run_master(dut, then, t0, 400 * len(then.trace) + budget))
    raise TimeoutError(f"flush not {'taken' if take is None else 'done'} after {budget} cycles")


async def flush_body(dut, p: float) -> None:
    """(f) of the module docstring."""
    rng = random.Random(f"{SEED}-{p}-flush")
    tags = max(2 * CFG.l3.ways + 2, 4)
    hot = min(8, CFG.l3.sets)
    region = tags * WAY_BYTES
    image = np.frombuffer(rng.randbytes(region + 2 * CFG.l3.bytes), dtype=np.uint8).copy()
    ref = image.copy()
    resp, mons, t0 = await setup(dut, image, p, "reset")
    trace1 = random_trace(rng, 150, hot, tags, writes=0.75)
    trace2 = random_trace(rng, 60, hot, tags, writes=0.6)
    m1 = Master(dut, trace1, p, random.Random(f"{SEED}-{p}-flush1"), CFG.memory.outstanding)
    m2 = Master(dut, trace2, p, random.Random(f"{SEED}-{p}-flush2"), CFG.memory.outstanding)
    await run_master(dut, m1, t0, budget=400 * len(trace1) + 2000)
    req1, take1, fall1 = await request_flush(dut, t0, then=m2)    # pulse in the cycle after the last response
    calls1 = len(resp.calls)
    snapshot1 = image[:region].copy()                    # nothing of trace 2 reached HBM before fall1 + 1
    await m2.finished
    req2, take2, fall2 = await request_flush(dut, t0)
    calls2 = len(resp.calls)
    req3, take3, fall3 = await request_flush(dut, t0)
    await ClockCycles(dut.clk, 50)
    assert len(resp.calls) == calls2, f"the flush with nothing dirty made HBM calls: {resp.calls[calls2:]}"
    assert req3 == take3 and fall3 == take3 + 2, f"flush with nothing dirty: requested {req3}, taken {take3}, " \
        f"flushing fell in {fall3}, not {take3 + 2}"
    check_data(m1, ref)
    bad = np.flatnonzero(snapshot1 != ref[:region])
    assert not bad.size, f"after the first flush, HBM byte {bad[0]:#x} (and {bad.size - 1} more) != reference"
    check_data(m2, ref)
    bad = np.flatnonzero(image != ref)
    assert not bad.size, f"after the second flush, HBM byte {bad[0]:#x} (and {bad.size - 1} more) != reference"
    # the model: trace 1, flush, trace 2 (shifted by as much as the model's take is later), two flushes
    model = replay(m1, CFG)
    dirty1 = model.dirty_lines
    assert dirty1 or CFG.l3.write_policy != "write_back", "the write-heavy trace left no dirty line"
    want1 = model.flush(req1)
    at1 = model.flush_take
    shift = max(at1 - take1, 0)
    replay(m2, CFG, model=model, shift=shift)
    want2 = model.flush(req2 + shift)
    at2 = model.flush_take
    shift = want2 - fall2                                # the third request: the cycle after the fall
    want3 = model.flush(req3 + shift)
    assert model.dirty_lines == 0 and want3 == req3 + shift + 2
    got, want = counters(dut), {name: model.stats[name] for name in COUNTERS}
    assert got == want, f"counters: RTL {got} != model {want}"               # (d)
    assert got["flush_writebacks"] >= dirty1
    if p == 0:                                                                # (b), (f) exact timing
        assert (at1, at2) == (take1, take2), f"flushes taken in {take1}, {take2}; the model's: {at1}, {at2}"
        assert (fall1, fall2) == (want1, want2), f"flushing fell in {fall1}, {fall2}; model {want1}, {want2}"
        got_r = [c for c, *_ in m1.r_beats + m2.r_beats]
        bad = [f"{what} != model: {diff(got, want)}" for what, got, want in (
            ("master HbmPorts calls", resp.calls, model.master_calls), ("R handshakes", got_r, model.predicted_r),
            ("B handshakes", m1.b_cycles + m2.b_cycles, model.predicted_b)) if got != want]
        assert not bad, "; ".join(bad)
        assert calls1 == len([c for c in model.master_calls if c[0] < fall1]), "HBM calls before the first fall"
    for m in mons:
        m.assert_clean()
    assert not resp.errors, resp.errors[:3]
    dut._log.info("p=%s: flushes requested %s taken %s fell %s (%d dirty lines at the first), counters %s", p,
                  (req1, req2, req3), (take1, take2, take3), (fall1, fall2, fall3), dirty1, got)


@cocotb.test()
async def flush_exact_p0(dut):
    """Flush at 0 % stalls: HBM image = reference after each flush, fall cycles, R/B handshakes and master
    calls exact (requests waiting during the flush included), a flush with nothing dirty ends at once."""
    await flush_body(dut, 0.0)


@cocotb.test()
async def flush_stalls_p05(dut):
    """Flush under 50 % stalls on both sides: data exact, counters, AXI monitors clean."""
    await flush_body(dut, 0.5)


@cocotb.test()
async def flush_stalls_p09(dut):
    """Flush under 90 % stalls on both sides: data exact, counters, AXI monitors clean."""
    await flush_body(dut, 0.9)


@cocotb.test()
async def trace_exact_p0(dut):
    """0 % stalls: data, exact R/B cycles, exact master calls, counters, HBM image."""
    await body(dut, 0.0)


@cocotb.test()
async def ready_exact_p0(dut):
    """0 % stalls, the trace started after ``ready``: exact R/B cycles and master calls of the model with
    ``cleared=True`` (cycle 0 = the first ready cycle), data, counters, HBM image."""
    await body(dut, 0.0, start="ready", sweep_after=False)


@cocotb.test()
async def trace_stalls_p05(dut):
    """50 % stalls on both sides: data, counters, HBM image, AXI monitors."""
    await body(dut, 0.5)


@cocotb.test()
async def trace_stalls_p09(dut):
    """90 % stalls on both sides (W ahead of AW at the master side, a full fill buffer)."""
    await body(dut, 0.9)
