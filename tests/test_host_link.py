"""The host link's frame format (hwgen/spec/host_link.py): the field tables, CRC-8, encoding and decoding, the
bridge's checks, and hostile bytes: every malformed frame is refused with one line naming what is wrong."""
import random

import pytest

from hwgen.spec import host_link as hl
from hwgen.spec.host_link import Command, LinkFormatError, Status

MEM, CSR = 131072, 128


def test_crc8_is_crc8_smbus():
    assert hl.crc8(b"123456789") == 0xF4            # the catalogue's check value of CRC-8/SMBUS
    assert hl.crc8(b"") == 0
    data = bytes(range(40))
    assert hl.crc8(data[20:], hl.crc8(data[:20])) == hl.crc8(data)


def test_headers_are_whole_bytes_little_endian():
    assert (hl.REQUEST.bytes, hl.RESPONSE.bytes) == (10, 7)
    frame = hl.encode_request(Command.READ_MEM, 0x33, 0x11223344, length=0x0102)
    assert frame[:9] == bytes([0xA5, 0x04, 0x33, 0x44, 0x33, 0x22, 0x11, 0x02, 0x01])
    assert frame[9] == hl.crc8(frame[:9]) and len(frame) == 10
    resp = hl.encode_response(Command.READ_MEM, 0x33, Status.OK, [0xAABBCCDD])
    assert resp[:6] == bytes([0x5A, 0x04, 0x33, 0x00, 0x01, 0x00]) and resp[6] == hl.crc8(resp[:6])
    assert resp[7:11] == bytes([0xDD, 0xCC, 0xBB, 0xAA]) and resp[11] == hl.crc8(resp[7:11])


@pytest.mark.parametrize("cmd, length, data", [
    (Command.PING, 0, ()), (Command.READ_CSR, 3, ()), (Command.WRITE_CSR, 2, (1, 2)),
    (Command.READ_MEM, hl.MAX_WORDS, ()), (Command.WRITE_MEM, 1, (0xFFFFFFFF,)), (Command.ZERO_MEM, 65535, ()),
])
def test_requests_round_trip(cmd, length, data):
    frame = hl.encode_request(cmd, 200, 0x40, length if not data else None, data)
    got = hl.decode_request(frame)
    assert (got["cmd"], got["tag"], got["addr"], got["length"], got["data"]) == (cmd, 200, 0x40, length, data)


def test_responses_round_trip():
    for status in Status:
        data = (1, 2, 3) if status == Status.OK else ()
        r = hl.decode_response(hl.encode_response(Command.READ_MEM, 9, status, data))
        assert (r.cmd, r.tag, r.status, r.data, r.status_name) == (Command.READ_MEM, 9, status, data, status.name)


