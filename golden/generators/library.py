"""The workload library: real work, by name, for sweeps and benchmarks. Each entry is a small pydantic model (so a
sweep file is checked field by field before anything runs) whose ``build()`` gives either

- a :class:`Layer`: one matmul on one engine (``kernel``, int8 ``a`` and ``b``, the A format), a single-layer
  point; or
- a ``hwgen.spec.workload.Workload``: a DAG of kernels for the whole chip, a whole-DAG point.

Entries (``kind``):

==============  =====  ====================================================================================
``spmm``        layer  random operands of a shape and density (``golden.generators.operands``)
``minilm``      layer  one matmul of an all-MiniLM-L6-v2 layer: real pruned int8 weights, a real sentence's
                       activations (``golden.generators.minilm``)
``gnn``         layer  GCN aggregation Â @ X over a power-law or real graph, edge-weight threshold (``graphs``)
``recsys``      layer  users x items interactions (Zipf popularity) @ item embeddings (``recsys``)
``sgc``         DAG    SGC on a graph: X @ W, then ``hops`` aggregations (``graphs.sgc``)
``moe``         DAG    router (gemm, top-k gate with capacity) + expert FFNs (``dags.moe``)
``multimodal``  DAG    vision and text branches fused (``dags.multimodal``)
``mha_gating``  DAG    gated multi-head attention (``dags.mha_gating``)
``file``        DAG    a workload YAML (``hwgen.spec.workload.load``), relative to the sweep file
==============  =====  ====================================================================================

Builds are deterministic (seeded) and cached per process, so a sweep builds each workload once per worker. The
DAG entries pass their fields to the generators by name; their defaults are the generators' own (a test keeps
them equal: importing the generators here would load torch into every ``dsa`` command).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hwgen.spec.formats import parse_nm
from hwgen.spec.isa import THRESHOLD_MAX
from hwgen.spec.program import A_FORMATS
from hwgen.spec.workload import Workload

DIM = Field(ge=1, le=65535)
Format = Literal[A_FORMATS]


@dataclass(frozen=True)
class Layer:
    """One matmul for one engine: C = A @ B."""
    name: str
    kernel: str
    a: np.ndarray
    b: np.ndarray
    a_format: str = "dense"
    threshold: int = 0
    nm: tuple[int, int] = (2, 4)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape[0], self.a.shape[1], self.b.shape[1]

    @property
    def density(self) -> float:
        return float(np.count_nonzero(self.a) / self.a.size)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="label in results (default: "
                             "derived from the fields)")

    def label(self) -> str:
        if self.name:
            return self.name
        fields = [f"{k}{v}" for k, v in self.model_dump(exclude={"kind", "name", "path"}).items()
                  if v is not None and v != type(self).model_fields[k].default]
        return "_".join([self.kind, *fields]).replace(":", "-")[:64]

    def build(self) -> Layer | Workload:
        return _build(self)

    def arguments(self) -> dict[str, Any]:
        """The fields a generator takes, by name (everything but ``kind`` and ``name``)."""
        return self.model_dump(exclude={"kind", "name"})

    def _make(self) -> Layer | Workload:
        raise NotImplementedError


class Spmm(_Entry):
    kind: Literal["spmm"]
    m: int = DIM
    k: int = DIM
    n: int = DIM
    density: float = Field(0.1, ge=0.0, le=1.0)
    format: Format = "dense"
    nm: str = "2:4"
    threshold: int = Field(0, ge=0, le=THRESHOLD_MAX)
    power_law: bool = False
    seed: int = Field(0, ge=0)

    @field_validator("nm")
    @classmethod
    def _nm(cls, v: str) -> str:
        parse_nm(v)
        return v

    def _make(self) -> Layer:
        from golden.generators.operands import power_law_rows, prune_nm, random_operands
        a, b = (power_law_rows if self.power_law else random_operands)(self.m, self.k, self.n, self.density, self.seed)
        ratio = parse_nm(self.nm)
        a = prune_nm(a, *ratio) if self.format == "nm" else a
        return Layer(self.label(), "spmm", a, b, self.format, self.threshold, ratio)


class MiniLM(_Entry):
    kind: Literal["minilm"]
    layer: int = Field(0, ge=0, le=5)
    part: Literal["q", "k", "v", "scores", "context", "o", "ffn1", "ffn2"] = "ffn1"
    prune: str = Field("unstructured", description="unstructured, or N:M along K such as 2:4")
    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="share of weights pruned (unstructured)")
    rows: int | None = Field(None, ge=1, le=65535, description="the first rows of A only (a tile of the layer)")
    format: Format = "dense"

    @field_validator("prune")
    @classmethod
    def _prune(cls, v: str) -> str:
        if v != "unstructured":
            parse_nm(v)
        return v

    @model_validator(mode="after")
    def _format_fits(self) -> MiniLM:
        if self.format == "nm" and self.prune == "unstructured":
            raise ValueError(f"format: 'nm' is not allowed with prune 'unstructured' (allowed: prune N:M such as "
                             f"'2:4', or format {', '.join(f for f in A_FORMATS if f != 'nm')})")
        if self.format == "csr":
            raise ValueError("format: 'csr' is not allowed for minilm (allowed: dense, bitmask, nm)")
        return self

    def _make(self) -> Layer:
        from golden.generators import minilm
        nm = parse_nm(self.prune) if self.prune != "unstructured" else (2, 4)
        run = minilm.int8_layer(self.layer, "unstructured" if self.prune == "unstructured" else "nm", self.sparsity,
                                nm)
        a, b = run.kernels[self.part]
        a = a[:self.rows] if self.rows else a
        return Layer(self.label(), "spmm", a, b, self.format, 0, nm,
                     {"cosine": run.cosine, "weight_density": run.weight_density, "tokens": b.shape[1]})


class Gnn(_Entry):
    kind: Literal["gnn"]
    graph: Literal["barabasi_albert", "powerlaw_cluster", "karate", "les_miserables", "florentine", "davis"] = \
        "barabasi_albert"
    nodes: int = Field(256, ge=8, le=65535, description="nodes of a generated graph")
    edges_per_node: int = Field(3, ge=1, le=64)
    triangle_p: float = Field(0.1, ge=0.0, le=1.0)
    features: int = DIM
    threshold: int = Field(0, ge=0, le=THRESHOLD_MAX, description="edges of weight below it are skipped")
    seed: int = Field(0, ge=0)

    def adjacency(self) -> np.ndarray:
        from golden.generators import graphs
        return graphs.normalized_adjacency(graphs.graph(self.graph, self.nodes, self.edges_per_node,
                                                        self.triangle_p, self.seed))

    def _make(self) -> Layer:
        from golden.generators.graphs import features
        adj = self.adjacency()
        return Layer(self.label(), "gnn_aggregate", adj, features(adj.shape[0], self.features, self.seed), "csr",
                     self.threshold, meta={"nodes": adj.shape[0], "edges": int(np.count_nonzero(adj))})


class Sgc(Gnn):
    kind: Literal["sgc"]
    features: int = Field(32, ge=1, le=65535)
    classes: int = Field(16, ge=1, le=65535)
    hops: int = Field(2, ge=1, le=8)

    def _make(self) -> Workload:
        from golden.generators.graphs import sgc
        return sgc(self.adjacency(), self.features, self.classes, self.hops, self.threshold, self.seed, "sgc")


class Recsys(_Entry):
    kind: Literal["recsys"]
    users: int = Field(512, ge=1, le=65535)
    items: int = Field(1024, ge=1, le=65535)
    density: float = Field(0.02, gt=0.0, le=1.0)
    zipf: float = Field(1.0, ge=0.0, le=4.0)
    factors: int = Field(32, ge=1, le=65535)
    format: Format = "csr"
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _format_fits(self) -> Recsys:
        if self.format == "nm":
            raise ValueError("format: 'nm' is not allowed for recsys (allowed: dense, bitmask, csr)")
        return self

    def _make(self) -> Layer:
        from golden.generators.recsys import embeddings, interactions
        a = interactions(self.users, self.items, self.density, self.zipf, self.seed)
        return Layer(self.label(), "spmm", a, embeddings(self.items, self.factors, self.seed), self.format)


class Moe(_Entry):
    kind: Literal["moe"]
    tokens: int = Field(32, ge=1, le=4096)
    dim: int = Field(16, ge=1, le=4096)
    ffn: int = Field(32, ge=1, le=4096)
    experts: int = Field(8, ge=1, le=15)
    k: int = Field(2, ge=1, le=15)
    capacity_factor: float = Field(1.25, gt=0, le=16)
    tile_rows: int = Field(8, ge=1, le=4096)
    seed: int = Field(0, ge=0)

    def _make(self) -> Workload:
        from golden.generators.dags import moe
        return moe(**self.arguments())


class Multimodal(_Entry):
    kind: Literal["multimodal"]
    vision_density: float = Field(0.05, ge=0.0, le=1.0)
    text_density: float = Field(0.6, ge=0.0, le=1.0)
    depth: int = Field(3, ge=0, le=16)
    rows: int = Field(32, ge=1, le=4096)
    dim: int = Field(32, ge=1, le=4096)
    seed: int = Field(0, ge=0)

    def _make(self) -> Workload:
        from golden.generators.dags import multimodal
        return multimodal(**self.arguments())


class MhaGating(_Entry):
    kind: Literal["mha_gating"]
    tokens: int = Field(16, ge=1, le=4096)
    dim: int = Field(32, ge=1, le=4096)
    heads: int = Field(4, ge=1, le=16)
    head_dim: int = Field(8, ge=1, le=4096)
    density: float = Field(1.0, ge=0.0, le=1.0)
    seed: int = Field(0, ge=0)

    def _make(self) -> Workload:
        from golden.generators.dags import mha_gating
        return mha_gating(**self.arguments())


class File(_Entry):
    kind: Literal["file"]
    path: Path

    def label(self) -> str:
        return self.name or self.path.stem

    def _make(self) -> Workload:
        from hwgen.spec.workload import load
        return load(self.path)


Entry = Annotated[Spmm | MiniLM | Gnn | Sgc | Recsys | Moe | Multimodal | MhaGating | File,
                  Field(discriminator="kind")]
KINDS = ("spmm", "minilm", "gnn", "recsys", "sgc", "moe", "multimodal", "mha_gating", "file")


@lru_cache(maxsize=64)
def _build(entry: _Entry) -> Layer | Workload:
    return entry._make()


__all__ = ["KINDS", "Entry", "Layer", "Spmm", "MiniLM", "Gnn", "Sgc", "Recsys", "Moe", "Multimodal", "MhaGating",
           "File"]
