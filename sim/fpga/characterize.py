"""Measure FPGA resources over a grid of configs and fit ``sim.fpga.resource_model`` to them.

``python -m sim.fpga.characterize [--family ecp5] [--out data/fpga]`` synthesizes the chip top of every config of
``GRID`` (hierarchically, ``sim.fpga.yosys``), splits each synthesis into component kinds, writes the table
(``resources_<family>.csv``), fits the model (``resource_model_<family>.json``) and prints the fit's error and
its error on the presets, which are not in the grid. Yosys is single-threaded, so the points are synthesized in
``--jobs`` processes at once (default: one per core); about 20 minutes on two cores (``make fpga-resources``).
The results are committed so that sweeps and tests read them without Yosys.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from hwgen.spec import config as hwconfig
from hwgen.spec.config import HwConfig
from sim.fpga.parts import KINDS
from sim.fpga.resource_model import DATA, ResourceModel, fit, instances, kind_of, write_rows
from sim.fpga.yosys import Synthesis, _resources, synthesize
from sim.rtl.errors import RtlError

#: the grid: differences from BASE, each varying what some component's size depends on
BASE = {"base": "ulx3s", "name": "grid", "scheduler": {"engines": 1}}
GRID = {
    "base": {},
    "rows1": {"engine": {"rows": 1}},
    "rows4": {"engine": {"rows": 4}},
    "lanes16": {"engine": {"lanes": 16}},
    "scan32": {"engine": {"scan_bytes": 32}, "l1": {"bytes": 8192}},
    "l1_16k_banks2": {"l1": {"bytes": 16384, "banks": 2, "out_bytes": 8192}},
    "tlb16": {"memory": {"tlb_entries": 16}},
    "topk16_window16": {"attention": {"topk_max": 16}, "scheduler": {"window": 16, "tasks": 128}},
    "l3_16k": {"l3": {"enabled": True, "bytes": 16384, "ways": 2, "banks": 1, "mshrs": 4}},
    "l3_64k": {"l3": {"enabled": True, "bytes": 65536, "ways": 4, "banks": 2, "mshrs": 8}},
    "engines2": {"scheduler": {"engines": 2}},
}


#: presets measured too but kept out of the fit: the model's error on them is part of its stated error
HELD_OUT = ("tiny", "ulx3s")


def grid_config(name: str) -> HwConfig:
    diff = GRID[name]
    data = json.loads(json.dumps(BASE))
    for section, fields in diff.items():
        data.setdefault(section, {}).update(fields)
    data["name"] = f"grid_{name}"
    return hwconfig.from_dict(data)


def split(result: Synthesis, cfg: HwConfig) -> list[dict]:
    """One row per component kind: its resources per instance (the sum over its instances / their count)."""
    sums: dict[str, dict[str, float]] = {}
    for inst in result.instances.values():
        kind = kind_of(inst.path, inst.module)
        own = _resources(result.family, inst.cells)
        acc = sums.setdefault(kind, dict.fromkeys(KINDS, 0.0))
        for k in KINDS:
            acc[k] += own[k]
    count = instances(cfg)
    return [{"config": cfg, "family": result.family, "kind": kind, **{k: v / count[kind] for k, v in s.items()}}
            for kind, s in sums.items()]


def measure(cfg: HwConfig, family: str, work: Path, keep: Path) -> tuple[list[dict], Synthesis]:
    """Synthesize ``cfg``'s chip; its per-instance counts are kept in ``keep`` (a refit needs no new synthesis)."""
    from hwgen.rtl.block_ram import FpgaTarget
    from hwgen.rtl.build import generate, top_name, verilog_sources
    folder = generate(cfg, work, platform=FpgaTarget(family))   # as a board build elaborates it
    result = synthesize(folder, verilog_sources(cfg, "chip"), top_name(cfg, "chip"), family)
    keep.mkdir(parents=True, exist_ok=True)
    (keep / f"{cfg.name}.json").write_text(json.dumps(result.to_json()) + "\n")
    return split(result, cfg), result


