"""DSA engine: a LOAD unit (DMA in), a COMPUTE unit (R row units) and a STORE unit (DMA out) around L1
and the output buffer, fed with task descriptors in order. A STORE writes output-buffer lines, or with
``source`` = 1 L1 lines (requantized int8 rows at ``d_addr``) through an L1 read port of its own.

Issue: the descriptor on ``task`` is taken (``task.ready``) in a cycle where its unit is idle, every unit
named in its ``wait`` bits is idle, and it would not share the L1 write port with a running task (a LOAD
and a compute task that writes L1 -- TOPK, or requantized C -- never run together). Each unit then runs
on its own, so the compiler overlaps the next tile's LOAD and the last tile's STORE with compute (double
buffering) and orders them with ``wait`` bits. A unit's ``busy`` rises in the cycle after its task is
taken.

A matrix task with ``accumulate`` starts each job from its output line: the dispatcher reads it on the
output buffer's first read port (the host's and TOPK's, idle during a matrix task) in the cycle it hands the
job to a row unit, which latches it when it arrives (row_unit.py). The second read port stays the STORE's, so
a STORE of the other half runs beside it undisturbed.

What the issue rule does NOT check is left to the compiler's ``wait`` bits: a compute task must not write
output lines a running STORE reads (it waits for STORE), and a STORE with ``source`` = 1 reads L1 while it
runs, so it must not overlap a task that writes the same L1 lines: the STORE waits for COMPUTE (or LOAD)
when the task that writes its rows may still run, and a later LOAD or L1-writing compute task that reuses
those lines waits for STORE. There is no interlock in hardware (the STORE's read port never blocks a
writer): a program that breaks the rule stores whatever the lines hold when they are read.

The dispatcher walks jobs (i, j) in row-major order, one per cycle, each to the lowest-numbered free row
unit: a unit that drew a short row is free sooner and takes the next job, so long rows never serialise
the engine. A round-robin writer gives unit u the output-buffer write port in cycles where
``slot == u`` (slot counts 0..R-1 from the start); RowUnit.min_period makes that stall-free.

Compute timing: taken in cycle t, the compute unit is busy from t + 1 to t + C, where C (``compute_cycles``
in the simulator) counts from t to the cycle that sees all its work finished.

Host side: ``fill`` writes L1 lines and ``out`` reads the output buffer (both only while ``idle``);
``clear`` zeroes the counters; ``cycles`` counts the cycles in which a task is offered or a unit is busy.
The DMA units share one AXI4 master, ``hbm`` (reads: LOAD data with ARID 0 and page-table walks with ARID
``dma_load.WALK_ID``; writes: STORE).

Paging: LOAD / STORE descriptors carry virtual addresses. Each DMA unit has its own TLB (``hwgen/rtl/memory/tlb.py``,
``memory.tlb_entries`` entries each) that translates every burst before its AR / AW. One per unit, not one
shared: the two units run at the same time on different tensors (LOADs read B and A tiles, STOREs write C),
so a shared TLB would only let one unit's translations wait behind the other's walk or blocked response and
let one tensor's pages evict the other's; separate TLBs keep each unit's timing its own except for the read
channel, at the cost of twice the entry registers. Both TLBs walk through the LOAD unit, which owns the read
channel (one walk at a time; LOAD's TLB first when both ask, a walk before a data burst). The table is found
from the inputs ``page_table_base`` (physical byte address) and ``page_table_entries`` (entries; a virtual
page at or beyond it faults without a walk); ``tlb_flush`` empties both TLBs (after the host changed the
table). ``page_fault`` holds each unit's ``tlb.Fault`` (LOAD bits 0-1, STORE bits 2-3, ``tlb.page_fault_layout``):
a unit that faults stops (its bursts in flight finish) and, while any field is nonzero, no task is taken;
reset clears it. ``tlb_hits`` / ``tlb_misses`` / ``tlb_walks`` count over both TLBs since reset.
"""
from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwgen.rtl import signatures
from hwgen.rtl.engine.output_buffer import OutputBuffer
from hwgen.rtl.engine.result_writer import ResultWriter
from hwgen.rtl.engine.row_unit import DIM_BITS, RowUnit
from hwgen.rtl.engine.scratchpad import Scratchpad
from hwgen.rtl.engine.topk_path import TopkPath
from hwgen.rtl.memory.dma_load import DmaLoad
from hwgen.rtl.memory.dma_store import DmaStore
from hwgen.rtl.memory.tlb import Fault, Tlb, page_fault_layout
from hwgen.spec import isa
from hwgen.spec.layout import Layout
from hwgen.spec.timing import EngineTiming

