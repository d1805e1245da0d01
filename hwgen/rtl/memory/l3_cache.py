"""The L3 shared cache: an AXI4 slave toward the engines' DMA, an AXI4 master toward HBM.

Everything comes from ``cfg.l3`` (bytes, line_bytes, ways, banks, mshrs, replacement, write_policy, bypass,
hit_cycles), ``cfg.beat_bytes`` (one AXI beat) and ``cfg.memory`` (outstanding, burst_beats: the request
buffers). ``L3Timing.of(cfg)`` (``hwgen/spec/l3.py``) holds every derived number; ``sim/model/memory/l3.py``
(``L3Ports``) reads it too and reproduces this component's timing cycle for cycle.

With ``memory.ports`` P > 1 the top instantiates one ``L3Cache(cfg, port=i)`` per HBM port behind the interleaver:
a slice of ``l3.bytes / P`` (``L3Timing`` gives a slice's numbers) that sees only port i's addresses and indexes
its sets without the port bits (see the class). Everything below holds per slice.

Ports: ``bus`` (``In(signatures.hbm_axi(cfg))``, the slave the DMA talks to), ``hbm`` (``Out`` of the same
signature, the master toward HBM), ``ar_stream`` (In(1): sampled with the slave AR handshake, 1 marks a
read-once burst, the AXI ``aruser``-style hint the DMA's ``stream`` bit drives; ignored unless
``l3.bypass = streaming``) and the counters ``hits``, ``misses``, ``evictions``, ``writebacks``,
``bypassed`` (Out(32), line accesses, wrapping), ``flush_writebacks`` (Out(32), lines written back by
flushes), ``ready`` (Out(1): low from reset until the tag RAMs are clear, high from the first cycle the tag
stage can take a line access; see 1.), ``idle`` (Out(1)), ``flush`` (In(1)) and ``flushing`` (Out(1)): see 6.

RAMs. The tag and data arrays are ``l3.banks`` RAM modules each, interleaved by set (set ``s`` lives in bank
``s % banks``, row ``s // banks``), instantiated with ``Instance`` and defined outside the Amaranth design by
``ram_modules(cfg)`` (behavioural Verilog, one file per module; a real flow puts SRAM macros there). Each
has one clock, one read port with a registered output (``rd_data`` holds ``mem[rd_addr]`` of the previous
cycle's enabled read; a read of the row written in the same cycle returns the old contents) and one write
port (the data RAM with byte enables), no reset and no initial contents (see ``RamShape``). The in-order
pipeline touches one set per cycle, so banking changes no timing except the reset clear, which writes one
row of every bank per cycle. The tag stage's view of the word it just wrote (what a transparent RAM would
give) is a bypass register outside the RAM.

Micro-architecture (everything in order; one line access per cycle; cycle numbers as in
``sim/model/memory/axi_port.py``)
---------------------------------------------------------------------------------------------------------
1. Requests. An AR handshake in cycle ``c`` enters the read request FIFO in ``c`` (visible from ``c + 1``).
   AW and W are buffered (W may lead AW); a write is complete in cycle ``c = max(AW, last W handshake)``
   and enters the write request FIFO in ``c + 1`` (visible from ``c + 2``). Tickets keep the order of
   HbmPorts calls: cycle by cycle, the AR before the completed write. ARREADY / AWREADY / WREADY stay high
   while the master keeps at most ``2 x memory.outstanding`` bursts of at most ``memory.burst_beats`` beats
   per direction waiting (the DMA keeps ``outstanding``).
   After reset the tag RAMs are cleared, one row of every bank per cycle (``init_cycles = sets / banks``
   cycles, cycles ``0 .. init_cycles - 1``; RAM contents survive a reset); requests are accepted meanwhile,
   ``ready`` rises and the tag stage starts in cycle ``init_cycles``. A master that waits for ``ready`` before
   its first request sees the timing of ``L3Ports(cfg, cleared=True)`` with cycle 0 = the first ``ready`` cycle.
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
6. Idle and flush. ``idle`` is high in a cycle when ``ready`` is, no flush has been taken and not finished,
   and nothing is in the cache: no request or W beat in the slave buffers, no line access in S1, the delay
   line, the line queue or the data stage, no fill outstanding, no response in the output register or the
   R / B FIFOs (every R beat and B response handshaken by the master) and no HBM write without its B (the
   write-backs of evictions included). ``flush`` is a one-cycle request (a pulse) in cycle ``r``: the flush is
   *taken* in the first cycle ``c >= r`` with ``idle`` high (``c = r`` when the cache is idle then; else it waits
   for the in-flight work to drain, and the master must send no new request, AR, AW or W, before ``c``). A
   ``flush`` while a taken flush runs is ignored; more pulses before the take are one request. ``flushing`` is
   high from ``r + 1`` until the flush is done and low again from ``F``: ``F = c + 2`` when no line is dirty at
   the take (``flushing`` high for one cycle when ``c = r``; a write-through cache is never dirty), else
   ``F = b + 1`` for ``b`` the B handshake of the last flush write-back. Requests keep being accepted into the
   slave buffers while the flush runs; S1 takes none from ``c + 1`` while ``flushing`` is high (the first can
   enter S1 in ``F + 1``). The walk: with ``d > 0`` dirty lines (a counter kept at S1), flush ops enter S1 from
   ``c + 1``, one per cycle unless S1 stalls, for set 0, 1, 2, ...; an op on a set with no dirty line does
   nothing and moves on (one cycle); else it takes the lowest-numbered dirty way, clears its dirty bit (valid,
   tag and LRU ages stay) and sends a write-back entry down the delay line and line queue exactly like an
   eviction's (same S1 stalls: a free line-queue slot and a free ``pending_writes`` slot; ``L`` data micro-ops
   reading the line out to the master AW / W at the normal output timing), then stays on the set while it has
   another dirty way. The walk ends with the op that cleans the ``d``-th line, so with no stalls S1 spends one
   cycle per set up to the last set holding a dirty line plus one per further dirty line in a set; write-backs
   then go out one line per ``L`` cycles. ``L3Ports.flush`` gives ``c`` and ``F`` cycle for cycle.
A lone read hit takes ``hit_cycles`` from its AR handshake to its first RVALID; responses are in request
order on R and on B (the slave answers every ID in order, which AXI allows).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwgen.rtl import signatures
from hwgen.spec.axi import BURST_INCR
from hwgen.spec.l3 import LFSR_POLY, LFSR_SEED, MIN_HIT_CYCLES, L3Timing


@dataclass(frozen=True)
class RamShape:
    """One RAM module of the cache (``banks`` instances of it per array): ``width`` x ``depth`` bits.

    Ports (all synchronous to the rising edge of ``clk``): ``rd_en`` (1), ``rd_addr`` (``addr_bits``),
    ``rd_data`` (``width``; a register: ``mem[rd_addr]`` after a cycle with ``rd_en`` high, held otherwise; a
    read of the row written in the same cycle gives the old contents), ``wr_en`` (``width / 8`` byte enables
    when ``byte_enables``, else 1), ``wr_addr`` (``addr_bits``), ``wr_data`` (``width``). No reset, no initial
    contents."""

    kind: str               # "tag" or "data"
    width: int
    depth: int
    byte_enables: bool

    @property
    def module(self) -> str:
        """Verilog module name (and file name without ``.v``); one per kind and shape."""
        return f"l3_{self.kind}_ram_w{self.width}_d{self.depth}"

    @property
    def addr_bits(self) -> int:
        return max(ceil_log2(self.depth), 1)

    @property
    def we_bits(self) -> int:
        return self.width // 8 if self.byte_enables else 1

    def verilog(self) -> str:
        """Behavioural Verilog of the module (Verilator simulates it; a real flow swaps in a macro)."""
        return ram_verilog(self.module, self.width, self.depth, self.byte_enables, what=f"{self.kind} array")


def ram_verilog(module: str, width: int, depth: int, byte_enables: bool = False, what: str = "RAM") -> str:
    """Verilog text of a single-clock RAM of ``depth`` words of ``width`` bits with the ports of ``RamShape``
    (``byte_enables``: one write enable per byte, ``width`` a multiple of 8). No ``initial`` block: the
    contents are allocated by the simulator at run time and start undefined."""
    for name, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {value!r} is not allowed: must be an integer >= 1")
    if byte_enables and width % 8:
        raise ValueError(f"width: {width} is not allowed with byte enables: must be a multiple of 8")
    ab = max(ceil_log2(depth), 1)
    we = width // 8 if byte_enables else 1
    if byte_enables:
        decl = ["    integer i;"]
        write = [f"        for (i = 0; i < {we}; i = i + 1)",
                 "            if (wr_en[i])",
                 "                mem[wr_addr][i*8 +: 8] <= wr_data[i*8 +: 8];"]
    else:
        decl = []
        write = ["        if (wr_en)",
                 "            mem[wr_addr] <= wr_data;"]
    lines = [
        f"// {module}: L3 cache {what} RAM (hwgen/rtl/memory/l3_cache.py), {depth} words x {width} bits.",
        "// Generated, do not edit. Single clock; read port with a registered output (a read of the word written",
        "// in the same cycle returns the old contents); write port" + (" with byte enables" if byte_enables else "")
        + ". Behavioural:",
        "// no reset, no initial contents. A real flow replaces it by an SRAM macro wrapper with the same ports.",
        f"module {module} (",
        "    input  wire clk,",
        "    input  wire rd_en,",
        f"    input  wire [{ab - 1}:0] rd_addr,",
        f"    output reg  [{width - 1}:0] rd_data,",
        f"    input  wire [{we - 1}:0] wr_en,",
        f"    input  wire [{ab - 1}:0] wr_addr,",
        f"    input  wire [{width - 1}:0] wr_data",
        ");",
        f"    reg [{width - 1}:0] mem [0:{depth - 1}];",
        *decl,
        "    always @(posedge clk) begin",
        "        if (rd_en)",
        "            rd_data <= mem[rd_addr];",
        *write,
        "    end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def ram_shapes(cfg) -> tuple[RamShape, RamShape]:
    """The tag RAM and data RAM modules of ``L3Cache(cfg)`` (each instantiated ``l3.banks`` times).

    Tag RAM: one word per set, ``ways x (valid, dirty, tag)`` then ``ways`` LRU ages (``log2 ways`` bits each,
    LRU only), ``sets / banks`` deep. Data RAM: one beat per word (``8 x beat_bytes`` bits, byte enables),
    ``sets / banks x ways x line_beats`` deep (row = set // banks, way, beat, beat lowest)."""
    t = L3Timing.of(cfg)
    c3 = cfg.l3
    aw = signatures.hbm_axi(cfg).addr_width - t.slice_bits        # a slice sees its addresses without the slice bits
    tag_bits = aw - exact_log2(c3.line_bytes) - exact_log2(t.sets)
    age_bits = exact_log2(t.ways) if c3.replacement == "lru" and t.ways > 1 else 0
    rows = t.sets // t.banks
    tag = RamShape("tag", t.ways * (2 + tag_bits) + t.ways * age_bits, rows, False)
    array = RamShape("data", 8 * cfg.beat_bytes, rows * t.ways * t.line_beats, True)
    return tag, array


def ram_modules(cfg) -> dict[str, str]:
    """``{file name: Verilog text}`` of the RAM modules ``L3Cache(cfg)`` instantiates: write them next to the
    generated top and give them to every tool that reads it (Verilator, Yosys, Vivado)."""
    return {f"{shape.module}.v": shape.verilog() for shape in ram_shapes(cfg)}


class L3Cache(wiring.Component):
    """The L3 cache between ``bus`` (slave) and ``hbm`` (master); see the module docstring for the timing.

    ``port``: with ``memory.ports`` P > 1, this is the slice in front of HBM port ``port`` (``L3Timing.slices``):
    ``l3.bytes / P``, and it only ever sees addresses of that port's interleave chunks. It takes the slice bits
    out of every slave address (``L3Timing.local``: the bits above them move down, so consecutive chunks of the
    port index consecutive sets and every set is used) and puts ``port`` back into every master address
    (``L3Timing.physical``); nothing else changes. A slave address of another port would alias."""

    def __init__(self, cfg, id_width: int | None = None, port: int = 0):
        self.cfg = cfg
        self.timing = L3Timing.of(cfg)
        if not 0 <= port < self.timing.slices:
            raise ValueError(f"port: {port} is not allowed: must be in [0, {self.timing.slices}) (memory.ports)")
        self.port = port
        sig = signatures.hbm_axi(cfg, id_width)   # IDs pass through: as wide as the masters' above
        self.axi = sig
        super().__init__({
            "bus": In(sig), "ar_stream": In(1), "hbm": Out(sig),
            "hits": Out(32), "misses": Out(32), "evictions": Out(32), "writebacks": Out(32), "bypassed": Out(32),
            "ready": Out(1), "flush": In(1), "flushing": Out(1), "idle": Out(1), "flush_writebacks": Out(32),
        })

    @property
    def hit_latency(self) -> int:
        """AR handshake to the first RVALID of a lone read hit."""
        return self.timing.hit_cycles

    @property
    def init_cycles(self) -> int:
        """Cycles from reset to the first cycle ``ready`` is high (the tag RAMs are being cleared)."""
        return self.timing.init_cycles

    def ram_modules(self) -> dict[str, str]:
        """The Verilog of the RAM modules this component instantiates (``ram_modules(cfg)``)."""
        return ram_modules(self.cfg)

    def elaborate(self, platform):
        m = Module()
        cfg, t, sig = self.cfg, self.timing, self.axi
        c3 = cfg.l3
        bus, hbm = self.bus, self.hbm
        B = cfg.beat_bytes
        L, W, S = t.line_beats, t.ways, t.sets
        AW = sig.addr_width - t.slice_bits        # addresses inside the slice (L3Timing.local)
        lo, pb = t.slice_shift, t.slice_bits
        if pb:
            def local(a):                         # the slave address without the slice bits
                return Cat(a[:lo], a[lo + pb:])

            def physical(a):                      # a slice address with the slice bits put back
                return Cat(a[:lo], Const(self.port, pb), a[lo:])
        else:
            local = physical = lambda a: a        # noqa: E731
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
        NB = t.banks
        bb = exact_log2(NB)                       # bank bits: the low bits of the set
        rb = sb - bb                              # row bits within a bank
        tag_shape, data_shape = ram_shapes(cfg)
        set_of = lambda line: line[:sb] if sb else Const(0, 1)          # noqa: E731
        bank_of = lambda set_: set_[:bb] if bb else Const(0, 1)         # noqa: E731
        row_of = lambda set_: set_[bb:sb] if rb else Const(0, 1)        # noqa: E731

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
            rq_in.addr.eq(local(bus.ar.payload.addr)), rq_in.len.eq(bus.ar.payload.len), rq_in.id.eq(bus.ar.payload.id),
            rq_in.flag.eq(self.ar_stream), rq_in.ticket.eq(issue + w_done),
            bus.aw.ready.eq(awq.w_rdy),
            awq.w_en.eq(bus.aw.valid & bus.aw.ready),
            awq.w_data.eq(Cat(local(bus.aw.payload.addr), bus.aw.payload.len, bus.aw.payload.id)),
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
                                       "write": 1, "id": id_w, "flag": 1, "flush": 1}))
        s1_valid = Signal()
        s1_go = Signal()
        init = Signal(init=1)                 # after reset: one row of every bank is written empty per cycle
        init_row = Signal(max(rb, 1))
        flushing = Signal()                   # a flush is taken and not done (the walk, its write-backs)
        f_pend = Signal()                     # a flush was requested while the cache was not idle
        take = Signal()                       # a flush starts this cycle (``(flush | f_pend) & idle``)
        f_next, f_end = Signal(), Signal()    # S1's flush op goes on to the next set / ends the walk
        ndirty = Signal(range(S * W + 1))     # dirty lines in the cache (write-back), counted at S1
        m.d.comb += [self.ready.eq(~init), self.flushing.eq(flushing | f_pend)]
        load = have & (~s1_valid | s1_go) & ~init & ~flushing
        with m.If(load):
            m.d.sync += [s1.line.eq(cur_line), s1.first.eq(cur_first), s1.cnt.eq(cur_cnt), s1.last.eq(cur_last),
                         s1.write.eq(pick_w), s1.id.eq(head.id), s1.flag.eq(head.flag), s1.flush.eq(0)]
            with m.If(cur_last):
                m.d.sync += [g_active.eq(0), serve.eq(serve + 1)]
                m.d.comb += [rq.r_en.eq(pick_r), wq.r_en.eq(pick_w)]
            with m.Else():
                m.d.sync += [g_active.eq(1), g_line.eq(cur_line + 1), g_first.eq(0), g_rem.eq(cur_rem - cur_cnt)]
        with m.If(load):
            m.d.sync += s1_valid.eq(1)
        with m.Elif(take & (ndirty != 0)):  # the flush walk starts with set 0 (S1 is empty: the cache is idle)
            m.d.sync += [s1_valid.eq(1), s1.flush.eq(1), s1.line.eq(0)]
        with m.Elif(s1_go & s1.flush):      # next flush op: the same set again, the next set, or the end
            with m.If(f_end):
                m.d.sync += [s1_valid.eq(0), s1.flush.eq(0)]
            with m.Elif(f_next):
                m.d.sync += s1.line.eq(s1.line + 1)
        with m.Elif(s1_go):
            m.d.sync += s1_valid.eq(0)

        # ---- tag RAMs (read side; the instances follow the new tag word) --------------------------
        way_bits = 2 + tag_bits
        tag_width = W * way_bits + W * age_bits
        assert tag_width == tag_shape.width
        rd_set = Signal(max(sb, 1))               # the set read this cycle, seen by S1 in the next
        rd_bank = Signal(max(bb, 1))              # its bank, registered with the RAM outputs
        tag_q = [Signal(tag_width, name=f"tag_q{b}") for b in range(NB)]
        fwd, fwd_word = Signal(), Signal(tag_width)      # the set read was written in the same cycle
        word = Signal(tag_width)
        m.d.comb += [rd_set.eq(Mux(load, set_of(cur_line), Mux(take, 0, Mux(s1_go & s1.flush & f_next,
                                                                              set_of(s1.line + 1), set_of(s1.line))))),
                     word.eq(Mux(fwd, fwd_word, Cat(*tag_q).word_select(rd_bank, tag_width) if NB > 1 else tag_q[0]))]
        m.d.sync += rd_bank.eq(bank_of(rd_set))
        valid = [word[w * way_bits] for w in range(W)]
        dirty = [word[w * way_bits + 1] for w in range(W)]
        tagv = [word[w * way_bits + 2:(w + 1) * way_bits] for w in range(W)]
        ages = [word[W * way_bits + w * age_bits:W * way_bits + (w + 1) * age_bits] for w in range(W)]
        s1_set, s1_tag = set_of(s1.line), s1.line[sb:]

        fl = s1.flush                             # S1 holds a flush op (set s1_set), not a line access
        hitv = Cat(*[valid[w] & (tagv[w] == s1_tag) for w in range(W)])
        hit = hitv.any() & ~fl
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
        # flush op: write back the lowest-numbered dirty way of the set (write-back only; else nothing is dirty)
        dmask = Cat(*[valid[w] & dirty[w] for w in range(W)]) if write_back else Const(0, W)
        f_way = Signal(max(wb_bits, 1))
        for w in reversed(range(W)):
            with m.If(dmask[w]):
                m.d.comb += f_way.eq(w)
        f_wb = Signal()                           # this flush op writes a line back
        f_more = Signal()                         # another dirty way is left in the set after it
        m.d.comb += [f_wb.eq(fl & dmask.any()), f_more.eq((dmask & (dmask - 1)[:W]).any())]

        wr = s1.write
        pw_push = Signal()
        pw_in = Signal(AW - off)
        stream_miss = Signal()
        do_alloc, need_fill, evict, wb = Signal(), Signal(), Signal(), Signal()
        full_line = (s1.first == 0) & (s1.cnt == L) & s1.flag
        m.d.comb += [
            stream_miss.eq(~hit & ~wr & s1.flag & ~fl if bypass_on else 0),
            do_alloc.eq(~hit & ~stream_miss & ~fl & (~wr if not write_back else 1)),
            need_fill.eq((do_alloc & ~(wr & full_line)) | stream_miss),
            evict.eq(do_alloc & full_set),
        ]
        way = Signal(max(wb_bits, 1))
        m.d.comb += way.eq(Mux(fl, f_way, Mux(hit, hit_way, victim)))
        m.d.comb += wb.eq(evict & Cat(*dirty).bit_select(victim, 1) if write_back else 0)
        victim_tag = Signal(tag_bits)             # the line written back: the victim's, or the flush op's
        for w in range(W):
            with m.If(Mux(fl, f_way, victim) == w):
                m.d.comb += victim_tag.eq(tagv[w])
        m.d.comb += [pw_push.eq(wb | f_wb | (wr & ~fl if not write_back else 0)),
                     pw_in.eq(Mux(wb | f_wb, Cat(s1_set if sb else Const(0, 0), victim_tag), s1.line))]

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
        lq_push = ~fl | f_wb                      # S1 makes a line queue entry (a flush op only to write back)
        m.d.comb += s1_go.eq(s1_valid & ~(need_fill & ((mshr_used == t.mshrs) | conflict)) &
                             ~(lq_push & (line_used == t.line_queue)) & ~(pw_push & (pw_count == P)))
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

        # new tag word -> tag RAMs (during the clear: row init_row of every bank)
        new = Signal(tag_width)
        tag_we = Signal()
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
        cleaned = Cat(*[Cat(valid[w], dirty[w] & (f_way != w), tagv[w]) for w in range(W)], word[W * way_bits:])
        m.d.comb += [new.eq(Mux(fl, cleaned, Cat(*parts))), tag_we.eq(s1_go & (touch | f_wb))]
        for b in range(NB):
            m.submodules[f"tag_ram{b}"] = Instance(
                tag_shape.module, i_clk=ClockSignal("sync"),
                i_rd_en=bank_of(rd_set) == b, i_rd_addr=row_of(rd_set), o_rd_data=tag_q[b],
                i_wr_en=init | (tag_we & (bank_of(s1_set) == b)), i_wr_addr=Mux(init, init_row, row_of(s1_set)),
                i_wr_data=Mux(init, 0, new))
        m.d.sync += [fwd.eq(tag_we & (s1_set == rd_set)), fwd_word.eq(new)]
        with m.If(init):
            m.d.sync += init_row.eq(init_row + 1)
            with m.If(init_row == S // NB - 1):
                m.d.sync += init.eq(0)
        if c3.replacement == "random" and W > 1:
            with m.If(s1_go & evict):
                m.d.sync += lfsr.eq(lfsr_next)

        # dirty lines in the cache (write-back): a write makes a clean line dirty, a write-back cleans one
        if write_back:
            dirtied = wr & ~fl & Mux(hit, ~Cat(*dirty).bit_select(hit_way, 1), do_alloc)
            m.d.sync += ndirty.eq(ndirty + (s1_go & dirtied) - (s1_go & (wb | f_wb)))
        # the flush walk: ends with the op that cleans the last dirty line; else stays on the set while it has
        # another dirty way, then goes on to the next set
        m.d.comb += [f_end.eq(f_wb & (ndirty == 1)), f_next.eq(~f_wb | ~f_more)]

        for name, cond in (("hits", hit), ("misses", ~hit & ~fl), ("evictions", evict), ("writebacks", wb),
                           ("bypassed", stream_miss), ("flush_writebacks", f_wb)):
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
            hbm.ar.valid.eq(mar.r_rdy), hbm.ar.payload.addr.eq(physical(mar.r_data[:AW])),
            hbm.ar.payload.len.eq(mar.r_data[AW:]), hbm.ar.payload.id.eq(0),
            hbm.ar.payload.size.eq(beat_lsb), hbm.ar.payload.burst.eq(BURST_INCR),
            mar.r_en.eq(hbm.ar.ready),
            hbm.r.ready.eq(fillq.w_rdy), fillq.w_en.eq(hbm.r.valid), fillq.w_data.eq(hbm.r.payload.data),
        ]
        m.d.sync += mshr_used.eq(mshr_used + (s1_go & need_fill) - mshr_free)
        m.d.sync += line_used.eq(line_used + (s1_go & lq_push) - line_pop)

        # ---- 4. delay line -> line queue -------------------------------------------------------------
        ent = data.StructLayout({"write": 1, "id": id_w, "last": 1, "first": max(lb, 1), "cnt": cnt_w,
                                 "way": max(wb_bits, 1), "line": AW - off, "victim_tag": tag_bits,
                                 "fill": 1, "stream": 1, "present": 1, "wt": 1, "wb": 1, "flush": 1})
        e_in = Signal(ent)
        m.d.comb += [e_in.write.eq(wr), e_in.id.eq(s1.id), e_in.last.eq(s1.last), e_in.first.eq(s1.first),
                     e_in.cnt.eq(s1.cnt), e_in.way.eq(way), e_in.line.eq(s1.line), e_in.victim_tag.eq(victim_tag),
                     e_in.fill.eq(need_fill), e_in.stream.eq(stream_miss), e_in.present.eq(touch),
                     e_in.wt.eq(wr & ~fl if not write_back else 0), e_in.wb.eq(wb | f_wb), e_in.flush.eq(fl)]
        valid_d, ent_d = s1_go & lq_push, e_in.as_value()
        for i in range(t.hit_delay):
            v, e = Signal(name=f"delay{i}_valid"), Signal(ent.size, name=f"delay{i}")
            m.d.sync += [v.eq(valid_d), e.eq(ent_d)]
            valid_d, ent_d = v, e
        m.submodules.lq = lq = fifo.SyncFIFO(width=ent.size, depth=t.line_queue)
        m.d.comb += [lq.w_en.eq(valid_d), lq.w_data.eq(ent_d)]

        # ---- 5. data stage --------------------------------------------------------------------------
        m.submodules.rout = rout = fifo.SyncFIFO(width=8 * B + id_w + 1, depth=t.response_fifo)
        m.submodules.bout = bout = fifo.SyncFIFO(width=id_w, depth=t.response_fifo)
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

        merged = Cat(*[Mux(use_w & wstrb[i], wdata.word_select(i, 8), fdata.word_select(i, 8)) for i in range(B)])
        write_ram = is_write & e.present & ~e.fill & covered
        fill_ram = use_fill & ~e.stream
        # data RAMs: bank set % banks, row (set // banks, way, beat); read and written by the current micro-op
        e_set = set_of(e.line)
        d_row, d_we, d_wdata = Signal(data_shape.addr_bits), Signal(B), Signal(8 * B)
        d_bank, d_bank_q = Signal(max(bb, 1)), Signal(max(bb, 1))
        ram_data = Signal(8 * B)                 # the word read by the previous cycle's micro-op
        d_q = [Signal(8 * B, name=f"data_q{b}") for b in range(NB)]
        m.d.comb += [
            d_row.eq(Cat(beat if lb else Const(0, 0), e.way if wb_bits else Const(0, 0),
                         e_set[bb:sb] if rb else Const(0, 0))),
            d_bank.eq(bank_of(e_set)),
            d_wdata.eq(Mux(fill_ram, merged, wdata)),
            d_we.eq(Mux(uop & (fill_ram | write_ram), Mux(fill_ram, full_strb, wstrb), 0)),
            ram_data.eq(Cat(*d_q).word_select(d_bank_q, 8 * B) if NB > 1 else d_q[0]),
        ]
        m.d.sync += d_bank_q.eq(d_bank)
        for b in range(NB):
            m.submodules[f"data_ram{b}"] = Instance(
                data_shape.module, i_clk=ClockSignal("sync"),
                i_rd_en=d_bank == b, i_rd_addr=d_row, o_rd_data=d_q[b],
                i_wr_en=Mux(d_bank == b, d_we, 0), i_wr_addr=d_row, i_wr_data=d_wdata)
        m.d.comb += [
            fillq.r_en.eq(uop & use_fill),
            wdq.r_en.eq(uop & use_w),
            mshr_free.eq(uop & use_fill & last_uop),
        ]
        with m.If(uop):
            with m.If(last_uop):
                with m.If(in_wb & ~e.flush):
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
            rout.w_en.eq(p_r), rout.w_data.eq(Cat(Mux(p_r_ram, ram_data, p_data), p_id, p_r_last)),
            bout.w_en.eq(p_b), bout.w_data.eq(p_id),
            mw.w_en.eq(p_mw), mw.w_data.eq(Cat(Mux(p_mw_ram, ram_data, p_data), p_strb, p_mw_last)),
            maw.w_en.eq(p_aw), maw.w_data.eq(Cat(p_aw_addr, p_aw_len)),
            # slave responses
            bus.r.valid.eq(rout.r_rdy), bus.r.payload.data.eq(rout.r_data[:8 * B]),
            bus.r.payload.id.eq(rout.r_data[8 * B:8 * B + id_w]), bus.r.payload.last.eq(rout.r_data[-1]),
            bus.r.payload.resp.eq(0), rout.r_en.eq(bus.r.ready),
            bus.b.valid.eq(bout.r_rdy), bus.b.payload.id.eq(bout.r_data), bus.b.payload.resp.eq(0),
            bout.r_en.eq(bus.b.ready),
            # master writes
            hbm.aw.valid.eq(maw.r_rdy), hbm.aw.payload.addr.eq(physical(maw.r_data[:AW])),
            hbm.aw.payload.len.eq(maw.r_data[AW:]), hbm.aw.payload.id.eq(0),
            hbm.aw.payload.size.eq(beat_lsb), hbm.aw.payload.burst.eq(BURST_INCR), maw.r_en.eq(hbm.aw.ready),
            hbm.w.valid.eq(mw.r_rdy), hbm.w.payload.data.eq(mw.r_data[:8 * B]),
            hbm.w.payload.strb.eq(mw.r_data[8 * B:8 * B + B]), hbm.w.payload.last.eq(mw.r_data[-1]),
            mw.r_en.eq(hbm.w.ready),
            hbm.b.ready.eq(1),
        ]

        # ---- 6. idle and flush -----------------------------------------------------------------------
        # idle: nothing buffered, in the pipeline, on an output or in flight on the master (B of every HBM write
        # received); the clear is done and no flush runs
        idle = Signal()
        m.d.comb += [
            idle.eq(~init & ~flushing & ~rq.r_rdy & ~wq.r_rdy & ~awq.r_rdy & ~wlq.r_rdy & ~wdq.r_rdy & ~g_active &
                    ~s1_valid & (line_used == 0) & (mshr_used == 0) & (pw_count == 0) & ~mar.r_rdy & ~fillq.r_rdy &
                    ~p_r & ~p_b & ~p_mw & ~p_aw & ~rout.r_rdy & ~bout.r_rdy & ~maw.r_rdy & ~mw.r_rdy),
            self.idle.eq(idle),
            take.eq((self.flush | f_pend) & idle),
        ]
        # a request while the cache is busy waits in f_pend (a request while a flush runs is ignored); flushing:
        # from the cycle after the take until the cycle after the last flush write-back's B handshake (the walk
        # is over, the data stage done, every HBM write's B received, counting the one of this cycle)
        with m.If(take):
            m.d.sync += [flushing.eq(1), f_pend.eq(0)]
        with m.Elif(self.flush & ~flushing):
            m.d.sync += f_pend.eq(1)
        with m.If(flushing & ~s1_valid & (line_used == 0) & (pw_count == pw_pop)):
            m.d.sync += flushing.eq(0)
        return m


__all__ = ["LFSR_POLY", "LFSR_SEED", "MIN_HIT_CYCLES", "L3Cache", "L3Timing", "RamShape", "ram_modules", "ram_shapes",
           "ram_verilog"]
