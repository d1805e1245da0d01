"""TOPK task datapath: score rows from the output buffer -> TopkSoftmax -> P bytes into L1.

For each query row i of an m x n score matrix (written to the output buffer by an earlier gemm/spmm task,
lane blocks at ``c_addr + i*nbj + j``), the reader feeds the n scores one per cycle, in column order, to the
TopkSoftmax unit (masked columns j > i + n - m are not candidates when ``causal``). Every kept entry the unit
emits writes its P byte into row i of a P matrix in L1 (dense rows at ``a_addr``, ``words(n)`` lines each),
which the compiler zeroed; a later spmm then skips the zeros of P at run time.

Timing (exact; the simulator uses ``task_cycles``): the reader reads the first line in cycle 1 (the first
cycle of the task after the start cycle 0), takes it into the port's data register in cycle 2 while it reads
the next one, the unit accepts the first score in cycle 3 (``first_beat``) and then rows back to back
(``TopkSoftmax.row_cycles`` each); the task is done in the cycle after the last entry. The reader keeps the
next line waiting in the RAM's output, so a beat that crosses into it costs no cycle.
"""
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl import signatures
from hwgen.rtl.engine.topk_softmax import SCORE_BITS, TopkSoftmax
from hwgen.spec.layout import Layout, log2
from hwgen.spec.timing import TopkPathTiming

DIM_BITS = 16


class TopkPath(TopkPathTiming, wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__({
            "task": In(signatures.descriptor_layout()),
            "active": In(1),          # a TOPK task is running (from the cycle after start)
            "done": Out(1),
            "scores_port": In(signatures.out_read(cfg)),
            "p_write": In(signatures.l1_write(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._cfg, Layout.of(self._cfg)
        W, L, acc_bits = cfg.line_bytes, cfg.engine.lanes, cfg.engine.acc_bits
        task = self.task
        m.submodules.unit = unit = TopkSoftmax(cfg.attention.topk_max, cfg.attention.frac_bits)
        m.d.comb += unit.k.eq(task.topk)

        # ---- reader: the port's data holds the line of (row, col), the RAM's output the next one (``line``) ----
        # ``more`` (row < m), ``last_col`` (col = n - 1) and ``diag`` (the causal diagonal row + n - m) are
        # registers kept with row and col, so no compare stands between a beat and the RAM's enables
        row, col = Signal(DIM_BITS), Signal(DIM_BITS)
        more, last_col = Signal(), Signal()
        diag = Signal(signed(DIM_BITS + 2))
        started, have_line = Signal(), Signal()
        beat = unit.scores.valid & unit.scores.ready
        crossing = last_col | (col[:log2(L)] == L - 1)   # the next beat needs another line
        # the rows' lines are contiguous (row r's last line + 1 is row r+1's first), so the line read is a
        # running count from c_line(c_addr, 0, 0): no row * nbj multiply in front of the read address
        line = Signal.like(self.scores_port.addr)
        m.d.comb += self.scores_port.addr.eq(Mux(started, line + 1, lay.c_line(task.c_addr, 0, 0)))
        with m.If(self.active & ~started):
            m.d.comb += [self.scores_port.en.eq(1), self.scores_port.take.eq(0)]
            m.d.sync += [started.eq(1), line.eq(lay.c_line(task.c_addr, 0, 0)), more.eq(task.m != 0),
                         last_col.eq(task.n == 1), diag.eq(task.n - task.m)]
        with m.Elif(self.active & ~have_line):
            m.d.comb += [self.scores_port.en.eq(1), self.scores_port.take.eq(1)]
            m.d.sync += [have_line.eq(1), line.eq(line + 1)]
        with m.Elif(beat):
            m.d.comb += [self.scores_port.en.eq(crossing), self.scores_port.take.eq(crossing)]
            m.d.sync += line.eq(line + crossing)
            with m.If(last_col):
                m.d.sync += [row.eq(row + 1), col.eq(0), more.eq(row + 1 != task.m), last_col.eq(task.n == 1),
                             diag.eq(diag + 1)]
            with m.Else():
                m.d.sync += [col.eq(col + 1), last_col.eq(col + 2 == task.n)]
        with m.Else():
            m.d.comb += [self.scores_port.en.eq(0), self.scores_port.take.eq(0)]
        lane = self.scores_port.data.word_select(col[:log2(L)], acc_bits)
        score = lane[:SCORE_BITS].as_signed() if acc_bits >= SCORE_BITS else lane.as_signed()
        candidate = ~task.causal | (col <= diag)
        m.d.comb += [unit.scores.valid.eq(self.active & have_line & more),
                     unit.scores.payload.value.eq(score), unit.scores.payload.index.eq(col),
                     unit.scores.payload.valid.eq(candidate), unit.scores.payload.last.eq(last_col)]

        # ---- writer: each kept entry writes its P byte (the consumer is always ready) ----
        out_row = Signal(DIM_BITS)
        entry = unit.entries.payload
        m.d.comb += unit.entries.ready.eq(1)
        byte = entry.index[:log2(W)]
        out_base = Signal(2 * DIM_BITS)          # out_row * words(n), kept as a running sum
        m.d.comb += [self.p_write.addr.eq(lay.a_dense_line(task.a_addr, out_base, entry.index >> log2(W))),
                     self.p_write.data.eq(entry.p.replicate(W)),
                     self.p_write.en.eq(Mux(unit.entries.valid & ~entry.empty, Const(1, W) << byte, 0))]
        with m.If(unit.entries.valid & entry.last):
            m.d.sync += [out_row.eq(out_row + 1), out_base.eq(out_base + lay.words(task.n))]
        m.d.comb += self.done.eq(self.active & (out_row == task.m))
        with m.If(~self.active):
            m.d.sync += [row.eq(0), col.eq(0), started.eq(0), have_line.eq(0), out_row.eq(0), out_base.eq(0)]
        return m
