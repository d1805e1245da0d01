"""The cycle model in lockstep with the engine RTL in Amaranth's simulator: same C, cycles, elements.

Independent of Verilator and cocotb, so a timing change shows up here first; random shapes, densities,
formats, thresholds and engine geometries (R, L, W, banks, overflow).
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from golden import executor as golden_executor
from golden.generators.operands import prune_nm, random_operands
from hwgen.compiler.single_kernel import compile_attention, compile_layers, compile_matmul
from hwgen.rtl.engine.engine import DsaEngine
from hwgen.rtl.engine.output_buffer import OutputBuffer
from hwgen.spec import config
from hwgen.spec.program import decode_output, output_lines
from sim.model.engine import EngineModel

GEOMETRIES = [
    {"base": "tiny"},
    {"base": "tiny", "name": "r3", "engine": {"rows": 3, "scan_bytes": 8}, "l1": {"banks": 1}},
    {"base": "tiny", "name": "r1", "engine": {"rows": 1, "lanes": 8, "overflow": "saturate", "acc_bits": 16},
     "l1": {"banks": 4}},
]


def run_pysim(cfg, program):
    """Fill L1, offer the program's tasks in order (recording the cycle each is taken), wait for idle,
    read every output from the output buffer."""
    dut = DsaEngine(cfg)
    out = {"task_issue": []}

    async def tb(ctx):
        ctx.set(dut.fill.en, 1)
        for line in range(program.l1_lines_used):
            ctx.set(dut.fill.addr, line)
            ctx.set(dut.fill.data, int.from_bytes(program.l1[line].tobytes(), "little"))
            await ctx.tick()
        ctx.set(dut.fill.en, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        cycle = 0
        for desc in program.descriptors:
            ctx.set(dut.task.payload.as_value(), desc)
            ctx.set(dut.task.valid, 1)
            while not ctx.get(dut.task.ready):
                await ctx.tick()
                cycle += 1
            out["task_issue"].append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.task.valid, 0)
        while not ctx.get(dut.idle):
            await ctx.tick()
        for counter in ("cycles", "elems", "gated"):
            out[counter] = ctx.get(getattr(dut, counter))
        for name, spec in program.outputs.items():
            words = []
            for line in output_lines(cfg, spec):
                ctx.set(dut.out.addr, line)
                await ctx.tick().repeat(OutputBuffer.READ_LATENCY)
                words.append(ctx.get(dut.out.data))
            out[name] = decode_output(cfg, spec, words)

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


@pytest.mark.parametrize("causal", [False, True])
def test_attention_program_in_lockstep(causal):
    """S = QKᵀ (causal: sampled blocks only) -> top-k + integer softmax -> P V, on the RTL and the model."""
    cfg = config.load("tiny")
    rng = np.random.default_rng(int(causal))
    t, s, d, dv = 5, 11, 7, 6
    q, k = (rng.integers(-24, 24, shape).astype(np.int8) for shape in ((t, d), (s, d)))
    v = rng.integers(-128, 128, (s, dv)).astype(np.int8)
    program = compile_attention(cfg, q, k, v, topk=3, causal=causal)
    rtl, sim = run_pysim(cfg, program), EngineModel(cfg).run(program)
    golden = golden_executor.run(cfg.numeric(), program)
    np.testing.assert_array_equal(rtl["O"], golden.outputs["O"])
    np.testing.assert_array_equal(sim.outputs["O"], golden.outputs["O"])
    assert (rtl["task_issue"], rtl["cycles"]) == (sim.stats["task_issue"], sim.cycles)


def test_requant_and_chained_layers_in_lockstep():
    """int8 outputs per tensor and per channel, and a two-layer chain through L1, on the RTL and the model."""
    cfg = config.load("tiny")
    rng = np.random.default_rng(5)
    a, b = random_operands(5, 20, 7, 0.5, seed=1)
    x = rng.integers(-128, 128, (6, 12)).astype(np.int8)
    w0, w1 = rng.integers(-128, 128, (12, 9)).astype(np.int8), rng.integers(-128, 128, (9, 5)).astype(np.int8)
    programs = [compile_matmul(cfg, a, b, requant=(300, 12)),
                compile_matmul(cfg, a, b, "spmm", "csr", row_order="natural",
                               requant=(rng.integers(1, 2000, 7), rng.integers(0, 16, 7))),
                compile_layers(cfg, x, [(w0, (200, 10)), (w1, (rng.integers(100, 900, 5), rng.integers(8, 12, 5)))])]
    for program in programs:
        rtl, sim = run_pysim(cfg, program), EngineModel(cfg).run(program)
        golden = golden_executor.run(cfg.numeric(), program)
        assert golden.outputs["C"].min() == -128 and golden.outputs["C"].max() == 127   # saturation exercised
        np.testing.assert_array_equal(rtl["C"], golden.outputs["C"])
        np.testing.assert_array_equal(sim.outputs["C"], golden.outputs["C"])
        assert (rtl["task_issue"], rtl["cycles"]) == (sim.stats["task_issue"], sim.cycles)
