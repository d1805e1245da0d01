# amaranth: UnusedElaboratable=no
"""AXI4 / AXI4-Lite signatures and Vivado names, AxiBurstReader's burst plan, and cocotb smoke tests.

The RTL tests build one small top (``AxiSmokeCore`` in ``VivadoTop``) with Verilator and run every test
of ``sim/rtl/tb/axi_smoke_tb.py`` in one simulator process; each cocotb test is reported as its own pytest
test. ``sim.rtl.runner.build_component`` builds any Amaranth top: same runner class,
waivers and make variables, one folder per digest under ``build/axi/``, a ``ports.vlt`` that makes exactly
the top's ports visible to cocotb (instead of ``--public-flat-rw``).
"""
from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from hwgen.rtl.memory.axi import AxiLiteRegisters, AxiLiteSignature, AxiSignature, VivadoTop, vivado_members
from hwgen.rtl.memory.axi_burst_reader import AxiBurstReader, plan
from hwgen.spec.axi import BOUNDARY_BYTES, MAX_INCR_BEATS
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "axi"
TOP = "axi_smoke"
TB_MODULE = "sim.rtl.tb.axi_smoke_tb"

# every cocotb test in sim/rtl/tb/axi_smoke_tb.py, as cocotb names them in results.xml
COCOTB_TESTS = [
    "reader_against_axiram/port=hbm0",
    "reader_against_axiram/port=hbm1",
    "axilite_registers",
    "axi_master_through_loop",
    "monitor_flags_4k_crossing",
    "strict_monitor_fails_the_test",
    "monitor_flags_bad_read_responses/fault=rid",
    "monitor_flags_bad_read_responses/fault=rlast",
    "monitor_flags_bad_read_responses/fault=drop",
    "monitor_flags_bad_read_responses/fault=change",
    "monitor_flags_bad_writes",
]


# ---------------------------------------------------------------------------------------------------
# the smoke top

class AxiSmokeCore(wiring.Component):
    """Readers, a register block and an AXI4 wire, as listed in sim/rtl/tb/axi_smoke_tb.py."""

    def __init__(self):
        self._parts = {
            "hbm0": AxiBurstReader(data_width=64, max_outstanding=2, backpressure=True),
            "hbm1": AxiBurstReader(data_width=256, max_outstanding=1),
            "bad0": AxiBurstReader(data_width=64, backpressure=True, cross_4k=True),
            "ctrl": AxiLiteRegisters(4),
        }
        loop = AxiSignature(addr_width=32, data_width=64, id_width=2)
        super().__init__({**{name: Out(part.signature) for name, part in self._parts.items()},
                          "loop_in": In(loop), "loop_out": Out(loop)})

    def elaborate(self, platform):
        m = Module()
        for name, part in self._parts.items():
            m.submodules[name] = part
            connect(m, flipped(getattr(self, name)), part)
        connect(m, flipped(self.loop_in), flipped(self.loop_out))
        return m


AXI_PORTS = {"hbm0.bus": "m_axi_hbm0", "hbm1.bus": "m_axi_hbm1", "bad0.bus": "m_axi_bad0",
             "ctrl.bus": "s_axi_ctrl", "loop_in": "s_axi_loop", "loop_out": "m_axi_loop"}


def smoke_top() -> VivadoTop:
    return VivadoTop(AxiSmokeCore(), AXI_PORTS)


# ---------------------------------------------------------------------------------------------------
# signatures and names (no simulator)

def test_axi_signature_is_the_masters_view():
    sig = AxiSignature(addr_width=33, data_width=256, id_width=4)
    assert {ch: m.flow for ch, m in sig.members.items()} == {"aw": Out, "w": Out, "b": In, "ar": Out, "r": In}
    assert (sig.size, sig.bytes_per_beat) == (5, 32)
    assert [name for name, _ in sig.layouts["ar"]] == ["id", "addr", "len", "size", "burst"]
    assert [name for name, _ in sig.layouts["r"]] == ["id", "data", "resp", "last"]
    assert sig == AxiSignature(addr_width=33, data_width=256, id_width=4) != sig.flip()
    bus = sig.create()
    assert len(bus.ar.payload.addr) == 33 and len(bus.w.payload.strb) == 32 and len(bus.r.payload.id) == 4
    lite = AxiLiteSignature(addr_width=8)
    assert [name for name, _ in lite.layouts["b"]] == ["resp"]


@pytest.mark.parametrize("kwargs, message", [
    ({"data_width": 48}, "data_width: must be a power of two, not 48"),
    ({"addr_width": 8}, "addr_width: must be an integer in [12, 64], not 8"),
    ({"id_width": 0}, "id_width: must be an integer in [1, 32], not 0"),
])
def test_axi_signature_rejects_bad_widths(kwargs, message):
    with pytest.raises(ValueError) as err:
        AxiSignature(**kwargs)
    assert str(err.value) == message


