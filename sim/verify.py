"""The cross-check: the same programs through golden, sim and RTL; outputs bit-identical, cycles equal."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.generators.operands import (
    extreme_operands,
    power_law_rows,
    prune_nm,
    random_operands,
    relu_operands,
    skewed_operands,
)
from hwgen.compiler.single_kernel import compile_attention, compile_layers, compile_matmul
from hwgen.spec.config import HwConfig
from hwgen.spec.formats import OperandError
from hwgen.spec.layout import Layout
from hwgen.spec.program import Program, Result
from sim.backends import BACKENDS, run_programs

DENSITIES = (0.0, 0.01, 0.1, 0.5, 1.0)
FORMATS = ("dense", "bitmask", "nm", "csr")
NM_RATIOS = ((2, 4), (1, 4), (4, 8))


DAG_CYCLE_TOLERANCE = 0.03   # sim vs RTL cycles of a DAG program: the chip model is approximate where engines
                             # share the memory side (arbiter and R channel contention), exact elsewhere


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
    """Every kernel and format over the densities, thresholds, skew, overflow, power-law rows, ReLU."""
    m, k, n = standard_shape(cfg)
    cases = []

    def add(label, a, b, kernel="spmm", fmt="dense", **kw):
        cases.append(Case(f"{kernel} {fmt} {label}", compile_matmul(cfg, a, b, kernel, fmt, **kw)))

    for seed in range(seeds):
        for d in DENSITIES:
            a, b = random_operands(m, k, n, d, seed)
            for fmt in FORMATS:
                add(f"d={d} s{seed}", prune_nm(a, 2, 4) if fmt == "nm" else a, b, fmt=fmt)
        for nm in NM_RATIOS:
            a, b = random_operands(m, k, n, 1.0, seed)
            add(f"{nm[0]}:{nm[1]} s{seed}", prune_nm(a, *nm), b, fmt="nm", nm=nm)
        a, b = random_operands(m, k, n, 0.5, seed)
        add(f"d=0.5 s{seed}", a, b, kernel="gemm")
        for fmt in FORMATS:
            add(f"d=0.5 thr=64 s{seed}", prune_nm(a, 2, 4) if fmt == "nm" else a, b, fmt=fmt, threshold=64)
        for fmt in ("dense", "csr"):
            add(f"skewed rows s{seed}", *skewed_operands(m, k, n, seed), fmt=fmt)
        add(f"max-magnitude s{seed}", *extreme_operands(m, k, n, seed))
        add(f"relu activations s{seed}", *relu_operands(m, k, n, seed))
        add(f"power-law thr=32 s{seed}", *power_law_rows(m, k, n, 0.15, seed), kernel="gnn_aggregate", fmt="csr",
            threshold=32)
        cases.extend(_int8_cases(cfg, seed, m, k, n))
    return cases


def dag_cases(cfg: HwConfig, seed: int) -> list[Case]:
    """DAG programs on the whole chip: a multimodal graph, gated attention heads, a mixture of experts and a
    random DAG (the workloads of golden/generators/dags.py, sized for the tiny config)."""
    from golden.generators import dags as dw
    from hwgen.compiler.dag import compile_workload
    workloads = (dw.multimodal(seed), dw.mha_gating(seed), dw.moe(seed, experts=4),
                 dw.random_dag(seed, kernels=6, shape=("diamonds", "fan_in", "fan_out", "chains")[seed % 4]))
    return [Case(f"dag {w.name}", compile_workload(cfg, w)) for w in workloads]


def _int8_cases(cfg: HwConfig, seed: int, m: int, k: int, n: int) -> list[Case]:
    """Requantized outputs, a chain of layers through L1, and top-k attention (causal or not)."""
    rng = np.random.default_rng(1000 + seed)
    a, b = random_operands(m, k, n, 0.5, seed)
    cases = [Case(f"spmm requant per-tensor s{seed}",
                  compile_matmul(cfg, a, b, requant=(int(rng.integers(1, 4000)), 14))),
             Case(f"spmm csr requant per-channel s{seed}",
                  compile_matmul(cfg, a, b, "spmm", "csr", row_order="natural",
                                 requant=(rng.integers(1, 4000, n), rng.integers(8, 18, n))))]
    hidden = max(2, n // 2)
    w0 = rng.integers(-128, 128, (k, hidden)).astype(np.int8)
    w1 = rng.integers(-128, 128, (hidden, n)).astype(np.int8)
    cases.append(Case(f"two layers through L1 s{seed}",
                      compile_layers(cfg, a, [(w0, (int(rng.integers(50, 500)), 12)), (w1, (300, 10))])))
    t, keys, d = max(2, m // 2), max(3, m), max(2, min(k, 3 * cfg.engine.lanes) // 2)
    q, kk = (rng.integers(-24, 24, shape).astype(np.int8) for shape in ((t, d), (keys, d)))
    v = rng.integers(-128, 128, (keys, d)).astype(np.int8)
    for causal in (False, True):
        topk = int(rng.integers(1, cfg.attention.topk_max + 1))
        cases.append(Case(f"topk_attention k={topk} causal={causal} s{seed}",
                          compile_attention(cfg, q, kk, v, topk=topk, causal=causal)))
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

    dag: bool = False

    @property
    def cycles_equal(self) -> bool:
        """Equal for engine programs; within DAG_CYCLE_TOLERANCE of the RTL for DAG programs."""
        timed = [r.cycles for name, r in self.results.items() if name != "golden"]
        if self.dag and len(timed) == 2:
            return abs(timed[0] - timed[1]) <= DAG_CYCLE_TOLERANCE * max(timed)
        return len(set(timed)) <= 1

    @property
    def ok(self) -> bool:
        return self.outputs_equal and self.cycles_equal


def cross_check(cfg: HwConfig, cases: list[Case], backends=BACKENDS, **kw) -> list[Row]:
    programs = [c.program for c in cases]
    per_backend = {}
    for b in sorted(backends, key=lambda b: b == "sim"):    # the sim last: DAG programs start where the RTL's did
        starts = [r.stats.get("start_cycle") for r in per_backend["rtl"]] if b == "sim" and "rtl" in per_backend \
            else None
        per_backend[b] = run_programs(b, cfg, programs, start_cycles=starts, **kw)
    return [Row(c.label, {b: per_backend[b][i] for b in backends}, dag=bool(c.program.tasks))
            for i, c in enumerate(cases)]
