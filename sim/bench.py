"""`make bench`: what the engine's sparsity support buys, and how fast the simulator is; one run, ratios.

Every table runs the same programs on the RTL (Verilator) and the cycle model and prints both cycle counts.
1. a 64x256x64 spmm tile at densities 1 .. 0.01: speedup over density 1 as a fraction of the ideal 1/d;
2. the same per storage format (dense-stored, bitmask, CSR) on 32x256x64, against its dense tile;
3. N:M structured sparsity (2:4, 1:4, 4:8) against dense gemm for M in {16, 64, 128, 1024} rows
   (shapes larger than L1 run as row tiles of 128, cycles added);
4. power-law CSR rows (a GNN aggregation): utilisation and unit balance, natural vs longest-first order;
6. top-k sparse attention (QKᵀ, top-k + integer softmax, P·V) vs dense attention, causal or not;
7. wall time of the cycle model vs the Verilator run of the same workloads;
8. HBM-bound spmm (operands in HBM, ``sim/configs/hbm_bound.yaml``): bitmask speedup over dense gemm as a
   fraction of the byte-ratio limit 1/(1/8 + d), with the achieved HBM bandwidth;
9. HBM bandwidth one LOAD unit achieves streaming, against the port's and the HBM's peak;
10. the L3: average memory access time with and without it, and its hit rate, on named DMA traces;
11-13. the ASA scheduler on DAG programs (``sim/bench_scheduler.py``);
14-16. FPGA resources and FMAX per preset, sparse vs dense in time on the ULX3S (``sim/bench_fpga.py``);
17-19. design-space sweeps: points per hour, the model against Verilator on a MiniLM layer, ``--verify-top``
   (``sim/bench_sweep.py``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from golden.generators.operands import power_law_rows, prune_nm, random_operands
from hwgen.compiler.single_kernel import compile_attention, compile_matmul
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.spec import config
from sim.backends import default_build_root
from sim.model.engine import EngineModel
from sim.model.memory.axi_port import HbmPorts
from sim.model.memory.dma import DmaUnits
from sim.model.memory.hbm import HbmTiming
from sim.model.memory.l3 import amat_bench
from sim.rtl.runner import build, run_rtl_batch

DENSITIES = (1.0, 0.5, 0.25, 0.1, 0.05, 0.01)
SHAPE = (64, 256, 64)
FORMAT_SHAPE = (32, 256, 64)   # CSR at d=1 (values + uint16 columns) must fit L1 with B
GOAL_DENSITY, GOAL_FRACTION = 0.1, 0.8   # spine issue: speedup at 90 % sparsity >= 0.8 * (1/d)
NM_ROWS, NM_TILE = (16, 64, 128, 1024), 128
NM_GOAL = 1.9
ATTENTION = (64, 256, 64, 16)   # queries, keys, head dimension, top-k
HBM_BOUND = Path(__file__).parent / "configs" / "hbm_bound.yaml"
HBM_SHAPE = (4096, 4096, 16)    # decode-style layer: sparse weights A (M x K) times K x 16 activations
HBM_DENSITIES = (0.2, 0.1, 0.05, 0.02, 0.01)
HBM_RTL_SHAPE, HBM_RTL_TILE = (512, 4096, 16), 128   # the RTL check: the first rows of the same layer
HBM_GOAL = 0.8                  # memory issue: speedup >= 0.8 x 1/(1/8 + d) when HBM-bound
STREAM_BYTES = 4 << 20


class Bench:
    def __init__(self, preset: str):
        self.cfg = config.load(preset)
        self.model = EngineModel(self.cfg)
        self.console = Console(width=120)
        self.rtl_wall = self.rtl_start_to_done = 0.0
        self.sim_wall = 0.0
        self.cycles = 0
        self.record: dict = {"config": self.cfg.build_name}
        build(self.cfg, default_build_root())      # cached per digest; not part of any timing
        self.model.run(compile_matmul(self.cfg, *random_operands(4, 8, 4, 1.0, 0)))   # warm-up (torch import)

    def measure(self, programs):
        """(rtl cycles, sim cycles, sim Result) per program; the RTL runs them all in one process."""
        t = time.perf_counter()
        rtl = run_rtl_batch(self.cfg, programs, build_root=default_build_root())
        self.rtl_wall += time.perf_counter() - t
        self.rtl_start_to_done += sum(r.stats["wall_s"] for r in rtl)
        out = []
        for p, r in zip(programs, rtl, strict=True):
            t = time.perf_counter()
            s = self.model.run(p)
            self.sim_wall += time.perf_counter() - t
            self.cycles += r.cycles
            out.append((r.cycles, s.cycles, s))
        return out

    def table(self, title, *columns):
        table = Table(title=title)
        for col in columns:
            table.add_column(col, justify="right")
        return table

    def util(self, program, cycles):
        return program.work()["useful_macs"] / (cycles * self.cfg.macs_per_cycle)

    # ---- 1 + 2: density sweeps ----
    def densities(self) -> bool:
        m, k, n = SHAPE
        programs = [compile_matmul(self.cfg, *random_operands(m, k, n, d, seed=0), "spmm") for d in DENSITIES]
        res = self.measure(programs)
        base = res[0][0]
        exact = all(r == s for r, s, _ in res)
        t = self.table(f"1. spmm {m}x{k}x{n}, dense-stored A, on {self.cfg.build_name} "
                       f"({self.cfg.engine.rows} row units x {self.cfg.engine.lanes} lanes)",
                       "density", "RTL cycles", "sim cycles", "speedup vs d=1", "fraction of 1/d", "utilization")
        goal_ok, rows = False, []
        for d, p, (r, s, _) in zip(DENSITIES, programs, res, strict=True):
            t.add_row(f"{d:g}", str(r), str(s), f"{base / r:.2f}x", f"{base / r * d:.3f}", f"{self.util(p, r):.3f}")
            rows.append({"density": d, "rtl_cycles": r, "sim_cycles": s, "speedup": base / r})
            goal_ok |= d == GOAL_DENSITY and base / r * d >= GOAL_FRACTION
        self.console.print(t)
        self.console.print(f"goal at d={GOAL_DENSITY}: speedup >= {GOAL_FRACTION} x 1/d -> "
                           f"{'met' if goal_ok else 'NOT met'}")
        self.record["densities"] = rows
        return exact and goal_ok

    def formats(self) -> bool:
        m, k, n = FORMAT_SHAPE
        formats = ("dense", "bitmask", "csr")
        programs = [compile_matmul(self.cfg, *random_operands(m, k, n, d, seed=0), "spmm", fmt)
                    for fmt in formats for d in DENSITIES]
        res = self.measure(programs)
        base = res[0][0]
        t = self.table(f"2. {m}x{k}x{n} per storage format: speedup over dense-stored d=1 ({base} cycles) as a "
                       "fraction of 1/d (RTL cycles; sim equal)", "density", *formats)
        for i, d in enumerate(DENSITIES):
            t.add_row(f"{d:g}", *(f"{base / res[f * len(DENSITIES) + i][0] * d:.3f}" for f in range(len(formats))))
        self.console.print(t)
        self.record["formats"] = {fmt: [res[f * len(DENSITIES) + i][0] for i in range(len(DENSITIES))]
                                  for f, fmt in enumerate(formats)}
        return all(r == s for r, s, _ in res)

    # ---- 3: N:M across shapes ----
    def structured(self) -> bool:
        k, n = SHAPE[1], SHAPE[2]
        ratios = ((2, 4), (1, 4), (4, 8))
        t = self.table(f"3. N:M vs dense gemm, K={k} N={n} (rows in tiles of {NM_TILE}; RTL cycles, sim equal)",
                       "M rows", "dense gemm", *(f"{a}:{b}" for a, b in ratios), "2:4 speedup")
        ok, rows = True, []
        for m in NM_ROWS:
            tiles = [min(NM_TILE, m - r0) for r0 in range(0, m, NM_TILE)]
            cycles = {}
            for name, ratio in [("gemm", None), *[(f"{a}:{b}", (a, b)) for a, b in ratios]]:
                programs = []
                for i, rows_in_tile in enumerate(tiles):
                    a, b = random_operands(rows_in_tile, k, n, 1.0, seed=i)
                    programs.append(compile_matmul(self.cfg, a, b, "gemm") if ratio is None else
                                    compile_matmul(self.cfg, prune_nm(a, *ratio), b, "spmm", "nm", nm=ratio))
                res = self.measure(programs)
                ok &= all(r == s for r, s, _ in res)
                cycles[name] = sum(r for r, _, _ in res)
            speedup = cycles["gemm"] / cycles["2:4"]
            ok &= speedup >= NM_GOAL
            t.add_row(str(m), str(cycles["gemm"]), *(str(cycles[f"{a}:{b}"]) for a, b in ratios), f"{speedup:.2f}x")
            rows.append({"m": m, **cycles, "speedup_2_4": speedup})
        self.console.print(t)
        self.console.print(f"goal: 2:4 >= {NM_GOAL}x over dense on every shape -> {'met' if ok else 'NOT met'}")
        self.record["nm"] = rows
        return ok

    # ---- 4: power-law CSR ----
    def power_law(self) -> bool:
        nodes, n, density = 256, SHAPE[2], 0.03
        a, b = power_law_rows(nodes, nodes, n, density, seed=0)
        lengths = (a != 0).sum(axis=1)
        t = self.table(f"4. gnn_aggregate, power-law adjacency {nodes} nodes (row nnz mean {lengths.mean():.1f}, "
                       f"max {lengths.max()}), {n} features, CSR", "order", "threshold", "RTL cycles",
                       "sim cycles", "utilization", "unit balance")
        cases = [(order, thr) for thr in (0, 32) for order in ("natural", "longest_first")]
        programs = [compile_matmul(self.cfg, a, b, "gnn_aggregate", "csr", threshold=thr, row_order=order)
                    for order, thr in cases]
        res = self.measure(programs)
        rows = []
        for (order, thr), p, (r, s, sim) in zip(cases, programs, res, strict=True):
            balance = sim.stats["unit_busy_cycles"] / (r * self.cfg.engine.rows)
            t.add_row(order, str(thr), str(r), str(s), f"{self.util(p, r):.3f}", f"{balance:.3f}")
            rows.append({"order": order, "threshold": thr, "rtl_cycles": r, "utilization": self.util(p, r),
                         "balance": balance})
        self.console.print(t)
        self.console.print("unit balance = busy row-unit cycles / (R x cycles); utilization = useful MACs / "
                           "(R x L x cycles), which also counts each job's fixed front-end cycles")
        self.record["power_law"] = rows
        return all(r == s for r, s, _ in res)

    # ---- 5: top-k attention ----
    def attention(self) -> bool:
        t, keys, d, topk = ATTENTION
        rng = np.random.default_rng(0)
        q, k_mat = (rng.integers(-24, 24, shape).astype(np.int8) for shape in ((t, d), (keys, d)))
        v = rng.integers(-128, 128, (keys, d)).astype(np.int8)
        p_dense = rng.integers(1, 128, (t, keys)).astype(np.int8)   # a dense P: every key weighted
        programs = [compile_matmul(self.cfg, q, np.ascontiguousarray(k_mat.T), "gemm"),
                    compile_matmul(self.cfg, p_dense, v, "gemm"),
                    compile_attention(self.cfg, q, k_mat, v, topk, causal=False),
                    compile_attention(self.cfg, q, k_mat, v, topk, causal=True)]
        res = self.measure(programs)
        dense = res[0][0] + res[1][0]
        t_ = self.table(f"6. attention, {t} queries x {keys} keys, d = {d}: top-{topk} (S = QKᵀ, top-k + integer "
                        "softmax, P·V) vs dense (QKᵀ + P·V as gemm)", "program", "QKᵀ", "top-k + softmax", "P·V",
                        "total (RTL)", "total (sim)", "vs dense (-/+ softmax)")
        softmax = t * keys   # a dense softmax at the top-k unit's rate, one score per cycle (modelled, no RTL)
        t_.add_row("dense", str(res[0][0]), "-", str(res[1][0]), str(dense), str(res[0][1] + res[1][1]),
                   "1.00x / 1.00x")
        t_.add_row("dense + softmax (1 score/cycle, modelled)", str(res[0][0]), str(softmax), str(res[1][0]),
                   "-", str(dense + softmax), "-")
        ok = all(r == s for r, s, _ in res)
        rows = {"dense": dense, "dense_with_softmax": dense + softmax}
        for label, (r, s, sim) in (("top-k", res[2]), ("top-k causal", res[3])):
            tasks = sim.stats["task_cycles"]
            t_.add_row(label, *(str(c) for c in tasks), str(r), str(s),
                       f"{dense / r:.2f}x / {(dense + softmax) / r:.2f}x")
            rows[label] = {"tasks": tasks, "total": r}
        self.console.print(t_)
        self.console.print("vs dense: without / with the dense softmax. The top-k unit takes one score per cycle, "
                           "so QKᵀ and the scan of the scores dominate; P·V itself shrinks ~28x.")
        self.record["attention"] = rows
        return ok

    # ---- 6: simulator speed ----
    def speed(self) -> None:
        programs = [compile_matmul(self.cfg, *random_operands(*SHAPE, d, seed=0), "spmm") for d in DENSITIES]
        t0 = time.perf_counter()
        for p in programs:
            self.model.run(p, outputs=False)
        cycles_only = time.perf_counter() - t0
        t = self.table("7. simulator vs RTL wall time, every workload above", "", "wall s (total)",
                       "simulated cycles / s", "faster than RTL run / start..done")
        per_cycle_only = cycles_only / sum(self.model.run(p, outputs=False).cycles for p in programs)
        for label, wall in (("RTL run (cocotb process, L1 fill, run, readout)", self.rtl_wall),
                            ("RTL start..done only (Verilator, Python asleep)", self.rtl_start_to_done),
                            ("sim, outputs + cycles", self.sim_wall),
                            ("sim, cycles only (sweeps), same cycles", per_cycle_only * self.cycles)):
            t.add_row(label, f"{wall:.4f}", f"{self.cycles / wall:,.0f}",
                      f"{self.rtl_wall / wall:,.0f}x / {self.rtl_start_to_done / wall:,.1f}x")
        self.console.print(t)
        self.record["wall"] = {"rtl_run_s": self.rtl_wall, "rtl_start_to_done_s": self.rtl_start_to_done,
                               "sim_s": self.sim_wall, "sim_cycles_only_s": per_cycle_only * self.cycles,
                               "cycles": self.cycles}


def peak_bytes_per_cycle(cfg) -> tuple[float, float]:
    """(read peak of the AXI ports: one beat per cycle per port, peak of the HBM pins), bytes per cycle."""
    return cfg.memory.ports * cfg.beat_bytes, HbmTiming.of(cfg).peak_bytes_per_cycle


class MemoryBench:
    """The memory hierarchy's figures (tables 8 ..); sim cycles, with RTL cross-checks where they are cheap."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.console = bench.console
        self.record: dict = {}
        bench.record["memory"] = self.record

    def hbm_bound(self) -> bool:
        cfg = config.load(HBM_BOUND)
        m, k, n = HBM_SHAPE
        model = EngineModel(cfg)
        port_peak, hbm_peak = peak_bytes_per_cycle(cfg)
        peak = min(port_peak, hbm_peak)
        cases = [("gemm", "dense", 1.0)] + [("spmm", "bitmask", d) for d in HBM_DENSITIES]
        t = self.bench.table(
            f"8. HBM-bound spmm {m}x{k}x{n}, A, B and C in HBM, on {cfg.build_name} ({cfg.engine.rows} row units, "
            f"HBM {hbm_peak:.1f} B/cycle): bitmask A vs dense gemm (sim cycles)", "A", "cycles", "speedup",
            "limit 1/(1/8+d)", "fraction", "HBM bytes", "B/cycle", "of peak")
        rows, ok = [], True
        base = None
        for kernel, fmt, d in cases:
            r = model.run(compile_matmul_hbm(cfg, *random_operands(m, k, n, d, seed=0), kernel, fmt), outputs=False)
            hbm = r.stats["hbm"]
            moved = hbm["bytes_read"] + hbm["bytes_written"]
            base = base or r.cycles
            speedup = base / r.cycles
            limit = 1.0 if kernel == "gemm" else 1 / (1 / 8 + d)
            fraction = speedup / limit
            if kernel == "spmm":
                ok &= fraction >= HBM_GOAL
            label = "dense (gemm)" if kernel == "gemm" else f"bitmask d={d:g}"
            t.add_row(label, str(r.cycles), f"{speedup:.2f}x", f"{limit:.2f}x", f"{fraction:.3f}", f"{moved:,}",
                      f"{hbm['bytes_per_cycle']:.2f}", f"{hbm['bytes_per_cycle'] / peak:.1%}")
            rows.append({"a": label, "density": d, "cycles": r.cycles, "speedup": speedup, "limit": limit,
                         "fraction": fraction, "hbm_bytes": moved, "bytes_per_cycle": hbm["bytes_per_cycle"]})
        self.console.print(t)
        # the same layer's first rows on the RTL (Verilator) and the model, row tiles of HBM_RTL_TILE
        m2, k2, n2 = HBM_RTL_SHAPE
        programs = [compile_matmul_hbm(cfg, *random_operands(m2, k2, n2, d, seed=0), kernel, fmt,
                                       tile_rows=HBM_RTL_TILE) for kernel, fmt, d in (cases[0], cases[3])]
        build(cfg, default_build_root())
        rtl = run_rtl_batch(cfg, programs, build_root=default_build_root())
        sim = [model.run(p, outputs=False).cycles for p in programs]
        exact = [r.cycles for r in rtl] == sim
        self.console.print(f"RTL check, {m2}x{k2}x{n2} in tiles of {HBM_RTL_TILE} rows, dense gemm and bitmask "
                           f"d={cases[3][2]:g}: RTL {[r.cycles for r in rtl]} cycles, sim {sim} -> "
                           f"{'equal' if exact else 'DIFFERENT'}")
        self.console.print(f"goal: fraction >= {HBM_GOAL} at every density -> {'met' if ok else 'NOT met'}. "
                           f"Peak = min(ports x beat = {port_peak} B/cycle, HBM pins = {hbm_peak:.1f} B/cycle); "
                           "the limit counts A only, so the fraction also pays for B, C and each tile's "
                           "un-overlapped first load and last store.")
        self.record["hbm_bound"] = {"config": cfg.build_name, "shape": HBM_SHAPE, "rows": rows,
                                    "rtl_check": {"rtl": [r.cycles for r in rtl], "sim": sim}}
        return ok and exact

    def bandwidth(self) -> None:
        t = self.bench.table(f"9. one LOAD unit streaming {STREAM_BYTES >> 20} MiB from HBM (sim; DMA model "
                             "cycle-exact with the RTL)", "config", "bursts in flight x beats", "cycles",
                             "B/cycle", "GB/s", "port peak", "HBM peak", "of the lower peak")
        rows = []
        for name in ("default", "tiny", str(HBM_BOUND)):
            cfg = config.load(name)
            ports = HbmPorts(cfg)
            dma = DmaUnits(cfg, ports)
            lines = STREAM_BYTES // cfg.beat_bytes
            at, t0 = 0, 0
            chunk = 1 << 15                       # the descriptor's `lines` field holds < 2**16
            while at < lines:
                dma.start_load(t0, at * cfg.beat_bytes, min(chunk, lines - at))
                t0 = dma.free_at("load")
                at += chunk
            s = ports.stats
            port_peak, hbm_peak = peak_bytes_per_cycle(cfg)
            bpc = STREAM_BYTES / t0
            t.add_row(cfg.name, f"{cfg.memory.outstanding} x {cfg.memory.burst_beats}", str(t0), f"{bpc:.2f}",
                      f"{bpc * cfg.clock.mhz / 1000:.1f}", f"{port_peak:g}", f"{hbm_peak:.1f}",
                      f"{bpc / min(port_peak, hbm_peak):.1%}")
            rows.append({"config": cfg.build_name, "cycles": t0, "bytes_per_cycle": bpc, "port_peak": port_peak,
                         "hbm_peak": hbm_peak, "hbm_efficiency": s["hbm"]["efficiency"]})
        self.console.print(t)
        self.console.print("One engine reads through one AXI port, one beat (one L1 line) per cycle at most; "
                           "`memory.outstanding` bursts of `memory.burst_beats` beats must cover the HBM latency "
                           "to reach it.")
        self.record["stream"] = rows

    def l3(self) -> None:
        cfg = self.bench.cfg
        one = config.changed(cfg, {"memory": {"outstanding": 1}})
        loaded, alone = amat_bench(cfg), amat_bench(one)
        t = self.bench.table(f"10. L3 ({cfg.l3.bytes >> 20} MiB, {cfg.l3.ways} ways, {cfg.l3.mshrs} MSHRs, hit "
                             f"{cfg.l3_hit_cycles} cycles) on {cfg.build_name}: AMAT per 1 KiB burst with and "
                             "without it, in cycles (model, cycle-exact with the L3 RTL)", "DMA trace", "bursts",
                             "hit rate", f"{cfg.memory.outstanding} in flight: L3", "no L3", "change",
                             "1 in flight: L3", "no L3", "change")
        for name, r in loaded.items():
            a = alone[name]
            t.add_row(name.replace("_", " "), str(r["requests"]), f"{r['hit_rate']:.2f}",
                      f"{r['amat_l3_cycles']:.1f}", f"{r['amat_hbm_cycles']:.1f}", f"{r['amat_change_pct']:+.1f} %",
                      f"{a['amat_l3_cycles']:.1f}", f"{a['amat_hbm_cycles']:.1f}", f"{a['amat_change_pct']:+.1f} %")
        self.console.print(t)
        self.console.print("AMAT: cycles from a burst's AR/AW to its last R beat / B, queueing included. With "
                           f"{cfg.memory.outstanding} bursts in flight the one-beat-per-cycle port is the bottleneck "
                           "with or without the L3; alone, a burst sees the latency the L3 saves.")
        self.record["l3"] = {"loaded": loaded, "one_in_flight": alone}


def main(preset: str = "default", out: Path = Path("results") / "bench.json") -> int:
    bench = Bench(preset)
    ok = bench.densities()
    ok &= bench.formats()
    ok &= bench.structured()
    ok &= bench.power_law()
    ok &= bench.attention()
    bench.speed()
    memory = MemoryBench(bench)
    ok &= memory.hbm_bound()
    memory.bandwidth()
    memory.l3()
    from sim.bench_scheduler import SchedulerBench
    scheduler = SchedulerBench(bench)
    ok &= scheduler.policies()
    scheduler.predicates()
    ok &= scheduler.rtl_check()
    from sim import bench_fpga
    ok &= bench_fpga.run(bench)
    from sim import bench_sweep
    ok &= bench_sweep.run(bench)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(bench.record, indent=2) + "\n")
    bench.console.print(f"sim cycles == RTL cycles everywhere and goals met: {'yes' if ok else 'NO'}; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
