"""The L3 shared cache: an AXI4 slave toward the engines' DMA, an AXI4 master toward HBM.

Everything comes from ``cfg.l3`` (bytes, line_bytes, ways, mshrs, replacement, write_policy, bypass,
hit_cycles), ``cfg.beat_bytes`` (one AXI beat) and ``cfg.memory`` (outstanding, burst_beats: the request
buffers). ``L3Timing.of(cfg)`` holds every derived number; ``sim/memory/l3.py`` (``L3Ports``) reads it and
reproduces this component's timing cycle for cycle.

Ports: ``bus`` (``In(signatures.hbm_axi(cfg))``, the slave the DMA talks to), ``hbm`` (``Out`` of the same
signature, the master toward HBM), ``ar_stream`` (In(1): sampled with the slave AR handshake, 1 marks a
read-once burst, the AXI ``aruser``-style hint the DMA's ``stream`` bit drives; ignored unless
``l3.bypass = streaming``) and the counters ``hits``, ``misses``, ``evictions``, ``writebacks``,
``bypassed`` (Out(32), line accesses, wrapping).

Micro-architecture (everything in order; one line access per cycle; cycle numbers as in
``sim/memory/axi_port.py``)
---------------------------------------------------------------------------------------------------------
1. Requests. An AR handshake in cycle ``c`` enters the read request FIFO in ``c`` (visible from ``c + 1``).
   AW and W are buffered (W may lead AW); a write is complete in cycle ``c = max(AW, last W handshake)``
   and enters the write request FIFO in ``c + 1`` (visible from ``c + 2``). Tickets keep the order of
   HbmPorts calls: cycle by cycle, the AR before the completed write. ARREADY / AWREADY / WREADY stay high
   while the master keeps at most ``2 x memory.outstanding`` bursts of at most ``memory.burst_beats`` beats
   per direction waiting (the DMA keeps ``outstanding``).
   After reset the tag RAM is cleared, one set per cycle (``init_cycles = sets`` cycles, RAM contents survive
   a reset); requests are accepted meanwhile and the tag stage starts in cycle ``init_cycles``.
2. Line generator + tag stage (S1). A request is split into line accesses (the beats of the request in one
   line). A line access enters S1 in the cycle after the previous one left S1 at the earliest, and one cycle
   after its request is visible. The tag RAM (one word per set: valid, dirty, tag per way and the LRU ages)
   is read in the cycle before S1 and re-read while S1 stalls (transparent to the tag write), so S1 always
   sees the tags of every earlier access. S1 decides, writes the tags and leaves in the same cycle ``T``
   unless it stalls: a miss that needs a fill waits for a free MSHR and for the B response of every HBM
   write of its line still in flight (write-backs and write-through writes are tracked from S1 to their B:
   ``pending_writes`` of them; an access that makes one waits for a free slot), and every access waits for
   a free slot of the line queue (``line_queue`` entries, counted from S1 until the data stage is done).
   Hits, misses, victims, dirty bits and replacement therefore change in request order, whatever the timing.
3. Fills. A miss that needs data takes an MSHR in ``T`` and pushes its AR (the whole line; a bypassed read:
   only its own beats) to the master AR FIFO: the AR is presented in ``T + 1``. Fill beats come back in AR
   order into the fill buffer (``mshrs`` lines, so RREADY stays high) and are visible one cycle after their
   R handshake. The MSHR is released by the data stage when it takes the fill's last beat.
4. Delay line. S1's output reaches the line queue after ``hit_delay`` extra register stages
   (``hit_delay = l3.hit_cycles - MIN_HIT_CYCLES``): the queue entry is visible in ``T + hit_delay + 1``.
5. Data stage. Takes line queue entries in order, one micro-op (one beat) per cycle: first, for a dirty
   victim, its ``line_beats`` beats are read out of the data RAM toward the master W channel (write-back);
   then the access's beats: a fill writes every beat of the line into the RAM (a bypassed fill: only the
   request's beats, into nothing), each beat waiting for its fill beat; a read forwards fill beats or reads
   the RAM; a write takes its W beats (byte strobes), merges them into fill beats or writes them into the RAM,
   and with write-through also sends them to HBM. Outputs go through one register: an R beat of a micro-op
   in cycle ``u`` is presented in ``u + 2``; a write's B response after its last micro-op ``u`` in ``u + 2``;
   a master write (write-back or write-through) presents AW with its first W beat and its last W beat in
   ``u_last + 2``. Because the data RAM is touched only here, in request order, a line still in flight may
   be hit, evicted or written back and every beat still holds the right data.
A lone read hit takes ``hit_cycles`` from its AR handshake to its first RVALID; responses are in request
order on R and on B (the slave answers every ID in order, which AXI allows).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from . import signatures
from .axi import BOUNDARY_BYTES, BURST_INCR, MAX_INCR_BEATS

#: AR handshake -> first RVALID of a read hit with no extra delay stages (request FIFO, S1, line queue,
#: data micro-op, output register)
MIN_HIT_CYCLES = 5
LFSR_POLY = 0xB400          # Galois form of x^16 + x^14 + x^13 + x^11 + 1
LFSR_SEED = 0xACE1


@dataclass(frozen=True)
class L3Timing:
    """Every number of the cache that is not in the config verbatim (the simulator reads these)."""

    line_beats: int
    sets: int
    ways: int
    mshrs: int
    hit_cycles: int
    hit_delay: int          # register stages between S1 and the line queue
    line_queue: int         # line accesses between S1 and the end of their data micro-ops
    request_fifo: int       # read requests (and write requests) waiting for the tag stage
    w_fifo: int             # W beats buffered at the slave
    pending_writes: int     # HBM writes (write-backs, write-through) tracked from S1 to their B
    init_cycles: int        # after reset, the tag RAM is cleared one set per cycle; S1 starts after it

    @classmethod
    def of(cls, cfg) -> "L3Timing":
        c = cfg.l3
        B = cfg.beat_bytes
        if c.line_bytes % B:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed: must be a multiple of beat_bytes ({B})")
        if c.line_bytes > BOUNDARY_BYTES or c.line_bytes // B > MAX_INCR_BEATS:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed by the RTL cache: must be <= "
                             f"{BOUNDARY_BYTES} and <= {MAX_INCR_BEATS} beats (one AXI burst per line)")
        if c.hit_cycles < MIN_HIT_CYCLES:
            raise ValueError(f"l3.hit_cycles: {c.hit_cycles} is not allowed by the RTL cache: must be >= "
                             f"{MIN_HIT_CYCLES} (its shortest AR-to-RVALID path)")
        out = cfg.memory.outstanding
        return cls(line_beats=c.line_bytes // B, sets=c.sets, ways=c.ways, mshrs=c.mshrs, hit_cycles=c.hit_cycles,
                   hit_delay=c.hit_cycles - MIN_HIT_CYCLES, line_queue=max(2 * c.mshrs, 4),
                   request_fifo=2 * out, w_fifo=2 * out * cfg.memory.burst_beats, init_cycles=c.sets,
                   pending_writes=max(2 * c.mshrs, 4))


class L3Cache(wiring.Component):
    """The L3 cache between ``bus`` (slave) and ``hbm`` (master); see the module docstring for the timing."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.timing = L3Timing.of(cfg)
        sig = signatures.hbm_axi(cfg)
        self.axi = sig
        super().__init__({
            "bus": In(sig), "ar_stream": In(1), "hbm": Out(sig),
            "hits": Out(32), "misses": Out(32), "evictions": Out(32), "writebacks": Out(32), "bypassed": Out(32),
        })

    @property
    def hit_latency(self) -> int:
        """AR handshake to the first RVALID of a lone read hit."""
        return self.timing.hit_cycles

    def elaborate(self, platform):
        m = Module()
        cfg, t, sig = self.cfg, self.timing, self.axi
        c3 = cfg.l3
        bus, hbm = self.bus, self.hbm
        B = cfg.beat_bytes
        L, W, S = t.line_beats, t.ways, t.sets
        AW = sig.addr_width
        beat_lsb = exact_log2(B)
        off = exact_log2(c3.line_bytes)
        lb = off - beat_lsb                       # beat index bits within a line
        sb = exact_log2(S)
        tag_bits = AW - off - sb
        wb_bits = exact_log2(W)
        lru = c3.replacement == "lru" and W > 1
        age_bits = wb_bits if lru else 0
        write_back = c3.write_policy == "write_back"
        bypass_on = c3.bypass == "streaming"
        full_strb = (1 << B) - 1
        id_w = sig.id_width
        cnt_w = ceil_log2(L + 1)

        # ---- 1. requests --------------------------------------------------------------------------
        tick_w = ceil_log2(2 * t.request_fifo + 1) + 1
        req = data.StructLayout({"addr": AW, "len": 8, "id": id_w, "flag": 1, "ticket": tick_w})
        m.submodules.rq = rq = fifo.SyncFIFO(width=req.size, depth=t.request_fifo)      # reads
        m.submodules.wq = wq = fifo.SyncFIFO(width=req.size, depth=t.request_fifo)      # completed writes
        m.submodules.awq = awq = fifo.SyncFIFO(width=AW + 8 + id_w, depth=t.request_fifo)
        m.submodules.wlq = wlq = fifo.SyncFIFO(width=1, depth=t.request_fifo)           # W bursts: all strobes
        m.submodules.wdq = wdq = fifo.SyncFIFO(width=8 * B + B, depth=t.w_fifo)          # W beats
        issue = Signal(tick_w)
        w_full = Signal(init=1)                   # every strobe of the W burst so far was set

        ar_hs = bus.ar.valid & bus.ar.ready
        w_done = awq.r_rdy & wlq.r_rdy & wq.w_rdy
        rq_in, wq_in = data.View(req, rq.w_data), data.View(req, wq.w_data)
        aw_head = awq.r_data
        m.d.comb += [
            bus.ar.ready.eq(rq.w_rdy),
            rq.w_en.eq(ar_hs),
            rq_in.addr.eq(bus.ar.payload.addr), rq_in.len.eq(bus.ar.payload.len), rq_in.id.eq(bus.ar.payload.id),
            rq_in.flag.eq(self.ar_stream), rq_in.ticket.eq(issue + w_done),
            bus.aw.ready.eq(awq.w_rdy),
            awq.w_en.eq(bus.aw.valid & bus.aw.ready),
            awq.w_data.eq(Cat(bus.aw.payload.addr, bus.aw.payload.len, bus.aw.payload.id)),
            bus.w.ready.eq(wdq.w_rdy),
            wdq.w_en.eq(bus.w.valid & bus.w.ready),
            wdq.w_data.eq(Cat(bus.w.payload.data, bus.w.payload.strb)),
            wlq.w_en.eq(bus.w.valid & bus.w.ready & bus.w.payload.last),
            wlq.w_data.eq(w_full & (bus.w.payload.strb == full_strb)),
            wq.w_en.eq(w_done), awq.r_en.eq(w_done), wlq.r_en.eq(w_done),
            wq_in.addr.eq(aw_head[:AW]), wq_in.len.eq(aw_head[AW:AW + 8]), wq_in.id.eq(aw_head[AW + 8:]),
            wq_in.flag.eq(wlq.r_data), wq_in.ticket.eq(issue),
        ]
        m.d.sync += issue.eq(issue + w_done + ar_hs)
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += w_full.eq(Mux(bus.w.payload.last, 1, w_full & (bus.w.payload.strb == full_strb)))

        # ---- 2. line generator -> S1 --------------------------------------------------------------
        serve = Signal(tick_w)
        rh, wh = data.View(req, rq.r_data), data.View(req, wq.r_data)
        pick_r = rq.r_rdy & (rh.ticket == serve)
        pick_w = ~pick_r & wq.r_rdy & (wh.ticket == serve)
        have = pick_r | pick_w
        head = data.View(req, Mux(pick_r, rq.r_data, wq.r_data))
        g_active = Signal()
        g_line, g_first, g_rem = Signal(AW - off), Signal(max(lb, 1)), Signal(9)
        cur_line, cur_first, cur_rem = Signal(AW - off), Signal(max(lb, 1)), Signal(9)
        cur_cnt, span = Signal(cnt_w), Signal(cnt_w)
        m.d.comb += [
            cur_line.eq(Mux(g_active, g_line, head.addr[off:])),
            cur_first.eq(Mux(g_active, g_first, head.addr[beat_lsb:off] if lb else 0)),
            cur_rem.eq(Mux(g_active, g_rem, head.len + 1)),
            span.eq(L - cur_first),
            cur_cnt.eq(Mux(cur_rem < span, cur_rem, span)),
        ]
        cur_last = cur_rem <= span

        s1 = Signal(data.StructLayout({"line": AW - off, "first": max(lb, 1), "cnt": cnt_w, "last": 1,
                                       "write": 1, "id": id_w, "flag": 1}))
        s1_valid = Signal()
        s1_go = Signal()
        init = Signal(init=1)                 # after reset: every set is written empty, one per cycle
        init_set = Signal(max(sb, 1))
        load = have & (~s1_valid | s1_go) & ~init
        with m.If(load):
            m.d.sync += [s1.line.eq(cur_line), s1.first.eq(cur_first), s1.cnt.eq(cur_cnt), s1.last.eq(cur_last),
                         s1.write.eq(pick_w), s1.id.eq(head.id), s1.flag.eq(head.flag)]
            with m.If(cur_last):
                m.d.sync += [g_active.eq(0), serve.eq(serve + 1)]
                m.d.comb += [rq.r_en.eq(pick_r), wq.r_en.eq(pick_w)]
            with m.Else():
                m.d.sync += [g_active.eq(1), g_line.eq(cur_line + 1), g_first.eq(0), g_rem.eq(cur_rem - cur_cnt)]
        with m.If(load):
            m.d.sync += s1_valid.eq(1)
        with m.Elif(s1_go):
            m.d.sync += s1_valid.eq(0)

        # ---- tag RAM ------------------------------------------------------------------------------
        way_bits = 2 + tag_bits
        tag_width = W * way_bits + W * age_bits
        m.submodules.tags = tags = memory.Memory(shape=tag_width, depth=S, init=[])
        tw = tags.write_port()
        tr = tags.read_port(transparent_for=(tw,))
        set_of = lambda line: line[:sb] if sb else Const(0, 1)          # noqa: E731
        m.d.comb += tr.addr.eq(Mux(load, set_of(cur_line), set_of(s1.line)))
        word = tr.data
        valid = [word[w * way_bits] for w in range(W)]
        dirty = [word[w * way_bits + 1] for w in range(W)]
        tagv = [word[w * way_bits + 2:(w + 1) * way_bits] for w in range(W)]
        ages = [word[W * way_bits + w * age_bits:W * way_bits + (w + 1) * age_bits] for w in range(W)]
        s1_set, s1_tag = set_of(s1.line), s1.line[sb:]

        hitv = Cat(*[valid[w] & (tagv[w] == s1_tag) for w in range(W)])
        hit = hitv.any()
        hit_way, empty_way, lru_way = Signal(max(wb_bits, 1)), Signal(max(wb_bits, 1)), Signal(max(wb_bits, 1))
        for w in reversed(range(W)):
            with m.If(hitv[w]):
                m.d.comb += hit_way.eq(w)
            with m.If(~valid[w]):
                m.d.comb += empty_way.eq(w)
            if lru:
                with m.If(ages[w] == W - 1):
                    m.d.comb += lru_way.eq(w)
        full_set = Cat(*valid).all()
        lfsr = Signal(16, init=LFSR_SEED)
        lfsr_next = Mux(lfsr[0], (lfsr >> 1) ^ LFSR_POLY, lfsr >> 1)
        if lru:
            evict_way = lru_way
        elif W > 1:
            evict_way = lfsr_next[:wb_bits]
        else:
            evict_way = Const(0, 1)
        victim = Mux(full_set, evict_way, empty_way)

        wr = s1.write
        pw_push = Signal()
        pw_in = Signal(AW - off)
        stream_miss = Signal()
        do_alloc, need_fill, evict, wb = Signal(), Signal(), Signal(), Signal()
        full_line = (s1.first == 0) & (s1.cnt == L) & s1.flag
        m.d.comb += [
            stream_miss.eq(~hit & ~wr & s1.flag if bypass_on else 0),
            do_alloc.eq(~hit & ~stream_miss & (~wr if not write_back else 1)),
            need_fill.eq((do_alloc & ~(wr & full_line)) | stream_miss),
            evict.eq(do_alloc & full_set),
        ]
        way = Signal(max(wb_bits, 1))
        m.d.comb += way.eq(Mux(hit, hit_way, victim))
        m.d.comb += wb.eq(evict & Cat(*dirty).bit_select(victim, 1) if write_back else 0)
        victim_tag = Signal(tag_bits)
        for w in range(W):
            with m.If(victim == w):
                m.d.comb += victim_tag.eq(tagv[w])
        m.d.comb += [pw_push.eq(wb | (wr if not write_back else 0)),
                     pw_in.eq(Mux(wb, Cat(s1_set if sb else Const(0, 0), victim_tag), s1.line))]

        mshr_used = Signal(range(t.mshrs + 1))
        line_used = Signal(range(t.line_queue + 1))
        mshr_free = Signal()
        line_pop = Signal()
        # HBM writes in flight (write-backs and write-through writes, from S1 to their B on the master): a fill
        # of such a line waits for the write's B, so that it cannot read HBM before the write lands
        P = t.pending_writes
        pw_line = [Signal(AW - off, name=f"pw_line{i}") for i in range(P)]
        pw_valid = Signal(P)
        pw_head, pw_tail = Signal(range(P)), Signal(range(P))
        pw_count = Signal(range(P + 1))
        conflict = Cat(*[pw_valid[i] & (pw_line[i] == s1.line) for i in range(P)]).any()
        m.d.comb += s1_go.eq(s1_valid & ~(need_fill & ((mshr_used == t.mshrs) | conflict)) &
                             (line_used != t.line_queue) & ~(pw_push & (pw_count == P)))
        pw_pop = hbm.b.valid & hbm.b.ready
        with m.If(s1_go & pw_push):
            for i in range(P):
                with m.If(pw_tail == i):
                    m.d.sync += pw_line[i].eq(pw_in)
            m.d.sync += pw_tail.eq(Mux(pw_tail == P - 1, 0, pw_tail + 1))
        with m.If(pw_pop):
            m.d.sync += pw_head.eq(Mux(pw_head == P - 1, 0, pw_head + 1))
        m.d.sync += [pw_count.eq(pw_count + (s1_go & pw_push) - pw_pop),
                     pw_valid.eq((pw_valid | Mux(s1_go & pw_push, Const(1, P) << pw_tail, 0)) &
                                 ~Mux(pw_pop, Const(1, P) << pw_head, 0))]

        # new tag word
        new = Signal(tag_width)
        touch = hit | do_alloc
        parts = []
        for w in range(W):
            sel = way == w
            new_dirty = Mux(hit, dirty[w] | (wr if write_back else 0), wr if write_back else 0)
            parts.append(Mux(sel, Cat(Const(1, 1), new_dirty, s1_tag),
                             Cat(valid[w], dirty[w], tagv[w])))
        if age_bits:
            old = Signal(age_bits + 1)
            m.d.comb += old.eq(Mux(Cat(*valid).bit_select(way, 1), Cat(*ages).word_select(way, age_bits), W))
            for w in range(W):
                parts.append(Mux(way == w, 0, Mux(valid[w] & (ages[w] < old), ages[w] + 1, ages[w]))[:age_bits])
        m.d.comb += [new.eq(Cat(*parts)), tw.addr.eq(Mux(init, init_set, s1_set)), tw.data.eq(Mux(init, 0, new)),
                     tw.en.eq(init | (s1_go & touch))]
        with m.If(init):
            m.d.sync += init_set.eq(init_set + 1)
            with m.If(init_set == S - 1):
                m.d.sync += init.eq(0)
        if c3.replacement == "random" and W > 1:
            with m.If(s1_go & evict):
                m.d.sync += lfsr.eq(lfsr_next)

        for name, cond in (("hits", hit), ("misses", ~hit), ("evictions", evict), ("writebacks", wb),
                           ("bypassed", stream_miss)):
            counter = getattr(self, name)
            with m.If(s1_go & cond):
                m.d.sync += counter.eq(counter + 1)

        # ---- 3. fills -------------------------------------------------------------------------------
        m.submodules.mar = mar = fifo.SyncFIFO(width=AW + 8, depth=max(t.mshrs, 2))
        m.submodules.fillq = fillq = fifo.SyncFIFO(width=8 * B, depth=t.mshrs * L)
        line_addr = Cat(Const(0, off), s1.line)
        m.d.comb += [
            mar.w_en.eq(s1_go & need_fill),
            mar.w_data.eq(Cat(Mux(stream_miss, line_addr | (s1.first << beat_lsb) if lb else line_addr, line_addr),
                              Mux(stream_miss, s1.cnt - 1, L - 1))),
            hbm.ar.valid.eq(mar.r_rdy), hbm.ar.payload.addr.eq(mar.r_data[:AW]),
            hbm.ar.payload.len.eq(mar.r_data[AW:]), hbm.ar.payload.id.eq(0),
            hbm.ar.payload.size.eq(beat_lsb), hbm.ar.payload.burst.eq(BURST_INCR),
            mar.r_en.eq(hbm.ar.ready),
            hbm.r.ready.eq(fillq.w_rdy), fillq.w_en.eq(hbm.r.valid), fillq.w_data.eq(hbm.r.payload.data),
        ]
        m.d.sync += mshr_used.eq(mshr_used + (s1_go & need_fill) - mshr_free)
        m.d.sync += line_used.eq(line_used + s1_go - line_pop)

        # ---- 4. delay line -> line queue -------------------------------------------------------------
        ent = data.StructLayout({"write": 1, "id": id_w, "last": 1, "first": max(lb, 1), "cnt": cnt_w,
                                 "way": max(wb_bits, 1), "line": AW - off, "victim_tag": tag_bits,
                                 "fill": 1, "stream": 1, "present": 1, "wt": 1, "wb": 1})
        e_in = Signal(ent)
        m.d.comb += [e_in.write.eq(wr), e_in.id.eq(s1.id), e_in.last.eq(s1.last), e_in.first.eq(s1.first),
                     e_in.cnt.eq(s1.cnt), e_in.way.eq(way), e_in.line.eq(s1.line), e_in.victim_tag.eq(victim_tag),
                     e_in.fill.eq(need_fill), e_in.stream.eq(stream_miss), e_in.present.eq(touch),
                     e_in.wt.eq(wr if not write_back else 0), e_in.wb.eq(wb)]
        valid_d, ent_d = s1_go, e_in.as_value()
        for i in range(t.hit_delay):
            v, e = Signal(name=f"delay{i}_valid"), Signal(ent.size, name=f"delay{i}")
            m.d.sync += [v.eq(valid_d), e.eq(ent_d)]
            valid_d, ent_d = v, e
        m.submodules.lq = lq = fifo.SyncFIFO(width=ent.size, depth=t.line_queue)
        m.d.comb += [lq.w_en.eq(valid_d), lq.w_data.eq(ent_d)]

        # ---- 5. data stage --------------------------------------------------------------------------
        m.submodules.array = array = memory.Memory(shape=8 * B, depth=S * W * L, init=[])
        aw_port = array.write_port(granularity=8)
        ar_port = array.read_port(transparent_for=(aw_port,))
        m.submodules.rout = rout = fifo.SyncFIFO(width=8 * B + id_w + 1, depth=4)
        m.submodules.bout = bout = fifo.SyncFIFO(width=id_w, depth=4)
        m.submodules.maw = maw = fifo.SyncFIFO(width=AW + 8, depth=4)
        m.submodules.mw = mw = fifo.SyncFIFO(width=8 * B + B + 1, depth=4)

        e = data.View(ent, lq.r_data)
        in_wb = Signal()                    # the dirty victim's beats are not all read out yet
        k = Signal(cnt_w)                   # micro-ops done in the current phase
        wb_done = Signal()
        m.d.comb += in_wb.eq(e.wb & ~wb_done)
        whole = e.fill & ~e.stream          # an allocating fill: every beat of the line
        start = Mux(in_wb | whole, 0, e.first)
        length = Mux(in_wb | whole, L, e.cnt)
        beat = Signal(max(lb, 1))
        m.d.comb += beat.eq(start + k)
        covered = (beat >= e.first) & (beat < e.first + e.cnt)
        last_uop = k == length - 1
        wdata, wstrb = wdq.r_data[:8 * B], wdq.r_data[8 * B:]
        fdata = fillq.r_data

        # output register (P): what the micro-op of the previous cycle pushes now
        p_r, p_r_ram, p_r_last, p_id = Signal(), Signal(), Signal(), Signal(id_w)
        p_data, p_strb = Signal(8 * B), Signal(B)
        p_mw, p_mw_ram, p_mw_last = Signal(), Signal(), Signal()
        p_aw, p_aw_addr, p_aw_len = Signal(), Signal(AW), Signal(8)
        p_b = Signal()

        # which outputs this micro-op makes
        is_read = ~in_wb & ~e.write
        is_write = ~in_wb & e.write
        use_fill = ~in_wb & e.fill
        use_w = is_write & covered
        to_r = is_read & covered
        to_mw = in_wb | (is_write & e.wt & covered)
        first_mw = (in_wb & (k == 0)) | (is_write & e.wt & (beat == e.first))
        to_b = is_write & e.last & last_uop
        room = ((~to_r | (rout.level + p_r < rout.depth)) & (~to_mw | (mw.level + p_mw < mw.depth)) &
                (~first_mw | (maw.level + p_aw < maw.depth)) & (~to_b | (bout.level + p_b < bout.depth)))
        uop = lq.r_rdy & (~use_fill | fillq.r_rdy) & room

        index = lambda w_, b_: Cat(b_ if lb else Const(0, 0), w_ if wb_bits else Const(0, 0),  # noqa: E731
                                   set_of(e.line) if sb else Const(0, 0))
        merged = Cat(*[Mux(use_w & wstrb[i], wdata.word_select(i, 8), fdata.word_select(i, 8)) for i in range(B)])
        write_ram = is_write & e.present & ~e.fill & covered
        fill_ram = use_fill & ~e.stream
        m.d.comb += [
            ar_port.addr.eq(index(e.way, beat)),
            aw_port.addr.eq(index(e.way, beat)),
            aw_port.data.eq(Mux(fill_ram, merged, wdata)),
            aw_port.en.eq(Mux(uop & (fill_ram | write_ram), Mux(fill_ram, full_strb, wstrb), 0)),
            fillq.r_en.eq(uop & use_fill),
            wdq.r_en.eq(uop & use_w),
            mshr_free.eq(uop & use_fill & last_uop),
        ]
        with m.If(uop):
            with m.If(last_uop):
                with m.If(in_wb):
                    m.d.sync += [wb_done.eq(1), k.eq(0)]
                with m.Else():
                    m.d.sync += [wb_done.eq(0), k.eq(0)]
                    m.d.comb += [lq.r_en.eq(1), line_pop.eq(1)]
            with m.Else():
                m.d.sync += k.eq(k + 1)

        wb_addr = Cat(Const(0, off), set_of(e.line) if sb else Const(0, 0), e.victim_tag)
        wt_addr = Cat(Const(0, off), e.line) | ((e.first << beat_lsb) if lb else 0)
        m.d.sync += [
            p_r.eq(uop & to_r), p_r_ram.eq(~use_fill), p_r_last.eq(e.last & (beat == e.first + e.cnt - 1)),
            p_id.eq(e.id), p_data.eq(Mux(use_fill, fdata, wdata)), p_strb.eq(Mux(in_wb, full_strb, wstrb)),
            p_mw.eq(uop & to_mw), p_mw_ram.eq(in_wb), p_mw_last.eq(Mux(in_wb, k == L - 1, beat == e.first + e.cnt - 1)),
            p_aw.eq(uop & first_mw), p_aw_addr.eq(Mux(in_wb, wb_addr, wt_addr)),
            p_aw_len.eq(Mux(in_wb, L - 1, e.cnt - 1)),
            p_b.eq(uop & to_b),
        ]
        m.d.comb += [
            rout.w_en.eq(p_r), rout.w_data.eq(Cat(Mux(p_r_ram, ar_port.data, p_data), p_id, p_r_last)),
            bout.w_en.eq(p_b), bout.w_data.eq(p_id),
            mw.w_en.eq(p_mw), mw.w_data.eq(Cat(Mux(p_mw_ram, ar_port.data, p_data), p_strb, p_mw_last)),
            maw.w_en.eq(p_aw), maw.w_data.eq(Cat(p_aw_addr, p_aw_len)),
            # slave responses
            bus.r.valid.eq(rout.r_rdy), bus.r.payload.data.eq(rout.r_data[:8 * B]),
            bus.r.payload.id.eq(rout.r_data[8 * B:8 * B + id_w]), bus.r.payload.last.eq(rout.r_data[-1]),
            bus.r.payload.resp.eq(0), rout.r_en.eq(bus.r.ready),
            bus.b.valid.eq(bout.r_rdy), bus.b.payload.id.eq(bout.r_data), bus.b.payload.resp.eq(0),
            bout.r_en.eq(bus.b.ready),
            # master writes
            hbm.aw.valid.eq(maw.r_rdy), hbm.aw.payload.addr.eq(maw.r_data[:AW]),
            hbm.aw.payload.len.eq(maw.r_data[AW:]), hbm.aw.payload.id.eq(0),
            hbm.aw.payload.size.eq(beat_lsb), hbm.aw.payload.burst.eq(BURST_INCR), maw.r_en.eq(hbm.aw.ready),
            hbm.w.valid.eq(mw.r_rdy), hbm.w.payload.data.eq(mw.r_data[:8 * B]),
            hbm.w.payload.strb.eq(mw.r_data[8 * B:8 * B + B]), hbm.w.payload.last.eq(mw.r_data[-1]),
            mw.r_en.eq(hbm.w.ready),
            hbm.b.ready.eq(1),
        ]
        return m


__all__ = ["LFSR_POLY", "LFSR_SEED", "MIN_HIT_CYCLES", "L3Cache", "L3Timing"]
