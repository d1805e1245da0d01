"""Workload generators (``hwgen.spec.workload.Workload``, checked): random DAGs, a multimodal model, a mixture of
experts and gated multi-head attention. Seeded and deterministic; the defaults fit the ``tiny`` config (every B
<= 32x32, tensors <= 64 rows), the size arguments make bigger ones for the benchmark.

Requantization (multiplier, shift) of each kernel is calibrated on the exact product of its real operands
(``requant_params(TARGET_RMS / rms of the nonzero outputs)``), so every int8 activation spans the range without
being all zero or all saturated. ``Workload.meta`` keeps what was drawn (input densities, heads on, experts
used...) and ``predicate_bits`` (the scheduler predicates the gates write).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from golden.generators.operands import random_operands
from golden.numerics import requant_params, requantize
from hwgen.spec.workload import Gate, Kernel, Workload

TARGET_RMS = 40.0   # int8 activations: ~3 sigma inside +-127, so few saturate and few round to zero
SHAPES = ("mixed", "chains", "fan_in", "fan_out", "diamonds")
_MIN_KERNELS = {"mixed": 1, "chains": 1, "fan_out": 2, "fan_in": 3, "diamonds": 4}


def calibrate(x: np.ndarray) -> tuple[int, int]:
    """(multiplier, shift) that maps the int64 accumulator values ``x`` to int8 with an RMS of ~TARGET_RMS."""
    nz = x[x != 0].astype(np.float64)
    rms = math.sqrt(float(np.mean(nz * nz))) if nz.size else 1.0
    return requant_params(TARGET_RMS / max(rms, 1.0))


class _Graph:
    """Builds a workload kernel by kernel, computing each value exactly to calibrate the next requant."""

    def __init__(self, name: str, seed: int):
        self.name, self.rng = name, np.random.default_rng(seed)
        self.tensors: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.kernels: list[Kernel] = []

    def input(self, name: str, rows: int, cols: int, density: float = 1.0, values: np.ndarray | None = None) -> str:
        if values is None:   # the YAML loader's generator, so a YAML tensor {shape, density, seed} is the same
            values = random_operands(rows, cols, 1, density, int(self.rng.integers(1 << 31)))[0]
        self.tensors[name] = self.values[name] = values
        return name

    def kernel(self, name: str, a: str, b: str, out: str, op: str = "spmm", requant: bool = True,
               density: float | None = None, **kw) -> str:
        """``density``: give the kernel the threshold that leaves about that fraction of its A nonzero (the
        sparsity of a branch persists through its layers, as after a ReLU: found at run time, not compiled in)."""
        av = self.values[a].astype(np.int64)
        if density is not None and op == "spmm" and density < 1.0:
            t = int(min(128, max(0, np.ceil(np.quantile(np.abs(av), 1.0 - density)))))
            kw["threshold"] = t
        if kw.get("threshold"):   # calibrate on what the engine multiplies: A without its |a| < threshold
            av = np.where(np.abs(av) >= kw["threshold"], av, 0)
        x = av @ self.values[b].astype(np.int64)
        rq = calibrate(x) if requant else None
        self.values[out] = requantize(torch.from_numpy(x), *rq).numpy() if rq else x
        self.kernels.append(Kernel(name=name, op=op, a=a, b=b, out=out, requant=rq, **kw))
        return out

    def build(self, outputs: list[str], meta: dict) -> Workload:
        w = Workload(self.name, dict(self.tensors), tuple(self.kernels), tuple(outputs), meta).check()
        sh = w.shapes()
        meta["kernels"] = len(self.kernels)
        meta["predicate_bits"] = sum(k.gate.bits(*sh[k.out][0]) for k in self.kernels if k.gate)
        return w


# ---- 1. random DAGs ----------------------------------------------------------------------------------------
X, W = "x", "w"   # operand sources: a new activation input, a new weight input, or an earlier kernel (int)


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (i < n % parts) for i in range(parts)]


def _structure(rng: np.random.Generator, n: int, shape: str) -> list[tuple]:
    """(A source, B source) per kernel, in a topological order."""
    ks: list[tuple] = []

    def chain(length: int, start=X) -> int:
        prev = start
        for _ in range(length):
            ks.append((prev, W))
            prev = len(ks) - 1
        return prev

    if shape == "chains":
        for length in _split(n, int(min(n, rng.integers(2, 4)))):
            chain(length)
    elif shape == "fan_out":
        root = chain(1)
        heads = []
        for i in range(n - 1):   # up to 4 consumers of the root, then the branches grow at random
            if i < 4:
                heads.append(chain(1, root))
            else:
                j = int(rng.integers(len(heads)))
                heads[j] = chain(1, heads[j])
    elif shape == "fan_in":
        branches = max(2, (n + 1) // 3)
        heads = [chain(length) for length in _split(n - (branches - 1), branches)]
        while len(heads) > 1:   # a balanced merge tree: A from one branch, B from another
            a, b = heads.pop(0), heads.pop(0)
            ks.append((a, b))
            heads.append(len(ks) - 1)
    elif shape == "diamonds":
        prev = X
        while n - len(ks) >= 4:
            top = chain(1, prev)
            left, right = chain(1, top), chain(1, top)
            ks.append((left, right))
            prev = len(ks) - 1
        chain(n - len(ks), prev)
    else:   # mixed: new branches, fan-out (recent tensors read again) and fan-in (a produced B)
        for i in range(n):
            a = X if i == 0 or rng.random() < 0.25 else int(rng.integers(max(0, i - 3), i))
            b = W
            if i >= 1 and rng.random() < 0.3:
                others = [j for j in range(i) if j != a]
                if others:
                    b = int(rng.choice(others))
            ks.append((a, b))
    return ks


def random_dag(seed: int, kernels: int = 8, shape: str = "mixed", densities: tuple[float, float] = (0.05, 1.0),
               rows: int = 32, dim: int = 32, persist: bool = True) -> Workload:
    """A random DAG of ``kernels`` spmm kernels over int8 activations (rows x dim; dim x dim where a produced
    activation is some kernel's B), weights dim x dim (dense inputs). Every branch starts from its own input
    activation whose density is drawn log-uniformly from ``densities`` (meta["densities"]); produced
    activations are requantized int8; with ``persist`` each later kernel of the branch thresholds its A back to
    the branch's density (run-time sparsity along the branch); kernels nobody reads are the int32 outputs."""
    if shape not in SHAPES:
        raise ValueError(f"shape: {shape!r} is not allowed (allowed: {', '.join(SHAPES)})")
    if not _MIN_KERNELS[shape] <= kernels <= 4096:
        raise ValueError(f"kernels: {kernels} is not allowed (allowed: {_MIN_KERNELS[shape]}..4096 for {shape})")
    lo, hi = densities
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"densities: {densities!r} is not allowed (allowed: (lo, hi) with 0 <= lo <= hi <= 1)")
    g = _Graph(f"random_dag_{shape}_{seed}", seed)
    ks = _structure(g.rng, kernels, shape)
    # a tensor's rows are its A-chain's input's rows; a tensor read as B needs dim rows
    root = []
    for i, (a, _) in enumerate(ks):
        root.append(i if a == X else root[a])
    square = {root[b] for _, b in ks if isinstance(b, int)}
    read = {s for pair in ks for s in pair if isinstance(s, int)}
    names, dens, nx, nw = [], {}, 0, 0
    branch: list[float] = []            # each kernel's branch density (its A chain's input's)
    for i, (a, b) in enumerate(ks):
        if a == X:
            d = float(np.exp(g.rng.uniform(np.log(lo), np.log(hi)))) if lo > 0 else float(g.rng.uniform(lo, hi))
            d = round(d, 4)
            a_name = g.input(f"x{nx}", dim if i in square else rows, dim, d)
            dens[a_name], nx = d, nx + 1
            branch.append(d)
        else:
            a_name = names[a]
            branch.append(branch[a])
        if b == W:
            b_name, nw = g.input(f"w{nw}", dim, dim), nw + 1
        else:
            b_name = names[b]
        names.append(g.kernel(f"k{i}", a_name, b_name, f"t{i}", requant=i in read,
                              density=branch[i] if persist and a != X else None))
    outputs = [names[i] for i in range(kernels) if i not in read]
    return g.build(outputs, {"generator": "random_dag", "seed": seed, "shape": shape, "densities": dens,
                             "edges": [(names[a] if isinstance(a, int) else "input",
                                        names[b] if isinstance(b, int) else "weight") for a, b in ks]})


