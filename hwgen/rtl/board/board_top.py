"""A board build of the chip, without a platform: the chip (``hwgen/rtl/chip.py``), the board memory behind its HBM
port(s), and the host link (UART -> host bridge -> the chip's CSRs and the board memory)::

    uart_rx -> UartRx -> HostBridge -> UartTx -> uart_tx
                           |  csr (AXI4-Lite)  -> Chip.ctrl         Chip.hbm<i> (AXI4) -> BoardMemory.hbm<i>
                           |  mem (HostPort)   -> BoardMemory.host

One synchronous clock domain (``sync``); a platform wrapper supplies the clock (a PLL) and the reset and wires the
plain ports to pins: ``uart_rx`` / ``uart_tx`` (idle high), ``irq`` (the chip's), ``leds``: bit 0 irq, bit 1 a frame
is in progress on the host link, bit 2 the last frame was answered with an error, bit 3 a heartbeat (about 1 Hz at
``cfg.clock.mhz``). ``divisor`` (clock cycles per UART bit) defaults to ``cfg.clock.mhz`` / ``cfg.board.uart_baud``,
``timeout`` (cycles) to ``host_link.FRAME_TIMEOUT_MS``; tests pass small ones.
"""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from hwgen.rtl.board.board_memory import BoardMemory
from hwgen.rtl.board.host_bridge import HostBridge
from hwgen.rtl.board.uart import UartRx, UartTx
from hwgen.rtl.chip import Chip
from hwgen.spec import host_link

LEDS = ("irq", "link_active", "link_error", "heartbeat")


class BoardTop(wiring.Component):
    """See the module docstring."""

    def __init__(self, cfg, divisor: int | None = None, timeout: int | None = None):
        self._cfg = cfg
        self.divisor = host_link.divisor(cfg.clock.mhz, cfg.board.uart_baud) if divisor is None else divisor
        self.timeout = host_link.timeout_cycles(cfg.clock.mhz) if timeout is None else timeout
        self.chip = Chip(cfg)
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "irq": Out(1),
                          "leds": Out(len(LEDS))})

    def elaborate(self, platform):
        m = Module()
        cfg, chip = self._cfg, self.chip
        m.submodules.chip = chip
        m.submodules.memory = mem = BoardMemory(cfg, chip.mem_id_bits)
        m.submodules.uart_rx = rx = UartRx(self.divisor)
        m.submodules.uart_tx = tx = UartTx(self.divisor)
        m.submodules.bridge = bridge = HostBridge(cfg.board.memory_bytes, chip.csr_map.address_bits, self.timeout)
        for i in range(cfg.memory.ports):
            connect(m, getattr(chip, f"hbm{i}"), getattr(mem, f"hbm{i}"))
        connect(m, bridge.csr, chip.ctrl)
        connect(m, bridge.mem, mem.host)
        connect(m, rx.data, bridge.rx)
        connect(m, bridge.tx, tx.data)

        beat = Signal(round(cfg.clock.mhz * 1e6).bit_length())   # its top bit: a period of about a second
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx), self.irq.eq(chip.irq),
                     self.leds.eq(Cat(chip.irq, bridge.active, bridge.error, beat[-1]))]
        return m

