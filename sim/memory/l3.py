"""L3 shared cache: timing and functional statistics, written once (the RTL cache must match these rules).

Everything comes from ``HwConfig.l3`` (size, line, ways, banks, MSHRs, policies, hit latency),
``HwConfig.memory.hbm.controller_ns``, ``HwConfig.energy`` and ``HwConfig.clock.mhz``; nothing is copied.
The HBM behind the cache is ``sim/memory/hbm.py``'s ``HbmModel`` (one is made from the same config when none
is given); every cycle below is an engine clock cycle.

Organisation
------------
``cfg.l3.sets = bytes / (line_bytes x ways)`` sets of ``ways`` lines. An address belongs to line
``address // line_bytes``; the set is the low bits of the line number (``line % sets``) and the bank the low
bits of the set (``set % banks``), so consecutive lines go to consecutive sets and banks and proceed in
parallel. A request (``access(cycle, address, nbytes, ...)``) is split into one *line access* per line it
touches; all of them arrive at ``cycle``, and the request completes when its last line access does. The port
between the DMA and the cache (beats per cycle) is the DMA's business, not modelled here.

Interface: ``L3Cache(cfg, hbm=None, seed=LFSR_SEED)``; ``access(cycle, address, nbytes, write=False,
stream=False) -> completion cycle`` (requests in nondecreasing ``cycle`` order; ``stream`` marks read-once
data); ``access_many(cycles, addresses, nbytes, write, stream) -> array`` (the same, over arrays, faster);
``flush(cycle=None) -> cycle``; ``contains(address)``, ``dirty(address)``; ``stats``. Bad arguments raise
ValueError naming the argument, the value and what is allowed (``access_many`` checks all before it starts).

Timing of one line access
-------------------------
``ctrl = controller_cycles(cfg) = ceil(memory.hbm.controller_ns x clock.mhz / 1000)`` (20 at 20 ns, 1 GHz):
PHY + controller + interconnect, paid once per HBM request, on the way there.

=====================  ===================================================================================
step                   cycle
=====================  ===================================================================================
bank                   ``start = max(arrival, bank free)``; the bank is then busy for one cycle (one line
                       access per bank per cycle); ``start - arrival`` adds to ``bank_conflict_stall_cycles``
tag check, hit data    ``t = start + hit_cycles``: a hit completes at ``t`` (reads: data out; writes: written)
MSHR (misses that      lowest-numbered MSHR free at ``t`` (its line has arrived); if none is free, the one that
fetch from HBM)        frees first (lowest number on ties) at ``alloc = its fill cycle``, else ``alloc = t``;
                       ``alloc - t`` adds to ``mshr_stall_cycles``. The MSHR is held until the line arrives.
HBM fetch              ``hbm.serve`` read of the whole line arriving at ``alloc + ctrl``; the line arrives, and
                       the miss completes, when HBM completes (data is forwarded as it is filled: no extra
                       cycle after HBM, so a lone read miss costs ``hit_cycles + ctrl + HBM latency``)
merged miss            the line is present but still in flight (its fill cycle ``> t``): no new MSHR, no HBM
                       request; completes at the fill cycle (counted in ``misses`` and in ``merged``)
victim write-back      a dirty victim is written to HBM (line_bytes) arriving at ``alloc + ctrl``, handed to
                       the HBM after the fetch of the same miss (reads first); the miss never waits for it
write-through write    written to HBM (its bytes only) arriving at ``t + ctrl``; completes when HBM completes
=====================  ===================================================================================

Hits go on under misses: full MSHRs hold up only the misses that need one. Writes to HBM (write-backs,
write-through) take no MSHR: the write buffer is not bounded.

HBM requests are handed to the HBM in the order the cache makes them (line accesses in request order, within
a request in address order); the HBM queues a request behind every earlier one, exactly as if each were its
own ``hbm.serve`` call. (The model batches them into few ``serve`` calls where that changes nothing: a batch
never holds a request arriving before the one given to the HBM just before it, and is served before any
decision that needs one of its completions; ``HbmTiming.hit_read_cycles`` after its arrival is a lower
bound on any HBM completion, which settles most decisions without serving.)

Policies
--------
- Tags and replacement state change in request order at the line access (hit, miss and merge alike), so hits,
  misses (merged ones included), evictions and write-backs do not depend on timing; ``merged`` splits the
  misses by timing only. A miss allocates its way at once (the tag is installed, the victim evicted) and the
  line is *in flight* until its fill cycle; a line still in flight may itself be chosen as a victim (a real
  cache would lock that way; the requests waiting on it still complete at its fill cycle).
- Replacement ``lru``: a set fills its lowest-numbered empty way first; when full, the least recently used line
  (hits, merges and allocations make a line most recent) is the victim. ``random``: empty ways first as well;
  when full, a 16-bit Galois LFSR (polynomial x^16 + x^14 + x^13 + x^11 + 1, ``state = (state >> 1) ^
  (0xB400 if state & 1 else 0)``, seed ``0xACE1`` unless ``seed=`` says otherwise, one LFSR for the whole
  cache, stepped once per victim choice, before it is used) picks way ``state % ways``. Reproducible, and an RTL
  LFSR can match it.
- ``write_back``: write-allocate. A write hit marks the line dirty. A write miss covering the whole line
  allocates it dirty without reading HBM (no MSHR; completes at ``t``); a partial-line write miss fetches the
  line first (like a read miss) and completes when it arrives. Evicting a dirty line writes it back.
- ``write_through``: no-write-allocate. Every write goes to HBM (see the table); a write to a present line
  also updates it (counted as a hit, or merged if the line is in flight), a write miss allocates nothing
  (counted as a miss). Lines are never dirty, so nothing is ever written back.
- ``bypass = streaming``: a read with ``stream=True`` that misses allocates nothing and disturbs no
  replacement state: it takes an MSHR and reads only its own bytes from HBM (counted as a miss and in
  ``bypassed``; it never merges). A streaming read that hits is an ordinary hit. Writes ignore ``stream``.
- ``enabled = False``: no cache. Each request goes to HBM as it is, arriving at ``cycle + ctrl``, and
  completes when HBM completes: the same trace timed "without L3".

``flush(cycle)`` writes every dirty line back: each bank reads its dirty lines one per cycle from
``max(cycle, bank free, fill)`` (sets in increasing order), each reaching HBM ``hit_cycles + ctrl`` later;
the lines stay valid and become clean. It returns when the last write completes.

Statistics (``stats``)
----------------------
``requests`` are ``access`` calls; ``accesses`` are line accesses (``hits + misses``; none when disabled).
``amat_cycles`` is the mean of ``completion - cycle`` over requests (``amat_ns`` at ``clock.mhz``);
``bandwidth_gbytes_per_s`` is the bytes requested over the span from the first arrival to the last
completion. Also: ``hits``, ``misses`` (``merged`` and ``bypassed`` among them), ``read_hits``, ``hit_rate`` (hits /
accesses), ``read_hit_rate``, ``evictions`` (valid lines replaced), ``writebacks``, ``bytes_read`` /
``bytes_written`` (asked for by the clients), ``bank_conflict_stall_cycles``, ``mshr_stall_cycles``.
Energy: ``l3_energy_pj = energy.l3_pj_per_64b`` per 64 bits moved into or out of the data array
(``array_bytes``: the client bytes of every read hit and of every write that lands in a present or allocated
line, ``line_bytes`` per line filled from HBM and per dirty line read out for a write-back; data forwarded from
a fill to a waiting read is not read again); ``hbm_requests``, ``hbm_bytes_read`` / ``_written`` and
``hbm_energy_pj`` are the HbmModel's own counters since this cache was made (so ``memory.hbm.pj_per_bit``, and
whole HBM accesses of ``access_bytes``); ``energy_pj`` is their sum.

``amat_bench(cfg)`` times named DMA-like traces with and without the cache (see its docstring).
"""
from __future__ import annotations

