"""The L3 timing model (sim/model/memory/l3.py ``L3Ports``): tags and replacement in lockstep with a naive reference
over many small configs, the timing rules one at a time (hit, miss, reset clear over the banks, starting
cleared, banks changing nothing else, MSHRs, HBM writes in flight, write-through, bypass, disabled),
call-order and buffer errors, and the AMAT bench. The RTL itself is checked against this model cycle for
cycle in tests/test_l3_rtl.py.

Expected cycles come from a second, fresh HbmPorts given the requests the module docstring says the cache
makes, so every timing test is exact at any HBM setting.
"""
import random
import re

import pytest

from hwgen.spec import config
from hwgen.spec.l3 import L3Timing
from sim.model.memory.axi_port import HbmPorts
from sim.model.memory.l3 import BENCH_TRACES, L3Ports, amat_bench, lfsr_step

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


def run(cache: L3Ports, trace) -> list[int]:
    """Each request at its cycle, or later: at most ``memory.outstanding`` in flight per direction (as the
    DMA keeps them), cycles never decreasing. Returns each request's completion (last R or B handshake)."""
    import heapq
    now, inflight, done = 0, {False: [], True: []}, []
    for cycle, address, beats, write, flag in trace:
        now = max(now + 1, cycle)
        heap = inflight[write]
        if len(heap) == cache.cfg.memory.outstanding:
            now = max(now, heapq.heappop(heap) + 1)
        if write:
            done.append(cache.serve_write(now, 0, address, beats, flag))
        else:
            done.append(cache.serve_read(now, 0, address, beats, flag)[-1])
        heapq.heappush(heap, done[-1])
    return done


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


@pytest.mark.parametrize("banks", [1, 2, 8])
def test_reset_clears_tags_before_the_first_access(banks):
    cfg = cfg_with(banks=banks)
    cache = L3Ports(cfg)
    S = cache.timing.init_cycles
    assert S == cfg.l3.sets // banks == cache.ready_cycle                        # one row of every bank per cycle
    first = cache.read(0, 0, 0, 1)
    assert cache.master_calls[0][0] == S + 2                                     # S1 in S + 1, AR a cycle later
    cache.reset()
    assert cache.read(0, 0, 0, 1) == first and not cache.r[0].count


def test_cleared_starts_at_the_first_ready_cycle():
    """``cleared=True``: cycle 0 is the first cycle ``ready`` is high, the tag stage can take a request at once."""
    cfg = cfg_with(hit_cycles=7)
    cache = L3Ports(cfg, cleared=True)
    assert cache.ready_cycle == 0
    assert cache.read(0, 0, 0x1000 + 32, 2) == lone_miss(cfg, 0, 0x1000 + 32, 2)
    assert cache.master_calls == [(3, 0, "read", 0x1000, 4)]                     # S1 in 2, AR in 3
    cache.reset()
    assert cache.ready_cycle == 0 and cache.read(0, 0, 0x1000 + 32, 2) == lone_miss(cfg, 0, 0x1000 + 32, 2)
    assert L3Ports(cfg_with(enabled=False)).ready_cycle == 0
    with pytest.raises(ValueError, match=r"cleared: 1 is not allowed: must be True or False"):
        L3Ports(cfg, cleared=1)


def test_banks_change_only_the_clear():
    """Banking splits the RAMs by set; past the reset clear, timing and policies are those of one bank."""
    runs = []
    for banks in (1, 4, 16):
        cfg = cfg_with(bytes=2048, line_bytes=32, ways=2, banks=banks, mshrs=2, bypass="streaming")
        cache = L3Ports(cfg, cleared=True)
        done = run(cache, random_trace(cfg, 200, random.Random(3), 3))
        runs.append((done, cache.master_calls, cache.stats))
        assert L3Ports(cfg).ready_cycle == cfg.l3.sets // banks
    assert runs[0] == runs[1] == runs[2]


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


