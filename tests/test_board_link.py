# amaranth: UnusedElaboratable=no
"""The board build's host link: the RTL in Amaranth's simulator, then end to end under Verilator + cocotb.

Amaranth simulation: the host bridge on byte streams with the board memory and the chip's CSR block answers good and
hostile frames exactly as ``hwgen/spec/host_link.py`` encodes them; the board memory's AXI slave (bursts, IDs,
backpressure, SLVERR) and host port; the UART pair (bytes in order, a broken stop bit dropped).

End to end: the board top (``hwgen/rtl/board/``: chip, board memory, host bridge, UART), its UART pins bridged to a TCP
socket (``sim/rtl/tb/board_tb.py``), and the real host driver (``sim/board/driver.py``) and ``dsa board`` commands
talking to it over ``socket://127.0.0.1:PORT``. One simulation (in a thread) serves one test that runs the steps in
order, then stops it and checks cocotb's verdict. The tiny preset with 4 KiB pages (so a workload's image fits
the 128 KiB board memory), 8 clock cycles per UART bit. Asserted: ping answers the board's sizes; CSR and memory
reads and writes round-trip; ``workloads/two_branches.yaml`` run by ``run_program`` and by ``dsa board run`` equals
golden; hostile frames (garbage, a wrong header or data checksum, an unknown command, a bad length, a misaligned or
out-of-range address, an unmapped CSR, a frame cut short, no answer at all) each get their status code from the
bridge and a one-line ``BoardError`` on the host, and a correct access right after each still works.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hwgen.spec import config
from hwgen.spec import host_link as hl
from hwgen.spec.host_link import Command, Status

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "board"
BOARD_CFG = {"base": "tiny", "name": "tinyboard", "memory": {"page_bytes": 4096}}
DIVISOR = 8                       # clock cycles per UART bit
TIMEOUT_CYCLES = 64 * 10 * DIVISOR  # the bridge drops a frame after 64 byte times without a byte
HOST_TIMEOUT = 60.0               # seconds the driver waits for an answer from the simulation
WORKLOAD = ROOT / "workloads" / "two_branches.yaml"



def board_cfg():
    return config.from_dict(BOARD_CFG)


# ---------------------------------------------------------------------------------------------------
# Amaranth simulation: the bridge on byte streams (with the board memory and the chip's CSR block), the UART pair

SMALL = {"base": "tiny", "name": "small", "board": {"memory_bytes": 4096}}
PYSIM_TIMEOUT = 40


class BridgeHarness:
    """HostBridge + BoardMemory + the chip's CsrBlock, the bridge's byte streams driven by a testbench."""

    def __init__(self):
        from amaranth import Module
        from amaranth.lib.wiring import connect

        from hwgen.rtl.board.board_memory import BoardMemory
        from hwgen.rtl.board.host_bridge import HostBridge
        from hwgen.rtl.scheduler.csr import CsrBlock
        from hwgen.spec.csr_map import VERSION, csr_map
        self.cfg = config.from_dict(SMALL)
        self.csrs = csr_map(self.cfg)
        self.bridge = HostBridge(self.cfg.board.memory_bytes, self.csrs.address_bits, PYSIM_TIMEOUT)
        self.m = m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.memory = memory = BoardMemory(self.cfg, 3)
        m.submodules.csr = csr = CsrBlock(self.csrs)
        connect(m, self.bridge.csr, csr.bus)
        connect(m, self.bridge.mem, memory.host)
        m.d.comb += csr.version.eq(VERSION)             # a read-only register, as the chip drives it

    def run(self, frames: list[bytes]) -> list[bytes]:
        """Send each frame (one byte every 3 cycles) and collect what the bridge answers until it has been idle for
        longer than its timeout; one blob per frame."""
        from amaranth.sim import Simulator
        answers = []
        bridge = self.bridge

        async def bench(ctx):
            ctx.set(bridge.tx.ready, 1)
            for frame in frames:
                got = bytearray()
                for b in frame:
                    ctx.set(bridge.rx.valid, 1)
                    ctx.set(bridge.rx.payload, b)
                    await ctx.tick()
                    ctx.set(bridge.rx.valid, 0)
                    for _ in range(2):
                        if ctx.get(bridge.tx.valid):
                            got.append(ctx.get(bridge.tx.payload))
                        await ctx.tick()
                idle = 0
                while idle < PYSIM_TIMEOUT + 8:
                    if ctx.get(bridge.tx.valid):
                        got.append(ctx.get(bridge.tx.payload))
                    idle = 0 if ctx.get(bridge.active) else idle + 1
                    await ctx.tick()
                answers.append(bytes(got))

        sim = Simulator(self.m)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return answers


def _csr_hole(csrs) -> int:
    """A word of the CSR space that no register covers (the CSR block answers SLVERR there)."""
    used = {r.offset + 4 * w for r in csrs for w in range(-(-r.width // 32))}
    return next(a for a in range(0, 1 << csrs.address_bits, 4) if a not in used)


def test_bridge_answers_every_frame_as_the_spec_says():
    """Good and hostile frames on the bridge's byte streams; each answer is the spec's encoding, and what a refused
    frame would have written is not written."""
    from hwgen.spec.csr_map import VERSION
    h = BridgeHarness()
    mem, csr_bytes = h.cfg.board.memory_bytes, 1 << h.csrs.address_bits
    pb = h.csrs["program_base"].offset
    R, OK = hl.encode_response, Status.OK
    cases = [
        (hl.encode_request(Command.PING, 1), R(Command.PING, 1, OK, [hl.LINK_MAGIC, hl.LINK_VERSION, mem, csr_bytes])),
        (hl.encode_request(Command.WRITE_MEM, 2, 8, data=[0x11223344, 0x55667788, 9]), R(Command.WRITE_MEM, 2, OK)),
        (hl.encode_request(Command.READ_MEM, 3, 4, length=5),
         R(Command.READ_MEM, 3, OK, [0, 0x11223344, 0x55667788, 9, 0])),
        (hl.encode_request(Command.ZERO_MEM, 4, 12, length=1), R(Command.ZERO_MEM, 4, OK)),
        (hl.encode_request(Command.READ_MEM, 5, 8, length=3), R(Command.READ_MEM, 5, OK, [0x11223344, 0, 9])),
        (hl.encode_request(Command.READ_CSR, 6, 0, length=1), R(Command.READ_CSR, 6, OK, [VERSION])),
        (hl.encode_request(Command.WRITE_CSR, 7, pb, data=[0xDEADBEEF, 0x12]), R(Command.WRITE_CSR, 7, OK)),
        (hl.encode_request(Command.READ_CSR, 8, pb, length=2), R(Command.READ_CSR, 8, OK, [0xDEADBEEF, 0x12])),
        # hostile
        (b"\x00\x13", b""),                                                       # no sync byte: dropped
        (hl.encode_request(Command.READ_MEM, 9, mem - 4, length=2), R(Command.READ_MEM, 9,
                                                                      Status.ADDRESS_OUT_OF_RANGE)),
        (hl.encode_request(Command.WRITE_MEM, 10, mem, data=[1]), R(Command.WRITE_MEM, 10,
                                                                    Status.ADDRESS_OUT_OF_RANGE)),
        (hl.encode_request(Command.READ_MEM, 11, 2, length=1), R(Command.READ_MEM, 11, Status.MISALIGNED)),
        (hl.encode_request(Command.READ_MEM, 12, 0, length=0), R(Command.READ_MEM, 12, Status.BAD_LENGTH)),
        (hl.encode_request(Command.WRITE_MEM, 13, 0, data=range(hl.MAX_WORDS + 1)),
         R(Command.WRITE_MEM, 13, Status.BAD_LENGTH)),
        (hl.encode_header(hl.REQUEST, sync=hl.REQUEST_SYNC, cmd=0x42, tag=14, addr=0, length=1),
         R(0x42, 14, Status.BAD_COMMAND)),
        (hl.encode_request(Command.READ_CSR, 15, _csr_hole(h.csrs), length=1), R(Command.READ_CSR, 15,
                                                                                 Status.BUS_ERROR)),
        (hl.encode_request(Command.WRITE_MEM, 16, 0, data=[7])[:-1] + b"\x00",   # a wrong data checksum
         R(Command.WRITE_MEM, 16, Status.BAD_CHECKSUM)),
        (hl.encode_request(Command.READ_MEM, 18, 0, length=1), R(Command.READ_MEM, 18, OK, [0])),  # not written
    ]
    # a wrong header checksum and a frame cut short: the answer echoes what arrived
    bad_header = bytearray(hl.encode_request(Command.READ_MEM, 19, 0, length=1))
    bad_header[-1] ^= 0xFF
    cut = hl.encode_request(Command.WRITE_MEM, 20, 0, data=[7])[:7]
    cases += [(bytes(bad_header), R(Command.READ_MEM, 19, Status.BAD_CHECKSUM)),
              (cut, R(Command.WRITE_MEM, 20, Status.TIMEOUT)),
              (hl.encode_request(Command.READ_MEM, 21, 0, length=1), R(Command.READ_MEM, 21, OK, [0]))]
    answers = h.run([frame for frame, _ in cases])
    for (frame, want), got in zip(cases, answers, strict=True):
        assert got == want, (frame.hex(), got.hex(), want.hex())


def test_board_memory_answers_axi_bursts_and_the_host_port():
    """BoardMemory in Amaranth's simulator: an INCR write burst with strobes and an ID, read back under RREADY
    backpressure (one beat per cycle while ready), a burst running past the end (SLVERR, zeros, nothing written),
    a FIXED burst (SLVERR), and the host port's word reads of what the AXI side wrote."""
    from amaranth.sim import Simulator

    from hwgen.rtl.board.board_memory import BoardMemory
    from hwgen.spec.axi import BURST_FIXED, BURST_INCR, RESP_OKAY, RESP_SLVERR
    cfg = config.from_dict(SMALL)
    B, size = cfg.beat_bytes, (cfg.beat_bytes - 1).bit_length()
    dut = BoardMemory(cfg, 3)
    bus = dut.hbm0
    end = cfg.board.memory_bytes
    beats = [int.from_bytes(bytes((17 * i + j) & 0xFF for j in range(B)), "little") for i in range(4)]
    log = {}

    async def write(ctx, addr, data, tid, burst=BURST_INCR, strb=None):
        ctx.set(bus.aw.payload, {"id": tid, "addr": addr, "len": len(data) - 1, "size": size, "burst": burst})
        ctx.set(bus.aw.valid, 1)
        await ctx.tick().until(bus.aw.ready)
        ctx.set(bus.aw.valid, 0)
        for i, d in enumerate(data):
            ctx.set(bus.w.payload, {"data": d, "strb": (1 << B) - 1 if strb is None else strb,
                                    "last": i == len(data) - 1})
            ctx.set(bus.w.valid, 1)
            await ctx.tick().until(bus.w.ready)
        ctx.set(bus.w.valid, 0)
        ctx.set(bus.b.ready, 1)
        bid, bresp = await ctx.tick().sample(bus.b.payload.id, bus.b.payload.resp).until(bus.b.valid)
        ctx.set(bus.b.ready, 0)
        return bid, bresp

    async def read(ctx, addr, n, tid, burst=BURST_INCR, stall=()):
        ctx.set(bus.ar.payload, {"id": tid, "addr": addr, "len": n - 1, "size": size, "burst": burst})
        ctx.set(bus.ar.valid, 1)
        await ctx.tick().until(bus.ar.ready)
        ctx.set(bus.ar.valid, 0)
        got, cycle, first = [], 0, None
        while len(got) < n:
            if first is None and ctx.get(bus.r.valid):
                first = cycle
            ready = first is None or cycle - first not in stall          # ``stall``: cycles after the first beat's
            ctx.set(bus.r.ready, ready)
            if ready and ctx.get(bus.r.valid):
                got.append((ctx.get(bus.r.payload.data), ctx.get(bus.r.payload.resp), ctx.get(bus.r.payload.id),
                            ctx.get(bus.r.payload.last)))
            await ctx.tick()
            cycle += 1
        ctx.set(bus.r.ready, 0)
        return got, cycle - first

    async def host_read(ctx, word_addr):
        ctx.set(dut.host.req.payload, {"addr": word_addr, "write": 0, "data": 0})
        ctx.set(dut.host.req.valid, 1)
        await ctx.tick().until(dut.host.req.ready)
        ctx.set(dut.host.req.valid, 0)
        ctx.set(dut.host.resp.ready, 1)
        (value,) = await ctx.tick().sample(dut.host.resp.payload).until(dut.host.resp.valid)
        ctx.set(dut.host.resp.ready, 0)
        return value

    async def bench(ctx):
        log["write"] = await write(ctx, 4 * B, beats, tid=5)
        log["read"], log["read_cycles"] = await read(ctx, 4 * B, 4, tid=6)
        log["stalled"], log["stalled_cycles"] = await read(ctx, 4 * B, 4, tid=1, stall={1, 2, 4})
        log["past_end"] = await write(ctx, end - B, [beats[0], beats[1]], tid=2)
        log["read_past_end"], _ = await read(ctx, end - B, 2, tid=3)
        log["fixed"] = await write(ctx, 0, [beats[2]], tid=4, burst=BURST_FIXED)
        log["fixed_read"], _ = await read(ctx, 0, 1, tid=0, burst=BURST_FIXED)
        log["host"] = [await host_read(ctx, (4 * B) // 4 + i) for i in range(B // 4 + 1)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert log["write"] == (5, RESP_OKAY)
    assert log["read"] == [(d, RESP_OKAY, 6, i == 3) for i, d in enumerate(beats)]
    assert log["read_cycles"] == 4                          # 4 beats in 4 consecutive cycles
    assert [x[0] for x in log["stalled"]] == beats
    assert log["stalled_cycles"] == 4 + 3                  # a cycle more for each of the 3 low RREADYs
    assert log["past_end"] == (2, RESP_SLVERR)
    assert log["read_past_end"] == [(beats[0], RESP_OKAY, 3, 0), (0, RESP_SLVERR, 3, 1)]
    assert log["fixed"] == (4, RESP_SLVERR) and log["fixed_read"] == [(0, RESP_SLVERR, 0, 1)]
    words = [(beats[0] >> (32 * i)) & 0xFFFFFFFF for i in range(B // 4)] + [beats[1] & 0xFFFFFFFF]
    assert log["host"] == words


def test_uart_pair_carries_bytes_and_drops_a_broken_stop_bit():
    """UartTx -> UartRx at 4 cycles per bit: bytes arrive in order; a byte with a low stop bit is dropped with a
    framing error."""
    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    from hwgen.rtl.board.uart import UartRx, UartTx
    div = 4
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx = UartTx(div), UartRx(div)
    force_low = Signal()
    m.d.comb += rx.rx.eq(tx.tx & ~force_low)
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    got, errors = [], []

    async def send(ctx, byte: int, cycles: int, low: range = range(0)):
        ctx.set(tx.data.valid, 1)
        ctx.set(tx.data.payload, byte)
        await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        for cycle in range(cycles):
            ctx.set(force_low, cycle in low)
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
            if ctx.get(rx.framing_error):
                errors.append(byte)

    async def bench(ctx):
        ctx.set(rx.data.ready, 1)
        for b in sent:
            await send(ctx, b, 12 * div)
        await send(ctx, 0x3C, 14 * div, low=range(9 * div, 11 * div))   # the stop bit held low
        await send(ctx, 0x42, 12 * div)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [*sent, 0x42]
    assert errors == [0x3C]


def test_bad_divisor_and_baud_are_one_line_errors():
    from hwgen.rtl.board.uart import UartRx
    with pytest.raises(ValueError, match=r"^divisor: 2 is not allowed \(allowed: an integer >= 4"):
        UartRx(2)
    with pytest.raises(ValueError, match=r"^board.uart_baud: 3000000 is not allowed with clock.mhz 10"):
        hl.divisor(10, 3_000_000)
    assert hl.divisor(25, 115200) == 217


def test_dsa_board_refuses_bad_input_and_names_a_dead_link(tmp_path, capsys):
    """Bad options and a workload that does not fit the board memory: exit 2 before the port is opened; a port
    that cannot be opened: exit 3; one error line each, no traceback."""
    from sim.cli import main
    cfg_file = tmp_path / "board.yaml"
    cfg_file.write_text("base: tiny\nname: tinyboard\nmemory: {page_bytes: 4096}\n")
    cases = [
        (["board", "ping", "--port", ""], 2, "error: --port: '' is not allowed (allowed: serial device"),
        (["board", "ping", "--port", "nonsense://x"], 2, "error: --port: 'nonsense://x' is not allowed ("),
        (["board", "ping", "--port", "socket://x", "--timeout", "0"], 2,
         "error: --timeout: 0.0 is not allowed (allowed: 0.1..86400)"),
        (["board", "run", "--port", "socket://x", "--workload", str(WORKLOAD), "--config", "tiny"], 2,
         "error: --workload: program: its memory image is 917504 bytes (allowed: at most board.memory_bytes = "
         "131072 of config tiny;"),
        (["board", "run", "--port", str(tmp_path / "no-such-tty"), "--workload", str(WORKLOAD), "--config",
          str(cfg_file)], 3, f"error: board: cannot open {tmp_path / 'no-such-tty'}: "),
        (["board", "ping", "--port", "socket://127.0.0.1:1"], 3, "error: board: cannot open socket://127.0.0.1:1: "),
    ]
    for argv, code, line in cases:
        assert main(argv) == code, argv
        captured = capsys.readouterr()
        lines = [x for x in captured.err.splitlines() if not x.startswith("... ")]   # progress lines are not errors
        assert len(lines) == 1 and lines[0].startswith(line), (argv, captured.err)
        assert "Traceback" not in captured.err + captured.out


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb: the board top with the host driver over a socket

class BoardSim:
    """The simulation in a thread; ``url`` once it listens; ``finish()`` stops it and returns cocotb's verdict."""

    def __init__(self, work: Path):
        from hwgen.rtl.board.board_top import BoardTop
        from hwgen.rtl.memory.l3_cache import ram_modules
        from sim.rtl import runner
        cfg = board_cfg()
        name = f"board_{cfg.name}"
        folder = runner.build_component(BoardTop(cfg, divisor=DIVISOR, timeout=TIMEOUT_CYCLES), name, BUILD_ROOT,
                                        ram_modules(cfg))
        self.port_file, self.stop_file = work / "port", work / "stop"
        env = {"BOARD_TB_DIVISOR": str(DIVISOR), "BOARD_TB_PORT_FILE": str(self.port_file),
               "BOARD_TB_STOP": str(self.stop_file), "BOARD_TB_WALL_S": "900"}
        self.outcome: dict | None = None
        self.error: BaseException | None = None

        def run():
            try:
                self.outcome = runner.run_cocotb(folder, name, "sim.rtl.tb.board_tb", env)
            except BaseException as e:  # noqa: BLE001 -- reported by finish()
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.port_file.is_file() or not self.port_file.read_text():
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.finish()
                raise RuntimeError(f"the board simulation did not start listening: {self.error or self.outcome}")
            time.sleep(0.1)
        self.url = f"socket://127.0.0.1:{int(self.port_file.read_text())}"

    def finish(self) -> dict:
        self.stop_file.touch()
        self.thread.join(timeout=300)
        if self.thread.is_alive():
            raise RuntimeError("the board simulation did not stop")
        if self.error is not None:
            raise self.error
        return self.outcome


def _ping(board):
    from hwgen.spec.csr_map import csr_map
    cfg = board_cfg()
    info = board.ping()
    assert info == {"version": hl.LINK_VERSION, "memory_bytes": cfg.board.memory_bytes,
                    "csr_bytes": 1 << csr_map(cfg).address_bits}


def _round_trip(board):
    from hwgen.spec.csr_map import VERSION, csr_map
    from sim.board.driver import Chip
    cfg = board_cfg()
    chip = Chip(board, cfg)
    assert chip.read("version") == VERSION
    chip.write("program_base", 0x12_3456_7890)              # a 40-bit RW register: two words in one frame
    assert chip.read("program_base") == 0x12_3456_7890
    regs = csr_map(cfg)
    assert board.read_csr(regs["version"].offset, 3)[0] == VERSION   # several registers in one frame
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, 4 * (hl.MAX_WORDS + 7), dtype=np.uint8).tobytes()   # two frames
    at = cfg.board.memory_bytes - len(blob) - 12                 # not beat-aligned, up to near the end
    assert board.write_mem(at, blob) == 2
    assert board.read_mem(at, len(blob)) == blob
    assert board.read_mem(at + 4, 8) == blob[4:12]
    board.zero_mem(at + 8, 16)
    assert board.read_mem(at, 32) == blob[:8] + bytes(16) + blob[24:32]


def _expect(board, frame: bytes, status: Status, tag: int | None = None):
    """Send raw bytes; the bridge's answer has ``status``."""
    board.port.reset_input_buffer()
    board.send(frame)
    r = board.read_response(tag, "a hostile frame")
    assert r.status == status, (r, status)
    assert r.data == ()
    return r


def _still_works(board):
    board.write_mem(0x100, bytes(range(16)))
    assert board.read_mem(0x100, 16) == bytes(range(16))


def _hostile_frames(board):
    from hwgen.spec.csr_map import csr_map
    from sim.board.driver import LinkTimeout, StatusError
    cfg = board_cfg()
    mem = cfg.board.memory_bytes
    good = hl.encode_request(Command.WRITE_MEM, 7, 0x200, data=[1, 2])

    # garbage without a sync byte is dropped silently; a header with a wrong checksum is answered at once
    board.send(bytes([0x00, 0xFF, 0x13, 0x37]))
    _expect(board, b"\xa5" + bytes(range(1, 10)), Status.BAD_CHECKSUM)
    _still_works(board)
    # a wrong checksum of the header, then of the data (nothing is written)
    bad_header = bytearray(good)
    bad_header[hl.REQUEST.bytes - 1] ^= 0x5A
    _expect(board, bytes(bad_header), Status.BAD_CHECKSUM)
    bad_data = bytearray(good)
    bad_data[hl.REQUEST.bytes + 2] ^= 0x01
    _expect(board, bytes(bad_data), Status.BAD_CHECKSUM, tag=7)
    assert board.read_mem(0x200, 8) != bytes([1, 0, 0, 0, 2, 0, 0, 0])
    _still_works(board)
    # a well-formed frame with an unknown command, a bad length, a write longer than a frame
    _expect(board, hl.encode_header(hl.REQUEST, sync=hl.REQUEST_SYNC, cmd=0x7E, tag=9, addr=0, length=1),
            Status.BAD_COMMAND, tag=9)
    _expect(board, hl.encode_request(Command.READ_MEM, 10, 0, length=hl.MAX_WORDS + 1), Status.BAD_LENGTH, tag=10)
    _expect(board, hl.encode_request(Command.WRITE_MEM, 11, 0, data=range(hl.MAX_WORDS + 1)), Status.BAD_LENGTH,
            tag=11)
    _still_works(board)
    # through the driver: one-line errors with the status
    for call, status in ((lambda: board.read_mem(mem - 4, 8), Status.ADDRESS_OUT_OF_RANGE),
                         (lambda: board.request(Command.WRITE_MEM, 0x2, data=[5]), Status.MISALIGNED),
                         (lambda: board.read_csr(1 << 12, 1), Status.ADDRESS_OUT_OF_RANGE),
                         (lambda: board.read_csr(_csr_hole(csr_map(cfg)), 1), Status.BUS_ERROR)):
        with pytest.raises(StatusError) as info:
            call()
        assert info.value.status == status
        assert "\n" not in str(info.value) and status.name in str(info.value), str(info.value)
        _still_works(board)
    # a frame cut short: the bridge answers TIMEOUT after its timeout, then works again
    _expect(board, good[:6], Status.TIMEOUT)
    _still_works(board)
    # no answer at all (a lone non-sync byte): the driver's own timeout, one line
    board.timeout = 1.0
    board.send(b"\x00")
    with pytest.raises(LinkTimeout, match=r"^board: no complete answer to x within 1 s on socket://") as info:
        board.read_response(None, "x")
    assert "\n" not in str(info.value)
    board.timeout = HOST_TIMEOUT
    _still_works(board)


def _workload(board):
    from golden.executor import run as golden_run
    from hwgen.compiler.dag import compile_workload
    from hwgen.spec.workload import load
    from sim.board.driver import run_program
    cfg = board_cfg()
    program = compile_workload(cfg, load(WORKLOAD))
    result = run_program(board, cfg, program, timeout=HOST_TIMEOUT, poll=0.05)
    golden = golden_run(cfg.numeric(), program)
    assert set(result["outputs"]) == set(golden.outputs)
    for name, value in golden.outputs.items():
        np.testing.assert_array_equal(result["outputs"][name], value, err_msg=name)
    assert result["cycles"] > 0 and result["counters"]["issued"] > 0


def _dsa_board_commands(url, tmp_path, capsys):
    from sim.cli import main
    cfg_file = tmp_path / "board.yaml"
    cfg_file.write_text("base: tiny\nname: tinyboard\nmemory: {page_bytes: 4096}\n")
    assert main(["board", "ping", "--port", url, "--timeout", str(HOST_TIMEOUT)]) == 0
    assert "memory 131072 bytes" in capsys.readouterr().out
    code = main(["board", "run", "--port", url, "--workload", str(WORKLOAD), "--config", str(cfg_file),
                 "--timeout", str(HOST_TIMEOUT)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "o1" in captured.out and "o2" in captured.out and "DIFFER" not in captured.out


@pytest.mark.rtl
def test_the_board_over_its_host_link(tmp_path, capsys):
    """One simulation, the steps in order (one test, so that test distribution cannot split the simulation):
    ping, CSR and memory round trips, hostile frames, a workload through run_program, the dsa board commands;
    then the simulation is stopped and cocotb's verdict (a failed task fails it) must be a pass."""
    from sim.board.driver import Board
    sim = BoardSim(tmp_path)
    try:
        with Board(sim.url, timeout=HOST_TIMEOUT) as board:
            for step in (_ping, _round_trip, _hostile_frames, _workload):
                step(board)
        _dsa_board_commands(sim.url, tmp_path, capsys)
    except BaseException:
        try:
            sim.finish()
        except Exception:  # noqa: BLE001 -- the step's failure is the one to report
            pass
        raise
    outcome = sim.finish()
    assert outcome == {"serve_host_link": None}, outcome
