"""Cycle model of the DSA engine: same outputs as the RTL and, for the engine alone, the same cycle count.

Per tile the model is vectorised: one numpy pass finds every row's encode time
Σ_w max(1, marked elements in scan word w). Only the dispatcher, which hands jobs to the lowest free
row unit one per cycle, is a short loop over jobs (never over cycles). Every latency comes from the
RTL components' properties (RowUnit, DsaEngine), so a pipeline change moves both.
"""
from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from hwgen import isa
from hwgen.config import HwConfig
from hwgen.layout import PTR_BYTES, Layout
from hwgen.program import Program, Result


@lru_cache(maxsize=64)
def _timing(cfg: HwConfig) -> tuple[int, int, int, int, int]:
    # imported here so that reading a config never needs Amaranth
    from hwgen.engine import DsaEngine
    from hwgen.row_unit import RowUnit
    return (RowUnit.front_latency, RowUnit.result_latency, RowUnit.min_period(cfg),
            DsaEngine.first_dispatch_cycle, DsaEngine.done_delay)


def decode_a(cfg: HwConfig, f: dict[str, int], l1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read A back from the L1 image: (values int8 (M,K), format marks bool (M, nw*W))."""
    lay, W = Layout.of(cfg), cfg.line_bytes
    m, k = f["m"], f["k"]
    nw = lay.words(k)
    if f["a_format"] == isa.AFormat.DENSE:
        rows = l1[f["a_addr"]:f["a_addr"] + m * nw].reshape(m, nw * W).view(np.int8)
        return rows[:, :k].copy(), rows != 0
    nbits = m * nw * W
    mask_lines = lay.mask_lines(m, k)
    bits = np.unpackbits(l1[f["a_addr"]:f["a_addr"] + mask_lines].reshape(-1), bitorder="little")[:nbits]
    marks = bits.reshape(m, nw * W).astype(bool)
    ptr_lines = lay.lines_for_bytes((m + 1) * PTR_BYTES)
    ptr = l1[f["a_ptr"]:f["a_ptr"] + ptr_lines].reshape(-1)[:(m + 1) * PTR_BYTES].view("<u4")
    vals = l1[f["a_vals"]:].reshape(-1)[:int(ptr[-1])].view(np.int8)
    a = np.zeros((m, nw * W), dtype=np.int8)
    a[marks] = vals
    return a[:, :k], marks


def decode_b(cfg: HwConfig, f: dict[str, int], l1: np.ndarray) -> np.ndarray:
    lay, W = Layout.of(cfg), cfg.line_bytes
    nbl = lay.b_row_lines(f["n"])
    rows = l1[f["b_addr"]:f["b_addr"] + f["k"] * nbl].reshape(f["k"], nbl * W).view(np.int8)
    return rows[:, :f["n"]].copy()


def marked_per_word(cfg: HwConfig, f: dict[str, int], a: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """(M, nw): elements of each scan word the compactor will emit (what the RTL's detect stage marks)."""
    W, m, k = cfg.line_bytes, f["m"], f["k"]
    nw = Layout.of(cfg).words(k)
    if f["opcode"] == isa.Opcode.GEMM:
        counts = np.minimum(W, k - W * np.arange(nw))[None, :].repeat(m, axis=0)
    else:
        if f["a_format"] == isa.AFormat.DENSE:
            padded = np.zeros((m, nw * W), dtype=np.int16)
            padded[:, :k] = a
            marks = (padded != 0) & (np.abs(padded) >= f["threshold"])
        counts = marks.reshape(m, nw, W).sum(axis=2)
    return counts


def schedule(cfg: HwConfig, row_cycles: np.ndarray, blocks: int) -> int:
    """Cycles from start to done for jobs (i, j) in row-major order on R units. Exact w.r.t. the RTL.

    One step per job: the dispatcher takes the next cycle >= the earliest free unit and gives the job to
    the lowest-numbered free unit. A unit's results leave in order, so only each unit's last job
    decides when its writes end.
    """
    front, result_latency, min_period, first, done_delay = _timing(cfg)
    R = cfg.engine.rows
    free = [first] * R
    last_te = [None] * R
    t = first - 1
    for duration in np.repeat(row_cycles + (front - 1), blocks).tolist():
        earliest = min(free)
        t = t + 1 if t >= earliest else earliest
        u = 0
        while free[u] > t:
            u += 1
        te = t + duration                      # last encode cycle of this job
        last_te[u] = te
        free[u] = te if te > t + min_period else t + min_period
    last_write = 0
    for u, te in enumerate(last_te):
        if te is not None:
            ready = te + result_latency
            last_write = max(last_write, ready + (u - (ready - 1)) % R)   # first cycle >= ready in u's slot
    return last_write + done_delay


class EngineModel:
    """``run(program) -> Result`` like every executor; ``outputs=False`` skips the arithmetic (sweeps)."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg

    def run(self, program: Program, outputs: bool = True) -> Result:

        cfg = self.cfg
        if program.config_digest != cfg.digest():
            raise ValueError(f"program was compiled for config {program.config_digest}, not {cfg.digest()}")
        wall = time.perf_counter()
        (f,) = program.fields
        a, marks = decode_a(cfg, f, program.l1)
        b = decode_b(cfg, f, program.l1)
        per_word = marked_per_word(cfg, f, a, marks)
        blocks = Layout.of(cfg).blocks(f["n"])
        # a word with no marked element still costs its one cycle; a zero inside a word costs none
        cycles = schedule(cfg, np.maximum(per_word, 1).sum(axis=1), blocks)
        result = {}
        if outputs:
            from golden import kernels  # the one definition of the arithmetic
            numeric = cfg.numeric()
            if f["opcode"] == isa.Opcode.GEMM:
                result["C"] = kernels.gemm(numeric, a, b).numpy()
            else:
                result["C"] = kernels.spmm(numeric, a, b, threshold=f["threshold"]).numpy()
        return Result(outputs=result, cycles=cycles,
                      stats={"backend": "sim", "elems": int(per_word.sum()) * blocks,
                             "wall_s": time.perf_counter() - wall})
