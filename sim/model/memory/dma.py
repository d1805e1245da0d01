"""The engine's DMA units (LOAD: HBM -> L1, STORE: output buffer or L1 -> HBM) and their TLBs, cycle for cycle as
the RTL.

``DmaUnits`` mirrors the registers of ``hwgen/rtl/memory/dma_load.py``, ``hwgen/rtl/memory/dma_store.py`` and the
two TLBs of ``hwgen/rtl/engine/engine.py`` (``hwgen/rtl/memory/tlb.py``: one per unit) one clock at a time, and
asks ``HbmPorts`` (sim/model/memory/axi_port.py, shared with the cocotb responder) when each R beat and B response
arrives, so with no stalls its cycles equal the RTL's. Cycles in which nothing can change but the arrival of a
response (both units wait for R beats or B responses) are skipped, not stepped.

Translation: every burst's virtual address is looked up in its unit's TLB before its AR / AW, requested from
two cycles after the previous request (or the start: ``planned_at``, the RTL's registered burst length). The lookup
itself is the model ``sim.model.memory.tlb.Tlb`` (hits, walks, LRU, faults), made at the cycle the RTL TLB
accepts the request; ``_TlbPort`` adds the RTL's handshakes around it, with the latencies read from
``hwgen.rtl.memory.tlb.Tlb`` (``hit_latency``, ``walk_issue_latency``, ``fill_latency``). A walk is a one-beat read
(ARID ``WALK_ID``) issued from the LOAD unit's AR register -- a walk before a data burst, the LOAD TLB's
before the STORE TLB's, one walk on the bus at a time -- and its R beat comes back in AR order with the data
beats, over the same ``HbmPorts`` calls as the RTL's (so the call order within a cycle is the RTL's too).
A translation with a fault stops its unit (``fault``) and, from the next cycle, the engine (``halt_at``).
``table=None`` (DMA-only studies, ``sim/bench.py``) translates every address to itself with TLB hits.

The data moves when a task starts (the L1 lines or the HBM bytes are copied at once): the engine's issue
rules and the compiler's ``wait`` bits keep a running task's data away from every other running task
(``sim/model/engine.py`` checks that), so the copy time cannot change a result.

Ordering of memory calls inside one cycle: by port, and for a port the AR before the completed write
(``HbmPorts``' rule); both units collect their calls for the cycle and they are made in that order.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from hwgen.spec.axi import beats_per_line, next_burst
from hwgen.spec.config import HwConfig
from hwgen.spec.page_table import FAULT_OF_REASON, Fault, PageTable
from hwgen.spec.timing import TlbTiming
from sim.model.memory.axi_port import HbmPorts
from sim.model.memory.tlb import Tlb

FAR = 1 << 62
NONE = Fault.NONE.value
TLB_STATS = ("hits", "misses", "walks", "evictions", "faults")


class _TlbPort:
    """One RTL TLB as its DMA unit and the walker see it: ``req`` / ``resp`` and ``walk_req`` / ``walk_resp``
    handshakes around the model ``Tlb``. Cycle semantics as in ``hwgen/rtl/memory/tlb.py``: one request at a time; a
    request is taken when nothing is in flight or the response is taken in the same cycle."""

    def __init__(self, cfg: HwConfig, table: PageTable | None):
        self.model = Tlb.of(cfg, table) if table is not None else None
        self.hit_latency, self.walk_issue_latency, self.fill_latency = (TlbTiming.hit_latency,
            TlbTiming.walk_issue_latency, TlbTiming.fill_latency)
        self.resp: tuple[int, int] | None = None   # (paddr, fault code) of the request in flight
        self.resp_at = FAR                          # first cycle resp.valid is high
        self.walk_addr: int | None = None           # the entry address while walk_req.valid or walking
        self.walk_at = FAR                          # first cycle walk_req.valid is high
        self.walking = False
        self.after_walk: tuple[int, int] | None = None
        self.accepted = 0                           # cycle the request in flight was accepted
        self.hit_only = 0                           # table None: lookups (all hits)
        self.walk_cycles = 0                        # cycles misses took beyond a hit (sum over walks)

    def resp_valid(self, c: int) -> bool:
        return self.resp is not None and self.resp_at <= c

    def walk_valid(self, c: int) -> bool:
        return self.walk_addr is not None and not self.walking and self.walk_at <= c

    def ready(self, resp_taken: bool) -> bool:
        return self.walk_addr is None and (self.resp is None or resp_taken)

    def take(self) -> tuple[int, int]:
        resp, self.resp, self.resp_at = self.resp, None, FAR
        return resp

    def accept(self, c: int, vaddr: int, write: bool) -> None:
        self.accepted = c
        if self.model is None:
            self.hit_only += 1
            self.resp, self.resp_at = (vaddr, NONE), c + self.hit_latency
            return
        paddr, kind, reason = self.model.access(vaddr, write)
        code = NONE if reason is None else FAULT_OF_REASON[reason].value
        if kind == "walk":
            self.walk_addr = self.model.table.entry_address(vaddr >> self.model.page_shift)
            self.walk_at = c + self.walk_issue_latency
            self.after_walk = (paddr, code)
        else:
            self.resp, self.resp_at = (paddr, code), c + self.hit_latency

    def walk_granted(self) -> None:
        self.walking = True

    def walk_answer(self, c: int) -> None:
        assert self.walking, "a walk beat for a TLB that is not walking"
        self.walking, self.walk_addr, self.walk_at = False, None, FAR
        self.resp, self.resp_at, self.after_walk = self.after_walk, c + self.fill_latency, None
        self.walk_cycles += self.resp_at - (self.accepted + self.hit_latency)

    @property
    def stats(self) -> dict[str, int]:
        if self.model is None:
            return {"hits": self.hit_only, "misses": 0, "walks": 0, "evictions": 0, "faults": 0,
                    "walk_cycles": 0}
        s = self.model.stats
        return {**{k: s[k] for k in TLB_STATS}, "walk_cycles": self.walk_cycles}


class _Load:
    def __init__(self):
        self.busy = False
        self.free = 0                  # the first cycle of the current idle stretch
        self.fault = NONE
        self.fault_cycle: int | None = None
        self.fault_vaddr = 0
        self.ar = None                 # (address, beats, walk owner or None) of the registered AR
        self.plan_addr = self.to_plan = self.xl_beats = self.to_receive = self.in_flight = 0
        self.planned_at = 0            # the next burst's length is registered (BurstPlanner) from this cycle
        self.walk_pending = False
        self.stream = False            # the running LOAD's read-once hint
        self.beats = deque()           # (ready cycle, port, last beat of its burst, walk owner) in AR order


class _Store:
    def __init__(self):
        self.busy = False
        self.free = 0
        self.fault = NONE
        self.fault_cycle: int | None = None
        self.fault_vaddr = 0
        self.aw = None
        self.plan_addr = self.plan_left = self.xl_beats = 0
        self.planned_at = 0
        self.aw_left = self.unacked = self.aw_sent = 0
        self.w_addr = self.w_left = self.w_pos = self.w_bursts = 0
        self.rd_left = 0
        self.parts = self.gather = 1   # the running task's beats per line and lines per beat
        self.have = False              # the read port's data holds a line not yet used up
        self.pending = False           # the RAM's output holds the next line (a registered read)
        self.part = self.slot = 0
        self.full = False
        self.b = deque()               # (ready cycle, port) of written bursts, in order
        self.w_phys = deque()          # physical address of each burst whose AW was registered, for its write


class DmaUnits:
    def __init__(self, cfg: HwConfig, ports: HbmPorts, table: PageTable | None = None):
        self.cfg = cfg
        self.ports = ports
        self.now = 0                    # the next cycle to simulate
        self.load, self.store = _Load(), _Store()
        self.tlbs = (_TlbPort(cfg, table), _TlbPort(cfg, table))   # LOAD's, STORE's (walker ports 0, 1)
        self.parts, self.gather = beats_per_line(cfg)
        self.outstanding = cfg.memory.outstanding
        self.r_last = self.b_last = -1  # handshake cycle of the previous R beat / B response (merged)
        self.counts = {"load_beats": 0, "store_beats": 0, "load_bursts": 0, "store_bursts": 0, "walk_reads": 0}

    # -- tasks ----------------------------------------------------------------------------------------
    def start_load(self, t: int, hbm_addr: int, lines: int, stream: bool = False) -> None:
        """A LOAD taken in cycle ``t`` (``hbm_addr`` virtual; ``stream``: its data is read once, a hint the
        memory side may use, sent with each data AR as the engine's ``hbm_ar_stream``)."""
        self.run_until(t + 1)
        u = self.load
        assert not u.busy
        u.stream = bool(stream)
        u.busy = lines != 0
        u.free = t + 1
        u.fault = NONE
        u.plan_addr = hbm_addr - hbm_addr % self.cfg.beat_bytes
        u.planned_at = t + 2
        u.to_plan = u.to_receive = lines

    def start_store(self, t: int, hbm_addr: int, lines: int, from_l1: bool = False) -> None:
        """A STORE taken in cycle ``t`` (``hbm_addr`` virtual) of output-buffer lines, or with ``from_l1`` (the
        descriptor's ``source``) of L1 lines: one beat each, timed as output lines with parts = gather = 1."""
        self.run_until(t + 1)
        s = self.store
        assert not s.busy
        s.parts, s.gather = (1, 1) if from_l1 else (self.parts, self.gather)
        beats = lines // s.gather * s.parts
        s.busy = lines != 0
        s.free = t + 1
        s.fault = NONE
        s.plan_addr = s.w_addr = hbm_addr - hbm_addr % self.cfg.beat_bytes
        s.planned_at = t + 2
        s.plan_left = s.aw_left = s.w_left = beats
        s.rd_left = lines
        s.pending = False
        s.aw_sent = s.w_bursts = s.w_pos = 0

    def free_at(self, unit: str) -> int:
        """The first cycle the unit ("load" / "store") is idle, running both units until then."""
        u = self.load if unit == "load" else self.store
        while u.busy:
            self._step()
        return u.free

    def free_at_if_done(self, unit: str, cycle: int) -> bool:
        """Whether the unit is idle in ``cycle`` (runs both units up to it; ``cycle`` >= every start so far)."""
        self.run_until(cycle)
        u = self.load if unit == "load" else self.store
        return not u.busy

    def run_until(self, cycle: int) -> None:
        while self.now < cycle:
            if not (self.load.busy or self.store.busy):
                self.now = cycle
                return
            self._step(limit=cycle)

    @property
    def halt_at(self) -> int | None:
        """The first cycle in which a unit's ``fault`` register is set (the engine takes no task from then on),
        among the cycles simulated so far; None if no fault."""
        cycles = [u.fault_cycle for u in (self.load, self.store) if u.fault_cycle is not None]
        return min(cycles) + 1 if cycles else None

    @property
    def faults(self) -> dict[str, str]:
        """Each unit's fault, by name (``hwgen.spec.page_table.Fault``), as the engine's ``page_fault`` output reads."""
        return {"load": Fault(self.load.fault).name, "store": Fault(self.store.fault).name}

    @property
    def stats(self) -> dict[str, Any]:
        per = {"load": self.tlbs[0].stats, "store": self.tlbs[1].stats}
        total = {k: per["load"][k] + per["store"][k] for k in (*TLB_STATS, "walk_cycles")}
        lookups = total["hits"] + total["misses"]
        return {**self.counts, "tlb_hits": total["hits"], "tlb_misses": total["misses"],
                "tlb_walks": total["walks"], "tlb_walk_cycles": total["walk_cycles"],
                "tlb_hit_rate": total["hits"] / lookups if lookups else 0.0, "tlb": per,
                "page_fault": self.faults}

    # -- one cycle --------------------------------------------------------------------------------------
    def _step(self, limit: int = FAR) -> None:
        c = self._skip(limit)
        calls = []                     # (port, kind, callback) made in HbmPorts' order at the end
        self._cycle(c, calls)
        for _port, _kind, call in sorted(calls, key=lambda x: (x[0], x[1])):
            call()
        self.now = c + 1

    def _skip(self, limit: int) -> int:
        """Jump over cycles in which nothing happens but waiting for an R beat or a B response."""
        c, u, s = self.now, self.load, self.store
        lt, st = self.tlbs
        nxt = FAR
        if u.ar is not None or s.aw is not None:
            return c
        for t in self.tlbs:
            if t.resp is not None:
                nxt = min(nxt, t.resp_at)
            if t.walk_addr is not None and not t.walking:
                nxt = min(nxt, t.walk_at if not u.walk_pending else FAR)
        if lt.resp_valid(c) and (lt.resp[1] != NONE or u.in_flight < self.outstanding):
            return c
        if st.resp_valid(c) and (st.resp[1] != NONE or s.unacked < self.outstanding):
            return c
        if u.busy and (u.fault == NONE and u.to_plan and lt.ready(False) or u.fault != NONE and not u.in_flight):
            return c
        if s.busy and (s.fault == NONE and s.plan_left and st.ready(False) or s.fault != NONE and not s.unacked
                       or self._w_ready()):
            return c
        if u.beats:
            nxt = min(nxt, max(u.beats[0][0], self.r_last + 1))
        if s.busy and s.b:
            nxt = min(nxt, max(s.b[0][0], self.b_last + 1))
        return max(c, min(nxt, limit - 1)) if nxt < FAR else c

    def _w_ready(self) -> bool:
        s = self.store
        return s.w_left != 0 and (s.have or s.pending or s.rd_left != 0 or s.full)

    def _cycle(self, c: int, calls: list) -> None:
        u, s = self.load, self.store
        lt, st = self.tlbs
        # ---- decisions from the registers at the start of the cycle (the RTL's combinational logic) ----
        l_faulting = lt.resp_valid(c) and lt.resp[1] != NONE
        s_faulting = st.resp_valid(c) and st.resp[1] != NONE
        walk_go = None
        if not u.walk_pending:
            walk_go = next((i for i, t in enumerate(self.tlbs) if t.walk_valid(c)), None)
        l_issue = walk_go is None and lt.resp_valid(c) and not l_faulting and u.in_flight < self.outstanding
        l_req = u.busy and c >= u.planned_at and u.fault == NONE and u.to_plan != 0 and not l_faulting \
            and lt.ready(l_issue or l_faulting)
        l_drop = u.busy and u.fault != NONE and u.in_flight == 0
        s_issue = st.resp_valid(c) and not s_faulting and s.unacked < self.outstanding
        s_req = s.busy and c >= s.planned_at and s.fault == NONE and s.plan_left != 0 and not s_faulting \
            and st.ready(s_issue or s_faulting)
        s_drop = s.busy and s.fault != NONE and s.unacked == 0

        # ---- read channel: the AR registered last cycle is taken now (ARREADY high) ----
        if u.ar is not None:
            addr, beats, owner = u.ar
            port = self.ports.port_of(addr)

            def read(addr=addr, beats=beats, port=port, owner=owner, stream=u.stream and owner is None):
                ready = self.ports.read(c, port, addr, beats, stream)
                u.beats.extend((r, port, k == beats - 1, owner) for k, r in enumerate(ready))
            calls.append((port, 0, read))
            self.counts["load_bursts" if owner is None else "walk_reads"] += 1
            u.ar = None
        taken_last = False
        if u.beats and max(u.beats[0][0], self.r_last + 1) == c:
            _, port, last, owner = u.beats.popleft()
            self.ports.r[port].accept(c)
            self.r_last = c
            if owner is not None:
                self.tlbs[owner].walk_answer(c)
                u.walk_pending = False
            elif u.busy:
                self.counts["load_beats"] += 1
                taken_last = last
                u.to_receive -= 1
                if u.to_receive == 0:
                    u.busy = False
                    u.free = c + 1
        if l_faulting:
            u.fault, u.fault_cycle = lt.take()[1], c
        elif walk_go is not None:
            t = self.tlbs[walk_go]
            u.ar = (t.walk_addr - t.walk_addr % self.cfg.beat_bytes, 1, walk_go)
            t.walk_granted()
            u.walk_pending = True
        elif l_issue:
            u.ar = (lt.take()[0], u.xl_beats, None)
        if l_drop:
            u.busy = False
            u.free = c + 1
        if l_req:
            beats = next_burst(self.cfg, u.plan_addr, u.to_plan)
            lt.accept(c, u.plan_addr, False)
            u.planned_at = c + 2
            u.fault_vaddr = u.plan_addr
            u.plan_addr += beats * self.cfg.beat_bytes
            u.to_plan -= beats
            u.xl_beats = beats
        u.in_flight += int(l_issue) - int(taken_last)

        self._store_cycle(c, calls, s_faulting, s_issue, s_req, s_drop)

    def _store_cycle(self, c: int, calls: list, faulting: bool, issue: bool, req: bool, drop: bool) -> None:
        s = self.store
        st = self.tlbs[1]
        cfg = self.cfg
        aw_hs = s.aw is not None
        # W: a beat of the current burst once its AW was accepted in an earlier cycle
        beat_valid = s.have if s.gather == 1 else s.full
        w_take = s.busy and beat_valid and s.aw_sent > s.w_bursts
        w_last = False
        if w_take:
            w_len = next_burst(cfg, s.w_addr, s.w_left)        # cut on the virtual address: the same cut
            w_last = s.w_pos == w_len - 1
            self.counts["store_beats"] += 1
            if w_last:
                paddr = s.w_phys.popleft()
                port = self.ports.port_of(paddr)

                def write(addr=paddr, beats=w_len, port=port):
                    s.b.append((self.ports.write(c, port, addr, beats), port))
                calls.append((port, 1, write))
        # B
        b_take = False
        if s.busy and s.b and max(s.b[0][0], self.b_last + 1) == c:
            _, port = s.b.popleft()
            self.ports.b[port].accept(c)
            self.b_last = c
            b_take = True
        # the line pipeline (output buffer or L1)
        if s.gather == 1:
            advance = not s.have or (w_take and s.part == s.parts - 1)
            if advance:
                s.part = 0
            elif w_take:
                s.part += 1
        else:
            take_line = s.have and (not s.full or w_take)
            advance = not s.have or take_line
            if take_line:
                s.full = s.slot == s.gather - 1
                s.slot = (s.slot + 1) % s.gather
            elif w_take:
                s.full = False
        # the next line waits in the RAM's output; a read whenever it moves on to the data (or there is none)
        move = s.pending and advance
        fetch = (not s.pending or move) and s.rd_left != 0
        if advance:
            s.have = s.pending
        if fetch:
            s.rd_left -= 1
            s.pending = True
        elif move:
            s.pending = False
        # registers
        if w_take:
            if w_last:
                s.w_pos = 0
                s.w_bursts += 1
                s.w_addr += w_len * cfg.beat_bytes
                s.w_left -= w_len
            else:
                s.w_pos += 1
        if b_take and s.unacked == 1 and s.aw_left == 0:
            s.busy = False
            s.free = c + 1
        if drop:
            s.busy = False
            s.free = c + 1
        if faulting:
            s.fault, s.fault_cycle = st.take()[1], c
        if issue:
            paddr = st.take()[0]
            s.aw = (paddr, s.xl_beats)
            s.w_phys.append(paddr)
            s.aw_left -= s.xl_beats
            self.counts["store_bursts"] += 1
        elif aw_hs:
            s.aw = None
        if req:
            beats = next_burst(cfg, s.plan_addr, s.plan_left)
            st.accept(c, s.plan_addr, True)
            s.planned_at = c + 2
            s.fault_vaddr = s.plan_addr
            s.plan_addr += beats * cfg.beat_bytes
            s.plan_left -= beats
            s.xl_beats = beats
        s.unacked += int(issue) - int(b_take)
        s.aw_sent += int(aw_hs)


def out_lines_to_bytes(cfg: HwConfig, lanes: np.ndarray) -> bytes:
    """Output-buffer lines (int64 lanes, shape (lines, L)) as the bytes a STORE writes: lane l of a line is
    bits [l*acc_bits, (l+1)*acc_bits) of the line, two's complement, lines back to back, little-endian."""
    bits, line_bytes = cfg.engine.acc_bits, cfg.out_line_bits // 8
    mask = (1 << bits) - 1
    out = bytearray()
    for row in lanes.tolist():
        word = 0
        for lane, v in enumerate(row):
            word |= (v & mask) << (lane * bits)
        out += word.to_bytes(line_bytes, "little")
    return bytes(out)