import heapq
import math
import operator
import time
from typing import Any

import numpy as np

from hwgen.config import HwConfig, from_dict
from sim.memory.hbm import HbmModel, make_requests

LFSR_POLY = 0xB400          # Galois form of x^16 + x^14 + x^13 + x^11 + 1: maximal, 65535 states
LFSR_SEED = 0xACE1


def controller_cycles(cfg: HwConfig) -> int:
    """``memory.hbm.controller_ns`` in engine cycles, rounded up (float noise below 1e-9 ignored)."""
    return math.ceil(round(cfg.memory.hbm.controller_ns * cfg.clock.mhz / 1000, 9))


def lfsr_step(state: int) -> int:
    """One step of the replacement LFSR (see the module docstring)."""
    return (state >> 1) ^ (LFSR_POLY if state & 1 else 0)


class _Hbm:
    """One request handed to the HBM; ``done`` is set when its batch is served."""

    __slots__ = ("arrival", "address", "nbytes", "write", "bound", "done")

    def __init__(self, arrival: int, address: int, nbytes: int, write: bool, bound: int):
        self.arrival, self.address, self.nbytes, self.write = arrival, address, nbytes, write
        self.bound = bound              # no HBM completion comes earlier
        self.done: int | None = None


class _Set:
    """Tags of one set. ``order`` maps line -> way, least recently used first (dict order)."""

    __slots__ = ("order", "line", "dirty", "fill")

    def __init__(self, ways: int):
        self.order: dict[int, int] = {}
        self.line = [-1] * ways         # -1: empty way
        self.dirty = [False] * ways
        self.fill: list[Any] = [0] * ways   # cycle the line's data is in the array (int, or _Hbm until served)


