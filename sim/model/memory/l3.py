"""L3 shared cache: the timing of the RTL cache (``hwgen/rtl/memory/l3_cache.py``), cycle for cycle, and its statistics.

``L3Ports(cfg, hbm=None, seed=LFSR_SEED, cleared=False)`` has the memory interface ``DmaUnits``
(sim/model/memory/dma.py) uses, the one ``HbmPorts`` (sim/model/memory/axi_port.py) has, so the simulator can put it
between the DMA and the HBM: one slave port (``port_of(address) == 0``), ``read(cycle, port, address, beats,
stream=False) -> list[int]`` (called for the AR handshake in ``cycle``: per beat, the first cycle its RVALID
may be high), ``write(cycle, port, address, beats, full=True) -> int`` (called in the cycle the write burst is
complete at the port, ``max(AW, last W handshake)``: the first cycle BVALID may be high; ``full`` says every
WSTRB bit was set), the response channels ``r[0]`` / ``b[0]`` (``ResponseChannel``), ``serve_read`` /
``serve_write`` (request + channel with no stalls: the handshake cycles), ``reset()``, ``stats``, ``contains``
/ ``dirty`` / ``dirty_lines`` (tag state), and the RTL's flush: ``idle_cycle`` (the first cycle its ``idle``
output is high) and ``flush(cycle) -> int`` (its ``flush`` input taken in ``cycle``: every dirty line written
back and cleaned; returns the first cycle ``flushing`` is low again, see the table). Calls come in HbmPorts'
order: nondecreasing cycles, within a cycle a flush before the AR and the AR before the completed write; out
of order raises ValueError. ``stream`` is the slave's ``ar_stream`` input (the DMA's read-once hint). Its
master side is an ``HbmPorts`` (``hbm``, made from ``cfg`` when not given), called in HbmPorts' order on its
port 0 exactly when the RTL's master port makes the same calls, so a cocotb ``HbmResponder`` answering the
RTL's master sees the same timing. Master writes are handed to ``hbm`` when a later master read needs the HBM
state or at ``drain()`` (``stats`` drains). All numbers come from ``hwgen.spec.l3.L3Timing.of(cfg)``, i.e.
from ``cfg.l3``, ``cfg.beat_bytes`` and ``cfg.memory``.

Cycle 0. By default cycle 0 is the first cycle after reset, as in the RTL: the tag RAMs are being cleared
until cycle ``init_cycles = sets / banks`` (one row of each of the ``banks`` tag RAMs per cycle), requests
are accepted meanwhile and wait. ``cleared=True`` starts with the clear done: cycle 0 is the first cycle the
RTL's ``ready`` output is high (``init_cycles`` after reset), for a master (the engine testbench, the
simulator) that waits for ``ready`` before its first request and counts cycles from there; the HBM behind
must count from there too. ``ready_cycle`` is that first cycle in this object's numbering (0 with
``cleared``, else ``init_cycles``; 0 when the cache is disabled).

Timing rules (those of the RTL; its module docstring explains the structures)
------------------------------------------------------------------------------
``L`` = line_beats, ``D = hit_delay = hit_cycles - 5``, ``Q = line_queue``, ``M = mshrs``. A request is split
into *line accesses* (its beats within one line), handled one after another in request order (reads and
writes in call order).

=====================  ===================================================================================
event                  cycle
=====================  ===================================================================================
request visible        read: ``c + 1``; write: ``c + 2`` (``c``: the call's cycle)
tag stage (S1)         line access ``i`` enters S1 at ``E_i = max(T_{i-1} + 1, visible + 1)`` (``T_{-1} =
                       ready_cycle``: after reset the tag RAMs are cleared, ``sets / banks`` cycles) and decides
                       (hit or miss, victim, tag write) at ``T_i``, the first cycle ``>= E_i`` with a free
                       line-queue slot (``T_i > pop_{i-Q}``) and, if it needs a fill, a free MSHR
                       (``T_i > release`` of the fill ``M`` fills before) and no HBM write of its line in
                       flight (``T_i > B`` of each write-back / write-through write of the line made by an
                       earlier access); an access that makes an HBM write also needs a free slot among
                       ``pending_writes`` (``T_i > B`` of the write ``pending_writes`` writes before); the
                       waits add to ``queue_stall_cycles`` / ``mshr_stall_cycles`` / ``write_wait_cycles``
fill AR                presented (and, with no stalls, accepted) in ``T_i + 1``: ``hbm.read(T_i + 1, 0, ...)``
                       for the whole line (a bypassed read: only its own beats); its beats are accepted as
                       ``hbm.r[0]`` presents them and usable one cycle later (``h + 1``)
data stage             the entry is visible in ``V_i = T_i + D + 1``; its micro-ops (one beat each: the
                       dirty victim's ``L`` beats first, then the access's beats; a fill: all ``L`` beats of
                       the line, a bypassed read: its own) run one per cycle in request order, the first at
                       ``max(V_i, previous micro-op + 1)``, each fill beat's no earlier than its fill beat
                       is usable
R beat / B response    ready (RVALID / BVALID may be high) ``2`` cycles after the micro-op of the beat / the
                       last micro-op of the write's last line access
master writes          a write-back (the victim line, ``L`` beats) or write-through (the access's beats)
                       completes at the master port 2 cycles after its last micro-op:
                       ``hbm.write(that cycle, 0, ...)``; its B response is taken when presented
pop / MSHR release     the entry's last micro-op (``pop_i``); a fill's MSHR is released by its last beat's
flush taken in ``c``   (``c >= idle_cycle``; calls of cycle ``c`` come after it) flush ops enter S1 from
                       ``c + 1``, one per set (0, 1, ...) without a dirty line, one per dirty line (lowest way
                       first), until the last dirty line; each write-back op follows the S1 rules above
                       (line-queue and ``pending_writes`` slots) and the data stage as a victim's write-back.
                       ``flushing`` falls in ``c + 2`` with nothing dirty, else one cycle after the B of the
                       last write-back; line accesses enter S1 from one cycle after the fall
=====================  ===================================================================================

A lone read hit is ready ``hit_cycles`` after its AR; a lone read miss ``hit_cycles + 1`` after its first
fill beat is accepted (for ``L = 1``: ``T + 1`` to the HBM, HBM latency, then ``D + 2``... see the table).
The slave's request buffers hold ``request_fifo`` requests per direction and ``w_fifo`` W beats; ``read`` /
``write`` raise ValueError for a request the RTL would hold back (the DMA keeps ``memory.outstanding``).

Policies (tags change in request order at S1, so counts do not depend on timing)
---------------------------------------------------------------------------------
- A line is *present* once S1 allocated it (its data may still be in flight): a later access to it is a hit
  (the data stage, in order, has written the fill by then). There are no merged misses.
- Replacement ``lru``: a set fills its lowest-numbered empty way first; when full, the least recently used
  line (hits and allocations make a line most recent) is the victim. ``random``: empty ways first; when full,
  a 16-bit Galois LFSR (x^16 + x^14 + x^13 + x^11 + 1, ``state = (state >> 1) ^ (0xB400 if state & 1 else 0)``,
  seed ``0xACE1`` unless ``seed=`` says otherwise, one for the cache, stepped once per victim choice before
  it is used) picks way ``state % ways``.
- ``write_back``: write-allocate; a write hit marks the line dirty; a write miss that covers the whole line
  with every strobe set (``full``) allocates without a fill, any other write miss fills the line first and
  merges its beats; evicting a dirty line writes it back (``writebacks``).
- ``write_through``: no-write-allocate; every write's beats go to HBM (one master burst per line access); a
  write hit also updates the line, a write miss allocates nothing. Lines are never dirty. B does not wait
  for HBM (posted writes).
- ``bypass = streaming``: a read with ``stream=True`` that misses allocates nothing and disturbs no
  replacement state; it takes an MSHR and reads only its own beats from HBM (a miss, counted in
  ``bypassed``). A streaming read that hits is an ordinary hit. Writes ignore the hint.
- ``enabled = False``: no cache; ``read`` / ``write`` go to ``hbm`` port 0 as they are.

Statistics (``stats``)
----------------------
``requests`` (``reads`` + ``writes``), ``accesses`` (line accesses, ``hits + misses``), ``hits``,
``read_hits``, ``misses``, ``evictions``, ``writebacks``, ``bypassed``, ``flushes``, ``flush_writebacks``
(lines written back by flushes; ``writebacks`` counts evictions only), ``flush_cycles`` (take to fall, summed),
``hit_rate``, ``read_hit_rate``,
``bytes_read`` / ``bytes_written`` (beats x beat_bytes asked for), ``mshr_stall_cycles``,
``queue_stall_cycles``, ``amat_cycles`` (mean of ready - call cycle: the last R beat of a read, the B of a
write) and ``amat_ns``, ``bandwidth_gbytes_per_s`` (bytes over first call .. last ready). Energy:
``l3_energy_pj = HwConfig.l3_pj_per_64b`` (``energy.l3_pj_per_64b``, or derived from the size) per 64 bits
moved into or out of the data array (``array_bytes``: read hit beats, write beats into a present line,
``line_bytes`` per allocating fill and per write-back, flushes included), plus the HBM's own ``hbm_*`` counters
since this object was made or reset, ``energy_pj`` their sum.

``amat_bench(cfg)`` times named DMA-like traces with and without the cache (see its docstring).
"""
from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Any

