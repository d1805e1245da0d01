"""The L3 cache model (sim/memory/l3.py): tags and replacement in lockstep with a naive reference over many
small configs, each timing rule on its own (hit, miss, merge, MSHR-full, bank conflict, write-back, write-through,
bypass, disabled, flush), batching that changes nothing, statistics, input errors and the AMAT bench.

Expected cycles come from a second, fresh HbmModel given the requests the module docstring says the cache
makes, so every timing test is exact at any HBM setting.
"""
import random
import re

import numpy as np
import pytest

from hwgen import config
from sim.memory.hbm import HbmModel, make_requests
from sim.memory.l3 import BENCH_TRACES, L3Cache, amat_bench, controller_cycles, lfsr_step

ONE_CHANNEL = {"channels": 1}                # 2 pseudo-channels: the HBM model serves small batches fast


def cfg_with(**l3) -> config.HwConfig:
    return config.from_dict({"base": "tiny", "memory": {"hbm": ONE_CHANNEL}, "l3": l3})


def hbm_done(ref: HbmModel, arrival: int, address: int, nbytes: int, write: bool = False) -> int:
    """What the HBM answers to one request, served after everything given to ``ref`` before."""
    return int(ref.serve(make_requests(address, nbytes, arrival, write))[0])


def lines_in(lb: int, address: int, nbytes: int) -> range:
    return range(address // lb, (address + nbytes - 1) // lb + 1)


# ---- naive reference: tags only, no time -----------------------------------------------------------

class Reference:
    """Dict of sets, each a way list plus an LRU list (least recent first); the module docstring's rules."""

    def __init__(self, c: config.L3Config, access_bytes: int, seed: int = 0xACE1):
        self.c, self.ab, self.lfsr = c, access_bytes, seed
        self.sets = {}
        self.n = dict.fromkeys(("hits", "misses", "evictions", "writebacks", "bypassed", "hbm_read", "hbm_written"), 0)

    def hbm_bytes(self, address: int, nbytes: int) -> int:        # the HBM counts whole 32-byte accesses
        return ((address + nbytes - 1) // self.ab - address // self.ab + 1) * self.ab

    def access(self, address: int, nbytes: int, write: bool, stream: bool) -> None:
        lb, c, n = self.c.line_bytes, self.c, self.n
        for line in lines_in(lb, address, nbytes):
            lo = max(address, line * lb)
            size = min(address + nbytes, (line + 1) * lb) - lo
            ways, lru, dirty = self.sets.setdefault(line % c.sets, ([None] * c.ways, [], {}))
            if write and c.write_policy == "write_through":
                n["hbm_written"] += self.hbm_bytes(lo, size)
            if line in ways:
                n["hits"] += 1
                lru.remove(line)
                lru.append(line)
                dirty[line] |= write and c.write_policy == "write_back"
                continue
            n["misses"] += 1
            if write and c.write_policy == "write_through":
                continue
            if stream and not write and c.bypass == "streaming":
                n["bypassed"] += 1
                n["hbm_read"] += self.hbm_bytes(lo, size)
                continue
            if not (write and size == lb):
                n["hbm_read"] += lb
            if None in ways:
                way = ways.index(None)
            else:
                if c.replacement == "lru":
                    way = ways.index(lru[0])
                else:
                    self.lfsr = (self.lfsr >> 1) ^ (0xB400 if self.lfsr & 1 else 0)
                    way = self.lfsr & (c.ways - 1)
                victim = ways[way]
                n["evictions"] += 1
                lru.remove(victim)
                if dirty.pop(victim):
                    n["writebacks"] += 1
                    n["hbm_written"] += lb
            ways[way] = line
            lru.append(line)
            dirty[line] = write and c.write_policy == "write_back"

    def contents(self) -> dict[int, bool]:
        return {line: d for _, _, dirty in self.sets.values() for line, d in dirty.items()}


def random_trace(c: config.L3Config, n: int, rng: random.Random, spacing: int):
    """Requests of 1-3 lines (whole or partial) over 4x the capacity, reads and writes, some streaming."""
    lb, lines = c.line_bytes, 4 * c.bytes // c.line_bytes
    cycle, out = 0, []
    for _ in range(n):
        line = rng.randrange(lines)
        if rng.random() < 0.5:
            address, nbytes = line * lb, lb * rng.choice((1, 1, 2, 3))
        else:
            address = line * lb + rng.randrange(lb)
            nbytes = rng.randrange(1, 2 * lb)
        out.append((cycle, address, nbytes, rng.random() < 0.4, rng.random() < 0.3))
        cycle += spacing if spacing >= 100 else rng.randrange(spacing + 1)
    return out


SHAPES = [  # bytes, line_bytes, ways, banks
    (1024, 32, 1, 1), (1024, 32, 2, 4), (2048, 64, 4, 2), (2048, 32, 8, 2), (1024, 32, 32, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("replacement", ["lru", "random"])
@pytest.mark.parametrize("write_policy", ["write_back", "write_through"])
@pytest.mark.parametrize("bypass", ["none", "streaming"])
def test_lockstep_with_reference(shape, replacement, write_policy, bypass):
    size, lb, ways, banks = shape
    cfg = cfg_with(bytes=size, line_bytes=lb, ways=ways, banks=banks, mshrs=2, replacement=replacement,
                   write_policy=write_policy, bypass=bypass)
    rng = random.Random(f"{shape}{replacement}{write_policy}{bypass}")
    for spacing in (1000, 3):                 # far apart: nothing in flight; close: merges and MSHR stalls
        trace = random_trace(cfg.l3, 300, rng, spacing)
        cache, ref = L3Cache(cfg), Reference(cfg.l3, cfg.memory.hbm.access_bytes)
        for i in range(0, len(trace), 50):    # requests by access_many, reference one at a time
            chunk = trace[i:i + 50]
            cache.access_many(*zip(*chunk))
            for _, address, nbytes, write, stream in chunk:
                ref.access(address, nbytes, write, stream)
            s, r = cache.stats, ref.n
            assert (s["hits"] + s["merged"], s["misses"] - s["merged"]) == (r["hits"], r["misses"])
            for key in ("evictions", "writebacks", "bypassed"):
                assert s[key] == r[key], key
            assert (s["hbm_bytes_read"], s["hbm_bytes_written"]) == (r["hbm_read"], r["hbm_written"])
        if spacing == 1000:                   # every fill is long done when the next request comes
            assert s["merged"] == 0
        probe = range(0, 4 * size + 4 * lb, lb)            # requests may run past the last line
        assert {a // lb: cache.dirty(a) for a in probe if cache.contains(a)} == ref.contents()
        if write_policy == "write_through":
            assert s["writebacks"] == 0 and not any(ref.contents().values())


def test_lockstep_sees_every_event():
    """The random traces above reach every counter (else the lockstep proves little)."""
    cfg = cfg_with(bytes=1024, line_bytes=32, ways=2, banks=4, mshrs=2, bypass="streaming")
    cache = L3Cache(cfg)
    cache.access_many(*zip(*random_trace(cfg.l3, 300, random.Random(1), 3)))
    s = cache.stats
    for key in ("hits", "misses", "merged", "bypassed", "evictions", "writebacks", "mshr_stall_cycles",
                "bank_conflict_stall_cycles"):
        assert s[key] > 0, key


# ---- batching changes nothing -----------------------------------------------------------------------

class ServeEachRequest(L3Cache):
    """Hands every HBM request to the HBM on its own: the semantics the batching must keep."""

    def _issue(self, arrival, address, nbytes, write):
        req = super()._issue(arrival, address, nbytes, write)
        self._serve()
        return req


@pytest.mark.parametrize("mshrs", [1, 4])
@pytest.mark.parametrize("write_policy", ["write_back", "write_through"])
def test_batches_equal_one_request_at_a_time(mshrs, write_policy):
    cfg = cfg_with(bytes=2048, line_bytes=32, ways=2, banks=2, mshrs=mshrs, write_policy=write_policy,
                   bypass="streaming")
    trace = random_trace(cfg.l3, 400, random.Random(mshrs), 4)
    batched, eager, single = L3Cache(cfg), ServeEachRequest(cfg), L3Cache(cfg)
    done = batched.access_many(*zip(*trace)).tolist()
    assert done == [eager.access(*req) for req in trace] == [single.access(*req) for req in trace]
    assert batched.stats == eager.stats == single.stats
    assert batched.hbm.stats == eager.hbm.stats
    assert batched.stats["merged"] > 0 and batched.stats["mshr_stall_cycles"] > 0


def test_fill_landing_on_the_tag_check_is_a_hit_inside_a_batch():
    """The batch lower bound (HBM completion >= arrival + hit_read_cycles) is tight: a row-hit fill meets it."""
    cfg = cfg_with()
    cache = L3Cache(cfg)
    h, ctrl, t = cache.hit_cycles, cache.controller_cycles, cache.hbm.timing
    cache.access(0, 0, 64)                                        # opens the HBM row of line 4 as well
    fill = 1000 + h + ctrl + t.hit_read_cycles                    # line 4: an HBM row hit
    done = cache.access_many([1000, fill - h], [256, 256], 64).tolist()
    assert done == [fill, fill]
    assert (cache.stats["hits"], cache.stats["merged"]) == (1, 0)


# ---- timing, one rule at a time ---------------------------------------------------------------------

def test_hit_takes_exactly_hit_cycles():
    for hit in (1, 8, 13):
        cfg = cfg_with(hit_cycles=hit)
        cache = L3Cache(cfg)
        cache.access(0, 0, 64)
        assert cache.access(1000, 0, 64) == 1000 + hit
        assert cache.access(1010, 16, 8) == 1010 + hit           # part of the line
        assert cache.access(2000, 0, 64, write=True) == 2000 + hit


def test_read_miss_timing_and_controller_latency():
    cfg = cfg_with(hit_cycles=5, banks=4)
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    ctrl = controller_cycles(cfg)
    assert ctrl == cache.controller_cycles == 20                   # 20 ns at 1 GHz
    assert controller_cycles(config.from_dict({"base": "tiny", "clock": {"mhz": 300.0}})) == 6   # ceil(6.0)
    assert controller_cycles(config.from_dict({"base": "tiny", "clock": {"mhz": 125.0}})) == 3   # ceil(2.5)
    assert cache.access(7, 100, 8) == hbm_done(ref, 7 + 5 + ctrl, 64, 64)      # the whole line is fetched
    assert cache.stats["hbm_bytes_read"] == 64
    # a request over three lines: three banks at once; each line fetched on its own
    done = cache.access(50, 1024 + 10, 150)
    expect = [hbm_done(ref, 50 + 5 + ctrl, a, 64) for a in (1024, 1088, 1152)]
    assert done == max(expect)
    assert cache.hbm.stats == ref.stats


def test_miss_to_a_line_in_flight_merges():
    cfg = cfg_with()
    cache = L3Cache(cfg)
    first = cache.access(0, 0, 64)
    assert cache.access(1, 32, 8) == first                       # waits for the same fill, no new request
    assert cache.access(first - cache.hit_cycles - 1, 0, 64) == first   # tag check one cycle before the fill
    s = cache.stats
    assert (s["misses"], s["merged"], s["hits"], s["hbm_requests"]) == (3, 2, 0, 1)
    # once the line is there (a hit would finish at or after the fill) it is a hit
    assert cache.access(first - cache.hit_cycles, 0, 64) == first
    assert cache.stats["hits"] == 1


def test_mshr_full_waits_for_the_earliest():
    cfg = cfg_with(mshrs=2, banks=4, bytes=65536)
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    h, ctrl = cache.hit_cycles, cache.controller_cycles
    d0 = cache.access(0, 0, 64)                                  # lines 0, 1, 2: three banks
    d1 = cache.access(0, 64, 64)
    d2 = cache.access(0, 128, 64)
    e0, e1 = hbm_done(ref, h + ctrl, 0, 64), hbm_done(ref, h + ctrl, 64, 64)
    assert (d0, d1) == (e0, e1)
    assert d2 == hbm_done(ref, min(e0, e1) + ctrl, 128, 64)      # the third miss takes the first free MSHR
    assert cache.stats["mshr_stall_cycles"] == min(e0, e1) - h
    # a hit is not held up by full MSHRs
    cache.access(0, 64 * 3, 64, write=True)                      # whole-line write (bank 3): no MSHR
    assert cache.access(1, 64 * 3, 64) == 1 + h


def test_bank_conflict_costs_a_cycle():
    cfg = cfg_with(banks=2, bytes=65536, ways=4)                  # 256 sets; set % 2 is the bank
    cache = L3Cache(cfg)
    h = cache.hit_cycles
    for line in (0, 1, 2):
        cache.access(0, line * 64, 64, write=True)               # present (and dirty)
    t = 1000
    assert cache.access(t, 0, 64) == t + h                       # bank 0
    assert cache.access(t, 64, 64) == t + h                      # bank 1: in parallel
    assert cache.access(t, 128, 64) == t + 1 + h                 # bank 0 again: one cycle later
    # lines 0, 1, 2 at once: bank 0 is busy until t + 2, so line 0 starts at t + 2 and line 2 at t + 3
    assert cache.access(t, 0, 192) == t + 3 + h
    assert cache.stats["bank_conflict_stall_cycles"] == 1 + 1 + (2 + 1 + 3)   # the writes, line 2, the request


def test_full_line_write_allocates_without_reading_hbm():
    cfg = cfg_with()
    cache = L3Cache(cfg)
    assert cache.access(10, 256, 64, write=True) == 10 + cache.hit_cycles
    assert cache.contains(256) and cache.dirty(256)
    s = cache.stats
    assert (s["misses"], s["hbm_requests"], s["hbm_bytes_read"]) == (1, 0, 0)
    assert cache.access(100, 256, 64) == 100 + cache.hit_cycles
    # a partial-line write miss reads the line first and completes when it is there
    ref = HbmModel(cfg)
    arrival = 200 + cache.hit_cycles + cache.controller_cycles
    assert cache.access(200, 512, 8, write=True) == hbm_done(ref, arrival, 512, 64)
    assert cache.dirty(512) and cache.stats["hbm_bytes_read"] == 64


def test_dirty_victim_is_written_back_after_the_fetch():
    cfg = cfg_with(ways=1, bytes=4096, banks=2)                   # direct-mapped, 64 sets
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    h, ctrl, way_apart = cache.hit_cycles, cache.controller_cycles, 4096
    cache.access(0, 0, 64, write=True)                           # line 0 dirty, no HBM
    cache.access(0, 64, 64)                                      # line 1 clean (fetched)
    hbm_done(ref, h + ctrl, 64, 64)
    done = cache.access(1000, way_apart, 64)                     # same set as line 0: evicts it
    assert done == hbm_done(ref, 1000 + h + ctrl, way_apart, 64)
    hbm_done(ref, 1000 + h + ctrl, 0, 64, write=True)            # the write-back, after the fetch
    cache.access(1001, way_apart + 64, 64)                       # evicts clean line 1: no write-back
    hbm_done(ref, 1001 + h + ctrl, way_apart + 64, 64)
    assert cache.hbm.stats == ref.stats
    s = cache.stats
    assert (s["evictions"], s["writebacks"], s["hbm_bytes_written"]) == (2, 1, 64)
    assert not cache.contains(0) and not cache.dirty(way_apart)


def test_write_through_writes_hbm_and_is_never_dirty():
    cfg = cfg_with(write_policy="write_through")
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    h, ctrl = cache.hit_cycles, cache.controller_cycles
    assert cache.access(0, 0, 64, write=True) == hbm_done(ref, h + ctrl, 0, 64, True)   # miss: no allocate
    assert not cache.contains(0)
    assert cache.access(100, 0, 64) == hbm_done(ref, 100 + h + ctrl, 0, 64)
    assert cache.access(900, 8, 16, write=True) == hbm_done(ref, 900 + h + ctrl, 8, 16, True)   # hit
    assert cache.contains(0) and not cache.dirty(0)
    assert cache.flush() == max(cache.stats["last_completion"], 900)
    s = cache.stats
    assert (s["hits"], s["misses"], s["writebacks"]) == (1, 2, 0)
    assert cache.hbm.stats == ref.stats


@pytest.mark.parametrize("bypass", ["none", "streaming"])
def test_streaming_reads_bypass_allocation(bypass):
    cfg = cfg_with(bypass=bypass)
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    h, ctrl = cache.hit_cycles, cache.controller_cycles
    done = cache.access(0, 72, 16, stream=True)
    if bypass == "streaming":
        assert done == hbm_done(ref, h + ctrl, 72, 16)          # only its own bytes
        assert not cache.contains(64)
        cache.access(500, 64, 64, stream=True)                   # misses again
        assert cache.stats["bypassed"] == 2 and cache.stats["misses"] == 2
    else:
        assert done == hbm_done(ref, h + ctrl, 64, 64) and cache.contains(64)
    cache.access(1000, 64, 64)                                   # an ordinary read allocates
    assert cache.access(2000, 64, 64, stream=True) == 2000 + h   # and a streaming read hits it
    cache.access(3000, 4096, 64, write=True, stream=True)        # writes ignore the hint
    assert cache.contains(4096)


def test_disabled_is_hbm_plus_controller_latency():
    cfg = cfg_with(enabled=False)
    rng = random.Random(3)
    trace = [(i * 3, rng.randrange(1 << 20), rng.randrange(1, 600), rng.random() < 0.3, False) for i in range(200)]
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    done = [cache.access(*req) for req in trace]
    assert done == [hbm_done(ref, c + cache.controller_cycles, a, n, w) for c, a, n, w, _ in trace]
    batched = L3Cache(cfg)
    assert batched.access_many(*zip(*trace)).tolist() == done
    s = cache.stats
    assert (s["accesses"], s["hits"], s["misses"], s["hit_rate"]) == (0, 0, 0, 0.0)
    assert s["amat_cycles"] == pytest.approx(np.mean([d - r[0] for d, r in zip(done, trace)]))
    assert cache.flush() == max(done)


def test_random_replacement_is_reproducible():
    cfg = cfg_with(replacement="random", bytes=1024, line_bytes=32, ways=4, banks=1)
    trace = random_trace(cfg.l3, 500, random.Random(5), 10)
    runs = []
    for seed in (0xACE1, 0xACE1, 0x1234):
        cache = L3Cache(cfg, seed=seed)
        cache.access_many(*zip(*trace))
        runs.append((cache.stats, [cache.contains(a) for a in range(0, 4096, 32)]))
    assert runs[0] == runs[1]
    assert runs[0][1] != runs[2][1]
    s = 0xACE1                                                    # the LFSR is maximal: 65535 states
    seen = set()
    while s not in seen:
        seen.add(s)
        s = lfsr_step(s)
    assert len(seen) == 65535 and s == 0xACE1


def test_flush_writes_back_every_dirty_line_bank_by_bank():
    cfg = cfg_with(banks=2)
    cache, ref = L3Cache(cfg), HbmModel(cfg)
    h, ctrl = cache.hit_cycles, cache.controller_cycles
    for line in (0, 1, 2):                                        # banks 0, 1, 0
        cache.access(0, line * 64, 64, write=True)
    cache.access(0, 3 * 64, 64)                                   # clean
    hbm_done(ref, 1 + h + ctrl, 192, 64)                          # line 3's bank was busy at 0
    done = cache.flush(500)
    expect = [hbm_done(ref, 500 + h + ctrl, a, 64, True) for a in (0, 64)] + \
        [hbm_done(ref, 501 + h + ctrl, 128, 64, True)]           # second dirty line of bank 0
    assert done == max(expect)
    assert cache.hbm.stats == ref.stats
    assert all(cache.contains(a) and not cache.dirty(a) for a in (0, 64, 128))
    assert cache.stats["writebacks"] == 3 and cache.stats["hbm_bytes_written"] == 192
    assert cache.flush() == cache.stats["last_completion"] == done          # nothing left to write
    with pytest.raises(ValueError, match="cycle: 10 is not allowed"):
        cache.flush(10)


def test_stats_energy_amat_and_bytes():
    cfg = cfg_with()
    cache = L3Cache(cfg)
    h = cache.hit_cycles
    miss = cache.access(0, 0, 64)                                 # fill: 64 array bytes, 64 HBM bytes
    cache.access(1000, 0, 32)                                     # hit: 32 array bytes
    cache.access(1001, 128, 64, write=True)                       # allocated write: 64 array bytes
    s = cache.stats
    assert s["amat_cycles"] == pytest.approx((miss + h + h) / 3)
    assert s["amat_ns"] == pytest.approx(s["amat_cycles"])        # 1 GHz
    assert (s["requests"], s["accesses"], s["reads"], s["writes"]) == (3, 3, 2, 1)
    assert (s["bytes_read"], s["bytes_written"], s["array_bytes"]) == (96, 64, 160)
    assert s["hit_rate"] == pytest.approx(1 / 3) and s["read_hit_rate"] == 0.5
    assert s["l3_energy_pj"] == pytest.approx(160 * 8 / 64 * cfg.energy.l3_pj_per_64b)
    assert s["hbm_energy_pj"] == pytest.approx(64 * 8 * cfg.memory.hbm.pj_per_bit)
    assert s["energy_pj"] == pytest.approx(s["l3_energy_pj"] + s["hbm_energy_pj"])
    assert s["span_cycles"] == 1001 + h
    assert s["bandwidth_gbytes_per_s"] == pytest.approx(160 / (1001 + h))


def test_shared_hbm_counts_only_this_caches_traffic():
    cfg = cfg_with()
    hbm = HbmModel(cfg)
    hbm.serve(make_requests(1 << 20, 4096, 0))
    cache = L3Cache(cfg, hbm)
    cache.access(100, 0, 64)
    assert cache.stats["hbm_bytes_read"] == 64 and cache.stats["hbm_requests"] == 1


# ---- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((10, -1, 8), "address: -1 is not allowed: must be >= 0"),
    ((10, 0, 0), "nbytes: 0 is not allowed: must be >= 1"),
    ((10, 0, -4), "nbytes: -4 is not allowed: must be >= 1"),
    ((5, 0, 8), "cycle: 5 is not allowed: must be >= 10, the cycle of the previous request"),
    ((-1, 0, 8), "cycle: -1 is not allowed: must be >= 10"),
    ((10, 0.5, 8), "address: 0.5 is not allowed: must be an integer"),
])
def test_bad_requests_name_the_argument(args, message):
    cache = L3Cache(cfg_with())
    cache.access(10, 0, 8)
    with pytest.raises(ValueError, match=re.escape(message)):
        cache.access(*args)


@pytest.mark.parametrize("args, message", [
    (([20, 3], 0, 8), "cycles: 3 (request 1) is not allowed: must be >= 20, the cycle of the previous request"),
    (([5], 0, 8), "cycles: 5 (request 0) is not allowed: must be >= 10"),
    (([20, 30], [0, -64], 8), "addresses: -64 (request 1) is not allowed: must be >= 0"),
    ((20, 0, [8, 0]), "nbytes: 0 (request 1) is not allowed: must be >= 1"),
    (([20.0], 0, 8), "cycles: dtype float64 is not allowed: must be an integer type"),
])
def test_bad_request_arrays_name_the_argument_and_change_nothing(args, message):
    cache = L3Cache(cfg_with())
    cache.access(10, 0, 8)
    before = cache.stats
    with pytest.raises(ValueError, match=re.escape(message)):
        cache.access_many(*args)
    assert cache.stats == before
    assert cache.access(10, 4096, 8) > 10                          # time has not moved either


def test_bad_seed():
    with pytest.raises(ValueError, match=r"seed: 0 is not allowed: must be in \[1, 65535\]"):
        L3Cache(cfg_with(), seed=0)


# ---- the AMAT bench ------------------------------------------------------------------------------------

def test_amat_bench_on_tiny():
    out = amat_bench(config.load("tiny"))
    assert tuple(out) == BENCH_TRACES
    keys = {"amat_l3_cycles", "amat_hbm_cycles", "amat_l3_ns", "amat_hbm_ns", "amat_reduction", "hit_rate",
            "gbytes_per_s_l3", "gbytes_per_s_hbm"}
    for name, row in out.items():
        assert keys <= set(row), name
        assert row["amat_reduction"] == pytest.approx(1 - row["amat_l3_cycles"] / row["amat_hbm_cycles"])
    assert out["weights_reused_across_row_tiles"]["hit_rate"] > 0.5
    assert out["kv_cache_reread"]["hit_rate"] > 0.5
    assert out["pure_stream"]["hit_rate"] == 0.0
    assert out["pure_stream"]["amat_reduction"] < 0                     # hit_cycles (and MSHRs) only cost
    assert out["write_then_read"]["read_hit_rate"] == 1.0
    assert out["write_then_read"]["amat_reduction"] > 0.5
