"""The workload format (hwgen/spec/workload.py), its golden model (golden/graph.py) and generators
(golden/generators/dags.py), on hand-made cases where the answer is known from plain numpy."""
from pathlib import Path

import numpy as np
import pytest

from golden.generators import dags as dw
from golden.graph import gate_bits, run_workload
from hwgen.spec.workload import Gate, Kernel, Workload, WorkloadError, from_dict, load

ROOT = Path(__file__).resolve().parent.parent
NUM = {"acc_bits": 32, "overflow": "wrap"}


def i8(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int8)


def requant_np(x: np.ndarray, m: int, s: int) -> np.ndarray:
    """The requantizer by hand: round half up, then saturate."""
    x = x.astype(np.int64) * m + ((1 << s) >> 1)
    return np.clip(x >> s, -128, 127).astype(np.int8)


def eye(n: int) -> np.ndarray:
    return np.eye(n, dtype=np.int8)


# ---- golden semantics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold, on", [(9, True), (10, False)])
def test_threshold_gate_on_and_off(threshold, on):
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(6, 4)).astype(np.int8)
    w = rng.integers(-5, 6, size=(4, 3)).astype(np.int8)
    gv = i8([[1, 10, -3], [2, 4, 0]])   # column 1's max is 10: bit 1 set for threshold 9, clear for 10
    wl = Workload("t", {"gv_in": gv, "i3": eye(3), "x": x, "w": w}, (
        Kernel("g", "gemm", "gv_in", "i3", "gv", gate=Gate("threshold", threshold=threshold)),
        Kernel("y", "spmm", "x", "w", "out", when=("g", 1)),
        Kernel("z", "spmm", "x", "w", "out0", when=("g", 0)),
    ), ("out", "out0")).check()
    r = run_workload(NUM, wl)
    assert r.predicates["g"].tolist() == [threshold < 2, on, False]
    assert r.tensors["gv"].dtype == np.int64 and (r.tensors["gv"] == gv).all()
    want = x.astype(np.int64) @ w.astype(np.int64) if on else np.zeros((6, 3), np.int64)
    assert (r.outputs["out"] == want).all()
    assert r.skipped["y"] == ([] if on else [0])
    assert r.skipped["z"] == [0] and not r.outputs["out0"].any()


def test_topk_ties_capacity_and_tiles():
    vals = np.array([[5, 5, 1],     # tie: the lower column (0) wins
                     [1, 7, 7],     # tie: column 1
                     [9, 0, 0],     # column 0 is full (capacity 1): dropped, no bit
                     [0, 0, 3]], dtype=np.int64)
    g = Gate("topk", k=1, capacity=1, tile_rows=2)
    bits = gate_bits(g, vals)
    assert bits.shape == (6,)   # 3 columns x 2 tiles
    set_bits = {(c, t) for c in range(3) for t in range(2) if bits[g.bit(c, t, 4)]}
    assert set_bits == {(0, 0), (1, 0), (2, 1)}
    # no capacity: row 2 takes column 0 in tile 1; k=2: the two largest, ties to the lower column
    assert gate_bits(Gate("topk", k=1, tile_rows=2), vals)[Gate("topk", k=1, tile_rows=2).bit(0, 1, 4)]
    g2 = Gate("topk", k=2)   # one tile of all rows
    assert gate_bits(g2, i8([[4, 4, 4]]).astype(np.int64)).tolist() == [True, True, False]
    # k larger than the columns: every column
    assert gate_bits(Gate("topk", k=5), vals).all()


def test_topk_gated_tiles_are_zero():
    logits = i8([[3, 1], [3, 1], [1, 3], [1, 3], [3, 1], [3, 1]])   # tiles of 2 rows: e0 0,2 ; e1 1
    rng = np.random.default_rng(1)
    x = rng.integers(-100, 100, size=(6, 8)).astype(np.int8)
    w = rng.integers(-100, 100, size=(8, 4)).astype(np.int8)
    gate = Gate("topk", k=1, capacity=None, tile_rows=2)
    wl = Workload("moe", {"logits_in": logits, "i2": eye(2), "x": x, "w": w}, (
        Kernel("router", "gemm", "logits_in", "i2", "logits", gate=gate),
        Kernel("e0", "spmm", "x", "w", "y0", when=("router", 0), tile_rows=2, requant=(16384, 20)),
        Kernel("e1", "spmm", "x", "w", "y1", when=("router", 1), tile_rows=2, requant=(16384, 20)),
    ), ("y0", "y1")).check()
    r = run_workload(NUM, wl)
    assert r.skipped == {"e0": [1], "e1": [0, 2]}
    full = requant_np(x.astype(np.int64) @ w.astype(np.int64), 16384, 20)
    assert r.tensors["y0"].dtype == np.int8
    assert (r.tensors["y0"][[0, 1, 4, 5]] == full[[0, 1, 4, 5]]).all() and not r.tensors["y0"][2:4].any()
    assert (r.tensors["y1"][2:4] == full[2:4]).all() and not r.tensors["y1"][[0, 1, 4, 5]].any()
    # capacity 2: rows 4, 5 no longer fit expert 0, so its tile 2 is skipped too
    wl2 = Workload("moe2", wl.tensors, (Kernel("router", "gemm", "logits_in", "i2", "logits",
                                               gate=Gate("topk", k=1, capacity=2, tile_rows=2)),) + wl.kernels[1:],
                   wl.outputs).check()
    assert run_workload(NUM, wl2).skipped["e0"] == [1, 2]


