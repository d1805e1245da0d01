"""The golden model of a workload (``hwgen/spec/workload.py``): every kernel of the graph on plain tensors.

Semantics (the one written definition; the compiler, simulator and RTL must match it bit for bit):

- kernels run in ``Workload.order()``; ``out = spmm(A, B, threshold)`` or ``gemm(A, B)`` (``golden.kernels``,
  the engine's accumulator), then with ``requant`` (multiplier, shift) ``golden.numerics.requantize`` -> int8;
  without, the int32 accumulator values (kept as int64).
- a gate kernel's output sets predicate bits as ``hwgen/spec/task_table.py`` says, indexed by ``Gate.bit``:
  THRESHOLD: bit c = any row's value in column c > threshold. TOPK: rows in order, per row the k largest
  columns (ties to the lower column); a column accepts at most ``capacity`` rows (None: all); an accepted
  row r sets bit (c, r // tile_rows) (tile_rows None: one tile of all rows).
- a kernel with ``when = (gate, column)`` computes its output per row tile (a TOPK gate's tile_rows, all rows
  when None; THRESHOLD: one tile of all rows); a tile whose bit is clear is skipped and its rows stay ZERO
  (the hardware never writes them over the zeroed output memory).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from golden import kernels, numerics
from hwgen.spec.workload import Gate, Kernel, Workload


@dataclass
class GraphResult:
    tensors: dict[str, np.ndarray]                 # every produced tensor: int8 (requant) or int64 (int32 values)
    predicates: dict[str, np.ndarray]              # gate kernel -> bool bits, indexed as Gate.bit(col, tile, rows)
    skipped: dict[str, list[int]] = field(default_factory=dict)   # gated kernel -> row tiles skipped
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # the Workload.outputs subset of tensors


def gate_bits(gate: Gate, values: np.ndarray) -> np.ndarray:
    """Predicate bits of ``gate`` from its (rows x cols) int32 output values (numpy, any integer dtype)."""
    values = np.asarray(values, dtype=np.int64)
    rows, cols = values.shape
    bits = np.zeros(gate.bits(rows, cols), dtype=bool)
    if gate.op == "threshold":
        bits[:] = (values > gate.threshold).any(axis=0)
        return bits
    # topk_rows: value descending, ties to the lower index: the task table's rule
    _, idx, count = numerics.topk_rows(torch.from_numpy(values), min(gate.k, cols))
    idx, count = idx.numpy(), count.numpy()
    tile_rows = gate.tile_rows or rows
    taken = np.zeros(cols, dtype=np.int64)
    cap = rows if gate.capacity is None else gate.capacity
    for r in range(rows):                      # in row order: earlier tokens fill an expert first
        for c in idx[r, :count[r]]:
            if taken[c] < cap:
                taken[c] += 1
                bits[gate.bit(int(c), r // tile_rows, rows)] = True
    return bits


def _tile_rows(w: Workload, k: Kernel, rows: int) -> int:
    """Rows per predicated tile of a ``when`` kernel of ``rows`` output rows."""
    g = next(x for x in w.kernels if x.name == k.when[0]).gate
    return (g.tile_rows or rows) if g.op == "topk" else rows


def run_workload(numeric: dict, w: Workload, device=None) -> GraphResult:
    """Run ``w`` (checked first) with the engine numerics ``numeric`` (``HwConfig.numeric()``)."""
    w.check()
    values: dict[str, np.ndarray] = dict(w.tensors)
    gates = {k.name: k for k in w.kernels if k.gate}
    res = GraphResult(tensors={}, predicates={})
    for k in w.order():
        a, b = values[k.a], values[k.b]
        rows = a.shape[0]
        keep = np.ones(rows, dtype=bool)
        if k.when:
            gk = gates[k.when[0]]
            bits = res.predicates[gk.name]
            gate_rows = values[gk.out].shape[0]
            tr = _tile_rows(w, k, rows)
            skipped = [t for t in range(-(-rows // tr))
                       if not bits[gk.gate.bit(k.when[1], t, gate_rows)]]
            for t in skipped:
                keep[t * tr:(t + 1) * tr] = False
            res.skipped[k.name] = skipped
        out = np.zeros((rows, b.shape[1]), dtype=np.int8 if k.requant else np.int64)
        if keep.any():   # rows are independent: computing only the kept tiles is computing per tile
            ak = np.ascontiguousarray(a[keep])
            if k.op == "gemm":
                c = kernels.gemm(numeric, ak, b, device=device)
            else:
                c = kernels.spmm(numeric, ak, b, threshold=k.threshold or 0, device=device)
            if k.requant:
                c = numerics.requantize(c, k.requant[0], k.requant[1])
            out[keep] = c.cpu().numpy()
        values[k.out] = out
        res.tensors[k.out] = out
        if k.gate:
            res.predicates[k.name] = gate_bits(k.gate, out)
    res.outputs = {name: res.tensors[name] for name in w.outputs}
    return res
