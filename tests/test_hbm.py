"""The HBM timing model (sim/model/memory/hbm.py): unit conversion, each timing constraint on its own, refresh,
bandwidth of streaming vs random rows, determinism, the address map and input errors.

Expected latencies are written from the HbmTiming fields (never from literal cycle counts), so the tests
hold at any clock; a few use the default config's numbers where the brief quotes them.
"""
import math

import numpy as np
import pytest

from hwgen.spec import config
from sim.model.memory.hbm import TIMINGS, AddressMap, HbmModel, HbmTiming, make_requests, map_address

DEFAULT = config.load("default")
SMALL = {"memory": {"hbm": {"channels": 1}}}           # 2 pseudo-channels: long streams in little time


def cfg_with(mhz: float = 1000.0, **hbm) -> config.HwConfig:
    return config.from_dict({"clock": {"mhz": mhz}, "memory": {"hbm": hbm}})


def at(model: HbmModel, pc=0, bg=0, bank=0, row=0, column=0) -> int:
    return int(model.map.unmap(pc, bg, bank, row, column))


def reads(model: HbmModel, addresses, arrival=0) -> np.ndarray:
    ab = model.timing.access_bytes
    return model.serve(make_requests(np.asarray(addresses), ab, arrival))


# ---- unit conversion ------------------------------------------------------------------------------

@pytest.mark.parametrize("mhz", [1000.0, 300.0, 125.0, 1500.0])
def test_timings_are_ns_rounded_up_to_cycles(mhz):
    cfg = cfg_with(mhz)
    t = HbmTiming.of(cfg)
    for name in TIMINGS:
        ns = getattr(cfg.memory.hbm, f"{name}_ns")
        assert getattr(t, name) == math.ceil(round(ns * mhz / 1000, 9)), name
    assert t.cycles == {name: getattr(t, name) for name in TIMINGS}


def test_quoted_conversions_and_derived_values():
    assert HbmTiming.of(cfg_with(1000.0)).tRCD == 14
    assert HbmTiming.of(cfg_with(300.0)).tRCD == 5                 # ceil(4.2)
    t = HbmTiming.of(DEFAULT)
    h = DEFAULT.memory.hbm
    assert t.access_bytes == 32 and t.pseudo_channels == 32
    assert t.burst_ns == pytest.approx(32 * 8 / (32 * 9.6))        # 0.83 ns
    assert t.burst_cycles == pytest.approx(0.8333333) and t.data_cycles == 1
    assert t.peak_gbytes_per_s == pytest.approx(1228.8) == pytest.approx(h.peak_gbytes_per_s)
    assert t.peak_bytes_per_cycle == pytest.approx(1228.8)       # at 1 GHz
    assert t.burst_ticks == 100 and t.ticks_per_cycle == 120
    slow = HbmTiming.of(cfg_with(500.0))
    assert slow.peak_bytes_per_cycle == pytest.approx(2 * t.peak_bytes_per_cycle)
    assert slow.peak_gbytes_per_s == pytest.approx(t.peak_gbytes_per_s)


def test_refresh_longer_than_interval_is_refused():
    with pytest.raises(ValueError, match="tRFC_ns"):
        HbmTiming.of(cfg_with(tRFC_ns=5000.0))


# ---- one constraint at a time ---------------------------------------------------------------------

@pytest.mark.parametrize("mhz", [1000.0, 300.0])
def test_read_to_closed_bank(mhz):
    m = HbmModel(cfg_with(mhz))
    t = m.timing
    assert reads(m, [at(m)], arrival=7).tolist() == [7 + t.tRCD + t.tCL + t.data_cycles]
    assert t.closed_read_cycles == t.tRCD + t.tCL + t.data_cycles


def test_row_hit_spacing_and_latency():
    m = HbmModel(DEFAULT)
    t = m.timing
    first, second = reads(m, [at(m, column=0), at(m, column=1)]).tolist()   # same bank: same bank group
    assert first == t.closed_read_cycles
    assert second - first == t.tCCD_L                                        # tCCD_L-spaced
    (late,) = reads(m, [at(m, column=2)], arrival=100).tolist()
    assert late == 100 + t.hit_read_cycles
    s = m.stats
    assert (s["row_hits"], s["row_misses"], s["row_conflicts"]) == (2, 1, 0)


