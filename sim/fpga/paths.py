"""Every slow path of a synthesized ECP5 netlist at once, estimated without place and route.

nextpnr names one worst path per clock and takes minutes for a component; fixing a design for a clock needs
the list of every register whose input arrives late. ``estimate(netlist)`` reads Yosys' mapped JSON netlist
(``write_json`` after ``synth_ecp5 -noflatten``) and, per module, propagates arrival times from the clocked
outputs (flip-flops, block RAMs, registered multipliers) through the LUTs, wide-function muxes and carry cells
to every flip-flop and block RAM input. Paths stop at module boundaries (an instance's outputs count as arriving
at 0), as in ``fpga timing``'s out-of-context runs.

The delays are nextpnr's ECP5 speed-6 figures as its timing reports show them, with one average for each routed
net (routing is most of a path on this part, and only placement knows it): a net is ``ROUTE`` ns, a LUT4 0.24,
a PFUMX / L6MUX21 0.17 (inside the slice), a carry cell 0.45 from a routed input and 0.07 per cell along the
chain, a flip-flop's clock-to-Q 0.52, a DP16KD's data 5.83 ns after the clock without its output register and
0.95 with it. An endpoint estimated at t ns limits the clock to about 1000 / t MHz; checked against nextpnr on
whole components (``tests/test_fpga_synth.py``) the worst estimate falls within a third of the routed one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROUTE = 0.95                 # one routed net, on average
CLK_TO_Q = 0.52
LUT = 0.24
WIDE_MUX = 0.17              # PFUMX / L6MUX21 after the LUTs of their slice
CARRY_IN = 0.45              # a carry cell's sum or carry from a routed input
CARRY_CHAIN = 0.07           # CIN -> COUT, cell to cell
CARRY_SUM = 0.44             # CIN -> S
RAM_OUT = {"NOREG": 5.83, "OUTREG": 0.95}
MULT_OUT = 0.6               # a MULT18X18D with its output register
MULT_THROUGH = 3.5           # ... without it: inputs to outputs
RAM16_READ = 1.0             # TRELLIS_DPR16X4: read address to data

#: what a path's cells are written as in ``Path.cells`` (from its start to its end)
LETTER = {"TRELLIS_FF": "F", "LUT4": "L", "PFUMX": "m", "L6MUX21": "M", "CCU2C": "c", "DP16KD": "R",
          "MULT18X18D": "X", "TRELLIS_DPR16X4": "D"}
_CELL_SUFFIX = re.compile(r"_(TRELLIS_FF|LUT4|PFUMX|L6MUX21|CCU2C|MULT18X18D|DO[AB]\d+)(_.*)?$")


@dataclass
class SlowPath:
    ns: float                # estimated arrival at the endpoint, setup included
    end: str                 # the endpoint's register (or block RAM) and pin
    start: str               # the net the path starts from
    cells: str               # one letter per cell, start to end (``LETTER``); "?" a module input


@dataclass
class ModulePaths:
    module: str
    endpoints: int
    over: dict[float, int]                      # ns -> endpoints later than that
    worst: list[SlowPath] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"module": self.module, "endpoints": self.endpoints,
                "over_ns": {f"{k:g}": v for k, v in self.over.items()},
                "worst": [vars(p) for p in self.worst]}


def estimate(netlist: Path, *, top: int = 20, thresholds: tuple[float, ...] = (8.0, 10.0)) -> list[ModulePaths]:
    """Per module with registers: how many endpoints arrive later than each threshold, and the ``top`` latest
    ones, one per register (a bus's bits are one register)."""
    modules = json.loads(Path(netlist).read_text())["modules"]
    out = []
    for name, module in modules.items():
        if name.startswith("$__") or not any(c["type"] == "TRELLIS_FF" for c in module["cells"].values()):
            continue
        out.append(_module_paths(name, module, top, thresholds))
    return out


def _module_paths(name: str, module: dict, top: int, thresholds: tuple[float, ...]) -> ModulePaths:
    cells = module["cells"]
    driver = {}                                   # net bit -> (cell, output pin)
    for cell_name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"].get(pin) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = (cell_name, pin)
    arrival: dict[int, float] = {}
    came_from: dict[int, int | None] = {}

    def arrive(bit) -> float:
        """When ``bit`` settles, and (in came_from) the input it waits for; iterative, the netlists are deep."""
        if not isinstance(bit, int):
            return 0.0
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in arrival:
                stack.pop()
                continue
            if b not in driver:
                arrival[b], came_from[b] = 0.0, None
                stack.pop()
                continue
            inputs = _inputs(cells[driver[b][0]], driver[b][1])
            pending = [x for x, _ in inputs if isinstance(x, int) and x not in arrival and x not in stack]
            if pending:
                stack.extend(pending)
                continue
            cell = cells[driver[b][0]]
            best, src = _launch(cell, driver[b][1]), None
            for x, extra in inputs:
                t = arrival.get(x, 0.0) if isinstance(x, int) else 0.0
                if t + extra > best:
                    best, src = t + extra, x
            arrival[b], came_from[b] = best, src
            stack.pop()
        return arrival[bit]

    ends = []
    for cell_name, cell in cells.items():
        if cell["type"] in ("TRELLIS_FF", "DP16KD"):
            for pin, bits in cell["connections"].items():
                if cell["port_directions"][pin] != "input" or pin.startswith("CLK"):
                    continue
                if cell["type"] == "TRELLIS_FF" and pin not in ("DI", "CE", "LSR"):
                    continue
                for bit in bits:
                    if isinstance(bit, int):
                        ends.append((arrive(bit) + ROUTE, cell_name, pin, bit))
    ends.sort(key=lambda e: -e[0])
    names = _net_names(module)
    worst, seen = [], set()
    for ns, cell_name, pin, bit in ends:
        register = _CELL_SUFFIX.sub("", cell_name)
        if register in seen:
            continue
        seen.add(register)
        chain, letters, b = [], [], bit
        while b is not None:
            chain.append(b)
            letters.append(LETTER.get(cells[driver[b][0]]["type"], "?") if b in driver else "?")
            b = came_from.get(b)
        first = chain[-1]
        start = _CELL_SUFFIX.sub("", driver[first][0]) if first in driver else names.get(first, str(first))
        worst.append(SlowPath(round(ns, 2), f"{register}.{pin}", start, "".join(reversed(letters))))
        if len(worst) >= top:
            break
    return ModulePaths(name, len(ends), {t: sum(e[0] > t for e in ends) for t in thresholds}, worst)


def _launch(cell: dict, pin: str) -> float:
    """When a clocked output changes after the clock (0 for logic)."""
    kind, par = cell["type"], cell.get("parameters", {})
    if kind == "TRELLIS_FF":
        return CLK_TO_Q
    if kind == "DP16KD":
        return RAM_OUT.get(par.get("REGMODE_A" if pin.startswith("DOA") else "REGMODE_B", "NOREG"), RAM_OUT["NOREG"])
    if kind == "MULT18X18D" and par.get("REG_OUTPUT_CLK", "NONE") != "NONE":
        return MULT_OUT
    return 0.0


def _inputs(cell: dict, pin: str) -> list[tuple[object, float]]:
    """The inputs an output of ``cell`` waits for, each with the delay from it (routing included)."""
    kind, conn = cell["type"], cell["connections"]

    def bits(*pins, extra):
        return [(b, extra) for p in pins for b in conn.get(p, [])]
    if kind == "LUT4":
        return bits("A", "B", "C", "D", extra=ROUTE + LUT)
    if kind == "PFUMX":
        return bits("ALUT", "BLUT", extra=WIDE_MUX) + bits("C0", extra=ROUTE + WIDE_MUX)
    if kind == "L6MUX21":
        return bits("D0", "D1", extra=WIDE_MUX) + bits("SD", extra=ROUTE + WIDE_MUX)
    if kind == "CCU2C":
        routed = ("A0", "B0", "C0", "D0") + (("A1", "B1", "C1", "D1") if pin != "S0" else ())
        return bits("CIN", extra=CARRY_CHAIN if pin == "COUT" else CARRY_SUM) + bits(*routed, extra=ROUTE + CARRY_IN)
    if kind == "MULT18X18D" and cell.get("parameters", {}).get("REG_OUTPUT_CLK", "NONE") == "NONE":
        return bits(*[p for p in conn if p[0] in "AB" and p[1:].isdigit()], extra=ROUTE + MULT_THROUGH)
    if kind == "TRELLIS_DPR16X4":
        return bits(*[p for p in conn if p.startswith("RAD")], extra=ROUTE + RAM16_READ)
    return []                                     # clocked cells and module instances start paths


def _net_names(module: dict) -> dict[int, str]:
    """A readable name per net bit: the one with the fewest generated parts."""
    names: dict[int, str] = {}
    for net, info in module["netnames"].items():
        for i, bit in enumerate(info["bits"]):
            if isinstance(bit, int):
                label = net if len(info["bits"]) == 1 else f"{net}[{i}]"
                if bit not in names or label.count("$") < names[bit].count("$"):
                    names[bit] = label
    return names
