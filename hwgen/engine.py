"""DSA engine: L1 scratchpad + R row units + output buffer, running one descriptor at a time.

The dispatcher walks jobs (i, j) in row-major order, one per cycle, each to the lowest-numbered free row
unit: a unit that drew a short row is free sooner and takes the next job, so long rows never serialise
the engine. A round-robin writer gives unit u the output-buffer write port in cycles where
``slot == u`` (slot counts 0..R-1 from the start); RowUnit.min_period makes that stall-free.

Host side (until the memory hierarchy lands): ``fill`` writes L1 lines, ``start`` with ``desc`` runs one
task, ``done`` rises (and stays) when every result is in the output buffer; ``cycles`` is the count from
the start cycle (cycle 0) to the cycle that sees all work finished; ``out`` reads the output buffer.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out, connect

from . import isa, signatures
from .layout import Layout
from .result_writer import ResultWriter
from .row_unit import DIM_BITS, RowUnit
from .scratchpad import Scratchpad
from .topk_path import TopkPath

COUNTER_BITS = 32


class DsaEngine(wiring.Component):
    #: the start cycle is cycle 0; descriptor registers are valid and dispatch begins in cycle 1
    first_dispatch_cycle = 1
    #: ``done`` is decided in the cycle after the last output-buffer write; ``cycles`` counts up to it
    done_delay = 1

    @staticmethod
    def write_slot(cycle: int, rows: int) -> int:
        """Which row unit owns the output-buffer write port in ``cycle`` (counted from the start)."""
        return (cycle - 1) % rows

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__({
            "start": In(1),
            "desc": In(isa.descriptor_layout()),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(COUNTER_BITS),
            "elems": Out(COUNTER_BITS),   # marked elements processed (one L-lane MAC cycle each)
            "gated": Out(COUNTER_BITS),   # lane-MACs whose B operand was zero (gated, not skipped)
            "fill": Out(signatures.l1_write(cfg, byte_enables=False)),
            "out": Out(signatures.out_read(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R = cfg.engine.rows
        lay = Layout.of(cfg)

        m.submodules.l1 = l1 = Scratchpad(cfg, read_ports=3 * R + 2)   # 3 per row unit, 2 for the writer
        out_buf = memory.Memory(shape=cfg.out_line_bits, depth=cfg.out_lines, init=[])
        m.submodules.out_buf = out_buf
        out_wr = out_buf.write_port()
        out_rd = out_buf.read_port(domain="sync")
        m.submodules.writer = writer = ResultWriter(cfg)
        connect(m, writer.mult_port, l1.read[3 * R])
        connect(m, writer.shift_port, l1.read[3 * R + 1])
        m.d.comb += [out_wr.addr.eq(writer.out_write.addr), out_wr.data.eq(writer.out_write.data),
                     out_wr.en.eq(writer.out_write.en)]

        task = Signal(isa.descriptor_layout())
        running = self.busy
        is_topk = task.opcode == isa.Opcode.TOPK
        # a TOPK task reads scores from the output buffer and writes P bytes into L1; otherwise the host may
        m.submodules.topk = topk = TopkPath(cfg)
        m.d.comb += [topk.task.eq(task), topk.active.eq(running & is_topk), topk.scores_port.data.eq(out_rd.data),
                     self.out.data.eq(out_rd.data)]
        m.d.comb += writer.task.eq(task)
        with m.If(topk.active):
            m.d.comb += [out_rd.addr.eq(topk.scores_port.addr), out_rd.en.eq(topk.scores_port.en),
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

        nw, nbl, nbj = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS)
        kept = Mux(task.a_format == isa.AFormat.NM, lay.nm_kept(task.k, task.nm_n_log2, task.nm_m_log2), task.k)
        m.d.comb += [nw.eq(lay.words(kept)), nbl.eq(lay.b_row_lines(task.n)), nbj.eq(lay.blocks(task.n))]

        slot = Signal(range(max(R, 2)))
        job_i, job_j = Signal(DIM_BITS), Signal(DIM_BITS)
        all_dispatched = job_i == task.m

        units = []
        for u in range(R):
            unit = RowUnit(cfg)
            m.submodules[f"unit{u}"] = unit
            units.append(unit)
            m.d.comb += [unit.task.eq(task), unit.nw.eq(nw), unit.nbl.eq(nbl),
                         unit.job_i.eq(job_i), unit.job_j.eq(job_j),
                         unit.result_taken.eq(unit.result_pending & (slot == u))]
            connect(m, unit.a_port, l1.read[3 * u])
            connect(m, unit.v_port, l1.read[3 * u + 1])
            connect(m, unit.b_port, l1.read[3 * u + 2])

        # dispatch: the lowest-numbered free unit takes the next job
        can_dispatch = running & ~all_dispatched & ~is_topk
        for u, unit in enumerate(units):
            lower_free = [v.free for v in units[:u]]
            chosen = unit.free
            for f in lower_free:
                chosen = chosen & ~f
            m.d.comb += unit.job_valid.eq(can_dispatch & chosen)
        dispatched = can_dispatch & _any(unit.free for unit in units)
        # causal (sampled) products skip the lane blocks wholly above the diagonal j > i + (n - m)
        diagonal_block = lay.causal_blocks(job_i, task.m, task.n) - 1
        last_block = Mux(task.causal & (diagonal_block < nbj - 1), diagonal_block, nbj - 1)
        with m.If(dispatched):
            with m.If(job_j == last_block):
                m.d.sync += [job_j.eq(0), job_i.eq(job_i + 1)]
            with m.Else():
                m.d.sync += job_j.eq(job_j + 1)

        # round-robin: unit u hands its result to the writer in cycles where slot == u
        with m.Switch(slot):
            for u, unit in enumerate(units):
                with m.Case(u):
                    m.d.comb += [writer.valid.eq(unit.result_pending), writer.i.eq(unit.result_i),
                                 writer.j.eq(unit.result_j), writer.lanes.eq(unit.result)]

        # start / done / counters
        finished = running & Mux(is_topk, topk.done,
                                 all_dispatched & _all(unit.quiet for unit in units) & ~writer.busy)
        with m.If(running):
            m.d.sync += [self.cycles.eq(self.cycles + 1), slot.eq(Mux(slot == R - 1, 0, slot + 1))]
            m.d.sync += [self.elems.eq(self.elems + sum(unit.elem for unit in units)),
                         self.gated.eq(self.gated + sum(unit.gated for unit in units))]
            with m.If(finished):
                m.d.sync += [running.eq(0), self.done.eq(1)]
        with m.Elif(self.start):
            m.d.sync += [task.eq(self.desc), running.eq(1), self.done.eq(0), self.cycles.eq(0),
                         self.elems.eq(0), self.gated.eq(0), slot.eq(0), job_i.eq(0), job_j.eq(0)]
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
