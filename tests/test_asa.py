# amaranth: UnusedElaboratable=no
"""The ASA scheduler (hwgen/rtl/scheduler/asa.py) against its cycle model (sim/model/chip.py), with fake engines.

Programs are random DAGs (chains, fan-out / fan-in, diamonds, random layers; up to ``scheduler.tasks``
tasks, random durations) with THRESHOLD and TOPK gates whose values lie in HBM and predicated tasks behind
them, written with ``hwgen.compiler.dag.write_program_region``. The model runs them with ``FakeEngine``; the RTL
runs them under cocotb + Verilator (``sim/rtl/tb/asa_tb.py``: the same fake engines in Python, a scoreboard of the
order rules, a watchdog). At 0 % stalls every task's issue cycle, engine, completion and release (pop) cycle,
the counters and the predicate bits equal the model's, for each policy; under 30 % random AXI stalls the order
rules, the predicates and the skipped tasks still hold. The config is ``tiny`` without its L3 (the scheduler
alone on one HBM port, as the responder serves it).
"""
from __future__ import annotations

import pickle
import random
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.compiler.dag import write_program_region
from hwgen.rtl.memory.axi import VivadoTop
from hwgen.rtl.scheduler.asa import Asa, AsaError, mlog_hw
from hwgen.spec import config, isa
from hwgen.spec.config import POLICIES, policy_code
from hwgen.spec.layout import Layout
from hwgen.spec.program import Program
from hwgen.spec.task_table import GateOp, gate_tiles
from sim.model.chip import ChipModel, gate_bits, mlog
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "asa"
TB_MODULE = "sim.rtl.tb.asa_tb"
CFG = config.from_dict({"base": "tiny", "l3": {"enabled": False}})
SHAPES = ("chain", "fan", "diamond", "layers", "random", "gated")
PROGRAM_BASE = 0x10000


