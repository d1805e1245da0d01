# amaranth: UnusedElaboratable=no
"""The HBM port interleaver (hwgen/rtl/memory/hbm_interleaver.py): structure in Python, behaviour under cocotb.

The RTL tests build ``HbmInterleaver`` alone in ``VivadoTop`` (slave ``s_axi_hbm_*``, ports
``m_axi_hbm<i>_*``) for a few (ports, interleave) points and run every test of ``sim/rtl/tb/interleaver_tb.py``
in one simulator process per build, each reported as its own pytest test: random bursts to every port,
HbmResponders with random stalls, data and response order exact, an AXI monitor with 0 violations on every
port and on the slave side, zero added latency, and the merge rule of the simulator's DMA model at 0 %.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth.hdl import Fragment

from hwgen.rtl import build
from hwgen.rtl.engine.engine import DsaEngine
from hwgen.rtl.memory.axi import VivadoTop
from hwgen.rtl.memory.hbm_interleaver import TLB_WALKS, HbmInterleaver, read_depth, write_depth
from hwgen.rtl.top import ENGINE_HBM_SIDEBAND, DsaTop, axi_ports
from hwgen.spec import config
from sim.model.memory.axi_port import HbmPorts
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "interleaver"
TB_MODULE = "sim.rtl.tb.interleaver_tb"
COCOTB_TESTS = ["exact_at_p0", "random_traffic/p=0.3", "random_traffic/p=0.9"]
# (ports, interleave bytes): tiny's 16-byte beats, so 4, 16 and 256 beats per chunk
POINTS = [(2, 64), (4, 256), (8, 4096)]


def point_dict(ports: int, interleave: int) -> dict:
    return {"base": "tiny", "name": f"il{ports}x{interleave}",
            "memory": {"ports": ports, "interleave_bytes": interleave}, "l3": {"enabled": False}}


def interleaver_top(cfg) -> VivadoTop:
    return VivadoTop(HbmInterleaver(cfg), {"bus": "s_axi_hbm",
                                           **{f"port{i}": f"m_axi_hbm{i}" for i in range(cfg.memory.ports)}})


# ---------------------------------------------------------------------------------------------------
# Python: structure

def test_port_select_is_port_of():
    cfg = config.from_dict(point_dict(4, 256))
    ports = HbmPorts(cfg)
    assert [ports.port_of(a) for a in (0, 255, 256, 511, 512, 1023, 1024, 4096 + 300)] == [0, 0, 1, 1, 2, 3, 0, 1]


def test_fifo_depths_follow_the_config():
    cfg = config.from_dict({"base": "tiny", "memory": {"ports": 4, "outstanding": 8}, "l3": {"enabled": False}})
    assert (read_depth(cfg), write_depth(cfg)) == (8 + TLB_WALKS, 8)
    il = HbmInterleaver(cfg)
    assert (il.read_depth, il.write_depth) == (read_depth(cfg), write_depth(cfg))


def test_one_port_keeps_the_engine_top():
    with_l3 = build.top_component(config.load("tiny"))           # tiny has an L3: the memory side is not a wire
    assert isinstance(with_l3.inner, DsaTop) and {"l3_ready", "m_axi_hbm0_araddr"} <= set(with_l3.signature.members)
    cfg = config.from_dict({"base": "tiny", "l3": {"enabled": False}})
    top = build.top_component(cfg)
    assert isinstance(top.inner, DsaEngine) and axi_ports(cfg) == {"hbm": "m_axi_hbm0"}
    names = set(top.signature.members)
    assert "m_axi_hbm0_araddr" in names and not any(n.startswith("m_axi_hbm1") for n in names)
    Fragment.get(top, None)


@pytest.mark.parametrize("ports", [2, 32])
def test_top_has_every_port_under_vivado_names(ports):
    cfg = config.from_dict({"base": "tiny", "memory": {"ports": ports}, "l3": {"enabled": False}})
    top = build.top_component(cfg)
    assert isinstance(top.inner, DsaTop)
    names = set(top.signature.members)
    for i in range(ports):
        assert {f"m_axi_hbm{i}_{sig}" for sig in ("araddr", "arvalid", "rdata", "rready", "awlen", "wlast",
                                                  "bresp", "bvalid")} <= names
    assert f"m_axi_hbm{ports}_araddr" not in names
    engine = {name for name in top.inner.engine.signature.members if name not in ("hbm", *ENGINE_HBM_SIDEBAND)}
    assert engine and engine <= set(top.inner.signature.members)
    Fragment.get(top, None)          # elaborates


def test_readme_names_every_port(tmp_path):
    cfg = config.from_dict({"base": "tiny", "memory": {"ports": 4, "interleave_bytes": 256}, "l3": {"enabled": False}})
    text = (build.generate(cfg, tmp_path) / "README.md").read_text()
    assert "the 4 AXI4 masters `m_axi_hbm0_*` .. `m_axi_hbm3_*`" in text
    assert "(a / 256) mod 4" in text and "| `m_axi_hbm3_bready` | out | 1 |" in text


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb

@pytest.fixture(scope="module", params=POINTS, ids=[f"p{p}x{i}" for p, i in POINTS])
def point_results(request) -> dict[str, str | None]:
    ports, interleave = request.param
    cfg_dict = point_dict(ports, interleave)
    cfg = config.from_dict(cfg_dict)
    name = f"interleaver_{ports}x{interleave}"
    folder = runner.build_component(interleaver_top(cfg), name, BUILD_ROOT)
    return runner.run_cocotb(folder, name, TB_MODULE, {"INTERLEAVER_TB_CONFIG": json.dumps(cfg_dict)})


@pytest.mark.rtl
def test_interleaver_ran_every_cocotb_test(point_results):
    assert sorted(point_results) == sorted(COCOTB_TESTS)


@pytest.mark.rtl
@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_interleaver(point_results, name):
    assert name in point_results, f"{name} did not run: {sorted(point_results)}"
    assert point_results[name] is None, point_results[name]
