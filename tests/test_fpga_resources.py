"""FPGA resource counting: the Yosys stat walk, the block-RAM tiling, the component kinds and the fitted model."""
import pytest

from hwgen.spec import config
from sim.fpga.parts import BOARDS, KINDS
from sim.fpga.resource_model import COMPONENTS, FEATURES, ResourceModel, block_rams, fit, instances, kind_of
from sim.fpga.yosys import dedupe_modules, instances_of


def _stat(modules: dict[str, dict[str, int]]) -> dict:
    return {"modules": {f"\\{name}": {"num_cells_by_type": cells} for name, cells in modules.items()}}


def test_the_walk_adds_children_to_their_parents_and_counts_each_instance():
    stat = _stat({
        "top": {"LUT4": 10, "TRELLIS_FF": 5, "\\top.a": 1, "\\ram_w8": 2},
        "top.a": {"LUT4": 3, "CCU2C": 2, "MULT18X18D": 1, "PFUMX": 7},
        "ram_w8": {"DP16KD": 4},
    })
    found = instances_of(stat, "ecp5", "top")
    assert list(found) == ["top", "top.a", "top.ram_w8[0]", "top.ram_w8[1]"]
    assert found["top.a"].total == {"lut": 3 + 2 * 2, "ff": 0, "dsp": 1, "ram": 0}   # a CCU2C is two LUT4
    assert found["top"].total == {"lut": 10 + 7, "ff": 5, "dsp": 1, "ram": 8}
    assert found["top"].cells == {"LUT4": 10, "TRELLIS_FF": 5}                     # its own cells only


@pytest.mark.parametrize(("family", "depth", "width", "expected"), [
    ("ecp5", 256, 128, 4),      # 512 x 36: four side by side
    ("ecp5", 128, 128, 4),      # half empty, still four
    ("ecp5", 2048, 8, 1),       # 2048 x 9
    ("ecp5", 4096, 32, 8),      # 4096 x 4, eight side by side, or 1024 x 18 / 512 x 36 deeper: 8 either way
    ("ecp5", 1024, 256, 15),    # 1024 x 18: 15 side by side; 512 x 36: 8 wide but twice deep = 16
    ("xilinx", 512, 128, 2),    # 512 x 72
])
def test_block_rams_take_the_cheapest_tiling(family, depth, width, expected):
    assert block_rams(family, depth, width) == expected


def test_every_synthesized_instance_has_a_kind():
    assert kind_of("dsa_tiny_chip.inner.engine0.unit1", "x") == "row_unit"
    assert kind_of("dsa_tiny_chip.inner.engine0.unit1.mac", "x") == "mac_lanes"
    assert kind_of("dsa_tiny_chip.inner.engine1.topk.unit", "x") == "topk_softmax"
    assert kind_of("dsa_tiny_chip.inner.engine0.store_tlb", "x") == "tlb"
    assert kind_of("dsa_tiny_chip.inner.l3.l3_tag_ram_w120_d128[1]", "l3_tag_ram_w120_d128") == "l3_ram"
    assert kind_of("dsa_tiny_chip.inner.csr", "x") == "chip"
    assert set(instances(config.load("tiny"))) <= set(COMPONENTS)


def test_the_fit_recovers_a_linear_law_and_states_its_error():
    cfgs = [config.from_dict({"base": "ulx3s", "memory": {"tlb_entries": n}}) for n in (2, 4, 8, 16)]
    rows = [{"config": c, "family": "ecp5", "kind": "tlb", "lut": 100 + 250 * c.memory.tlb_entries,
             "ff": 60 * c.memory.tlb_entries, "dsp": 0, "ram": 0} for c in cfgs]
    model = fit(rows, "ecp5")
    assert model.component("tlb", config.from_dict({"base": "ulx3s", "memory": {"tlb_entries": 32}}))["lut"] == (
        pytest.approx(100 + 250 * 32, rel=1e-6))
    assert model.error["tlb"]["lut"] < 1e-6
    assert len(model.coef["tlb"]["lut"]) == len(FEATURES["tlb"])



def test_copies_of_a_module_are_written_once_and_instantiated_in_their_places():
    def leaf(name, helper):
        return (f"(* generator = \"x\" *)\nmodule \\{name} (a, y);\n"
                f"  reg \\$auto$verilog_backend.cc:1:dump_module${helper} = 0;\n"
                "  input a;\n  output y;\n  assign y = ~a;\nendmodule\n")
    text = ("/* header */\nmodule top(a, y);\n  input a;\n  output y;\n  wire m;\n"
            "  \\top.u0  u0 (.a(a), .y(m));\n  \\top.u1  u1 (.a(m), .y(y));\nendmodule\n"
            + leaf("top.u0", 1) + leaf("top.u1", 2) + leaf("top.other", 3).replace("~a", "a"))
    out = dedupe_modules(text)
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("module ")] == ["top(a,", "\\top.u0",
                                                                                      "\\top.other"]
    assert "  \\top.u0  u0 (" in out and "  \\top.u0  u1 (" in out    # instance names kept
    assert out.count('(* generator = "x" *)') == 2


def test_the_committed_model_covers_every_kind_and_predicts_the_presets_inside_their_parts():
    model = ResourceModel.load("ecp5")
    assert set(model.coef) == set(COMPONENTS)
    ulx3s = config.load("ulx3s")
    used = model.predict(ulx3s)
    available = BOARDS[ulx3s.board.target].available()
    # the board preset fits with margin on every resource
    assert all(used[k] <= 0.85 * available[k] for k in KINDS), (used, available)
    # and the ASIC-class preset does not fit that part
    assert model.predict(config.load("default"))["ram"] > available["ram"]


def test_characterize_refuses_a_job_count_below_one(capsys):
    from sim.fpga import characterize
    with pytest.raises(SystemExit) as exit_info:
        characterize.main(["--jobs", "0"])
    assert exit_info.value.code == 2
    assert "--jobs: 0 is not allowed (allowed: 1 or more)" in capsys.readouterr().err