from hwgen.spec.config import HwConfig, changed
from hwgen.spec.l3 import LFSR_POLY, LFSR_SEED, MIN_HIT_CYCLES, L3Timing
from sim.model.memory.axi_port import KINDS, MAX_BEATS, HbmPorts, ResponseChannel
from sim.model.memory.axi_port import controller_cycles as controller_cycles

READ, WRITE = 0, 1
FLUSH = -1                  # a flush request orders before the AR of its cycle (see ``L3Ports.flush``)


def lfsr_step(state: int) -> int:
    """One step of the replacement LFSR (see the module docstring)."""
    return (state >> 1) ^ (LFSR_POLY if state & 1 else 0)


class _Set:
    """Tags of one set. ``order`` maps line -> way, least recently used first (dict order)."""

    __slots__ = ("order", "line", "dirty")

    def __init__(self, ways: int):
        self.order: dict[int, int] = {}
        self.line = [-1] * ways         # -1: empty way
        self.dirty = [False] * ways


class L3Ports:
    """The RTL cache's timing and statistics behind HbmPorts' interface; see the module docstring."""

    def __init__(self, cfg: HwConfig, hbm: HbmPorts | None = None, seed: int = LFSR_SEED, cleared: bool = False,
                 slice_: int = 0, merge: tuple[ResponseChannel, ResponseChannel] | None = None):
        """``slice_``: with ``memory.ports`` P > 1, this is the L3's slice in front of HBM port ``slice_`` (the RTL's
        ``L3Cache(cfg, port=slice_)``): it indexes its ``sets / P`` sets with ``L3Timing.local(address)`` and makes
        its master calls on ``hbm`` port ``slice_``. ``merge``: the R and B channels of the interleaver above the
        slices (``sim/model/memory/l3_slices.py``), whose handshakes are in request order over all slices: each R
        beat and B response of this slice is handshaken there in ``merge[.].take(ready)``, ``read`` / ``write``
        return those handshake cycles, and a data micro-op that makes an R beat (B response) waits until fewer than
        ``response_fifo`` of this slice's earlier ones are not yet handshaken (the RTL's output FIFOs fill while
        the interleaver serves another port). Without ``merge`` the master takes every response when it is
        ready, which the L3 alone in front of a DMA does."""
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 < seed < 1 << 16:
            raise ValueError(f"seed: {seed!r} is not allowed: must be in [1, 65535] (a 16-bit LFSR state, not 0)")
        if not isinstance(cleared, bool):
            raise ValueError(f"cleared: {cleared!r} is not allowed: must be True or False")
        self.cfg = cfg
        self.timing = L3Timing.of(cfg)
        if isinstance(slice_, bool) or not isinstance(slice_, int) or not 0 <= slice_ < self.timing.slices:
            raise ValueError(f"slice_: {slice_!r} is not allowed: must be in [0, {self.timing.slices}) (memory.ports)")
        self.slice = slice_
        self._merge = merge
        self.hbm = HbmPorts(cfg) if hbm is None else hbm
        self.enabled = cfg.l3.enabled
        self.ports = 1
        self.beat_bytes = cfg.beat_bytes
        self.line_bytes = cfg.l3.line_bytes
        self.sets, self.ways = self.timing.sets, self.timing.ways
        self._lru = cfg.l3.replacement == "lru"
        self._write_back = cfg.l3.write_policy == "write_back"
        self._bypass = cfg.l3.bypass == "streaming"
        self._seed = seed
        self.cleared = cleared
        self.r = [ResponseChannel()]
        self.b = [ResponseChannel()]
        self._clear()

    def _clear(self) -> None:
        t = self.timing
        self._lfsr = self._seed
        self._tags: dict[int, _Set] = {}
        self._last = (-1, -1)                       # (cycle, kind) of the previous call
        self._T = self.ready_cycle                  # S1 of the previous access (none before the tag RAMs are clear)
        self._u = -1                                # the previous data micro-op
        self._pops: deque[int] = deque(maxlen=t.line_queue)
        self._releases: deque[int] = deque(maxlen=t.mshrs)
        self._fifo = {READ: deque(), WRITE: deque()}    # pop cycles of requests (for the buffer check)
        self._pending: list = []                    # master writes not given to hbm: (cycle, seq, record)
        self._pw: deque[list] = deque()             # master writes from S1 on: [line, cycle, address, beats, B]
        self._seq = 0
        self.master_calls: list[tuple[int, int, str, int, int]] = []   # as HbmResponder.calls records them
        self._hbm_base = self._hbm_counters()
        self._r_hs: deque[int] = deque(maxlen=t.response_fifo)    # handshakes of this slice's last R beats
        self._b_hs: deque[int] = deque(maxlen=t.response_fifo)    # ... and B responses (with ``merge``)
        self._idle_from = 0                         # the first cycle nothing is in flight (see ``idle_cycle``)
        self._flush_wait = (0, 0)                   # (request, take) of the last flush: no request between
        self.flush_take = None                      # the cycle the last flush was taken
        self._n = dict.fromkeys(("requests", "reads", "writes", "accesses", "hits", "read_hits", "misses",
                                 "read_accesses", "evictions", "writebacks", "bypassed", "bytes_read", "bytes_written",
                                 "array_bytes", "mshr_stall_cycles", "queue_stall_cycles", "write_wait_cycles",
                                 "flushes", "flush_writebacks", "flush_cycles", "latency_sum"), 0)
        self._first: int | None = None
        self._end = 0

    @property
    def ready_cycle(self) -> int:
        """The first cycle the RTL's ``ready`` is high (the tag stage can start), in this object's cycles."""
        return 0 if self.cleared or not self.enabled else self.timing.init_cycles

    def reset(self) -> None:
        """Back to cycle 0 and an empty cache (tag RAMs cleared again unless ``cleared``): tags, LFSR, timing,
        counters and the HbmPorts behind."""
        self.hbm.reset()
        for ch in (*self.r, *self.b):
            ch.reset()
        self._clear()

    def port_of(self, address: int) -> int:
        return 0

    # -- requests ------------------------------------------------------------------------------------
    def read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        """AR handshake in ``cycle``: per beat, the first cycle its RVALID may be high."""
        self._check(cycle, port, address, beats, READ)
        if not self.enabled:
            ready = self.hbm.read(cycle, 0, address, beats)
        else:
            ready = self._request(cycle, address, beats, READ, bool(stream))
        self._account(cycle, beats, READ, max(ready))
        return ready

    def accept_cycle(self, cycle: int, kind: int, address: int | None = None) -> int:
        """The first cycle >= ``cycle`` in which a request (``kind`` 0 read, 1 write) finds room in its request
        buffer: where the RTL's AR / AW READY rises again when several masters keep it full."""
        fifo, room = self._fifo[kind], self.timing.request_fifo
        if len(fifo) < room:
            return cycle
        pop = sorted(fifo)[len(fifo) - room]        # this entry must have left: pop < push(c)
        return max(cycle, pop + 1 if kind == READ else pop)

    def write(self, cycle: int, port: int, address: int, beats: int, full: bool = True) -> int:
        """Write burst complete at the port in ``cycle``: the first cycle its BVALID may be high."""
        self._check(cycle, port, address, beats, WRITE)
        if not self.enabled:
            ready = self.hbm.write(cycle, 0, address, beats)
        else:
            ready = self._request(cycle, address, beats, WRITE, bool(full))[0]
        self._account(cycle, beats, WRITE, ready)
        return ready

    def serve_read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        """``read`` followed by the R channel with no stalls: the cycle of each R handshake."""
        return self.r[port].take_all(self.read(cycle, port, address, beats, stream))

    def serve_write(self, cycle: int, port: int, address: int, beats: int, full: bool = True) -> int:
        """``write`` followed by the B channel with no stalls: the cycle of the B handshake."""
        return self.b[port].take(self.write(cycle, port, address, beats, full))

    def drain(self) -> None:
        """Hand every master write still held back to ``hbm`` (nothing later can come before them)."""
        self._flush(None)

    def contains(self, address: int) -> bool:
        """Whether the line holding ``address`` is allocated."""
        line = self.timing.local(address) // self.line_bytes
        st = self._tags.get(line % self.sets)
        return st is not None and line in st.order

    def dirty(self, address: int) -> bool:
        """Whether the line holding ``address`` is allocated and dirty."""
        line = self.timing.local(address) // self.line_bytes
        st = self._tags.get(line % self.sets)
        return st is not None and line in st.order and st.dirty[st.order[line]]

    @property
    def dirty_lines(self) -> int:
        """Number of dirty lines in the cache (the RTL counts them at S1)."""
        return sum(st.dirty[w] for st in self._tags.values() for w in st.order.values())

    @property
    def idle_cycle(self) -> int:
        """The first cycle the RTL's ``idle`` output is high if no further request comes: the tag RAMs are
        clear, no flush runs, every line access has left S1 and the data stage, every response given to the
        slave's R / B channels (``r[0]`` / ``b[0]``, or the ready cycles when the caller takes them elsewhere)
        has been handshaken and every HBM write's B received. Hands ``hbm`` every master write held back (as
        ``drain``): ask for it only once no request of an earlier cycle is still to come."""
        self.drain()
        answered = self._end + 1 if self._first is not None else 0                  # the last ready response
        return max(self.ready_cycle, self._idle_from, answered, self.r[0].last + 1, self.b[0].last + 1)

    def flush(self, cycle: int) -> int:
        """The RTL's ``flush`` input pulsed in ``cycle``: write every dirty line back to HBM and mark it clean
        (lines stay valid, replacement state unchanged). The flush is taken in ``c = max(cycle, idle_cycle)``
        (``flush_take``); returns ``F``, the first cycle the RTL's ``flushing`` output is low again (it is high
        from ``cycle + 1``): ``c + 2`` when nothing is dirty, else the cycle after the B handshake of the last
        write-back.

        The walk (see ``hwgen/rtl/memory/l3_cache.py``, 6.): flush ops enter S1 one after another from ``c + 1``; set
        ``s = 0, 1, ...`` takes one op if it holds no dirty line, else one op per dirty line (lowest way
        first), each S1 decision as a line access's (a free line-queue slot, a free ``pending_writes`` slot),
        each write-back ``L`` data micro-ops and a master write of the line, exactly as an eviction's; the walk
        ends with the op that cleans the last dirty line. A request may be called in ``c`` (after this) or
        later: the slave buffers it and it enters S1 from the cycle after ``F``. A request in ``cycle .. c - 1``
        would delay the take: ``read`` / ``write`` raise ValueError for it (the master must also not start an AW
        or W before ``c``, which this model cannot see).

        Raises ValueError for a ``cycle`` before the previous call. A disabled cache (``l3.enabled = False``)
        holds nothing: returns ``cycle + 2``."""
        what = f"flush(cycle={cycle})"
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 0:
            raise ValueError(f"{what}: cycle {cycle!r} is not allowed: must be an integer >= 0")
        if (cycle, FLUSH) <= self._last:
            raise ValueError(f"{what}: out of order after {KINDS[self._last[1]] if self._last[1] >= 0 else 'flush'} "
                             f"in cycle {self._last[0]}: cycles must not decrease, and within a cycle the flush "
                             f"comes before the AR")
        if not self.enabled:
            self._last = (cycle, FLUSH)
            self.flush_take = cycle
            return cycle + 2
        take = max(cycle, self.idle_cycle)
        self._last = (cycle, FLUSH)
        self._flush_wait = (cycle, take)
        self.flush_take = cycle = take
        t, n = self.timing, self._n
        L, lb, P = t.line_beats, self.line_bytes, t.pending_writes
        n["flushes"] += 1
        left = self.dirty_lines
        T = cycle                                                   # the first op enters S1 in cycle + 1
        last = None
        for s in range(self.sets):
            if not left:
                break
            st = self._tags.get(s)
            ways = [w for w in range(self.ways) if st is not None and st.line[w] != -1 and st.dirty[w]]
            if not ways:
                T += 1                                              # an op that finds nothing: one cycle
                continue
            for w in ways:
                T += 1
                if len(self._pw) >= P:                              # a free slot: the B of the write P before
                    T = max(T, self._b_of(self._pw[len(self._pw) - P]) + 1)
                if len(self._pops) == t.line_queue and self._pops[0] + 1 > T:
                    n["queue_stall_cycles"] += self._pops[0] + 1 - T
                    T = self._pops[0] + 1
                while len(self._pw) > P and self._pw[0][4] is not None and self._pw[0][4] < T:
                    self._pw.popleft()
                victim = st.line[w]
                rec = [victim, None, None, None, None]
                self._pw.append(rec)
                u = max(self._u + 1, T + t.hit_delay + 1) + L - 1    # the line's L micro-ops, from the RAM
                self._master_write(rec, u + 2, self._physical(victim * lb), L)
                self._u = u
                self._pops.append(u)
                st.dirty[w] = False
                left -= 1
                n["flush_writebacks"] += 1
                n["array_bytes"] += lb
                last = rec
        end = cycle + 2 if last is None else self._b_of(last) + 1
        n["flush_cycles"] += end - cycle
        self._T = end                                               # requests enter S1 from end + 1
        self._idle_from = max(self._idle_from, end)
        return end

    def _check(self, cycle: int, port: int, address: int, beats: int, kind: int) -> None:
        what = f"{KINDS[kind]}(cycle={cycle}, port={port}, address={address}, beats={beats})"
        for name, value, low, high in (("cycle", cycle, 0, None), ("port", port, 0, 0),
                                       ("address", address, 0, None), ("beats", beats, 1, MAX_BEATS)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None
                                                                                        and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise ValueError(f"{what}: {name} {value!r} is not allowed: must be an integer {bound}")
        if self._flush_wait[0] <= cycle < self._flush_wait[1]:
            r, c = self._flush_wait
            raise ValueError(f"{what}: a request while the flush requested in cycle {r} waits for the cache to go "
                             f"idle (taken in cycle {c}): send none before the take")
        if (cycle, kind) <= self._last:
            rule = "cycles must not decrease" if cycle < self._last[0] else "within a cycle, the AR before the write"
            prev = KINDS[self._last[1]] if self._last[1] >= 0 else "flush"
            raise ValueError(f"{what}: out of order after {prev} in cycle {self._last[0]}: {rule}")
        start = address - address % self.beat_bytes
        if start // 4096 != (start + beats * self.beat_bytes - 1) // 4096:
            raise ValueError(f"{what}: address {address:#x} is not allowed: the burst crosses a 4 KiB boundary")
        self._last = (cycle, kind)

    def _account(self, cycle: int, beats: int, kind: int, ready: int) -> None:
        n = self._n
        n["requests"] += 1
        n["reads" if kind == READ else "writes"] += 1
        n["bytes_read" if kind == READ else "bytes_written"] += beats * self.beat_bytes
        n["latency_sum"] += ready - cycle
        if self._first is None:
            self._first = cycle
        self._end = max(self._end, ready)

    # -- one request ---------------------------------------------------------------------------------
    def _request(self, cycle: int, address: int, beats: int, kind: int, flag: bool) -> list[int]:
        t = self.timing
        B, L = self.beat_bytes, t.line_beats
        push = cycle if kind == READ else cycle + 1                 # enters its request FIFO
        fifo = self._fifo[kind]
        while fifo and fifo[0] < push:
            fifo.popleft()
        if len(fifo) >= t.request_fifo:
            raise ValueError(f"{KINDS[kind]}(cycle={cycle}, address={address}): more than {t.request_fifo} "
                             f"{KINDS[kind]} requests waiting for the tag stage (the RTL would hold the request back: "
                             f"keep at most 2 x memory.outstanding in flight)")
        visible = push + 1
        address = self.timing.local(address)
        start = address - address % B
        line, first, rem = start // self.line_bytes, (start // B) % L, beats
        out: list[int] = []
        E = None
        while rem:
            cnt = min(L - first, rem)
            E = max(self._T + 1, visible + 1)
            out += self._line(E, line, first, cnt, kind, flag, rem == cnt)
            rem -= cnt
            line, first = line + 1, 0
        fifo.append(E - 1)                                          # popped when its last line enters S1
        return out

    def _line(self, E: int, line: int, first: int, cnt: int, kind: int, flag: bool, last: bool) -> list[int]:
        """One line access entering S1 at ``E``: its R beats' ready cycles (reads) or [B ready] (last write)."""
        t, n = self.timing, self._n
        L, B, lb = t.line_beats, self.beat_bytes, self.line_bytes
        write = kind == WRITE
        n["accesses"] += 1
        n["read_accesses"] += not write
        # -- tags: in request order ---------------------------------------------------------------------
        s = line % self.sets
        st = self._tags.get(s)
        if st is None:
            st = self._tags[s] = _Set(self.ways)
        way = st.order.get(line)
        hit = way is not None
        victim = None
        stream_miss = alloc = False
        if hit:
            n["hits"] += 1
            n["read_hits"] += not write
            del st.order[line]
            st.order[line] = way
            if write and self._write_back:
                st.dirty[way] = True
        else:
            n["misses"] += 1
            stream_miss = self._bypass and not write and flag
            alloc = not stream_miss and not (write and not self._write_back)
            if stream_miss:
                n["bypassed"] += 1
            if alloc:
                way, victim = self._allocate(st, line)
                st.dirty[way] = write and self._write_back
        full_line = write and first == 0 and cnt == L and flag
        fill = stream_miss or (alloc and not full_line)
        present = hit or alloc
        # -- S1 -----------------------------------------------------------------------------------------
        T = E
        push_pw = victim is not None or (write and not self._write_back)
        if push_pw and len(self._pw) >= t.pending_writes:          # a free slot: the B of the write P before
            rec = self._pw[len(self._pw) - t.pending_writes]
            T = max(T, self._b_of(rec) + 1)
        if fill:                                                    # HBM writes of this line must have landed
            for rec in self._pw:
                if rec[0] == line:
                    b = self._b_of(rec)
                    if b + 1 > T:
                        n["write_wait_cycles"] += b + 1 - T
                        T = b + 1
        if len(self._pops) == t.line_queue and self._pops[0] + 1 > T:
            n["queue_stall_cycles"] += self._pops[0] + 1 - T
            T = self._pops[0] + 1
        if fill and len(self._releases) == t.mshrs and self._releases[0] + 1 > T:
            n["mshr_stall_cycles"] += self._releases[0] + 1 - T
            T = self._releases[0] + 1
        self._T = T
        while len(self._pw) > t.pending_writes and self._pw[0][4] is not None and self._pw[0][4] < T:
            self._pw.popleft()                                      # no later access can wait for it
        rec = None
        if push_pw:
            rec = [victim if victim is not None else line, None, None, None, None]
            self._pw.append(rec)
        usable: list[int] = []
        if fill:
            ar_addr = self._physical(line * lb + (first * B if stream_miss else 0))
            ar_beats = cnt if stream_miss else L
            self._flush(T)                                          # master writes before this AR
            ready = self.hbm.read(T + 1, self.slice, ar_addr, ar_beats)
            self.master_calls.append((T + 1, self.slice, KINDS[READ], ar_addr, ar_beats))
            usable = [h + 1 for h in self.hbm.r[self.slice].take_all(ready)]
        # -- data stage -----------------------------------------------------------------------------------
        u = max(self._u + 1, T + t.hit_delay + 1) - 1
        if victim is not None:
            for _ in range(L):
                u += 1
            self._master_write(rec, u + 2, self._physical(victim * lb), L)
            n["writebacks"] += 1
            n["array_bytes"] += lb
        out = []                                                    # R beats, or the write's B (its last access)
        respond = self._respond
        if fill and not stream_miss:                                # every beat of the line, from the fill
            for k in range(L):
                u = max(u + 1, usable[k])
                if not write and first <= k < first + cnt:
                    u, h = respond(u, READ)
                    out.append(h)
                elif write and last and k == L - 1:
                    u, h = respond(u, WRITE)
                    out.append(h)
            n["array_bytes"] += lb
        elif fill:                                                  # bypassed: its own beats
            for k in range(cnt):
                u = max(u + 1, usable[k])
                u, h = respond(u, READ)
                out.append(h)
        elif self._merge is None:                                   # the master takes every response at once
            u += cnt
            out = [u + 2] if write and last else [] if write else list(range(u - cnt + 3, u + 3))
        else:
            for k in range(cnt):
                u += 1
                if not write or (last and k == cnt - 1):
                    u, h = respond(u, WRITE if write else READ)
                    out.append(h)
        if present and (hit or (write and not fill)):
            n["array_bytes"] += cnt * B
        if write and not self._write_back:
            self._master_write(rec, u + 2, self._physical(line * lb + first * B), cnt)
        self._u = u
        self._pops.append(u)
        self._idle_from = max(self._idle_from, T + 1, u + 2)
        if fill:
            self._releases.append(u)
        return out

    def _respond(self, u: int, kind: int) -> tuple[int, int]:
        """The data micro-op due in ``u`` makes an R beat (``kind`` READ) or a B response: the cycle it runs in
        (with ``merge``: once fewer than ``response_fifo`` of this slice's earlier ones wait for their handshake)
        and the cycle the response is handshaken (ready two cycles after the micro-op)."""
        if self._merge is None:
            return u, u + 2
        done = self._r_hs if kind == READ else self._b_hs
        if len(done) == done.maxlen:
            u = max(u, done[0] + 1)
        h = self._merge[kind].take(u + 2)
        done.append(h)
        return u, h

    def _physical(self, local: int) -> int:
        """A slice address (``L3Timing.local``) on this slice's HBM port."""
        return self.timing.physical(local, self.slice)

    def _allocate(self, st: _Set, line: int) -> tuple[int, int | None]:
        """Install ``line`` in ``st``: its way, and the dirty victim line to write back (or None)."""
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
        return way, victim

    # -- the master port ---------------------------------------------------------------------------------
    def _master_write(self, rec: list, cycle: int, address: int, beats: int) -> None:
        rec[1:4] = cycle, address, beats
        heapq.heappush(self._pending, (cycle, self._seq, rec))
        self._seq += 1

    def _b_of(self, rec: list) -> int:
        """The B handshake of a master write (handing ``hbm`` every write up to it first)."""
        if rec[4] is None:
            self._flush(rec[1])
        return rec[4]

    def _flush(self, limit: int | None) -> None:
        """Hand ``hbm`` the master writes completing in cycles ``<= limit`` (all with None), in order."""
        while self._pending and (limit is None or self._pending[0][0] <= limit):
            cycle, _, rec = heapq.heappop(self._pending)
            _, _, address, beats, _ = rec
            self.master_calls.append((cycle, self.slice, KINDS[WRITE], address, beats))
            rec[4] = self.hbm.b[self.slice].take(self.hbm.write(cycle, self.slice, address, beats))
            self._idle_from = max(self._idle_from, rec[4] + 1)

    # -- statistics ----------------------------------------------------------------------------------
    def _hbm_counters(self) -> dict[str, float]:
        s = self.hbm.hbm.stats
        return {k: s[k] for k in ("requests", "bytes_read", "bytes_written", "energy_pj")}

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since this object was made or reset (see the module docstring); drains master writes."""
        self.drain()
        return self.derive(self._n, self._first, self._end, self._hbm_counters(), self._hbm_base)

    def derive(self, counts: dict[str, int], first: int | None, end: int, hbm: dict[str, float],
               base: dict[str, float]) -> dict[str, Any]:
        """``stats`` from raw counters (``counts``: this object's, or summed over slices), the first call cycle and
        the last ready cycle, and the HBM's counters now and at the start (``base``)."""
        n = dict(counts)
        span = end - first if first is not None else 0
        moved = n["bytes_read"] + n["bytes_written"]
        amat = n.pop("latency_sum") / n["requests"] if n["requests"] else 0.0
        l3_pj = n["array_bytes"] * 8 / 64 * self.cfg.l3_pj_per_64b
        hbm_pj = hbm["energy_pj"] - base["energy_pj"]
        mhz = self.cfg.clock.mhz
        n.update(
            hit_rate=n["hits"] / n["accesses"] if n["accesses"] else 0.0,
            read_hit_rate=n["read_hits"] / n["read_accesses"] if n["read_accesses"] else 0.0,
            amat_cycles=amat, amat_ns=amat * 1000 / mhz, span_cycles=span,
            bandwidth_gbytes_per_s=(moved / span if span else 0.0) * mhz / 1000,
            hbm_requests=hbm["requests"] - base["requests"],
            hbm_bytes_read=hbm["bytes_read"] - base["bytes_read"],
            hbm_bytes_written=hbm["bytes_written"] - base["bytes_written"],
            l3_energy_pj=l3_pj, hbm_energy_pj=hbm_pj, energy_pj=l3_pj + hbm_pj,
        )
        return n


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


def run_closed_loop(mem: L3Ports | HbmPorts, trace: list[tuple[int, int, bool, bool, bool]], outstanding: int) -> int:
    """Issue a trace as the DMA does, on ``mem``'s port 0 with no stalls: at most one burst per cycle and
    ``outstanding`` in flight per direction (a new one goes out in the cycle after the earliest completes);
    a write's W beats follow its AW one per cycle and the write is complete with its last beat (the next
    burst goes out after it); a burst marked ``barrier`` waits for every earlier one. An L3 gets its first
    burst when its tag RAMs are clear (cycle ``ready_cycle``), and its AMAT counts from there. Returns the
    last completion (R handshake of a read's last beat, B handshake of a write)."""
    B = mem.beat_bytes
    l3 = isinstance(mem, L3Ports)
    cycle = mem.ready_cycle if l3 else 0                                 # the cache clears its tags first
    last = cycle
    inflight: dict[bool, list[int]] = {False: [], True: []}
    for address, nbytes, write, stream, barrier in trace:
        if barrier:
            cycle = max(cycle, last + 1)
            inflight = {False: [], True: []}
        heap = inflight[write]
        if len(heap) == outstanding:
            cycle = max(cycle, heapq.heappop(heap) + 1)
        beats = -(-(address % B + nbytes) // B)
        if write:
            cycle += beats                              # AW, then its W beats
            done = mem.serve_write(cycle, 0, address, beats)
        else:
            done = (mem.serve_read(cycle, 0, address, beats, stream) if l3 else
                    mem.serve_read(cycle, 0, address, beats))[-1]
        heapq.heappush(heap, done)
        last = max(last, done)
        cycle += 1
    return last


def _amat(mem: L3Ports | HbmPorts, trace, outstanding: int) -> float:
    """Mean of (completion - issue cycle) over the bursts of ``trace`` run on ``mem``."""
    total = [0, 0]
    serve_read, serve_write = mem.serve_read, mem.serve_write

    def read(cycle, port, address, beats, *hint):
        done = serve_read(cycle, port, address, beats, *hint)
        total[0] += done[-1] - cycle
        total[1] += 1
        return done

    def write(cycle, port, address, beats):
        done = serve_write(cycle, port, address, beats)
        total[0] += done - cycle
        total[1] += 1
        return done

    mem.serve_read, mem.serve_write = read, write
    try:
        run_closed_loop(mem, trace, outstanding)
    finally:
        del mem.serve_read, mem.serve_write
    return total[0] / total[1] if total[1] else 0.0


def amat_bench(cfg: HwConfig) -> dict[str, dict[str, float]]:
    """Per trace of ``bench_traces``, the trace run twice from a cold start by ``run_closed_loop`` with
    ``memory.outstanding`` bursts in flight per direction: ``*_l3`` through ``L3Ports`` as configured
    (``l3.enabled`` forced on), ``*_hbm`` straight to ``HbmPorts``. Keys: AMAT per burst (issue to last R
    beat / B, queueing included: ``amat_*_cycles``, ``amat_*_ns``), ``amat_change_pct = 100 x (amat_l3 /
    amat_hbm - 1)`` (negative: the cache saves latency), ``amat_reduction = 1 - amat_l3 / amat_hbm``,
    ``hit_rate`` / ``read_hit_rate``, the cache's stalls, ``bytes``, ``requests``, ``cycles_*`` (last
    completion) and ``wall_s``."""
    with_l3 = changed(cfg, {"l3": {"enabled": True}})
    out = {}
    for name, trace in bench_traces(cfg).items():
        wall = time.perf_counter()
        cache, bare = L3Ports(with_l3), HbmPorts(cfg)
        amat_l3 = _amat(cache, trace, cfg.memory.outstanding)
        amat_hbm = _amat(bare, trace, cfg.memory.outstanding)
        s = cache.stats
        out[name] = {
            "bytes": s["bytes_read"] + s["bytes_written"], "requests": s["requests"],
            "amat_l3_cycles": amat_l3, "amat_hbm_cycles": amat_hbm,
            "amat_l3_ns": amat_l3 * 1000 / cfg.clock.mhz, "amat_hbm_ns": amat_hbm * 1000 / cfg.clock.mhz,
            "amat_change_pct": 100 * (amat_l3 / amat_hbm - 1), "amat_reduction": 1 - amat_l3 / amat_hbm,
            "hit_rate": s["hit_rate"], "read_hit_rate": s["read_hit_rate"],
            "cycles_l3": s["span_cycles"], "cycles_hbm": bare.stats["ports"][0]["end_cycle"],
            "mshr_stall_cycles": s["mshr_stall_cycles"], "queue_stall_cycles": s["queue_stall_cycles"],
            "wall_s": time.perf_counter() - wall,
        }
    return out


__all__ = ["BENCH_TRACES", "LFSR_POLY", "LFSR_SEED", "MIN_HIT_CYCLES", "L3Ports", "amat_bench", "bench_traces",
           "controller_cycles", "lfsr_step", "run_closed_loop"]
