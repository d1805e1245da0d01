"""Result writer: puts one job's L accumulators per cycle into the output buffer, optionally requantized.

A pipeline that takes a line every cycle (cycle t: the line is handed over in its write slot; T = t + 1 + the
L1's READ_LATENCY, 2):
  t     the line is registered;
  t+1   the requant table is read from L1 (a table at ``rq_addr``: uint16 multipliers, then from the next line
        the uint8 shifts; one entry per column for PER_CHANNEL, one for PER_TENSOR); the rows' line bases
        i * nbj and i * words(n) are multiplied (registered: no multiplier sits in front of a RAM address);
  t+2   a plain line is written to the output buffer;
  T     the table is in the read ports' registers: each lane's multiplier and shift are picked;
  T+1   requant: x * mult as products of 17-bit pieces of x (one MULT18X18D each, registered);
  T+2   the pieces' products summed;   T+3   + round (half up);   T+4   >> shift;
  T+5   clamp to [-128, 127]  (golden.numerics.requantize);
  T+6   the requantized line is written both to the output buffer (sign-extended lanes) and as int8 bytes into
        L1 row i at ``d_addr`` (dense rows of ``words(n)`` lines), where a later task can read it as its A or
        B: layers chain on chip.
``latency(requant)`` (``hwgen/spec/timing.py``) is that distance from t to the write; ``busy`` is high while a
line is in the pipeline.
"""
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl import signatures
from hwgen.rtl.pipeline import delay_line
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
            "busy": Out(1),                     # a line is in the pipeline, not yet written
            "out_write": In(signatures.out_write(cfg)),   # the writer drives the write ports (the flip)
            "mult_port": port, "shift_port": port,
            "d_write": In(signatures.l1_write(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._cfg, Layout.of(self._cfg)
        W, L, acc_bits = cfg.line_bytes, cfg.engine.lanes, cfg.engine.acc_bits
        task = self.task
        requant = task.requant != isa.Requant.NONE
        per_channel = task.requant == isa.Requant.PER_CHANNEL
        depth = self.latency(isa.Requant.PER_TENSOR)
        plain_at = self.latency(isa.Requant.NONE)

        # stage registers: st[s] holds the line handed over s cycles ago
        line = data.StructLayout({"valid": 1, "i": DIM_BITS, "j": DIM_BITS})
        st = [None] + [Signal(line, name=f"s{s}") for s in range(1, depth + 1)]
        m.d.sync += st[1].eq(Cat(self.valid, self.i, self.j))
        m.d.sync += [st[s + 1].eq(st[s]) for s in range(1, depth)]
        last = Mux(requant, depth, plain_at)        # the stage that writes
        m.d.comb += self.busy.eq(Cat(st[s].valid & (s <= last) for s in range(1, depth + 1)) != 0)

        # t+1: the table lines of this block's multipliers and shifts (PER_TENSOR: entry 0 for every lane), from
        # the registered line (the units' result select is not in front of the L1's read address)
        first_col = st[1].j << log2(L)
        entries = Mux(per_channel, task.n, 1)
        shift_base = task.rq_addr + lay.lines_for_bytes(entries * MULT_BYTES)
        m.d.comb += [self.mult_port.en.eq(st[1].valid), self.shift_port.en.eq(st[1].valid),
                     self.mult_port.addr.eq(lay.byte_line(task.rq_addr, Mux(per_channel, first_col * MULT_BYTES, 0))),
                     self.shift_port.addr.eq(lay.byte_line(shift_base, Mux(per_channel, first_col, 0)))]
        # x[s]: the line handed over s cycles ago
        x = [self.lanes, *delay_line(m, self.lanes.shape(), self.READ_LATENCY + 2, "x")]
        m.d.sync += x[1].eq(self.lanes)

        # t+1: multiply the row bases
        s1_col = st[1].j << log2(L)
        c_row, d_row = Signal(2 * DIM_BITS), Signal(2 * DIM_BITS)
        c_col, d_col = Signal.like(self.out_write.addr), Signal.like(self.d_write.addr)   # the lines are linear
        m.d.sync += [c_row.eq(st[1].i * lay.blocks(task.n)), d_row.eq(st[1].i * lay.words(task.n)),
                     c_col.eq(lay.c_line(task.c_addr, 0, st[1].j)),
                     d_col.eq(lay.a_dense_line(task.d_addr, 0, s1_col >> log2(W)))]

        # T: pick the table entries
        table_col = st[self.READ_LATENCY + 1].j << log2(L)
        mult = Signal(data.ArrayLayout(16, L))
        # shift[s]: the shifts picked s - 1 cycles after T
        shift = [None, *delay_line(m, data.ArrayLayout(SHIFT_BITS, L), 4, "shift")]
        for lane in range(L):
            mult_entry = Mux(per_channel, (lay.byte_slot(table_col * MULT_BYTES) >> 1) + lane, 0)
            shift_entry = Mux(per_channel, lay.byte_slot(table_col) + lane, 0)
            m.d.sync += [mult[lane].eq(self.mult_port.data.word_select(mult_entry[:log2(W // MULT_BYTES)], 16)),
                         shift[1][lane].eq(self.shift_port.data.word_select(shift_entry[:log2(W)], 8)[:SHIFT_BITS])]

        # t+2: the line addresses; T+1: multiply
        c_addr = [None, None, None, *delay_line(m, self.out_write.addr.shape(), depth - 2, "c_addr")]
        d_addr = [None, None, None, *delay_line(m, self.d_write.addr.shape(), depth - 2, "d_addr")]
        c_addr2, d_addr2 = c_col + c_row, d_col + d_row
        m.d.sync += [c_addr[3].eq(c_addr2), d_addr[3].eq(d_addr2)]
        # x * mult in pieces: x's low 17-bit pieces (unsigned) and its top piece (signed) each times the uint16
        # multiplier fit one 18x18 multiplier; their products are registered before the sum (a product and a
        # wide add in one cycle were the writer's slowest path)
        cuts = [*range(0, acc_bits, 17), acc_bits]
        pieces = [(lo, hi) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        parts = [Signal(data.ArrayLayout(signed(hi - lo + 18), L), name=f"part_{lo}") for lo, hi in pieces]
        prod = Signal(data.ArrayLayout(signed(acc_bits + 17), L))
        rounded = Signal(data.ArrayLayout(signed(acc_bits + 18), L))
        scaled = Signal(data.ArrayLayout(signed(acc_bits + 18), L))
        y = Signal(data.ArrayLayout(signed(8), L))
        x_at_mult = x[self.READ_LATENCY + 2]
        # the rounding constant 2^(shift-1) is decoded beside the sum of the pieces, so the rounding add is a plain add
        rounding = Signal(data.ArrayLayout(unsigned(48), L))   # shifts are < 48
        for lane in range(L):
            m.d.sync += rounding[lane].eq(Mux(shift[2][lane] == 0, 0,
                                              Const(1, 48) << (shift[2][lane] - 1).as_unsigned()))
            for (lo, hi), part in zip(pieces, parts, strict=True):
                piece = x_at_mult[lane][lo:hi].as_signed() if hi == acc_bits else x_at_mult[lane][lo:hi]
                m.d.sync += part[lane].eq(piece * mult[lane])                                 # T+1
            m.d.sync += [prod[lane].eq(sum(part[lane] << lo for (lo, _), part in zip(pieces, parts, strict=True))),
                         rounded[lane].eq(prod[lane] + rounding[lane]),                      # T+3
                         scaled[lane].eq(rounded[lane] >> shift[4][lane]),                   # T+4
                         y[lane].eq(Mux(scaled[lane] > 127, 127,
                                        Mux(scaled[lane] < -128, -128, scaled[lane])))]      # T+5

        # writes: a plain line in t+2, a requantized one in T+6
        sign_extended = Signal.like(self.lanes)
        m.d.comb += [sign_extended[lane].eq(y[lane]) for lane in range(L)]
        m.d.comb += [self.out_write.addr.eq(Mux(requant, c_addr[depth], c_addr2)),
                     self.out_write.en.eq(Mux(requant, st[depth].valid, st[plain_at].valid)),
                     self.out_write.data.eq(Mux(requant, sign_extended.as_value(), x[plain_at].as_value()))]
        col = st[depth].j << log2(L)
        inside = Cat(*(((col + lane) < task.n) for lane in range(L)))
        m.d.comb += [self.d_write.addr.eq(d_addr[depth]),
                     self.d_write.data.eq(y.as_value().replicate(W // L)),
                     self.d_write.en.eq(Mux(requant & st[depth].valid, inside << col[:log2(W)], 0))]
        return m
