"""AXI4 read master: reads a byte range in INCR bursts and folds the data into checksums.

A command (``start`` pulse with ``addr`` and ``length`` in bytes) is split into INCR bursts of full-width
beats, each as long as possible but at most 256 beats and never crossing a 4 KiB boundary; ``plan`` is
the same split in Python, for tests and models. Up to ``max_outstanding`` bursts are in flight: a burst
counts from the cycle its AR is presented until its RLAST beat is accepted. Each accepted R beat is
XORed into ``data_xor`` and its bytes are added into ``byte_sum`` (mod 2**32); ``nbytes`` counts the bytes,
``bursts`` the bursts issued, ``error`` is set by any beat whose RRESP is not OKAY. ``done`` rises when
the last burst has completed and stays high until the next ``start``; ``start`` is ignored while ``busy``.

``addr`` and ``length`` are in whole beats: their low log2(data_width/8) bits are ignored. ARID is the
burst number modulo 2**id_width. The write channels are unused (AWVALID/WVALID low, BREADY high).

``backpressure=True`` adds an input ``r_allow`` that drives RREADY (for tests that stall the R channel);
otherwise RREADY is always high. ``cross_4k=True`` builds a deliberately BROKEN master that ignores the
4 KiB rule (bursts only capped at 256 beats); it exists to test protocol checkers and must not be used
otherwise.
"""
from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.memory.axi import AxiSignature
from hwgen.spec.axi import BOUNDARY_BYTES, BURST_INCR, MAX_INCR_BEATS, RESP_OKAY

SUM_BITS = 32


def plan(addr: int, length: int, bytes_per_beat: int, cross_4k: bool = False) -> list[tuple[int, int]]:
    """The bursts ``AxiBurstReader`` issues for a command: [(address, beats), ...] in order."""
    addr -= addr % bytes_per_beat
    beats_left = length // bytes_per_beat
    bursts = []
    while beats_left:
        to_boundary = (BOUNDARY_BYTES - addr % BOUNDARY_BYTES) // bytes_per_beat
        beats = min(beats_left, MAX_INCR_BEATS, beats_left if cross_4k else to_boundary)
        bursts.append((addr, beats))
        addr += beats * bytes_per_beat
        beats_left -= beats
    return bursts


class AxiBurstReader(wiring.Component):
    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 2,
                 length_width: int = 24, max_outstanding: int = 1, backpressure: bool = False,
                 cross_4k: bool = False):
        self.axi = AxiSignature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        if max_outstanding < 1:
            raise ValueError(f"max_outstanding: must be at least 1, not {max_outstanding}")
        if not self.axi.size < length_width <= addr_width:
            raise ValueError(f"length_width: must be in ({self.axi.size}, {addr_width}], not {length_width}")
        self.max_outstanding = max_outstanding
        self.cross_4k = cross_4k
        self.backpressure = backpressure
        members = {
            "start": In(1),
            "addr": In(addr_width),
            "length": In(length_width),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "nbytes": Out(length_width),
            "bursts": Out(length_width),
            "data_xor": Out(data_width),
            "byte_sum": Out(SUM_BITS),
            "bus": Out(self.axi),
        }
        if backpressure:
            members["r_allow"] = In(1)
        super().__init__(members)

    def plan(self, addr: int, length: int) -> list[tuple[int, int]]:
        return plan(addr, length, self.axi.bytes_per_beat, self.cross_4k)

    def elaborate(self, platform):
        m = Module()
        ar, r = self.bus.ar, self.bus.r
        size = self.axi.size
        beat_bytes = self.axi.bytes_per_beat
        page_beats = BOUNDARY_BYTES // beat_bytes

        next_addr = Signal(len(self.addr))            # beat-aligned address of the next burst
        beats_left = Signal(len(self.length) - size)   # beats not yet requested
        in_flight = Signal(range(self.max_outstanding + 1))

        # the next burst: as long as possible, at most 256 beats, not past the 4 KiB boundary
        to_boundary = Signal(range(page_beats + 1))
        m.d.comb += to_boundary.eq(page_beats - next_addr[size:12])
        capped = Signal(range(MAX_INCR_BEATS + 1))
        m.d.comb += capped.eq(Mux(beats_left > MAX_INCR_BEATS, MAX_INCR_BEATS, beats_left))
        beats = Signal(range(MAX_INCR_BEATS + 1))
        if self.cross_4k:
            m.d.comb += beats.eq(capped)
        else:
            m.d.comb += beats.eq(Mux(to_boundary < capped, to_boundary, capped))

        # AR: the payload is registered when a burst is issued and held until the handshake
        ar_free = ~ar.valid | ar.ready
        issue = Signal()
        complete = Signal()
        m.d.comb += issue.eq(self.busy & ar_free & (beats_left != 0) & (in_flight < self.max_outstanding))
        with m.If(issue):
            m.d.sync += [
                ar.valid.eq(1),
                ar.payload.id.eq(self.bursts[:self.axi.id_width]),
                ar.payload.addr.eq(next_addr),
                ar.payload.len.eq(beats - 1),
                ar.payload.size.eq(size),
                ar.payload.burst.eq(BURST_INCR),
                next_addr.eq(next_addr + (beats << size)),
                beats_left.eq(beats_left - beats),
                self.bursts.eq(self.bursts + 1),
            ]
        with m.Elif(ar.ready):
            m.d.sync += ar.valid.eq(0)

        # R: fold every accepted beat into the checksums
        m.d.comb += r.ready.eq(self.r_allow if self.backpressure else 1)
        beat = r.valid & r.ready
        m.d.comb += complete.eq(beat & r.payload.last)
        beat_sum = sum(r.payload.data.word_select(i, 8) for i in range(beat_bytes))
        with m.If(beat):
            m.d.sync += [
                self.data_xor.eq(self.data_xor ^ r.payload.data),
                self.byte_sum.eq(self.byte_sum + beat_sum),
                self.nbytes.eq(self.nbytes + beat_bytes),
            ]
            with m.If(r.payload.resp != RESP_OKAY):
                m.d.sync += self.error.eq(1)
        m.d.sync += in_flight.eq(in_flight + issue - complete)

        # write channels unused
        m.d.comb += [self.bus.aw.valid.eq(0), self.bus.w.valid.eq(0), self.bus.b.ready.eq(1)]

        # command
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    self.busy.eq(1),
                    self.done.eq(0),
                    self.error.eq(0),
                    self.nbytes.eq(0),
                    self.bursts.eq(0),
                    self.data_xor.eq(0),
                    self.byte_sum.eq(0),
                    next_addr.eq(Cat(C(0, size), self.addr[size:])),
                    beats_left.eq(self.length >> size),
                ]
        with m.Elif((beats_left == 0) & (in_flight == 0)):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