def test_requant_chain_equals_numpy():
    rng = np.random.default_rng(2)
    x = np.where(rng.random((8, 16)) < 0.3, rng.integers(-128, 128, (8, 16)), 0).astype(np.int8)
    ws = [rng.integers(-128, 128, (16, 16)).astype(np.int8) for _ in range(3)]
    rq = [(20000, 19), (30000, 22), (12345, 21)]
    kernels = (Kernel("l0", "spmm", "x", "w0", "h0", requant=rq[0]),
               Kernel("l1", "spmm", "h0", "w1", "h1", requant=rq[1], threshold=20),
               Kernel("l2", "gemm", "h1", "w2", "y"))
    wl = Workload("chain", {"x": x, "w0": ws[0], "w1": ws[1], "w2": ws[2]}, kernels, ("y",)).check()
    r = run_workload(NUM, wl)
    h0 = requant_np(x.astype(np.int64) @ ws[0], *rq[0])
    h0t = np.where(np.abs(h0.astype(np.int64)) < 20, 0, h0)   # spmm threshold: |a| < 20 skipped
    h1 = requant_np(h0t.astype(np.int64) @ ws[1], *rq[1])
    y = h1.astype(np.int64) @ ws[2]
    assert (r.tensors["h0"] == h0).all() and (r.tensors["h1"] == h1).all() and (r.outputs["y"] == y).all()
    assert set(r.tensors) == {"h0", "h1", "y"} and set(r.outputs) == {"y"}
    assert 0 < np.count_nonzero(h1) and not (np.abs(h1.astype(int)) >= 127).all()
    # a 16-bit wrapping accumulator: every layer wraps like the engine's
    r16 = run_workload({"acc_bits": 16, "overflow": "wrap"}, wl)
    y16 = r16.tensors["h1"].astype(np.int64) @ ws[2]
    want = ((y16 + (1 << 15)) % (1 << 16)) - (1 << 15)
    assert not (want == y16).all()
    assert (r16.outputs["y"] == want).all()


# ---- generators ----------------------------------------------------------------------------------------------
def _same(a: Workload, b: Workload) -> bool:
    return (a.kernels == b.kernels and a.outputs == b.outputs and a.tensors.keys() == b.tensors.keys()
            and all((a.tensors[n] == b.tensors[n]).all() for n in a.tensors) and a.meta == b.meta)


def _fits_tiny(w: Workload) -> None:
    sh = w.shapes()
    for k in w.kernels:
        (kb, n), _ = sh[k.b]
        assert kb <= 32 and n <= 32, (k.name, kb, n)
    assert all(s[0] <= 64 for s, _ in sh.values())


def _activations_alive(w: Workload, r) -> None:
    """Every int8 activation that ran: some values nonzero and not all saturated."""
    for k in w.kernels:
        t = r.tensors[k.out]
        if k.requant and (not k.when or len(r.skipped[k.name]) < t.shape[0]):
            ran = t[np.any(t != 0, axis=1)] if k.when else t
            if k.when and not ran.size:
                continue
            assert np.count_nonzero(ran), k.name
            assert not (np.abs(ran.astype(int)) >= 127).all(), k.name
            assert (np.abs(ran.astype(int)) >= 127).mean() < 0.2, k.name


