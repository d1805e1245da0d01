"""Energy per level: counters x the config's energy table (sim/model/memory/energy.py)."""
import pytest

from hwgen.spec import config
from sim.model.memory.energy import energy_report


def test_levels_priced_from_the_config():
    cfg = config.load("default")
    e = cfg.energy
    stats = {"lane_macs": 1000, "gated_macs": 100, "useful_macs": 800, "l1_read_bytes": 640, "l1_write_bytes": 64,
             "out_read_bytes": 128, "out_write_bytes": 130, "hbm": {"bytes_read": 4096, "bytes_written": 512}}
    r = energy_report(cfg, stats)
    lv = r["levels"]
    assert lv["mac"] == {"macs": 900, "pj": pytest.approx(900 * e.mac_pj)}
    assert lv["l1"]["pj"] == pytest.approx((80 + 8) * e.l1_pj_per_64b)
    assert lv["out"]["pj"] == pytest.approx((16 + 17) * e.out_pj_per_64b)        # 130 bytes: 17 words
    assert lv["hbm"]["pj"] == pytest.approx(4608 * 8 * cfg.memory.hbm.pj_per_bit)
    assert "l3" not in lv                                                        # nothing went through it
    assert r["total_pj"] == pytest.approx(sum(v["pj"] for v in lv.values()))
    assert r["pj_per_useful_mac"] == pytest.approx(r["total_pj"] / 800)


def test_overrides_change_only_their_level():
    base = config.load("default")
    cheap = base.model_copy(update={"energy": base.energy.model_copy(update={"l3_pj_per_64b": 1.0})})
    stats = {"l3": {"bytes_read": 800, "bytes_written": 0}, "hbm": {"bytes_read": 80, "bytes_written": 0}}
    a, b = energy_report(base, stats)["levels"], energy_report(cheap, stats)["levels"]
    assert a["l3"]["pj"] == pytest.approx(100 * base.l3_pj_per_64b) and b["l3"]["pj"] == pytest.approx(100.0)
    assert a["hbm"] == b["hbm"]


def test_the_l3_costs_grow_with_its_size_unless_the_config_fixes_them():
    """An unset l3.hit_cycles / energy.l3_pj_per_64b follow one slice's size (hwgen/spec/costs.py): a 128 MiB L3
    at 1 GHz is tens of cycles away and a nanojoule an access; 1 MiB is a few cycles and ~100 pJ (Horowitz)."""
    from hwgen.spec import costs
    from hwgen.spec.l3 import MIN_HIT_CYCLES, L3Timing

    def l3(size, ports=1, **fixed):
        return config.from_dict({"l3": {"bytes": size, **fixed}, "memory": {"ports": ports, "interleave_bytes": 256}})
    sizes = [1 << 20, 8 << 20, 32 << 20, 128 << 20]
    hits = [l3(s).l3_hit_cycles for s in sizes]
    pjs = [l3(s).l3_pj_per_64b for s in sizes]
    assert hits == sorted(hits) and len(set(hits)) == len(hits) and 30 <= hits[-1] <= 45
    assert pjs == sorted(pjs) and pjs[0] == pytest.approx(100, rel=0.05) and 800 < pjs[-1] < 1300
    assert L3Timing.of(l3(128 << 20)).hit_cycles == hits[-1]                 # the RTL and the model read this
    assert l3(128 << 20, ports=4).l3_hit_cycles == l3(32 << 20).l3_hit_cycles   # a slice is what a request reaches
    assert l3(64 << 10).l3_hit_cycles == MIN_HIT_CYCLES
    fixed = l3(128 << 20, hit_cycles=8)
    assert fixed.l3_hit_cycles == 8 and fixed.digest() != l3(128 << 20).digest()
    # the fits go through their published points within a factor of 1.6
    for capacity, value, _ in costs.LATENCY_POINTS:
        assert 1 / 1.6 < costs.sram_latency_ns(capacity) / value < 1.6
    for capacity, value, _ in costs.ENERGY_POINTS:
        assert 1 / 1.2 < costs.sram_pj_per_64b(capacity) / value < 1.2
