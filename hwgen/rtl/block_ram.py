"""A simple dual-port block RAM with a registered read port (``signatures.registered_read``): one write port
(``en`` one bit per byte with ``granularity`` 8, else one bit), one read port whose data comes two cycles after
its address, ``en`` low holding the RAM's output and ``take`` low the port's data.

Elaborated for an ECP5 (a platform whose ``family`` is "ecp5": a board's, or ``FpgaTarget("ecp5")`` for one
component alone), the RAM is written out as DP16KD tiles with the read port's own output register on
(``REGMODE = OUTREG``): ``en`` is the tile's read clock enable (CEB), ``take`` its output register's (OCEB),
and the data leaves the tile 0.95 ns after the clock instead of 5.83 ns. Yosys maps an inferred memory onto
the same tiles but never onto that register (YosysHQ/yosys#5814), so at 125 MHz the read alone would take
most of the cycle. The tiles are shaped and wired as Yosys' own mapping does it (techlibs/lattice/
brams_map_16kd.v): the widest port that holds the depth (36 bits up to 512 words, then 18, 9, 4, 2, 1), bytes
in 9-bit lanes with a byte enable each; ``ecp5_tiles`` counts them. Elsewhere (simulation, other families) it
is Amaranth's memory followed by a register. A word read in the cycle it is written is not defined on the
ECP5 (the memory gives the old word); no reader here reads a line that is being written.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2, exact_log2

from hwgen.rtl import signatures

#: DP16KD port widths, widest first, and the words one tile holds at each (16 Kib of data, 18 Kib with the 9th
#: bits); 36 is the pseudo dual-port mode (write through port A and B's data pins, read through both outputs)
ECP5_WIDTHS = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
#: the address bits below a word's address at each width (the tile's address is in units of one bit of x1)
_ECP5_LOW_BITS = {width: exact_log2(ECP5_WIDTHS[-1][1] // words) for width, words in ECP5_WIDTHS}


@dataclass(frozen=True)
class FpgaTarget:
    """Stands in for an Amaranth platform when a component is converted alone for an FPGA family (``dsa fpga
    timing``): components read its ``family`` as they would a board platform's."""
    family: str


@dataclass(frozen=True)
class Ecp5Tiling:
    width: int      # the tiles' port width
    per_tile: int   # data bits of the word one tile holds
    tiles: int


