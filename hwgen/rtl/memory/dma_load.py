"""DMA in: a LOAD task copies ``lines`` L1 lines from VIRTUAL byte address ``hbm_addr`` into L1 from ``l1_line``;
the unit also owns the AXI read channel, so it issues the page-table walks of every TLB of the engine.

Bursts. The range is cut into INCR bursts of full beats (one beat = one L1 line), each as long as possible but
at most ``memory.burst_beats`` and never crossing a ``burst_boundary`` (4 KiB, the AXI4 rule, or the port
interleave if smaller); ``plan`` is the same cut in Python. Pages are >= 4 KiB and page-aligned in both
spaces, so the cut is the same on virtual and physical addresses and each burst lies in one page.

Translation. Each burst's virtual address goes to the unit's TLB (``xlate_req`` / ``xlate_resp``,
``hwgen/rtl/memory/tlb.py``) before its AR: the next burst is requested as soon as the TLB takes a request (it holds one
at a time, and takes the next in the cycle the previous response is taken), and a response is taken in a
cycle where the AR register is free (``~arvalid | arready``), no walk is granted it (below) and fewer than
``memory.outstanding`` bursts are in flight; the AR is then registered with the physical address. A response
with a fault is taken at once: the unit requests nothing more, latches the code in ``fault`` and, once
its bursts in flight have all come back, drops ``busy``.

Walks (the read channel is shared): ``walk_req[i]`` / ``walk_resp[i]`` serve the walker port of TLB ``i``
(the engine: 0 = this unit's, 1 = the STORE unit's). One walk is on the bus at a time. In a cycle where the
AR register is free and no walk is on the bus, the lowest-numbered TLB asking gets it (before any data
burst): the AR carries ARID ``WALK_ID`` (data bursts: 0), the beat holding the 8-byte entry, one beat. Its R
beat (told apart by RID) goes to that TLB's ``walk_resp`` (the entry's 64 bits selected from the beat) and
not to L1; from that cycle the next walk may be granted. Data beats keep AR order (one ID), so each simply
goes to the next L1 line; RREADY is always high: L1's write port belongs to the LOAD unit while it runs (the
engine's issue logic guarantees it) and a TLB is always ready for its walk's beat.

Timing (cycle t = the cycle ``start`` is high), what the simulator's DMA model mirrors:
- the first translation is requested in t + 2 (``xlate_req``: the first burst's length is registered first);
  on a TLB hit its AR is valid in t + 5 (``first_ar_latency``), on a miss after the walk
  (``Tlb.miss_latency``); a burst's length is registered in the cycle after the previous request, so
  requests are at least two cycles apart (as the TLB takes them);
- the next AR follows in the cycle after a handshake while fewer than ``outstanding`` bursts are in
  flight and its translation is back; a burst stops counting in the cycle after its last beat is taken;
- ``busy`` is high from t + 1 to the cycle of the last beat inclusive (``lines = 0``: never), or after a
  fault to the cycle after the one in which no burst is in flight any more.
A beat with RRESP other than OKAY sets ``error`` (sticky until the next start); its data is still written.
``fault`` (a ``Fault``) is cleared by the next start; the engine takes no task while it is set.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwgen.rtl import signatures
from hwgen.rtl.memory.tlb import Fault, request_layout, response_layout
from hwgen.spec import isa
from hwgen.spec.axi import BURST_INCR, RESP_OKAY, burst_boundary
from hwgen.spec.page_table import PTE_BITS, PTE_BYTES
from hwgen.spec.timing import TlbTiming

#: ARID of page-table walks; LOAD data bursts use ARID 0
WALK_ID = 1


class BurstPlanner:
    """The RTL half of ``plan``: given the next address and the beats left (registers), the length of the next
    burst, registered: ``beats`` holds it from the cycle after the two settle, ``ready`` says it does (low in
    the cycle after ``moved``, a cycle in which the owner changed them). A request per two cycles is all a
    TLB takes (``TlbTiming.hit_interval``), so the registered length costs only the first request a cycle,
    and no compare, select and add chain runs from the plan's registers back into them."""

    def __init__(self, cfg, addr: Signal, beats_left: Signal):
        self.cfg, self.addr, self.beats_left = cfg, addr, beats_left

    def registered(self, m: Module, moved) -> tuple[Signal, Signal]:
        """(beats, ready) as in the class docstring; ``moved``: the owner updates addr / beats_left now."""
        planned = self.now(m)
        beats, ready = Signal.like(planned, name="planned_beats"), Signal(name="planned_ready")
        m.d.sync += [beats.eq(planned), ready.eq(~moved)]
        return beats, ready

    def now(self, m: Module) -> Signal:
        """The length of the next burst from addr / beats_left in this cycle (combinational)."""
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
    """See the module docstring; ``walkers``: the TLBs whose walks this unit issues."""

    #: cycles from ``start`` to the first ARVALID when the first translation hits
    first_ar_latency = 3 + TlbTiming.hit_latency

    def __init__(self, cfg, walkers: int = 2):
        self._cfg = cfg
        self.walkers = walkers
        axi = signatures.hbm_axi(cfg)
        addr_bits = isa.DESCRIPTOR.bits("hbm_addr")
        if cfg.beat_bytes < PTE_BYTES:
            raise ValueError(f"engine.scan_bytes: {cfg.beat_bytes} is not allowed with paging: a page-table entry "
                             f"({PTE_BYTES} bytes) must fit one AXI beat")
        super().__init__({
            "start": In(1),
            "hbm_addr": In(addr_bits),
            "l1_line": In(isa.DESCRIPTOR.bits("a_addr")),
            "lines": In(isa.DESCRIPTOR.bits("lines")),
            "busy": Out(1),
            "error": Out(1),
            "fault": Out(Fault),
            "beats": Out(32),                                   # beats received since reset (a counter)
            "xlate_req": Out(stream.Signature(request_layout(addr_bits))),
            "xlate_resp": In(stream.Signature(response_layout(addr_bits))),
            "walk_req": In(stream.Signature(addr_bits)).array(walkers),
            "walk_resp": Out(stream.Signature(PTE_BITS)).array(walkers),
            "ar": Out(axi.members["ar"].signature),
            "r": In(axi.members["r"].signature.flip()),
            "l1_write": In(signatures.l1_write(cfg, byte_enables=False)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        ar, r = self.ar, self.r
        xreq, xresp = self.xlate_req, self.xlate_resp
        size = exact_log2(cfg.beat_bytes)
        lines_bits = len(self.lines)

        plan_addr = Signal(len(self.hbm_addr))          # virtual, beat-aligned: the next burst to translate
        to_plan = Signal(lines_bits)                    # beats not yet sent for translation
        to_receive = Signal(lines_bits)                 # beats not yet taken
        in_flight = Signal(range(cfg.memory.outstanding + 1))
        line = Signal(len(self.l1_write.addr))
        starting = self.start & ~self.busy
        requested = xreq.valid & xreq.ready
        beats, planned = BurstPlanner(cfg, plan_addr, to_plan).registered(m, moved=starting | requested)
        xl_beats = Signal.like(beats)                   # beats of the burst being translated

        # ---- translation: one burst at a time through the TLB ----
        faulting = xresp.valid & (xresp.payload.fault != Fault.NONE)
        m.d.comb += [xreq.valid.eq(self.busy & planned & (self.fault == Fault.NONE) & (to_plan != 0) & ~faulting),
                     xreq.payload.vaddr.eq(plan_addr), xreq.payload.write.eq(0)]
        with m.If(requested):
            m.d.sync += [plan_addr.eq(plan_addr + (beats << size)), to_plan.eq(to_plan - beats), xl_beats.eq(beats)]

        # ---- AR: a walk first, else the translated data burst ----
        ar_free = ~ar.valid | ar.ready
        walk_pending = Signal()                         # a walk's AR was registered, its beat not back yet
        walk_owner = Signal(range(max(self.walkers, 2)))
        words = cfg.beat_bytes // PTE_BYTES
        walk_word = Signal(range(max(words, 2)))        # which 64-bit word of the beat holds the entry
        asks = Cat(w.valid for w in self.walk_req)
        walk_go = ar_free & ~walk_pending & asks.any()
        walk_addr = Signal(len(self.hbm_addr))
        owner = Signal.like(walk_owner)
        for i in reversed(range(self.walkers)):         # the lowest-numbered asking TLB wins
            w = self.walk_req[i]
            m.d.comb += w.ready.eq(ar_free & ~walk_pending & ((asks & ((1 << i) - 1)) == 0))
            with m.If(w.valid):
                m.d.comb += [walk_addr.eq(w.payload), owner.eq(i)]
        issue = ~walk_go & ar_free & xresp.valid & ~faulting & (in_flight < cfg.memory.outstanding)
        m.d.comb += xresp.ready.eq(issue | faulting)
        with m.If(walk_go):
            m.d.sync += [
                ar.valid.eq(1), ar.payload.id.eq(WALK_ID), ar.payload.addr.eq(walk_addr >> size << size),
                ar.payload.len.eq(0), ar.payload.size.eq(size), ar.payload.burst.eq(BURST_INCR),
                walk_pending.eq(1), walk_owner.eq(owner),
                walk_word.eq(walk_addr[exact_log2(PTE_BYTES):size] if words > 1 else 0),
            ]
        with m.Elif(issue):
            m.d.sync += [
                ar.valid.eq(1),
                ar.payload.id.eq(0),
                ar.payload.addr.eq(xresp.payload.paddr >> size << size),
                ar.payload.len.eq(xl_beats - 1),
                ar.payload.size.eq(size),
                ar.payload.burst.eq(BURST_INCR),
            ]
        with m.Elif(ar.ready):
            m.d.sync += ar.valid.eq(0)
        with m.If(faulting):
            m.d.sync += self.fault.eq(xresp.payload.fault)

        # ---- R: data beats to L1, a walk's beat to its TLB ----
        m.d.comb += r.ready.eq(1)
        is_walk = r.payload.id == WALK_ID
        walk_beat = r.valid & is_walk
        entry = r.payload.data.word_select(walk_word, PTE_BITS) if words > 1 else r.payload.data[:PTE_BITS]
        for i, w in enumerate(self.walk_resp):
            m.d.comb += [w.valid.eq(walk_beat & (walk_owner == i)), w.payload.eq(entry)]
        with m.If(walk_beat):
            m.d.sync += walk_pending.eq(0)
        take = r.valid & ~is_walk & self.busy
        m.d.comb += [self.l1_write.addr.eq(line), self.l1_write.data.eq(r.payload.data), self.l1_write.en.eq(take)]
        m.d.sync += in_flight.eq(in_flight + issue - (take & r.payload.last))
        with m.If(take):
            m.d.sync += [line.eq(line + 1), to_receive.eq(to_receive - 1), self.beats.eq(self.beats + 1)]
            with m.If(r.payload.resp != RESP_OKAY):
                m.d.sync += self.error.eq(1)
            with m.If(to_receive == 1):
                m.d.sync += self.busy.eq(0)
        with m.If(self.busy & (self.fault != Fault.NONE) & (in_flight == 0)):
            m.d.sync += self.busy.eq(0)

        # while idle the task's registers follow the inputs, so they hold the task's in the start cycle without
        # an enable fanned out from ``start`` (the engine's issue decision); only what a task ends with waits for it
        with m.If(~self.busy):
            m.d.sync += [line.eq(self.l1_line), plan_addr.eq(self.hbm_addr >> size << size),
                         to_plan.eq(self.lines), to_receive.eq(self.lines)]
        with m.If(starting):
            m.d.sync += [self.busy.eq(self.lines != 0), self.error.eq(0), self.fault.eq(Fault.NONE)]
        return m