GENERATORS = {
    "random_dag": lambda s: dw.random_dag(s),
    "multimodal": lambda s: dw.multimodal(s),
    "moe": lambda s: dw.moe(s),
    "mha_gating": lambda s: dw.mha_gating(s),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_checked_deterministic_alive(name):
    gen = GENERATORS[name]
    w = gen(3)
    assert isinstance(w, Workload) and w.check() is w
    assert _same(w, gen(3)) and not _same(w, gen(4))
    assert w.meta["kernels"] == len(w.kernels) and "densities" in w.meta
    _fits_tiny(w)
    _activations_alive(w, run_workload(NUM, w))


@pytest.mark.parametrize("shape", dw.SHAPES)
@pytest.mark.parametrize("seed", range(4))
def test_random_dag_shapes(shape, seed):
    w = dw.random_dag(seed, kernels=9, shape=shape, densities=(0.05, 0.5))
    assert len(w.kernels) == 9 and all(k.op == "spmm" for k in w.kernels)
    _fits_tiny(w)
    dens = w.meta["densities"]
    assert dens and set(dens) == {n for n in w.tensors if n.startswith("x")}
    for n, d in dens.items():
        assert 0.05 <= d <= 0.5
        assert abs(np.count_nonzero(w.tensors[n]) / w.tensors[n].size - d) < 0.01
    made = w.producer()
    readers = {t for k in w.kernels for t in (k.a, k.b)}
    assert set(w.outputs) == set(made) - readers   # the sinks, int32
    assert all(made[o].requant is None for o in w.outputs)
    fan_in = sum(k.b in made for k in w.kernels)
    fan_out = max(sum(t in (k.a, k.b) for k in w.kernels) for t in made)
    if shape in ("fan_in", "diamonds"):
        assert fan_in >= 1
    if shape in ("fan_out", "diamonds"):
        assert fan_out >= 2
    if shape == "chains":
        assert fan_in == 0 and fan_out == 1
    if shape == "fan_in":
        assert len(dens) >= 2 and len(w.outputs) == 1
    _activations_alive(w, run_workload(NUM, w))


def test_random_dag_non_square_and_bigger():
    w = dw.random_dag(1, kernels=40, shape="mixed", rows=48, dim=16)
    sh = w.shapes()
    for k in w.kernels:   # a produced B is square; everything else has 48 or 16 rows
        assert sh[k.b][0][0] == 16 and sh[k.out][0][0] in (48, 16)
    assert len(w.kernels) == 40
    with pytest.raises(ValueError, match="shape: 'ring'"):
        dw.random_dag(0, shape="ring")
    with pytest.raises(ValueError, match="kernels: 3 is not allowed"):
        dw.random_dag(0, kernels=3, shape="diamonds")


def test_multimodal():
    w = dw.multimodal(0, vision_density=0.05, text_density=0.6, depth=3)
    assert len(w.kernels) == 7 and w.outputs == ("fused",)
    assert w.meta["densities"] == {"image": 0.05, "text": 0.6}
    assert abs(np.count_nonzero(w.tensors["image"]) / w.tensors["image"].size - 0.05) < 0.01
    fusion = w.producer()["fused"]
    assert (fusion.a, fusion.b, fusion.requant) == ("v2", "t2", None)
    assert run_workload(NUM, w).outputs["fused"].dtype == np.int64


@pytest.mark.parametrize("seed", range(8))
def test_moe_skips(seed):
    w = dw.moe(seed)
    assert len(w.kernels) == 17 and w.outputs == tuple(f"y{e}" for e in range(8))
    router = w.producer()["logits"]
    assert router.gate == Gate("topk", k=2, capacity=10, tile_rows=8) and w.meta["predicate_bits"] == 32
    r = run_workload(NUM, w)
    skipped = [len(r.skipped[f"ffn1_{e}"]) for e in range(8)]
    assert skipped == [len(r.skipped[f"ffn2_{e}"]) for e in range(8)]
    assert 4 in skipped and sum(skipped) > 0          # an expert with no tokens; skips happen
    assert [4 - s for s in skipped] == w.meta["tiles_run"]
    for e in range(8):
        for t in r.skipped[f"ffn2_{e}"]:
            assert not r.tensors[f"y{e}"][t * 8:(t + 1) * 8].any()
    # every (expert, tile) bit the gate set is a tile some ffn ran
    assert r.predicates["router"].sum() == sum(4 - s for s in skipped)


@pytest.mark.parametrize("seed", range(4))
def test_mha_gating_skips(seed):
    w = dw.mha_gating(seed)
    assert len(w.kernels) == 21 and w.outputs == tuple(f"o{h}" for h in range(4))
    r = run_workload(NUM, w)
    off = w.meta["heads_off"]
    assert len(off) == 2 and r.predicates["g"].tolist() == [h not in off for h in range(4)]
    for h in range(4):
        assert r.skipped[f"k_o{h}"] == ([0] if h in off else [])
        assert bool(r.outputs[f"o{h}"].any()) == (h not in off)
    assert (w.tensors["xt"] == w.tensors["x"].T).all()
    with pytest.raises(ValueError, match="gate_threshold"):
        dw.mha_gating(seed, gate_threshold=10**9)


# ---- YAML examples -------------------------------------------------------------------------------------------
def test_yaml_examples():
    mm = load(ROOT / "workloads" / "multimodal.yaml")
    assert len(mm.kernels) == 7 and mm.outputs == ("fused",)
    r = run_workload(NUM, mm)
    _activations_alive(mm, r)
    tb = load(ROOT / "workloads" / "two_branches.yaml")
    r = run_workload(NUM, tb)
    assert r.predicates["g"].tolist() == [True, False]
    assert r.skipped == {"b1": [], "b2": [0]} and not r.outputs["o2"].any() and r.outputs["o1"].any()


# ---- workload errors -----------------------------------------------------------------------------------------
def _wl(kernels, tensors=None, outputs=()):
    t = {"x": i8(np.ones((4, 4))), "w": i8(np.ones((4, 4)))} if tensors is None else tensors
    return Workload("bad", t, tuple(kernels), tuple(outputs))


def _err(w) -> str:
    with pytest.raises(WorkloadError) as e:
        w.check()
    return str(e.value)


def test_errors():
    assert "cycle through k1 -> k2 -> k1" in _err(_wl([Kernel("k0", "spmm", "x", "w", "t0", requant=(1, 0)),
                                                       Kernel("k1", "spmm", "t2", "w", "t1", requant=(1, 0)),
                                                       Kernel("k2", "spmm", "t1", "x", "t2", requant=(1, 0))]))
    assert "cycle through k -> k" in _err(_wl([Kernel("k", "spmm", "x", "t", "t", requant=(1, 0)),
                                               Kernel("k0", "spmm", "w", "w", "u")]))
    assert "kernels.k.b: tensor 'nope' is dangling" in _err(_wl([Kernel("k", "spmm", "x", "nope", "y"),
                                                                Kernel("j", "spmm", "w", "w", "z")]))
    assert "tensors.w: dangling: no kernel reads it" in _err(_wl([Kernel("k", "spmm", "x", "x", "y")]))
    assert "kernels.k2.a: tensor 'y' is int32" in _err(_wl([Kernel("k", "spmm", "x", "w", "y"),
                                                           Kernel("k2", "spmm", "y", "w", "z")]))
    assert "A's columns must equal B's rows" in _err(_wl([Kernel("k", "spmm", "x", "w", "y")],
                                                        {"x": i8(np.ones((4, 3))), "w": i8(np.ones((4, 4)))}))
    assert "name 'k' is used twice" in _err(_wl([Kernel("k", "spmm", "x", "w", "y"),
                                                 Kernel("k", "spmm", "x", "w", "z")]))
    assert "tensor 'y' is written twice" in _err(_wl([Kernel("k", "spmm", "x", "w", "y"),
                                                     Kernel("j", "spmm", "x", "w", "y")]))
    # an unknown `when` gate is named as such (it used to crash the cycle finder with an IndexError)
    assert "kernels.k.when: 'nope' is not a gate kernel" in _err(_wl([Kernel("k", "spmm", "x", "w", "y",
                                                                            when=("nope", 0))]))
    # a TOPK gate's tiles are the gate's rows: a predicated kernel of other rows would read other bits
    t = {"x": i8(np.ones((8, 4))), "x2": i8(np.ones((4, 4))), "w": i8(np.ones((4, 4)))}
    g = Gate("topk", k=1, tile_rows=2)
    assert "kernels.e.when: 4 rows are not allowed (allowed: 8" in _err(_wl(
        [Kernel("r", "gemm", "x", "w", "l", gate=g), Kernel("e", "spmm", "x2", "w", "y", when=("r", 0),
                                                            tile_rows=2)], t))
    with pytest.raises(WorkloadError, match="gate.op: 'median' is not allowed"):
        Gate("median")


def test_yaml_errors():
    base = {"name": "y", "tensors": {"x": {"shape": [4, 4], "seed": 1}, "w": {"shape": [4, 4]}},
            "kernels": [{"name": "k", "op": "spmm", "a": "x", "b": "w", "out": "o"}]}
    assert from_dict(base).outputs == ("o",)
    bad = {**base, "kernels": [{**base["kernels"][0], "colour": "red"}]}
    with pytest.raises(WorkloadError, match=r"kernels\[0\]\.colour: unknown key"):
        from_dict(bad)
    with pytest.raises(WorkloadError, match=r"workload\.extra: unknown key"):
        from_dict({**base, "extra": 1})
    with pytest.raises(WorkloadError, match=r"tensors\.x\.dens: unknown key"):
        from_dict({**base, "tensors": {**base["tensors"], "x": {"shape": [4, 4], "dens": 0.1}}})
    with pytest.raises(WorkloadError, match=r"kernels\.k\.gate\.kk: unknown key"):
        from_dict({**base, "kernels": [{**base["kernels"][0], "gate": {"op": "topk", "kk": 2}}]})
    with pytest.raises(WorkloadError, match=r"tensors\.x\.density: 2\.0 is not allowed"):
        from_dict({**base, "tensors": {**base["tensors"], "x": {"shape": [4, 4], "density": 2.0}}})
