"""The program format: one field table for a task descriptor.

Both the Amaranth ``data.StructLayout`` that the RTL decodes and the Python packer/unpacker are derived
from ``DESCRIPTOR`` below; no other copy of the format exists. Fields are packed LSB-first in table order.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Opcode(enum.IntEnum):
    NOP = 0
    GEMM = 1   # dense: every element of A costs a cycle (the baseline)
    SPMM = 2   # sparse A: zeros (and |a| < threshold) are skipped at run time
    TOPK = 3   # each output-buffer row of scores -> top-k + integer softmax -> P bytes in a zeroed L1 region


class Requant(enum.IntEnum):
    NONE = 0
    PER_TENSOR = 1   # one (multiplier, shift) for every column
    PER_CHANNEL = 2  # one per column of C


class AFormat(enum.IntEnum):
    """How operand A is stored; what a_addr / a_ptr / a_meta point at (see hwgen/layout.py)."""
    DENSE = 0    # a_addr: rows; zeros found from the values
    BITMASK = 1  # a_addr: one bit per element; a_ptr: uint32 row offsets; a_meta: packed nonzero values
    NM = 2       # a_addr: N kept values per group of M; a_meta: each kept value's index in its group
    CSR = 3      # a_addr: values; a_ptr: uint32 row pointers; a_meta: uint16 column indices


@dataclass(frozen=True)
class DescField:
    name: str
    bits: int
    doc: str


DESCRIPTOR: tuple[DescField, ...] = (
    DescField("opcode", 4, "Opcode"),
    DescField("a_format", 4, "AFormat of operand A"),
    DescField("m", 16, "rows of A and C"),
    DescField("k", 16, "columns of A, rows of B"),
    DescField("n", 16, "columns of B and C"),
    DescField("threshold", 8, "|a| < threshold counts as zero (0: only exact zeros)"),
    DescField("nm_n_log2", 2, "N:M format: log2 N (kept values per group)"),
    DescField("nm_m_log2", 3, "N:M format: log2 M (group size along K)"),
    DescField("causal", 1, "gemm/spmm: skip lane blocks above the diagonal j > i + (n - m); topk: mask them"),
    DescField("topk", 7, "topk: entries kept per row (1..attention.topk_max)"),
    DescField("a_addr", 24, "L1 line of A's main stream (rows, bitmask, kept values, CSR values; topk: P)"),
    DescField("a_ptr", 24, "L1 line of A's uint32 row offsets (bitmask, CSR)"),
    DescField("a_meta", 24, "L1 line of A's second stream (packed values, N:M indices, CSR columns)"),
    DescField("b_addr", 24, "L1 line of B (dense, row-major)"),
    DescField("c_addr", 24, "output-buffer line of C (topk: of the scores it reads)"),
    DescField("requant", 2, "Requant of C to int8 (written to the output buffer and to L1 at d_addr)"),
    DescField("rq_addr", 24, "L1 line of the uint16 multipliers, then (next line) the uint8 shifts"),
    DescField("d_addr", 24, "L1 line of requantized C (int8 dense rows, usable as a later task's A or B)"),
)

DESCRIPTOR_BITS = 256  # the table fits with room for the scheduler fields a later format adds
assert sum(f.bits for f in DESCRIPTOR) <= DESCRIPTOR_BITS
FIELD_NAMES = tuple(f.name for f in DESCRIPTOR)


def descriptor_layout():
    """The Amaranth layout of a descriptor (imported lazily so Python-only users need no Amaranth)."""
    from amaranth.lib import data
    return data.StructLayout({f.name: f.bits for f in DESCRIPTOR})


def pack(**fields: int) -> int:
    """Descriptor fields -> one integer of DESCRIPTOR_BITS bits. Missing fields are 0."""
    unknown = set(fields) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"descriptor: unknown field(s) {sorted(unknown)} (allowed: {', '.join(FIELD_NAMES)})")
    word, offset = 0, 0
    for f in DESCRIPTOR:
        value = int(fields.get(f.name, 0))
        if not 0 <= value < (1 << f.bits):
            raise ValueError(f"descriptor.{f.name}: {value} does not fit in {f.bits} unsigned bits "
                             f"(allowed: 0..{(1 << f.bits) - 1})")
        word |= value << offset
        offset += f.bits
    return word


def unpack(word: int) -> dict[str, int]:
    out, offset = {}, 0
    for f in DESCRIPTOR:
        out[f.name] = (word >> offset) & ((1 << f.bits) - 1)
        offset += f.bits
    return out


def to_bytes(word: int) -> bytes:
    return word.to_bytes(DESCRIPTOR_BITS // 8, "little")


def from_bytes(blob: bytes) -> int:
    if len(blob) != DESCRIPTOR_BITS // 8:
        raise ValueError(f"descriptor: {len(blob)} bytes, expected {DESCRIPTOR_BITS // 8}")
    return int.from_bytes(blob, "little")
