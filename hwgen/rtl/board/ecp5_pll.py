"""The ECP5 PLL (EHXPLLL) making the chip's clock from a board oscillator.

``pll_dividers(in_mhz, out_mhz)`` finds the dividers the way nextpnr's ``ecppll`` does: the reference divided by
CLKI_DIV (the phase detector, 3.125..400 MHz) times CLKFB_DIV is the output, and CLKOP_DIV puts the VCO (output
x CLKOP_DIV) inside 400..800 MHz; of the settings that land closest to the asked frequency the one with the VCO
nearest 600 MHz is taken. ``Ecp5Pll`` instantiates the primitive with the attributes nextpnr reads to time the
output clock (FREQUENCY_PIN_*).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
OUT_MHZ = (3.125, 400.0)


@dataclass(frozen=True)
class PllDividers:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    out_mhz: float          # what the dividers give

    @property
    def vco_mhz(self) -> float:
        return self.out_mhz * self.clkop_div


def pll_dividers(in_mhz: float, out_mhz: float) -> PllDividers:
    if not OUT_MHZ[0] <= out_mhz <= OUT_MHZ[1]:
        raise ValueError(f"clock.mhz: {out_mhz:g} is not allowed on an ECP5 PLL (allowed: {OUT_MHZ[0]}..{OUT_MHZ[1]})")
    best = None
    for clki in range(1, 129):
        pfd = in_mhz / clki
        if not PFD_MHZ[0] <= pfd <= PFD_MHZ[1]:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            for op in range(1, 129):
                vco = out * op
                if VCO_MHZ[0] <= vco <= VCO_MHZ[1]:
                    score = (round(abs(out - out_mhz), 6), abs(vco - 600.0))
                    if best is None or score < best[0]:
                        best = (score, PllDividers(clki, fb, op, out))
    assert best is not None, (in_mhz, out_mhz)
    return best[1]


class Ecp5Pll(wiring.Component):
    """``clk_out`` = ``clk_in`` (``in_mhz``) scaled to about ``out_mhz`` (``dividers.out_mhz`` exactly); ``locked``
    rises when it is stable."""

    def __init__(self, in_mhz: float, out_mhz: float):
        self.in_mhz = in_mhz
        self.dividers = pll_dividers(in_mhz, out_mhz)
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.dividers
        feedback = Signal()
        m.d.comb += self.clk_out.eq(feedback)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.in_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{d.out_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=d.clki_div, p_CLKFB_DIV=d.clkfb_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=d.clkop_div,
            p_CLKOP_CPHASE=(d.clkop_div - 1) // 2, p_CLKOP_FPHASE=0,
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, i_CLKFB=feedback, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=feedback, o_LOCK=self.locked)
        return m
