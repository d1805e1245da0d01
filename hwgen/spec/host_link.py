"""The host link of a board build: frames over a UART (8N1), written once for the bridge RTL
(``hwgen/rtl/board/host_bridge.py``) and the host driver (``sim/board/driver.py``).

A request is a header (``REQUEST``, 10 bytes), then for the two write commands a data section; the bridge
answers every frame it saw start with one response: a header (``RESPONSE``, 7 bytes), then a data section when
its ``length`` is not 0. Multi-byte fields are little-endian (the field tables pack LSB first, so byte i of a
header is bits 8i..8i+7 of its packed value)::

    request   A5 | cmd | tag | addr (4) | length (2) | crc      [data: length words (4 bytes each) | crc]
    response  5A | cmd | tag | status   | length (2) | crc      [data: length words | crc]

``crc`` is CRC-8/SMBUS (polynomial x^8 + x^2 + x + 1 = 0x07, initial value 0, no reflection, no final XOR;
``crc8(b"123456789") == 0xF4``): the header's over every header byte before it (the sync byte included), a data
section's over its data bytes. ``addr`` is a byte address (a multiple of 4) in the board memory (the chip's HBM)
or in the chip's CSR space (``s_axi_ctrl``); ``length`` counts 32-bit words. ``tag`` is the host's: the bridge
echoes it (and ``cmd``) so that the host can tell a late answer from the one it waits for.

The bridge (what it checks, in order): it waits for the sync byte ``A5`` and drops any other byte; a header whose
crc does not match is answered BAD_CHECKSUM at once and the bridge hunts for the next sync byte (it cannot trust
the length). With a good header, a write's data section is always read in full (``length`` words and its crc;
at most ``MAX_WORDS`` of them are kept) before the answer: BAD_COMMAND, BAD_LENGTH, MISALIGNED or
ADDRESS_OUT_OF_RANGE (the first that applies), or BAD_CHECKSUM for the data, or the access's own status. A frame
whose next byte does not come within the bridge's timeout (``FRAME_TIMEOUT_MS``; a parameter in tests) is
dropped with TIMEOUT. Bytes that arrive while the bridge executes or answers are dropped: the host waits for the
answer. Reads and writes of the CSRs go through the chip's AXI4-Lite port: a response other than OKAY (an
unmapped address) stops the frame with BUS_ERROR. Nothing is written when a frame is refused; a write that stops
with BUS_ERROR has written the words before the failing one.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from hwgen.spec.fields import Field, FieldTable

REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
CRC_POLY = 0x07
WORD_BYTES = 4
#: words one read or write frame carries (the bridge's frame buffer); ZERO_MEM takes up to 65535
MAX_WORDS = 64
#: the bridge drops a frame whose next byte does not come within this time (a board build's default)
FRAME_TIMEOUT_MS = 20
#: what PING answers in its first word: "DSAL"
LINK_MAGIC = 0x4C415344
#: what PING answers in its second word
LINK_VERSION = 1
#: the largest relative error of the UART bit time from the clock divider that 8N1 still takes reliably
MAX_BAUD_ERROR = 0.02


class Command(enum.IntEnum):
    PING = 0x01        # no address, length 0; answers [LINK_MAGIC, LINK_VERSION, memory bytes, CSR bytes]
    READ_CSR = 0x02    # length words from CSR byte address addr (one AXI4-Lite read each)
    WRITE_CSR = 0x03   # length words of data to CSR byte address addr (one AXI4-Lite write each)
    READ_MEM = 0x04    # length words of board memory from byte address addr
    WRITE_MEM = 0x05   # length words of data to board memory from byte address addr
    ZERO_MEM = 0x06    # length words (1..65535) of board memory from addr set to 0; no data section


#: commands whose request carries a data section
WRITES = (Command.WRITE_CSR, Command.WRITE_MEM)
#: commands whose answer carries a data section (when OK)
READS = (Command.PING, Command.READ_CSR, Command.READ_MEM)
PING_WORDS = 4


class Status(enum.IntEnum):
    OK = 0
    BAD_CHECKSUM = 1          # the header's or the data section's crc does not match
    BAD_COMMAND = 2           # cmd is not a Command
    BAD_LENGTH = 3            # length out of range for the command (see ``length_range``)
    MISALIGNED = 4            # addr is not a multiple of 4
    ADDRESS_OUT_OF_RANGE = 5  # addr .. addr + 4 * length - 1 is not inside the memory or the CSR space
    TIMEOUT = 6               # the frame was not completed in time (no byte for the bridge's timeout)
    BUS_ERROR = 7             # a CSR access was answered SLVERR / DECERR (an unmapped register)


STATUS_TEXT = {
    Status.OK: "ok",
    Status.BAD_CHECKSUM: "the bridge found a wrong checksum (a byte was corrupted on the line)",
    Status.BAD_COMMAND: "the bridge does not know the command",
    Status.BAD_LENGTH: "the length is not allowed for the command",
    Status.MISALIGNED: "the address is not a multiple of 4",
    Status.ADDRESS_OUT_OF_RANGE: "the address range is outside the memory or CSR space",
    Status.TIMEOUT: "the frame was not completed in time (bytes were lost)",
    Status.BUS_ERROR: "the chip answered the CSR access with an error (an unmapped register)",
}

REQUEST = FieldTable("request", width=80, word="header", fields=(
    Field("sync", 8, f"0x{REQUEST_SYNC:02X}"),
    Field("cmd", 8, "Command"),
    Field("tag", 8, "the host's; echoed in the response"),
    Field("addr", 32, "byte address in board memory or CSR space, a multiple of 4"),
    Field("length", 16, "32-bit words to read / write / zero"),
    Field("crc", 8, "CRC-8 of the header bytes before it"),
))

RESPONSE = FieldTable("response", width=56, word="header", fields=(
    Field("sync", 8, f"0x{RESPONSE_SYNC:02X}"),
    Field("cmd", 8, "the request's cmd, as received"),
    Field("tag", 8, "the request's tag, as received"),
    Field("status", 8, "Status"),
    Field("length", 16, "32-bit words in the data section that follows (0: none)"),
    Field("crc", 8, "CRC-8 of the header bytes before it"),
))


class LinkFormatError(ValueError):
    """Bytes that are not a well-formed frame (the host's reading of a response, or a request in tests)."""


# ---------------------------------------------------------------------------------------------------
# CRC-8

def crc8_byte(crc, byte):
    """One byte into the CRC-8 (MSB first). Plain operators only, so the RTL calls it on Amaranth values to build
    the same logic: ``crc`` and ``byte`` are 8-bit ints or values; the result is 8 bits."""
    crc = crc ^ byte
    for _ in range(8):
        crc = ((crc << 1) ^ (((crc >> 7) & 1) * CRC_POLY)) & 0xFF
    return crc


def crc8(data: bytes, crc: int = 0) -> int:
    for b in data:
        crc = crc8_byte(crc, b)
    return crc


# ---------------------------------------------------------------------------------------------------
# the rules the bridge applies

def length_range(cmd: int) -> tuple[int, int]:
    """(lowest, highest) ``length`` the bridge takes for ``cmd``."""
    if cmd == Command.PING:
        return 0, 0
    if cmd == Command.ZERO_MEM:
        return 1, REQUEST.mask["length"]
    return 1, MAX_WORDS


def check_request(cmd: int, addr: int, length: int, memory_bytes: int, csr_bytes: int) -> Status:
    """The status a good header gets before any access (OK: the access runs), as the bridge decides it."""
    if cmd not in Command.__members__.values():
        return Status.BAD_COMMAND
    lo, hi = length_range(cmd)
    if not lo <= length <= hi:
        return Status.BAD_LENGTH
    if cmd == Command.PING:
        return Status.OK
    if addr % WORD_BYTES:
        return Status.MISALIGNED
    space = csr_bytes if cmd in (Command.READ_CSR, Command.WRITE_CSR) else memory_bytes
    if addr + WORD_BYTES * length > space:
        return Status.ADDRESS_OUT_OF_RANGE
    return Status.OK


def answer_words(cmd: int, status: int, length: int) -> int:
    """Words in the data section of the answer to a request with ``length``."""
    if status != Status.OK or cmd not in READS:
        return 0
    return PING_WORDS if cmd == Command.PING else length


def divisor(clock_mhz: float, baud: int) -> int:
    """Clock cycles per UART bit; ValueError (one line) when the rounding misses the bit rate by more than
    ``MAX_BAUD_ERROR`` or the divider is below 4 (the receiver samples mid-bit)."""
    exact = clock_mhz * 1e6 / baud
    div = round(exact)
    if div < 4:
        raise ValueError(f"board.uart_baud: {baud} is not allowed with clock.mhz {clock_mhz:g} (allowed: at most "
                         f"{int(clock_mhz * 1e6 / 4)}, 4 clock cycles per bit)")
    if abs(div - exact) / exact > MAX_BAUD_ERROR:
        raise ValueError(f"board.uart_baud: {baud} is not allowed with clock.mhz {clock_mhz:g}: the divider "
                         f"{div} gives {clock_mhz * 1e6 / div:.0f} baud (allowed: within {MAX_BAUD_ERROR:.0%})")
    return div


def timeout_cycles(clock_mhz: float, ms: float = FRAME_TIMEOUT_MS) -> int:
    return max(1, round(clock_mhz * 1e3 * ms))


# ---------------------------------------------------------------------------------------------------
# encoding and decoding

def encode_header(table: FieldTable, **fields: int) -> bytes:
    body = table.pack(**fields, crc=0).to_bytes(table.bytes, "little")[:-1]
    return body + bytes([crc8(body)])


def _words_bytes(words) -> bytes:
    blob = b"".join(int(w).to_bytes(WORD_BYTES, "little") for w in words)
    return blob + bytes([crc8(blob)])


def encode_request(cmd: int, tag: int, addr: int = 0, length: int | None = None, data=()) -> bytes:
    """A request frame. ``data``: the words of a write (``length`` defaults to their count)."""
    data = [int(w) for w in data]
    if length is None:
        length = len(data)
    if cmd in WRITES and len(data) != length:
        raise LinkFormatError(f"request: {len(data)} data words for length {length} (allowed: equal)")
    if cmd not in WRITES and data:
        raise LinkFormatError(f"request: {Command(cmd).name} carries no data (got {len(data)} words)")
    if any(not 0 <= w < 1 << 32 for w in data):
        raise LinkFormatError("request: data words must be 32-bit unsigned")
    frame = encode_header(REQUEST, sync=REQUEST_SYNC, cmd=cmd, tag=tag, addr=addr, length=length)
    return frame + (_words_bytes(data) if cmd in WRITES and length else b"")


def encode_response(cmd: int, tag: int, status: int, data=()) -> bytes:
    """A response frame, as the bridge sends it (the tests' reference)."""
    data = [int(w) for w in data]
    frame = encode_header(RESPONSE, sync=RESPONSE_SYNC, cmd=cmd, tag=tag, status=status, length=len(data))
    return frame + (_words_bytes(data) if data else b"")


@dataclass(frozen=True)
class Response:
    cmd: int
    tag: int
    status: int
    data: tuple[int, ...]

    @property
    def status_name(self) -> str:
        return Status(self.status).name if self.status in Status.__members__.values() else f"unknown ({self.status})"


def decode_header(table: FieldTable, blob: bytes) -> dict[str, int]:
    """A header's fields; LinkFormatError when the sync byte or the crc is wrong."""
    if len(blob) != table.bytes:
        raise LinkFormatError(f"{table.name} header: {len(blob)} bytes (allowed: {table.bytes})")
    fields = table.unpack(int.from_bytes(blob, "little"))
    sync = REQUEST_SYNC if table is REQUEST else RESPONSE_SYNC
    if fields["sync"] != sync:
        raise LinkFormatError(f"{table.name} header: sync byte 0x{fields['sync']:02X} (allowed: 0x{sync:02X})")
    if crc8(blob[:-1]) != fields["crc"]:
        raise LinkFormatError(f"{table.name} header: checksum 0x{fields['crc']:02X}, the bytes give "
                              f"0x{crc8(blob[:-1]):02X}")
    return fields


def decode_data(blob: bytes, length: int) -> tuple[int, ...]:
    """A data section of ``length`` words (their bytes and the crc) -> the words; LinkFormatError on a bad crc."""
    if len(blob) != WORD_BYTES * length + 1:
        raise LinkFormatError(f"data section: {len(blob)} bytes (allowed: {WORD_BYTES * length + 1} for {length} "
                              "words and the checksum)")
    if crc8(blob[:-1]) != blob[-1]:
        raise LinkFormatError(f"data section of {length} words: checksum 0x{blob[-1]:02X}, the bytes give "
                              f"0x{crc8(blob[:-1]):02X}")
    return tuple(int.from_bytes(blob[i:i + WORD_BYTES], "little") for i in range(0, WORD_BYTES * length, WORD_BYTES))


def decode_response(frame: bytes) -> Response:
    """One whole response frame -> Response; LinkFormatError on anything malformed (tests and tools; the driver
    reads a header first and then as many bytes as it announces)."""
    n = RESPONSE.bytes
    fields = decode_header(RESPONSE, frame[:n])
    length = fields["length"]
    rest = frame[n:]
    if length == 0 and rest:
        raise LinkFormatError(f"response: {len(rest)} bytes after a header of length 0")
    data = decode_data(rest, length) if length else ()
    return Response(fields["cmd"], fields["tag"], fields["status"], data)


def decode_request(frame: bytes) -> dict[str, int | tuple[int, ...]]:
    """One whole request frame -> its fields and ``data`` (the tests' model of the bridge's reading)."""
    n = REQUEST.bytes
    fields = decode_header(REQUEST, frame[:n])
    rest = frame[n:]
    has_data = fields["cmd"] in WRITES and fields["length"]
    data = decode_data(rest, fields["length"]) if has_data else ()
    if not has_data and rest:
        raise LinkFormatError(f"request: {len(rest)} bytes after a header without a data section")
    return {**fields, "data": data}
