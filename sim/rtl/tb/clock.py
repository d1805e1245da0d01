"""The testbenches' clock: one period for all of them, and the GPI clock (cocotb's default Python clock is
1.6-1.8x slower under Verilator)."""
from cocotb.clock import Clock

PERIOD_NS = 2


def start_clock(dut) -> Clock:
    clock = Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi")
    clock.start()
    return clock