def _index(name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: {value!r} is not allowed: must be an integer") from None


class L3Cache:
    """The shared L3 between the DMA and the HBM; see the module docstring for every rule.

    ``access`` calls come in nondecreasing ``cycle`` order; each returns the request's completion cycle.
    ``access_many`` does the same for arrays of requests (faster: it hands the HBM fewer, larger batches)."""

    def __init__(self, cfg: HwConfig, hbm: HbmModel | None = None, seed: int = LFSR_SEED):
        seed = _index("seed", seed)
        if not 0 < seed < 1 << 16:
            raise ValueError(f"seed: {seed} is not allowed: must be in [1, 65535] (a 16-bit LFSR state, not 0)")
        self.cfg = cfg
        self.hbm = HbmModel(cfg) if hbm is None else hbm
        c = cfg.l3
        self.enabled = c.enabled
        self.line_bytes = c.line_bytes
        self.ways = c.ways
        self.sets = c.sets
        self.banks = c.banks
        self.mshrs = c.mshrs
        self.hit_cycles = c.hit_cycles
        self.controller_cycles = controller_cycles(cfg)
        self._lru = c.replacement == "lru"
        self._write_back = c.write_policy == "write_back"
        self._bypass = c.bypass == "streaming"
        self._hbm_min = self.hbm.timing.hit_read_cycles
        self._lfsr = seed
        self._tags: list[_Set | None] = [None] * self.sets
        self._bank_free = [0] * self.banks
        self._mshr: list[Any] = [0] * self.mshrs      # fill cycle of each MSHR's line (int, or _Hbm)
        self._batch: list[_Hbm] = []
        self._last_arrival = -1                         # of the last request given to the HBM
        self._now = 0
        self._hbm_base = self._hbm_counters()
        self._n = dict.fromkeys(("requests", "accesses", "reads", "writes", "hits", "read_hits", "misses", "merged",
                                 "bypassed", "evictions", "writebacks", "bytes_read", "bytes_written",
                                 "array_bytes", "bank_conflict_stall_cycles", "mshr_stall_cycles", "latency_sum",
                                 "last_completion"), 0)
        self._first: int | None = None

    # ---- public interface -------------------------------------------------------------------------

    def access(self, cycle: int, address: int, nbytes: int, write: bool = False, stream: bool = False) -> int:
        """Completion cycle of one request (reads: its last byte is available; writes: it is accepted)."""
        cycle, address, nbytes = self._check(cycle, address, nbytes)
        done, pending = self._request(cycle, address, nbytes, bool(write), bool(stream))
        if pending:
            self._serve()
            done = max(done, max(p.done for p in pending))
        self._complete(cycle, done)
        return done

    def access_many(self, cycles: Any, addresses: Any, nbytes: Any, write: Any = False,
                    stream: Any = False) -> np.ndarray:
        """``access`` over broadcast arrays, in array order; returns the completion cycles (int64)."""
        names = ("cycles", "addresses", "nbytes", "write", "stream")
        cols = [np.asarray(x) for x in (cycles, addresses, nbytes, write, stream)]
        for name, col in zip(names, cols):
            allowed = "biu" if name in ("write", "stream") else "iu"
            if col.dtype.kind not in allowed:
                raise ValueError(f"{name}: dtype {col.dtype} is not allowed: must be an integer"
                                 f"{' or bool' if 'b' in allowed else ''} type")
        cyc, adr, nb, wr, st = (c.reshape(-1).astype(np.int64) for c in np.broadcast_arrays(*cols))
        # check everything first, so that a bad request leaves the cache as it was
        previous = np.concatenate(([self._now], cyc[:-1]))
        for name, col, low, rule in (("cycles", cyc, previous, "the cycle of the previous request"),
                                     ("addresses", adr, 0, None), ("nbytes", nb, 1, None)):
            bad = np.flatnonzero(col < low)
            if bad.size:
                i = int(bad[0])
                floor = int(low[i]) if rule else low
                raise ValueError(f"{name}: {int(col[i])} (request {i}) is not allowed: must be >= {floor}"
                                 f"{', ' + rule if rule else ''}")
        results = []
        for c, a, n, w, s in zip(cyc.tolist(), adr.tolist(), nb.tolist(), wr.tolist(), st.tolist()):
            self._now = c
            results.append((c,) + self._request(c, a, n, bool(w), bool(s)))
        self._serve()
        out = np.empty(len(results), dtype=np.int64)
        for i, (c, done, pending) in enumerate(results):
            if pending:
                done = max(done, max(p.done for p in pending))
            self._complete(c, done)
            out[i] = done
        return out

    def flush(self, cycle: int | None = None) -> int:
        """Write every dirty line back (see the module docstring); the cycle the last write completes.
        ``cycle`` defaults to when everything so far has completed."""
        if cycle is None:
            cycle = max(self._now, self._n["last_completion"])
        cycle = self._check(cycle, 0, 1)[0]
        if not self.enabled:
            return cycle
        writes = []
        for s, st in enumerate(self._tags):
            if st is None:
                continue
            b = s % self.banks
            for way in range(self.ways):
                if st.dirty[way]:
                    out = max(cycle, self._bank_free[b], st.fill[way])
                    self._bank_free[b] = out + 1
                    st.dirty[way] = False
                    writes.append((out + self.hit_cycles + self.controller_cycles, len(writes),
                                   st.line[way] * self.line_bytes))
        if not writes:
            return cycle
        writes.sort()
        reqs = [self._issue(arrival, address, self.line_bytes, True) for arrival, _, address in writes]
        self._serve()
        self._n["writebacks"] += len(writes)
        self._n["array_bytes"] += len(writes) * self.line_bytes
        done = max(r.done for r in reqs)
        self._n["last_completion"] = max(self._n["last_completion"], done)
        return done

    def contains(self, address: int) -> bool:
        """Whether the line holding ``address`` is allocated (present or in flight)."""
        line = self._check(self._now, address, 1)[1] // self.line_bytes
        st = self._tags[line % self.sets]
        return st is not None and line in st.order

    def dirty(self, address: int) -> bool:
        """Whether the line holding ``address`` is allocated and dirty."""
        line = self._check(self._now, address, 1)[1] // self.line_bytes
        st = self._tags[line % self.sets]
        return st is not None and line in st.order and st.dirty[st.order[line]]

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since this cache was made (see the module docstring)."""
        n = dict(self._n)
        hbm = self._hbm_counters()
        span = n["last_completion"] - self._first if self._first is not None else 0
        moved = n["bytes_read"] + n["bytes_written"]
        per_cycle = moved / span if span else 0.0
        amat = n.pop("latency_sum") / n["requests"] if n["requests"] else 0.0
        hbm_bytes_read = hbm["bytes_read"] - self._hbm_base["bytes_read"]
        hbm_bytes_written = hbm["bytes_written"] - self._hbm_base["bytes_written"]
        l3_pj = n["array_bytes"] * 8 / 64 * self.cfg.energy.l3_pj_per_64b
        hbm_pj = hbm["energy_pj"] - self._hbm_base["energy_pj"]
        n.update(
            hit_rate=n["hits"] / n["accesses"] if n["accesses"] else 0.0,
            read_hit_rate=n["read_hits"] / n["reads"] if n["reads"] else 0.0,
            amat_cycles=amat, amat_ns=amat * 1000 / self.cfg.clock.mhz,
            span_cycles=span, bandwidth_gbytes_per_s=per_cycle * self.cfg.clock.mhz / 1000,
            hbm_requests=hbm["requests"] - self._hbm_base["requests"],
            hbm_bytes_read=hbm_bytes_read, hbm_bytes_written=hbm_bytes_written,
            l3_energy_pj=l3_pj, hbm_energy_pj=hbm_pj, energy_pj=l3_pj + hbm_pj,
        )
        return n

    # ---- one request ------------------------------------------------------------------------------

    def _check(self, cycle: Any, address: Any, nbytes: Any) -> tuple[int, int, int]:
        cycle, address, nbytes = _index("cycle", cycle), _index("address", address), _index("nbytes", nbytes)
        if cycle < self._now:
            raise ValueError(f"cycle: {cycle} is not allowed: must be >= {self._now}, the cycle of the previous "
                             f"request (requests come in nondecreasing cycle order)")
        if address < 0:
            raise ValueError(f"address: {address} is not allowed: must be >= 0")
        if nbytes < 1:
            raise ValueError(f"nbytes: {nbytes} is not allowed: must be >= 1")
        self._now = cycle
        return cycle, address, nbytes

    def _complete(self, cycle: int, done: int) -> None:
        n = self._n
        n["latency_sum"] += done - cycle
        if done > n["last_completion"]:
            n["last_completion"] = done
        if self._first is None:
            self._first = cycle

    def _request(self, cycle: int, address: int, nbytes: int, write: bool,
                 stream: bool) -> tuple[int, list[_Hbm]]:
        """Known completion so far, and the HBM requests (not served yet) it also waits for."""
        n = self._n
        n["requests"] += 1
        n["bytes_written" if write else "bytes_read"] += nbytes
        if not self.enabled:
            return cycle, [self._issue(cycle + self.controller_cycles, address, nbytes, write)]
        lb = self.line_bytes
        end = address + nbytes
        done, pending = cycle, []
        for line in range(address // lb, (end - 1) // lb + 1):
            lo = max(address, line * lb)
            r = self._line(cycle, line, lo, min(end, (line + 1) * lb) - lo, write, stream)
            if type(r) is int:
                if r > done:
                    done = r
            elif r.done is not None:
                if r.done > done:
                    done = r.done
            else:
                pending.append(r)
        return done, pending

    def _line(self, cycle: int, line: int, address: int, nbytes: int, write: bool, stream: bool) -> Any:
        """One line access: its completion (int, or the _Hbm it waits for)."""
        n = self._n
        n["accesses"] += 1
        n["writes" if write else "reads"] += 1
        s = line % self.sets
        b = s % self.banks
        start = self._bank_free[b]
        if start < cycle:
            start = cycle
        else:
            n["bank_conflict_stall_cycles"] += start - cycle
        self._bank_free[b] = start + 1
        t = start + self.hit_cycles
        st = self._tags[s]
        if st is None:
            st = self._tags[s] = _Set(self.ways)
        way = st.order.get(line)
        if way is not None:                                     # present: hit, or merged if still in flight
            del st.order[line]
            st.order[line] = way                                # most recently used
            fill = st.fill[way]
            arrived = self._arrived(fill, t)
            if arrived:
                n["hits"] += 1
                if not write:
                    n["read_hits"] += 1
            else:
                n["misses"] += 1
                n["merged"] += 1
            if write:
                n["array_bytes"] += nbytes
                if not self._write_back:
                    return self._issue(t + self.controller_cycles, address, nbytes, True)
                st.dirty[way] = True
            else:
                n["array_bytes"] += nbytes if arrived else 0
            return t if arrived else fill
        n["misses"] += 1
        if write and not self._write_back:                      # write-through, no-write-allocate
            return self._issue(t + self.controller_cycles, address, nbytes, True)
        if write and nbytes == self.line_bytes:                 # whole line: allocate without reading HBM
            way, victim = self._allocate(st, line, t)
            st.dirty[way] = True
            n["array_bytes"] += nbytes
            if victim is not None:
                self._writeback(victim, t)
            return t
        slot, alloc = self._take_mshr(t)
        if stream and not write and self._bypass:               # read-once data: straight from HBM
            n["bypassed"] += 1
            req = self._issue(alloc + self.controller_cycles, address, nbytes, False)
            self._mshr[slot] = req
            return req
        way, victim = self._allocate(st, line, alloc)
        req = self._issue(alloc + self.controller_cycles, line * self.line_bytes, self.line_bytes, False)
        self._mshr[slot] = st.fill[way] = req
        st.dirty[way] = write and self._write_back
        n["array_bytes"] += self.line_bytes
        if victim is not None:
            self._writeback(victim, alloc)
        return req

    def _allocate(self, st: _Set, line: int, t: int) -> tuple[int, int | None]:
        """Install ``line`` in ``st`` at cycle ``t``: its way, and the dirty victim line to write back."""
        victim = None
        if len(st.order) < self.ways:
            way = st.line.index(-1)
        else:
            if self._lru:
                old = next(iter(st.order))
                way = st.order.pop(old)
            else:
                self._lfsr = lfsr_step(self._lfsr)
                way = self._lfsr % self.ways
                old = st.line[way]
                del st.order[old]
            self._n["evictions"] += 1
            if st.dirty[way]:
                victim = old
        st.line[way] = line
        st.order[line] = way
        st.dirty[way] = False
        st.fill[way] = t
        return way, victim

    def _writeback(self, line: int, t: int) -> None:
        self._n["writebacks"] += 1
        self._n["array_bytes"] += self.line_bytes
        self._issue(t + self.controller_cycles, line * self.line_bytes, self.line_bytes, True)

    # ---- MSHRs and the HBM ------------------------------------------------------------------------

    def _arrived(self, fill: Any, t: int) -> bool:
        """Whether a line filled at ``fill`` is in the array by cycle ``t`` (serves the batch if it must)."""
        if type(fill) is int:
            return fill <= t
        if fill.done is None:
            if fill.bound > t:
                return False
            self._serve()
        return fill.done <= t

    def _take_mshr(self, t: int) -> tuple[int, int]:
        """The MSHR a miss at tag-check cycle ``t`` gets, and the cycle it gets it."""
        slots = self._mshr
        while True:
            first, bound = -1, None                             # earliest known free cycle; earliest unknown one
            for i, v in enumerate(slots):
                if type(v) is not int:
                    if v.done is None:
                        if v.bound > t:                         # surely still busy at t
                            if bound is None or v.bound < bound:
                                bound = v.bound
                            continue
                        break                                   # might be free: serve to know
                    v = slots[i] = v.done
                if v <= t:
                    return i, t
                if first < 0 or v < slots[first]:
                    first = i
            else:
                # all busy: wait for the earliest, if no unserved one could free before (or with) it
                if first >= 0 and (bound is None or slots[first] < bound):
                    self._n["mshr_stall_cycles"] += slots[first] - t
                    return first, slots[first]
            self._serve()

    def _issue(self, arrival: int, address: int, nbytes: int, write: bool) -> _Hbm:
        if arrival < self._last_arrival:                        # the HBM would reorder it within a batch
            self._serve()
        self._last_arrival = arrival
        req = _Hbm(arrival, address, nbytes, write, arrival + self._hbm_min)
        self._batch.append(req)
        return req

    def _serve(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        done = self.hbm.serve(make_requests(np.array([r.address for r in batch]), np.array([r.nbytes for r in batch]),
                                            np.array([r.arrival for r in batch]), np.array([r.write for r in batch])))
        for r, d in zip(batch, done.tolist()):
            r.done = d

    def _hbm_counters(self) -> dict[str, float]:
        s = self.hbm.stats
        return {k: s[k] for k in ("requests", "bytes_read", "bytes_written", "energy_pj")}


# ---------------------------------------------------------------------------------------------------
# benchmark: AMAT with and without the L3 on DMA-like traces

BENCH_TRACES = ("weights_reused_across_row_tiles", "kv_cache_reread", "pure_stream", "write_then_read")


def bench_traces(cfg: HwConfig) -> dict[str, list[tuple[int, int, bool, bool, bool]]]:
    """The named traces of ``amat_bench``: lists of bursts ``(address, nbytes, write, stream, barrier)``.

    Bursts are ``memory.burst_beats x beat_bytes`` (1 KiB by default), tensors start on their own page.
    ``w = min(256 KiB, l3.bytes / 4)`` keeps the reused data well inside the cache at every size:

    - weights_reused_across_row_tiles: C = A.B in 8 row tiles; per tile the DMA reads its A tile (w/2, read
      once, ``stream=True``), then all of B (w). 8 x B, 4w of A.
    - kv_cache_reread: attention over 8 query blocks; per block: Q block (w/8, stream), K (w/2), V (w/2),
      then the output block is written (w/8).
    - pure_stream: 16 w (4 MiB by default) read once, no hint: nothing for a cache to reuse.
    - write_then_read: a layer writes its output (w); once every write has completed (``barrier``), the next
      layer reads it back.
    """
    burst = cfg.memory.burst_beats * cfg.beat_bytes
    w = min(256 << 10, cfg.l3.bytes // 4)
    page = cfg.memory.page_bytes

    def tensors(*sizes: int) -> list[int]:
        """Base addresses of tensors placed one after another from 0, each on its own pages."""
        pages = [-(-n // page) for n in sizes]
        return [sum(pages[:i]) * page for i in range(len(sizes))]

    def bursts(at: int, nbytes: int, write: bool = False, stream: bool = False, barrier: bool = False) -> list:
        out = [(a, min(burst, at + nbytes - a), write, stream, False) for a in range(at, at + nbytes, burst)]
        if barrier and out:
            out[0] = out[0][:4] + (True,)
        return out

    traces = {}
    a, b = tensors(4 * w, w)
    tiles = []
    for t in range(8):
        tiles += bursts(a + t * w // 2, w // 2, stream=True) + bursts(b, w)
    traces["weights_reused_across_row_tiles"] = tiles

    q, k, v, o = tensors(w, w // 2, w // 2, w)
    kv = []
    for blk in range(8):
        kv += bursts(q + blk * w // 8, w // 8, stream=True) + bursts(k, w // 2) + bursts(v, w // 2)
        kv += bursts(o + blk * w // 8, w // 8, write=True)
    traces["kv_cache_reread"] = kv

    traces["pure_stream"] = bursts(0, 16 * w)
    c = 0
    traces["write_then_read"] = bursts(c, w, write=True) + bursts(c, w, barrier=True)
    return traces


def run_closed_loop(cache: L3Cache, trace: list[tuple[int, int, bool, bool, bool]], outstanding: int) -> int:
    """Issue a trace as a DMA does: at most one burst per cycle, at most ``outstanding`` bursts in flight
    per direction (a new one goes out when the earliest completes); a burst marked ``barrier`` waits for
    every earlier one. Returns the last completion."""
    cycle, last = 0, 0
    inflight: dict[bool, list[int]] = {False: [], True: []}
    for address, nbytes, write, stream, barrier in trace:
        if barrier:
            cycle = max(cycle, last)
            inflight = {False: [], True: []}
        heap = inflight[write]
        if len(heap) == outstanding:
            cycle = max(cycle, heapq.heappop(heap))
        done = cache.access(cycle, address, nbytes, write, stream)
        heapq.heappush(heap, done)
        last = max(last, done)
        cycle += 1
    return last


def amat_bench(cfg: HwConfig) -> dict[str, dict[str, float]]:
    """Per trace of ``bench_traces``, the trace run twice from a cold start: ``*_l3`` with the L3 as
    configured (``l3.enabled`` forced on), ``*_hbm`` with ``l3.enabled = False`` (straight to HBM). Keys: AMAT
    (``amat_*_cycles``, ``amat_*_ns``), ``amat_reduction = 1 - amat_l3 / amat_hbm`` (negative: the cache costs
    latency), ``hit_rate`` / ``read_hit_rate`` / ``merged``, achieved bandwidth ``gbytes_per_s_*``, the
    cache's stalls, total energy of each run ``energy_*_pj`` (dirty lines left in the cache are not flushed),
    ``bytes``, ``requests`` and ``wall_s``. Bursts are issued by ``run_closed_loop`` with
    ``memory.outstanding`` in flight per direction, so AMAT includes queueing. The design brief says the L3
    cuts memory latency by 40 %: ``amat_reduction`` measures it."""
    data = cfg.model_dump()
    data["l3"] = {**data["l3"], "enabled": True}
    with_l3 = from_dict(data)
    data["l3"]["enabled"] = False
    without = from_dict(data)
    out = {}
    for name, trace in bench_traces(cfg).items():
        wall = time.perf_counter()
        runs = {}
        for key, c in (("l3", with_l3), ("hbm", without)):
            cache = L3Cache(c)
            run_closed_loop(cache, trace, cfg.memory.outstanding)
            runs[key] = cache.stats
        s, h = runs["l3"], runs["hbm"]
        out[name] = {
            "bytes": s["bytes_read"] + s["bytes_written"], "requests": s["requests"],
            "amat_l3_cycles": s["amat_cycles"], "amat_hbm_cycles": h["amat_cycles"],
            "amat_l3_ns": s["amat_ns"], "amat_hbm_ns": h["amat_ns"],
            "amat_reduction": 1 - s["amat_cycles"] / h["amat_cycles"],
            "hit_rate": s["hit_rate"], "read_hit_rate": s["read_hit_rate"], "merged": s["merged"],
            "gbytes_per_s_l3": s["bandwidth_gbytes_per_s"], "gbytes_per_s_hbm": h["bandwidth_gbytes_per_s"],
            "mshr_stall_cycles": s["mshr_stall_cycles"], "bank_conflict_stall_cycles": s["bank_conflict_stall_cycles"],
            "energy_l3_pj": s["energy_pj"], "energy_hbm_pj": h["energy_pj"],
            "wall_s": time.perf_counter() - wall,
        }
    return out


__all__ = ["BENCH_TRACES", "LFSR_POLY", "LFSR_SEED", "L3Cache", "amat_bench", "bench_traces", "controller_cycles",
           "lfsr_step", "run_closed_loop"]
