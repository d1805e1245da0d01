"""The golden executor: runs a Program's tasks on its logical tensors with the PyTorch kernels.

It reads the operands from ``Program.tensors`` (not from the L1 image), so a packing or layout bug
shows up as a mismatch against the simulator and the RTL, which both read the image.
"""
from __future__ import annotations

import time

import numpy as np

from golden import kernels, numerics
from hwgen.spec import isa
from hwgen.spec.program import Program, Result


def run(numeric: dict, program: Program, device: str | None = None) -> Result:
    wall = time.perf_counter()
    if program.kernel == "topk_attention":
        from golden.attention import causal_mask, topk_attention
        t, s = program.tensors["Q"].shape[0], program.tensors["K"].shape[0]
        mask = causal_mask(t, s) if program.params["causal"] else None
        res = topk_attention(numeric, program.tensors["Q"], program.tensors["K"], program.tensors["V"],
                             program.params["topk"], program.params["frac_bits"], mask=mask, device=device)
        return Result(outputs={"O": res["out"].cpu().numpy()}, cycles=None,
                      stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall,
                             "p_nnz": int(res["rowptr"][-1])})
    if program.kernel == "workload":      # a DAG program (hwgen/compiler/dag.py): the workload's graph semantics
        from golden.graph import run_workload
        res = run_workload(numeric, program.params["workload"], device=device)
        return Result(outputs={name: np.asarray(res.tensors[name]).astype(np.int64) for name in program.outputs},
                      cycles=None,
                      stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall,
                             "predicates": res.predicates, "skipped": res.skipped})
    if program.kernel == "layers":
        x = program.tensors["A"]
        for index in range(program.params["layers"]):
            c = kernels.spmm(numeric, x, program.tensors[f"B{index}"], device=device)
            t = program.tensors
            x = requantize_table(c, t[f"requant_multiplier{index}"], t[f"requant_shift{index}"])
        return Result(outputs={"C": x.astype(np.int64)}, cycles=None,
                      stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall})
    f = next(f for f in program.fields if isa.unit_of(f["opcode"]) == isa.Unit.COMPUTE)   # tiles share these
    a, b = program.tensors["A"], program.tensors["B"]
    if f["opcode"] == isa.Opcode.GEMM:
        c = kernels.gemm(numeric, a, b, device=device)
    else:
        c = kernels.spmm(numeric, a, b, threshold=f["threshold"], device=device)
    c = c.cpu().numpy()
    if "requant_multiplier" in program.tensors:
        t = program.tensors
        c = requantize_table(c, t["requant_multiplier"], t["requant_shift"]).astype(np.int64)
    return Result(outputs={"C": c}, cycles=None,
                  stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall})


def requantize_table(c, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """int8 numpy result of golden.numerics.requantize; a length-1 table is per tensor."""
    import torch
    c = torch.as_tensor(np.asarray(c), dtype=torch.int64)
    mult = int(multiplier[0]) if multiplier.size == 1 else torch.from_numpy(multiplier)
    sh = int(shift[0]) if shift.size == 1 else torch.from_numpy(shift)
    return numerics.requantize(c, mult, sh).numpy()
