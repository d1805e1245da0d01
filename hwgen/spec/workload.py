"""Workload: a small graph of kernels over named tensors, the input of the DAG compiler
(``hwgen/compiler/dag.py``) and of the golden model (``golden/graph.py``).

A kernel computes ``out = A @ B`` (``spmm``: zeros of A skipped, ``gemm``: dense) over int8 tensors. With
``requant`` (multiplier, shift) its output is int8 (``golden.numerics.requantize``) and later kernels may read
it as their A or B; without, it is int32 and final. A kernel may be a gate (``Gate``: its int32 output sets
predicate bits) and may run only ``when`` a gate's bit is set (otherwise its tasks are skipped and its
output stays zero). Tensors are 2-D; the inputs are given (int8), every other tensor is produced by exactly
one kernel. ``Workload.check`` refuses cycles, dangling or unused tensors, shape and type mismatches.

In YAML (``load``)::

    name: two_branches
    tensors:                              # inputs: a generated one or a .npy file (relative to the YAML)
      x:  {shape: [32, 64], density: 0.2, seed: 1}
      w:  {file: w.npy}
    kernels:
      - {name: l1, op: spmm, a: x, b: w, out: h, requant: [16384, 20]}
      - {name: g,  op: gemm, a: h, b: wg, out: gv, gate: {op: threshold, threshold: 0}}
      - {name: l2, op: spmm, a: h, b: w2, out: y, when: {gate: g, column: 1}}
    outputs: [y]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwgen.spec.formats import OperandError
from hwgen.spec.isa import THRESHOLD_MAX
from hwgen.spec.program import A_FORMATS
from hwgen.spec.task_table import TASK

OPS = ("spmm", "gemm")
GATE_OPS = ("threshold", "topk")


class WorkloadError(ValueError):
    """A workload that cannot be compiled; the message names the kernel or tensor, the value and what is
    allowed."""


def _int(where: str, value: Any, lo: int, hi: int, optional: bool = False) -> int | None:
    """``value`` if it is an integer in lo..hi (not a bool, not a string that looks like one)."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise WorkloadError(f"{where}: {value!r} is not allowed (allowed: an integer {lo}..{hi}"
                            f"{', or leave it out' if optional else ''})")
    return int(value)


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise WorkloadError(f"{where}: {value!r} is not allowed (allowed: a non-empty name)")
    return value


