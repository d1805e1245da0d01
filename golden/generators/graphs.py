"""GNN workloads over power-law graphs: networkx's generators (Barabási–Albert, Holme–Kim powerlaw cluster) and
its built-in real graphs, with GCN-normalized int8 edge weights that an edge-weight threshold can drop.

The adjacency is GCN's Â = D^-1/2 (A + I) D^-1/2 (Kipf & Welling 2017), weighted by the graph's own ``weight``
attribute where it has one (Les Misérables: co-appearances), quantized to int8 by its largest entry with every
edge kept at >= 1. Edges at hubs get the smallest weights, so a threshold skips the low-weight edges of the
nodes with the most work: the power-law case the engine's row units balance. Row i of Â aggregates node i's
neighbours: ``gnn_aggregate`` is Â (CSR) @ features.

:func:`sgc` is a whole model on the engine: SGC (Wu et al. 2019, "Simplifying Graph Convolutional Networks"),
``Â^hops X W`` with no nonlinearity between the hops, so every layer is an engine kernel: X @ W, then ``hops``
aggregations, each requantized to int8 for the next.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from golden.generators.dags import _Graph
from hwgen.spec.workload import Workload

GENERATED = ("barabasi_albert", "powerlaw_cluster")
REAL = {"karate": nx.karate_club_graph, "les_miserables": nx.les_miserables_graph,
        "florentine": nx.florentine_families_graph, "davis": nx.davis_southern_women_graph}
GRAPHS = (*GENERATED, *REAL)


def graph(kind: str, nodes: int = 256, edges_per_node: int = 3, triangle_p: float = 0.1, seed: int = 0) -> nx.Graph:
    """A generated power-law graph of ``nodes`` nodes (each new node attaches ``edges_per_node`` edges; the
    powerlaw cluster graph closes a triangle after each with probability ``triangle_p``), or a real one."""
    if kind == "barabasi_albert":
        return nx.barabasi_albert_graph(nodes, edges_per_node, seed=seed)
    if kind == "powerlaw_cluster":
        return nx.powerlaw_cluster_graph(nodes, edges_per_node, triangle_p, seed=seed)
    if kind in REAL:
        return nx.convert_node_labels_to_integers(REAL[kind]())
    raise ValueError(f"graph: {kind!r} is not allowed (allowed: {', '.join(GRAPHS)})")


def normalized_adjacency(g: nx.Graph) -> np.ndarray:
    """Â = D^-1/2 (A + I) D^-1/2 as int8 (1..127 on every edge and self loop, 0 elsewhere)."""
    n = g.number_of_nodes()
    a = nx.to_numpy_array(g, nodelist=range(n), weight="weight", dtype=np.float64) + np.eye(n)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    norm = a * d[:, None] * d[None, :]
    q = np.round(norm / norm.max() * 127.0)
    return np.where(a > 0, np.maximum(q, 1), 0).astype(np.int8)


def features(rows: int, cols: int, seed: int) -> np.ndarray:
    """Dense int8 node features, the full range."""
    return np.random.default_rng(seed).integers(-128, 128, size=(rows, cols), dtype=np.int16).astype(np.int8)


def sgc(adjacency: np.ndarray, feature_dim: int = 32, classes: int = 16, hops: int = 2, threshold: int = 0,
        seed: int = 0, name: str = "sgc") -> Workload:
    """SGC on the engine: xw = requant(X @ W); h_i = requant(Â @ h_{i-1}) (CSR, ``threshold`` drops light edges);
    the last hop's output is int32. 1 + hops kernels."""
    if hops < 1:
        raise ValueError(f"hops: {hops} is not allowed (allowed: >= 1)")
    nodes = adjacency.shape[0]
    g = _Graph(name, seed)
    x = g.input("x", nodes, feature_dim, values=features(nodes, feature_dim, seed))
    w = g.input("w", feature_dim, classes, values=features(feature_dim, classes, seed + 1))
    h = g.kernel("transform", x, w, "xw")
    adj = g.input("adj", nodes, nodes, values=adjacency)
    for i in range(hops):
        last = i == hops - 1
        h = g.kernel(f"hop{i}", adj, h, "y" if last else f"h{i}", requant=not last, a_format="csr",
                     threshold=threshold or None)
    return g.build(["y"], {"generator": "sgc", "seed": seed, "nodes": nodes, "hops": hops, "threshold": threshold,
                           "densities": {"adj": float(np.count_nonzero(adjacency) / adjacency.size)}})


__all__ = ["GRAPHS", "graph", "normalized_adjacency", "features", "sgc"]