def branches(seed: int, count: int = 8, depth: int | tuple[int, int] = 4,
             densities: tuple[float, float] = (0.02, 1.0), rows: int = 64, dim: int = 64) -> Workload:
    """``count`` independent branches of ``depth`` spmm kernels (a (lo, hi) pair: each branch's depth drawn
    uniformly from it; rows x dim activations, dim x dim weights), each
    starting from an input of a density drawn log-uniformly from ``densities``, every later kernel thresholding
    its A back to that density (run-time sparsity the compiler does not see); each branch's last output is an
    int32 output. More ready tasks than engines: the order the scheduler picks decides the makespan."""
    lo, hi = densities
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"densities: {densities!r} is not allowed (allowed: (lo, hi) with 0 < lo <= hi <= 1)")
    lo_d, hi_d = (depth, depth) if isinstance(depth, int) else depth
    if not 1 <= lo_d <= hi_d:
        raise ValueError(f"depth: {depth!r} is not allowed (allowed: >= 1, or (lo, hi) with 1 <= lo <= hi)")
    g = _Graph(f"branches_{count}x{lo_d}-{hi_d}_{seed}", seed)
    outs, dens = [], {}
    for b in range(count):
        d = round(float(np.exp(g.rng.uniform(np.log(lo), np.log(hi)))), 4)
        depth_b = int(g.rng.integers(lo_d, hi_d + 1))
        x = g.input(f"x{b}", rows, dim, d)
        dens[x] = d
        for i in range(depth_b):
            x = g.kernel(f"b{b}k{i}", x, g.input(f"w{b}_{i}", dim, dim), f"b{b}t{i}", requant=i < depth_b - 1,
                         density=d if i else None)
        outs.append(x)
    return g.build(outs, {"generator": "branches", "seed": seed, "densities": dens})


