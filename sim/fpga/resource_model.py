"""FPGA resources of a config without running Yosys: a fitted model per component, read by sweeps as their
FPGA-area objective and constraint.

Every instance of a hierarchical synthesis (``sim.fpga.yosys``) belongs to one component kind (``kind_of``: the
row unit, its MAC lanes, the scratchpad, a TLB, the scheduler...). For each kind and each resource (LUT, FF,
DSP, RAM) the model is a non-negative linear combination of a few features of the config (``FEATURES``: lanes,
scan width, TLB entries, the block RAMs a memory of that shape needs...), fitted by least squares to the counts
of a grid of synthesized configs (``sim/fpga/characterize.py`` writes them to ``data/fpga/``). A config's
prediction is the sum over its instances (``instances``: how many of each kind the chip holds). The fit's error
is stored with it (``error``: the largest relative error over the grid, per kind and resource) and the chip
total's error is checked against real synthesis by the tests.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwgen.rtl.block_ram import ECP5_WIDTHS
from hwgen.spec.config import HwConfig
from sim.fpga.parts import KINDS

DATA = Path(__file__).resolve().parents[2] / "data" / "fpga"

# block RAM shapes (depth, width) a memory is tiled with, per family: ECP5 DP16KD (simple dual port up to 36
# bits wide), Xilinx RAMB36 (up to 72 wide in simple dual port), iCE40 SB_RAM40_4K
RAM_SHAPES = {"ecp5": [(words, width) for width, words in ECP5_WIDTHS],
              "xilinx": [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)],
              "ice40": [(2048, 2), (1024, 4), (512, 8), (256, 16)]}


def block_rams(family: str, depth: int, width: int, copies: int = 1) -> int:
    """Block RAMs a ``depth`` x ``width`` memory takes (the cheapest tiling), times ``copies``."""
    return copies * min(math.ceil(depth / d) * math.ceil(width / w) for d, w in RAM_SHAPES[family])


def _log2(x: int) -> int:
    return max(1, x).bit_length() - 1


def _l3_rams(c: HwConfig, family: str) -> int:
    """Block RAMs of the L3's tag and data RAM modules, with the shapes the generator writes (one set of
    ``l3.banks`` per slice, a slice per HBM port)."""
    from hwgen.rtl.memory.l3_cache import ram_shapes
    return sum(block_rams(family, shape.depth, shape.width, c.l3.banks * c.memory.ports) for shape in ram_shapes(c))


#: kind -> feature name -> f(config, family); the constant "one" lets every fit have an intercept
FEATURES: dict[str, dict[str, Callable[[HwConfig, str], float]]] = {
    "mac_lanes": {"one": lambda c, f: 1, "lanes": lambda c, f: c.engine.lanes,
                  "acc_bits_lanes": lambda c, f: c.engine.lanes * c.engine.acc_bits},
    "zero_compactor": {"one": lambda c, f: 1, "scan": lambda c, f: c.engine.scan_bytes,
                       "scan_log": lambda c, f: c.engine.scan_bytes * _log2(c.engine.scan_bytes)},
    "row_unit": {"one": lambda c, f: 1, "scan": lambda c, f: c.engine.scan_bytes,
                 "lanes": lambda c, f: c.engine.lanes,
                 "scan_log": lambda c, f: c.engine.scan_bytes * _log2(c.engine.scan_bytes)},
    "scratchpad": {"one": lambda c, f: 1,
                   "port_bits": lambda c, f: c.l1_read_ports * c.line_bytes * 8 * (c.l1.banks > 1),
                   "port_bits_all": lambda c, f: c.l1_read_ports * c.line_bytes * 8,
                   "rams": lambda c, f: block_rams(f, c.lines_per_bank, c.line_bytes * 8,
                                                   c.l1_read_ports * c.l1.banks)},
    "result_writer": {"one": lambda c, f: 1, "lanes": lambda c, f: c.engine.lanes,
                      "scan": lambda c, f: c.engine.scan_bytes},
    "dma_load": {"one": lambda c, f: 1, "beat_bits": lambda c, f: c.line_bytes * 8},
    "dma_store": {"one": lambda c, f: 1, "beat_bits": lambda c, f: c.line_bytes * 8},
    "tlb": {"one": lambda c, f: 1, "entries": lambda c, f: c.memory.tlb_entries},
    "topk_path": {"one": lambda c, f: 1, "k": lambda c, f: c.attention.topk_max,
                  "lanes": lambda c, f: c.engine.lanes},
    "topk_softmax": {"one": lambda c, f: 1, "k": lambda c, f: c.attention.topk_max},
    "engine": {"one": lambda c, f: 1, "rows": lambda c, f: c.engine.rows,
               "out_bits": lambda c, f: c.out_line_bits,
               "rams": lambda c, f: block_rams(f, c.out_lines, c.out_line_bits, 2)},
    "asa": {"one": lambda c, f: 1, "window": lambda c, f: c.scheduler.window,
            "window_engines": lambda c, f: c.scheduler.window * c.scheduler.engines,
            "rams": lambda c, f: (block_rams(f, c.scheduler.tasks, 64) + block_rams(f, c.scheduler.successors, 16)
                                  + block_rams(f, c.scheduler.descriptors, 256))},
    "l3_cache": {"one": lambda c, f: 1, "ways": lambda c, f: c.l3.ways * c.l3.banks,
                 "mshrs": lambda c, f: c.l3.mshrs},
    "l3_ram": {"one": lambda c, f: 1, "rams": lambda c, f: _l3_rams(c, f)},
    "chip": {"one": lambda c, f: 1, "engines": lambda c, f: c.scheduler.engines,
             "ports": lambda c, f: c.memory.ports},
}
COMPONENTS = tuple(FEATURES)


_KINDS_BY_NAME = {"unit": "row_unit", "mac": "mac_lanes", "compactor": "zero_compactor", "l1": "scratchpad",
                  "writer": "result_writer", "load": "dma_load", "store": "dma_store", "load_tlb": "tlb",
                  "store_tlb": "tlb", "topk": "topk_path", "engine": "engine", "asa": "asa", "l3": "l3_cache",
                  "l3_": "l3_cache"}


def kind_of(path: str, module: str) -> str:
    """The component kind of a synthesized instance: its own name's, else its nearest ancestor's (the L1's
    memory copies belong to the scratchpad, the L3's FIFOs to the L3); what is in no component is "chip"."""
    if module.startswith(("l3_data_ram", "l3_tag_ram")):
        return "l3_ram"
    names = [part.split("[")[0] for part in path.split(".")]
    for depth in range(len(names) - 1, 0, -1):
        name = names[depth]
        if name == "unit" and names[depth - 1] == "topk":
            return "topk_softmax"
        kind = _KINDS_BY_NAME.get(name, _KINDS_BY_NAME.get(name.rstrip("0123456789")))   # l1 and l3 end in digits
        if kind is not None:
            return kind
    return "chip"


def instances(c: HwConfig) -> dict[str, int]:
    """How many instances of each kind the chip top holds."""
    E, R = c.scheduler.engines, c.engine.rows
    count = {"chip": 1, "asa": 1, "engine": E, "scratchpad": E, "result_writer": E, "dma_load": E,
             "dma_store": E, "tlb": 2 * E, "topk_path": E, "topk_softmax": E, "row_unit": E * R,
             "mac_lanes": E * R, "zero_compactor": E * R}
    if c.l3.enabled:
        count.update(l3_cache=1, l3_ram=1)
    return count


def features(kind: str, c: HwConfig, family: str) -> list[float]:
    return [float(f(c, family)) for f in FEATURES[kind].values()]


class ResourceModel:
    """Fitted coefficients per (kind, resource) for one family, with the fit's largest relative error."""

    def __init__(self, family: str, coef: dict[str, dict[str, list[float]]], error: dict[str, dict[str, float]],
                 points: int, chip_error: dict[str, float] | None = None, checked: dict | None = None):
        self.family, self.coef, self.error, self.points = family, coef, error, points
        #: the stated error of ``predict``: the largest relative error of a chip total over the grid and the
        #: presets (which the fit did not see), per resource
        self.chip_error = chip_error or dict.fromkeys(KINDS, 0.0)
        self.checked = checked or {}           # config name -> {measured, predicted}
        self.failed: dict[str, str] = {}       # grid points whose synthesis failed -> why

    def component(self, kind: str, c: HwConfig) -> dict[str, float]:
        x = features(kind, c, self.family)
        return {r: max(0.0, float(np.dot(self.coef[kind][r], x))) for r in KINDS}

    def predict(self, c: HwConfig) -> dict[str, float]:
        """The chip top's resources: LUT, FF, DSP, RAM."""
        total = dict.fromkeys(KINDS, 0.0)
        for kind, n in instances(c).items():
            for r, v in self.component(kind, c).items():
                total[r] += n * v
        return total

    def to_json(self) -> dict:
        return {"family": self.family, "points": self.points, "features": {k: list(v) for k, v in FEATURES.items()},
                "coef": self.coef, "max_relative_error": self.error, "chip_error": self.chip_error,
                "checked": self.checked, "failed": self.failed}

    def state_error(self, measured: dict[str, dict[str, float]], configs: dict[str, HwConfig],
                    margin: float = 0.02) -> None:
        """Set ``chip_error`` from measured chip totals: the largest relative error per resource, plus ``margin``
        (Yosys' counts move by a percent or so between runs of ABC)."""
        self.checked = {name: {"measured": measured[name], "predicted": self.predict(configs[name])}
                        for name in measured}
        for k in KINDS:
            worst = max(abs(v["measured"][k] - v["predicted"][k]) / max(v["measured"][k], 1.0)
                        for v in self.checked.values())
            self.chip_error[k] = round(margin + worst, 4)

    @classmethod
    def load(cls, family: str = "ecp5", folder: Path = DATA) -> ResourceModel:
        path = folder / f"resource_model_{family}.json"
        if not path.exists():
            raise FileNotFoundError(f"no resource model for {family}: {path} is missing (make fpga-resources "
                                    "measures and fits it)")
        d = json.loads(path.read_text())
        return cls(d["family"], d["coef"], d["max_relative_error"], d["points"], d["chip_error"], d["checked"])


def fit(rows: list[dict], family: str) -> ResourceModel:
    """Fit every (kind, resource) from measured rows ``{config: HwConfig, kind, lut, ff, dsp, ram}`` (one row per
    kind and config, the per-instance count) by non-negative least squares."""
    from scipy.optimize import nnls
    coef: dict[str, dict[str, list[float]]] = {}
    error: dict[str, dict[str, float]] = {}
    configs = {id(r["config"]) for r in rows}
    for kind in COMPONENTS:
        mine = [r for r in rows if r["kind"] == kind]
        coef[kind], error[kind] = {}, {}
        if not mine:
            coef[kind] = {r: [0.0] * len(FEATURES[kind]) for r in KINDS}
            error[kind] = dict.fromkeys(KINDS, 0.0)
            continue
        X = np.array([features(kind, r["config"], family) for r in mine])
        for res in KINDS:
            y = np.array([float(r[res]) for r in mine])
            scale = np.maximum(np.abs(X).max(axis=0), 1e-9)
            w, _ = nnls(X / scale, y)
            w = w / scale
            coef[kind][res] = [round(float(v), 6) for v in w]
            pred = X @ w
            rel = np.abs(pred - y) / np.maximum(y, 1.0)
            error[kind][res] = round(float(rel.max()), 4)
    return ResourceModel(family, coef, error, len(configs))


def write_rows(rows: list[dict], path: Path) -> None:
    """The measured table: one line per (config, kind) with the config's digest and its features."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["config", "digest", "kind", *KINDS, "features"])
        for r in rows:
            c = r["config"]
            feats = dict(zip(FEATURES[r["kind"]], features(r["kind"], c, r["family"]), strict=True))
            w.writerow([c.name, c.digest(), r["kind"], *(f"{r[k]:g}" for k in KINDS), json.dumps(feats)])
