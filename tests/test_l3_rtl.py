# amaranth: UnusedElaboratable=no
"""The L3 cache RTL (hwgen/rtl/memory/l3_cache.py) against its timing model (sim/model/memory/l3.py ``L3Ports``).

One Verilator build per config (``L3Cache`` in ``VivadoTop``: slave ``s_axi_l3``, master ``m_axi_hbm0``, plus
the tag and data RAM modules of ``l3_cache.ram_modules``); every cocotb test of ``sim/rtl/tb/l3_tb.py`` runs in
one simulator process per build and is reported as its own pytest test. The configs cover both replacement
policies, both write policies, bypass on and off, 1..4 ways, 2..8 beats per line, 1..4 MSHRs, 1..4 banks and
the shortest and a long hit latency; each runs the flush tests too (``flush_*``). The ``default`` preset's
cache (128 MiB) is generated and linted, not simulated.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from amaranth.back import verilog

from hwgen.rtl.memory.axi import VivadoTop
from hwgen.rtl.memory.l3_cache import L3Cache, ram_modules, ram_shapes
from hwgen.spec import config
from hwgen.spec.l3 import MIN_HIT_CYCLES, L3Timing
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "l3"
TB_MODULE = "sim.rtl.tb.l3_tb"
COCOTB_TESTS = ["trace_exact_p0", "ready_exact_p0", "trace_stalls_p05", "trace_stalls_p09", "flush_exact_p0",
                "flush_stalls_p05", "flush_stalls_p09"]

CONFIGS = {
    # the tiny preset itself: lru, write-back, 4 ways, 4 MSHRs, 4 beats per line, no bypass
    "tiny": {"base": "tiny"},
    # random replacement, write-back, bypass, 2 ways, 2 beats per line, 2 MSHRs, 4 banks, shortest hit path
    "rand_bypass": {"base": "tiny", "l3": {"bytes": 8192, "line_bytes": 32, "ways": 2, "banks": 4, "mshrs": 2,
                                           "replacement": "random", "bypass": "streaming",
                                           "hit_cycles": MIN_HIT_CYCLES}},
    # write-through, lru, direct-mapped, 8 beats per line, 1 MSHR, bypass
    "wt_direct": {"base": "tiny", "l3": {"bytes": 8192, "line_bytes": 128, "ways": 1, "banks": 1, "mshrs": 1,
                                         "write_policy": "write_through", "bypass": "streaming",
                                         "hit_cycles": 6}},
}


def l3_top(cfg) -> VivadoTop:
    return VivadoTop(L3Cache(cfg), {"bus": "s_axi_l3", "hbm": "m_axi_hbm0"})


@pytest.fixture(scope="module", params=list(CONFIGS))
def l3_results(request) -> tuple[str, dict[str, str | None]]:
    cfg = config.from_dict(CONFIGS[request.param])
    folder = runner.build_component(l3_top(cfg), "l3_top", BUILD_ROOT, ram_modules(cfg))
    env = {"L3_TB_CONFIG": json.dumps(cfg.model_dump())}
    return request.param, runner.run_cocotb(folder, "l3_top", TB_MODULE, extra_env=env)


def test_l3_ran_every_cocotb_test(l3_results):
    assert sorted(l3_results[1]) == sorted(COCOTB_TESTS)


@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_l3_rtl(l3_results, name):
    error = l3_results[1].get(name, "did not run")
    assert error is None, f"{l3_results[0]}: {name}: {error}"


def test_timing_errors_name_the_field():
    with pytest.raises(ValueError, match=r"l3.hit_cycles: 4 is not allowed by the RTL cache: must be >= 5"):
        L3Timing.of(config.from_dict({"base": "tiny", "l3": {"hit_cycles": 4}}))


def test_hit_latency_is_a_property():
    cfg = config.load("tiny")
    assert L3Cache(cfg).hit_latency == cfg.l3.hit_cycles == L3Timing.of(cfg).hit_cycles


def test_ready_is_a_port_and_init_cycles_a_property():
    cfg = config.load("tiny")
    cache = L3Cache(cfg)
    assert "ready" in cache.signature.members
    assert cache.init_cycles == L3Timing.of(cfg).init_cycles == cfg.l3.sets // cfg.l3.banks


def test_flush_ports():
    """``flush`` is an input, ``flushing`` / ``idle`` (1 bit) and ``flush_writebacks`` (32) outputs; the cocotb
    tests ``flush_*`` check their timing against ``L3Ports.flush``."""
    from amaranth.lib.wiring import Flow
    members = L3Cache(config.load("tiny")).signature.members
    shapes = {name: (members[name].flow, members[name].shape)
              for name in ("flush", "flushing", "idle", "flush_writebacks")}
    assert shapes == {"flush": (Flow.In, 1), "flushing": (Flow.Out, 1), "idle": (Flow.Out, 1),
                      "flush_writebacks": (Flow.Out, 32)}, shapes


def test_default_preset_generates_with_ram_modules(tmp_path):
    """The 128 MiB default cache: the Verilog instantiates ``banks`` tag and data RAMs and lists no contents;
    the RAM modules have no ``initial`` block; Verilator lints the whole (``-Wall``, the usual waivers)."""
    cfg = config.load("default")
    files = ram_modules(cfg)
    tag, array = ram_shapes(cfg)
    assert (tag.depth, array.depth) == (cfg.l3.sets // cfg.l3.banks, cfg.l3.bytes // cfg.beat_bytes // cfg.l3.banks)
    text = verilog.convert(l3_top(cfg), name="l3_top", emit_src=False)
    assert len(text) < 2_000_000
    for shape in (tag, array):
        assert len(re.findall(rf"^\s*{shape.module} \w+ \(", text, re.M)) == cfg.l3.banks, shape.module
        assert not re.search(r"^\s*initial\b", files[f"{shape.module}.v"], re.M), shape.module
    for fname, ftext in files.items():
        (tmp_path / fname).write_text(ftext)
    (tmp_path / "l3_top.v").write_text(text)
    cmd = [str(runner._verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--quiet-stats",
           "--top-module", "l3_top", str(runner.WAIVERS), *(str(tmp_path / f) for f in files),
           str(tmp_path / "l3_top.v")]
    proc = subprocess.run(cmd, env=runner.toolchain_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ram_verilog_errors_name_the_field():
    from hwgen.rtl.memory.l3_cache import ram_verilog
    with pytest.raises(ValueError, match=r"depth: 0 is not allowed: must be an integer >= 1"):
        ram_verilog("m", 8, 0)
    with pytest.raises(ValueError, match=r"width: 12 is not allowed with byte enables: must be a multiple of 8"):
        ram_verilog("m", 12, 4, byte_enables=True)