# ---- 2. multimodal -----------------------------------------------------------------------------------------
def multimodal(seed: int, vision_density: float = 0.05, text_density: float = 0.6, depth: int = 3,
               rows: int = 32, dim: int = 32, persist: bool = True) -> Workload:
    """A vision branch (``depth`` spmm+requant kernels from an image input rows x dim of ``vision_density``), a
    text branch (``depth`` kernels from a text input dim x dim of ``text_density``), then ``fusion`` = vision @
    text (A from vision, B from text), an int32 output. 2 * depth + 1 kernels. With ``persist`` each branch's
    later kernels threshold their A back to the branch's density (run-time sparsity along the branch)."""
    if depth < 0:
        raise ValueError(f"depth: {depth} is not allowed (allowed: >= 0)")
    g = _Graph(f"multimodal_{seed}", seed)
    v = g.input("image", rows, dim, vision_density)
    t = g.input("text", dim, dim, text_density)   # square: the text activation is the fusion's B
    for i in range(depth):
        keep = persist and i > 0
        v = g.kernel(f"vision{i}", v, g.input(f"wv{i}", dim, dim), f"v{i}", density=vision_density if keep else None)
        t = g.kernel(f"text{i}", t, g.input(f"wt{i}", dim, dim), f"t{i}", density=text_density if keep else None)
    g.kernel("fusion", v, t, "fused", requant=False)
    return g.build(["fused"], {"generator": "multimodal", "seed": seed, "depth": depth,
                               "densities": {"image": vision_density, "text": text_density}})


