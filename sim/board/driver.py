"""The host driver of a board build: frames of the host link (``hwgen/spec/host_link.py``) over a serial port, and
the chip's host protocol on top of them (``run_program``).

``Board(url)`` opens ``serial.serial_for_url(url)``: a device (``/dev/ttyUSB0``, ``COM3``) or any pyserial URL
(``socket://host:port`` reaches a simulation, ``loop://`` nothing useful). Every request waits for its answer;
an answer whose tag is not the request's (a late one) is skipped. Failures raise a ``BoardError`` whose message is
one line: ``LinkTimeout`` (no complete answer in time), ``BadResponse`` (an answer that is not a well-formed
frame: a byte was corrupted toward the host), ``StatusError`` (the bridge answered with a status other than OK;
``.status``), and plain ``BoardError`` for the chip (an error register set, a program that does not finish).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import serial

from hwgen.spec import host_link as hl
from hwgen.spec.host_link import Command, LinkFormatError, Status


class BoardError(Exception):
    """A failure of the link or of the board, in one line."""


class LinkTimeout(BoardError):
    pass


class BadResponse(BoardError):
    pass


class StatusError(BoardError):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


DEFAULT_TIMEOUT = 2.0     # seconds to wait for an answer (a 64-word frame takes 25 ms at 115200 baud)


def _open(url: str, baud: int, timeout: float):
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout, write_timeout=timeout)
    except ValueError as e:           # a URL pyserial cannot read
        raise ValueError(f"--port: {url!r} is not allowed ({e}; allowed: a serial device such as /dev/ttyUSB0 or "
                         "a pyserial URL such as socket://localhost:4000)") from None
    except (OSError, serial.SerialException) as e:
        raise BoardError(f"board: cannot open {url}: {e}") from None


class Board:
    """One host link. ``timeout``: seconds to wait for each answer; ``baud``: the device's bit rate (the board's
    ``board.uart_baud``; sockets ignore it)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, baud: int = 115200):
        self.url, self.timeout = url, timeout
        self.port = _open(url, baud, timeout)
        self._tag = 0
        self.skipped = 0       # bytes skipped while looking for an answer's sync byte, and late answers

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- frames ----------------------------------------------------------------------------------

    def next_tag(self) -> int:
        self._tag = (self._tag + 1) & 0xFF
        return self._tag

    def send(self, frame: bytes) -> None:
        """Raw bytes onto the line (tests send broken frames with it)."""
        try:
            self.port.write(frame)
            self.port.flush()
        except (OSError, serial.SerialException) as e:
            raise BoardError(f"board: cannot write to {self.url}: {e}") from None

    def _read(self, n: int, deadline: float, what: str) -> bytes:
        blob = b""
        while len(blob) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                got = f"{len(blob)} of {n} bytes" if blob else "nothing"
                raise LinkTimeout(f"board: no complete answer to {what} within {self.timeout:g} s on {self.url} "
                                  f"(got {got}; is a board with the host link on that port, at the right baud?)")
            self.port.timeout = min(left, 0.5)
            try:
                blob += self.port.read(n - len(blob))
            except (OSError, serial.SerialException) as e:
                raise BoardError(f"board: cannot read from {self.url}: {e}") from None
        return blob

    def read_response(self, tag: int | None, what: str) -> hl.Response:
        """The next answer (with ``tag``, when given): skips bytes before a sync byte and answers with another tag."""
        deadline = time.monotonic() + self.timeout
        while True:
            if self._read(1, deadline, what)[0] != hl.RESPONSE_SYNC:
                self.skipped += 1
                continue
            head = bytes([hl.RESPONSE_SYNC]) + self._read(hl.RESPONSE.bytes - 1, deadline, what)
            try:
                fields = hl.decode_header(hl.RESPONSE, head)
                data = hl.decode_data(self._read(4 * fields["length"] + 1, deadline, what), fields["length"]) \
                    if fields["length"] else ()
            except LinkFormatError as e:
                raise BadResponse(f"board: the answer to {what} is corrupted: {e}") from None
            if tag is not None and fields["tag"] != tag and fields["status"] not in (Status.BAD_CHECKSUM,
                                                                                    Status.TIMEOUT):
                self.skipped += 1
                continue
            return hl.Response(fields["cmd"], fields["tag"], fields["status"], data)

    def request(self, cmd: Command, addr: int = 0, length: int | None = None, data=()) -> tuple[int, ...]:
        """One frame and its answer's data; StatusError unless the bridge says OK."""
        tag = self.next_tag()
        frame = hl.encode_request(cmd, tag, addr, length, data)
        n = length if length is not None else len(data)
        what = f"{cmd.name} at 0x{addr:08x} ({n} words)" if cmd != Command.PING else "PING"
        self.port.reset_input_buffer()
        self.send(frame)
        r = self.read_response(tag, what)
        if r.status != Status.OK:
            text = hl.STATUS_TEXT.get(r.status, "an unknown status")
            raise StatusError(f"board: {what}: {r.status_name}: {text}", r.status)
        if r.cmd != cmd:
            raise BadResponse(f"board: the answer to {what} is for command 0x{r.cmd:02x}")
        want = hl.answer_words(cmd, Status.OK, n)
        if len(r.data) != want:
            raise BadResponse(f"board: the answer to {what} has {len(r.data)} words (expected {want})")
        return r.data

    # ---- accesses --------------------------------------------------------------------------------

    def ping(self) -> dict[str, int]:
        magic, version, memory_bytes, csr_bytes = self.request(Command.PING)
        if magic != hl.LINK_MAGIC:
            raise BadResponse(f"board: PING answered magic 0x{magic:08x} (expected 0x{hl.LINK_MAGIC:08x})")
        return {"version": version, "memory_bytes": memory_bytes, "csr_bytes": csr_bytes}

    def read_csr(self, addr: int, words: int = 1) -> list[int]:
        return list(self.request(Command.READ_CSR, addr, words))

    def write_csr(self, addr: int, values) -> None:
        self.request(Command.WRITE_CSR, addr, data=[int(v) for v in values])

    def read_mem(self, addr: int, nbytes: int) -> bytes:
        """``nbytes`` from byte address ``addr`` (both multiples of 4), in frames of ``MAX_WORDS`` words."""
        _aligned(addr, nbytes)
        out = []
        for at in range(addr, addr + nbytes, 4 * hl.MAX_WORDS):
            n = min(hl.MAX_WORDS, (addr + nbytes - at) // 4)
            out.append(b"".join(w.to_bytes(4, "little") for w in self.request(Command.READ_MEM, at, n)))
        return b"".join(out)

    def write_mem(self, addr: int, blob: bytes, skip_zero: bool = False) -> int:
        """``blob`` to byte address ``addr`` (both multiples of 4), in frames; ``skip_zero``: frames whose words
        are all 0 are not sent (memory known to be zero). Returns the frames sent."""
        _aligned(addr, len(blob))
        words = np.frombuffer(blob, dtype="<u4")
        sent = 0
        for i in range(0, len(words), hl.MAX_WORDS):
            chunk = words[i:i + hl.MAX_WORDS]
            if skip_zero and not chunk.any():
                continue
            self.request(Command.WRITE_MEM, addr + 4 * i, data=[int(w) for w in chunk])
            sent += 1
        return sent

    def zero_mem(self, addr: int, nbytes: int) -> None:
        _aligned(addr, nbytes)
        limit = hl.REQUEST.mask["length"]
        for at in range(addr, addr + nbytes, 4 * limit):
            self.request(Command.ZERO_MEM, at, min(limit, (addr + nbytes - at) // 4))


def _aligned(addr: int, nbytes: int) -> None:
    if addr % 4 or nbytes % 4 or addr < 0 or nbytes < 0:
        raise ValueError(f"board memory access: address 0x{addr:x} and {nbytes} bytes (allowed: multiples of 4)")


# ---------------------------------------------------------------------------------------------------
# the chip's registers and its host protocol

class Chip:
    """The chip's CSRs by name (``hwgen.rtl.chip.csr_map``) over a ``Board``."""

    def __init__(self, board: Board, cfg):
        from hwgen.spec.csr_map import CONTROL_BITS, STATUS_BITS, csr_map
        self.board, self.cfg = board, cfg
        regs = csr_map(cfg)
        self.regs = {r.name: r for r in regs}
        self.csr_bytes = 1 << regs.address_bits
        self.control_bits, self.status_bits = CONTROL_BITS, STATUS_BITS

    def read(self, name: str) -> int:
        """A register; a 64-bit one reads its low word first (the block latches the high word then)."""
        r = self.regs[name]
        words = self.board.read_csr(r.offset, -(-r.width // 32))
        return sum(w << (32 * i) for i, w in enumerate(words))

    def write(self, name: str, value: int) -> None:
        r = self.regs[name]
        self.board.write_csr(r.offset, [(value >> (32 * i)) & 0xFFFFFFFF for i in range(-(-r.width // 32))])

    def status(self, bit: str) -> bool:
        return bool(self.read("status") >> self.status_bits.index(bit) & 1)

    def pulse(self, bit: str) -> None:
        self.write("control", 1 << self.control_bits.index(bit))

    def wait(self, what: str, ready: Callable[[], bool], timeout: float, poll: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise BoardError(f"board: {what} within {timeout:g} s (status 0x{self.read('status'):x}, error "
                                 f"{self.read('error')})")
            time.sleep(poll)


def check_fits(cfg, program) -> None:
    """ValueError (one line) when the program's memory image does not fit the board memory of ``cfg``."""
    if program.hbm is None or program.program_base is None:
        raise ValueError("program: not a DAG program (compile a workload with hwgen.compiler.dag.compile_workload)")
    if program.hbm.size > cfg.board.memory_bytes:
        raise ValueError(f"program: its memory image is {program.hbm.size} bytes (allowed: at most "
                         f"board.memory_bytes = {cfg.board.memory_bytes} of config {cfg.name}; a smaller "
                         f"memory.page_bytes packs the tensors tighter)")


def run_program(board: Board, cfg, program, timeout: float = 60.0, poll: float = 0.01,
                stage: Callable[[str], None] = lambda what: None) -> dict:
    """Run a DAG program (``hwgen.compiler.dag.compile_workload``) on the board, as the chip's README says: wait for
    ``status.l3_ready``; zero the memory the image covers and write its nonzero frames (tensors in pages, the page
    table, the program region); write ``program_base``, ``irq_enable``, clear ``irq``; ``control.start``; wait for
    ``irq`` (at most ``timeout`` seconds); ``control.l3_flush`` and wait for ``status.l3_flushing`` to fall; read
    every output through the page table. Returns {"outputs": {name: array}, "cycles", "counters", "link"}."""
    from hwgen.spec.program import decode_output, hbm_lines, output_words
    check_fits(cfg, program)
    chip = Chip(board, cfg)
    stage(f"pinging the board on {board.url}")
    info = board.ping()
    if (info["memory_bytes"], info["csr_bytes"]) != (cfg.board.memory_bytes, chip.csr_bytes):
        raise BoardError(f"board: it has {info['memory_bytes']} bytes of memory and {info['csr_bytes']} bytes of CSRs, "
                         f"config {cfg.name} says {cfg.board.memory_bytes} and another CSR map: was the board built "
                         "from this config?")
    chip.wait("status.l3_ready did not rise", lambda: chip.status("l3_ready"), timeout, poll)
    image = program.hbm.tobytes()
    image += bytes(-len(image) % 4)
    stage(f"loading the program ({len(image)} bytes of memory image)")
    board.zero_mem(0, len(image))
    frames = board.write_mem(0, image, skip_zero=True)
    chip.write("irq", 1)
    chip.write("irq_enable", 1)
    chip.write("program_base", program.program_base)
    stage(f"running {len(program.tasks)} tasks")
    t0 = time.monotonic()
    chip.pulse("start")
    chip.wait("the program did not finish (irq)", lambda: chip.read("irq") & 1, timeout, poll)
    wall = time.monotonic() - t0
    counters = {name: chip.read(name) for name in ("cycles", "issued", "skipped", "error", "page_fault", "dma_error")}
    bad = {k: v for k, v in counters.items() if k in ("error", "page_fault", "dma_error") and v}
    if bad:
        raise BoardError("board: the chip reports " + ", ".join(f"{k} = 0x{v:x}" for k, v in bad.items())
                         + " (see csr_map.md)")
    chip.write("irq", 1)
    stage("flushing the L3 and reading the outputs")
    if cfg.l3.enabled:
        chip.pulse("l3_flush")
        chip.wait("the L3 flush did not end", lambda: not chip.status("l3_flushing"), timeout, poll)
    table = program.page_table(cfg)
    outputs = {}
    for name, spec in program.outputs.items():
        lines, line_bytes = hbm_lines(cfg, spec)
        blob = b"".join(board.read_mem(phys, n) for phys, n, _ in table.pieces(spec.hbm_addr, lines * line_bytes))
        outputs[name] = decode_output(cfg, spec, output_words(cfg, blob, line_bytes))
    return {"outputs": outputs, "cycles": counters["cycles"], "counters": counters,
            "link": {"frames_loaded": frames, "wall_s": wall, **info}}
