"""A generic AXI4-Lite CSR block, written once from a register table.

``CsrMap`` is the table (validated, exported as Markdown and JSON beside the Verilog); ``CsrBlock`` is the
hardware: an AXI4-Lite slave port ``bus`` of 32-bit words and one member per register::

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

import enum
import keyword
import re
from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.memory.axi import AxiLiteSignature, axilite_handshake, byte_mask
from hwgen.spec.axi import RESP_OKAY, RESP_SLVERR

WORD_BITS = 32
WORD_BYTES = 4
MAX_WIDTH = 64
MIN_ADDRESS_BITS = 4
#: member names CsrBlock itself uses (a register of that name would hide them)
RESERVED = frozenset({"bus", "csr_map", "signature", "metadata", "elaborate"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class Access(enum.Enum):
    RW = "rw"    # host writes, hardware reads
    RO = "ro"    # hardware drives, host reads
    W1P = "w1p"  # write-1-pulse: one-cycle pulse per bit written 1; reads 0
    W1C = "w1c"  # hardware sets (``<name>_set``), host writes 1 to clear; reads the sticky bits


@dataclass(frozen=True)
class Register:
    name: str
    offset: int          # byte address of the (low) word, a multiple of 4
    width: int           # 1..64 bits; above 32 the register takes two words
    access: Access
    description: str = ""
    reset: int = 0       # RW only

    @property
    def words(self) -> int:
        return -(-self.width // WORD_BITS) if isinstance(self.width, int) and self.width > 0 else 1

    @property
    def end(self) -> int:
        """One past the register's last byte."""
        return self.offset + WORD_BYTES * self.words

    @property
    def latched(self) -> bool:
        """Whether reading the low word latches the high word (hardware changes the value)."""
        return self.words > 1 and self.access in (Access.RO, Access.W1C)

    def problems(self) -> list[str]:
        """What is wrong with this register on its own, one line each."""
        out, who = [], f"register {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or keyword.iskeyword(self.name):
            out.append(f"{who}: name is not an identifier (allowed: a letter, then letters, digits or _; "
                       "not a Python keyword)")
        elif self.name in RESERVED:
            out.append(f"{who}: name is reserved (not allowed: {', '.join(sorted(RESERVED))})")
        if not isinstance(self.access, Access):
            out.append(f"{who}: access {self.access!r} is not an Access (allowed: "
                       f"{', '.join(a.name for a in Access)})")
        if not isinstance(self.offset, int) or self.offset < 0 or self.offset % WORD_BYTES:
            out.append(f"{who}: offset {_hex(self.offset)} is not word aligned "
                       f"(allowed: a non-negative multiple of {WORD_BYTES})")
        if not isinstance(self.width, int) or not 1 <= self.width <= MAX_WIDTH:
            out.append(f"{who}: width {self.width!r} is not allowed (allowed: 1..{MAX_WIDTH})")
        elif self.reset and isinstance(self.access, Access) and self.access is not Access.RW:
            out.append(f"{who}: reset {_hex(self.reset)} on a {self.access.name} register "
                       "(allowed: a reset value on RW registers only)")
        elif not isinstance(self.reset, int) or not 0 <= self.reset < 1 << self.width:
            out.append(f"{who}: reset {_hex(self.reset)} does not fit {self.width} bits "
                       f"(allowed: 0..{_hex((1 << self.width) - 1)})")
        return out


def _hex(value) -> str:
    return f"0x{value:x}" if isinstance(value, int) and value >= 0 else repr(value)


class CsrMap:
    """An ordered, validated tuple of Registers. Every problem is reported, one line each, in a ValueError."""

    def __init__(self, registers):
        self.registers: tuple[Register, ...] = tuple(registers)
        problems = [p for r in self.registers for p in r.problems()]
        if not problems:
            problems = self._clashes()
        if problems:
            raise ValueError("\n".join(problems))

    def _clashes(self) -> list[str]:
        """Names used twice (a W1C's ``<name>_set`` member counts) and byte ranges that overlap."""
        out, owner = [], {}                           # member name -> (index, register) it belongs to
        for i, r in enumerate(self.registers):
            for name in (r.name, f"{r.name}_set") if r.access is Access.W1C else (r.name,):
                j, other = owner.setdefault(name, (i, r))
                if j == i:
                    continue
                mine = "name" if name == r.name else f"set input {name!r}"
                theirs = "register" if name == other.name else "the set input of W1C register"
                out.append(f"register {r.name!r} at {_hex(r.offset)}: {mine} is taken by {theirs} {other.name!r} "
                           f"at {_hex(other.offset)} (allowed: unique names; a W1C register also takes <name>_set)")
        last = None                                   # the register reaching furthest so far
        for r in sorted(self.registers, key=lambda r: r.offset):
            if last is not None and r.offset < last.end:
                out.append(f"register {r.name!r}: offset {_hex(r.offset)} overlaps register {last.name!r} "
                           f"at {_hex(last.offset)}..{_hex(last.end - 1)} (allowed: offsets from {_hex(last.end)})")
            if last is None or r.end > last.end:
                last = r
        return out

    def __iter__(self):
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def address_bits(self) -> int:
        """Byte-address bits that reach the highest word (at least 4)."""
        end = max((r.end for r in self.registers), default=0)
        return max(MIN_ADDRESS_BITS, (end - 1).bit_length())

    def to_json(self) -> list[dict]:
        """One dict per register, in table order (JSON-serialisable)."""
        return [{"name": r.name, "offset": r.offset, "width": r.width, "access": r.access.name,
                 "reset": r.reset, "description": r.description} for r in self.registers]

    def to_markdown(self) -> str:
        """The table for a README: offset (hex), name, access, width, reset, description."""
        digits = max(4, -(-self.address_bits // 4))
        lines = ["| Offset | Name | Access | Width | Reset | Description |",
                 "|---|---|---|---|---|---|"]
        for r in self.registers:
            reset = f"0x{r.reset:x}" if r.access is Access.RW else "-"
            text = r.description.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| 0x{r.offset:0{digits}x} | {r.name} | {r.access.name} | {r.width} | {reset} | {text} |")
        return "\n".join(lines) + "\n"


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
