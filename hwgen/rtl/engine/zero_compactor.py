"""Zero compactor: picks the lowest set bit of a nonzero mask and returns it with the rest.

This is what makes a zero cost no cycle: the row unit spends one cycle per set bit, never one per zero.
``onehot = mask & -mask`` isolates the lowest bit; an OR tree turns it into its index. ``at_most`` lets a
user know one cycle ahead that a mask is on its last element (a register instead of a carry chain in front of
whatever the end of a word enables).
"""
from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.spec.layout import log2


def at_most(bits, n: int):
    """1 when at most ``n`` bits of ``bits`` are set: a tree of bit counts that saturate at n + 1, so each level
    is a few LUTs wide and deep (no carry chain), log2(width) levels."""
    cap = n + 1
    nodes = [(bits[i].as_unsigned(), 1) for i in range(len(bits))]     # (count, the most it can be)
    while len(nodes) > 1:
        merged = []
        for (a, a_most), (b, b_most) in zip(nodes[0::2], nodes[1::2], strict=False):
            total = a + b
            if a_most + b_most > cap:      # saturate only where the sum can pass the cap (no constant compares)
                total = Mux(total > cap, cap, total)
            merged.append((total[:cap.bit_length()], min(cap, a_most + b_most)))
        nodes = merged + ([nodes[-1]] if len(nodes) % 2 else [])
    count, most = nodes[0]
    return count <= n if most > n else 1


class ZeroCompactor(wiring.Component):
    def __init__(self, width: int):
        self._width = width
        super().__init__({
            "mask": In(width),
            "index": Out(max(log2(width), 1)),
            "any": Out(1),
            "rest": Out(width),   # mask without its lowest bit
            "onehot": Out(width),  # the lowest bit alone: selects an element with an AND-OR, no index decode
        })

    def elaborate(self, platform):
        m = Module()
        onehot = self.onehot
        m.d.comb += [onehot.eq(self.mask & (~self.mask + 1)),
                     self.rest.eq(self.mask & ~onehot),
                     self.any.eq(self.mask != 0)]
        for bit in range(log2(self._width)):
            lanes_with_bit = sum(1 << e for e in range(self._width) if (e >> bit) & 1)
            m.d.comb += self.index[bit].eq((onehot & lanes_with_bit) != 0)
        return m