@dataclass(frozen=True)
class Gate:
    """What a gate kernel's int32 output turns into (see ``hwgen/spec/task_table.py`` for the exact rule)."""
    op: str                       # "threshold": bit c = any row's value in column c > threshold
    threshold: int = 0            # "topk": per row, the k largest columns, each taking <= capacity rows;
    k: int = 1                    #   bit (c, tile) = column c took a row of that tile of tile_rows rows
    capacity: int | None = None   # None: every row
    tile_rows: int | None = None  # None: one tile of all rows

    def __post_init__(self):
        if self.op not in GATE_OPS:
            raise WorkloadError(f"gate.op: {self.op!r} is not allowed (allowed: {', '.join(GATE_OPS)})")
        _int("gate.threshold", self.threshold, -(1 << 31), (1 << 31) - 1)
        _int("gate.k", self.k, 1, (1 << TASK.bits("gate_k")) - 1)
        for name in ("capacity", "tile_rows"):
            _int(f"gate.{name}", getattr(self, name), 1, (1 << 16) - 1, optional=True)

    def bits(self, rows: int, cols: int) -> int:
        """Predicate bits the gate writes for a (rows x cols) output."""
        return cols if self.op == "threshold" else cols * self.tiles(rows)

    def tiles(self, rows: int) -> int:
        return 1 if self.op == "threshold" else -(-rows // (self.tile_rows or rows))

    def bit(self, column: int, tile: int, rows: int) -> int:
        """Index (from the gate's first bit) of column's bit for row tile ``tile`` of a gate output of ``rows``
        rows (threshold: one bit per column)."""
        return column if self.op == "threshold" else column * self.tiles(rows) + tile


@dataclass(frozen=True)
class Kernel:
    name: str
    op: str
    a: str
    b: str
    out: str
    a_format: str = "dense"
    threshold: int | None = None
    requant: tuple[int, int] | None = None   # (multiplier, shift): an int8 output
    gate: Gate | None = None
    when: tuple[str, int] | None = None      # (gate kernel, column): run only if that predicate is set
    tile_rows: int | None = None             # rows of A per task (default: as many as fit one engine's L1)

    def __post_init__(self):
        for role in ("name", "a", "b", "out"):
            _name(role, getattr(self, role))
        _int("threshold", self.threshold, 0, THRESHOLD_MAX, optional=True)
        _int("tile_rows", self.tile_rows, 1, (1 << 16) - 1, optional=True)
        if self.when is not None:
            if not (isinstance(self.when, tuple) and len(self.when) == 2):
                raise WorkloadError(f"when: {self.when!r} is not allowed (allowed: (gate kernel, column))")
            _name("when.gate", self.when[0])
            _int("when.column", self.when[1], 0, (1 << 16) - 1)
        if self.requant is not None and not (isinstance(self.requant, tuple) and len(self.requant) == 2
                                             and all(isinstance(v, int) and not isinstance(v, bool)
                                                     for v in self.requant)):
            raise WorkloadError(f"requant: {self.requant!r} is not allowed (allowed: [multiplier, shift], integers)")


@dataclass(frozen=True)
class Workload:
    name: str
    tensors: dict[str, np.ndarray]            # the inputs, int8 2-D
    kernels: tuple[Kernel, ...]
    outputs: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)   # what a generator wants to remember (densities...)

    def producer(self) -> dict[str, Kernel]:
        return {k.out: k for k in self.kernels}

    def shapes(self) -> dict[str, tuple[tuple[int, int], str]]:
        """Every tensor -> (shape, "int8" | "int32"), in kernel order (call ``check`` first)."""
        out = {name: (t.shape, "int8") for name, t in self.tensors.items()}
        for k in self.order():
            (m, _), (_, n) = out[k.a][0], out[k.b][0]
            out[k.out] = ((m, n), "int8" if k.requant else "int32")
        return out

    def order(self) -> list[Kernel]:
        """Kernels in a topological order (stable: the written order where dependencies allow)."""
        made = self.producer()
        names = {k.name for k in self.kernels}
        # an unknown `when` gate is no dependency here: check() names it (it used to read as a cycle)
        deps = {k.name: {made[t].name for t in (k.a, k.b) if t in made}
                | ({k.when[0]} if k.when and k.when[0] in names else set())
                for k in self.kernels}
        done, order, pending = set(), [], list(self.kernels)
        while pending:
            ready = [k for k in pending if deps[k.name] <= done]
            if not ready:
                raise WorkloadError(f"kernels: the graph has a cycle through {_cycle(pending, deps)} (allowed: a "
                                    "DAG: no kernel may depend on its own output)")
            order.append(ready[0])
            done.add(ready[0].name)
            pending.remove(ready[0])
        return order

    def check(self) -> Workload:
        names = [k.name for k in self.kernels]
        for n in names:
            if names.count(n) > 1:
                raise WorkloadError(f"kernels: name {n!r} is used twice (allowed: unique names)")
        if not self.kernels:
            raise WorkloadError("kernels: none (allowed: at least one kernel)")
        for name, t in self.tensors.items():
            if not isinstance(t, np.ndarray) or t.dtype != np.int8 or t.ndim != 2:
                what = f"{t.dtype} {t.ndim}-D" if isinstance(t, np.ndarray) else type(t).__name__
                raise WorkloadError(f"tensors.{name}: {what} is not allowed (allowed: a 2-D int8 array)")
        outs = [k.out for k in self.kernels]
        for k in self.kernels:
            if outs.count(k.out) > 1 or k.out in self.tensors:
                raise WorkloadError(f"kernels.{k.name}.out: tensor {k.out!r} is written twice (allowed: each "
                                    "tensor produced by one kernel, inputs by none)")
            if k.op not in OPS:
                raise WorkloadError(f"kernels.{k.name}.op: {k.op!r} is not allowed (allowed: {', '.join(OPS)})")
            if k.a_format not in A_FORMATS:
                raise WorkloadError(f"kernels.{k.name}.a_format: {k.a_format!r} is not allowed (allowed: "
                                    f"{', '.join(A_FORMATS)})")
            for role in ("a", "b"):
                t = getattr(k, role)
                if t not in self.tensors and t not in outs:
                    raise WorkloadError(f"kernels.{k.name}.{role}: tensor {t!r} is dangling: neither an input "
                                        f"nor any kernel's output (inputs: {', '.join(self.tensors) or 'none'})")
        used = {t for k in self.kernels for t in (k.a, k.b)}
        for name in self.tensors:
            if name not in used:
                raise WorkloadError(f"tensors.{name}: dangling: no kernel reads it (allowed: inputs that a "
                                    "kernel reads)")
        made = self.producer()
        for name in self.outputs:
            if name not in made:
                raise WorkloadError(f"outputs: {name!r} is not a kernel's output (allowed: "
                                    f"{', '.join(made)})")
        kinds = self.shapes()   # orders the graph: refuses cycles
        for k in self.kernels:
            (m, ka), ta = kinds[k.a]
            (kb, n), tb = kinds[k.b]
            if ka != kb:
                raise WorkloadError(f"kernels.{k.name}: A is {m}x{ka} ({k.a}) and B is {kb}x{n} ({k.b}): "
                                    "A's columns must equal B's rows")
            for role, t, kind in (("a", k.a, ta), ("b", k.b, tb)):
                if kind != "int8":
                    raise WorkloadError(f"kernels.{k.name}.{role}: tensor {t!r} is int32 (allowed: int8; give "
                                        f"its kernel {made[t].name!r} a requant)")
            if k.a_format != "dense" and k.a in made:
                raise WorkloadError(f"kernels.{k.name}.a_format: {k.a_format!r} is not allowed for {k.a!r}, "
                                    "which a kernel produces at run time (allowed: dense; zeros are found "
                                    "from the values)")
            if k.op == "gemm" and k.a_format != "dense":
                raise WorkloadError(f"kernels.{k.name}.a_format: {k.a_format!r} is not allowed for gemm "
                                    "(allowed: dense)")
            if k.gate and k.requant:
                raise WorkloadError(f"kernels.{k.name}.requant: a gate reads its int32 output (allowed: no "
                                    "requant on a gate)")
            if k.when:
                gate, column = k.when
                g = next((x for x in self.kernels if x.name == gate), None)
                if g is None or g.gate is None:
                    raise WorkloadError(f"kernels.{k.name}.when: {gate!r} is not a gate kernel (allowed: "
                                        f"{', '.join(x.name for x in self.kernels if x.gate) or 'none'})")
                cols = kinds[g.out][0][1]
                if not 0 <= column < cols:
                    raise WorkloadError(f"kernels.{k.name}.when.column: {column} is not allowed (allowed: "
                                        f"0..{cols - 1}, the columns of {g.out!r})")
                gate_rows, rows = kinds[g.out][0][0], kinds[k.out][0][0]
                if g.gate.op == "topk" and g.gate.tile_rows is not None and rows != gate_rows:
                    # bit (column, tile) belongs to the gate's row tiles: other rows would read other bits
                    raise WorkloadError(f"kernels.{k.name}.when: {rows} rows are not allowed (allowed: "
                                        f"{gate_rows}, the rows of gate {gate!r}'s output {g.out!r})")
                if g.gate.op == "topk" and g.gate.tile_rows is not None and k.tile_rows != g.gate.tile_rows:
                    raise WorkloadError(f"kernels.{k.name}.tile_rows: {k.tile_rows} is not allowed (allowed: "
                                        f"{g.gate.tile_rows}, the token tile of gate {gate!r})")
        return self


