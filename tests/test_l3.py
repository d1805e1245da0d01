"""The L3 timing model (sim/memory/l3.py ``L3Ports``): tags and replacement in lockstep with a naive reference
over many small configs, the timing rules one at a time (hit, miss, reset clear, MSHRs, HBM writes in flight,
write-through, bypass, disabled), call-order and buffer errors, and the AMAT bench. The RTL itself is checked
against this model cycle for cycle in tests/test_l3_rtl.py.

Expected cycles come from a second, fresh HbmPorts given the requests the module docstring says the cache
makes, so every timing test is exact at any HBM setting.
"""
import random
import re

import pytest

from hwgen import config
from hwgen.l3_cache import L3Timing
from sim.memory.axi_port import HbmPorts
from sim.memory.l3 import BENCH_TRACES, L3Ports, amat_bench, lfsr_step

ONE_CHANNEL = {"channels": 1}


def cfg_with(**l3) -> config.HwConfig:
    return config.from_dict({"base": "tiny", "memory": {"hbm": ONE_CHANNEL}, "l3": l3})


# ---- naive reference: tags only, no time -----------------------------------------------------------

class Reference:
    """Dict of sets, each a way list plus an LRU list (least recent first); the module docstring's rules."""

    def __init__(self, c: config.L3Config, beat: int, seed: int = 0xACE1):
        self.c, self.B, self.lfsr = c, beat, seed
        self.L = c.line_bytes // beat
        self.sets = {}
        self.n = dict.fromkeys(("hits", "misses", "evictions", "writebacks", "bypassed", "beats_read",
                                "beats_written"), 0)

    def access(self, address: int, beats: int, write: bool, flag: bool) -> None:
        c, L, B = self.c, self.L, self.B
        start = address - address % B
        line, first, rem = start // c.line_bytes, (start // B) % L, beats
        while rem:
            cnt = min(L - first, rem)
            self.line(line, first, cnt, write, flag)
            rem -= cnt
            line, first = line + 1, 0

    def line(self, line, first, cnt, write, flag):
        c, n, L = self.c, self.n, self.L
        ways, lru, dirty = self.sets.setdefault(line % c.sets, ([None] * c.ways, [], {}))
        wt = c.write_policy == "write_through"
        if write and wt:
            n["beats_written"] += cnt
        if line in ways:
            n["hits"] += 1
            lru.remove(line)
            lru.append(line)
            dirty[line] |= write and not wt
            return
        n["misses"] += 1
        if write and wt:
            return
        if not write and flag and c.bypass == "streaming":
            n["bypassed"] += 1
            n["beats_read"] += cnt
            return
        if not (write and flag and first == 0 and cnt == L):
            n["beats_read"] += L
        if None in ways:
            way = ways.index(None)
        else:
            if c.replacement == "lru":
                way = ways.index(lru[0])
            else:
                self.lfsr = (self.lfsr >> 1) ^ (0xB400 if self.lfsr & 1 else 0)
                way = self.lfsr % c.ways
            victim = ways[way]
            n["evictions"] += 1
            lru.remove(victim)
            if dirty.pop(victim):
                n["writebacks"] += 1
                n["beats_written"] += L
        ways[way] = line
        lru.append(line)
        dirty[line] = write and not wt

    def contents(self) -> dict[int, bool]:
        return {line: d for _, _, dirty in self.sets.values() for line, d in dirty.items()}


