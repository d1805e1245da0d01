"""Program: the single input of all three executors, and Result: what each returns.

A Program is a descriptor table plus the L1 memory image the descriptors point into. ``compile_matmul``
places operands following ``hwgen.layout`` and checks every input before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import isa
from .config import HwConfig
from .layout import PTR_BYTES, Layout

KERNELS = ("spmm", "gemm")
A_FORMATS = ("dense", "bitmask")


class OperandError(ValueError):
    """A tensor or program that cannot run: the message names the operand, the value and what is allowed."""


@dataclass(frozen=True)
class OutputSpec:
    c_addr: int
    m: int
    n: int


@dataclass(frozen=True)
class Program:
    config_digest: str
    descriptors: tuple[int, ...]
    l1: np.ndarray  # uint8, shape (l1_lines, line_bytes)
    outputs: dict[str, OutputSpec]
    l1_lines_used: int
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # logical operands, for the golden model

    @property
    def fields(self) -> list[dict[str, int]]:
        return [isa.unpack(d) for d in self.descriptors]

    def work(self) -> dict[str, int]:
        """MACs the task needs: useful ones have a nonzero A element at or above the threshold."""
        (f,) = self.fields
        a = self.tensors["A"].astype(np.int16)
        useful = int(((a != 0) & (np.abs(a) >= f["threshold"])).sum()) * f["n"]
        return {"useful_macs": useful, "dense_macs": f["m"] * f["k"] * f["n"]}


@dataclass
class Result:
    outputs: dict[str, np.ndarray]
    cycles: int | None  # None where the executor has no notion of time (golden)
    stats: dict[str, Any] = field(default_factory=dict)


def output_lines(cfg: HwConfig, spec: OutputSpec) -> list[int]:
    """Output-buffer lines holding C, row-major over (row i, lane block j)."""
    lay = Layout.of(cfg)
    nbj = lay.blocks(spec.n)
    return [lay.c_line(spec.c_addr, i * nbj, j) for i in range(spec.m) for j in range(nbj)]


def decode_output(cfg: HwConfig, spec: OutputSpec, words: list[int]) -> np.ndarray:
    """Output lines (as read, in ``output_lines`` order) -> C as int64 (M, N).

    Lane l of a line is bits [l*acc_bits, (l+1)*acc_bits), two's complement."""
    L, bits = cfg.engine.lanes, cfg.engine.acc_bits
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    lanes = [(w >> (lane * bits)) & mask for w in words for lane in range(L)]
    c = np.array([v - (1 << bits) if v & sign else v for v in lanes], dtype=np.int64)
    return c.reshape(spec.m, -1)[:, :spec.n]


