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
    assert a["l3"]["pj"] == pytest.approx(100 * base.energy.l3_pj_per_64b) and b["l3"]["pj"] == pytest.approx(100.0)
    assert a["hbm"] == b["hbm"]
