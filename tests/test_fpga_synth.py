"""Yosys synthesis of the generated Verilog for ECP5: the tiny chip maps onto block RAMs and multipliers as
designed, per component, and its counts match the fitted resource model within the model's stated error."""
import json

import pytest

from hwgen.spec import config
from sim.fpga.parts import KINDS
from sim.fpga.resource_model import ResourceModel, block_rams, instances, kind_of
from sim.fpga.yosys import _resources, synthesize
from sim.rtl.errors import RtlError
from tests.test_cli import invoke

# both tests read one synthesis: keep them on one xdist worker (make test runs --dist loadgroup)
pytestmark = pytest.mark.xdist_group("tiny_synthesis")


@pytest.fixture(scope="module")
def tiny_synthesis(tmp_path_factory):
    out = tmp_path_factory.mktemp("fpga")
    result = invoke("fpga", "synth", "--config", "tiny", "--family", "ecp5", "--out", out)
    assert result.exit_code == 0, result.output
    cfg = config.load("tiny")
    report = json.loads((out / cfg.build_name / "resources_ecp5_chip.json").read_text())
    return cfg, report, result.output


def _by_kind(report: dict) -> dict[str, dict[str, float]]:
    sums: dict[str, dict[str, float]] = {}
    for path, inst in report["instances"].items():
        own = _resources("ecp5", inst["cells"])
        acc = sums.setdefault(kind_of(path, inst["module"]), dict.fromkeys(KINDS, 0.0))
        for k in KINDS:
            acc[k] += own[k]
    return sums


def test_the_tiny_chip_maps_memories_onto_block_ram_and_products_onto_multipliers(tiny_synthesis):
    cfg, report, output = tiny_synthesis
    kinds = _by_kind(report)
    E, R, L = cfg.scheduler.engines, cfg.engine.rows, cfg.engine.lanes
    # the total is the sum of the instances' own cells
    assert report["total"] == pytest.approx({k: sum(v[k] for v in kinds.values()) for k in KINDS})
    # every L1 read port's copy is block RAM, tiled as designed (no register file)
    assert kinds["scratchpad"]["ram"] == E * block_rams("ecp5", cfg.lines_per_bank, cfg.line_bytes * 8,
                                                         cfg.l1_read_ports * cfg.l1.banks)
    # one MULT18X18D per MAC lane
    assert kinds["mac_lanes"]["dsp"] == E * R * L
    assert report["part"] == "LFE5U-85F" and report["available"]["ram"] == 208
    assert "LUT" in output and "LFE5U-85F has" in output


def test_the_tiny_chip_matches_the_resource_model_within_its_stated_error(tiny_synthesis):
    cfg, report, _ = tiny_synthesis
    model = ResourceModel.load("ecp5")
    predicted = model.predict(cfg)
    for k in KINDS:
        bound = model.chip_error[k]
        measured = report["total"][k]
        assert abs(measured - predicted[k]) <= bound * max(measured, 1.0), (k, measured, predicted[k], bound)
    assert set(instances(cfg)) == set(_by_kind(report))


def test_a_synthesis_failure_names_the_log(tmp_path):
    (tmp_path / "bad.v").write_text("module bad(input a, output b); assign b = ; endmodule\n")
    with pytest.raises(RtlError, match=r"synth_ecp5 of bad failed: .*log: .*synth_ecp5_bad\.log"):
        synthesize(tmp_path, ["bad.v"], "bad", "ecp5")


@pytest.mark.parametrize(("args", "line"), [
    (["--config", "nope"], "error: config: 'nope' is neither a preset"),
    (["--config", "tiny", "--depth", "9"], "error: --depth: 9 is not allowed (allowed: 0..8)"),
    (["--config", "tiny", "--family", "gowin"], "'gowin' is not one of"),
])
def test_bad_synth_input_exits_2_before_any_work(tmp_path, args, line):
    result = invoke("fpga", "synth", *args, "--out", tmp_path)
    assert result.exit_code == 2
    assert line in result.output
    assert not any(tmp_path.iterdir())


def test_a_component_alone_is_placed_and_routed_and_timed(tmp_path):
    """``dsa fpga timing``: the MAC lanes of tiny alone (Yosys, nextpnr out of context, two seeds side by side): an
    FMAX per seed from nextpnr and their median, the worst path between two of its registers, one multiplier per
    lane, the record beside the runs."""
    cfg = config.load("tiny")
    result = invoke("fpga", "timing", "--config", "tiny", "--component", "mac_lanes", "--seeds", "1,2",
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    [record] = json.loads((tmp_path / f"{cfg.build_name}-timing" / "timing.json").read_text())
    assert record["component"] == "mac_lanes" and record["target_mhz"] == cfg.clock.mhz
    assert record["seeds"] == [1, 2] and len(record["fmax_per_seed"]) == 2
    assert record["fmax_mhz"] == pytest.approx(sum(record["fmax_per_seed"]) / 2, abs=0.01)
    assert 20 < record["fmax_mhz"] < cfg.clock.mhz           # a real number, short of tiny's 1 GHz ASIC clock
    assert record["critical_path"]["seed"] in (1, 2)
    assert record["critical_path"]["from"] and record["critical_path"]["to"]
    assert record["resources"]["dsp"] == cfg.engine.lanes
    assert "mac_lanes" in result.output and "MHz" in result.output


@pytest.mark.parametrize(("args", "line"), [
    (["--component", "alu"], "error: --component: 'alu' is not allowed (allowed: all, or comma-separated names of "
                             "scheduler, row_unit"),
    (["--component", ","], "error: --component: ',' is not allowed"),
    (["--seeds", "0"], "error: --seeds: '0' is not allowed (allowed: distinct integers 1..2147483647"),
    (["--jobs", "0"], "error: --jobs: 0 is not allowed (allowed: 1..64)"),
    (["--config", "nope"], "error: config: 'nope' is neither a preset"),
])
def test_bad_timing_input_exits_2_before_any_work(tmp_path, args, line):
    result = invoke("fpga", "timing", *args, "--out", tmp_path)
    assert result.exit_code == 2
    assert line in result.output
    assert not any(tmp_path.iterdir())
