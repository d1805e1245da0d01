"""cocotb tests of the L3 cache RTL (hwgen/l3_cache.py) against its model (sim/memory/l3.py ``L3Ports``).

The top (built by tests/test_l3_rtl.py) is ``L3Cache`` in ``VivadoTop``: slave ``s_axi_l3_*`` (driven here),
master ``m_axi_hbm0_*`` (answered by ``HbmResponder`` from a byte image), ``ar_stream`` and the counters.
The config comes as JSON in L3_TB_CONFIG; randomness from L3_TB_SEED (default 1).

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
(d) the RTL counters (hits, misses, evictions, writebacks, bypassed) equal the model's.
"""
from __future__ import annotations

import json
import os
import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_steps

from hwgen import config
from sim.memory.axi_port import HbmPorts
from sim.memory.l3 import L3Ports
from sim.tb.axi_monitor import AxiMonitor
from sim.tb.hbm_responder import HbmResponder

warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

PERIOD_NS = 2
SLAVE, MASTER = "s_axi_l3", "m_axi_hbm0"
SEED = int(os.environ.get("L3_TB_SEED", "1"))
CFG = config.HwConfig.model_validate(json.loads(os.environ["L3_TB_CONFIG"])) if "L3_TB_CONFIG" in os.environ \
    else config.load("tiny")
B = CFG.beat_bytes
LB = CFG.l3.line_bytes
WAY_BYTES = CFG.l3.sets * LB                 # addresses this far apart share a set
FULL = (1 << B) - 1
COUNTERS = ("hits", "misses", "evictions", "writebacks", "bypassed")


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

    def _go(self) -> bool:
        return self.p == 0 or self.rng.random() >= self.p

    def sample(self, n: int) -> None:
        """Handshakes of cycle ``n`` (called at the edge that ends it)."""
        d = self.dut
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


def random_trace(rng: random.Random, n: int, hot_sets: int, tags: int) -> list:
    """Bursts over ``hot_sets`` sets x ``tags`` lines each (more lines than ways: conflicts), plus runs of
    consecutive lines (several misses at once: full MSHRs)."""
    out = []
    for _ in range(n):
        if rng.random() < 0.15:                          # a run of whole lines
            base = rng.randrange(tags) * WAY_BYTES + rng.randrange(hot_sets) * LB
            beats = min(16, (4096 - base % 4096) // B)
        else:
            base = rng.randrange(tags) * WAY_BYTES + rng.randrange(hot_sets) * LB + rng.randrange(LB // B) * B
            beats = rng.randint(1, min(8, (4096 - base % 4096) // B))
        if rng.random() < 0.45:
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


def replay(master: Master, cfg) -> L3Ports:
    """The model fed with the calls the slave saw; its R/B predictions under no stalls checked by the caller."""
    model = L3Ports(cfg)
    model.predicted_r, model.predicted_b = [], []
    for cycle, kind, i in calls_in_order(master):
        item = master.trace[i]
        if kind == 0:
            model.predicted_r += model.serve_read(cycle, 0, item[1], item[2], item[3])
        else:
            full = all(strb == FULL for _, strb in item[3])
            model.predicted_b.append(model.serve_write(cycle, 0, item[1], item[2], full))
    model.drain()
    return model


def counters(dut) -> dict[str, int]:
    return {name: int(getattr(dut, name).value) for name in COUNTERS}


async def setup(dut, image, p: float):
    clock = Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi")
    clock.start()
    dut.rst.value = 1
    for sig in ("arvalid", "awvalid", "wvalid", "rready", "bready"):
        getattr(dut, f"{SLAVE}_{sig}").value = 0
    dut.ar_stream.value = 0
    for sig in ("arready", "rvalid", "awready", "wready", "bvalid"):
        getattr(dut, f"{MASTER}_{sig}").value = 0
    resp = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, ports={MASTER: 0}, stall=p, seed=SEED)
    mons = [AxiMonitor(dut, prefix, dut.clk, dut.rst) for prefix in (SLAVE, MASTER)]
    await ClockCycles(dut.clk, 2)
    await RisingEdge(dut.clk)
    dut.rst.value = 0                    # this edge starts cycle 0
    return resp, mons, get_sim_time("step")


async def body(dut, p: float) -> None:
    rng = random.Random(f"{SEED}-{p}")
    tags = max(2 * CFG.l3.ways + 2, 4)
    hot = min(8, CFG.l3.sets)
    region = tags * WAY_BYTES
    image = np.frombuffer(rng.randbytes(region + 2 * CFG.l3.bytes), dtype=np.uint8).copy()
    ref = image.copy()
    resp, mons, t0 = await setup(dut, image, p)
    trace = random_trace(rng, 250, hot, tags)
    master = Master(dut, trace, p, random.Random(f"{SEED}-{p}-master"), CFG.memory.outstanding)
    await run_master(dut, master, t0, budget=400 * len(trace) + 2000)
    await ClockCycles(dut.clk, 200)
    check_data(master, ref)                                                   # (a) reads
    model = replay(master, CFG)
    got = counters(dut)
    want = {name: model.stats[name] for name in COUNTERS}
    assert got == want, f"counters: RTL {got} != model {want}"               # (d)
    for line in range(0, region, LB):                                         # (a) write-backs reached HBM
        if not model.dirty(line):
            assert bytes(image[line:line + LB]) == bytes(ref[line:line + LB]), f"HBM line {line:#x} stale"
    if p == 0:                                                                # (b) exact timing
        assert [c for c, *_ in master.r_beats] == model.predicted_r, "R handshakes != model"
        assert master.b_cycles == model.predicted_b, "B handshakes != model"
        assert resp.calls == model.master_calls, "master HbmPorts calls != model"
    for m in mons:                                                            # (c)
        m.assert_clean()
    if p > 0:
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
    model = replay(combined, CFG)
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


@cocotb.test()
async def trace_exact_p0(dut):
    """0 % stalls: data, exact R/B cycles, exact master calls, counters, HBM image."""
    await body(dut, 0.0)


@cocotb.test()
async def trace_stalls_p05(dut):
    """50 % stalls on both sides: data, counters, HBM image, AXI monitors."""
    await body(dut, 0.5)


@cocotb.test()
async def trace_stalls_p09(dut):
    """90 % stalls on both sides (W ahead of AW at the master side, a full fill buffer)."""
    await body(dut, 0.9)
