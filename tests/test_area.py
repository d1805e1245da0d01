"""The 45 nm ASIC area model (sim/model/area.py): each component from the published figures in
hwgen/spec/costs.py, growing with what it is made of."""
import pytest

from hwgen.spec import config, costs
from sim.model.area import area_mm2, components

DEFAULT = config.load("default")


def changed(**diff):
    return config.changed(DEFAULT, diff)


def test_an_sram_macro_is_its_cells_over_the_array_efficiency():
    assert costs.sram_mm2(8 << 20) == pytest.approx((8 << 20) * 0.346 / 0.5 / 1e6)     # 1 MiB: 5.8 mm² at 45 nm


def test_the_l3_costs_area_in_proportion_to_its_size():
    small, big = components(changed(l3={"bytes": 1 << 20})), components(changed(l3={"bytes": 128 << 20}))
    assert big["l3"] / small["l3"] == pytest.approx(128, rel=0.02)        # data array; tags scale alike
    assert {k: v for k, v in big.items() if k != "l3"} == {k: v for k, v in small.items() if k != "l3"}
    assert components(changed(l3={"enabled": False}))["l3"] == 0.0


def test_mac_lanes_scale_with_lanes_rows_engines_and_accumulator_width():
    base = components(DEFAULT)["mac_lanes"]
    assert components(changed(engine={"lanes": 32}))["mac_lanes"] == pytest.approx(2 * base)
    assert components(changed(scheduler={"engines": 8}))["mac_lanes"] == pytest.approx(2 * base)
    lane = costs.INT8_MULT_UM2 + costs.INT32_ADD_UM2 + (8 + 8 + 16 + 32) * costs.FLIP_FLOP_UM2
    assert base == pytest.approx(4 * 4 * 16 * lane / 1e6)
    assert components(changed(engine={"acc_bits": 24}))["mac_lanes"] < base


def test_the_scratchpad_is_counted_once_per_read_port():
    c = DEFAULT
    assert components(c)["l1"] == pytest.approx(c.scheduler.engines * costs.sram_mm2(c.l1.bytes * 8 * c.l1_read_ports))


def test_total_is_the_sum_and_tiny_is_smaller():
    assert area_mm2(DEFAULT) == pytest.approx(sum(components(DEFAULT).values()))
    assert area_mm2(config.load("tiny")) < area_mm2(DEFAULT) / 100


def test_a_sweep_point_has_area_and_throughput_per_area():
    from sim.sweep.metrics import point_metrics
    runs = {"w": {"cycles": 1000, "energy_j": 1e-6, "macs": 64000}}
    m = point_metrics(DEFAULT, runs)
    assert m["area_mm2"] == pytest.approx(area_mm2(DEFAULT))
    assert m["macs_per_s_per_mm2"] == pytest.approx(64000 / (1000 / 1e9) / area_mm2(DEFAULT))
