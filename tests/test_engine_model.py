"""The cycle model in lockstep with the engine RTL in Amaranth's simulator: same C, cycles, elements.

Independent of Verilator and cocotb, so a timing change shows up here first; random shapes, densities,
formats, thresholds and engine geometries (R, L, W, banks, overflow).
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.workloads import prune_nm, random_operands
from hwgen import config
from hwgen.engine import DsaEngine
from hwgen.program import compile_matmul, decode_output, output_lines
from sim.engine import EngineModel

GEOMETRIES = [
    {"base": "tiny"},
    {"base": "tiny", "name": "r3", "engine": {"rows": 3, "scan_bytes": 8}, "l1": {"banks": 1}},
    {"base": "tiny", "name": "r1", "engine": {"rows": 1, "lanes": 8, "overflow": "saturate", "acc_bits": 16},
     "l1": {"banks": 4}},
]


def run_pysim(cfg, program):
    dut = DsaEngine(cfg)
    spec = program.outputs["C"]
    out = {}

    async def tb(ctx):
        ctx.set(dut.fill.en, 1)
        for line in range(program.l1_lines_used):
            ctx.set(dut.fill.addr, line)
            ctx.set(dut.fill.data, int.from_bytes(program.l1[line].tobytes(), "little"))
            await ctx.tick()
        ctx.set(dut.fill.en, 0)
        ctx.set(dut.desc.as_value(), program.descriptors[0] & ((1 << len(dut.desc.as_value())) - 1))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().until(dut.done)
        out["cycles"], out["elems"], out["gated"] = ctx.get(dut.cycles), ctx.get(dut.elems), ctx.get(dut.gated)
        words = []
        for line in output_lines(cfg, spec):
            ctx.set(dut.out.addr, line)
            await ctx.tick()
            words.append(ctx.get(dut.out.data))
        out["C"] = decode_output(cfg, spec, words)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("geometry", range(len(GEOMETRIES)))
def test_model_matches_rtl_in_lockstep(geometry):
    cfg = config.from_dict(GEOMETRIES[geometry])
    model = EngineModel(cfg)
    rng = np.random.default_rng(geometry)
    for trial, (kernel, fmt) in enumerate([("spmm", "dense"), ("spmm", "bitmask"), ("gemm", "dense"),
                                           ("spmm", "nm"), ("spmm", "csr"), ("spmm", "nm"), ("spmm", "csr")]):
        m, k, n = (int(x) for x in (rng.integers(1, 7), rng.integers(1, 40), rng.integers(1, 11)))
        density = float(rng.choice([0.0, 0.1, 0.5, 1.0]))
        a, b = random_operands(m, k, n, density, seed=trial)
        b[rng.random(b.shape) < 0.3] = 0   # zeros in B gate lanes
        nm = [(2, 4), (1, 4), (4, 8), (1, 2), (8, 16)][trial % 5]
        if fmt == "nm":
            a = prune_nm(a, *nm)
        program = compile_matmul(cfg, a, b, kernel, fmt, nm=nm,
                                 threshold=None if kernel == "gemm" else 40 * (trial % 2))
        rtl, sim = run_pysim(cfg, program), model.run(program)
        label = f"{cfg.name} {kernel} {fmt} {m}x{k}x{n} d={density} nm={nm}"
        np.testing.assert_array_equal(rtl["C"], sim.outputs["C"], err_msg=label)
        assert (rtl["cycles"], rtl["elems"], rtl["gated"]) == \
            (sim.cycles, sim.stats["elems"], sim.stats["gated_macs"]), label