@pytest.mark.parametrize("cmd, addr, length, status", [
    (Command.PING, 0, 0, Status.OK),
    (Command.PING, 0, 1, Status.BAD_LENGTH),
    (0x00, 0, 1, Status.BAD_COMMAND),
    (0x7F, 0, 1, Status.BAD_COMMAND),
    (Command.READ_MEM, 0, 0, Status.BAD_LENGTH),
    (Command.READ_MEM, 0, hl.MAX_WORDS + 1, Status.BAD_LENGTH),
    (Command.ZERO_MEM, 0, MEM // 4, Status.OK),
    (Command.ZERO_MEM, 4, MEM // 4, Status.ADDRESS_OUT_OF_RANGE),
    (Command.WRITE_MEM, 2, 1, Status.MISALIGNED),
    (Command.READ_MEM, MEM - 4, 1, Status.OK),
    (Command.READ_MEM, MEM - 4, 2, Status.ADDRESS_OUT_OF_RANGE),
    (Command.READ_MEM, 0xFFFFFFFC, 64, Status.ADDRESS_OUT_OF_RANGE),   # no wrap around 2^32
    (Command.READ_CSR, CSR - 4, 1, Status.OK),
    (Command.WRITE_CSR, CSR, 1, Status.ADDRESS_OUT_OF_RANGE),
])
def test_the_bridge_checks(cmd, addr, length, status):
    assert hl.check_request(cmd, addr, length, MEM, CSR) == status


def test_answer_words():
    assert hl.answer_words(Command.PING, Status.OK, 0) == hl.PING_WORDS
    assert hl.answer_words(Command.READ_MEM, Status.OK, 7) == 7
    assert hl.answer_words(Command.WRITE_MEM, Status.OK, 7) == 0
    assert hl.answer_words(Command.READ_MEM, Status.TIMEOUT, 7) == 0


def test_every_status_has_a_text():
    assert set(hl.STATUS_TEXT) == set(Status)


# ---- hostile bytes ----

def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("frame, match", [
    (b"", r"^response header: 0 bytes \(allowed: 7\)$"),
    (b"\x5a\x01\x02\x00\x00\x00", r"^response header: 6 bytes \(allowed: 7\)$"),
    (b"\xa5" + bytes(6), r"^response header: sync byte 0xA5 \(allowed: 0x5A\)$"),
    (b"\x5a" + bytes(6), r"^response header: checksum 0x00, the bytes give 0x"),
])
def test_malformed_response_headers(frame, match):
    with pytest.raises(LinkFormatError, match=match) as info:
        hl.decode_response(frame)
    _one_line(info)


def test_corrupted_data_and_lengths_are_refused():
    good = hl.encode_response(Command.READ_MEM, 1, Status.OK, [1, 2])
    bad = bytearray(good)
    bad[9] ^= 0x10
    with pytest.raises(LinkFormatError, match=r"^data section of 2 words: checksum") as info:
        hl.decode_response(bytes(bad))
    _one_line(info)
    with pytest.raises(LinkFormatError, match=r"^data section: 8 bytes \(allowed: 9 for 2 words"):
        hl.decode_response(good[:-1])
    with pytest.raises(LinkFormatError, match=r"^response: 1 bytes after a header of length 0$"):
        hl.decode_response(hl.encode_response(Command.WRITE_MEM, 1, Status.OK) + b"\x00")
    with pytest.raises(LinkFormatError, match=r"^request: 2 bytes after a header without a data section$"):
        hl.decode_request(hl.encode_request(Command.READ_MEM, 1, 0, 1) + b"\x00\x00")


def test_bad_requests_are_refused_when_encoding():
    with pytest.raises(LinkFormatError, match=r"^request: 1 data words for length 2 \(allowed: equal\)$"):
        hl.encode_request(Command.WRITE_MEM, 1, 0, 2, [5])
    with pytest.raises(LinkFormatError, match=r"^request: READ_MEM carries no data \(got 1 words\)$"):
        hl.encode_request(Command.READ_MEM, 1, 0, 1, [5])
    with pytest.raises(LinkFormatError, match=r"^request: data words must be 32-bit unsigned$"):
        hl.encode_request(Command.WRITE_MEM, 1, 0, data=[1 << 32])
    with pytest.raises(ValueError, match=r"^request.addr: 4294967296 does not fit in 32 unsigned bits"):
        hl.encode_request(Command.READ_MEM, 1, 1 << 32, 1)
    with pytest.raises(ValueError, match=r"^request.length: 65536 does not fit in 16 unsigned bits"):
        hl.encode_request(Command.ZERO_MEM, 1, 0, 65536)


def test_every_single_bit_flip_is_caught():
    """CRC-8 catches every 1-bit error of a header and of a data section (and so every byte the line corrupted by
    one bit): a flipped frame never decodes to the original or to anything else."""
    frame = hl.encode_response(Command.READ_MEM, 77, Status.OK, [0xDEADBEEF, 0, 0xFFFFFFFF, 0x01020304])
    for bit in range(8 * len(frame)):
        flipped = bytearray(frame)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(LinkFormatError):
            hl.decode_response(bytes(flipped))


def test_random_garbage_never_decodes_silently_wrong():
    """Random byte strings either are refused with a LinkFormatError or are a well-formed frame whose fields
    re-encode to exactly the same bytes (nothing is read past or around a checksum)."""
    rng = random.Random(12)
    decoded = 0
    for _ in range(20000):
        n = rng.choice([hl.RESPONSE.bytes, hl.RESPONSE.bytes + 5, rng.randrange(0, 40)])
        blob = bytes([hl.RESPONSE_SYNC]) + bytes(rng.randrange(256) for _ in range(n - 1)) if n else b""
        try:
            r = hl.decode_response(blob)
        except LinkFormatError:
            continue
        decoded += 1
        assert hl.encode_response(r.cmd, r.tag, r.status, r.data) == blob
    assert decoded < 200     # about 1 in 256 random headers passes its CRC-8


def test_divisor_and_timeout():
    assert hl.divisor(25, 115200) == 217          # ULX3S: 25 MHz, 0.03 % off
    assert hl.divisor(1000, 115200) == 8681
    with pytest.raises(ValueError, match=r"^board.uart_baud: 3000000 is not allowed with clock.mhz 10 \(allowed: "
                                         r"at most 2500000, 4 clock cycles per bit\)$"):
        hl.divisor(10, 3_000_000)
    with pytest.raises(ValueError, match=r"^board.uart_baud: 2000000 is not allowed with clock.mhz 9: the divider 4 "
                                         r"gives 2250000 baud \(allowed: within 2%\)$"):
        hl.divisor(9, 2_000_000)
    assert hl.timeout_cycles(25) == 25_000 * hl.FRAME_TIMEOUT_MS
