"""Row unit: computes one job, C[i, j*L : j*L+L] = sum_k A[i,k] * B[k, j*L : j*L+L].

Front end (one job at a time; the L1 ports are registered reads, ``signatures.registered_read``):
  fetch    reads scan word w of row i: W elements of dense A, W bits of its bitmask, W kept N:M values
           (with their in-group indices), or W CSR values (the row's entries are ptr[i]..ptr[i+1]-1: CSR first
           reads the two pointers, latches them and derives the scan range from them, a cycle each); with
           the word go its in-range bounds (0..W), kept up to date by a subtraction per fetch;
  read     the word waits in the RAM's output (``en`` low) until the detect stage has room (``take``);
  detect   marks the elements that count: in range, nonzero and |a| >= threshold (the bitmask's bits;
           every in-range element for gemm);
  encode   the zero compactor emits one marked element per cycle, lowest position first. A word with no
           marked element costs one cycle, a zero inside a word costs none.
Back end (pipelined behind the front end, so the next job starts while this one drains):
  T0  (READ_LATENCY after the element) the element's K index is known (for CSR: read from the column
      indices) and so is its value (for bitmask: read from the packed values, then gated if |a| < threshold);
  U   B's row base k * nbl (a registered multiply);
  V   B[k, block j] is read;
  T1  (READ_LATENCY after V) B arrives -> MacLanes; lanes whose B value is zero are counted as gated (the
      count is registered) -> result for the writer.
No multiplier feeds a RAM address in the same cycle, and only a register takes a RAM's output (FMAX per
component: docs/fpga.md).
Accumulate (descriptor bit, K tiling): the dispatcher reads the job's output line in the cycle it hands the
job over; the unit latches it when it arrives (the output buffer's READ_LATENCY later) into the MAC lanes'
init register of the job's slot (a count of jobs taken, modulo ``MacLanes.INIT_SLOTS``, that travels with its
elements), and the job's first MAC cycle (its first element, or the closing bubble of a job with none) adds
onto it. Without accumulate the engine
gives 0. No cycle is added: the line is in place long before the job's first element reaches the lanes.

Timing, read by the simulator from the members below (Σ = sum over words of max(1, marked)):
  job accepted in cycle td  -> last encode cycle te = td + front_latency(format) + Σ - 1;
  the unit takes a new job from max(te, td + min_period) on; result ready in cycle te + result_latency.
``min_period(cfg)`` = R keeps results from one unit at least R cycles apart, so the round-robin writer
(one slot per unit every R cycles) never stalls a unit.
"""
import operator
from functools import reduce

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwgen.rtl import signatures
from hwgen.rtl.engine.mac_lanes import MacLanes
from hwgen.rtl.engine.zero_compactor import ZeroCompactor, at_most
from hwgen.rtl.pipeline import delay_line
from hwgen.spec import isa
from hwgen.spec.layout import INDEX_BYTES, NM_META_SLOT_BITS, PTR_BYTES, Layout, log2
from hwgen.spec.timing import OutputBufferTiming, RowUnitTiming

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
            "gated": Out(range(L + 1)),  # lanes of the previous cycle's MAC whose B value is zero (registered)
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
        ptr_take = Signal()                      # CSR: the row pointers' lines go into the ports' data registers
        setup = Signal()                         # CSR: the cycle the row pointers arrive (latched)
        derive = Signal()                        # CSR: the cycle the scan range is derived from them
        ranged = Signal()                        # the job's scan range is known: fetching may go on
        cool = Signal(range(max(cfg.engine.rows, 2)))   # enforces min_period
        row_i, job_j = Signal(DIM_BITS), Signal(DIM_BITS)
        fw = Signal(PTR_BITS)                    # next scan word to fetch, relative to the job's first
        g = Signal(PTR_BITS)                     # the same word, absolute
        left = Signal(PTR_BITS)                  # scan words still to fetch
        more = Signal()                          # left != 0, a register kept with left (no compare before fetch)
        # the job's element range [lo_rem, hi_rem) relative to the start of word g; each fetch moves it by W,
        # so the detect stage gets its bounds as small registered numbers instead of subtracting 34-bit ones
        lo_rem, hi_rem = Signal(signed(PTR_BITS + 2)), Signal(signed(PTR_BITS + 2))
        lo, hi = Signal(PTR_BITS), Signal(PTR_BITS)   # CSR: the row's entries are lo..hi-1
        hi_words = Signal(PTR_BITS)              # CSR: ceil(hi / W), the scan word after the row's last
        nonempty = Signal()                      # CSR: hi > lo
        ptr_slot, ptr_slot_hi = Signal(range(W // PTR_BYTES)), Signal(range(W // PTR_BYTES))

        # CSR row pointers: read in the first cycle (ptr[i] on v_port, ptr[i+1] on a_port, both idle then),
        # in the ports' data registers two cycles later, latched, the scan range derived from them in the next
        with m.If(setup):
            row_start = self.v_port.data.word_select(ptr_slot, PTR_BITS)
            row_end = self.a_port.data.word_select(ptr_slot_hi, PTR_BITS)
            m.d.sync += [lo.eq(row_start), hi.eq(row_end), hi_words.eq((row_end + W - 1) >> log2(W)),
                         nonempty.eq(row_end > row_start)]
        line_start = lo & ~(W - 1)
        with m.If(derive):
            m.d.sync += [g.eq(lo >> log2(W)), left.eq(Mux(nonempty, hi_words - (lo >> log2(W)), 1)), more.eq(1),
                         lo_rem.eq(lo - line_start), hi_rem.eq(hi - line_start), ranged.eq(1)]

        # a scan word in flight: rel / abs: word of the job / absolute; first / end: its elements in the range;
        # last: the job's last scan word; slot: bitmask mask word / N:M index word within the line
        scan_word = data.StructLayout({"rel": PTR_BITS, "abs": PTR_BITS, "first": ceil_log2(W + 1),
                                       "end": ceil_log2(W + 1), "last": 1, "slot": 3})
        # ---- read stage: the RAMs' outputs hold word r (en low holds it) ----
        r_valid, r = Signal(), Signal(scan_word)
        # ---- detect stage: the read ports' data registers hold word d; d_range: its in-range elements, one bit
        # each, registered with it from first / end (no compare in front of the marks) ----
        d_valid, d = Signal(), Signal(scan_word)
        d_range = Signal(W)
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
        # the row's element count, registered from the task (it holds the task from the cycle after its start,
        # and the first job comes a cycle after that): no add and shift in front of the job's range
        limit = Signal(len(hi_rem), name="limit")
        m.d.sync += limit.eq(Mux(nm, lay.nm_kept(task.k, task.nm_n_log2, task.nm_m_log2), task.k))
        marks = Signal(W)
        mask_word = line.word_select(d.slot, W)
        # |v| >= t as two compares side by side (v >= t or v <= -t; -t registered), not a negation then a compare
        neg_threshold = Signal(signed(10))
        m.d.sync += neg_threshold.eq(-task.threshold)
        for e in range(W):
            v = vals[e]
            counts = (v != 0) & ((v >= task.threshold) | (v <= neg_threshold))
            m.d.comb += marks[e].eq(d_range[e] & Mux(gemm, 1, Mux(bitmask, mask_word[e], counts)))
        # N:M in-group indices of the word's kept values: W entries of 1, 2 or 4 bits
        meta = Signal.like(e_meta)
        with m.Switch(meta_bits_log2):
            for bits_log2 in range(3):
                bits = 1 << bits_log2
                with m.Case(bits_log2):
                    word = self.v_port.data.word_select(d.slot[:3 - bits_log2], W * bits)
                    m.d.comb += [meta[e].eq(word[e * bits:(e + 1) * bits]) for e in range(W)]

        # encode
        # the end of a word is a register: in its first encode cycle (e_fresh) e_lone, the detect stage's counting
        # tree on the marks (at most one), afterwards e_single (the mask had at most two bits before this
        # element), so no tree stands in front of the fetch-stage enables and the unit's ``free``
        e_fresh, e_lone, e_single = Signal(), Signal(), Signal()
        m.d.comb += comp.mask.eq(e_mask)
        word_done = e_valid & Mux(e_fresh, e_lone, e_single)
        final = word_done & e_last_word
        load_e = (~e_valid | word_done) & d_valid
        # CSR: a word of W entries spans INDEX_BYTES lines of column indices; their addresses are registered with
        # the word, so an element's index line is a select by its position's top bits, not an add behind the
        # compactor
        e_csr_lines = [Signal.like(self.v_port.addr, name=f"e_csr_line{h}") for h in range(INDEX_BYTES)]
        with m.If(load_e):
            m.d.sync += [e_valid.eq(1), e_fresh.eq(1), e_lone.eq(at_most(marks, 1)), e_mask.eq(marks),
                         e_vals.eq(line), e_meta.eq(meta),
                         e_rel.eq(d.rel), e_abs.eq(d.abs), e_last_word.eq(d.last)]
            m.d.sync += [e_csr_lines[h].eq(lay.csr_index_line(task.a_meta, Cat(Const(h * W // INDEX_BYTES,
                                                                                        log2(W)), d.abs)))
                         for h in range(INDEX_BYTES)]
        with m.Elif(word_done):
            m.d.sync += e_valid.eq(0)
        with m.Elif(e_valid):
            m.d.sync += [e_mask.eq(comp.rest), e_fresh.eq(0), e_single.eq(at_most(e_mask, 2))]

        # fetch (non-CSR from the first cycle, CSR from the cycle after its range is derived) when the word in
        # the RAM's output, if any, moves on to the detect stage in this cycle
        r_move = r_valid & (~d_valid | load_e)
        fetch = busy & Mux(csr, ranged, 1) & more & (~r_valid | r_move)
        with m.Switch(fmt):
            with m.Case(isa.AFormat.BITMASK):
                m.d.comb += self.a_port.addr.eq(lay.mask_word_line(task.a_addr, g))
            with m.Case(isa.AFormat.CSR):
                m.d.comb += self.a_port.addr.eq(Mux(first, lay.ptr_line(task.a_ptr, row_i + 1), task.a_addr + g))
            with m.Default():
                m.d.comb += self.a_port.addr.eq(task.a_addr + g)
        m.d.comb += [self.a_port.en.eq(fetch | (first & csr)), self.a_port.take.eq(r_move | ptr_take)]

        def clamp(x):
            return Mux(x < 0, 0, Mux(x > W, W, x))
        # the second port's lines are registers kept with what they follow, so no add or variable shift stands
        # in front of its address: N:M's index line of scan word g, the row pointer's line, bitmask's value line
        v_meta_line, v_ptr_line, v_byte_line = (Signal.like(self.v_port.addr, name=n)
                                                for n in ("v_meta_line", "v_ptr_line", "v_byte_line"))
        with m.If(fetch):
            # word g + 1's index line: the next line when g is the last word of its line (the slot's bits of g
            # alone are added to, so no carry runs up g)
            last_of_line = lay.nm_meta_slot(g[:NM_META_SLOT_BITS] + 1, meta_bits_log2) == 0
            m.d.sync += v_meta_line.eq(v_meta_line + last_of_line)
            m.d.sync += [fw.eq(fw + 1), g.eq(g + 1), left.eq(left - 1), more.eq(left != 1),
                         lo_rem.eq(lo_rem - W), hi_rem.eq(hi_rem - W),
                         r_valid.eq(1), r.rel.eq(fw), r.abs.eq(g), r.last.eq(left == 1),
                         r.first.eq(clamp(lo_rem)), r.end.eq(clamp(hi_rem)),
                         r.slot.eq(Mux(nm, lay.nm_meta_slot(g, meta_bits_log2), lay.mask_word_slot(g)))]
        with m.Elif(r_move):
            m.d.sync += r_valid.eq(0)
        with m.If(r_move):
            m.d.sync += [d_valid.eq(1), d.eq(r), d_range.eq(Cat((e >= r.first) & (e < r.end) for e in range(W)))]
        with m.Elif(load_e):
            m.d.sync += d_valid.eq(0)

        # job accept / free
        m.d.comb += [self.free.eq((~busy | final) & (cool == 0)),
                     self.elem.eq(e_valid & comp.any)]
        ptr_due = Signal()                       # bitmask: the row pointer's line goes into v_port's data register
        m.d.sync += [first.eq(0), ptr_take.eq(first & csr), setup.eq(ptr_take), derive.eq(setup),
                     ptr_due.eq(first & bitmask), load_ptr.eq(ptr_due)]
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)
        with m.If(final):
            m.d.sync += busy.eq(0)
        with m.If(self.job_valid):
            m.d.sync += [v_meta_line.eq(lay.nm_meta_line(task.a_meta, self.job_word, meta_bits_log2)),
                         v_ptr_line.eq(lay.ptr_line(task.a_ptr, self.job_i))]
            m.d.sync += [busy.eq(1), first.eq(1), cool.eq(self.min_period(cfg) - 1), fw.eq(0), ranged.eq(0),
                         row_i.eq(self.job_i), job_j.eq(self.job_j),
                         g.eq(self.job_word), left.eq(self.nw), more.eq(self.nw != 0), lo_rem.eq(0), hi_rem.eq(limit),
                         ptr_slot.eq(lay.ptr_slot(self.job_i)), ptr_slot_hi.eq(lay.ptr_slot(self.job_i + 1))]

        # second read port: row pointer (first cycle), N:M indices (with each fetch),
        # bitmask packed value or CSR column index (with each emitted element)
        position = Cat(comp.index, e_rel)        # element position in the row's scan: e_rel * W + index
        entry = Cat(comp.index, e_abs)          # CSR: absolute entry number
        with m.If(load_ptr):
            loaded = self.v_port.data.word_select(ptr_slot, PTR_BITS)
            m.d.sync += [vptr.eq(loaded), v_byte_line.eq(lay.byte_line(task.a_meta, loaded))]
        with m.Elif(self.elem):
            m.d.sync += [vptr.eq(vptr + 1), v_byte_line.eq(lay.byte_line(task.a_meta, vptr + 1))]
        # N:M indices sit beside the scan word in the read and detect stages, so they move with it
        m.d.comb += [self.v_port.en.eq(Mux(nm, fetch, 1)), self.v_port.take.eq(Mux(nm, r_move, 1))]
        with m.If(nm):
            m.d.comb += self.v_port.addr.eq(v_meta_line)
        with m.Elif(first):
            m.d.comb += self.v_port.addr.eq(v_ptr_line)
        with m.Elif(csr):
            m.d.comb += self.v_port.addr.eq(Array(e_csr_lines)[comp.index >> log2(W // INDEX_BYTES)])
        with m.Else():
            m.d.comb += self.v_port.addr.eq(v_byte_line)

        # accumulate: the line the dispatcher read when it handed over the job arrives READ_LATENCY later; it goes
        # into the init register of the job's parity (the others may still serve the previous jobs' tails)
        parity = Signal(range(MacLanes.INIT_SLOTS))   # of the job in the front end: counts jobs taken, modulo
        init_due = delay_line(m, 1, OutputBufferTiming.READ_LATENCY, "init_due")
        fresh = Signal()                         # the job has not sent a MAC cycle yet
        carries = self.elem | final              # a MAC cycle of the job in the front end: element or closer
        m.d.sync += init_due[0].eq(self.job_valid)
        with m.If(self.job_valid):
            m.d.sync += [parity.eq(Mux(parity == MacLanes.INIT_SLOTS - 1, 0, parity + 1)), fresh.eq(1)]
        with m.Elif(carries):
            m.d.sync += fresh.eq(0)
        m.d.comb += [mac.init.eq(self.init), mac.init_valid.eq(init_due[-1]), mac.init_slot.eq(parity)]

        # T0: index and value known; read B. The element (or the closing bubble) waits for v_port's read:
        # elem_pipe[0] is registered in the encode cycle, elem_pipe[-1] is T0
        element = data.StructLayout({
            "valid": 1, "last": 1, "first": 1, "parity": range(MacLanes.INIT_SLOTS), "a": signed(8),
            "j": DIM_BITS, "pos": DIM_BITS, "meta": 4,
            "slot": range(W)})                   # byte (bitmask) or uint16 (CSR) slot in the v_port line
        elem_pipe = delay_line(m, element, self.READ_LATENCY, "elem_pipe")
        # the element's value and N:M index, selected by the compactor's one-hot (an AND-OR, no index decode)
        def pick(arr):
            return reduce(operator.or_, (Mux(comp.onehot[e], Value.cast(arr[e]).as_unsigned(), 0) for e in range(W)))
        issued = elem_pipe[0]
        m.d.sync += [issued.valid.eq(self.elem), issued.last.eq(final), issued.first.eq(carries & fresh),
                     issued.parity.eq(parity), issued.a.eq(pick(e_vals)), issued.j.eq(job_j),
                     issued.pos.eq(position), issued.meta.eq(pick(e_meta)),
                     issued.slot.eq(Mux(csr, lay.csr_index_slot(entry), lay.byte_slot(vptr)))]
        t0 = elem_pipe[-1]
        # N:M: on its way to T0 the element's position becomes its group's first K index (two shifts), so T0 only
        # adds the in-group index
        m.d.sync += t0.pos.eq(Mux(nm, lay.nm_k(elem_pipe[-2].pos, task.nm_n_log2, task.nm_m_log2, 0),
                                  elem_pipe[-2].pos))
        t0_k = Mux(nm, t0.pos + t0.meta, t0.pos)
        k = Mux(csr, self.v_port.data.word_select(t0.slot[:log2(W // INDEX_BYTES)], 8 * INDEX_BYTES), t0_k)
        a = Mux(bitmask, self.v_port.data.word_select(t0.slot, 8).as_signed(), t0.a)

        # U: B's row base k * nbl in a registered multiply; V: the B address. A multiplier straight into the
        # RAM address would be the slowest path of the unit on an FPGA.
        u_valid, u_last, u_first, u_parity = Signal(), Signal(), Signal(), Signal.like(parity)
        u_a, u_k, u_j = Signal(signed(8)), Signal(DIM_BITS), Signal(DIM_BITS)
        m.d.sync += [u_valid.eq(t0.valid), u_last.eq(t0.last), u_first.eq(t0.first),
                     u_parity.eq(t0.parity), u_a.eq(a), u_k.eq(k), u_j.eq(t0.j)]
        # bitmask marks come from the format, so |a| < threshold is only known from the value: the lanes are gated
        # in U, from the registered value
        passes = gemm | (Mux(u_a < 0, -u_a, u_a) >= task.threshold)
        v_valid, v_last, v_first, v_parity = Signal(), Signal(), Signal(), Signal.like(parity)
        v_a, v_j = Signal(signed(8)), Signal(DIM_BITS)
        v_row, v_line = Signal(2 * DIM_BITS), Signal.like(self.b_port.addr)   # b_line is linear in the row base
        m.d.sync += [v_valid.eq(u_valid & passes), v_last.eq(u_last), v_first.eq(u_first), v_parity.eq(u_parity),
                     v_a.eq(u_a), v_j.eq(u_j), v_row.eq(u_k * self.nbl), v_line.eq(lay.b_line(task.b_addr, 0, u_j))]
        m.d.comb += [self.b_port.en.eq(1), self.b_port.addr.eq(v_line + v_row)]

        # T1: B arrives; MAC. The operand waits for b_port's read: b_pipe[0] is registered in V, b_pipe[-1] is T1
        operand = data.StructLayout({
            "valid": 1, "last": 1, "first": 1, "parity": range(MacLanes.INIT_SLOTS), "a": signed(8),
            "bslot": range(max(W // L, 2)),
            "lanes": signed(DIM_BITS + 1),       # lanes of this block inside N
            "inside": L})                        # ... as a mask, formed on the way to T1
        b_pipe = delay_line(m, operand, self.READ_LATENCY, "b_pipe")
        m.d.sync += [b_pipe[0].valid.eq(v_valid), b_pipe[0].last.eq(v_last), b_pipe[0].first.eq(v_first),
                     b_pipe[0].parity.eq(v_parity), b_pipe[0].a.eq(v_a), b_pipe[0].bslot.eq(lay.b_slot(v_j)),
                     b_pipe[0].lanes.eq(task.n - (v_j << log2(L)))]
        t1 = b_pipe[-1]
        m.d.sync += t1.inside.eq(Cat(lane < b_pipe[-2].lanes for lane in range(L)))
        b = data.ArrayLayout(signed(8), L)(self.b_port.data.word_select(t1.bslot, 8 * L))
        m.d.comb += [mac.a.eq(t1.a), mac.valid.eq(t1.valid), mac.last.eq(t1.last), mac.b.eq(b),
                     mac.first.eq(t1.first), mac.slot.eq(t1.parity)]
        # gated lanes (B zero, inside N): flagged per lane in T1, counted a cycle later
        zero_lanes = Signal(L)
        m.d.sync += zero_lanes.eq(Mux(t1.valid, Cat((b[lane] == 0) & t1.inside[lane] for lane in range(L)), 0))
        m.d.sync += self.gated.eq(sum(zero_lanes))

        # result holding: the job's (i, j) travels beside its last element (the next job may already be
        # running), then waits with the result for this unit's write slot
        inflight = Signal(2)
        job = data.StructLayout({"i": DIM_BITS, "j": DIM_BITS})
        job_pipe = delay_line(m, job, self.result_latency, "job_pipe")
        held_job = Signal(job)
        pending = Signal()
        m.d.sync += [job_pipe[0].i.eq(row_i), job_pipe[0].j.eq(job_j)]
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
