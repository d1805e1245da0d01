"""The FPGA parts the presets target and what each holds (datasheet figures), in the units resources are counted
in: LUT (LUT4 on Lattice parts, LUT6 on AMD ones), FF, DSP (MULT18X18D / DSP48E2) and RAM (18 Kb EBR on ECP5,
4 Kb EBR on iCE40, RAMB36 on AMD)."""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("lut", "ff", "dsp", "ram")


@dataclass(frozen=True)
class Part:
    name: str
    family: str            # the Yosys synth_<family> script that maps onto it
    lut: int
    ff: int
    dsp: int
    ram: int
    ram_unit: str          # what one `ram` is
    source: str

    def available(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in KINDS}


PARTS = {p.name: p for p in (
    Part("LFE5U-85F", "ecp5", lut=83_640, ff=83_640, dsp=156, ram=208, ram_unit="DP16KD (18 Kb)",
         source="Lattice ECP5 family data sheet FPGA-DS-02012, table 1.1"),
    Part("iCE40UP5K", "ice40", lut=5_280, ff=5_280, dsp=8, ram=30, ram_unit="SB_RAM40_4K (4 Kb; + 4 SPRAM of 256 Kb)",
         source="Lattice iCE40 UltraPlus data sheet FPGA-DS-02008, table 1.1"),
    Part("XCU55C", "xilinx", lut=1_303_680, ff=2_607_360, dsp=9_024, ram=2_016, ram_unit="RAMB36 (36 Kb; + 960 URAM)",
         source="AMD Alveo U55C data sheet DS978, table 1"),
)}

#: board -> its FPGA
BOARDS = {"ulx3s": PARTS["LFE5U-85F"], "icebreaker": PARTS["iCE40UP5K"], "u55c": PARTS["XCU55C"]}