COUNTER_BITS = 32


class DsaEngine(EngineTiming, wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__({
            "task": In(stream.Signature(signatures.descriptor_layout())),
            "idle": Out(1),
            "unit_busy": Out(len(isa.Unit)),   # bit Unit.X: that unit runs a task
            "clear": In(1),
            "cycles": Out(COUNTER_BITS),
            "elems": Out(COUNTER_BITS),   # marked elements processed (one L-lane MAC cycle each)
            "gated": Out(COUNTER_BITS),   # lane-MACs whose B operand was zero (gated, not skipped)
            "dma_error": Out(2),          # bit 0: a LOAD beat, bit 1: a STORE response was not OKAY
            "page_table_base": In(isa.DESCRIPTOR.bits("hbm_addr")),
            "page_table_entries": In(Tlb.entries_bits(cfg)),
            "tlb_flush": In(1),
            "page_fault": Out(page_fault_layout()),
            "tlb_hits": Out(COUNTER_BITS),
            "tlb_misses": Out(COUNTER_BITS),
            "tlb_walks": Out(COUNTER_BITS),
            "fill": Out(signatures.l1_write(cfg, byte_enables=False)),
            "out": Out(signatures.out_read(cfg)),
            "hbm": Out(signatures.hbm_axi(cfg)),
            "hbm_ar_stream": Out(1),      # with an AR on `hbm`: the LOAD's `stream` bit (read-once data); walks: 0
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R = cfg.engine.rows
        lay = Layout.of(cfg)

        # cfg.l1_read_ports: 3 per row unit, then 2 for the writer, 1 for the STORE (source = 1)
        m.submodules.l1 = l1 = Scratchpad(cfg, read_ports=cfg.l1_read_ports)
        # output buffer: port 0 is the host's, TOPK's and accumulate's (never at once), port 1 the STORE's
        m.submodules.out_buf = out_buf = OutputBuffer(cfg, read_ports=2)
        out_rd = out_buf.read[0]
        m.submodules.writer = writer = ResultWriter(cfg)
        connect(m, writer.mult_port, l1.read[3 * R])
        connect(m, writer.shift_port, l1.read[3 * R + 1])
        connect(m, writer.out_write, out_buf.write)

        m.submodules.load = load = DmaLoad(cfg, walkers=2)
        m.submodules.store = store = DmaStore(cfg)
        tlbs = []
        for index, (name, unit) in enumerate((("load_tlb", load), ("store_tlb", store))):
            tlb = Tlb(cfg, addr_width=isa.DESCRIPTOR.bits("hbm_addr"))
            m.submodules[name] = tlb
            tlbs.append(tlb)
            m.d.comb += [tlb.table_base.eq(self.page_table_base), tlb.table_entries.eq(self.page_table_entries),
                         tlb.flush.eq(self.tlb_flush)]
            connect(m, unit.xlate_req, tlb.req)
            connect(m, tlb.resp, unit.xlate_resp)
            connect(m, tlb.walk_req, load.walk_req[index])
            connect(m, load.walk_resp[index], tlb.walk_resp)
        m.d.comb += [self.tlb_hits.eq(sum(t.hits for t in tlbs)), self.tlb_misses.eq(sum(t.misses for t in tlbs)),
                     self.tlb_walks.eq(sum(t.walks for t in tlbs)),
                     self.page_fault.load.eq(load.fault), self.page_fault.store.eq(store.fault)]
        halted = (load.fault != Fault.NONE) | (store.fault != Fault.NONE)
        connect(m, load.ar, wiring.flipped(self.hbm.ar))
        load_stream = Signal()                        # the running LOAD's `stream` bit, a hint for the L3
        m.d.comb += self.hbm_ar_stream.eq(load_stream & (self.hbm.ar.payload.id == 0))
        connect(m, load.r, wiring.flipped(self.hbm.r))
        connect(m, store.aw, wiring.flipped(self.hbm.aw))
        connect(m, store.w, wiring.flipped(self.hbm.w))
        connect(m, store.b, wiring.flipped(self.hbm.b))
        connect(m, store.out_read, out_buf.read[1])
        connect(m, store.l1_read, l1.read[3 * R + 2])

        task = Signal(signatures.descriptor_layout())        # the compute unit's descriptor
        running = Signal()                            # the compute unit is busy
        writes_l1 = Signal()                          # ... with a task that writes L1
        is_topk = task.opcode == isa.Opcode.TOPK

        # ---- issue: the head descriptor goes to its unit when nothing it waits for is busy ----
        head = self.task.payload
        busy = Cat(load.busy, running, store.busy)
        m.d.comb += [self.unit_busy.eq(busy), self.idle.eq(busy == 0),
                     self.dma_error.eq(Cat(load.error, store.error))]
        head_load, head_store = head.opcode == isa.Opcode.LOAD, head.opcode == isa.Opcode.STORE
        head_compute = ~head_load & ~head_store
        head_writes_l1 = head_compute & ((head.opcode == isa.Opcode.TOPK) | (head.requant != isa.Requant.NONE))
        unit_free = Mux(head_load, ~load.busy, Mux(head_store, ~store.busy, ~running))
        l1_port_free = Mux(head_load, ~(running & writes_l1), ~(head_writes_l1 & load.busy))
        m.d.comb += self.task.ready.eq(unit_free & ((head.wait & busy) == 0) & l1_port_free & ~halted)
        taken = self.task.valid & self.task.ready
        with m.If(taken & head_load):
            m.d.sync += load_stream.eq(head.stream)
        m.d.comb += [load.start.eq(taken & head_load), load.hbm_addr.eq(head.hbm_addr),
                     load.l1_line.eq(head.a_addr), load.lines.eq(head.lines),
                     store.start.eq(taken & head_store), store.hbm_addr.eq(head.hbm_addr),
                     store.out_line.eq(head.c_addr), store.l1_line.eq(head.d_addr), store.source.eq(head.source),
                     store.lines.eq(head.lines)]
        start = taken & head_compute
        # a TOPK task reads scores from the output buffer and writes P bytes into L1; otherwise the host may
        m.submodules.topk = topk = TopkPath(cfg)
        m.d.comb += [topk.task.eq(task), topk.active.eq(running & is_topk), topk.scores_port.data.eq(out_rd.data),
                     self.out.data.eq(out_rd.data)]
        m.d.comb += writer.task.eq(task)
        with m.If(load.busy):
            m.d.comb += [out_rd.addr.eq(self.out.addr), out_rd.en.eq(self.out.en),
                         l1.fill.addr.eq(load.l1_write.addr), l1.fill.data.eq(load.l1_write.data),
                         l1.fill.en.eq(load.l1_write.en.replicate(cfg.line_bytes))]
            with m.If(topk.active):
                m.d.comb += [out_rd.addr.eq(topk.scores_port.addr), out_rd.en.eq(topk.scores_port.en),
                             out_rd.take.eq(topk.scores_port.take)]
        with m.Elif(topk.active):
            m.d.comb += [out_rd.addr.eq(topk.scores_port.addr), out_rd.en.eq(topk.scores_port.en),
                         out_rd.take.eq(topk.scores_port.take),
                         l1.fill.addr.eq(topk.p_write.addr), l1.fill.data.eq(topk.p_write.data),
                         l1.fill.en.eq(topk.p_write.en)]
        with m.Elif(running):
            m.d.comb += [out_rd.addr.eq(self.out.addr), out_rd.en.eq(self.out.en),
                         l1.fill.addr.eq(writer.d_write.addr), l1.fill.data.eq(writer.d_write.data),
                         l1.fill.en.eq(writer.d_write.en)]
        with m.Else():
            m.d.comb += [out_rd.addr.eq(self.out.addr), out_rd.en.eq(self.out.en),
                         l1.fill.addr.eq(self.fill.addr), l1.fill.data.eq(self.fill.data),
                         l1.fill.en.eq(self.fill.en.replicate(cfg.line_bytes))]

        # the task's sizes, in two steps: at its start from the task port (its payload is a register), in the next
        # cycle (``prep``: dispatch begins a cycle later, ``first_dispatch_cycle``) from those registers, so no
        # size arithmetic stands in front of the units' multiplies and compares and none takes two carry chains
        nw, nbl, nbj = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS)
        prep = Signal()
        # scan values per row of A (N:M: the kept ones), from the port
        head_kept = Mux(head.a_format == isa.AFormat.NM, lay.nm_kept(head.k, head.nm_n_log2, head.nm_m_log2), head.k)
        kept = Signal(head_kept.shape(), name="kept")

        slot = Signal(range(max(R, 2)))
        job_i, job_j = Signal(DIM_BITS), Signal(DIM_BITS)
        job_word = Signal(2 * DIM_BITS)          # job_i * nw, the row's first scan word, kept as a sum
        # job_i == m and job_j == the row's last block, kept as registers beside down counters of the rows and of the
        # row's blocks still to dispatch, so no add or compare stands in front of the units' job_valid
        all_dispatched, at_last_block = Signal(), Signal()
        rows_left = Signal(DIM_BITS)

        # where a job's sums start: its output line (accumulate; read as it is dispatched), else 0
        job_start = Mux(task.accumulate, out_rd.data, 0)
        units = []
        for u in range(R):
            unit = RowUnit(cfg)
            m.submodules[f"unit{u}"] = unit
            units.append(unit)
            m.d.comb += [unit.task.eq(task), unit.nw.eq(nw), unit.nbl.eq(nbl), unit.init.eq(job_start),
                         unit.job_i.eq(job_i), unit.job_j.eq(job_j), unit.job_word.eq(job_word),
                         unit.result_taken.eq(unit.result_pending & (slot == u))]
            connect(m, unit.a_port, l1.read[3 * u])
            connect(m, unit.v_port, l1.read[3 * u + 1])
            connect(m, unit.b_port, l1.read[3 * u + 2])

        # dispatch: the lowest-numbered free unit takes the next job
        can_dispatch = running & ~prep & ~all_dispatched & ~is_topk
        for u, unit in enumerate(units):
            lower_free = [v.free for v in units[:u]]
            chosen = unit.free
            for f in lower_free:
                chosen = chosen & ~f
            m.d.comb += unit.job_valid.eq(can_dispatch & chosen)
        dispatched = can_dispatch & _any(unit.free for unit in units)
        # accumulate: read the job's output line as it is handed over (the unit latches it the next cycle).
        # The port is the host's / TOPK's, both idle during a matrix task, so it wins even while a LOAD runs
        row_base = Signal(2 * DIM_BITS)          # job_i * nbj, kept as a sum (no multiplier)
        # (read in every cycle a job waits, taken or not: the read does not wait for the units' ``free``)
        with m.If(running & task.accumulate & ~is_topk):
            m.d.comb += [out_rd.addr.eq(lay.c_line(task.c_addr, row_base, job_j)), out_rd.en.eq(can_dispatch)]
        # causal (sampled) products skip the lane blocks wholly above the diagonal j > i + (n - m). The last block
        # of the current row and of the next one are registers: the row after that is worked out while a row
        # runs, from its diagonal column i + 2 + n - m kept as a count, so no diagonal arithmetic stands between
        # job_i and the dispatch
        last_col_block = Signal(signed(DIM_BITS + 2))    # the last block of a row without the causal mask

        def last_block_of(column):
            diagonal = lay.diagonal_block(column)
            return Mux(task.causal & (diagonal < last_col_block), diagonal, last_col_block)
        block_shape, column_shape = signed(DIM_BITS + 3), signed(DIM_BITS + 2)
        blocks_left, next_last_block = Signal(block_shape), Signal(block_shape)   # this row's after job_j; the next's
        diagonal0, diagonal1, far_diagonal = (Signal(column_shape, name=n)
                                              for n in ("diagonal0", "diagonal1", "far_diagonal"))
        with m.If(dispatched):
            with m.If(at_last_block):
                m.d.sync += [job_j.eq(0), job_i.eq(job_i + 1), row_base.eq(row_base + nbj), job_word.eq(job_word + nw),
                             blocks_left.eq(next_last_block), next_last_block.eq(last_block_of(far_diagonal)),
                             far_diagonal.eq(far_diagonal + 1), at_last_block.eq(next_last_block == 0),
                             rows_left.eq(rows_left - 1), all_dispatched.eq(rows_left == 1)]
            with m.Else():
                m.d.sync += [job_j.eq(job_j + 1), blocks_left.eq(blocks_left - 1), at_last_block.eq(blocks_left == 1)]

        # round-robin: unit u hands its result to the writer in cycles where slot == u
        with m.Switch(slot):
            for u, unit in enumerate(units):
                with m.Case(u):
                    m.d.comb += [writer.valid.eq(unit.result_pending), writer.i.eq(unit.result_i),
                                 writer.j.eq(unit.result_j), writer.lanes.eq(unit.result)]

        # compute start / end
        finished = running & Mux(is_topk, topk.done,
                                 all_dispatched & _all(unit.quiet for unit in units) & ~writer.busy)
        with m.If(running):
            m.d.sync += slot.eq(Mux(slot == R - 1, 0, slot + 1))
            with m.If(finished):
                m.d.sync += running.eq(0)
        with m.Else():
            # while the compute unit is idle its task registers follow the task port, so they hold the task taken
            # in the start cycle without an enable fanned out from the issue decision (which only sets `running`)
            m.d.sync += [task.eq(head), running.eq(start), writes_l1.eq(head_writes_l1), slot.eq(0), job_i.eq(0),
                         job_j.eq(0), row_base.eq(0), job_word.eq(0), all_dispatched.eq(head.m == 0),
                         rows_left.eq(head.m), kept.eq(head_kept), nbl.eq(lay.b_row_lines(head.n)),
                         nbj.eq(lay.blocks(head.n)), last_col_block.eq(lay.blocks(head.n) - 1),
                         diagonal0.eq(head.n - head.m), diagonal1.eq(head.n - head.m + 1)]
        m.d.sync += prep.eq(start)
        # the first row's "last block is block 0" tests both candidates for 0 beside the compare that picks one,
        # not the picked value after it
        diagonal0_block = lay.diagonal_block(diagonal0)
        first_is_diagonal = task.causal & (diagonal0_block < last_col_block)
        with m.If(prep):
            m.d.sync += [nw.eq(lay.words(kept)), blocks_left.eq(last_block_of(diagonal0)),
                         at_last_block.eq(Mux(first_is_diagonal, diagonal0_block == 0, last_col_block == 0)),
                         next_last_block.eq(last_block_of(diagonal1)), far_diagonal.eq(diagonal1 + 1)]

        # counters (the units' gated lanes are summed into a register first, then counted)
        gated_now = Signal(range(R * cfg.engine.lanes + 1))
        m.d.sync += gated_now.eq(sum(unit.gated for unit in units))
        with m.If(self.clear):
            m.d.sync += [self.cycles.eq(0), self.elems.eq(0), self.gated.eq(0)]
        with m.Else():
            with m.If(self.task.valid | (busy != 0)):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            m.d.sync += [self.elems.eq(self.elems + sum(unit.elem for unit in units)),
                         self.gated.eq(self.gated + gated_now)]
        return m


def _any(bits):
    out = 0
    for b in bits:
        out = out | b
    return out


def _all(bits):
    out = 1
    for b in bits:
        out = out & b
    return out
