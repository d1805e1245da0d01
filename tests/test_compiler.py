"""The DAG compiler: tasks, dependencies, ranks, the program region in HBM, and its errors."""
import numpy as np
import pytest

from golden.generators import dags as dag_workloads
from hwgen.compiler.dag import compile_workload
from hwgen.spec import config, isa
from hwgen.spec.task_table import HEADER, SUCC_BYTES, TASK, GateOp
from hwgen.spec.workload import Gate, Kernel, Workload, WorkloadError

TINY = config.load("tiny")


def _cfg(**scheduler):
    return config.from_dict({"base": "tiny", "scheduler": scheduler})


def test_program_region_holds_header_table_successors_and_descriptors():
    p = compile_workload(TINY, dag_workloads.random_dag(3, kernels=6, shape="diamonds"))
    img, base = p.hbm, p.program_base
    h = HEADER.unpack(int.from_bytes(img[base:base + HEADER.bytes].tobytes(), "little"))
    assert (h["tasks"], h["descriptors"]) == (len(p.tasks), len(p.descriptors))
    assert (h["page_table_base"], h["page_table_entries"]) == (p.page_table_base, p.page_table_entries)
    for i, t in enumerate(p.tasks):
        at = h["table_addr"] + i * TASK.bytes
        entry = TASK.unpack(int.from_bytes(img[at:at + TASK.bytes].tobytes(), "little"))
        assert entry == {k: t[k] for k in TASK.names}
        at = h["succ_addr"] + t["succ_first"] * SUCC_BYTES
        assert tuple(img[at:at + t["succ_count"] * SUCC_BYTES].view("<u2")) == t["succ"]
    for i, d in enumerate(p.descriptors):
        at = h["desc_addr"] + i * 64
        assert isa.from_bytes(img[at:at + 64].tobytes()) == d


def test_table_is_topological_and_ranks_are_longest_paths():
    p = compile_workload(TINY, dag_workloads.random_dag(5, kernels=10, shape="mixed"))
    preds = {i: [] for i in range(len(p.tasks))}
    for i, t in enumerate(p.tasks):
        for s in t["succ"]:
            assert s > i
            preds[s].append(i)
    for i, t in enumerate(p.tasks):
        assert t["deps"] == len(preds[i])
        assert t["rank"] == t["est"] + max((p.tasks[s]["rank"] for s in t["succ"]), default=0)


def test_tile_dependencies_follow_the_rows_read():
    """A consumer tile reading rows of a produced A waits only for the producer tiles that wrote them."""
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, (32, 16), dtype=np.int8)
    w1 = rng.integers(-5, 6, (16, 16), dtype=np.int8)
    w2 = rng.integers(-5, 6, (16, 16), dtype=np.int8)
    wl = Workload("tiles", {"x": x, "w1": w1, "w2": w2}, (
        Kernel("l1", "spmm", "x", "w1", "h", requant=(1, 4), tile_rows=8),
        Kernel("l2", "spmm", "h", "w2", "y", tile_rows=8)), ("y",))
    p = compile_workload(TINY, wl)
    assert [t["kernel"] for t in p.tasks] == ["l1"] * 4 + ["l2"] * 4
    assert [t["succ"] for t in p.tasks[:4]] == [(4,), (5,), (6,), (7,)]


def test_predicates_and_gates_are_placed():
    w = dag_workloads.moe(1)
    p = compile_workload(TINY, w)
    router = p.tasks[0]
    assert router["gate"] == GateOp.TOPK and router["gate_k"] == 2 and router["gate_rows"] == 32
    experts = [t for t in p.tasks if t["pred_en"]]
    assert len(experts) == len(p.tasks) - 1
    assert all(0 in [i for i, s in enumerate(p.tasks) if p.tasks.index(t) in s["succ"]] for t in experts)
    assert len({t["pred"] for t in experts}) == w.meta["predicate_bits"]


@pytest.mark.parametrize("field,value,what", [("tasks", 16, "tasks"), ("descriptors", 16, "descriptors"),
                                              ("successors", 16, "successors")])
def test_a_program_larger_than_the_tables_is_refused(field, value, what):
    with pytest.raises(WorkloadError, match=rf"program: \d+ {what}, more than scheduler.{what} = {value}"):
        compile_workload(_cfg(**{field: value}), dag_workloads.moe(0))


def test_too_many_predicate_bits_is_refused():
    with pytest.raises(WorkloadError, match="gates: 32 predicate bits needed, more than scheduler.predicates = 16"):
        compile_workload(_cfg(predicates=16), dag_workloads.moe(0))


def test_a_gate_that_needs_two_tasks_is_refused():
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 6, (64, 32), dtype=np.int8)
    wl = Workload("g", {"x": x, "w": rng.integers(-5, 6, (32, 32), dtype=np.int8)}, (
        Kernel("g", "gemm", "x", "w", "y", gate=Gate("threshold")),), ("y",))
    with pytest.raises(WorkloadError, match="kernels.g: a gate must be one task"):
        compile_workload(TINY, wl)


def test_b_too_big_for_l1_is_refused():
    rng = np.random.default_rng(2)
    wl = Workload("big", {"x": rng.integers(-5, 6, (8, 64), dtype=np.int8),
                          "w": rng.integers(-5, 6, (64, 64), dtype=np.int8)},
                  (Kernel("k", "spmm", "x", "w", "y"),), ("y",))
    with pytest.raises(WorkloadError, match=r"kernels.k: B \(64x64\) and one row of A do not fit one engine's L1"):
        compile_workload(TINY, wl)


def test_cycles_are_refused_before_compiling():
    rng = np.random.default_rng(3)
    w = rng.integers(-5, 6, (8, 8), dtype=np.int8)
    wl = Workload("cyc", {"w": w}, (Kernel("a", "spmm", "q", "w", "p", requant=(1, 0)),
                                    Kernel("b", "spmm", "p", "w", "q", requant=(1, 0))), ("p",))
    with pytest.raises(WorkloadError, match="cycle through a -> b -> a"):
        compile_workload(TINY, wl)
