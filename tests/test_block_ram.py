"""BlockRam (hwgen/rtl/block_ram.py): the DP16KD tiling, and its ECP5 form against its behavioural form.

The ECP5 form instantiates DP16KD tiles with their output register on; Yosys has no simulation model of the
primitive, so the cocotb test (sim/rtl/tb/block_ram_tb.py) runs it on a behavioural model written from
Lattice's memory guide (sim/rtl/tb/ecp5_dp16kd.v) beside Amaranth's memory, every tile width in use.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth import Elaboratable, Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwgen.rtl.block_ram import BlockRam, FpgaTarget, ecp5_tiling
from hwgen.spec import config
from sim.rtl import runner

BUILD_ROOT = Path("build/rtl")
MODEL = Path(__file__).resolve().parents[1] / "sim" / "rtl" / "tb" / "ecp5_dp16kd.v"
#: (width, depth, granularity): the ulx3s L1 and output buffer (x36), then x18, x9 (bytes and not), x4 / x1
SHAPES = [(128, 256, 8), (256, 128, None), (64, 1024, 8), (24, 2048, 8), (40, 2048, None), (16, 4096, 8),
          (3, 16384, None)]


def test_ecp5_tiling_matches_what_yosys_maps():
    """The tiles of the ulx3s memories are those Yosys' own inference takes (4 per L1 copy, 8 per output buffer
    copy: data/fpga/synthesis_ecp5), and every width holds its depth."""
    cfg = config.load("ulx3s")
    assert ecp5_tiling(cfg.line_bytes * 8, cfg.lines_per_bank, 8).tiles == 4
    assert ecp5_tiling(cfg.out_line_bits, cfg.out_lines).tiles == 8
    assert [ecp5_tiling(18, d).width for d in (512, 513, 1024, 2048, 4096, 8192, 16384)] == [36, 18, 18, 9, 4, 2, 1]
    assert ecp5_tiling(64, 1024, 8).per_tile == 16 and ecp5_tiling(16, 4096, 8).tiles == 4
    with pytest.raises(ValueError, match="block RAM depth: 16385 words is not allowed"):
        ecp5_tiling(8, 16385)


class _Elaborated(Elaboratable):
    """``ram`` elaborated for ``platform`` whatever the design around it is elaborated for."""

    def __init__(self, ram, platform):
        self.ram, self.platform = ram, platform

    def elaborate(self, platform):
        return Fragment.get(self.ram, self.platform)


class _BothForms(wiring.Component):
    """Each shape's behavioural and ECP5 forms on the same inputs; ``s<k>_ref`` / ``s<k>_ecp5`` their data."""

    def __init__(self, shapes):
        self.shapes = shapes
        members = {}
        for k, (width, depth, granularity) in enumerate(shapes):
            addr = ceil_log2(max(depth, 2))
            members.update({f"s{k}_waddr": In(addr), f"s{k}_wdata": In(width),
                            f"s{k}_wen": In(width // 8 if granularity else 1), f"s{k}_raddr": In(addr),
                            f"s{k}_ren": In(1), f"s{k}_rtake": In(1), f"s{k}_ref": Out(width),
                            f"s{k}_ecp5": Out(width)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for k, (width, depth, granularity) in enumerate(self.shapes):
            for form, target in (("ref", None), ("ecp5", FpgaTarget("ecp5"))):
                ram = BlockRam(width, depth, granularity)
                m.submodules[f"s{k}_{form}"] = _Elaborated(ram, target)
                p = lambda name, k=k: getattr(self, f"s{k}_{name}")  # noqa: E731
                m.d.comb += [ram.write.addr.eq(p("waddr")), ram.write.data.eq(p("wdata")), ram.write.en.eq(p("wen")),
                             ram.read.addr.eq(p("raddr")), ram.read.en.eq(p("ren")), ram.read.take.eq(p("rtake")),
                             p(form).eq(ram.read.data)]
        return m


@pytest.mark.rtl
def test_ecp5_tiles_equal_the_behavioural_ram():
    folder = runner.build_component(_BothForms(SHAPES), "block_ram_forms", BUILD_ROOT,
                                    {"ecp5_dp16kd.v": MODEL.read_text()})
    results = runner.run_cocotb(folder, "block_ram_forms", "sim.rtl.tb.block_ram_tb",
                                {"BLOCK_RAM_TB_SHAPES": json.dumps(SHAPES)})
    assert sorted(results) == ["ecp5_tiles_equal_the_behavioural_ram"], results
    assert all(v is None for v in results.values()), results
