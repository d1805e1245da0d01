"""cocotb testbench of the board top (``hwgen/rtl/board/board_top.py``): the host link's UART pins bridged to a TCP
socket, so that the real host driver (``sim/board/driver.py``) talks to the simulated board over
``socket://127.0.0.1:PORT``.

cocotbext-uart's ``UartSource`` drives ``uart_rx`` and ``UartSink`` reads ``uart_tx`` at the board's bit time
(``BOARD_TB_DIVISOR`` clock cycles). A listening socket on 127.0.0.1 (an ephemeral port, written to the file
``BOARD_TB_PORT_FILE``) takes one connection at a time, any number of them one after another; every
``POLL_CYCLES`` cycles the bytes the host sent go to the source and the bytes the sink received go to the host.
The test ends when the file ``BOARD_TB_STOP`` exists and no connection is open, and fails when the simulation runs
longer than ``BOARD_TB_WALL_S`` seconds.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.uart import UartSink, UartSource

from sim.rtl.tb.clock import PERIOD_NS, start_clock

POLL_CYCLES = 256


class SocketBridge:
    """One listening socket; bytes between the connected host and the UART source / sink."""

    def __init__(self, source: UartSource, sink: UartSink):
        self.source, self.sink = source, sink
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.connections = self.to_board = self.to_host = 0

    def poll(self) -> None:
        if self.conn is None:
            try:
                self.conn, _ = self.server.accept()
            except BlockingIOError:
                return
            self.conn.setblocking(False)
            self.connections += 1
            self.sink.clear()                 # bytes nobody waited for belong to no one
        try:
            data = self.conn.recv(65536)
            if not data:                      # the host closed the connection
                self._close()
                return
            self.source.write_nowait(data)
            self.to_board += len(data)
        except BlockingIOError:
            pass
        except OSError:
            self._close()
            return
        if not self.sink.empty():
            out = bytes(self.sink.read_nowait())
            try:
                self.conn.sendall(out)
                self.to_host += len(out)
            except OSError:
                self._close()

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def close(self) -> None:
        self._close()
        self.server.close()


@cocotb.test()
async def serve_host_link(dut):
    divisor = int(os.environ["BOARD_TB_DIVISOR"])
    stop = Path(os.environ["BOARD_TB_STOP"])
    wall_limit = float(os.environ.get("BOARD_TB_WALL_S", "600"))
    start_clock(dut)
    dut.rst.value = 1
    dut.uart_rx.value = 1
    baud = round(1e9 / (divisor * PERIOD_NS))
    source, sink = UartSource(dut.uart_rx, baud=baud), UartSink(dut.uart_tx, baud=baud)
    for uart in (source, sink):
        uart.log.setLevel(logging.WARNING)    # no line per byte
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    bridge = SocketBridge(source, sink)
    Path(os.environ["BOARD_TB_PORT_FILE"]).write_text(str(bridge.port))
    t0 = time.monotonic()
    try:
        while not (stop.exists() and bridge.conn is None and source.idle()):
            await ClockCycles(dut.clk, POLL_CYCLES)
            bridge.poll()
            if time.monotonic() - t0 > wall_limit:
                raise TimeoutError(f"the board simulation ran {wall_limit:g} s without being stopped "
                                   f"({bridge.connections} connections, {bridge.to_board} bytes to the board, "
                                   f"{bridge.to_host} to the host)")
    finally:
        bridge.close()
    dut._log.info("host link: %d connections, %d bytes to the board, %d to the host", bridge.connections,
                  bridge.to_board, bridge.to_host)
