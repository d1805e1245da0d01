"""cocotb monitor for one AXI4 or AXI4-Lite port: checks the AXI rules of DESIGN.md section 5.

``AxiMonitor(dut, "m_axi_hbm0", dut.clk, dut.rst)`` finds the port's signals by name
(``<prefix>_<channel><signal>``, the names ``hwgen.rtl.memory.axi.VivadoTop`` emits and ``cocotbext.axi`` expects)
and checks, on every rising clock edge:

- every channel: once ``valid`` is high it stays high, with the same payload, until ``ready``;
- AW/AR (AXI4): an INCR burst is at most 256 beats and does not cross a 4 KiB boundary; a WRAP burst is
  2/4/8/16 beats at an aligned address; a FIXED burst is at most 16 beats; BURST=3 is reserved; SIZE
  fits the data bus;
- W: ``wlast`` on exactly the last beat of the burst its AW announced (W may lead AW, as AXI4 allows);
- R: RID belongs to an outstanding read, ``rlast`` on exactly its last beat (per ID, in order);
- B: BID belongs to a write whose AW and last W beat were both seen at an earlier edge.
AXI4-Lite ports (no ``arlen``) get the handshake rules and "a response needs an outstanding request".

A broken rule raises ``AxiProtocolError`` from the monitor's task, which fails the running cocotb test;
with ``strict=False`` it is only appended to ``violations`` (for tests of the monitor itself). Accepted
bursts are recorded in ``reads``/``writes`` as ``Burst`` tuples for scoreboards.

Signals are sampled in the ``RisingEdge(clk)`` callback, i.e. the values the design registers at that
edge (checked with Verilator 5.048 + cocotb 2.1: registered outputs update after the callback).

Cost: the monitor does not wake every cycle of a run. While every ``valid`` of the port is low it sleeps
on ``First(RisingEdge(valid) ...)``; from the first edge with a ``valid`` high it samples every edge
until all are low again (a ``ReadOnly`` re-check before sleeping catches a ``valid`` set in the same
time step). So a busy port costs one Python wake-up per cycle: fine for smoke tests, too slow for long
runs of a design whose ports are always busy; those should check in HDL (assertions) instead.
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import NamedTuple

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge

from hwgen.spec.axi import BOUNDARY_BYTES, MAX_INCR_BEATS
from hwgen.spec.axi import BURST_FIXED as FIXED
from hwgen.spec.axi import BURST_INCR as INCR
from hwgen.spec.axi import BURST_WRAP as WRAP

# Optional payload signals a port may have, per channel (valid/ready are required).
FIELDS = {
    "aw": ("id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "region", "user"),
    "w": ("data", "strb", "last", "user"),
    "b": ("id", "resp", "user"),
    "ar": ("id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "region", "user"),
    "r": ("id", "data", "resp", "last", "user"),
}
# Responses before requests: an R/B beat at the same edge as its request's handshake is an error.
ORDER = ("b", "r", "aw", "w", "ar")


class AxiProtocolError(AssertionError):
    """An AXI rule was broken; the message names the port, the time, the channel and the rule."""


class Violation(NamedTuple):
    time_ns: float
    channel: str
    rule: str       # short key, e.g. "4k", "stable", "rlast", "rid"
    message: str


class Burst(NamedTuple):
    time_ns: float
    id: int
    addr: int
    beats: int
    size: int
    burst: int


class _Channel:
    def __init__(self, dut, prefix: str, name: str):
        self.name = name
        self.valid = getattr(dut, f"{prefix}_{name}valid")
        self.ready = getattr(dut, f"{prefix}_{name}ready")
        self.fields = {}
        for field in FIELDS[name]:
            try:
                self.fields[field] = getattr(dut, f"{prefix}_{name}{field}")
            except AttributeError:
                continue
        self.waiting: dict | None = None   # payload of a transfer presented but not yet accepted

    def sample(self) -> dict:
        return {f: int(h.value) for f, h in self.fields.items()}


class AxiMonitor:
    def __init__(self, dut, prefix: str, clock, reset=None, *, reset_active_level: bool = True,
                 strict: bool = True):
        self.prefix = prefix
        self.clock, self.reset, self._reset_level = clock, reset, bool(reset_active_level)
        self.strict = strict
        self.channels = {ch: _Channel(dut, prefix, ch) for ch in ORDER}
        self.lite = "len" not in self.channels["ar"].fields
        rdata = self.channels["r"].fields["data"]
        self.bus_bytes = len(rdata) // 8
        self.violations: list[Violation] = []
        self.reads: list[Burst] = []    # accepted AR bursts, in order
        self.writes: list[Burst] = []   # accepted AW bursts, in order
        self.edges = 0                  # clock edges sampled (how often Python woke)
        self._clear()
        self._task = cocotb.start_soon(self._run())

    # -- state -------------------------------------------------------------------------------------
    def _clear(self) -> None:
        for ch in self.channels.values():
            ch.waiting = None
        self._reads = defaultdict(deque)   # id -> beats of each outstanding read, oldest first
        self._rbeat = defaultdict(int)     # id -> beats received of its oldest read
        self._aw_for_w = deque()           # (id, beats) of AWs whose W data has not completed
        self._w_early = deque()            # beat counts of W bursts that completed before their AW
        self._wbeat = 0                    # beats of the W burst in progress
        self._b_due = defaultdict(int)     # id -> writes complete (AW and last W seen), awaiting B
        self._aw_ids = defaultdict(int)    # id -> writes accepted on AW and not yet answered
        self._new_b_due: list[int] = []    # completed at this edge: B may answer from the next edge on

    def stop(self) -> None:
        self._task.cancel()

    def assert_clean(self) -> None:
        """Raise if any rule was broken (for ``strict=False`` monitors) or a burst is still open."""
        if self.violations:
            raise AxiProtocolError(f"{self.prefix}: {len(self.violations)} AXI violation(s), first: "
                                   f"{self.violations[0].message}")

    def _violation(self, channel: str, rule: str, text: str) -> None:
        now = get_sim_time("ns")
        message = f"{self.prefix} {channel.upper()} at {now} ns: {text}"
        self.violations.append(Violation(now, channel, rule, message))
        if self.strict:
            raise AxiProtocolError(message)

    # -- main loop -----------------------------------------------------------------------------------
    def _in_reset(self) -> bool:
        if self.reset is None:
            return False
        try:
            return bool(int(self.reset.value)) == self._reset_level
        except ValueError:   # X/Z during start-up
            return True

    def _any_valid(self) -> bool:
        return any(ch.valid.value == 1 for ch in self.channels.values())

    async def _run(self) -> None:
        edge = RisingEdge(self.clock)
        wake = [RisingEdge(ch.valid) for ch in self.channels.values()]
        if self.reset is not None:
            wake.append(self.reset.value_change)
        while True:
            await edge
            self.edges += 1
            if self._in_reset():
                self._clear()
            else:
                self._check_edge()
            if not self._any_valid():
                await ReadOnly()
                if not self._any_valid():
                    await First(*wake)

    def _check_edge(self) -> None:
        for name in ORDER:
            ch = self.channels[name]
            valid, ready = ch.valid.value == 1, ch.ready.value == 1
            payload = ch.sample() if valid or ch.waiting is not None else None
            if ch.waiting is not None:
                if not valid:
                    ch.waiting = None
                    self._violation(name, "stable", f"{name}valid dropped before {name}ready")
                    continue
                changed = [f for f in payload if payload[f] != ch.waiting[f]]
                if changed:
                    self._violation(name, "stable", f"{', '.join(name + f for f in changed)} changed while "
                                    f"{name}valid and not {name}ready")
            elif valid and name in ("aw", "ar") and not self.lite:
                self._check_burst(name, payload)
            ch.waiting = payload if valid and not ready else None
            if valid and ready:
                getattr(self, f"_accept_{name}")(payload)
        for bid in self._new_b_due:
            self._b_due[bid] += 1
        self._new_b_due.clear()

    # -- request rules -------------------------------------------------------------------------------
    def _check_burst(self, ch: str, p: dict) -> None:
        beats, size, kind, addr = p.get("len", 0) + 1, p.get("size", 0), p.get("burst", INCR), p["addr"]
        nbytes = 1 << size
        what = f"{ch}addr=0x{addr:x} {ch}len={beats - 1} {ch}size={size} {ch}burst={kind}"
        if nbytes > self.bus_bytes:
            self._violation(ch, "size", f"{what}: {nbytes} bytes per beat on a {self.bus_bytes}-byte bus")
        if kind == INCR:
            if beats > MAX_INCR_BEATS:
                self._violation(ch, "len", f"{what}: INCR burst of {beats} beats (max {MAX_INCR_BEATS})")
            first = addr & ~(nbytes - 1)
            last = first + beats * nbytes - 1
            if first // BOUNDARY_BYTES != last // BOUNDARY_BYTES:
                self._violation(ch, "4k", f"{what}: burst 0x{first:x}..0x{last:x} crosses a 4 KiB boundary")
        elif kind == WRAP:
            if beats not in (2, 4, 8, 16) or addr % nbytes:
                self._violation(ch, "wrap", f"{what}: WRAP needs 2/4/8/16 beats at an aligned address")
        elif kind == FIXED:
            if beats > 16:
                self._violation(ch, "len", f"{what}: FIXED burst of {beats} beats (max 16)")
        else:
            self._violation(ch, "burst", f"{what}: reserved burst type")

    def _burst(self, p: dict) -> Burst:
        return Burst(get_sim_time("ns"), p.get("id", 0), p["addr"], p.get("len", 0) + 1,
                     p.get("size", 0), p.get("burst", INCR))

    def _accept_ar(self, p: dict) -> None:
        burst = self._burst(p)
        self.reads.append(burst)
        self._reads[burst.id].append(burst.beats)

    def _accept_aw(self, p: dict) -> None:
        burst = self._burst(p)
        self.writes.append(burst)
        self._aw_ids[burst.id] += 1
        if self._w_early:
            self._w_done(burst.id, burst.beats, self._w_early.popleft())
        else:
            self._aw_for_w.append((burst.id, burst.beats))

    def _accept_w(self, p: dict) -> None:
        self._wbeat += 1
        last = p.get("last", 1) == 1 if not self.lite else True
        if self._aw_for_w:
            wid, beats = self._aw_for_w[0]
            if last or self._wbeat == beats:
                self._aw_for_w.popleft()
                self._w_done(wid, beats, self._wbeat, last)
                self._wbeat = 0
        elif last:
            self._w_early.append(self._wbeat)
            self._wbeat = 0

    def _w_done(self, wid: int, beats: int, seen: int, last: bool = True) -> None:
        if not last:
            self._violation("w", "wlast", f"wlast missing on beat {seen} of a {beats}-beat write (id {wid})")
        elif seen != beats:
            self._violation("w", "wlast", f"wlast on beat {seen} of a {beats}-beat write (id {wid})")
        self._new_b_due.append(wid)

    # -- response rules ------------------------------------------------------------------------------
    def _accept_r(self, p: dict) -> None:
        rid = p.get("id", 0)
        if not self._reads[rid]:
            self._violation("r", "rid", f"rid={rid} has no outstanding read")
            return
        self._rbeat[rid] += 1
        beats, seen = self._reads[rid][0], self._rbeat[rid]
        last = p.get("last", 1) == 1 if not self.lite else True
        if last != (seen == beats):
            self._violation("r", "rlast", f"rlast={int(last)} on beat {seen} of a {beats}-beat read (id {rid})")
        if last or seen == beats:
            self._reads[rid].popleft()
            self._rbeat[rid] = 0

    def _accept_b(self, p: dict) -> None:
        bid = p.get("id", 0)
        if self._b_due[bid]:
            self._b_due[bid] -= 1
            self._aw_ids[bid] -= 1
        elif self._aw_ids[bid]:
            self._violation("b", "bid", f"bid={bid} before the last W beat of its write")
        else:
            self._violation("b", "bid", f"bid={bid} has no outstanding write")