class FakeEngine:
    """An engine of fixed task times for ``ChipModel.run(..., engine=FakeEngine)``: it takes an offered
    descriptor in a cycle it is idle; a descriptor taken in t keeps it busy (not idle) to t + ``m``."""

    def __init__(self, cfg, image, table, memory, arithmetic=True):
        self.busy_until = -1
        self.queue: list[dict] = []
        self.offer = 0
        self.last_take: int | None = None
        self.stats: dict[str, int] = {"fake_descriptors": 0}

    def start(self, fields, first_offer_cycle: int) -> None:
        self.queue, self.offer, self.last_take = list(fields), first_offer_cycle, None

    def _advance(self, c: int) -> None:
        while self.queue and max(self.offer, self.busy_until + 1) <= c:
            t = max(self.offer, self.busy_until + 1)
            f = self.queue.pop(0)
            self.busy_until = max(self.busy_until, t + f["m"])
            self.offer, self.last_take = t + 1, t
            self.stats["fake_descriptors"] += 1

    def step(self, c: int) -> None:
        self._advance(c)

    def finished(self, c: int) -> bool:
        self._advance(c)
        return not self.queue and self.last_take is not None and self.last_take < c and self.busy_until < c

    def next_wake(self, c: int) -> int:
        if self.queue:
            return max(self.offer, self.busy_until + 1)
        return max(self.last_take + 1, self.busy_until + 1)

    def drain(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------
# random programs

def _gate_lines(cfg, values: np.ndarray) -> bytes:
    """(rows, cols) ints as the STORE leaves them: per row ``blocks`` output lines of ``lanes`` acc lanes."""
    lanes, acc = cfg.engine.lanes, cfg.engine.acc_bits
    rows, cols = values.shape
    blocks = Layout.of(cfg).blocks(cols)
    out = bytearray()
    for r in range(rows):
        for b in range(blocks):
            word = 0
            for lane in range(lanes):
                c = b * lanes + lane
                v = int(values[r, c]) if c < cols else 0
                word |= (v & ((1 << acc) - 1)) << (lane * acc)
            out += word.to_bytes(cfg.out_line_bits // 8, "little")
    return bytes(out)


def random_program(cfg, seed: int, shape: str, n: int | None = None):
    """(Program, info): a random DAG of ``shape``; info holds each task's predecessors, descriptor count,
    the tasks that must be skipped and the final predicate bits."""
    rng = random.Random(f"{seed}-{shape}")
    n = n or rng.randint(24, min(64, cfg.scheduler.tasks))
    preds = [set() for _ in range(n)]
    if shape == "chain":
        for i in range(1, n):
            preds[i].add(i - 1)
            if rng.random() < 0.2 and i > 3:
                preds[i].add(rng.randrange(i - 1))
    elif shape == "fan":          # one root fans out, everything fans into the last, a second fan in the middle
        mid = n // 2
        for i in range(1, n - 1):
            preds[i].add(0 if i < mid else mid - 1)
        preds[n - 1] = set(range(1, n - 1))
    elif shape == "diamond":      # stacked diamonds: a -> {b1..bk} -> c
        i = 1
        top = 0
        while i < n:
            k = rng.randint(2, 5)
            mids = list(range(i, min(i + k, n)))
            for b in mids:
                preds[b].add(top)
            i += len(mids)
            if i < n:
                preds[i] = set(mids)
                top, i = i, i + 1
    elif shape in ("layers", "gated"):
        layers, i = [], 0
        while i < n:
            k = min(rng.randint(2, 6), n - i)
            layers.append(list(range(i, i + k)))
            i += k
        for prev, cur in pairwise(layers):
            for t in cur:
                preds[t] = set(rng.sample(prev, rng.randint(1, len(prev))))
    else:
        for i in range(1, n):
            preds[i] = set(rng.sample(range(i), min(i, rng.randint(0, 3))))

    # gates: a few tasks whose values set predicate bits, later tasks predicated on them
    P = cfg.scheduler.predicates
    gate_spec, pred_of, bits_used = {}, {}, 0
    n_gates = {"gated": 4, "random": 2, "layers": 2, "diamond": 1}.get(shape, 0)
    gates = sorted(rng.sample(range(n // 2), min(n_gates, n // 2)))
    for g in gates:
        op = rng.choice([GateOp.THRESHOLD, GateOp.TOPK])
        if op == GateOp.THRESHOLD:
            rows, cols = rng.randint(1, 3), rng.randint(1, 6)
            spec = dict(gate=op, gate_rows=rows, gate_cols=cols, gate_threshold=rng.randint(-40, 60) & 0xFFFFFFFF)
            nbits = cols
            values = np.array([[rng.randint(-100, 100) for _ in range(cols)] for _ in range(rows)])
        else:
            rows, cols = rng.randint(2, 6), rng.randint(2, 5)
            tile_rows = rng.randint(1, rows)
            spec = dict(gate=op, gate_rows=rows, gate_cols=cols, gate_k=rng.randint(1, min(cols, 3)),
                        gate_capacity=rng.randint(1, rows), gate_tile_rows=tile_rows)
            nbits = cols * gate_tiles(rows, tile_rows)
            values = np.array([[rng.randint(-3, 3) for _ in range(cols)] for _ in range(rows)])   # ties
        if bits_used + nbits > P:
            break
        spec["gate_base"] = bits_used
        bits_used += nbits
        gate_spec[g] = (spec, values)
        later = [t for t in range(g + 1, n) if t not in gates]    # a gate itself always runs
        for t in rng.sample(later, min(3, len(later))):
            if t not in pred_of:
                pred_of[t] = spec["gate_base"] + rng.randrange(nbits)
                preds[t].add(g)

    # the image: gate values from 0 (one 4 KiB block each), then the program region at PROGRAM_BASE
    image = np.zeros(PROGRAM_BASE, np.uint8)
    bits = {}
    for i, (_, (spec, values)) in enumerate(sorted(gate_spec.items())):
        blob = _gate_lines(cfg, values)
        spec["gate_addr"] = 4096 * i
        image[4096 * i:4096 * i + len(blob)] = np.frombuffer(blob, np.uint8)
        bits.update(gate_bits(cfg, spec, values))

    succs = [[] for _ in range(n)]
    for t in range(n):
        for p in sorted(preds[t]):
            succs[p].append(t)
    descs, entries, counts = [], [], []
    for t in range(n):
        count = rng.choice([1, 1, 2, 3])
        durations = [rng.randint(0, 3) for _ in range(count - 1)] + [rng.choice([0, 1, rng.randint(2, 90)])]
        first = len(descs)
        descs += [isa.pack(opcode=isa.Opcode.NOP, k=t, n=j, m=d) for j, d in enumerate(durations)]
        counts.append(count)
        entries.append(dict(first=first, count=count, deps=len(preds[t]), est=rng.randint(1, 120)))
    rank = [0] * n
    for t in reversed(range(n)):
        rank[t] = entries[t]["est"] + max((rank[s] for s in succs[t]), default=0)
    succ_flat = []
    for t, f in enumerate(entries):
        f.update(succ_first=len(succ_flat), succ_count=len(succs[t]), rank=rank[t])
        succ_flat += succs[t]
        if t in pred_of:
            f.update(pred_en=1, pred=pred_of[t])
        if t in gate_spec:
            f.update(gate_spec[t][0])
    image = write_program_region(cfg, image, PROGRAM_BASE, entries, succ_flat, descs, page_table_base=0x1234000,
                                 page_table_entries=77)
    tasks = tuple({**f, "succ": tuple(succs[t])} for t, f in enumerate(entries))
    program = Program(config_digest=cfg.digest(), descriptors=tuple(descs),
                      l1=np.zeros((cfg.l1_lines, cfg.line_bytes), np.uint8), outputs={}, l1_lines_used=0,
                      kernel="dag", params={"predicate_bits": P}, hbm=image, tasks=tasks, program_base=PROGRAM_BASE)
    skip = {t for t, b in pred_of.items() if not bits.get(b, False)}
    preds_word = sum(1 << b for b, v in bits.items() if v)
    longest = max(sum(isa.unpack(d)["m"] + 1 for d in descs[f["first"]:f["first"] + f["count"]]) for f in entries)
    info = dict(preds=[sorted(p) for p in preds], counts=counts, skip=skip, predicates=preds_word,
                longest=longest, total=sum(isa.unpack(d)["m"] + 2 for d in descs), region=len(image) - PROGRAM_BASE)
    return program, info


def job(program, info, policy: str, stall: float, seed: int, label: str) -> dict:
    load_beats = info["region"] // CFG.beat_bytes
    watchdog = 4 * info["longest"] + 8 * load_beats + 1500     # a completion at least this often
    return dict(config=CFG, hbm=program.hbm.tobytes(), program_base=program.program_base,
                policy=policy_code(policy), stall=stall, seed=seed, preds=info["preds"], counts=info["counts"],
                skip=info["skip"], watchdog=watchdog, budget=2 * (watchdog + 8 * load_beats + 4 * info["total"]),
                label=label)


PROGRAMS = [random_program(CFG, seed, shape) for seed, shape in enumerate(SHAPES)]


# ---------------------------------------------------------------------------------------------------
# Python only

def test_mlog_hw_is_mlog():
    from amaranth import Module, Signal
    m = Module()
    x = Signal(32)
    out = mlog_hw(m, x, "t")
    values = [0, 1, 2, 3, 5, 255, 256, 257, 1000, 65535, 123456, (1 << 24) - 1, (1 << 32) - 1, 0x80000001]
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            got.append(ctx.get(out))
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [mlog(v) for v in values]


def test_model_rules_on_a_chain():
    """A chain of single-descriptor tasks: each issues walk_latency + release_latency + 1 cycles after its
    predecessor's completion (pushed, popped the cycle after, walked walk_latency later, ready release_latency
    after that)."""
    program, info = random_program(CFG, 7, "chain", n=6)
    res = ChipModel(CFG).run(program, outputs=False, policy="in_order", engine=FakeEngine)
    st = res.stats
    for t in range(1, 6):
        p = info["preds"][t][-1]
        assert st["task_pop"][p] >= st["task_done"][p] + 1
        if info["preds"][t] == [t - 1]:
            assert st["task_issue"][t] == st["task_pop"][t - 1] + Asa.walk_latency + Asa.release_latency \
                + Asa.pick_latency
    assert st["issued"] + st["skipped"] == 6
    assert res.cycles == st["task_pop"][5] + Asa.walk_latency + Asa.done_latency


@pytest.mark.parametrize("policy", POLICIES)
def test_model_order_rules(policy):
    for program, info in PROGRAMS:
        st = ChipModel(CFG).run(program, outputs=False, policy=policy, engine=FakeEngine).stats
        for t, ps in enumerate(info["preds"]):
            for p in ps:
                if st["task_issue"][t] is not None:
                    assert st["task_pop"][p] < st["task_issue"][t]
        assert {t for t in range(len(info["preds"])) if st["task_issue"][t] is None} == info["skip"]
        assert sum(1 << i for i, b in enumerate(st["predicates"]) if b) == info["predicates"]


# ---------------------------------------------------------------------------------------------------
# RTL

@pytest.fixture(scope="module")
def folder():
    try:
        runner.toolchain_env()
    except runner.ToolchainError as err:
        pytest.skip(str(err))
    return runner.build_component(VivadoTop(Asa(CFG), {"bus": "m_axi_hbm0"}), "asa_tiny", BUILD_ROOT)


def run_rtl(folder, jobs: list[dict]) -> list[dict]:
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT) as tmp:
        jobs_path, results_path = Path(tmp) / "jobs.pkl", Path(tmp) / "results.pkl"
        jobs_path.write_bytes(pickle.dumps(jobs))
        outcome = runner.run_cocotb(folder, "asa_tiny", TB_MODULE, {"ASA_TB_JOBS": str(jobs_path),
                                                                  "ASA_TB_RESULTS": str(results_path)})
        out = pickle.loads(results_path.read_bytes()) if results_path.is_file() else {"error": "no results"}
    failed = {name: text for name, text in outcome.items() if text is not None}
    assert not failed and not out.get("error"), f"{out.get('error')}\n{failed}"
    return out["results"]


@pytest.mark.parametrize("policy", POLICIES)
def test_rtl_equals_model(folder, policy):
    jobs = [job(p, info, policy, 0.0, i, f"{SHAPES[i]}/{policy}") for i, (p, info) in enumerate(PROGRAMS)]
    for (program, info), j, rtl in zip(PROGRAMS, jobs, run_rtl(folder, jobs), strict=True):
        st = ChipModel(CFG).run(program, outputs=False, policy=policy, engine=FakeEngine)
        model = st.stats
        n = len(info["preds"])
        label = j["label"]
        for t in range(n):
            want = (model["task_issue"][t], model["task_engine"][t], model["task_pop"][t])
            got = (rtl["issue"][t], rtl["engine"][t], rtl["pop"][t])
            assert got == want, f"{label}: task {t} (issue, engine, pop) RTL {got} != model {want}"
            if model["task_issue"][t] is not None:
                assert rtl["finish"][t] == model["task_done"][t], \
                    f"{label}: task {t} completes in {rtl['finish'][t]}, model {model['task_done'][t]}"
        for key in ("issued", "skipped", "stall_no_engine", "stall_not_ready"):
            assert rtl[key] == model[key], f"{label}: {key} RTL {rtl[key]} != model {model[key]}"
        assert rtl["cycles"] == st.cycles == rtl["done_at"], f"{label}: cycles RTL {rtl['cycles']} != {st.cycles}"
        assert rtl["predicates"] == info["predicates"]
        assert rtl["page_table"] == (0x1234000, 77)


@pytest.mark.parametrize("policy", POLICIES)
def test_rtl_order_under_stalls(folder, policy):
    """30 % random stalls on every AXI channel: the testbench's scoreboard holds the order rules; the
    predicates and the skipped tasks are the model's."""
    jobs = [job(p, info, policy, 0.3, 100 + i, f"{SHAPES[i]}/{policy}/stall") for i, (p, info) in enumerate(PROGRAMS)]
    for (_, info), rtl in zip(PROGRAMS, run_rtl(folder, jobs), strict=True):
        n = len(info["preds"])
        assert rtl["predicates"] == info["predicates"]
        assert rtl["skipped"] == len(info["skip"]) and rtl["issued"] == n - len(info["skip"])
        assert {t for t in range(n) if rtl["offer"][t] is None} == info["skip"]


def test_rtl_errors(folder):
    """A header with too many tasks stops the run with TOO_MANY_TASKS; a header beyond the image (SLVERR)
    with AXI_ERROR; the next run after them works."""
    program, info = random_program(CFG, 3, "chain", n=8)
    big = program.hbm.copy()
    big[PROGRAM_BASE:PROGRAM_BASE + 2] = np.frombuffer((CFG.scheduler.tasks + 1).to_bytes(2, "little"), np.uint8)
    ok = job(program, info, "static_list", 0.0, 0, "after errors")
    too_many = {**ok, "hbm": big.tobytes(), "expect_error": True, "label": "too many"}
    axi = {**ok, "program_base": (1 << 20) + 4096, "expect_error": True, "label": "axi error"}   # past the image
    results = run_rtl(folder, [too_many, axi, ok])
    assert results[0]["error"] == AsaError.TOO_MANY_TASKS.value and not results[0]["busy"]
    assert results[1]["error"] == AsaError.AXI_ERROR.value and not results[1]["busy"]
    assert results[2]["issued"] == 8