def _measure_timed(cfg: HwConfig, family: str, work: Path, keep: Path):
    """``measure`` in a worker process: (rows, total, seconds), or the tool's error as a string."""
    t0 = time.perf_counter()
    try:
        mine, result = measure(cfg, family, work / cfg.name, keep)
    except RtlError as e:          # a tool failure loses this point only; it is reported with the fit
        return str(e)
    return mine, result.total, time.perf_counter() - t0


def refit(folder: Path, family: str) -> ResourceModel:
    """Fit again from the measured table (``resources_<family>.csv``) and the chip totals kept with the model: for
    a change of features, without synthesizing again."""
    previous = ResourceModel.load(family, folder)
    configs = {name: grid_config(name) for name in GRID}
    configs.update({name: hwconfig.load(name) for name in HELD_OUT})
    by_name = {c.name: c for c in configs.values()}
    rows = []
    with (folder / f"resources_{family}.csv").open() as fh:
        for r in csv.DictReader(fh):
            cfg = by_name[r["config"]]
            if cfg.digest() != r["digest"]:
                raise ValueError(f"{r['config']}: the grid changed since it was measured ({r['digest']} -> "
                                 f"{cfg.digest()}); run the characterisation again")
            rows.append({"config": cfg, "family": family, "kind": r["kind"], **{k: float(r[k]) for k in KINDS}})
    model = fit(rows, family)
    model.state_error({name: v["measured"] for name, v in previous.checked.items()}, configs)
    model.failed = previous.failed
    write_rows(rows, folder / f"resources_{family}.csv")      # the features column as they are now
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="ecp5", choices=("ecp5", "xilinx"))
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--only", help="comma-separated grid points (default: all)")
    ap.add_argument("--refit", action="store_true", help="fit again from the table in --out, without Yosys")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="syntheses at once (Yosys uses one core each; default: one per core)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs: {args.jobs} is not allowed (allowed: 1 or more)")
    if args.refit:
        model = refit(args.out, args.family)
        (args.out / f"resource_model_{args.family}.json").write_text(json.dumps(model.to_json(), indent=1) + "\n")
        print("stated error of a chip total: " + ", ".join(f"{k} {100 * e:.1f} %" for k, e in model.chip_error.items()))
        return 0
    names = args.only.split(",") if args.only else list(GRID)
    configs = {name: grid_config(name) for name in names}
    configs.update({name: hwconfig.load(name) for name in HELD_OUT})
    rows: list[dict] = []
    totals: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    keep = args.out / f"synthesis_{args.family}"
    measured: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="dsa-characterize-") as tmp, \
            ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_measure_timed, cfg, args.family, Path(tmp), keep): name
                   for name, cfg in configs.items()}
        for i, future in enumerate(as_completed(futures), 1):
            name, got = futures[future], future.result()
            if isinstance(got, str):
                failed[name] = got
                print(f"[{i}/{len(configs)}] {name}: FAILED: {got}", flush=True)
                continue
            measured[name] = got
            print(f"[{i}/{len(configs)}] {name}: {', '.join(f'{k} {v:g}' for k, v in got[1].items())} "
                  f"({got[2]:.0f} s)", flush=True)
    for name in configs:               # the table in grid order, whichever finished first
        if name in measured:
            mine, totals[name], _ = measured[name]
            if name not in HELD_OUT:
                rows += mine
    model = fit(rows, args.family)
    model.state_error(totals, configs)
    model.failed = failed
    args.out.mkdir(parents=True, exist_ok=True)
    write_rows(rows, args.out / f"resources_{args.family}.csv")
    (args.out / f"resource_model_{args.family}.json").write_text(json.dumps(model.to_json(), indent=1) + "\n")
    for name, v in model.checked.items():
        print(f"{name}{' (held out)' if name in HELD_OUT else ''}: "
              + ", ".join(f"{k} {v['measured'][k]:g} vs {v['predicted'][k]:.0f}" for k in KINDS))
    for name, why in failed.items():
        print(f"{name}: not measured ({why})")
    print("stated error of a chip total: " + ", ".join(f"{k} {100 * e:.1f} %" for k, e in model.chip_error.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
