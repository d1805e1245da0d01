"""Row unit: computes one job, C[i, j*L : j*L+L] = sum_k A[i,k] * B[k, j*L : j*L+L].

Front end (one job at a time):
  fetch    reads scan word w of row i: W elements of dense A, W bits of its bitmask, W kept N:M values
           (with their in-group indices), or W CSR values (the row's entries are ptr[i]..ptr[i+1]-1: CSR first
           reads the two pointers, latches them and derives the scan range from them, a cycle each); with
           the word go its in-range bounds (0..W), kept up to date by a subtraction per fetch;
  detect   marks the elements that count: in range, nonzero and |a| >= threshold (the bitmask's bits;
           every in-range element for gemm);
  encode   the zero compactor emits one marked element per cycle, lowest position first. A word with no
           marked element costs one cycle, a zero inside a word costs none.
Back end (pipelined behind the front end, so the next job starts while this one drains):
  T0  the element's K index is known (for CSR: read from the column indices) and so is its value (for
      bitmask: read from the packed values, then gated if |a| < threshold);
  U   B's row base k * nbl (a registered multiply);
  V   B[k, block j] is read;
  T1  B arrives -> MacLanes; lanes whose B value is zero are counted as gated -> result for the writer.
No multiplier feeds a RAM address in the same cycle (FMAX per component: docs/fpga.md).
Accumulate (descriptor bit, K tiling): the dispatcher reads the job's output line in the cycle it hands the
job over; the unit latches it the next cycle into the MAC lanes' init register of the job's slot (a count of
jobs taken, modulo ``MacLanes.INIT_SLOTS``, that travels with its elements), and the job's first MAC cycle
(its first element, or the closing bubble of a job with none) adds onto it. Without accumulate the engine
gives 0. No cycle is added: the line is in place long before the job's first element reaches the lanes.

Timing, read by the simulator from the members below (Σ = sum over words of max(1, marked)):
  job accepted in cycle td  -> last encode cycle te = td + front_latency(format) + Σ - 1;
  the unit takes a new job from max(te, td + min_period) on; result ready in cycle te + result_latency.
``min_period(cfg)`` = R keeps results from one unit at least R cycles apart, so the round-robin writer
(one slot per unit every R cycles) never stalls a unit.
"""
import operator
from functools import reduce

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl import signatures
from hwgen.rtl.engine.mac_lanes import MacLanes
from hwgen.rtl.engine.zero_compactor import ZeroCompactor, at_most
from hwgen.spec import isa
from hwgen.spec.layout import INDEX_BYTES, PTR_BYTES, Layout, log2
from hwgen.spec.timing import RowUnitTiming

DIM_BITS = 16   # m, k, n in the descriptor
PTR_BITS = 32   # bitmask row offsets, CSR row pointers


