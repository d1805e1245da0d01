"""The whole chip: DAG programs through golden, the chip model (sim/model/chip.py) and the chip's Verilog.

golden == sim == RTL outputs bit for bit on every workload of golden/generators/dags.py, with and without random
HBM stalls; the RTL's scoreboard (sim/rtl/tb/chip_tb.py) checks the scheduler's order rules every cycle; sim cycles
within 3 % of the RTL's."""
import numpy as np
import pytest

from golden.executor import run as golden_run
from golden.generators import dags as dw
from hwgen.compiler.dag import compile_workload
from hwgen.spec import config
from hwgen.spec.csr_map import BYTE_COUNTERS
from sim.model.chip import ChipModel
from sim.verify import DAG_CYCLE_TOLERANCE

TINY = config.load("tiny")
POLICIES = ("in_order", "static_list", "adaptive")


def _sgc(seed: int, threshold: int = 20):
    """SGC over a power-law graph: its hops read a CSR adjacency (a DAG kernel with an A format)."""
    from golden.generators.graphs import graph, normalized_adjacency, sgc
    adjacency = normalized_adjacency(graph("powerlaw_cluster", 48, seed=seed))
    return sgc(adjacency, feature_dim=16, classes=8, threshold=threshold, seed=seed)


def _workloads(seed: int):
    return [dw.multimodal(seed), dw.mha_gating(seed), dw.moe(seed), dw.moe(seed, experts=4, capacity_factor=0.5),
            *(dw.random_dag(seed, kernels=8, shape=s) for s in ("chains", "fan_in", "fan_out", "diamonds", "mixed")),
            _sgc(seed)]


def _golden_skips(program, golden):
    base = program.params["gate_base"]
    bits = {base[g] + i: bool(b) for g, arr in golden.stats["predicates"].items() for i, b in enumerate(arr)}
    return {i for i, t in enumerate(program.tasks) if t["pred_en"] and not bits[t["pred"]]}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("policy", POLICIES)
def test_chip_model_equals_golden_and_keeps_the_order(seed, policy):
    for w in _workloads(seed):
        p = compile_workload(TINY, w)
        g = golden_run(TINY.numeric(), p)
        r = ChipModel(TINY).run(p, policy=policy)
        for name in g.outputs:
            assert np.array_equal(r.outputs[name], g.outputs[name]), (w.name, policy, name)
        skips = _golden_skips(p, g)
        assert r.stats["skipped"] == len(skips) and r.stats["issued"] == len(p.tasks) - len(skips)
        issue, done = r.stats["task_issue"], r.stats["task_done"]
        for i, t in enumerate(p.tasks):
            assert (issue[i] is None) == (i in skips)
            for s in t["succ"]:              # a successor starts (or is skipped) after its predecessor is done
                assert (issue[s] if issue[s] is not None else done[s]) > done[i], (w.name, i, s)


def test_a_dag_that_nearly_fills_the_task_table():
    p = compile_workload(TINY, dw.random_dag(4, kernels=120, shape="mixed"))
    assert 100 < len(p.tasks) <= TINY.scheduler.tasks
    g = golden_run(TINY.numeric(), p)
    r = ChipModel(TINY).run(p)
    assert all(np.array_equal(r.outputs[k], g.outputs[k]) for k in g.outputs)
    assert r.stats["issued"] == len(p.tasks)


def test_policies_order_the_ready_tasks_as_documented():
    """in_order never overtakes; static_list and adaptive may, and then pick by rank / key."""
    p = compile_workload(TINY, dw.random_dag(2, kernels=10, shape="fan_out"))
    order = {}
    for policy in POLICIES:
        r = ChipModel(TINY).run(p, policy=policy)
        issued = [i for i in range(len(p.tasks)) if r.stats["task_issue"][i] is not None]
        order[policy] = sorted(issued, key=lambda i: r.stats["task_issue"][i])
    assert order["in_order"] == sorted(order["in_order"])
    assert order["static_list"] != order["in_order"]


def test_skipped_tasks_cost_no_engine_time():
    w = dw.mha_gating(0)
    p = compile_workload(TINY, w)
    r = ChipModel(TINY).run(p)
    assert r.stats["skipped"] == 5 * len(w.meta["heads_off"])
    assert all(e is None for i, e in enumerate(r.stats["task_engine"]) if r.stats["task_issue"][i] is None)


