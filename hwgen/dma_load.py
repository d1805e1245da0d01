"""DMA in: a LOAD task copies ``lines`` L1 lines from HBM byte address ``hbm_addr`` into L1 from ``l1_line``.

The range is cut into INCR bursts of full beats (one beat = one L1 line), each as long as possible but
at most ``memory.burst_beats`` and never crossing a ``burst_boundary`` (4 KiB, the AXI4 rule, or the
port interleave if smaller); ``plan`` is the same cut in Python. Up to ``memory.outstanding`` bursts are in
flight (from the cycle their AR is registered to the cycle their last R beat is taken). All bursts use
ARID 0, so the slave returns them in order and each beat simply goes to the next L1 line; RREADY is
always high because the L1 write port belongs to the LOAD unit while it runs (the engine's issue logic
guarantees that).

Timing (cycle t = the cycle ``start`` is high), what the simulator's DMA model mirrors:
- the first AR is valid in cycle t + 2 (the burst is planned in t + 1 and registered);
- the next AR follows in the cycle after a handshake while fewer than ``outstanding`` bursts are in
  flight; a burst stops counting in the cycle after its last beat is taken;
- ``busy`` is high from t + 1 to the cycle of the last beat inclusive (``lines = 0``: never).
A beat with RRESP other than OKAY sets ``error`` (sticky until the next start); its data is still written.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from . import isa, signatures
from .axi import BOUNDARY_BYTES, BURST_INCR, RESP_OKAY


def burst_boundary(cfg) -> int:
    """No burst crosses a multiple of this many bytes: 4 KiB (AXI4) or the port interleave if smaller."""
    return min(BOUNDARY_BYTES, cfg.memory.interleave_bytes)


def next_burst(cfg, addr: int, beats: int) -> int:
    """Beats of the first burst of a transfer of ``beats`` beats from ``addr`` (what BurstPlanner computes)."""
    boundary = burst_boundary(cfg)
    return min(beats, cfg.memory.burst_beats, (boundary - addr % boundary) // cfg.beat_bytes)


def plan(cfg, addr: int, beats: int) -> list[tuple[int, int]]:
    """[(address, beats), ...] of the bursts a transfer of ``beats`` beats from ``addr`` is cut into."""
    out = []
    while beats:
        n = next_burst(cfg, addr, beats)
        out.append((addr, n))
        addr += n * cfg.beat_bytes
        beats -= n
    return out


class BurstPlanner:
    """The RTL half of ``plan``: given the next address and the beats left, the length of the next burst."""

    def __init__(self, cfg, addr: Signal, beats_left: Signal):
        self.cfg, self.addr, self.beats_left = cfg, addr, beats_left

    def beats(self, m: Module) -> Signal:
        cfg = self.cfg
        size = exact_log2(cfg.beat_bytes)
        boundary_bits = exact_log2(burst_boundary(cfg))
        span = burst_boundary(cfg) // cfg.beat_bytes
        to_boundary = Signal(range(span + 1))
        m.d.comb += to_boundary.eq(span - self.addr[size:boundary_bits])
        most = min(cfg.memory.burst_beats, span)
        capped = Signal(range(most + 1))
        m.d.comb += capped.eq(Mux(self.beats_left > most, most, self.beats_left))
        beats = Signal(range(most + 1))
        m.d.comb += beats.eq(Mux(to_boundary < capped, to_boundary, capped))
        return beats


class DmaLoad(wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        axi = signatures.hbm_axi(cfg)
        super().__init__({
            "start": In(1),
            "hbm_addr": In(isa.DESCRIPTOR.bits("hbm_addr")),
            "l1_line": In(isa.DESCRIPTOR.bits("a_addr")),
            "lines": In(isa.DESCRIPTOR.bits("lines")),
            "busy": Out(1),
            "error": Out(1),
            "beats": Out(32),                                   # beats received since reset (a counter)
            "ar": Out(axi.members["ar"].signature),
            "r": In(axi.members["r"].signature.flip()),
            "l1_write": In(signatures.l1_write(cfg, byte_enables=False)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        ar, r = self.ar, self.r
        size = exact_log2(cfg.beat_bytes)
        lines_bits = len(self.lines)

        next_addr = Signal(len(self.hbm_addr))          # beat-aligned address of the next burst
        to_issue = Signal(lines_bits)                   # beats not yet requested
        to_receive = Signal(lines_bits)                 # beats not yet taken
        in_flight = Signal(range(cfg.memory.outstanding + 1))
        line = Signal(len(self.l1_write.addr))
        beats = BurstPlanner(cfg, next_addr, to_issue).beats(m)

        ar_free = ~ar.valid | ar.ready
        issue = self.busy & ar_free & (to_issue != 0) & (in_flight < cfg.memory.outstanding)
        with m.If(issue):
            m.d.sync += [
                ar.valid.eq(1),
                ar.payload.id.eq(0),
                ar.payload.addr.eq(next_addr),
                ar.payload.len.eq(beats - 1),
                ar.payload.size.eq(size),
                ar.payload.burst.eq(BURST_INCR),
                next_addr.eq(next_addr + (beats << size)),
                to_issue.eq(to_issue - beats),
            ]
        with m.Elif(ar.ready):
            m.d.sync += ar.valid.eq(0)

        m.d.comb += r.ready.eq(1)
        take = r.valid & self.busy
        m.d.comb += [self.l1_write.addr.eq(line), self.l1_write.data.eq(r.payload.data), self.l1_write.en.eq(take)]
        m.d.sync += in_flight.eq(in_flight + issue - (take & r.payload.last))
        with m.If(take):
            m.d.sync += [line.eq(line + 1), to_receive.eq(to_receive - 1), self.beats.eq(self.beats + 1)]
            with m.If(r.payload.resp != RESP_OKAY):
                m.d.sync += self.error.eq(1)
            with m.If(to_receive == 1):
                m.d.sync += self.busy.eq(0)

        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(self.lines != 0), self.error.eq(0), line.eq(self.l1_line),
                         next_addr.eq(self.hbm_addr >> size << size), to_issue.eq(self.lines),
                         to_receive.eq(self.lines)]
        return m
