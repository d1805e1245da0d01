"""The program format: one field table for a task descriptor.

Both the Amaranth ``data.StructLayout`` that the RTL decodes and the Python packer/unpacker are derived
from ``DESCRIPTOR`` below; no other copy of the format exists. Fields are packed LSB-first in table order.
"""
from __future__ import annotations

import enum

from hwgen.spec.fields import Field, FieldTable


class Opcode(enum.IntEnum):
    NOP = 0
    GEMM = 1   # dense: every element of A costs a cycle (the baseline)
    SPMM = 2   # sparse A: zeros (and |a| < threshold) are skipped at run time
    TOPK = 3   # each output-buffer row of scores -> top-k + integer softmax -> P bytes in a zeroed L1 region
    LOAD = 4   # DMA: `lines` L1 lines from HBM byte address hbm_addr into L1 from line a_addr
    STORE = 5  # DMA: `lines` output-buffer lines from c_addr (source 1: L1 lines from d_addr) to HBM hbm_addr


class Unit(enum.IntEnum):
    """The engine's three units; a task runs on one, and may first wait for others to go idle."""
    LOAD = 0      # DMA in: HBM -> L1 (AXI read channels)
    COMPUTE = 1   # GEMM / SPMM / TOPK / NOP
    STORE = 2     # DMA out: output buffer or L1 -> HBM (AXI write channels)


def unit_of(opcode: int) -> Unit:
    return {Opcode.LOAD: Unit.LOAD, Opcode.STORE: Unit.STORE}.get(opcode, Unit.COMPUTE)


class Requant(enum.IntEnum):
    NONE = 0
    PER_TENSOR = 1   # one (multiplier, shift) for every column
    PER_CHANNEL = 2  # one per column of C


class AFormat(enum.IntEnum):
    """How operand A is stored; what a_addr / a_ptr / a_meta point at (see hwgen/spec/layout.py)."""
    DENSE = 0    # a_addr: rows; zeros found from the values
    BITMASK = 1  # a_addr: one bit per element; a_ptr: uint32 row offsets; a_meta: packed nonzero values
    NM = 2       # a_addr: N kept values per group of M; a_meta: each kept value's index in its group
    CSR = 3      # a_addr: values; a_ptr: uint32 row pointers; a_meta: uint16 column indices


#: the largest |a| < threshold the engine takes: |a| of an int8 is at most 128, so 128 drops every nonzero but -128
THRESHOLD_MAX = 128

DESCRIPTOR_BITS = 512  # one 64-byte line; room for the scheduler fields a later format adds

DESCRIPTOR = FieldTable("descriptor", width=DESCRIPTOR_BITS, fields=(
    Field("opcode", 4, "Opcode"),
    Field("a_format", 4, "AFormat of operand A"),
    Field("m", 16, "rows of A and C"),
    Field("k", 16, "columns of A, rows of B"),
    Field("n", 16, "columns of B and C"),
    Field("threshold", 8, "|a| < threshold counts as zero (0: only exact zeros)"),
    Field("nm_n_log2", 2, "N:M format: log2 N (kept values per group)"),
    Field("nm_m_log2", 3, "N:M format: log2 M (group size along K)"),
    Field("causal", 1, "gemm/spmm: skip lane blocks above the diagonal j > i + (n - m); topk: mask them"),
    Field("topk", 7, "topk: entries kept per row (1..attention.topk_max)"),
    Field("a_addr", 24, "L1 line of A's main stream (rows, bitmask, kept values, CSR values; topk: P)"),
    Field("a_ptr", 24, "L1 line of A's uint32 row offsets (bitmask, CSR)"),
    Field("a_meta", 24, "L1 line of A's second stream (packed values, N:M indices, CSR columns)"),
    Field("b_addr", 24, "L1 line of B (dense, row-major)"),
    Field("c_addr", 24, "output-buffer line of C (topk: of the scores it reads)"),
    Field("requant", 2, "Requant of C to int8 (written to the output buffer and to L1 at d_addr)"),
    Field("rq_addr", 24, "L1 line of the uint16 multipliers, then (next line) the uint8 shifts"),
    Field("d_addr", 24, "L1 line of requantized C (int8 dense rows, usable as a later task's A or B)"),
    Field("wait", 3, "issue only once these units are idle: bit Unit.LOAD / COMPUTE / STORE (1 << unit)"),
    Field("hbm_addr", 40, "load/store: HBM byte address (a multiple of the line)"),
    Field("lines", 16, "load: L1 lines to fill; store: lines to write out (output-buffer or L1 lines, see source)"),
    Field("stream", 1, "load: read-once data (the L3 may bypass it, l3.bypass = streaming)"),
    Field("source", 1, "store: 0 output buffer lines from c_addr, 1 L1 lines from d_addr (requantized int8 rows)"),
    Field("accumulate", 1, "gemm/spmm: each job's accumulators start from its output-buffer line (row i, lane "
                           "block j at c_addr) instead of 0, so the task adds its A @ B to what an earlier task "
                           "left there (K tiling); the overflow rule still applies after every addition"),
))
FIELD_NAMES = DESCRIPTOR.names
pack = DESCRIPTOR.pack
unpack = DESCRIPTOR.unpack


def to_bytes(word: int) -> bytes:
    return word.to_bytes(DESCRIPTOR_BITS // 8, "little")


def from_bytes(blob: bytes) -> int:
    if len(blob) != DESCRIPTOR_BITS // 8:
        raise ValueError(f"descriptor: {len(blob)} bytes, expected {DESCRIPTOR_BITS // 8}")
    return int.from_bytes(blob, "little")
