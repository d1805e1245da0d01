"""Operands in HBM: golden == sim == RTL for tiled spmm/gemm, under random AXI stalls, with the AXI monitor on.

The RTL's HBM port is answered by the cocotb responder timed by the same HbmPorts model the simulator uses,
so at 0 % stalls every task is taken in the same cycle and the program ends in the same cycle. With stalls
the RTL is slower (the simulator does not model the random pauses) but must stay bit-exact, and the
monitor fails the run on any AXI rule broken.
"""
import numpy as np
import pytest
from conftest import variant

from golden import executor
from golden.workloads import prune_nm, random_operands
from hwgen.formats import OperandError
from hwgen.tiling import compile_matmul_hbm
from sim.engine import EngineModel
from sim.runner import run_rtl_batch

# tiny: an output line is one beat; odd: two beats per line (8-byte beats); wrap16: two lines per beat
HBM_VARIANTS = ["tiny", "odd", "wrap16"]


def _programs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for kernel, fmt, density in [("spmm", "dense", 0.3), ("spmm", "bitmask", 0.1), ("spmm", "csr", 0.05),
                                 ("spmm", "nm", 0.5), ("gemm", "dense", 1.0)]:
        m, k, n = int(rng.integers(24, 60)) * 2, int(rng.integers(20, 90)), int(rng.integers(3, 12))
        a, b = random_operands(m, k, n, density, seed=seed)
        if fmt == "nm":
            a = prune_nm(a, 2, 4)
        out.append((f"{kernel}/{fmt} {m}x{k}x{n}", compile_matmul_hbm(cfg, a, b, kernel, fmt, tile_rows=16)))
    return out


@pytest.mark.rtl
@pytest.mark.parametrize("name", HBM_VARIANTS)
@pytest.mark.parametrize("stall", [0.0, 0.3, 0.9])
def test_hbm_programs_agree(name, stall, build_root):
    cfg = variant(name)
    cases = _programs(cfg)
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=7)
    model = EngineModel(cfg)
    for (label, program), r in zip(cases, rtl):
        assert program.params["tiles"] >= 3, label
        golden = executor.run(cfg.numeric(), program).outputs["C"]
        sim = model.run(program)
        np.testing.assert_array_equal(sim.outputs["C"], golden, err_msg=f"{label}: sim")
        np.testing.assert_array_equal(r.outputs["C"], golden, err_msg=f"{label}: rtl, stall {stall}")
        if stall == 0:
            assert (r.stats["task_issue"], r.cycles) == (sim.stats["task_issue"], sim.cycles), label
            assert (r.stats["elems"], r.stats["gated_macs"]) == (sim.stats["elems"], sim.stats["gated_macs"]), label
        else:
            assert r.cycles > sim.cycles, f"{label}: stalls of {stall} should cost cycles"


def test_compute_overlaps_dma():
    """Double buffering: the program takes less than its tasks back to back."""
    cfg = variant("tiny")
    a, b = random_operands(96, 64, 8, 0.5, seed=1)
    program = compile_matmul_hbm(cfg, a, b, tile_rows=16)
    sim = EngineModel(cfg).run(program)
    compute = sum(sim.stats["task_cycles"]) + len(sim.stats["task_cycles"])
    assert compute < sim.cycles < compute * 2
    assert sim.stats["load_beats"] == sum(f["lines"] for f in program.fields if f["opcode"] == 4)


def test_tile_rows_follow_l1_and_output_buffer():
    cfg = variant("tiny")
    a, b = random_operands(300, 100, 8, 0.5, seed=2)
    program = compile_matmul_hbm(cfg, a, b)
    # tiny: 256 L1 lines, 256 output lines; C takes 2 lines per row, so a half holds 64 rows
    assert program.params["tile_rows"] <= 64
    np.testing.assert_array_equal(EngineModel(cfg).run(program).outputs["C"],
                                  executor.run(cfg.numeric(), program).outputs["C"])


def test_l1_too_small_for_one_tile():
    cfg = variant("tiny")
    a, b = random_operands(8, 1000, 64, 0.5, seed=3)   # B alone needs 4000 of 256 lines
    with pytest.raises(OperandError, match=r"^l1.bytes: 4096 is too small for one tile: B \(1000x64\) takes 4000 of "
                                           r"256 L1 lines"):
        compile_matmul_hbm(cfg, a, b)


def test_more_than_one_port_is_refused_with_a_clear_error():
    from hwgen import build, config
    cfg = config.from_dict({"base": "tiny", "memory": {"ports": 2}})
    with pytest.raises(ValueError, match=r"^memory.ports: 2 is not supported by the generator yet \(allowed: 1"):
        build.top_component(cfg)
    a, b = random_operands(8, 8, 4, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"^memory.ports: 2 is not supported yet \(allowed: 1"):
        EngineModel(cfg).run(compile_matmul_hbm(cfg, a, b))


def test_bad_nm_ratio_is_refused_like_in_l1():
    a, b = random_operands(8, 16, 4, 0.5, seed=0)
    with pytest.raises(OperandError, match=r"^nm: 3:4 is not allowed"):
        compile_matmul_hbm(variant("tiny"), a, b, "spmm", "nm", nm=(3, 4))
