"""Row unit: computes one job, C[i, j*L : j*L+L] = sum_k A[i,k] * B[k, j*L : j*L+L].

Front end (one job at a time):
  fetch    reads scan word w of row i (W elements of dense A, or W bits of its bitmask) from L1;
  detect   marks the elements that count (nonzero and |a| >= threshold; every in-range one for gemm);
  encode   the zero compactor emits one marked element per cycle, lowest k first. A word with no
           marked element costs one cycle, a zero inside a word costs none.
Back end (pipelined behind the front end, so the next job starts while this one drains):
  read B[k, block j] (and, for bitmask, the packed value) -> MacLanes -> result held for the writer.

Timing, read by the simulator from the properties below (Σ = sum over words of max(1, marked)):
  job accepted in cycle td  -> last encode cycle te = td + front_latency + Σ - 1;
  the unit takes a new job from max(te, td + min_period) on; result ready in cycle te + result_latency.
``min_period(cfg)`` = R keeps results from one unit at least R cycles apart, so the round-robin writer
(one slot per unit every R cycles) never stalls a unit.
"""
from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import isa
from .layout import PTR_BYTES, Layout, log2
from .mac_lanes import MacLanes
from .scratchpad import Scratchpad
from .zero_compactor import ZeroCompactor

DIM_BITS = 16  # m, k, n in the descriptor