def _check_operand(name: str, x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise OperandError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype != np.int8:
        raise OperandError(f"{name}: dtype {x.dtype} is not allowed (allowed: int8)")
    if x.ndim != 2:
        raise OperandError(f"{name}: shape {x.shape} is not allowed (allowed: a 2-D matrix)")
    if 0 in x.shape or max(x.shape) >= 1 << 16:
        raise OperandError(f"{name}: shape {x.shape} is not allowed (each dimension in 1..65535)")
    return x


def bitmask_encode(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask bool (M,K), row offsets uint32 (M+1), packed nonzero values int8 in row-major order)."""
    mask = a != 0
    ptr = np.zeros(a.shape[0] + 1, dtype=np.uint32)
    np.cumsum(mask.sum(axis=1), out=ptr[1:])
    return mask, ptr, a[mask]


class _Image:
    """Bump allocator over L1 lines."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.lines = np.zeros((cfg.l1_lines, cfg.line_bytes), dtype=np.uint8)
        self.next = 0

    def place(self, what: str, blob: np.ndarray) -> int:
        """Copy ``blob`` (uint8, already padded to whole lines) and return its first line."""
        nlines = blob.size // self.cfg.line_bytes
        if self.next + nlines > self.cfg.l1_lines:
            raise OperandError(
                f"{what}: needs L1 lines {self.next}..{self.next + nlines - 1} but l1.bytes = {self.cfg.l1.bytes} "
                f"holds {self.cfg.l1_lines} lines of {self.cfg.line_bytes} bytes (operands larger than L1 "
                "need tiling, which arrives with the memory hierarchy)")
        start = self.next
        self.lines[start:start + nlines] = blob.reshape(nlines, self.cfg.line_bytes)
        self.next += nlines
        return start


def _rows_padded(x: np.ndarray, row_bytes: int) -> np.ndarray:
    out = np.zeros((x.shape[0], row_bytes), dtype=np.uint8)
    out[:, :x.shape[1]] = x.view(np.uint8)
    return out


def _pad_lines(blob: np.ndarray, line_bytes: int) -> np.ndarray:
    blob = blob.reshape(-1).view(np.uint8)
    return np.concatenate([blob, np.zeros(-blob.size % line_bytes, dtype=np.uint8)])


def compile_matmul(cfg: HwConfig, a: np.ndarray, b: np.ndarray, kernel: str = "spmm",
                   a_format: str = "dense", threshold: int | None = None) -> Program:
    """One C = A @ B task: check the operands, place them in L1, write its descriptor."""
    if kernel not in KERNELS:
        raise OperandError(f"kernel: {kernel!r} is not allowed (allowed: {', '.join(KERNELS)})")
    if a_format not in A_FORMATS:
        raise OperandError(f"format: {a_format!r} is not allowed (allowed: {', '.join(A_FORMATS)})")
    if kernel == "gemm" and a_format != "dense":
        raise OperandError(f"format: {a_format!r} is not allowed for gemm (allowed: dense)")
    a, b = _check_operand("A", a), _check_operand("B", b)
    if a.shape[1] != b.shape[0]:
        raise OperandError(f"B: shape {b.shape} does not match A {a.shape}: B needs {a.shape[1]} rows")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer))
                                  or not 0 <= threshold <= 128):
        raise OperandError(f"threshold: {threshold!r} is not allowed (allowed: an integer 0..128)")
    if kernel == "gemm":
        if threshold:
            raise OperandError(f"threshold: {threshold} is not allowed for gemm (allowed: 0; gemm is dense)")
        threshold = 0
    elif threshold is None:
        threshold = cfg.engine.threshold
    (m, k), n = a.shape, b.shape[1]
    lay, W = Layout.of(cfg), cfg.line_bytes
    nw = lay.words(k)

    img = _Image(cfg)
    fields: dict[str, int] = dict(opcode=isa.Opcode[kernel.upper()], a_format=isa.AFormat[a_format.upper()],
                                  m=m, k=k, n=n, threshold=threshold)
    if a_format == "dense":
        fields["a_addr"] = img.place("A", _rows_padded(a, nw * W))
    else:
        mask, ptr, vals = bitmask_encode(a)
        mask_rows = np.zeros((m, nw * W), dtype=bool)
        mask_rows[:, :k] = mask
        mask_bytes = np.packbits(mask_rows.reshape(-1), bitorder="little")
        fields["a_addr"] = img.place("A.mask", _pad_lines(mask_bytes, W))
        fields["a_ptr"] = img.place("A.ptr", _pad_lines(ptr.astype("<u4"), W))
        fields["a_vals"] = img.place("A.vals", _pad_lines(vals if vals.size else np.zeros(1, np.int8), W))
    fields["b_addr"] = img.place("B", _rows_padded(b, lay.b_row_lines(n) * W))

    out_lines = m * lay.blocks(n)
    if out_lines > cfg.out_lines:
        raise OperandError(f"C: {m}x{n} needs {out_lines} output lines but l1.out_bytes = {cfg.l1.out_bytes} "
                           f"holds {cfg.out_lines} lines of {cfg.engine.lanes} x int{cfg.engine.acc_bits}")
    fields["c_addr"] = 0
    return Program(config_digest=cfg.digest(), descriptors=(isa.pack(**fields),), l1=img.lines,
                   outputs={"C": OutputSpec(0, m, n)}, l1_lines_used=img.next,
                   tensors={"A": a, "B": b})


__all__ = [
    "A_FORMATS",
    "KERNELS",
    "PTR_BYTES",
    "OperandError",
    "OutputSpec",
    "Program",
    "Result",
    "bitmask_encode",
    "compile_matmul",
]