def test_row_conflict_pays_precharge_and_respects_tras():
    m = HbmModel(DEFAULT)
    t = m.timing
    first, soon = reads(m, [at(m, row=0), at(m, row=1)]).tolist()
    assert first == t.closed_read_cycles
    assert soon == t.tRAS + t.tRP + t.tRCD + t.tCL + t.data_cycles           # PRE waits for tRAS after ACT
    m.reset()
    reads(m, [at(m, row=0)])
    (late,) = reads(m, [at(m, row=1)], arrival=200).tolist()
    assert late == 200 + t.conflict_read_cycles                              # tRAS long past: tRP only
    assert m.stats["row_conflicts"] == 1


def test_write_recovery_before_precharge():
    m = HbmModel(DEFAULT)
    t, k = m.timing, m.timing.ticks_per_cycle
    w = m.serve(make_requests(at(m, row=0), 32, is_write=True))
    write_end = (t.tRCD + t.tCL) * k + t.burst_ticks
    assert w.tolist() == [math.ceil(write_end / k)]
    (r,) = reads(m, [at(m, row=1)]).tolist()
    pre = max(write_end + t.tWR * k, t.tRAS * k)
    assert r == math.ceil((pre + (t.tRP + t.tRCD + t.tCL) * k + t.burst_ticks) / k)


@pytest.mark.parametrize("same_group", [True, False])
def test_trrd_short_and_long(same_group):
    m = HbmModel(DEFAULT)
    t = m.timing
    second = at(m, bank=1) if same_group else at(m, bg=1)
    done = reads(m, [at(m), second]).tolist()
    assert done[1] == (t.tRRD_L if same_group else t.tRRD_S) + t.closed_read_cycles


