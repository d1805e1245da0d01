"""A generic AXI4-Lite CSR block, written once from a register table.

``CsrMap`` is the table (``hwgen/spec/csr_map.py``: validated, exported as Markdown, JSON and a C header beside the
Verilog); ``CsrBlock`` is the hardware: an AXI4-Lite slave port ``bus`` of 32-bit words and one member per
register::

    RW   <name>: Out(width)   the value the host wrote (reset: ``Register.reset``)
    RO   <name>: In(width)    hardware drives it, the host reads it; host writes are ignored (OKAY)
    W1P  <name>: Out(width)   a host write of 1 to a bit pulses that bit for one cycle; reads 0
    W1C  <name>: Out(width)   the sticky bits; <name>_set: In(width) sets them (set wins over a clear
                              in the same cycle, so no event is lost); a host write of 1 clears a bit

A register wider than 32 bits takes two words: bits 31..0 at ``offset``, the rest at ``offset + 4``.
Where hardware changes the value (RO, W1C), reading the low word latches the high word and reading the
high word returns the latch, so a host reading low then high sees one 64-bit value of a running counter.
RW registers read live (the host is the only writer; a latch would only hide its own writes).

Bus behaviour (``hwgen.rtl.memory.axi.axilite_handshake``): a write is taken when AW and W are both valid and no B
is pending, honouring WSTRB per byte; a read when no R is pending; the response follows one cycle after
the handshake. An address that maps to no register answers SLVERR (read data 0) and changes nothing.
AWPROT/ARPROT are ignored.
"""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.memory.axi import AxiLiteSignature, axilite_handshake, byte_mask
from hwgen.spec.axi import RESP_OKAY, RESP_SLVERR
from hwgen.spec.csr_map import WORD_BITS, WORD_BYTES, Access, CsrMap


class CsrBlock(wiring.Component):
    """The registers of ``csr_map`` behind an AXI4-Lite slave port ``bus`` (32-bit data); see the module doc."""

    def __init__(self, csr_map: CsrMap):
        if not isinstance(csr_map, CsrMap):
            raise TypeError(f"csr_map: expected a CsrMap, not {type(csr_map).__name__}")
        self.csr_map = csr_map
        members = {"bus": In(AxiLiteSignature(addr_width=csr_map.address_bits, data_width=WORD_BITS))}
        for r in csr_map:
            members[r.name] = (In if r.access is Access.RO else Out)(r.width)
            if r.access is Access.W1C:
                members[f"{r.name}_set"] = In(r.width)
        super().__init__(members)

    def _words(self):
        """(register, word number, bit slice of the register) for every 32-bit word of the map."""
        for r in self.csr_map:
            for w in range(r.words):
                yield r, w, slice(WORD_BITS * w, min(WORD_BITS * (w + 1), r.width))

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        take_write, take_read = axilite_handshake(m, bus)
        waddr, raddr = bus.aw.payload.addr[2:], bus.ar.payload.addr[2:]   # word addresses
        wmask = byte_mask(bus.w.payload.strb)
        wdata = bus.w.payload.data & wmask                                 # the bytes written, 0 elsewhere

        # storage: value (RW, W1P, W1C; RO reads its port), clear strobes (W1C), high-word latch
        value, clear, high = {}, {}, {}
        for r in self.csr_map:
            port = getattr(self, r.name)
            if r.access is Access.RO:
                value[r.name] = port
            else:
                value[r.name] = Signal(r.width, init=r.reset, name=r.name)
                m.d.comb += port.eq(value[r.name])
            if r.access is Access.W1P:
                m.d.sync += value[r.name].eq(0)              # a pulse lasts the one cycle after the write
            if r.access is Access.W1C:
                clear[r.name] = Signal(r.width, name=f"{r.name}_clear")
                m.d.sync += value[r.name].eq(value[r.name] & ~clear[r.name] | getattr(self, f"{r.name}_set"))
            if r.latched:
                high[r.name] = Signal(r.width - WORD_BITS, name=f"{r.name}_high")

        with m.If(take_write):
            with m.Switch(waddr):
                for r, w, bits in self._words():
                    with m.Case(r.offset // WORD_BYTES + w):
                        n = bits.stop - bits.start
                        v = value[r.name][bits]
                        m.d.sync += bus.b.payload.resp.eq(RESP_OKAY)
                        if r.access is Access.RW:
                            m.d.sync += v.eq(v & ~wmask[:n] | wdata[:n])
                        elif r.access is Access.W1P:
                            m.d.sync += v.eq(wdata[:n])
                        elif r.access is Access.W1C:
                            m.d.comb += clear[r.name][bits].eq(wdata[:n])
                with m.Default():
                    m.d.sync += bus.b.payload.resp.eq(RESP_SLVERR)

        with m.If(take_read):
            with m.Switch(raddr):
                for r, w, bits in self._words():
                    with m.Case(r.offset // WORD_BYTES + w):
                        m.d.sync += bus.r.payload.resp.eq(RESP_OKAY)
                        if r.access is Access.W1P:
                            m.d.sync += bus.r.payload.data.eq(0)
                        elif r.latched and w == 1:
                            m.d.sync += bus.r.payload.data.eq(high[r.name])
                        else:
                            m.d.sync += bus.r.payload.data.eq(value[r.name][bits])
                            if r.latched:
                                m.d.sync += high[r.name].eq(value[r.name][WORD_BITS:])
                with m.Default():
                    m.d.sync += [bus.r.payload.data.eq(0), bus.r.payload.resp.eq(RESP_SLVERR)]
        return m
