"""cocotb tests of HbmInterleaver (hwgen/rtl/memory/hbm_interleaver.py) alone: a Python AXI4 master on its slave side,
HbmResponders on its ports.

The top (built by tests/test_interleaver.py, names by hwgen.rtl.memory.axi.VivadoTop): the interleaver's slave as
``s_axi_hbm_*`` and its ports as ``m_axi_hbm<i>_*``. The config comes from INTERLEAVER_TB_CONFIG (JSON of a
``config.from_dict`` dict); randomness from INTERLEAVER_TB_SEED (default 1).

``Master`` drives random INCR bursts (each inside one interleave chunk: reads from the lower half of the
image, writes with random WSTRB to the upper half), one coroutine waking on every edge (a small design:
cheap enough). It samples handshakes on the rising edge (the values of the cycle that ended, like the
responder and the monitor) and then drives the next cycle. Knobs: ``idle`` (AR/AW/W VALID withheld with
this probability while a request waits), ``backpressure`` (RREADY/BREADY low with this probability),
``w_lead`` (W beats of a burst may be offered before its AW is accepted), ``max_reads`` / ``max_writes``
(bursts in flight, from AR/AW offered to the last R beat / B).

Every test checks: data (each R beat's data, ID and RLAST against the image, in AR order; the image after
the writes), B IDs in AW order, an AxiMonitor (strict) on the slave side and on every port, and zero
latency: the AR / AW / R / B handshakes of each port are in the same cycles as the slave side's handshakes
of the bursts routed there, and no W beat passes before its AW. ``exact_at_p0`` adds the merge rule of the
module docstring (what sim/model/memory/dma.py computes): replaying the responder's HbmPorts calls, R beat k of
the request order is taken in ``max(ready_k, h_{k-1} + 1)`` (B the same).
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

from hwgen.rtl.memory.hbm_interleaver import read_depth, write_depth
from hwgen.spec import config
from sim.model.memory.axi_port import HbmPorts
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import PERIOD_NS, start_clock
from sim.rtl.tb.hbm_responder import HbmResponder

warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

SLAVE = "s_axi_hbm"
CFG = config.from_dict(json.loads(os.environ.get("INTERLEAVER_TB_CONFIG", '{"base": "tiny", "memory": {"ports": 4}}')))
SEED = int(os.environ.get("INTERLEAVER_TB_SEED", "1"))
P = CFG.memory.ports
B = CFG.beat_bytes
CHUNK = CFG.memory.interleave_bytes
IMAGE_BYTES = max(1 << 16, 4 * P * CHUNK)
FULL_STRB = (1 << B) - 1
ID_BITS = CFG.axi_id_bits


def port_of(addr: int) -> int:
    return (addr // CHUNK) % P


def bursts(rng: random.Random, n: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """n random (id, address, beats) inside [lo, hi), none crossing an interleave chunk or 4 KiB."""
    span = min(CHUNK, 4096) // B
    out = []
    for _ in range(n):
        start = rng.randrange(lo // B, hi // B)
        room = span - start % span
        beats = rng.randint(1, min(room, 256, rng.choice([2, 4, 16, 256])))
        out.append((rng.getrandbits(ID_BITS), start * B, beats))
    return out


class Master:
    """A random AXI4 master on ``s_axi_hbm``; see the module docstring."""

    def __init__(self, dut, rng: random.Random, reads, writes, image: np.ndarray, *, idle=0.0, backpressure=0.0,
                 w_lead=False, max_reads=None, max_writes=None):
        self.dut, self.rng, self.image = dut, rng, image
        self.reads = list(reads)
        self.writes = [(bid, addr, beats, [(rng.getrandbits(8 * B), rng.choice([FULL_STRB, rng.getrandbits(B)]))
                                           for _ in range(beats)]) for bid, addr, beats in writes]
        self.idle, self.backpressure, self.w_lead = idle, backpressure, w_lead
        self.max_reads = max_reads or len(self.reads)
        self.max_writes = max_writes or len(self.writes)
        self.h = {name: getattr(dut, f"{SLAVE}_{name}") for name in (
            "arvalid", "arready", "arid", "araddr", "arlen", "arsize", "arburst", "rvalid", "rready", "rid", "rdata",
            "rresp", "rlast", "awvalid", "awready", "awid", "awaddr", "awlen", "awsize", "awburst", "wvalid",
            "wready", "wdata", "wstrb", "wlast", "bvalid", "bready", "bid", "bresp")}
        # handshake cycles on the slave side
        self.ar, self.aw, self.r, self.b, self.w_first = [], [], [], [], []
        self.errors: list[str] = []
        self.period = get_sim_steps(PERIOD_NS, "ns")

    def expect(self) -> np.ndarray:
        """The image after every write (applied in AW order: each address belongs to one port, in order)."""
        out = self.image.copy()
        for _, addr, _, beats in self.writes:
            for k, (data, strb) in enumerate(beats):
                raw = data.to_bytes(B, "little")
                for j in range(B):
                    if strb >> j & 1:
                        out[addr + k * B + j] = raw[j]
        return out

    async def run(self, t0: int) -> None:
        dut, h, rng = self.dut, self.h, self.rng
        B_SIZE = B.bit_length() - 1
        ar_i = aw_i = 0                # next burst to offer
        ar_on = aw_on = w_on = False   # VALID driven in the current cycle
        rready = bready = False
        r_wait: list[list] = []        # [burst index, beats taken] of reads accepted, in order
        b_wait: list[int] = []         # write indices accepted on AW (B due in order)
        reads_open = writes_open = 0   # offered and not finished
        w_i, w_k = 0, 0                # W: burst and beat to send
        aw_done = 0                    # AW handshakes so far
        original = self.image
        while len(self.r) < sum(b for _, _, b in self.reads) or len(self.b) < len(self.writes):
            await RisingEdge(dut.clk)
            n = (get_sim_time("step") - t0) // self.period - 1    # the cycle that just ended
            if ar_on and h["arready"].value == 1:
                self.ar.append(n)
                r_wait.append([ar_i, 0])
                ar_i += 1
                ar_on = False
            if aw_on and h["awready"].value == 1:
                self.aw.append(n)
                b_wait.append(aw_i)
                aw_i += 1
                aw_done += 1
                aw_on = False
            if w_on and h["wready"].value == 1:
                if w_k == 0:
                    self.w_first.append(n)
                    if len(self.aw) <= w_i or self.aw[w_i] >= n:
                        self.errors.append(f"W beat of write {w_i} in cycle {n} before its AW handshake")
                w_k += 1
                if w_k == len(self.writes[w_i][3]):
                    w_i, w_k = w_i + 1, 0
                w_on = False
            if rready and h["rvalid"].value == 1:
                self.r.append(n)
                index, k = r_wait[0]
                bid, addr, beats = self.reads[index]
                want = int.from_bytes(original[addr + k * B: addr + (k + 1) * B].tobytes(), "little")
                got = (int(h["rid"].value), int(h["rdata"].value), int(h["rlast"].value), int(h["rresp"].value))
                if got != (bid, want, int(k == beats - 1), 0):
                    self.errors.append(f"R beat {k} of read {index} (id {bid}, 0x{addr:x}, {beats} beats) in cycle "
                                       f"{n}: got id/data/last/resp {got[0]}/0x{got[1]:x}/{got[2]}/{got[3]}")
                r_wait[0][1] += 1
                if r_wait[0][1] == beats:
                    r_wait.pop(0)
                    reads_open -= 1
            if bready and h["bvalid"].value == 1:
                self.b.append(n)
                index = b_wait.pop(0)
                got = (int(h["bid"].value), int(h["bresp"].value))
                if got != (self.writes[index][0], 0):
                    self.errors.append(f"B of write {index} in cycle {n}: id/resp {got}, "
                                       f"want ({self.writes[index][0]}, 0)")
                writes_open -= 1
            if self.errors:
                raise AssertionError("; ".join(self.errors[:4]))
            # drive the next cycle (a VALID once up stays up with its payload until the handshake)
            if not ar_on and ar_i < len(self.reads) and reads_open < self.max_reads and rng.random() >= self.idle:
                bid, addr, beats = self.reads[ar_i]
                for name, value in (("arid", bid), ("araddr", addr), ("arlen", beats - 1), ("arsize", B_SIZE),
                                    ("arburst", 1), ("arvalid", 1)):
                    h[name].value = value
                ar_on = True
                reads_open += 1
            elif not ar_on:
                h["arvalid"].value = 0
            if not aw_on and aw_i < len(self.writes) and writes_open < self.max_writes and rng.random() >= self.idle:
                bid, addr, beats, _ = self.writes[aw_i]
                for name, value in (("awid", bid), ("awaddr", addr), ("awlen", beats - 1), ("awsize", B_SIZE),
                                    ("awburst", 1), ("awvalid", 1)):
                    h[name].value = value
                aw_on = True
                writes_open += 1
            elif not aw_on:
                h["awvalid"].value = 0
            # W: the beats of burst w_i once its AW is offered (w_lead) or accepted
            w_allowed = w_i < len(self.writes) and (aw_done > w_i or (self.w_lead and aw_i + int(aw_on) > w_i))
            if not w_on and w_allowed and rng.random() >= self.idle:
                data, strb = self.writes[w_i][3][w_k]
                h["wdata"].value = data
                h["wstrb"].value = strb
                h["wlast"].value = int(w_k == len(self.writes[w_i][3]) - 1)
                h["wvalid"].value = 1
                w_on = True
            elif not w_on:
                h["wvalid"].value = 0
            rready = rng.random() >= self.backpressure
            bready = rng.random() >= self.backpressure
            h["rready"].value = int(rready)
            h["bready"].value = int(bready)
        for name in ("arvalid", "awvalid", "wvalid"):
            h[name].value = 0


async def setup(dut, stall: float, seed: str):
    """Clock, reset, image, responder and monitors; returns (responder, monitors, image, t0 step of cycle 0)."""
    clock = start_clock(dut)
    dut.rst.value = 1
    for name in ("arvalid", "awvalid", "wvalid", "rready", "bready"):
        getattr(dut, f"{SLAVE}_{name}").value = 0
    await ClockCycles(dut.clk, 2)
    rng = np.random.default_rng(abs(hash(seed)) % (1 << 32))
    image = rng.integers(0, 256, IMAGE_BYTES, dtype=np.uint8)
    responder = HbmResponder(dut, HbmPorts(CFG), image, clock, dut.rst, stall=stall, seed=SEED)
    monitors = [AxiMonitor(dut, prefix, dut.clk, dut.rst) for prefix in (SLAVE, *(f"m_axi_hbm{i}" for i in range(P)))]
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    return responder, monitors, image, get_sim_time("step")


def check_routing(master: Master, responder: HbmResponder) -> None:
    """Zero latency: per port, the slave-side handshakes of its bursts are the port's handshakes."""
    for i in range(P):
        rec = responder.records[f"m_axi_hbm{i}"]
        ar = [c for c, (_, addr, _) in zip(master.ar, master.reads, strict=True) if port_of(addr) == i]
        aw = [c for c, (_, addr, _, _) in zip(master.aw, master.writes, strict=True) if port_of(addr) == i]
        assert [c for c, *_ in rec.ar] == ar, f"port {i}: AR cycles {[c for c, *_ in rec.ar][:6]} != slave {ar[:6]}"
        assert [c for c, *_ in rec.aw] == aw, f"port {i}: AW cycles {[c for c, *_ in rec.aw][:6]} != slave {aw[:6]}"
        beats = [port_of(addr) for _, addr, n in master.reads for _ in range(n)]
        r = [c for c, p in zip(master.r, beats, strict=True) if p == i]
        assert rec.r == r, f"port {i}: R cycles {rec.r[:6]} != slave {r[:6]}"
        b = [c for c, (_, addr, _, _) in zip(master.b, master.writes, strict=True) if port_of(addr) == i]
        assert rec.b == b, f"port {i}: B cycles {rec.b[:6]} != slave {b[:6]}"


