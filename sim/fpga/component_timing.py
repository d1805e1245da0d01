"""Each component of the chip alone on an FPGA: its FMAX and worst path, to find what limits the chip's clock.

A whole-chip place and route takes the better part of an hour on two cores and names one worst path; timed
alone (Yosys, then nextpnr ``--out-of-context``: no pins, every port a free net), each component takes a minute
or two and shows its own limit. ``dsa fpga timing --config C [--component a,b]`` runs this; docs/fpga.md
keeps the table for the ulx3s preset.

Out of context, paths from and to the component's ports are not timed, so a path that runs through several
components (a unit's ``free`` into the dispatcher and back) only shows in the whole chip.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth import Elaboratable, Module, Signal, Value
from amaranth.back import verilog
from amaranth.lib import wiring

from hwgen.rtl.block_ram import FpgaTarget
from hwgen.spec import isa
from hwgen.spec.config import HwConfig
from sim.fpga.pnr import nextpnr_version, place_and_route
from sim.fpga.yosys import Synthesis, synthesize
from sim.rtl.errors import RtlError


def _components() -> dict[str, Callable[[HwConfig], object]]:
    from hwgen.rtl.engine.engine import DsaEngine
    from hwgen.rtl.engine.mac_lanes import MacLanes
    from hwgen.rtl.engine.result_writer import ResultWriter
    from hwgen.rtl.engine.row_unit import RowUnit
    from hwgen.rtl.engine.scratchpad import Scratchpad
    from hwgen.rtl.engine.topk_path import TopkPath
    from hwgen.rtl.engine.topk_softmax import TopkSoftmax
    from hwgen.rtl.memory.dma_load import DmaLoad
    from hwgen.rtl.memory.dma_store import DmaStore
    from hwgen.rtl.memory.tlb import Tlb
    from hwgen.rtl.scheduler.asa import Asa
    return {
        "scheduler": Asa,
        "row_unit": RowUnit,
        "mac_lanes": lambda cfg: MacLanes(cfg.engine.lanes, cfg.engine.operand_bits, cfg.engine.acc_bits,
                                          cfg.engine.overflow),
        "result_writer": ResultWriter,
        "topk_softmax": lambda cfg: TopkSoftmax(cfg.attention.topk_max, cfg.attention.frac_bits),
        "topk_path": TopkPath,
        "scratchpad": lambda cfg: Scratchpad(cfg, cfg.l1_read_ports),
        "tlb": lambda cfg: Tlb(cfg, addr_width=isa.DESCRIPTOR.bits("hbm_addr")),
        "dma_load": DmaLoad,
        "dma_store": DmaStore,
        "engine": DsaEngine,
    }


#: the components ``time_component`` knows, in the order a report lists them (each has registers: a purely
#: combinational one, like the zero compactor, has no clocked path of its own and is timed inside its owner)
COMPONENTS = ("scheduler", "row_unit", "mac_lanes", "result_writer", "topk_softmax", "topk_path",
              "scratchpad", "tlb", "dma_load", "dma_store", "engine")


#: components whose only registers are their block RAMs' (an ECP5 DP16KD's input and output registers), so
#: alone they have no clocked path: they are timed with a register on each port, as their users drive them
PORTS_REGISTERED = ("scratchpad",)


class _PortsRegistered(Elaboratable):
    """``inner`` with a register between each of its ports and a port of the same name."""

    def __init__(self, inner: wiring.Component):
        self.inner = inner
        self.members = [(flow, Value.cast(value), "_".join(map(str, path)))
                        for path, flow_member, value in inner.signature.flatten(inner)
                        for flow in (flow_member.flow,)]
        self.ports = [Signal(len(value), name=name) for _, value, name in self.members]

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for (flow, value, name), port in zip(self.members, self.ports, strict=True):
            held = Signal(len(value), name=f"{name}_q")
            if flow == wiring.In:
                m.d.sync += held.eq(port)
                m.d.comb += value.eq(held)
            else:
                m.d.sync += held.eq(value)
                m.d.comb += port.eq(held)
        return m


def synthesize_component(cfg: HwConfig, name: str, folder: Path, *,
                         detail: Callable[[str], None] = lambda what: None) -> Synthesis:
    """Component ``name`` of ``cfg`` alone, elaborated for the ECP5 as a board build elaborates it (block RAMs as
    DP16KD tiles with their output register) and synthesized with its netlist for place and route."""
    if name not in COMPONENTS:
        raise ValueError(f"component: {name!r} is not allowed (allowed: {', '.join(COMPONENTS)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    component = _components()[name](cfg)
    top = _PortsRegistered(component) if name in PORTS_REGISTERED else component
    (folder / f"{name}.v").write_text(verilog.convert(top, name=name, emit_src=False, platform=FpgaTarget("ecp5"),
                                                      **({"ports": top.ports} if top is not component else {})))
    sources = [f"{name}.v"]
    if name == "engine" and cfg.l3.enabled:
        from hwgen.rtl.memory.l3_cache import ram_modules
        for file, text in ram_modules(cfg).items():
            (folder / file).write_text(text)
            sources.insert(0, file)
    return synthesize(folder, sources, name, "ecp5", netlist=True, detail=detail)


def time_component(cfg: HwConfig, name: str, folder: Path, *, seeds: tuple[int, ...] = (1,), mhz: float | None = None,
                   jobs: int | None = None, detail: Callable[[str], None] = lambda what: None) -> dict:
    """Synthesize component ``name`` of ``cfg`` alone for the ECP5-85F and place and route it out of context once
    per seed (``jobs`` at a time, default one per core), aiming at ``mhz`` (default: the config's clock). Returns
    its record: FMAX per seed and their median (one seed moves a component's FMAX by 5-10 %), the worst path of
    the seed nearest the median, resources, seconds. The files stay in ``folder`` (``<name>.v``, the logs)."""
    folder = Path(folder)
    mhz = cfg.clock.mhz if mhz is None else mhz
    start = time.monotonic()
    synthesis = synthesize_component(cfg, name, folder, detail=detail)

    def route(seed: int):
        routed = place_and_route(folder, synthesis.netlist, mhz=mhz, seed=seed, out_of_context=True,
                                 detail=lambda what: detail(f"seed {seed}: {what}"))
        if not routed.fmax:
            raise RtlError(f"{name}: nextpnr found no clocked path (log: {routed.log})", routed.log)
        return routed
    # each seed is its own nextpnr process (one core each): threads only wait for them
    with ThreadPoolExecutor(max_workers=max(1, min(jobs or os.cpu_count() or 1, len(seeds)))) as pool:
        runs = list(pool.map(route, seeds))
    worst = [min(r.fmax.items(), key=lambda item: item[1]) for r in runs]    # (clock, MHz) per seed
    median = statistics.median(f for _, f in worst)
    shown = min(range(len(runs)), key=lambda k: abs(worst[k][1] - median))
    return {"component": name, "config": cfg.name, "config_digest": cfg.digest(), "part": "LFE5U-85F",
            "seeds": list(seeds), "target_mhz": mhz, "fmax_mhz": round(median, 2),
            "fmax_per_seed": [round(f, 2) for _, f in worst], "clock": worst[shown][0],
            "critical_path": {"seed": runs[shown].seed, "from": runs[shown].critical_from,
                              "to": runs[shown].critical_to},
            "resources": synthesis.total, "tools": {"yosys": synthesis.tool, "nextpnr": nextpnr_version()},
            "seconds": {"synthesis": round(synthesis.seconds, 1),
                        "place_and_route": [round(r.seconds, 1) for r in runs],
                        "total": round(time.monotonic() - start, 1)}}