def _cycle(pending: list[Kernel], deps: dict[str, set[str]]) -> str:
    """One cycle among the pending kernels, as 'a -> b -> a'."""
    names = {k.name for k in pending}
    path, at = [], pending[0].name
    while at not in path:
        path.append(at)
        at = sorted(deps[at] & names)[0]
    return " -> ".join(path[path.index(at):] + [at])


# ---- generated tensors ----

def nonzero_int8(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform int8 values without 0 (a 0 drawn becomes 1)."""
    x = rng.integers(-128, 128, size=shape, dtype=np.int16)
    x[x == 0] = 1
    return x.astype(np.int8)


def sparse_int8(rows: int, cols: int, density: float, seed: int | np.random.Generator) -> np.ndarray:
    """What a ``{shape, density, seed}`` tensor of a workload file is: exactly round(density * rows * cols)
    nonzeros at random places, the full int8 range. ``seed`` may be a generator to draw more from after it
    (``golden.generators.operands.random_operands`` draws B next)."""
    if not 0.0 <= density <= 1.0:
        raise OperandError(f"density: {density} is not allowed (allowed: 0.0..1.0)")
    for name, v in (("rows", rows), ("cols", cols)):
        if not 1 <= v < 1 << 16:
            raise OperandError(f"{name}: {v} is not allowed (allowed: 1..65535)")
    rng = np.random.default_rng(seed)
    keep = np.zeros(rows * cols, dtype=bool)
    keep[rng.permutation(rows * cols)[:round(density * rows * cols)]] = True
    return np.where(keep.reshape(rows, cols), nonzero_int8(rng, (rows, cols)), 0).astype(np.int8)


# ---- YAML ----
_KERNEL_KEYS = {"name", "op", "a", "b", "out", "a_format", "threshold", "requant", "gate", "when", "tile_rows"}
_GATE_KEYS = {"op", "threshold", "k", "capacity", "tile_rows"}


def _keys(where: str, d: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(d, dict):
        raise WorkloadError(f"{where}: {type(d).__name__} is not allowed (allowed: a mapping)")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise WorkloadError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(d))
    if missing:
        raise WorkloadError(f"{where}.{missing[0]}: missing (required: {', '.join(sorted(required))})")
    return d


def _tensor(where: str, spec: Any, folder: Path) -> np.ndarray:
    spec = _keys(where, spec, {"shape", "density", "seed", "file"})
    if "file" in spec:
        if set(spec) != {"file"}:
            raise WorkloadError(f"{where}: 'file' takes no other key (allowed: file, or shape/density/seed)")
        name = _name(f"{where}.file", spec["file"])
        try:
            t = np.load(folder / name, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise WorkloadError(f"{where}.file: cannot read {str(folder / name)!r} as a .npy array "
                                f"({getattr(e, 'strerror', None) or e})") from None
        if t.dtype != np.int8:
            raise WorkloadError(f"{where}.file: dtype {t.dtype} is not allowed (allowed: int8)")
        return t
    _keys(where, spec, {"shape", "density", "seed"}, {"shape"})
    shape = spec["shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                and 1 <= v < 1 << 16 for v in shape)):
        raise WorkloadError(f"{where}.shape: {shape!r} is not allowed (allowed: [rows, cols], each 1..65535)")
    density = spec.get("density", 1.0)
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 <= density <= 1.0:
        raise WorkloadError(f"{where}.density: {density!r} is not allowed (allowed: a number 0.0..1.0)")
    seed = _int(f"{where}.seed", spec.get("seed", 0), 0, (1 << 63) - 1)
    return sparse_int8(shape[0], shape[1], float(density), seed)


def _part(where: str, make, **kwargs):
    """``make(**kwargs)`` with its error named by where it sits in the file."""
    try:
        return make(**kwargs)
    except WorkloadError as e:
        raise WorkloadError(f"{where}.{e}") from None


def from_dict(data: Any, folder: Path = Path(".")) -> Workload:
    """A workload from its YAML form (see the module docstring); every error names the key."""
    data = _keys("workload", data, {"name", "tensors", "kernels", "outputs"}, {"name", "tensors", "kernels"})
    name = _name("name", data["name"])
    tensors = {str(n): _tensor(f"tensors.{n}", s, folder) for n, s in _keys("tensors", data["tensors"],
                                                                            set(data["tensors"] or {})).items()}
    if not isinstance(data["kernels"], list):
        raise WorkloadError(f"kernels: {type(data['kernels']).__name__} is not allowed (allowed: a list of kernels)")
    kernels = []
    for i, kd in enumerate(data["kernels"]):
        kd = dict(_keys(f"kernels[{i}]", kd, _KERNEL_KEYS, {"name", "op", "a", "b", "out"}))
        where = f"kernels.{_name(f'kernels[{i}].name', kd['name'])}"
        if "gate" in kd:
            kd["gate"] = _part(where, Gate, **_keys(f"{where}.gate", kd["gate"], _GATE_KEYS, {"op"}))
        if "when" in kd:
            w = _keys(f"{where}.when", kd["when"], {"gate", "column"}, {"gate", "column"})
            kd["when"] = (w["gate"], w["column"])
        if "requant" in kd:
            r = kd["requant"]
            if not (isinstance(r, list) and len(r) == 2):
                raise WorkloadError(f"{where}.requant: {r!r} is not allowed (allowed: [multiplier, shift])")
            kd["requant"] = (r[0], r[1])
        kernels.append(_part(where, Kernel, **kd))
    outputs = data.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
        raise WorkloadError(f"outputs: {outputs!r} is not allowed (allowed: a list of tensor names)")
    made = [k.out for k in kernels]
    outputs = tuple(outputs or [t for t in made if not any(t in (k.a, k.b) for k in kernels)])
    return Workload(name, tensors, tuple(kernels), outputs).check()


def load(path: str | Path) -> Workload:
    """A workload from a YAML file (duplicate keys refused, as in configs); every error is a WorkloadError that
    names the file and the key."""
    from hwgen.spec.config import ConfigError, read_yaml
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise WorkloadError(f"{path}: cannot read the workload file ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = read_yaml(text, str(path))
    except ConfigError as e:
        raise WorkloadError("; ".join(e.problems)) from None
    if not data:
        raise WorkloadError(f"{path}: empty (allowed: a workload: name, tensors, kernels, outputs)")
    return from_dict(data, path.parent)
