"""The sweep file: what to vary, what to run, what to optimize. Checked whole before any point runs; every problem
is one line naming the field, the value and what is allowed (``SweepError``, exit 2 in the CLI).

.. code-block:: yaml

    name: l3_vs_engines
    base: default                 # a preset or a config YAML (relative to this file)
    strategy: grid                # grid | random | tpe | nsga2
    trials: 40                    # random, tpe, nsga2: points to run (grid: every combination)
    seed: 0
    axes:                         # any config field, by its dotted path
      scheduler.engines: [2, 4]
      engine.lanes: [8, 16]
      l3.bytes: {pow2: [1MiB, 128MiB]}          # the powers of two in the range
      clock.mhz: {low: 500, high: 1500, step: 250}
    workloads:                    # the workload library (golden/generators/library.py)
      - {kind: minilm, part: ffn1, rows: 512, sparsity: 0.75}
      - {kind: file, path: ../workloads/multimodal.yaml}
    objectives: [latency_s, energy_j]
    constraints: {fits: ulx3s, dsp: 100}        # a board the FPGA resource model must fit, or metric: its maximum

An axis is a list of values (any strategy), an integer or float range ``{low, high, step}`` (grid needs the
step; the others draw from the range) or ``{pow2: [low, high]}``. Sizes may be written ``64KiB``, ``1MiB``.
A value the field's type or bounds refuse is a bad file; a combination the config refuses (``lanes`` over
``scan_bytes``...) is an invalid point, recorded with its error and skipped.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from golden.generators.library import Entry
from hwgen.spec import config as hwconfig
from sim.sweep.metrics import BOARDS, METRICS, OBJECTIVES

STRATEGIES = ("grid", "random", "tpe", "nsga2")
_SIZE = re.compile(r"^(\d+)\s*(B|KiB|MiB|GiB)$")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
Scalar = int | float | str | bool


class SweepError(ValueError):
    """A sweep file that cannot run: one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def size(value: Any) -> Any:
    """``64KiB`` -> 65536; anything else unchanged."""
    m = _SIZE.match(value) if isinstance(value, str) else None
    return int(m.group(1)) * _UNITS[m.group(2)] if m else value


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    low: int | float
    high: int | float
    step: int | float | None = Field(None, gt=0)


class Pow2(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pow2: tuple[int | str, int | str]


class Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    base: str = "default"
    strategy: Literal[STRATEGIES] = "grid"
    trials: int | None = Field(None, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0)
    axes: dict[str, list[Scalar] | Range | Pow2] = Field(min_length=1)
    workloads: list[Entry] = Field(min_length=1)
    objectives: list[str] = Field(min_length=1)
    constraints: dict[str, float | str] = {}


class Axis:
    """One swept field: its dotted path, and its values (a list) or its range (for samplers)."""

    def __init__(self, path: str, values: list | None = None, low=None, high=None, step=None):
        self.path, self.values, self.low, self.high, self.step = path, values, low, high, step

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))

    def grid(self) -> list:
        if self.values is not None:
            return self.values
        n = int(round((self.high - self.low) / self.step)) + 1
        return [self.low + i * self.step if self.is_int else round(self.low + i * self.step, 12) for i in range(n)]

    def diff(self, value) -> dict[str, Any]:
        """``{"l3": {"bytes": value}}`` for path ``l3.bytes``."""
        out: dict[str, Any] = value
        for part in reversed(self.path.split(".")):
            out = {part: out}
        return out


