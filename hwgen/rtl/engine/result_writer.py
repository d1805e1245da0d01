"""Result writer: puts one job's L accumulators per cycle into the output buffer, optionally requantized.

Without requantization the line goes to the output buffer in the cycle it arrives. With it, that cycle
reads the job's multipliers and shifts from L1 (a table at ``rq_addr``: uint16 multipliers, then from the
next line the uint8 shifts; one entry per column for PER_CHANNEL, one for PER_TENSOR), and the next cycle
writes ``clamp((x * mult + round) >> shift, -128, 127)`` (round half up; golden.numerics.requantize) both to
the output buffer (sign-extended lanes) and as int8 bytes into L1 row i at ``d_addr`` (dense rows of
``words(n)`` lines), where a later task can read it as its A or B: layers chain on chip.
"""
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl import signatures
from hwgen.spec import isa
from hwgen.spec.layout import Layout, log2
from hwgen.spec.timing import ResultWriterTiming

DIM_BITS = 16
MULT_BYTES = 2
SHIFT_BITS = 6   # shifts are 0..47 (golden.numerics.requant_constants)


class ResultWriter(ResultWriterTiming, wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        L = cfg.engine.lanes
        port = In(signatures.l1_read(cfg))
        super().__init__({
            "task": In(signatures.descriptor_layout()),
            "valid": In(1), "i": In(DIM_BITS), "j": In(DIM_BITS),
            "lanes": In(data.ArrayLayout(signed(cfg.engine.acc_bits), L)),
            "busy": Out(1),                     # a requantized line is still to be written
            "out_write": Out(signatures.out_write(cfg)),
            "mult_port": port, "shift_port": port,
            "d_write": Out(signatures.l1_write(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._cfg, Layout.of(self._cfg)
        W, L, acc_bits = cfg.line_bytes, cfg.engine.lanes, cfg.engine.acc_bits
        task = self.task
        requant = task.requant != isa.Requant.NONE
        per_channel = task.requant == isa.Requant.PER_CHANNEL
        nbj = lay.blocks(task.n)

        # table lines of this block's multipliers and shifts (PER_TENSOR: entry 0 for every lane)
        first_col = self.j << log2(L)
        entries = Mux(per_channel, task.n, 1)
        shift_base = task.rq_addr + lay.lines_for_bytes(entries * MULT_BYTES)
        m.d.comb += [self.mult_port.en.eq(self.valid), self.shift_port.en.eq(self.valid),
                     self.mult_port.addr.eq(lay.byte_line(task.rq_addr, Mux(per_channel, first_col * MULT_BYTES, 0))),
                     self.shift_port.addr.eq(lay.byte_line(shift_base, Mux(per_channel, first_col, 0)))]

        # stage 1 (requant only): the table arrives
        s1_valid = Signal()
        s1_i, s1_j = Signal(DIM_BITS), Signal(DIM_BITS)
        s1_lanes = Signal.like(self.lanes)
        m.d.sync += [s1_valid.eq(self.valid & requant), s1_i.eq(self.i), s1_j.eq(self.j), s1_lanes.eq(self.lanes)]
        m.d.comb += self.busy.eq(s1_valid)
        s1_col = s1_j << log2(L)
        y = Signal(data.ArrayLayout(signed(8), L))
        for lane in range(L):
            # entry of this lane's column in the table line (PER_TENSOR: entry 0 for every lane)
            mult_entry = Mux(per_channel, (lay.byte_slot(s1_col * MULT_BYTES) >> 1) + lane, 0)
            shift_entry = Mux(per_channel, lay.byte_slot(s1_col) + lane, 0)
            mult = self.mult_port.data.word_select(mult_entry[:log2(W // MULT_BYTES)], 16)
            shift = self.shift_port.data.word_select(shift_entry[:log2(W)], 8)[:SHIFT_BITS]
            rounding = Mux(shift == 0, 0, Const(1, 48) << (shift - 1).as_unsigned())
            scaled = Signal(signed(acc_bits + 18), name=f"scaled{lane}")
            m.d.comb += scaled.eq((s1_lanes[lane] * mult + rounding) >> shift)
            m.d.comb += y[lane].eq(Mux(scaled > 127, 127, Mux(scaled < -128, -128, scaled)))

        # writes: the plain line now, or the requantized line one cycle later
        line_i, line_j = Mux(s1_valid, s1_i, self.i), Mux(s1_valid, s1_j, self.j)
        sign_extended = Signal.like(self.lanes)
        m.d.comb += [sign_extended[lane].eq(y[lane]) for lane in range(L)]
        m.d.comb += [self.out_write.addr.eq(lay.c_line(task.c_addr, line_i * nbj, line_j)),
                     self.out_write.en.eq(Mux(requant, s1_valid, self.valid)),
                     self.out_write.data.eq(Mux(requant, sign_extended.as_value(), self.lanes.as_value()))]
        inside = Cat(*(((s1_col + lane) < task.n) for lane in range(L)))
        m.d.comb += [self.d_write.addr.eq(lay.a_dense_line(task.d_addr, s1_i * lay.words(task.n), s1_col >> log2(W))),
                     self.d_write.data.eq(y.as_value().replicate(W // L)),
                     self.d_write.en.eq(Mux(s1_valid, inside << s1_col[:log2(W)], 0))]
        return m
