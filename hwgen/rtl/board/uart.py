"""UART, 8N1 (one start bit, 8 data bits LSB first, one stop bit, no parity), one clock domain.

``UartRx(divisor)``: ``rx`` goes through a two-flop synchroniser; a falling edge while idle starts a byte; half a
bit later the start bit is sampled again (still low: a byte; high: a glitch, ignored); then every ``divisor``
cycles one data bit is sampled, mid-bit, and finally the stop bit. A byte with its stop bit high is offered on
``data`` (a ``lib.stream``; ``valid`` stays up until ``ready``); a low stop bit pulses ``framing_error`` and the
byte is dropped. A byte that completes while the previous one is still offered replaces it and pulses
``overrun``. ``divisor`` is clock cycles per bit (``hwgen.spec.host_link.divisor``), at least 4.

``UartTx(divisor)``: takes a byte from ``data`` when idle and shifts it out on ``tx`` (high when idle), one bit per
``divisor`` cycles; ``busy`` is high while a byte is on the line.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


def _check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"divisor: {divisor!r} is not allowed (allowed: an integer >= 4, clock cycles per bit)")
    return divisor


class UartRx(wiring.Component):
    """See the module docstring."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)), "framing_error": Out(1),
                          "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        sync0, line = Signal(init=1), Signal(init=1)
        m.d.sync += [sync0.eq(self.rx), line.eq(sync0)]
        timer = Signal(range(div))
        bit = Signal(range(10))            # 0 start, 1..8 data, 9 stop
        shift = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [timer.eq(div // 2 - 1), bit.eq(0)]
                    m.next = "BIT"
            with m.State("BIT"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 0):
                        with m.If(line):               # the start bit is gone: a glitch
                            m.next = "IDLE"
                    with m.Elif(bit == 9):
                        with m.If(line):
                            m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                            m.d.comb += self.overrun.eq(self.data.valid & ~self.data.ready)
                        with m.Else():
                            m.d.comb += self.framing_error.eq(1)
                        m.next = "STOP"
                    with m.Else():
                        m.d.sync += shift.eq(Cat(shift[1:], line))
            with m.State("STOP"):
                with m.If(line):                       # wait for the line to be high before the next start bit
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """See the module docstring."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"tx": Out(1, init=1), "data": In(stream.Signature(8)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        timer = Signal(range(div))
        shift = Signal(10, init=0x3FF)    # the bits still to send, LSB first: start, 8 data, stop
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(shift[0]), self.busy.eq(left != 0), self.data.ready.eq(left == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shift.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))), left.eq(10),
                         timer.eq(div - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), left.eq(left - 1), timer.eq(div - 1)]
        return m