def test_tfaw_delays_the_fifth_activate():
    m = HbmModel(DEFAULT)
    t = m.timing
    banks = [at(m, bg=i % 4, bank=i // 4) for i in range(5)]               # five banks, four bank groups
    done = reads(m, banks).tolist()
    assert done[:4] == [i * t.tRRD_S + t.closed_read_cycles for i in range(4)]
    assert done[4] == t.tFAW + t.closed_read_cycles                          # 5th ACT: tFAW after the 1st
    assert t.tFAW > 4 * t.tRRD_S                                             # so tFAW, not tRRD, decides


def test_pseudo_channels_are_independent():
    m = HbmModel(DEFAULT)
    t = m.timing
    done = reads(m, [at(m, pc=p, row=p) for p in range(t.pseudo_channels)]).tolist()
    assert done == [t.closed_read_cycles] * t.pseudo_channels


def test_burst_is_split_over_pseudo_channels():
    m1, m2 = HbmModel(DEFAULT), HbmModel(DEFAULT)
    (burst,) = m1.serve(make_requests(0, 4096)).tolist()
    singles = reads(m2, np.arange(128) * 32)
    assert burst == singles.max()
    assert m1.stats["accesses"] == 128 and m1.stats["bytes_read"] == 4096
    assert sum(h > 0 for h in m1.stats["per_pc"]["row_misses"]) == 32       # every pseudo-channel used
    unaligned = HbmModel(DEFAULT).serve(make_requests(16, 32))               # straddles two accesses
    assert unaligned.tolist() == [HbmTiming.of(DEFAULT).closed_read_cycles]


# ---- refresh and bandwidth ------------------------------------------------------------------------

def stream(cfg, accesses, **kw) -> dict:
    m = HbmModel(cfg, **kw)
    ab = cfg.memory.hbm.access_bytes
    m.serve(make_requests(np.arange(accesses) * ab, ab))
    return m.stats


def test_refresh_costs_about_trfc_over_trefi():
    cfg = config.from_dict(SMALL)
    no_refresh = config.from_dict({"memory": {"hbm": {"channels": 1, "tREFI_ns": 1e9}}})
    t = HbmTiming.of(cfg)
    with_ref, without = stream(cfg, 1 << 16), stream(no_refresh, 1 << 16)
    per_pc = with_ref["refreshes"] / t.pseudo_channels
    assert without["refreshes"] == 0 and per_pc == with_ref["span_cycles"] // t.tREFI
    lost = (with_ref["span_cycles"] - without["span_cycles"]) / per_pc
    # tRFC, plus draining and refilling the pipeline around it: tRTP + PRE-all (tRP), then the first four
    # ACTs (tRRD_S apart) + READ (tRCD), and at times a tFAW wait when the next row switch follows closely
    assert t.tRFC <= lost <= t.tRFC + t.tRP + t.tRCD + t.tCL + t.tFAW
    loss = 1 - with_ref["bandwidth_bytes_per_cycle"] / without["bandwidth_bytes_per_cycle"]
    assert loss == pytest.approx(t.tRFC / t.tREFI, rel=0.25)
    print(f"refresh: {lost:.0f} cycles lost per refresh, bandwidth loss {100 * loss:.2f} % "
          f"(tRFC/tREFI = {100 * t.tRFC / t.tREFI:.2f} %)")


def test_streaming_reaches_the_column_limit_and_random_rows_do_not():
    t = HbmTiming.of(DEFAULT)
    seq = stream(DEFAULT, 1 << 17)
    refresh = 1 - t.tRFC / t.tREFI
    column_bound = t.column_limit_bytes_per_cycle / t.peak_bytes_per_cycle   # max(tCCD_S, burst) per access
    assert seq["efficiency"] >= 0.97 * column_bound * refresh
    assert seq["row_hits"] / seq["accesses"] > 0.95
    rng = np.random.default_rng(1)
    m = HbmModel(DEFAULT)
    reads(m, rng.integers(0, 1 << 25, 1 << 15) * 32)
    rand = m.stats
    assert rand["row_hits"] / rand["accesses"] < 0.01
    assert rand["efficiency"] < seq["efficiency"] / 4
    print(f"default: sequential {100 * seq['efficiency']:.1f} % of {t.peak_gbytes_per_s:.1f} GB/s "
          f"({seq['bandwidth_gbytes_per_s']:.1f} GB/s; column bound {100 * column_bound:.1f} %), "
          f"random rows {100 * rand['efficiency']:.1f} % ({rand['bandwidth_gbytes_per_s']:.1f} GB/s)")


def test_streaming_reaches_80_percent_of_peak_when_tccd_s_matches_the_burst():
    h = DEFAULT.memory.hbm
    cfg = cfg_with(tCCD_S_ns=h.access_bytes * 8 / (h.pc_bits * h.pin_gbps))
    seq = stream(cfg, 1 << 17)
    assert seq["efficiency"] >= 0.80
    print(f"tCCD_S = burst: sequential {100 * seq['efficiency']:.1f} % of peak")


def test_banks_below_columns_stall_on_tfaw():
    """The default map keeps row switches apart; all banks switching together is measurably slower."""
    good = stream(DEFAULT, 1 << 16)
    bad = stream(DEFAULT, 1 << 16, order=("pseudo_channel", "bank_group", "bank", "column"))
    assert bad["efficiency"] < 0.9 * good["efficiency"]


def test_stats_bytes_energy_latency():
    m = HbmModel(DEFAULT)
    t = m.timing
    m.serve(make_requests([0, 4096], [64, 128], arrival=[0, 0], is_write=[False, True]))
    s = m.stats
    assert (s["bytes_read"], s["bytes_written"]) == (64, 128)
    assert s["energy_pj"] == pytest.approx((64 + 128) * 8 * DEFAULT.memory.hbm.pj_per_bit)
    assert s["requests"] == 2 and s["accesses"] == 6
    assert s["avg_latency_cycles"] == pytest.approx(s["span_cycles"] / 2 + t.closed_read_cycles / 2, abs=20)
    assert sum(s["per_pc"]["busy_cycles"]) == pytest.approx(6 * t.burst_cycles)
    assert s["bandwidth_gbytes_per_s"] == pytest.approx(192 / s["span_cycles"] * DEFAULT.clock.mhz / 1000)


# ---- determinism and incremental use --------------------------------------------------------------

def random_requests(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    return make_requests(rng.integers(0, 1 << 22, n), rng.integers(1, 300, n), np.sort(rng.integers(0, 20000, n)),
                         rng.random(n) < 0.3)


def test_deterministic():
    r = random_requests()
    a, b = HbmModel(DEFAULT), HbmModel(DEFAULT)
    assert np.array_equal(a.serve(r), b.serve(r.copy()))
    assert a.stats == b.stats


def test_serving_in_arrival_ordered_batches_equals_one_call():
    r = random_requests()
    whole = HbmModel(DEFAULT).serve(r)
    m = HbmModel(DEFAULT)
    parts = [m.serve(r[i:i + 500]) for i in range(0, len(r), 500)]
    assert np.array_equal(np.concatenate(parts), whole)
    assert (whole >= r["arrival"] + HbmTiming.of(DEFAULT).hit_read_cycles).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_serve_units_equals_serve_call_for_call(seed):
    """The scalar path the AXI ports take (one cycle, one direction, a few accesses) gives serve's completions and
    counters, over a long random mix of bursts, unaligned starts, reads and writes."""
    rng = np.random.default_rng(seed)
    a, b = HbmModel(DEFAULT), HbmModel(DEFAULT)
    cycle = 0
    for _ in range(400):
        cycle += int(rng.integers(0, 40))
        n = int(rng.integers(1, 5))
        addresses = (rng.integers(0, 1 << 24, size=n) * int(rng.choice([1, 16, 32]))).tolist()
        sizes = rng.integers(1, 129, size=n).tolist()
        write = bool(rng.random() < 0.3)
        want = a.serve(make_requests(np.asarray(addresses), np.asarray(sizes), cycle, write)).tolist()
        assert b.serve_units(cycle, write, addresses, sizes) == want
    assert a.stats == b.stats


# ---- address map ----------------------------------------------------------------------------------

@pytest.mark.parametrize("interleave", [None, 64, 256, 1024])
@pytest.mark.parametrize("order", [("pseudo_channel", "bank_group", "column", "bank"),
                                   ("pseudo_channel", "bank_group", "bank", "column"),
                                   ("bank", "column", "bank_group", "pseudo_channel")])
def test_address_map_round_trip(interleave, order):
    amap = AddressMap.of(DEFAULT, interleave, order)
    addr = np.random.default_rng(0).integers(0, 1 << 36, 5000)
    assert np.array_equal(amap.unmap(*amap.map(addr)), addr - addr % 32)


def test_address_map_covers_every_location_once():
    h = DEFAULT.memory.hbm
    n = h.pseudo_channels_total * h.bank_groups * h.banks_per_group * (h.row_bytes // h.access_bytes)
    pc, bg, bank, row, col = map_address(DEFAULT, np.arange(2 * n) * h.access_bytes)
    assert (row[:n] == 0).all() and (row[n:] == 1).all()
    flat = ((pc * h.bank_groups + bg) * h.banks_per_group + bank) * (h.row_bytes // 32) + col
    assert np.array_equal(np.sort(flat[:n]), np.arange(n))
    # pseudo-channels rotate first, then bank groups, then columns
    assert pc[:32].tolist() == list(range(32)) and (bg[:32] == 0).all() and (bg[32:64] == 1).all()
    assert col[:128].max() == 0 and col[128] == 1


def test_interleave_keeps_chunks_together():
    pc, _, _, _, col = map_address(DEFAULT, np.arange(16) * 32, interleave=256)
    assert pc.tolist() == [0] * 8 + [1] * 8
    assert col.tolist() == list(range(8)) * 2


# ---- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("address", -32, "requests.address: -32 .*must be >= 0"),
    ("bytes", 0, "requests.bytes: 0 .*must be >= 1"),
    ("arrival", -1, "requests.arrival: -1 .*must be >= 0"),
])
def test_bad_request_values_name_the_field(field, value, message):
    r = make_requests([0, 64], 32)
    r[field][1] = value
    with pytest.raises(ValueError, match=message):
        HbmModel(DEFAULT).serve(r)


def test_bad_request_shapes_name_the_field():
    m = HbmModel(DEFAULT)
    with pytest.raises(ValueError, match="missing field 'bytes'"):
        m.serve({"arrival": [0], "address": [0], "is_write": [False]})
    with pytest.raises(ValueError, match="requests.arrival: dtype float64"):
        m.serve({"arrival": [0.5], "address": [0], "is_write": [False], "bytes": [32]})
    with pytest.raises(ValueError, match="requests: must be a structured array"):
        m.serve([(0, 0, False, 32)])
    assert m.serve(make_requests(np.zeros(0, int), 32)).shape == (0,)


def test_bad_map_arguments():
    with pytest.raises(ValueError, match="address: -1"):
        map_address(DEFAULT, [-1])
    with pytest.raises(ValueError, match="interleave: 48"):
        AddressMap.of(DEFAULT, 48)
    with pytest.raises(ValueError, match="interleave: 2048"):
        AddressMap.of(DEFAULT, 2048)
    with pytest.raises(ValueError, match="order"):
        AddressMap.of(DEFAULT, order=("pseudo_channel", "bank"))
    with pytest.raises(ValueError, match="queue_depth"):
        HbmModel(DEFAULT, queue_depth=0)
