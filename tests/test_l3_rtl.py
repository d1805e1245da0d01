# amaranth: UnusedElaboratable=no
"""The L3 cache RTL (hwgen/l3_cache.py) against its timing model (sim/memory/l3.py ``L3Ports``).

One Verilator build per config (``L3Cache`` in ``VivadoTop``: slave ``s_axi_l3``, master ``m_axi_hbm0``);
every cocotb test of ``sim/tb/l3_tb.py`` runs in one simulator process per build and is reported as its own
pytest test. The configs cover both replacement policies, both write policies, bypass on and off, 1..4 ways,
2..8 beats per line, 1..4 MSHRs and the shortest and a long hit latency.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwgen import config
from hwgen.axi import VivadoTop
from hwgen.l3_cache import MIN_HIT_CYCLES, L3Cache, L3Timing
from sim import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "l3"
TB_MODULE = "sim.tb.l3_tb"
COCOTB_TESTS = ["trace_exact_p0", "trace_stalls_p05", "trace_stalls_p09"]

CONFIGS = {
    # the tiny preset itself: lru, write-back, 4 ways, 4 MSHRs, 4 beats per line, no bypass
    "tiny": {"base": "tiny"},
    # random replacement, write-back, bypass, 2 ways, 2 beats per line, 2 MSHRs, shortest hit path
    "rand_bypass": {"base": "tiny", "l3": {"bytes": 8192, "line_bytes": 32, "ways": 2, "mshrs": 2,
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
    folder = runner.build_component(l3_top(cfg), "l3_top", BUILD_ROOT)
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