class RowUnit(wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        self._lay = Layout.of(cfg)
        W, L = cfg.line_bytes, cfg.engine.lanes
        aw = ceil_log2(cfg.l1_lines)
        port = In(memory.ReadPort.Signature(addr_width=aw, shape=W * 8))
        self.mac_latency = MacLanes.latency
        super().__init__({
            "task": In(isa.descriptor_layout()),
            "nw": In(DIM_BITS), "nbl": In(DIM_BITS), "nbj": In(DIM_BITS),
            "job_valid": In(1), "job_i": In(DIM_BITS), "job_j": In(DIM_BITS),
            "free": Out(1),
            "quiet": Out(1),           # no job and nothing in flight
            "a_port": port, "v_port": port, "b_port": port,
            "result": Out(data.ArrayLayout(signed(cfg.engine.acc_bits), L)),
            "result_line": Out(ceil_log2(cfg.out_lines)),
            "result_pending": Out(1),
            "result_taken": In(1),
            "elem": Out(1),            # strobe: one marked element emitted this cycle
        })

    # ---- timing contract (the simulator reads these) ----
    #: cycles from accepting a job to its first encode cycle: latch the job, read word 0, detect it
    front_latency = 1 + Scratchpad.READ_LATENCY + 1
    #: cycles from the last encode cycle to the result being ready: read B, then the MAC pipeline
    result_latency = Scratchpad.READ_LATENCY + MacLanes.latency

    @staticmethod
    def min_period(cfg) -> int:
        """Shortest time between two jobs on one unit: R, one round of the output writer."""
        return cfg.engine.rows

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._cfg, self._lay
        W, L, R = cfg.line_bytes, cfg.engine.lanes, cfg.engine.rows
        task = self.task
        bitmask = task.a_format == isa.AFormat.BITMASK
        gemm = task.opcode == isa.Opcode.GEMM

        m.submodules.compactor = comp = ZeroCompactor(W)
        m.submodules.mac = mac = MacLanes(L, cfg.engine.operand_bits, cfg.engine.acc_bits, cfg.engine.overflow)

        # ---- job registers ----
        busy = Signal()
        first = Signal()                         # first cycle of a job: fetch word 0, read row pointer
        cool = Signal(range(max(R, 2)))          # enforces min_period
        row_i = Signal(DIM_BITS)
        row_word = Signal(2 * DIM_BITS)          # i * nw
        job_j = Signal(DIM_BITS)
        c_line = Signal(len(self.result_line))
        fw = Signal(DIM_BITS)                    # next word to fetch

        # ---- detect stage: the read port's output holds word d_word ----
        d_valid = Signal()
        d_word = Signal(DIM_BITS)
        d_slot = Signal(3)                       # which mask word of the line (bitmask)
        # ---- encode stage ----
        e_valid = Signal()
        e_mask = Signal(W)
        e_vals = Signal(data.ArrayLayout(signed(8), W))
        e_word = Signal(DIM_BITS)
        e_last_word = Signal()
        vptr = Signal(32)                        # byte offset of the next packed value (bitmask)
        ptr_slot = Signal(range(W // PTR_BYTES))
        load_ptr = Signal()

        # detect: which elements of the word in the read port count
        line = self.a_port.data
        vals = data.ArrayLayout(signed(8), W)(line)
        remain = Signal(signed(DIM_BITS + 1))
        m.d.comb += remain.eq(task.k - (d_word << log2(W)))
        marks = Signal(W)
        mask_word = line.word_select(d_slot, W)
        for e in range(W):
            v = vals[e]
            magnitude = Mux(v < 0, -v, v)
            counts = (v != 0) & (magnitude >= task.threshold)
            m.d.comb += marks[e].eq((e < remain) & Mux(gemm, 1, Mux(bitmask, mask_word[e], counts)))

        # encode
        m.d.comb += comp.mask.eq(e_mask)
        word_done = e_valid & (comp.rest == 0)
        final = word_done & e_last_word
        load_e = (~e_valid | word_done) & d_valid
        fetch = busy & (fw < self.nw) & (~d_valid | load_e)
        with m.If(load_e):
            m.d.sync += [e_valid.eq(1), e_mask.eq(marks), e_vals.eq(line), e_word.eq(d_word),
                         e_last_word.eq(d_word == self.nw - 1)]
        with m.Elif(word_done):
            m.d.sync += e_valid.eq(0)
        with m.Elif(e_valid):
            m.d.sync += e_mask.eq(comp.rest)

        # fetch
        word = row_word + fw
        m.d.comb += [self.a_port.en.eq(fetch),
                     self.a_port.addr.eq(Mux(bitmask, lay.mask_word_line(task.a_addr, word),
                                             lay.a_dense_line(task.a_addr, row_word, fw)))]
        with m.If(fetch):
            m.d.sync += [fw.eq(fw + 1), d_valid.eq(1), d_word.eq(fw), d_slot.eq(lay.mask_word_slot(word))]
        with m.Elif(load_e):
            m.d.sync += d_valid.eq(0)

        # job accept / free
        m.d.comb += [self.free.eq((~busy | final) & (cool == 0)),
                     self.elem.eq(e_valid & comp.any)]
        m.d.sync += first.eq(0)
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)
        with m.If(final):
            m.d.sync += busy.eq(0)
        with m.If(self.job_valid):
            m.d.sync += [busy.eq(1), first.eq(1), cool.eq(self.min_period(cfg) - 1), fw.eq(0), row_i.eq(self.job_i),
                         row_word.eq(self.job_i * self.nw), job_j.eq(self.job_j),
                         c_line.eq(lay.c_line(task.c_addr, self.job_i * self.nbj, self.job_j))]

        # bitmask row pointer: read in the first cycle, latched in the second
        k_el = Cat(comp.index, e_word)           # = e_word * W + index
        m.d.sync += load_ptr.eq(first & bitmask)
        with m.If(first):
            m.d.sync += ptr_slot.eq(lay.ptr_slot(row_i))
        with m.If(load_ptr):
            m.d.sync += vptr.eq(self.v_port.data.word_select(ptr_slot, 32))
        with m.Elif(self.elem):
            m.d.sync += vptr.eq(vptr + 1)
        m.d.comb += self.v_port.en.eq(1)
        with m.If(first):
            m.d.comb += self.v_port.addr.eq(lay.ptr_line(task.a_ptr, row_i))
        with m.Else():
            m.d.comb += self.v_port.addr.eq(lay.byte_line(task.a_vals, vptr))

        # back end: B segment and value arrive one cycle after the encode cycle
        m.d.comb += [self.b_port.en.eq(1),
                     self.b_port.addr.eq(lay.b_line(task.b_addr, k_el * self.nbl, job_j))]
        t1_valid, t1_last = Signal(), Signal()
        t1_a = Signal(signed(8))
        t1_bslot = Signal(range(max(W // L, 2)))
        t1_vslot = Signal(range(W))
        m.d.sync += [t1_valid.eq(self.elem), t1_last.eq(final), t1_a.eq(e_vals[comp.index]),
                     t1_bslot.eq(lay.b_slot(job_j)), t1_vslot.eq(lay.byte_slot(vptr))]
        packed = self.v_port.data.word_select(t1_vslot, 8).as_signed()
        a = Mux(bitmask, packed, t1_a)
        # bitmask marks come from the format, so |a| < threshold is only known here: gate the lanes
        passes = gemm | (Mux(a < 0, -a, a) >= task.threshold)
        m.d.comb += [mac.a.eq(a), mac.valid.eq(t1_valid & passes), mac.last.eq(t1_last),
                     mac.b.eq(self.b_port.data.word_select(t1_bslot, 8 * L))]

        # result holding: the job's output line travels beside its last element (the next job may
        # already be running), then waits with the result for this unit's write slot
        inflight = Signal(2)
        line_pipe = [Signal.like(c_line, name=f"line_pipe{s}") for s in range(self.result_latency)]
        held_line = Signal.like(c_line)
        pending = Signal()
        m.d.sync += [line_pipe[0].eq(c_line)] + [later.eq(earlier) for earlier, later in zip(line_pipe, line_pipe[1:])]
        m.d.sync += inflight.eq(inflight + final - mac.result_valid)
        with m.If(mac.result_valid):
            m.d.sync += held_line.eq(line_pipe[-1])
        m.d.comb += [self.result.eq(mac.result),
                     self.result_line.eq(Mux(mac.result_valid, line_pipe[-1], held_line)),
                     self.result_pending.eq(pending | mac.result_valid),
                     self.quiet.eq(~busy & (inflight == 0) & ~self.result_pending)]
        with m.If(self.result_taken):
            m.d.sync += pending.eq(0)
        with m.Elif(mac.result_valid):
            m.d.sync += pending.eq(1)
        return m

