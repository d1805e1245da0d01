"""DMA out: a STORE task writes ``lines`` lines to VIRTUAL byte address ``hbm_addr``: output-buffer lines from
``out_line`` (``source`` 0), or L1 lines from ``l1_line`` (``source`` 1: requantized int8 rows, so that a layer
on another engine can read them from HBM).

An output line (L accumulators) and an AXI beat (one L1 line) differ in width by a power of two: a line
is cut into ``parts`` beats (line >= beat), or ``gather`` lines make one beat (line < beat; ``lines`` must
then be a multiple of ``gather``). An L1 line is one beat, so a ``source`` 1 task runs, cycle for cycle, as
an output-buffer task would with ``parts`` = ``gather`` = 1. Bursts are cut as for loads (``dma_load.plan``);
AWID is 0, so B responses come back in order.

Three independent pieces, each a few registers:
- lines: the task's read port (``out_read`` or ``l1_read``, registered reads of two cycles) runs as a
  pipeline, so a beat is ready every cycle while the W channel takes them: the next line waits in the RAM's
  output until the line in the port's data is used up (``take``), and the one after is read as it moves;
- AW: like the LOAD's AR: each burst's virtual address is translated by the unit's TLB (``xlate_req`` /
  ``xlate_resp``, requests as early as the TLB takes them, ``write`` = 1), and the AW is registered with the
  physical address in a cycle where the AW register is free and fewer than ``memory.outstanding`` bursts
  wait for their B response (a burst waits from its AW to its B): first valid in cycle t + 5 when the first
  translation hits (``first_aw_latency``: the burst's length is registered before it is requested), then as
  the TLB answers. The TLB's walks go out on the read channel through the LOAD unit (``dma_load``, walker
  port 1);
- W: a beat goes out only once its burst's AW has been accepted (in an earlier cycle); WLAST on the last beat of
  each burst (its length from a FIFO of the AWs' lengths), WSTRB all ones.
``busy`` is high from t + 1 to the cycle of the last B response inclusive (``lines = 0``: never).
A B response other than OKAY sets ``error``. A translation with a fault is taken at once: no further burst
is translated or issued, ``fault`` latches the code (cleared by the next start), the bursts already issued
finish (their W beats, their B), and ``busy`` drops in the cycle after the one in which none waits for B.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwgen.rtl import signatures
from hwgen.rtl.memory.dma_load import BurstPlanner
from hwgen.rtl.memory.tlb import Fault, request_layout, response_layout
from hwgen.spec import isa
from hwgen.spec.axi import BURST_INCR, RESP_OKAY, beats_per_line
from hwgen.spec.timing import TlbTiming


class DmaStore(wiring.Component):
    #: cycles from ``start`` to the first AWVALID when the first translation hits
    first_aw_latency = 3 + TlbTiming.hit_latency

    def __init__(self, cfg):
        self._cfg = cfg
        axi = signatures.hbm_axi(cfg)
        addr_bits = isa.DESCRIPTOR.bits("hbm_addr")
        super().__init__({
            "start": In(1),
            "hbm_addr": In(addr_bits),
            "out_line": In(isa.DESCRIPTOR.bits("c_addr")),
            "l1_line": In(isa.DESCRIPTOR.bits("d_addr")),
            "source": In(isa.DESCRIPTOR.bits("source")),       # 0: out_line.., 1: l1_line..
            "lines": In(isa.DESCRIPTOR.bits("lines")),
            "busy": Out(1),
            "error": Out(1),
            "fault": Out(Fault),
            "beats": Out(32),                                   # beats sent since reset (a counter)
            "xlate_req": Out(stream.Signature(request_layout(addr_bits))),
            "xlate_resp": In(stream.Signature(response_layout(addr_bits))),
            "aw": Out(axi.members["aw"].signature),
            "w": Out(axi.members["w"].signature),
            "b": In(axi.members["b"].signature.flip()),
            "out_read": In(signatures.out_read(cfg)),
            "l1_read": In(signatures.l1_read(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        aw, w, b, rd, l1 = self.aw, self.w, self.b, self.out_read, self.l1_read
        size = exact_log2(cfg.beat_bytes)
        beat_bits = cfg.beat_bytes * 8
        parts, gather = beats_per_line(cfg)
        nbits = len(self.lines) + exact_log2(parts)            # beats of one task

        # ---- lines: the read port's data register holds the line being cut or gathered ----
        src = Signal()                                         # the running task reads L1 (one line per beat)
        rd_next = Signal(max(len(rd.addr), len(l1.addr)))
        rd_left = Signal(len(self.lines))
        have = Signal()                                        # the data holds a line not yet used up
        pending = Signal()                                     # the RAM's output holds the next line
        beat_valid = Signal()
        beat_data = Signal(beat_bits)
        w_take = w.valid & w.ready
        advance = Signal()
        if parts >= 1 and gather == 1:
            part = Signal(range(max(parts, 2)))
            out_beat = rd.data.word_select(part, beat_bits) if parts > 1 else rd.data
            m.d.comb += [beat_valid.eq(have), beat_data.eq(Mux(src, l1.data, out_beat))]
            m.d.comb += advance.eq(~have | (w_take & (src | (part == parts - 1))))
            with m.If(advance):
                m.d.sync += part.eq(0)
            with m.Elif(w_take):
                m.d.sync += part.eq(part + 1)
        else:
            slot = Signal(range(gather))
            full = Signal()
            gathered = Signal(beat_bits)
            take_line = have & ~src & (~full | w_take)
            m.d.comb += [beat_valid.eq(Mux(src, have, full)), beat_data.eq(Mux(src, l1.data, gathered)),
                         advance.eq(~have | Mux(src, w_take, take_line))]
            with m.If(take_line):
                m.d.sync += [gathered.word_select(slot, cfg.out_line_bits).eq(rd.data),
                             slot.eq(slot + 1 if gather > 1 else 0)]
                m.d.sync += full.eq(slot == gather - 1)
            with m.Elif(w_take & ~src):                        # source 1 leaves the gather registers alone
                m.d.sync += full.eq(0)
        # a read whenever the RAM's output moves on to the data (or holds nothing)
        move = pending & advance
        fetch = self.busy & (~pending | move) & (rd_left != 0)          # rd_left follows the input while idle
        m.d.comb += [rd.addr.eq(rd_next), rd.en.eq(fetch & ~src), rd.take.eq(move),
                     l1.addr.eq(rd_next), l1.en.eq(fetch & src), l1.take.eq(move)]
        with m.If(fetch):
            m.d.sync += [rd_next.eq(rd_next + 1), rd_left.eq(rd_left - 1), pending.eq(1)]
        with m.Elif(move):
            m.d.sync += pending.eq(0)
        with m.If(advance):
            m.d.sync += have.eq(pending)

        # ---- translation, then AW: one burst per cycle while fewer than `outstanding` wait for B ----
        xreq, xresp = self.xlate_req, self.xlate_resp
        plan_addr = Signal(len(self.hbm_addr))                 # virtual: the next burst to translate
        plan_left = Signal(nbits)                              # beats not yet sent for translation
        aw_left = Signal(nbits)                                # beats whose AW is not yet registered
        unacked = Signal(range(cfg.memory.outstanding + 1))
        starting = self.start & ~self.busy
        requested = xreq.valid & xreq.ready
        plan_beats, planned = BurstPlanner(cfg, plan_addr, plan_left).registered(m, moved=starting | requested)
        xl_beats = Signal.like(plan_beats)
        faulting = xresp.valid & (xresp.payload.fault != Fault.NONE)
        m.d.comb += [xreq.valid.eq(self.busy & planned & (self.fault == Fault.NONE) & (plan_left != 0) & ~faulting),
                     xreq.payload.vaddr.eq(plan_addr), xreq.payload.write.eq(1)]
        with m.If(requested):
            m.d.sync += [plan_addr.eq(plan_addr + (plan_beats << size)), plan_left.eq(plan_left - plan_beats),
                         xl_beats.eq(plan_beats)]
        issue = (~aw.valid | aw.ready) & xresp.valid & ~faulting & (unacked < cfg.memory.outstanding)
        m.d.comb += xresp.ready.eq(issue | faulting)
        with m.If(issue):
            m.d.sync += [aw.valid.eq(1), aw.payload.id.eq(0), aw.payload.addr.eq(xresp.payload.paddr >> size << size),
                         aw.payload.len.eq(xl_beats - 1), aw.payload.size.eq(size),
                         aw.payload.burst.eq(BURST_INCR), aw_left.eq(aw_left - xl_beats)]
        with m.Elif(aw.ready):
            m.d.sync += aw.valid.eq(0)
        with m.If(faulting):
            m.d.sync += self.fault.eq(xresp.payload.fault)
        aw_sent = Signal(nbits)                                # AW handshakes of this task
        with m.If(aw.valid & aw.ready):
            m.d.sync += aw_sent.eq(aw_sent + 1)

        # ---- W: the beats of burst k once AW k was accepted; its length is the one its AW was given (a FIFO of
        # the bursts whose AW is registered and whose last beat is not sent: at most ``outstanding``) ----
        m.submodules.w_lens = w_lens = SyncFIFO(width=len(xl_beats), depth=cfg.memory.outstanding)
        m.d.comb += [w_lens.w_en.eq(issue), w_lens.w_data.eq(xl_beats)]
        w_pos = Signal(range(cfg.memory.burst_beats))
        w_bursts = Signal(nbits)
        m.d.comb += [w.valid.eq(self.busy & beat_valid & (aw_sent > w_bursts)), w.payload.data.eq(beat_data),
                     w.payload.strb.eq((1 << cfg.beat_bytes) - 1),
                     w.payload.last.eq(w_pos == w_lens.r_data - 1),
                     w_lens.r_en.eq(w_take & w.payload.last)]
        with m.If(w_take):
            m.d.sync += self.beats.eq(self.beats + 1)
            with m.If(w.payload.last):
                m.d.sync += [w_pos.eq(0), w_bursts.eq(w_bursts + 1)]
            with m.Else():
                m.d.sync += w_pos.eq(w_pos + 1)

        # ---- B: count responses; the last one ends the task ----
        m.d.comb += b.ready.eq(1)
        b_take = b.valid & self.busy
        m.d.sync += unacked.eq(unacked + issue - b_take)
        with m.If(b_take):
            with m.If(b.payload.resp != RESP_OKAY):
                m.d.sync += self.error.eq(1)
            with m.If((unacked == 1) & (aw_left == 0)):
                m.d.sync += self.busy.eq(0)
        with m.If(self.busy & (self.fault != Fault.NONE) & (unacked == 0)):
            m.d.sync += self.busy.eq(0)

        # while idle the task's registers follow the inputs, so they hold the task's in the start cycle without
        # an enable fanned out from ``start`` (the engine's issue decision); only what a task ends with waits for it
        with m.If(~self.busy):
            out_total = (self.lines >> exact_log2(gather)) if gather > 1 else self.lines * parts
            total = Mux(self.source, self.lines, out_total)
            addr = self.hbm_addr >> size << size
            m.d.sync += [src.eq(self.source), rd_next.eq(Mux(self.source, self.l1_line, self.out_line)),
                         rd_left.eq(self.lines), pending.eq(0), plan_addr.eq(addr),
                         plan_left.eq(total), aw_left.eq(total), aw_sent.eq(0), w_bursts.eq(0), w_pos.eq(0)]
        with m.If(starting):
            m.d.sync += [self.busy.eq(self.lines != 0), self.error.eq(0), self.fault.eq(Fault.NONE)]
        return m