def merge_rule(master: Master, responder: HbmResponder) -> None:
    """At 0 % stalls: replay the HbmPorts calls; response k in request order at max(ready_k, h_{k-1} + 1)."""
    replay = HbmPorts(CFG)
    ready_r, ready_b = {}, {}
    for cycle, port, kind, addr, beats in responder.calls:
        if kind == "read":
            ready_r.setdefault((port, addr, beats), []).append(replay.read(cycle, port, addr, beats))
        else:
            ready_b.setdefault((port, addr, beats), []).append(replay.write(cycle, port, addr, beats))
    want_r, last = [], -1
    for _, addr, beats in master.reads:
        for ready in ready_r[(port_of(addr), addr, beats)].pop(0):
            last = max(ready, last + 1)
            want_r.append(last)
    want_b, last = [], -1
    for _, addr, beats, _ in master.writes:
        last = max(ready_b[(port_of(addr), addr, beats)].pop(0), last + 1)
        want_b.append(last)
    assert master.r == want_r, f"R handshakes {master.r[:8]} != merge rule {want_r[:8]}"
    assert master.b == want_b, f"B handshakes {master.b[:8]} != merge rule {want_b[:8]}"


async def traffic(dut, label: str, stall: float, n: int, **knobs) -> Master:
    rng = random.Random(f"{SEED}-{label}")
    responder, monitors, image, t0 = await setup(dut, stall, f"{SEED}-{label}")
    half = IMAGE_BYTES // 2
    master = Master(dut, rng, bursts(rng, n, 0, half), bursts(rng, n, half, IMAGE_BYTES), image.copy(), **knobs)
    await master.run(t0)
    await ClockCycles(dut.clk, 2)
    assert np.array_equal(image, master.expect()), np.flatnonzero(image != master.expect())[:8]
    assert not responder.errors, responder.errors[:3]
    assert responder.idle
    check_routing(master, responder)
    for monitor in monitors:
        monitor.assert_clean()
    if stall == 0 and knobs.get("backpressure", 0) == 0:
        merge_rule(master, responder)
    used = {port_of(addr) for _, addr, _ in master.reads} | {port_of(addr) for _, addr, _, _ in master.writes}
    assert used == set(range(P)), f"traffic reached ports {sorted(used)} only"
    dut._log.info("%s: %d reads, %d writes over %d ports, %d cycles", label, len(master.reads), len(master.writes),
                  P, max(master.r[-1], master.b[-1]) + 1)
    return master


@cocotb.test()
async def exact_at_p0(dut):
    """No stalls, at most the FIFO depths in flight: zero latency and the merge rule exactly."""
    await traffic(dut, "exact", 0.0, 60, max_reads=read_depth(CFG), max_writes=write_depth(CFG))


@cocotb.test()
@cocotb.parametrize(p=[0.3, 0.9])
async def random_traffic(dut, p: float):
    """Every port channel stalled with probability p, the master idles and backpressures too, W may lead
    AW, and twice the FIFO depths in flight (full FIFOs hold requests back): data, order, zero latency."""
    await traffic(dut, f"random-{p}", p, 60, idle=p / 2, backpressure=p / 2, w_lead=True,
                  max_reads=2 * read_depth(CFG), max_writes=2 * write_depth(CFG))