def test_single_engine_programs_are_refused_by_the_chip_model():
    from golden.generators.operands import random_operands
    from hwgen.compiler.tiling import compile_matmul_hbm
    a, b = random_operands(8, 16, 8, 0.5, 0)
    with pytest.raises(ValueError, match="program: no tasks"):
        ChipModel(TINY).run(compile_matmul_hbm(TINY, a, b))


# ---- RTL: the chip's Verilog under cocotb ----

@pytest.fixture(scope="module")
def rtl_programs():
    ws = [dw.multimodal(0), dw.mha_gating(0), dw.moe(0), dw.random_dag(0, kernels=6, shape="diamonds"), _sgc(0)]
    return [(w, compile_workload(TINY, w)) for w in ws]


@pytest.mark.parametrize(("policy", "stall"), [(p, 0.0) for p in POLICIES] + [("adaptive", 0.3)])
def test_chip_rtl_equals_golden_and_sim(rtl_programs, policy, stall):
    """Every policy on the real engines at 0 % stalls (the policy CSR set by the host), adaptive under stalls."""
    from sim.rtl.runner import run_chip_batch
    programs = [p for _, p in rtl_programs] if stall == 0.0 else [rtl_programs[1][1], rtl_programs[2][1]]
    results = run_chip_batch(TINY, programs, stall=stall, seed=7, policy=policy)
    compared = 0
    for p, rtl in zip(programs, results, strict=True):
        g = golden_run(TINY.numeric(), p)
        sim = ChipModel(TINY).run(p, policy=policy, start_cycle=rtl.stats["start_cycle"])
        assert rtl.stats["policy"] == sim.stats["policy"] == policy
        for name in g.outputs:
            assert np.array_equal(rtl.outputs[name], g.outputs[name]), name
        skips = _golden_skips(p, g)
        assert rtl.stats["skipped"] == len(skips) == sim.stats["skipped"]
        assert sorted(rtl.stats["skipped_tasks"]) == sorted(skips)
        assert rtl.stats["predicates"] == sim.stats["predicates"]
        assert rtl.stats["error"] == 0 and rtl.stats["dma_error"] == 0 and rtl.stats["page_fault"] == 0
        # the counters the host reads: the same elements whatever the schedule, and the same bytes above the L3 and
        # on the HBM ports where every task ran on the engine the simulator ran it on (the TLB walks and what the
        # L3 holds and evicts follow the schedule)
        same_schedule = stall == 0.0 and rtl.stats["task_engine"] == sim.stats["task_engine"]
        compared += same_schedule
        counted = ["lane_macs", "gated_macs", *(BYTE_COUNTERS[:4] if same_schedule else ())]
        assert {k: rtl.stats[k] for k in counted} == {k: sim.stats[k] for k in counted}
        if stall == 0.0:
            assert abs(sim.cycles - rtl.cycles) <= DAG_CYCLE_TOLERANCE * rtl.cycles, (sim.cycles, rtl.cycles)
        else:
            assert rtl.cycles > sim.cycles
    assert compared >= (len(programs) // 2 if stall == 0.0 else 0), "the byte counters were compared too rarely"


def _rates(stats, path=""):
    """Every rate in a (nested) stats dict: keys that end in ``_rate`` or are a ``utilization``."""
    for key, value in stats.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict):
            yield from _rates(value, where)
        elif str(key).endswith("rate") or key == "utilization":
            yield where, value


def test_every_rate_in_results_is_between_0_and_1():
    """Rates are derived from summed counters, never summed themselves (a 27-task DAG on default once reported
    a TLB hit rate of 2.77, the sum over four engines)."""
    from golden.generators.operands import random_operands
    from hwgen.compiler.tiling import compile_matmul_hbm
    from sim.model.engine import EngineModel
    default = config.load("default")
    runs = [ChipModel(default).run(compile_workload(default, dw.random_dag(s, kernels=8, shape="mixed")))
            for s in (0, 1)]
    runs.append(EngineModel(default).run(compile_matmul_hbm(default, *random_operands(256, 128, 96, 0.2, 0))))
    for result in runs:
        rates = dict(_rates(result.stats))
        assert "tlb_hit_rate" in rates, sorted(rates)
        bad = {k: v for k, v in rates.items() if not 0.0 <= v <= 1.0}
        assert not bad, bad
