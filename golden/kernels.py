"""Golden kernels: what the accelerator must return for each task, from plain tensors.

``numeric`` is the dict ``HwConfig.numeric()`` returns: ``{"acc_bits": int, "overflow": "wrap"|"saturate"}``.
Operands are int8 numpy arrays or int8 torch tensors; results are int64 torch tensors on the CPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from golden.numerics import accumulate, pick_device


def int8_matrix(name: str, x: Any) -> torch.Tensor:
    """Check an int8 2-D operand and return it as a CPU int8 tensor."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.int8:
            raise TypeError(f"{name}: dtype {x.dtype} is not allowed (allowed: int8)")
        x = torch.from_numpy(np.array(x, copy=True))  # copy: numpy may be read-only or strided
    elif isinstance(x, torch.Tensor):
        if x.dtype != torch.int8:
            raise TypeError(f"{name}: dtype {x.dtype} is not allowed (allowed: torch.int8)")
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name}: shape {tuple(x.shape)} is not allowed (allowed: a 2-D matrix)")
    return x


def threshold_a(a: torch.Tensor, threshold: int) -> torch.Tensor:
    """``a`` with every entry of magnitude below ``threshold`` set to 0 (same dtype and device).

    Threshold 0 changes nothing, 1 also changes nothing (only zeros are below it); |-128| is 128, computed
    in int64 since ``abs`` of int8 -128 wraps to -128.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"threshold: {threshold!r} is not allowed (allowed: an int >= 0)")
    if threshold == 0:
        return a
    return a.masked_fill(a.to(torch.int64).abs() < threshold, 0)


def spmm(numeric: dict, a: Any, b: Any, threshold: int = 0, device: str | None = None,
         init: Any = None) -> torch.Tensor:
    """SPMM task: C = accumulate(threshold_a(A), B, init) -> int64 (M, N) on the CPU.

    ``device``: None/"cpu", "cuda" (error if absent) or "auto"; the answer is identical on every device.
    ``init``: int64 (M, N) numpy array or tensor the accumulators start from (an ``accumulate`` task); None: 0.
    """
    a, b = int8_matrix("A", a), int8_matrix("B", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"B: shape {tuple(b.shape)} does not match A {tuple(a.shape)}: B needs {a.shape[1]} rows")
    dev = pick_device(device)
    a = threshold_a(a.to(dev, torch.int64), threshold)
    if isinstance(init, np.ndarray):
        init = torch.from_numpy(np.array(init, copy=True))   # copy: numpy may be read-only or strided
    if init is not None:
        init = init.to(dev)
    return accumulate(a, b.to(dev, torch.int64), numeric["acc_bits"], numeric["overflow"], init=init).cpu()


def gemm(numeric: dict, a: Any, b: Any, device: str | None = None, init: Any = None) -> torch.Tensor:
    """GEMM task (dense baseline): C = accumulate(A, B, init); numerically spmm with threshold 0."""
    return spmm(numeric, a, b, threshold=0, device=device, init=init)
