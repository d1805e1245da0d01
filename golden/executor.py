"""The golden executor: runs a Program's tasks on its logical tensors with the PyTorch kernels.

It reads the operands from ``Program.tensors`` (not from the L1 image), so a packing or layout bug
shows up as a mismatch against the simulator and the RTL, which both read the image.
"""
from __future__ import annotations

import time

from hwgen import isa
from hwgen.program import Program, Result

from . import kernels


def run(numeric: dict, program: Program, device: str | None = None) -> Result:
    wall = time.perf_counter()
    if program.kernel == "topk_attention":
        from .attention import causal_mask, topk_attention
        t, s = program.tensors["Q"].shape[0], program.tensors["K"].shape[0]
        mask = causal_mask(t, s) if program.params["causal"] else None
        res = topk_attention(numeric, program.tensors["Q"], program.tensors["K"], program.tensors["V"],
                             program.params["topk"], program.params["frac_bits"], mask=mask, device=device)
        return Result(outputs={"O": res["out"].cpu().numpy()}, cycles=None,
                      stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall,
                             "p_nnz": int(res["rowptr"][-1])})
    (f,) = program.fields
    a, b = program.tensors["A"], program.tensors["B"]
    if f["opcode"] == isa.Opcode.GEMM:
        c = kernels.gemm(numeric, a, b, device=device)
    else:
        c = kernels.spmm(numeric, a, b, threshold=f["threshold"], device=device)
    return Result(outputs={"C": c.cpu().numpy()}, cycles=None,
                  stats={"backend": "golden", "device": str(device or "cpu"), "wall_s": time.perf_counter() - wall})