def ecp5_tiling(width: int, depth: int, granularity: int | None = None) -> Ecp5Tiling:
    """The DP16KD tiles a ``depth`` x ``width`` RAM takes: bytes of a byte-enabled RAM sit in 9-bit lanes (x9
    and wider ports have a byte enable per lane), narrower ports hold part of one byte per tile."""
    fits = [w for w, words in ECP5_WIDTHS if words >= depth]
    if not fits:
        raise ValueError(f"block RAM depth: {depth} words is not allowed on an ECP5 tile (at most 16384)")
    tile = fits[0]
    per_tile = tile // 9 * granularity if granularity and tile >= 9 else tile
    return Ecp5Tiling(tile, per_tile, -(-width // per_tile))


class BlockRam(wiring.Component):
    def __init__(self, width: int, depth: int, granularity: int | None = None):
        if granularity not in (None, 8) or (granularity and width % granularity):
            raise ValueError(f"block RAM granularity: {granularity!r} is not allowed for {width}-bit words "
                             "(allowed: none, or 8 when the width is whole bytes)")
        self.width, self.depth, self.granularity = width, depth, granularity
        addr_width = ceil_log2(max(depth, 2))
        super().__init__({
            "write": Out(memory.WritePort.Signature(addr_width=addr_width, shape=width, granularity=granularity)),
            "read": Out(signatures.registered_read(addr_width, width)),
        })

    def elaborate(self, platform):
        if getattr(platform, "family", None) == "ecp5":
            return self._ecp5()
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        wp = mem.write_port(granularity=self.granularity)
        m.d.comb += [wp.addr.eq(self.write.addr), wp.data.eq(self.write.data), wp.en.eq(self.write.en)]
        rp = mem.read_port(domain="sync")
        m.d.comb += [rp.addr.eq(self.read.addr), rp.en.eq(self.read.en)]
        with m.If(self.read.take):
            m.d.sync += self.read.data.eq(rp.data)
        return m

    def _ecp5(self) -> Module:
        m = Module()
        t = ecp5_tiling(self.width, self.depth, self.granularity)
        low = _ECP5_LOW_BITS[t.width]
        lanes = t.width // 9 if self.granularity and t.width >= 9 else 0   # bytes in 9-bit lanes per tile
        for i in range(t.tiles):
            bits = range(i * t.per_tile, min((i + 1) * t.per_tile, self.width))
            di, do = Signal(36, name=f"tile{i}_di"), Signal(36, name=f"tile{i}_do")
            wa, ra = Signal(14, name=f"tile{i}_wa"), Signal(14, name=f"tile{i}_ra")
            be = Signal(max(lanes, 1), name=f"tile{i}_be")   # the tile's byte lanes written now
            we = Signal(name=f"tile{i}_we")
            if lanes:
                for lane, first in enumerate(range(bits.start, bits.stop, 8)):
                    byte = first // 8
                    m.d.comb += [di[9 * lane:9 * lane + 8].eq(self.write.data[first:first + 8]),
                                 be[lane].eq(self.write.en[byte])]
                m.d.comb += [self.read.data[bits.start:bits.stop].eq(
                                 Cat(*(do[9 * lane:9 * lane + 8] for lane in range(lanes)))[:len(bits)]),
                             we.eq(be.any())]
            else:
                m.d.comb += [di[:len(bits)].eq(self.write.data[bits.start:bits.stop]),
                             self.read.data[bits.start:bits.stop].eq(do[:len(bits)]),
                             we.eq(self.write.en[bits.start // 8] if self.granularity else self.write.en)]
            m.d.comb += [wa[low:].eq(self.write.addr), ra[low:].eq(self.read.addr)]
            if t.width >= 18:              # x18 and x36 take their lanes' byte enables on the low address bits
                m.d.comb += wa[:t.width // 9].eq(be if lanes else we.replicate(t.width // 9))
            ports = {"i_CLKA": ClockSignal(), "i_CLKB": ClockSignal(), "i_RSTA": ResetSignal(),
                     "i_RSTB": ResetSignal(), "i_CEA": we, "i_WEA": 1 if t.width == 36 else we, "i_WEB": 0,
                     "i_CEB": self.read.en, "i_OCEA": self.read.take, "i_OCEB": self.read.take}
            ports.update({f"i_DIA{b}": di[b] for b in range(18)})
            ports.update({f"i_ADA{b}": wa[b] for b in range(14)})
            ports.update({f"i_ADB{b}": ra[b] for b in range(14)})
            ports.update({f"i_CS{p}{b}": 0 for p in "AB" for b in range(3)})
            if t.width == 36:      # one 36-bit word: written through A's and B's data pins, read from both outputs
                ports.update({f"i_DIB{b}": di[18 + b] for b in range(18)})
                ports.update({f"o_DOA{b}": do[b] for b in range(18)})
                ports.update({f"o_DOB{b}": do[18 + b] for b in range(18)})
            else:
                port_a = Signal(18, name=f"tile{i}_doa")          # port A's read side, not used
                ports.update({f"i_DIB{b}": 0 for b in range(18)})
                ports.update({f"o_DOA{b}": port_a[b] for b in range(18)})
                ports.update({f"o_DOB{b}": do[b] for b in range(18)})
            m.submodules[f"tile{i}"] = Instance(
                "DP16KD", p_DATA_WIDTH_A=t.width, p_DATA_WIDTH_B=t.width,
                p_REGMODE_A="OUTREG" if t.width == 36 else "NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **ports)
        return m
