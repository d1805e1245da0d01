"""Zero compactor: picks the lowest set bit of a nonzero mask and returns it with the rest.

This is what makes a zero cost no cycle: the row unit spends one cycle per set bit, never one per zero.
``onehot = mask & -mask`` isolates the lowest bit; an OR tree turns it into its index.
"""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.spec.layout import log2


class ZeroCompactor(wiring.Component):
    def __init__(self, width: int):
        self._width = width
        super().__init__({
            "mask": In(width),
            "index": Out(max(log2(width), 1)),
            "any": Out(1),
            "rest": Out(width),   # mask without its lowest bit
        })

    def elaborate(self, platform):
        m = Module()
        onehot = Signal(self._width)
        m.d.comb += [onehot.eq(self.mask & (~self.mask + 1)),
                     self.rest.eq(self.mask & ~onehot),
                     self.any.eq(self.mask != 0)]
        for bit in range(log2(self._width)):
            lanes_with_bit = sum(1 << e for e in range(self._width) if (e >> bit) & 1)
            m.d.comb += self.index[bit].eq((onehot & lanes_with_bit) != 0)
        return m