# ---- flush ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("replacement", ["lru", "random"])
@pytest.mark.parametrize("write_policy", ["write_back", "write_through"])
def test_flush_writes_back_every_dirty_line(shape, replacement, write_policy):
    """After a write-heavy trace: the flush writes each dirty line back (whole line, set by set, lowest way
    first), counts them in ``flush_writebacks``, leaves no dirty line and every line present; a second flush
    finds nothing and ends two cycles after it is taken."""
    size, lb, ways = shape
    cfg = cfg_with(bytes=size, line_bytes=lb, ways=ways, banks=1, mshrs=2, replacement=replacement,
                   write_policy=write_policy)
    cache, ref = L3Ports(cfg), Reference(cfg.l3, cfg.beat_bytes)
    rng = random.Random(f"flush{shape}{replacement}")
    trace = [(c, a, n, w or rng.random() < 0.5, f) for c, a, n, w, f in random_trace(cfg, 300, rng, 3)]
    run(cache, trace)
    for req in trace:
        ref.access(*req[1:])
    before = ref.contents()
    dirty = sorted((line % cache.sets, line) for line, d in before.items() if d)
    assert cache.dirty_lines == len(dirty) and (len(dirty) > 0) == (write_policy == "write_back")
    ways_of = {line: cache._tags[line % cache.sets].order[line] for _, line in dirty}
    order = [line for *_, line in sorted((s, ways_of[line], line) for s, line in dirty)]   # set, then way
    cache.drain()
    calls, hbm_written = len(cache.master_calls), cache.stats["hbm_bytes_written"]
    c = cache.idle_cycle
    end = cache.flush(c)
    cache.drain()
    new = cache.master_calls[calls:]
    assert [(k, a, n) for _, _, k, a, n in new] == [("write", line * lb, lb // cfg.beat_bytes) for line in order]
    probe = range(0, 4 * size + 4 * lb, lb)
    assert {a // lb: cache.dirty(a) for a in probe if cache.contains(a)} == dict.fromkeys(before, False)
    s = cache.stats
    assert cache.dirty_lines == 0 and s["flush_writebacks"] == len(dirty) and s["flushes"] == 1
    assert s["hbm_bytes_written"] - hbm_written == len(dirty) * lb
    hbm = HbmPorts(cfg)                                                          # every HBM call again
    last_b = max([hbm.r[0].take_all(hbm.read(*x[:2], *x[3:]))[-1] if x[2] == "read" else
                  hbm.b[0].take(hbm.write(*x[:2], *x[3:])) for x in cache.master_calls])
    assert end == (last_b + 1 if dirty else c + 2)
    assert cache.flush(end) == end + 2 and cache.master_calls[calls + len(new):] == []   # nothing dirty: at once
    assert cache.stats["flush_writebacks"] == len(dirty) and cache.stats["flush_cycles"] == end - c + 2


def test_flush_timing():
    """Two dirty lines (sets 0 and 3, full-line writes: no fills): flush ops enter S1 one per cycle from the
    cycle after the take (sets 0, 1, 2, 3; the walk ends with the last dirty line); each write-back is L
    micro-ops from T + hit_delay + 1 and an HBM write 2 cycles after its last; ``flushing`` falls in the
    cycle after the last B handshake. A read called during the flush enters S1 after the fall."""
    cfg = cfg_with(hit_cycles=7)
    cache = L3Ports(cfg, cleared=True)
    t = cache.timing
    L, lb, S = t.line_beats, cfg.l3.line_bytes, cache.sets
    cache.write(10, 0, 3 * lb, L)                                                # set 3
    cache.write(11, 0, 5 * S * lb, L)                                            # set 0
    assert cache.master_calls == [] and cache.dirty_lines == 2
    c = cache.idle_cycle + 7
    ref = HbmPorts(cfg)
    u0 = (c + 1) + t.hit_delay + 1 + L - 1                                       # set 0: S1 in c + 1
    b0 = ref.b[0].take(ref.write(u0 + 2, 0, 5 * S * lb, L))
    u1 = max(u0 + 1, (c + 4) + t.hit_delay + 1) + L - 1                          # set 3: S1 in c + 4
    b1 = ref.b[0].take(ref.write(u1 + 2, 0, 3 * lb, L))
    end = cache.flush(c)
    assert end == b1 + 1 and b0 < b1
    assert cache.read(c, 0, 3 * lb, 1) == [end + cfg.l3.hit_cycles - 1]         # waits: S1 in end + 1, a hit
    cache.drain()
    assert cache.master_calls == [(u0 + 2, 0, "write", 5 * S * lb, L), (u1 + 2, 0, "write", 3 * lb, L)]
    assert cache.stats["hits"] == 1 and cache.dirty_lines == 0


def test_flush_with_nothing_dirty_ends_at_once():
    for cfg in (cfg_with(), cfg_with(write_policy="write_through"), cfg_with(enabled=False)):
        cache = L3Ports(cfg, cleared=True)
        assert cache.flush(0) == 2 and cache.flush_take == 0                     # flushing high in 1 only
        cache.write(5, 0, 0, 2)
        cache.read(6, 0, 0, 2)
        c = cache.idle_cycle
        assert cache.flush(c) == c + 2 or cfg.l3.write_policy == "write_back"
    cache = L3Ports(cfg_with(), cleared=True)
    cache.read(0, 0, 0, 4)
    c = cache.idle_cycle
    assert cache.flush(c) == c + 2 and cache.master_calls[-1][2] == "read"


def test_flush_waits_for_idle():
    """A flush requested while the cache is busy (clearing its tags, requests or HBM writes in flight) is
    taken in the first idle cycle; a request before the take is an error."""
    cache = L3Ports(cfg_with())
    S = cache.timing.init_cycles
    assert cache.flush(3) == S + 2 and cache.flush_take == S                     # tag RAMs still being cleared
    cache.write(S + 2, 0, 0, 1)
    busy = cache.idle_cycle
    end = cache.flush(busy - 5)
    assert cache.flush_take == busy and end > busy + 2 and cache.dirty_lines == 0
    with pytest.raises(ValueError, match=f"out of order after flush in cycle {busy - 5}"):
        cache.read(busy - 6, 0, 64, 1)
    cache.read(busy, 0, 64, 1)                                                   # at the take: waits for the fall
    with pytest.raises(ValueError, match=f"flush\\(cycle={busy}\\): out of order after read in cycle {busy}"):
        cache.flush(busy)                                                        # the flush comes before the AR
    with pytest.raises(ValueError, match=re.escape("cycle True is not allowed: must be an integer >= 0")):
        cache.flush(True)
    c = cache.idle_cycle
    assert cache.flush(c - 3) == c + 2 and cache.flush_take == c
    with pytest.raises(ValueError, match=f"a request while the flush requested in cycle {c - 3} waits .* "
                                         f"\\(taken in cycle {c}\\)"):
        cache.write(c - 1, 0, 0, 1)
    cache.write(c, 0, 0, 1)
