"""The chip on a ULX3S (ECP5-85F): the board's 25 MHz oscillator through the PLL to ``cfg.clock.mhz``, the reset
held until the PLL locks (and while the power button is pressed; registered, then on a global network), the FTDI
UART to the host link, the LEDs.

The pins come from amaranth-boards' ``ULX3S_85F_Platform``; everything else is ``BoardTop``.
"""
from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from hwgen.rtl.board.board_top import LEDS, BoardTop
from hwgen.rtl.board.ecp5_pll import Ecp5Pll

OSCILLATOR_MHZ = 25.0
RESET_CYCLES = 16       # after the PLL locks, so that every register starts on a clean clock


class Ulx3sTop(Elaboratable):
    def __init__(self, cfg):
        self.cfg = cfg
        self.pll = Ecp5Pll(OSCILLATOR_MHZ, cfg.clock.mhz)
        self.board = BoardTop(cfg, divisor=None)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = pll = self.pll
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.d.comb += pll.clk_in.eq(clk25.i)
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        # reset: a counter in the PLL's domain that starts again whenever the PLL is unlocked or the button pressed
        hold = Signal(range(RESET_CYCLES + 1), init=RESET_CYCLES)
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += ClockSignal("por").eq(pll.clk_out)
        m.submodules.button = button = io.Buffer("i", platform.request("button_pwr", 0, dir="-"))
        pressed = button.i
        with m.If(~pll.locked | pressed):
            m.d.por += hold.eq(RESET_CYCLES)
        with m.Elif(hold != 0):
            m.d.por += hold.eq(hold - 1)
        # the reset reaches every register of the chip: from a register, over a global network (a DCCA, as a
        # clock would; nextpnr promotes only clocks by itself). In fabric routing it was the whole chip's worst
        # path (14 ns of routing from one LUT to the scheduler's far registers)
        reset, reset_global = Signal(init=1), Signal()
        m.d.por += reset.eq(hold != 0)
        m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset, i_CE=1, o_CLKO=reset_global)
        m.d.comb += ResetSignal("sync").eq(reset_global)

        m.submodules.board = board = self.board
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [board.uart_rx.eq(rx.i), tx.o.eq(board.uart_tx)]
        for i in range(len(LEDS)):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(board.leds[i])
        return m