# ---- 3. mixture of experts ---------------------------------------------------------------------------------
def moe(seed: int, tokens: int = 32, dim: int = 16, ffn: int = 32, experts: int = 8, k: int = 2,
        capacity_factor: float = 1.25, tile_rows: int = 8) -> Workload:
    """Router ``logits = X @ Wr`` (gemm, tokens x experts, a TOPK gate: k, capacity = ceil(capacity_factor *
    tokens * k / experts), token tiles of tile_rows), then per expert e: h_e = requant(X @ W1_e) (tokens x ffn)
    and y_e = requant(h_e @ W2_e) (tokens x dim), both when=(router, e). Outputs y_0..y_{experts-1}.
    1 + 2 * experts kernels. Router columns have skewed means, so some experts get no token (every tile
    skipped) and others only some tiles."""
    if not 1 <= k <= min(15, experts):
        raise ValueError(f"k: {k} is not allowed (allowed: 1..{min(15, experts)})")
    capacity = math.ceil(capacity_factor * tokens * k / experts)
    g = _Graph(f"moe_{seed}", seed)
    rng = g.rng
    # positive token features, so a column's mean weight ranks the experts for every token alike
    x = g.input("x", tokens, dim, values=rng.integers(0, 128, size=(tokens, dim)).astype(np.int8))
    cold = rng.permutation(experts)[:max(1, experts // 4)]
    mu = rng.uniform(-8, 8, size=experts)   # ~1/3 of the tiles run at the defaults (seeds 0..19)
    mu[cold] = -60   # never in anyone's top k
    wr = np.clip(np.round(mu[None, :] + rng.uniform(-64, 64, size=(dim, experts))), -128, 127).astype(np.int8)
    g.input("wr", dim, experts, values=wr)
    gate = Gate("topk", k=k, capacity=capacity, tile_rows=tile_rows)
    g.kernel("router", x, "wr", "logits", op="gemm", requant=False, gate=gate)
    ys = []
    for e in range(experts):
        h = g.kernel(f"ffn1_{e}", x, g.input(f"w1_{e}", dim, ffn), f"h{e}", when=("router", e), tile_rows=tile_rows)
        ys.append(g.kernel(f"ffn2_{e}", h, g.input(f"w2_{e}", ffn, dim), f"y{e}", when=("router", e),
                           tile_rows=tile_rows))
    from golden.graph import gate_bits
    bits = gate_bits(gate, g.values["logits"]).reshape(experts, -1)   # bit (e, tile) = e * tiles + tile
    return g.build(ys, {"generator": "moe", "seed": seed, "capacity": capacity, "cold_experts": sorted(cold.tolist()),
                        "tiles_run": bits.sum(axis=1).tolist(),
                        "densities": {"x": float(np.count_nonzero(g.values[x]) / g.values[x].size)}})


# ---- 4. gated multi-head attention -------------------------------------------------------------------------
def mha_gating(seed: int, tokens: int = 16, dim: int = 32, heads: int = 4, head_dim: int = 8,
               gate_threshold: int = 0, density: float = 1.0) -> Workload:
    """Head gate ``gv = Xpool @ Wg`` (gemm, 1 x heads, a THRESHOLD gate), then per head h (every kernel when=(g,
    h)): q_h = requant(X @ Wq_h), kT_h = requant(WkT_h @ XT) (XT: X transposed, an input), s_h = requant(q_h @
    kT_h) (tokens x tokens), v_h = requant(X @ Wv_h), o_h = requant(s_h @ v_h). Outputs o_0..o_{heads-1};
    1 + 5 * heads kernels. heads // 2 heads (seeded, meta["heads_off"]) have gate <= gate_threshold."""
    g = _Graph(f"mha_gating_{seed}", seed)
    rng = g.rng
    x = g.input("x", tokens, dim, density)
    g.input("xt", dim, tokens, values=np.ascontiguousarray(g.values[x].T))
    # Xpool > 0, so an all-positive column of Wg gives gate > 0 and an all-negative one gate < 0
    xpool = rng.integers(1, 128, size=(1, dim)).astype(np.int8)
    off = sorted(rng.choice(heads, size=heads // 2, replace=False).tolist())
    wg = rng.integers(1, 128, size=(dim, heads))
    wg[:, off] = -wg[:, off]
    gv = xpool.astype(np.int64) @ wg
    if not ((gv[0, off] <= gate_threshold).all() and (np.delete(gv[0], off) > gate_threshold).all()):
        raise ValueError(f"gate_threshold: {gate_threshold} is not allowed (allowed: between the gate values of "
                         f"the heads off and on, {gv[0].tolist()})")
    g.input("xpool", 1, dim, values=xpool)
    g.input("wg", dim, heads, values=wg.astype(np.int8))
    g.kernel("g", "xpool", "wg", "gv", op="gemm", requant=False, gate=Gate("threshold", threshold=gate_threshold))
    outs = []
    for h in range(heads):
        when = ("g", h)
        q = g.kernel(f"k_q{h}", x, g.input(f"wq{h}", dim, head_dim), f"q{h}", when=when)
        kt = g.kernel(f"k_kt{h}", g.input(f"wkt{h}", head_dim, dim), "xt", f"kt{h}", when=when)
        s = g.kernel(f"k_s{h}", q, kt, f"s{h}", when=when)
        v = g.kernel(f"k_v{h}", x, g.input(f"wv{h}", dim, head_dim), f"v{h}", when=when)
        outs.append(g.kernel(f"k_o{h}", s, v, f"o{h}", when=when))
    return g.build(outs, {"generator": "mha_gating", "seed": seed, "heads_off": off,
                          "heads_on": [h for h in range(heads) if h not in off], "densities": {"x": density}})