def random_trace(cfg: config.HwConfig, n: int, rng: random.Random, spacing: int):
    """Bursts of 1-16 beats over 4x the capacity (not crossing 4 KiB), reads and writes, full or partial,
    some streaming; ``spacing``: cycles between calls (random up to it when small)."""
    B = cfg.beat_bytes
    cycle, out = cfg.l3.sets + 1, []
    span = 4 * cfg.l3.bytes
    for _ in range(n):
        address = rng.randrange(0, span, B)
        beats = rng.randint(1, min(16, (4096 - address % 4096) // B))
        out.append((cycle, address, beats, rng.random() < 0.4, rng.random() < 0.5))
        cycle += spacing if spacing >= 100 else rng.randrange(1, spacing + 1)
    return out


def run(cache: L3Ports, trace) -> None:
    """Each request at its cycle, or later: at most ``memory.outstanding`` in flight per direction (as the
    DMA keeps them), cycles never decreasing."""
    import heapq
    now, inflight = 0, {False: [], True: []}
    for cycle, address, beats, write, flag in trace:
        now = max(now + 1, cycle)
        heap = inflight[write]
        if len(heap) == cache.cfg.memory.outstanding:
            now = max(now, heapq.heappop(heap) + 1)
        if write:
            heapq.heappush(heap, cache.serve_write(now, 0, address, beats, flag))
        else:
            heapq.heappush(heap, cache.serve_read(now, 0, address, beats, flag)[-1])


SHAPES = [  # bytes, line_bytes, ways
    (1024, 32, 1), (1024, 32, 2), (2048, 64, 4), (2048, 32, 8), (4096, 128, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("replacement", ["lru", "random"])
@pytest.mark.parametrize("write_policy", ["write_back", "write_through"])
@pytest.mark.parametrize("bypass", ["none", "streaming"])
def test_lockstep_with_reference(shape, replacement, write_policy, bypass):
    size, lb, ways = shape
    cfg = cfg_with(bytes=size, line_bytes=lb, ways=ways, banks=1, mshrs=2, replacement=replacement,
                   write_policy=write_policy, bypass=bypass)
    rng = random.Random(f"{shape}{replacement}{write_policy}{bypass}")
    for spacing in (1000, 3):                 # far apart: nothing in flight; close: stalls of every kind
        trace = random_trace(cfg, 300, rng, spacing)
        cache, ref = L3Ports(cfg), Reference(cfg.l3, cfg.beat_bytes)
        run(cache, trace)
        for req in trace:
            ref.access(*req[1:])
        s, r = cache.stats, ref.n
        for key in ("hits", "misses", "evictions", "writebacks", "bypassed"):
            assert s[key] == r[key], key
        calls = cache.master_calls
        assert sum(n for *_, k, _, n in calls if k == "read") == r["beats_read"]
        assert sum(n for *_, k, _, n in calls if k == "write") == r["beats_written"]
        probe = range(0, 4 * size + 4 * lb, lb)
        assert {a // lb: cache.dirty(a) for a in probe if cache.contains(a)} == ref.contents()
        if write_policy == "write_through":
            assert s["writebacks"] == 0 and not any(ref.contents().values())


def test_lockstep_sees_every_event():
    """The random traces above reach every counter and every stall (else the lockstep proves little)."""
    cfg = cfg_with(bytes=1024, line_bytes=32, ways=2, banks=1, mshrs=2, bypass="streaming")
    cache = L3Ports(cfg)
    run(cache, random_trace(cfg, 400, random.Random(1), 3))
    s = cache.stats
    for key in ("hits", "misses", "bypassed", "evictions", "writebacks", "mshr_stall_cycles", "write_wait_cycles"):
        assert s[key] > 0, key


# ---- timing, one rule at a time ---------------------------------------------------------------------

def lone_miss(cfg, cycle: int, address: int, beats: int, kind: str = "read") -> list[int]:
    """R ready cycles of a read miss on an idle cache, from the table: S1 at c + 2, AR at c + 3, each fill
    beat usable one cycle after its R handshake, micro-ops from T + hit_delay + 1, ready 2 cycles later."""
    t = L3Timing.of(cfg)
    B, L, lb = cfg.beat_bytes, t.line_beats, cfg.l3.line_bytes
    ref = HbmPorts(cfg)
    T = cycle + 2
    line = address // lb
    usable = [h + 1 for h in ref.r[0].take_all(ref.read(T + 1, 0, line * lb, L))]
    first = (address // B) % L
    u, out = T + t.hit_delay, []
    for k in range(L):
        u = max(u + 1, usable[k])
        if first <= k < first + beats:
            out.append(u + 2)
    return out


def test_hit_takes_exactly_hit_cycles():
    for hit in (5, 8, 13):
        cfg = cfg_with(hit_cycles=hit)
        cache = L3Ports(cfg)
        start = cache.timing.init_cycles + 10
        cache.read(start, 0, 0, 4)
        assert cache.read(start + 1000, 0, 0, 1) == [start + 1000 + hit]
        assert cache.read(start + 2000, 0, 16, 3) == [start + 2000 + hit + k for k in range(3)]
        assert cache.write(start + 3000, 0, 0, 1) == start + 3000 + 1 + hit      # writes are seen a cycle later


def test_read_miss_timing():
    cfg = cfg_with(hit_cycles=7)
    cache = L3Ports(cfg)
    c = cache.timing.init_cycles + 5
    assert cache.read(c, 0, 0x1000 + 32, 2) == lone_miss(cfg, c, 0x1000 + 32, 2)
    assert cache.master_calls == [(c + 3, 0, "read", 0x1000, 4)]                 # the whole line


def test_reset_clears_tags_before_the_first_access():
    cfg = cfg_with()
    cache = L3Ports(cfg)
    S = cache.timing.init_cycles
    assert S == cfg.l3.sets
    first = cache.read(0, 0, 0, 1)
    assert cache.master_calls[0][0] == S + 2                                     # S1 in S + 1, AR a cycle later
    cache.reset()
    assert cache.read(0, 0, 0, 1) == first and not cache.r[0].count


def test_mshrs_bound_the_fills_in_flight():
    cfg = cfg_with(mshrs=1)
    cache = L3Ports(cfg)
    c = cache.timing.init_cycles + 5
    cache.read(c, 0, 0, 4)                                                       # line 0
    cache.read(c + 1, 0, 64, 4)                                                  # line 1 waits for the MSHR
    (a0, *_), (a1, *_) = cache.master_calls
    assert a0 == c + 3 and a1 > a0 + 20 and cache.stats["mshr_stall_cycles"] == a1 - (c + 4)


def test_fill_waits_for_a_write_back_of_its_line():
    cfg = cfg_with(bytes=1024, ways=1, banks=1)                                  # 16 sets, direct-mapped
    cache = L3Ports(cfg)
    c = cache.timing.init_cycles + 5
    cache.write(c, 0, 0, 4)                                                      # line 0 dirty, no fill
    cache.read(c + 1, 0, 1024, 1)                                                # evicts it: write-back
    cache.read(c + 2, 0, 0, 1)                                                   # line 0 again
    cache.drain()
    calls = cache.master_calls
    wb = next(x for x in calls if x[2] == "write")
    refill = [x for x in calls if x[2] == "read" and x[3] == 0]
    assert wb[3] == 0 and refill[0][0] > wb[0]                                   # the HBM sees the write first
    assert cache.stats["write_wait_cycles"] > 0


def test_write_through_and_bypass():
    cfg = cfg_with(write_policy="write_through", bypass="streaming")
    cache = L3Ports(cfg)
    c = cache.timing.init_cycles + 5
    cache.write(c, 0, 16, 2)                                                     # miss: to HBM, no allocate
    assert not cache.contains(0)
    cache.read(c + 10, 0, 16, 1, stream=True)                                    # bypass: its own beat only
    assert not cache.contains(0)
    cache.read(c + 20, 0, 0, 4)                                                  # allocates
    cache.write(c + 400, 0, 0, 1)                                                # hit: updates, to HBM, clean
    assert cache.contains(0) and not cache.dirty(0)
    cache.drain()
    calls = [(k, a, n) for _, _, k, a, n in cache.master_calls]
    assert calls[:1] + calls[-1:] == [("write", 16, 2), ("write", 0, 1)]
    assert ("read", 16, 1) in calls and ("read", 0, 4) in calls
    s = cache.stats
    assert (s["hits"], s["misses"], s["bypassed"], s["writebacks"]) == (1, 3, 1, 0)


def test_disabled_is_hbm_ports():
    cfg = cfg_with(enabled=False)
    cache, ref = L3Ports(cfg), HbmPorts(cfg)
    assert cache.read(3, 0, 64, 4) == ref.read(3, 0, 64, 4)
    assert cache.write(9, 0, 64, 4) == ref.write(9, 0, 64, 4)
    assert cache.stats["accesses"] == 0


def test_random_replacement_is_reproducible():
    cfg = cfg_with(replacement="random", bytes=1024, line_bytes=32, ways=4, banks=1)
    trace = random_trace(cfg, 300, random.Random(5), 10)
    runs = []
    for seed in (0xACE1, 0xACE1, 0x1234):
        cache = L3Ports(cfg, seed=seed)
        run(cache, trace)
        runs.append((cache.stats, [cache.contains(a) for a in range(0, 4096, 32)]))
    assert runs[0] == runs[1]
    assert runs[0][1] != runs[2][1]
    s, seen = 0xACE1, set()
    while s not in seen:
        seen.add(s)
        s = lfsr_step(s)
    assert len(seen) == 65535 and s == 0xACE1


# ---- errors -------------------------------------------------------------------------------------------

def test_call_order_and_arguments():
    cache = L3Ports(cfg_with())
    cache.read(10, 0, 0, 1)
    cache.write(10, 0, 64, 1)
    with pytest.raises(ValueError, match="out of order after write in cycle 10: within a cycle, the AR"):
        cache.read(10, 0, 0, 1)
    with pytest.raises(ValueError, match="cycles must not decrease"):
        cache.read(9, 0, 0, 1)
    with pytest.raises(ValueError, match=re.escape("port 1 is not allowed: must be an integer in [0, 0]")):
        cache.read(11, 1, 0, 1)
    with pytest.raises(ValueError, match="beats 0 is not allowed"):
        cache.read(11, 0, 0, 0)
    with pytest.raises(ValueError, match="crosses a 4 KiB boundary"):
        cache.read(11, 0, 4096 - 16, 2)
    with pytest.raises(ValueError, match=re.escape("seed: 0 is not allowed: must be in [1, 65535]")):
        L3Ports(cfg_with(), seed=0)


def test_too_many_requests_waiting_is_an_error():
    cache = L3Ports(cfg_with())
    depth = cache.timing.request_fifo
    for i in range(depth):                   # all wait for the tag RAM to be cleared
        cache.read(i, 0, i * 64, 1)
    with pytest.raises(ValueError, match=f"more than {depth} read requests waiting"):
        cache.read(depth, 0, 0, 1)


# ---- the AMAT bench ------------------------------------------------------------------------------------

def test_amat_bench_on_tiny():
    out = amat_bench(config.load("tiny"))
    assert tuple(out) == BENCH_TRACES
    keys = {"amat_l3_cycles", "amat_hbm_cycles", "amat_l3_ns", "amat_hbm_ns", "amat_change_pct", "hit_rate"}
    for name, row in out.items():
        assert keys <= set(row), name
        assert row["amat_change_pct"] == pytest.approx(100 * (row["amat_l3_cycles"] / row["amat_hbm_cycles"] - 1))
    assert out["weights_reused_across_row_tiles"]["hit_rate"] > 0.5
    assert out["kv_cache_reread"]["hit_rate"] > 0.5
    assert out["pure_stream"]["hit_rate"] == 0.0
    assert out["pure_stream"]["amat_change_pct"] > 0                      # hit path and MSHRs only cost
    assert out["write_then_read"]["read_hit_rate"] == 1.0
