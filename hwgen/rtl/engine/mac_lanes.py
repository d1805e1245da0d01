"""L multiply-accumulate lanes with the configured overflow rule.

Pipeline (FPGA-friendly: multiplier inputs and products are registered, no mux in the MAC path):
  cycle 0  operands presented      -> operand registers
  cycle 1  multiply                -> product registers
  cycle 2  accumulate (wrap or saturate, every step) -> acc; on ``last`` the sum goes to ``result``
``latency`` (3) is the distance from an operand to the ``result_valid`` strobe that includes it; the
simulator reads it from ``hwgen/spec/timing.py``.

A job's sum starts from 0, or, for an operand marked ``first``, from one of ``INIT_SLOTS`` init registers
(``slot``, carried with the operand): the job's output line for a task with ``accumulate`` (K tiling), 0
otherwise. The owner writes a register (``init_valid``, ``init_slot``) ahead of the job's first operand and
takes the slots in turn; three are enough for the row unit, whose next-but-one job is written no earlier than
two front ends after the current one's last element, later than that element's accumulate. Choosing the
start (an init register or acc) is a mux in front of the adder, not a pipeline stage, so the latency stays 3.

Each lane has its own operand registers (a lane whose B value is zero, or a bubble, holds them: no toggle),
so each sits beside its multiplier instead of one A register fanning out across the DSP column.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.spec.timing import MacLanesTiming


def overflow_rule(m: Module, wide, acc_bits: int, mode: str):
    """``wide`` (acc_bits+1 bits or more) -> acc_bits, wrapping or saturating; never Amaranth's truncation."""
    out = Signal(signed(acc_bits))
    low, high = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if mode == "wrap":
        m.d.comb += out.eq(wide[:acc_bits].as_signed())
    else:
        with m.If(wide > high):
            m.d.comb += out.eq(high)
        with m.Elif(wide < low):
            m.d.comb += out.eq(low)
        with m.Else():
            m.d.comb += out.eq(wide)
    return out


class MacLanes(MacLanesTiming, wiring.Component):
    INIT_SLOTS = 3

    def __init__(self, lanes: int, operand_bits: int, acc_bits: int, overflow: str):
        self._lanes, self._acc_bits, self._overflow = lanes, acc_bits, overflow
        self.result_layout = data.ArrayLayout(signed(acc_bits), lanes)
        super().__init__({
            "a": In(signed(operand_bits)),
            "b": In(data.ArrayLayout(signed(operand_bits), lanes)),
            "valid": In(1),      # low: a bubble, accumulates nothing
            "last": In(1),       # closes the sum: result <- acc + this product, acc <- 0
            "first": In(1),      # opens a sum (valid or a bubble): acc <- init[slot] + this product
            "slot": In(range(self.INIT_SLOTS)),   # with ``first``: which init register the job starts from
            "init": In(self.result_layout),   # written into init[init_slot] when init_valid
            "init_valid": In(1),
            "init_slot": In(range(self.INIT_SLOTS)),
            "result": Out(self.result_layout),
            "result_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L = self._lanes
        op_a = Signal(data.ArrayLayout(signed(len(self.a)), L))
        op_b = Signal.like(self.b)
        op_last, op_first, op_slot = Signal(), Signal(), Signal.like(self.slot)
        prod = Signal(data.ArrayLayout(signed(2 * len(self.a)), L))
        prod_last, prod_first, prod_slot = Signal(), Signal(), Signal.like(self.slot)
        acc = Signal(self.result_layout)
        init = [Signal(self.result_layout, name=f"init{slot}") for slot in range(self.INIT_SLOTS)]
        with m.If(self.init_valid):
            for slot in range(self.INIT_SLOTS):
                with m.If(self.init_slot == slot):
                    m.d.sync += init[slot].eq(self.init)

        # operand registers: a bubble, or a lane whose B value is zero, is gated: the lane's operand registers
        # hold (no toggle) and its product register loads zero instead of a product
        gated = Signal(L)
        m.d.sync += [op_last.eq(self.last), op_first.eq(self.first), op_slot.eq(self.slot)]
        for lane in range(L):
            m.d.sync += gated[lane].eq(~self.valid | (self.b[lane] == 0))
            with m.If(self.valid & (self.b[lane] != 0)):
                m.d.sync += [op_a[lane].eq(self.a), op_b[lane].eq(self.b[lane])]
        # products
        m.d.sync += [prod_last.eq(op_last), prod_first.eq(op_first), prod_slot.eq(op_slot)]
        for lane in range(L):
            m.d.sync += prod[lane].eq(Mux(gated[lane], 0, op_a[lane] * op_b[lane]))
        # accumulate: a job's first product goes onto its init register, the others onto acc
        m.d.sync += self.result_valid.eq(prod_last)
        for lane in range(L):
            start = init[0][lane]
            for slot in range(1, self.INIT_SLOTS):
                start = Mux(prod_slot == slot, init[slot][lane], start)
            base = Mux(prod_first, start, acc[lane])
            total = overflow_rule(m, base + prod[lane], self._acc_bits, self._overflow)
            with m.If(prod_last):
                m.d.sync += [self.result[lane].eq(total), acc[lane].eq(0)]
            with m.Else():
                m.d.sync += acc[lane].eq(total)
        return m
