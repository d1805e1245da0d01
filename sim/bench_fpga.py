"""`make bench`, FPGA part: resources and FMAX per preset, and what sparsity buys in time on the ULX3S.

14. resources per preset: the fitted model's prediction (``data/fpga/resource_model_ecp5.json``) and, where the
    characterisation synthesized it, Yosys' count, against the part of the preset's board;
15. FMAX of the ULX3S build (``data/fpga/ulx3s_build.json``, written by ``make fpga``: nextpnr per seed);
16. sparse vs dense on the ``ulx3s`` preset in time: RTL cycles (== sim cycles) / the median FMAX (the bitstream
    seed's FMAX when most seeds did not route).
"""
from __future__ import annotations

import json

from rich.markup import escape

from golden.generators.operands import random_operands
from hwgen.compiler.tiling import compile_matmul_hbm
from hwgen.spec import config
from sim.backends import default_build_root
from sim.fpga.board import bitstream_timing, seed_line
from sim.fpga.parts import BOARDS, KINDS, PARTS
from sim.fpga.resource_model import DATA, ResourceModel
from sim.model.engine import EngineModel
from sim.rtl.runner import build, run_rtl_batch

BUILD_RECORD = DATA / "ulx3s_build.json"
SPARSE_SHAPE = (64, 256, 16)
SPARSE_DENSITIES = (1.0, 0.5, 0.2, 0.1)


class FpgaBench:
    def __init__(self, bench):
        self.console, self.record = bench.console, bench.record

    def table(self, title, *columns):
        from rich.table import Table
        table = Table(title=title)
        for col in columns:
            table.add_column(col, justify="right")
        return table

    def resources(self) -> None:
        model = ResourceModel.load("ecp5")
        t = self.table("14. resources per preset (ECP5 mapping; model = fitted prediction, Yosys = synthesized)",
                       "preset", "part", *(f"{k.upper()} model" for k in KINDS), *(f"{k.upper()} Yosys" for k in KINDS),
                       "fits")
        rows = {}
        for name in config.preset_names():
            cfg = config.load(name)
            part = BOARDS.get(cfg.board.target, PARTS["LFE5U-85F"])
            predicted = model.predict(cfg) if part.family == "ecp5" else None
            measured = model.checked.get(name, {}).get("measured")
            basis = measured or predicted
            fits = basis is not None and all(basis[k] <= part.available()[k] for k in KINDS)
            t.add_row(name, part.name, *(f"{predicted[k]:.0f}" if predicted else "-" for k in KINDS),
                      *(f"{measured[k]:g}" if measured else "-" for k in KINDS),
                      ("yes" if fits else "no") if basis else "(not ECP5)")
            rows[name] = {"part": part.name, "predicted": predicted, "measured": measured}
        self.console.print(t)
        self.console.print("stated error of a model total: " + ", ".join(
            f"{k.upper()} {100 * e:.0f} %" for k, e in model.chip_error.items()) + "; the u55c preset is an AMD part "
            "(dsa fpga export --board u55c --synth gives Yosys' synth_xilinx estimate)")
        self.record["fpga_resources"] = rows

    def fmax(self) -> tuple[float, str] | None:
        if not BUILD_RECORD.exists():
            self.console.print(f"15. FMAX: {BUILD_RECORD} is missing (make fpga places and routes the ULX3S build)")
            return None
        build_record = json.loads(BUILD_RECORD.read_text())
        t = self.table(f"15. FMAX of the ULX3S build ({build_record['config']}, {build_record['date']}, "
                       f"{build_record['tools']['nextpnr']})", "seed", "FMAX MHz", "target", "worst path")
        clock = build_record["chip_clock"]
        for run in build_record["seeds"]:
            fmax, path = seed_line(run, clock, 70)
            t.add_row(str(run["seed"]), fmax, f"{build_record['target_mhz']:g}", escape(path))
        self.console.print(t)
        median = build_record["fmax_mhz"]["median"]
        self.console.print(f"median FMAX {median:.1f} MHz: goal >= {build_record['target_mhz']:g} MHz -> "
                           f"{'met' if median >= build_record['target_mhz'] else 'NOT met'}")
        self.record["fpga_fmax"] = build_record["fmax_mhz"]
        if median:
            return median, "the median FMAX"
        # most seeds did not route: the kernels are timed at the clock the bitstream's seed meets
        return bitstream_timing(build_record)[0], f"the FMAX of seed {build_record['bitstream_seed']}, the bitstream's"

    def sparse_in_time(self, fmax: tuple[float, str] | None) -> bool:
        cfg = config.load("ulx3s")
        mhz, clock = fmax or (cfg.clock.mhz, "the config clock: no routed seed in a build record")
        build(cfg, default_build_root())
        m, k, n = SPARSE_SHAPE
        programs = [compile_matmul_hbm(cfg, *random_operands(m, k, n, d, seed=0), "spmm", "bitmask")
                    for d in SPARSE_DENSITIES]
        rtl = run_rtl_batch(cfg, programs, build_root=default_build_root())
        model = EngineModel(cfg)
        sim = [model.run(p).cycles for p in programs]
        t = self.table(f"16. bitmask spmm {m}x{k}x{n} in the ULX3S board memory, at {mhz:.1f} MHz "
                       f"({clock})",
                       "density", "RTL cycles", "sim cycles", "time us", "speedup vs d=1")
        base = rtl[0].cycles
        rows = []
        for d, r, s in zip(SPARSE_DENSITIES, rtl, sim, strict=True):
            t.add_row(f"{d:g}", str(r.cycles), str(s), f"{r.cycles / mhz:.1f}", f"{base / r.cycles:.2f}x")
            rows.append({"density": d, "rtl_cycles": r.cycles, "sim_cycles": s, "us": r.cycles / mhz})
        self.console.print(t)
        self.record["ulx3s_time"] = {"mhz": mhz, "rows": rows}
        return all(r.cycles == s for r, s in zip(rtl, sim, strict=True))


def run(bench) -> bool:
    fpga = FpgaBench(bench)
    fpga.resources()
    return fpga.sparse_in_time(fpga.fmax())