class Plan:
    """A checked sweep: the base config, its axes, workloads, objectives and constraints."""

    def __init__(self, sweep: Sweep, folder: Path, base: hwconfig.HwConfig, axes: list[Axis]):
        self.sweep, self.folder, self.base, self.axes = sweep, folder, base, axes
        self.workloads = list(sweep.workloads)
        self.objectives = list(sweep.objectives)
        self.constraints = dict(sweep.constraints)

    @property
    def name(self) -> str:
        return self.sweep.name

    def grid_size(self) -> int:
        """Combinations of the axes' values (ranges without a step count as one: only a grid needs the count)."""
        n = 1
        for a in self.axes:
            n *= len(a.grid()) if a.values is not None or a.step is not None else 1
        return n

    def points(self) -> list[dict[str, Any]]:
        """The points of a grid or random sweep, in a fixed order: path -> value. Random points are distinct:
        ``trials`` of them, or every combination when there are fewer."""
        if self.sweep.strategy == "grid":
            return [dict(zip((a.path for a in self.axes), combo, strict=True))
                    for combo in itertools.product(*(a.grid() for a in self.axes))]
        import numpy as np
        rng = np.random.default_rng(self.sweep.seed)
        finite = all(a.values is not None or a.step is not None for a in self.axes)
        wanted = min(self.sweep.trials or 0, self.grid_size()) if finite else self.sweep.trials or 0
        out: dict[str, dict[str, Any]] = {}                 # distinct points, in the order first drawn
        while len(out) < wanted:
            point = {}
            for a in self.axes:
                if a.values is not None or a.step is not None:
                    choices = a.grid()
                    point[a.path] = choices[int(rng.integers(len(choices)))]
                else:
                    point[a.path] = float(rng.uniform(a.low, a.high))
            out.setdefault(json.dumps(point, sort_keys=True), point)
        return list(out.values())

    def config(self, point: dict[str, Any]) -> hwconfig.HwConfig:
        """The config of a point (``ConfigError`` if the combination is refused)."""
        diff: dict[str, Any] = {}
        for a in self.axes:
            diff = hwconfig.merge(diff, a.diff(point[a.path]))
        return hwconfig.changed(self.base, diff)

    def digest(self) -> str:
        """What the results folder belongs to: the sweep file's content, resolved."""
        text = json.dumps(self.sweep.model_dump(mode="json"), sort_keys=True) + self.base.digest()
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _field(path: str):
    """The pydantic field of a dotted config path, or the reason there is none."""
    model: Any = hwconfig.HwConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            where = ".".join(parts[:i]) or "the config"
            allowed = ", ".join(fields) if fields else "none (a value, not a section)"
            return None, f"axes.{path}: unknown field {part!r} in {where} (allowed: {allowed})"
        model = fields[part]
        if i < len(parts) - 1:
            model = model.annotation
    if hasattr(model.annotation, "model_fields"):
        return None, (f"axes.{path}: is a section, not a field (allowed: one of its fields, e.g. "
                      f"{path}.{next(iter(model.annotation.model_fields))})")
    if path == "name":
        return None, "axes.name: the config's name is not a hardware parameter (allowed: any other field)"
    return model, None


def _axis(path: str, spec, problems: list[str], strategy: str) -> Axis | None:
    field, why = _field(path)
    if why:
        problems.append(why)
        return None
    kind = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    check = TypeAdapter(kind, config=ConfigDict(strict=True))

    def checked(value):
        value = size(value)
        try:
            return check.validate_python(value)
        except ValidationError as e:
            msg = e.errors()[0]["msg"].removeprefix("Value error, ")
            problems.append(f"axes.{path}: {value!r} is not allowed ({msg})")
            return None

    if isinstance(spec, list):
        if not spec:
            problems.append(f"axes.{path}: empty list (allowed: one or more values)")
            return None
        values = [checked(v) for v in spec]
        if len(set(map(repr, values))) < len(values):
            problems.append(f"axes.{path}: {spec!r} repeats a value (allowed: distinct values)")
        return Axis(path, values)
    if isinstance(spec, Pow2):
        low, high = (size(v) for v in spec.pow2)
        if not all(isinstance(v, int) and v > 0 for v in (low, high)) or low > high:
            problems.append(f"axes.{path}: pow2 {list(spec.pow2)!r} is an empty range (allowed: [low, high], "
                            "positive integers, low <= high)")
            return None
        values = [1 << e for e in range((low - 1).bit_length(), high.bit_length()) if low <= 1 << e <= high]
        if not values:
            problems.append(f"axes.{path}: pow2 {list(spec.pow2)!r} holds no power of two (allowed: a range that "
                            "contains one)")
            return None
        return Axis(path, [checked(v) for v in values])
    low, high = checked(spec.low), checked(spec.high)
    if low is None or high is None:
        return None
    if low > high:
        problems.append(f"axes.{path}: empty range low {spec.low} > high {spec.high} (allowed: low <= high)")
        return None
    if spec.step is None and strategy == "grid":
        problems.append(f"axes.{path}: a range needs a step on a grid (allowed: {{low, high, step}} or a list)")
        return None
    if isinstance(low, int) and spec.step is not None and not isinstance(spec.step, int):
        problems.append(f"axes.{path}: step {spec.step!r} is not allowed for an integer field (allowed: an "
                        "integer step)")
        return None
    return Axis(path, None, low, high, spec.step)