class RowUnit(RowUnitTiming, wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        L = cfg.engine.lanes
        port = In(signatures.l1_read(cfg))
        super().__init__({
            "task": In(signatures.descriptor_layout()),
            "nw": In(DIM_BITS),        # scan words per row (dense, bitmask, N:M); CSR finds its own
            "nbl": In(DIM_BITS),
            "job_valid": In(1), "job_i": In(DIM_BITS), "job_j": In(DIM_BITS),
            "job_word": In(PTR_BITS),   # job_i * nw: the row's first scan word (the dispatcher keeps it as a sum)
            "free": Out(1),
            "quiet": Out(1),           # no job and nothing in flight
            "a_port": port, "v_port": port, "b_port": port,
            "init": In(data.ArrayLayout(signed(cfg.engine.acc_bits), L)),   # job's start: line read at dispatch, or 0
            "result": Out(data.ArrayLayout(signed(cfg.engine.acc_bits), L)),
            "result_i": Out(DIM_BITS), "result_j": Out(DIM_BITS),   # which job the result belongs to
            "result_pending": Out(1),
            "result_taken": In(1),
            "elem": Out(1),            # strobe: one marked element emitted this cycle
            "gated": Out(range(L + 1)),  # lanes of this cycle's MAC whose B value is zero
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._cfg, Layout.of(self._cfg)
        W, L = cfg.line_bytes, cfg.engine.lanes
        task = self.task
        fmt = task.a_format
        bitmask, nm, csr = fmt == isa.AFormat.BITMASK, fmt == isa.AFormat.NM, fmt == isa.AFormat.CSR
        gemm = task.opcode == isa.Opcode.GEMM
        meta_bits_log2 = lay.nm_meta_bits_log2(task.nm_m_log2, minimum=lambda a, b: Mux(a > b, b, a))

        m.submodules.compactor = comp = ZeroCompactor(W)
        m.submodules.mac = mac = MacLanes(L, cfg.engine.operand_bits, cfg.engine.acc_bits, cfg.engine.overflow)

        # ---- job registers ----
        busy = Signal()
        first = Signal()                         # first cycle of a job
        setup = Signal()                         # CSR: the cycle the row pointers arrive (latched)
        derive = Signal()                        # CSR: the cycle the scan range is derived from them
        ranged = Signal()                        # the job's scan range is known: fetching may go on
        cool = Signal(range(max(cfg.engine.rows, 2)))   # enforces min_period
        row_i, job_j = Signal(DIM_BITS), Signal(DIM_BITS)
        fw = Signal(PTR_BITS)                    # next scan word to fetch, relative to the job's first
        g = Signal(PTR_BITS)                     # the same word, absolute
        left = Signal(PTR_BITS)                  # scan words still to fetch
        # the job's element range [lo_rem, hi_rem) relative to the start of word g; each fetch moves it by W,
        # so the detect stage gets its bounds as small registered numbers instead of subtracting 34-bit ones
        lo_rem, hi_rem = Signal(signed(PTR_BITS + 2)), Signal(signed(PTR_BITS + 2))
        lo, hi = Signal(PTR_BITS), Signal(PTR_BITS)   # CSR: the row's entries are lo..hi-1
        ptr_slot, ptr_slot_hi = Signal(range(W // PTR_BYTES)), Signal(range(W // PTR_BYTES))

        # CSR row pointers: read in the first cycle (ptr[i] on v_port, ptr[i+1] on a_port, both idle then),
        # latched in the next, the scan range derived from them in the one after
        with m.If(setup):
            m.d.sync += [lo.eq(self.v_port.data.word_select(ptr_slot, PTR_BITS)),
                         hi.eq(self.a_port.data.word_select(ptr_slot_hi, PTR_BITS))]
        line_start = lo & ~(W - 1)
        with m.If(derive):
            m.d.sync += [g.eq(lo >> log2(W)),
                         left.eq(Mux(hi > lo, ((hi - 1) >> log2(W)) - (lo >> log2(W)) + 1, 1)),
                         lo_rem.eq(lo - line_start), hi_rem.eq(hi - line_start), ranged.eq(1)]

        # ---- detect stage: the read ports' outputs hold word d_rel of the job (absolute d_abs) ----
        d_valid = Signal()
        d_rel, d_abs = Signal(PTR_BITS), Signal(PTR_BITS)
        d_first, d_end = Signal(range(W + 1)), Signal(range(W + 1))   # the word's elements in the range
        d_last = Signal()                        # the job's last scan word
        d_slot = Signal(3)                       # bitmask mask word / N:M index word within the line
        # ---- encode stage ----
        e_valid = Signal()
        e_mask = Signal(W)
        e_vals = Signal(data.ArrayLayout(signed(8), W))
        e_meta = Signal(data.ArrayLayout(unsigned(4), W))
        e_rel, e_abs = Signal(PTR_BITS), Signal(PTR_BITS)
        e_last_word = Signal()
        vptr = Signal(PTR_BITS)                  # bitmask: byte offset of the next packed value
        load_ptr = Signal()

        # detect: which elements of the word count
        line = self.a_port.data
        vals = data.ArrayLayout(signed(8), W)(line)
        limit = Mux(nm, lay.nm_kept(task.k, task.nm_n_log2, task.nm_m_log2), task.k)
        marks = Signal(W)
        mask_word = line.word_select(d_slot, W)
        for e in range(W):
            v = vals[e]
            counts = (v != 0) & (Mux(v < 0, -v, v) >= task.threshold)
            m.d.comb += marks[e].eq((e >= d_first) & (e < d_end) & Mux(gemm, 1, Mux(bitmask, mask_word[e], counts)))
        # N:M in-group indices of the word's kept values: W entries of 1, 2 or 4 bits
        meta = Signal.like(e_meta)
        with m.Switch(meta_bits_log2):
            for bits_log2 in range(3):
                bits = 1 << bits_log2
                with m.Case(bits_log2):
                    word = self.v_port.data.word_select(d_slot[:3 - bits_log2], W * bits)
                    m.d.comb += [meta[e].eq(word[e * bits:(e + 1) * bits]) for e in range(W)]

        # encode
        # the end of a word: in its first encode cycle (e_fresh) a counting tree on the mask, afterwards a register
        # (e_single: the mask had at most two bits before this element), so neither the compactor's carry chain
        # stands in front of every fetch-stage enable nor a tree behind the L1 read and the detect logic
        e_fresh, e_single = Signal(), Signal()
        m.d.comb += comp.mask.eq(e_mask)
        word_done = e_valid & Mux(e_fresh, at_most(e_mask, 1), e_single)
        final = word_done & e_last_word
        load_e = (~e_valid | word_done) & d_valid
        with m.If(load_e):
            m.d.sync += [e_valid.eq(1), e_fresh.eq(1), e_mask.eq(marks), e_vals.eq(line), e_meta.eq(meta),
                         e_rel.eq(d_rel), e_abs.eq(d_abs), e_last_word.eq(d_last)]
        with m.Elif(word_done):
            m.d.sync += e_valid.eq(0)
        with m.Elif(e_valid):
            m.d.sync += [e_mask.eq(comp.rest), e_fresh.eq(0), e_single.eq(at_most(e_mask, 2))]

        # fetch (non-CSR from the first cycle, CSR from the cycle after its range is derived)
        fetch = busy & Mux(csr, ranged, 1) & (left != 0) & (~d_valid | load_e)
        with m.Switch(fmt):
            with m.Case(isa.AFormat.BITMASK):
                m.d.comb += self.a_port.addr.eq(lay.mask_word_line(task.a_addr, g))
            with m.Case(isa.AFormat.CSR):
                m.d.comb += self.a_port.addr.eq(Mux(first, lay.ptr_line(task.a_ptr, row_i + 1), task.a_addr + g))
            with m.Default():
                m.d.comb += self.a_port.addr.eq(task.a_addr + g)
        m.d.comb += self.a_port.en.eq(fetch | (first & csr))

        def clamp(x):
            return Mux(x < 0, 0, Mux(x > W, W, x))
        with m.If(fetch):
            m.d.sync += [fw.eq(fw + 1), g.eq(g + 1), left.eq(left - 1), lo_rem.eq(lo_rem - W), hi_rem.eq(hi_rem - W),
                         d_valid.eq(1), d_rel.eq(fw), d_abs.eq(g), d_last.eq(left == 1),
                         d_first.eq(clamp(lo_rem)), d_end.eq(clamp(hi_rem)),
                         d_slot.eq(Mux(nm, lay.nm_meta_slot(g, meta_bits_log2), lay.mask_word_slot(g)))]
        with m.Elif(load_e):
            m.d.sync += d_valid.eq(0)

        # job accept / free
        m.d.comb += [self.free.eq((~busy | final) & (cool == 0)),
                     self.elem.eq(e_valid & comp.any)]
        m.d.sync += [first.eq(0), setup.eq(first & csr), derive.eq(setup), load_ptr.eq(first & bitmask)]
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)
        with m.If(final):
            m.d.sync += busy.eq(0)
        with m.If(self.job_valid):
            m.d.sync += [busy.eq(1), first.eq(1), cool.eq(self.min_period(cfg) - 1), fw.eq(0), ranged.eq(0),
                         row_i.eq(self.job_i), job_j.eq(self.job_j),
                         g.eq(self.job_word), left.eq(self.nw), lo_rem.eq(0), hi_rem.eq(limit),
                         ptr_slot.eq(lay.ptr_slot(self.job_i)), ptr_slot_hi.eq(lay.ptr_slot(self.job_i + 1))]

        # second read port: row pointer (first cycle), N:M indices (with each fetch),
        # bitmask packed value or CSR column index (with each emitted element)
        position = Cat(comp.index, e_rel)        # element position in the row's scan: e_rel * W + index
        entry = Cat(comp.index, e_abs)          # CSR: absolute entry number
        with m.If(load_ptr):
            m.d.sync += vptr.eq(self.v_port.data.word_select(ptr_slot, PTR_BITS))
        with m.Elif(self.elem):
            m.d.sync += vptr.eq(vptr + 1)
        # N:M indices sit beside the scan word in the detect stage, so they hold with it (en = fetch)
        m.d.comb += self.v_port.en.eq(Mux(nm, fetch, 1))
        with m.If(nm):
            m.d.comb += self.v_port.addr.eq(lay.nm_meta_line(task.a_meta, g, meta_bits_log2))
        with m.Elif(first):
            m.d.comb += self.v_port.addr.eq(lay.ptr_line(task.a_ptr, row_i))
        with m.Elif(csr):
            m.d.comb += self.v_port.addr.eq(lay.csr_index_line(task.a_meta, entry))
        with m.Else():
            m.d.comb += self.v_port.addr.eq(lay.byte_line(task.a_meta, vptr))

        # accumulate: the line the dispatcher read when it handed over the job arrives the cycle after; it goes
        # into the init register of the job's parity (the other one may still serve the previous job's tail)
        parity = Signal(range(MacLanes.INIT_SLOTS))   # of the job in the front end: counts jobs taken, modulo
        init_due = Signal()
        fresh = Signal()                         # the job has not sent a MAC cycle yet
        carries = self.elem | final              # a MAC cycle of the job in the front end: element or closer
        m.d.sync += init_due.eq(self.job_valid)
        with m.If(self.job_valid):
            m.d.sync += [parity.eq(Mux(parity == MacLanes.INIT_SLOTS - 1, 0, parity + 1)), fresh.eq(1)]
        with m.Elif(carries):
            m.d.sync += fresh.eq(0)
        m.d.comb += [mac.init.eq(self.init), mac.init_valid.eq(init_due), mac.init_slot.eq(parity)]

        # T0: index and value known; read B
        t0_valid, t0_last = Signal(), Signal()
        t0_first, t0_parity = Signal(), Signal.like(parity)
        m.d.sync += [t0_first.eq(carries & fresh), t0_parity.eq(parity)]
        t0_pos = Signal(DIM_BITS)
        t0_meta = Signal(4)
        t0_a = Signal(signed(8))
        t0_j = Signal(DIM_BITS)
        t0_slot = Signal(range(W))               # byte (bitmask) or uint16 (CSR) slot in the v_port line
        # the element's value and N:M index, selected by the compactor's one-hot (an AND-OR, no index decode)
        def pick(arr):
            return reduce(operator.or_, (Mux(comp.onehot[e], Value.cast(arr[e]).as_unsigned(), 0) for e in range(W)))
        m.d.sync += [t0_valid.eq(self.elem), t0_last.eq(final), t0_a.eq(pick(e_vals)), t0_j.eq(job_j),
                     t0_pos.eq(position), t0_meta.eq(pick(e_meta)),
                     t0_slot.eq(Mux(csr, lay.csr_index_slot(entry), lay.byte_slot(vptr)))]
        t0_k = Mux(nm, lay.nm_k(t0_pos, task.nm_n_log2, task.nm_m_log2, t0_meta), t0_pos)
        k = Mux(csr, self.v_port.data.word_select(t0_slot[:log2(W // INDEX_BYTES)], 8 * INDEX_BYTES), t0_k)
        a = Mux(bitmask, self.v_port.data.word_select(t0_slot, 8).as_signed(), t0_a)
        # bitmask marks come from the format, so |a| < threshold is only known here: gate the lanes
        passes = gemm | (Mux(a < 0, -a, a) >= task.threshold)

        # U: B's row base k * nbl in a registered multiply; V: the B address. A multiplier straight into the
        # RAM address would be the slowest path of the unit on an FPGA.
        u_valid, u_last, u_first, u_parity = Signal(), Signal(), Signal(), Signal.like(parity)
        u_a, u_k, u_j = Signal(signed(8)), Signal(DIM_BITS), Signal(DIM_BITS)
        m.d.sync += [u_valid.eq(t0_valid & passes), u_last.eq(t0_last), u_first.eq(t0_first),
                     u_parity.eq(t0_parity), u_a.eq(a), u_k.eq(k), u_j.eq(t0_j)]
        v_valid, v_last, v_first, v_parity = Signal(), Signal(), Signal(), Signal.like(parity)
        v_a, v_j = Signal(signed(8)), Signal(DIM_BITS)
        v_row, v_line = Signal(2 * DIM_BITS), Signal.like(self.b_port.addr)   # b_line is linear in the row base
        m.d.sync += [v_valid.eq(u_valid), v_last.eq(u_last), v_first.eq(u_first), v_parity.eq(u_parity),
                     v_a.eq(u_a), v_j.eq(u_j), v_row.eq(u_k * self.nbl), v_line.eq(lay.b_line(task.b_addr, 0, u_j))]
        m.d.comb += [self.b_port.en.eq(1), self.b_port.addr.eq(v_line + v_row)]

        # T1: B arrives; MAC
        t1_valid, t1_last = Signal(), Signal()
        t1_first, t1_parity = Signal(), Signal.like(parity)
        m.d.sync += [t1_first.eq(v_first), t1_parity.eq(v_parity)]
        t1_a = Signal(signed(8))
        t1_bslot = Signal(range(max(W // L, 2)))
        t1_lanes = Signal(signed(DIM_BITS + 1))  # lanes of this block inside N
        m.d.sync += [t1_valid.eq(v_valid), t1_last.eq(v_last), t1_a.eq(v_a),
                     t1_bslot.eq(lay.b_slot(v_j)), t1_lanes.eq(task.n - (v_j << log2(L)))]
        b = data.ArrayLayout(signed(8), L)(self.b_port.data.word_select(t1_bslot, 8 * L))
        m.d.comb += [mac.a.eq(t1_a), mac.valid.eq(t1_valid), mac.last.eq(t1_last), mac.b.eq(b),
                     mac.first.eq(t1_first), mac.slot.eq(t1_parity),
                     self.gated.eq(Mux(t1_valid, sum((b[lane] == 0) & (lane < t1_lanes) for lane in range(L)), 0))]

        # result holding: the job's (i, j) travels beside its last element (the next job may already be
        # running), then waits with the result for this unit's write slot
        inflight = Signal(2)
        job = data.StructLayout({"i": DIM_BITS, "j": DIM_BITS})
        job_pipe = [Signal(job, name=f"job_pipe{s}") for s in range(self.result_latency)]
        held_job = Signal(job)
        pending = Signal()
        m.d.sync += [job_pipe[0].i.eq(row_i), job_pipe[0].j.eq(job_j)]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(job_pipe, job_pipe[1:], strict=False)]
        m.d.sync += inflight.eq(inflight + final - mac.result_valid)
        with m.If(mac.result_valid):
            m.d.sync += held_job.eq(job_pipe[-1])
        result_job = Mux(mac.result_valid, job_pipe[-1].as_value(), held_job.as_value())
        m.d.comb += [self.result.eq(mac.result),
                     Cat(self.result_i, self.result_j).eq(result_job),
                     self.result_pending.eq(pending | mac.result_valid),
                     self.quiet.eq(~busy & (inflight == 0) & ~self.result_pending)]
        with m.If(self.result_taken):
            m.d.sync += pending.eq(0)
        with m.Elif(mac.result_valid):
            m.d.sync += pending.eq(1)
        return m
