"""The cross-check: the same programs through golden, sim and RTL; outputs bit-identical, cycles equal."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.workloads import extreme_operands, random_operands, skewed_operands
from hwgen.config import HwConfig
from hwgen.layout import Layout
from hwgen.program import OperandError, Program, Result, compile_matmul

from .backends import BACKENDS, run_programs

DENSITIES = (0.0, 0.01, 0.1, 0.5, 1.0)


@dataclass
class Case:
    label: str
    program: Program


def _fits(cfg: HwConfig, m: int, k: int, n: int) -> bool:
    lay = Layout.of(cfg)
    lines = m * lay.words(k) + k * lay.b_row_lines(n)
    return lines <= cfg.l1_lines and m * lay.blocks(n) <= cfg.out_lines


def standard_shape(cfg: HwConfig) -> tuple[int, int, int]:
    """A shape that exercises partial words and lane blocks (K, N not multiples of W, L) and fits L1."""
    W, L = cfg.line_bytes, cfg.engine.lanes
    m, k, n = 4 * cfg.engine.rows + 1, 3 * W - 5, 2 * L + 3
    while not _fits(cfg, m, k, n) and k > W:
        k -= W
    while not _fits(cfg, m, k, n) and m > 1:
        m -= 1
    if not _fits(cfg, m, k, n):
        raise OperandError(f"l1.bytes: {cfg.l1.bytes} is too small for any verify shape")
    return m, k, n


def standard_cases(cfg: HwConfig, seeds: int = 1) -> list[Case]:
    m, k, n = standard_shape(cfg)
    cases = []
    for seed in range(seeds):
        for d in DENSITIES:
            for fmt in ("dense", "bitmask"):
                a, b = random_operands(m, k, n, d, seed)
                cases.append(Case(f"spmm {fmt} d={d} s{seed}", compile_matmul(cfg, a, b, "spmm", fmt)))
        a, b = random_operands(m, k, n, 0.5, seed)
        cases.append(Case(f"gemm d=0.5 s{seed}", compile_matmul(cfg, a, b, "gemm")))
        cases.append(Case(f"spmm dense d=0.5 thr=64 s{seed}", compile_matmul(cfg, a, b, "spmm", threshold=64)))
        cases.append(Case(f"spmm bitmask d=0.5 thr=64 s{seed}",
                          compile_matmul(cfg, a, b, "spmm", "bitmask", threshold=64)))
        a, b = skewed_operands(m, k, n, seed)
        cases.append(Case(f"spmm skewed rows s{seed}", compile_matmul(cfg, a, b, "spmm")))
        a, b = extreme_operands(m, k, n, seed)
        cases.append(Case(f"spmm max-magnitude s{seed}", compile_matmul(cfg, a, b, "spmm")))
    return cases


@dataclass
class Row:
    label: str
    results: dict[str, Result]

    @property
    def outputs_equal(self) -> bool:
        ref = self.results["golden"].outputs
        return all(set(r.outputs) == set(ref) and all(np.array_equal(r.outputs[k], ref[k]) for k in ref)
                   for r in self.results.values())

    @property
    def cycles_equal(self) -> bool:
        timed = [r.cycles for name, r in self.results.items() if name != "golden"]
        return len(set(timed)) <= 1

    @property
    def ok(self) -> bool:
        return self.outputs_equal and self.cycles_equal


def cross_check(cfg: HwConfig, cases: list[Case], backends=BACKENDS, **kw) -> list[Row]:
    per_backend = {b: run_programs(b, cfg, [c.program for c in cases], **kw) for b in backends}
    return [Row(c.label, {b: per_backend[b][i] for b in backends}) for i, c in enumerate(cases)]