def _format(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "list[", "Range", "Pow2")))
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (see the sweep file's fields in docs/sweeps.md)")
        elif e["type"] == "missing":
            lines.append(f"{loc}: missing (required)")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"{loc}.kind: {value.get('kind')!r} is not allowed ({msg.split('expected tags: ')[-1]} "
                         "are)" if isinstance(value, dict) else f"{loc}: {msg}")
        elif e["type"] == "union_tag_not_found":
            lines.append(f"{loc}: missing its kind (allowed: a mapping with kind: spmm, minilm, gnn, ...)")
        else:
            lines.append(f"{loc}: {value!r} is not allowed ({msg})")
    return list(dict.fromkeys(lines))


def load(path: str | Path) -> Plan:
    """Read and check a sweep file; ``SweepError`` lists every problem."""
    path = Path(path)
    if not path.is_file():
        raise SweepError([f"sweep: {str(path)!r} is not a file (allowed: a sweep YAML file)"])
    try:
        data = hwconfig.read_yaml(path.read_text(), str(path))
    except hwconfig.ConfigError as e:
        raise SweepError(e.problems) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError([f"sweep: cannot read {str(path)!r} ({getattr(e, 'strerror', None) or e})"]) from None
    if not data:
        raise SweepError([f"sweep: {str(path)!r} is empty (allowed: name, base, strategy, axes, workloads, "
                          "objectives, ...)"])
    folder = path.parent
    for w in data.get("workloads") or []:     # file workloads are relative to the sweep file
        if isinstance(w, dict) and w.get("kind") == "file" and isinstance(w.get("path"), str):
            w["path"] = str(folder / w["path"])
    try:
        sweep = Sweep.model_validate(data)
    except ValidationError as err:
        raise SweepError(_format(err)) from None
    problems: list[str] = []
    base = None
    try:
        base_path = folder / sweep.base
        base = hwconfig.load(base_path if base_path.suffix in (".yaml", ".yml") else sweep.base)
    except hwconfig.ConfigError as e:
        problems += [f"base: {line}" for line in e.problems]
    axes = [a for p, s in sweep.axes.items() if (a := _axis(p, s, problems, sweep.strategy)) is not None]
    if sweep.strategy != "grid" and sweep.trials is None:
        problems.append(f"trials: missing (required by strategy {sweep.strategy}: how many points to run)")
    if sweep.strategy == "grid" and sweep.trials is not None:
        problems.append("trials: not allowed with strategy grid (it runs every combination of the axes)")
    for name in sweep.objectives:
        if name not in OBJECTIVES:
            problems.append(f"objectives: {name!r} does not exist (allowed: {', '.join(OBJECTIVES)})")
    if len(set(sweep.objectives)) < len(sweep.objectives):
        problems.append(f"objectives: {sweep.objectives!r} repeats an objective (allowed: each once)")
    for key, value in sweep.constraints.items():
        if key == "fits":
            if value not in BOARDS:
                problems.append(f"constraints.fits: {value!r} is not allowed (allowed: {', '.join(BOARDS)})")
        elif key not in METRICS:
            problems.append(f"constraints.{key}: unknown metric (allowed: fits, {', '.join(METRICS)})")
        elif isinstance(value, str):
            problems.append(f"constraints.{key}: {value!r} is not allowed (allowed: the metric's largest value, "
                            "a number)")
    labels = [w.label() for w in sweep.workloads]
    for label in {x for x in labels if labels.count(x) > 1}:
        problems.append(f"workloads: two workloads are called {label!r} (allowed: distinct; give one a name:)")
    for w in sweep.workloads:
        if w.kind == "file":
            from hwgen.spec.workload import WorkloadError
            from hwgen.spec.workload import load as load_workload
            try:
                load_workload(w.path)
            except WorkloadError as e:
                problems.append(f"workloads.{w.label()}: {e}")
        if w.kind == "minilm":
            from golden.generators.minilm import ModelMissing, model_dir
            try:
                model_dir()
            except ModelMissing as e:
                problems.append(f"workloads.{w.label()}: {e}")
    if problems:
        raise SweepError(problems)
    return Plan(sweep, folder, base, axes)


__all__ = ["STRATEGIES", "Axis", "Plan", "Sweep", "SweepError", "load", "size"]