def test_vivado_names():
    members = vivado_members("m_axi_hbm0", AxiSignature(data_width=64, id_width=2))
    assert members["m_axi_hbm0_araddr"].flow == Out and members["m_axi_hbm0_arready"].flow == In
    assert members["m_axi_hbm0_rdata"].flow == In and members["m_axi_hbm0_rready"].flow == Out
    slave = vivado_members("s_axi_ctrl", AxiLiteSignature().flip())
    assert slave["s_axi_ctrl_awaddr"].flow == In and slave["s_axi_ctrl_rdata"].flow == Out
    text = verilog.convert(smoke_top(), name=TOP, emit_src=False)
    header = re.search(rf"module {TOP}\((.*?)\);", text, re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    axi4 = [f"{ch}{f}" for ch, fields in {"aw": "id addr len size burst valid ready", "w": "data strb last valid ready",
                                          "b": "id resp valid ready", "ar": "id addr len size burst valid ready",
                                          "r": "id data resp last valid ready"}.items() for f in fields.split()]
    for prefix in ("m_axi_hbm0", "m_axi_hbm1", "m_axi_bad0", "m_axi_loop", "s_axi_loop"):
        assert {f"{prefix}_{s}" for s in axi4} <= ports, prefix
    assert {"s_axi_ctrl_awaddr", "s_axi_ctrl_awprot", "s_axi_ctrl_rresp", "ctrl_regs_3", "hbm0_start",
            "hbm0_r_allow", "clk", "rst"} <= ports
    assert not [p for p in ports if "__" in p or "\\" in p], "flat, unescaped names only"
    assert re.search(r"input \[31:0\] m_axi_hbm0_araddr;", text) is None  # direction: an output
    assert re.search(r"output \[31:0\] m_axi_hbm0_araddr;", text)
    assert re.search(r"input \[255:0\] m_axi_hbm1_rdata;", text)


@pytest.mark.parametrize("beat_bytes", [1, 8, 32, 128])
def test_burst_plan_obeys_axi_rules(beat_bytes):
    rng = random.Random(beat_bytes)
    for _ in range(2000):
        addr = rng.randrange(0, 1 << 20, beat_bytes)
        length = rng.choice([0, beat_bytes, rng.randrange(0, 5 * BOUNDARY_BYTES, beat_bytes)])
        bursts = plan(addr, length, beat_bytes)
        assert sum(beats for _, beats in bursts) * beat_bytes == length
        at = addr
        for start, beats in bursts:
            assert start == at and 1 <= beats <= MAX_INCR_BEATS
            last = start + beats * beat_bytes - 1
            assert start // BOUNDARY_BYTES == last // BOUNDARY_BYTES, (addr, length, start, beats)
            at += beats * beat_bytes
        # as few bursts as the rules allow: each one ends at a boundary, at 256 beats or at the end
        for start, beats in bursts[:-1]:
            assert beats == MAX_INCR_BEATS or (start + beats * beat_bytes) % BOUNDARY_BYTES == 0


def test_broken_plan_crosses():
    assert plan(0x1000 - 16, 64 * 8, 8) == [(0xFF0, 2), (0x1000, 62)]
    assert plan(0x1000 - 16, 64 * 8, 8, cross_4k=True) == [(0xFF0, 64)]
    assert AxiBurstReader(cross_4k=True).plan(0xFF0, 512) == [(0xFF0, 64)]


def test_reader_rejects_bad_parameters():
    with pytest.raises(ValueError, match="max_outstanding: must be at least 1, not 0"):
        AxiBurstReader(max_outstanding=0)
    with pytest.raises(ValueError, match="length_width"):
        AxiBurstReader(addr_width=16, length_width=24)
    with pytest.raises(TypeError, match="not an AXI interface"):
        VivadoTop(AxiBurstReader(), {"start": "m_axi_x"})


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb

@pytest.fixture(scope="module")
def smoke_build() -> Path:
    return runner.build_component(smoke_top(), TOP, BUILD_ROOT)


@pytest.fixture(scope="module")
def smoke_results(smoke_build) -> dict[str, str | None]:
    return runner.run_cocotb(smoke_build, TOP, TB_MODULE)


@pytest.mark.rtl
def test_smoke_top_lint_clean(smoke_build):
    env = runner.toolchain_env()
    cmd = [str(runner._verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--quiet-stats",
           "--top-module", TOP, str(runner.WAIVERS), str(smoke_build / f"{TOP}.v")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.rtl
def test_smoke_build_is_reused(smoke_build):
    stamp = smoke_build / "sim_build" / ".stamp"
    before = stamp.stat().st_mtime_ns
    assert runner.build_component(smoke_top(), TOP, BUILD_ROOT) == smoke_build
    assert stamp.stat().st_mtime_ns == before


@pytest.mark.rtl
def test_smoke_ran_every_cocotb_test(smoke_results):
    assert sorted(smoke_results) == sorted(COCOTB_TESTS)


@pytest.mark.rtl
@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_smoke(smoke_results, name):
    assert name in smoke_results, f"{name} did not run: {sorted(smoke_results)}"
    assert smoke_results[name] is None, smoke_results[name]
