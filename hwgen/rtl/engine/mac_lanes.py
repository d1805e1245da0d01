"""L multiply-accumulate lanes with the configured overflow rule.

Pipeline (FPGA-friendly: multiplier inputs and products are registered, no mux in the MAC path):
  cycle 0  operands presented      -> operand registers
  cycle 1  multiply                -> product registers
  cycle 2  accumulate (wrap or saturate, every step) -> acc; on ``last`` the sum goes to ``result``
``latency`` (3) is the distance from an operand to the ``result_valid`` strobe that includes it; the
simulator reads it from here.
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
    def __init__(self, lanes: int, operand_bits: int, acc_bits: int, overflow: str):
        self._lanes, self._acc_bits, self._overflow = lanes, acc_bits, overflow
        self.result_layout = data.ArrayLayout(signed(acc_bits), lanes)
        super().__init__({
            "a": In(signed(operand_bits)),
            "b": In(data.ArrayLayout(signed(operand_bits), lanes)),
            "valid": In(1),      # low: a bubble, accumulates nothing
            "last": In(1),       # closes the sum: result <- acc + this product, acc <- 0
            "result": Out(self.result_layout),
            "result_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L = self._lanes
        op_a = Signal.like(self.a)
        op_b = Signal.like(self.b)
        op_last = Signal()
        prod = Signal(data.ArrayLayout(signed(2 * len(self.a)), L))
        prod_last = Signal()
        acc = Signal(self.result_layout)

        # operand registers: a bubble multiplies by zero; a lane whose B value is zero is gated: its
        # operand register holds (no toggle) and its product register loads zero instead of a product
        gated = Signal(L)
        m.d.sync += [op_a.eq(Mux(self.valid, self.a, 0)), op_last.eq(self.last)]
        for lane in range(L):
            m.d.sync += gated[lane].eq(self.b[lane] == 0)
            with m.If(self.b[lane] != 0):
                m.d.sync += op_b[lane].eq(self.b[lane])
        # products
        m.d.sync += prod_last.eq(op_last)
        for lane in range(L):
            m.d.sync += prod[lane].eq(Mux(gated[lane], 0, op_a * op_b[lane]))
        # accumulate
        m.d.sync += self.result_valid.eq(prod_last)
        for lane in range(L):
            total = overflow_rule(m, acc[lane] + prod[lane], self._acc_bits, self._overflow)
            with m.If(prod_last):
                m.d.sync += [self.result[lane].eq(total), acc[lane].eq(0)]
            with m.Else():
                m.d.sync += acc[lane].eq(total)
        return m
