"""The engine's DMA units (LOAD: HBM -> L1, STORE: output buffer -> HBM), cycle for cycle as the RTL.

``DmaUnits`` mirrors the registers of ``hwgen/dma_load.py`` and ``hwgen/dma_store.py`` one clock at a
time and asks ``HbmPorts`` (sim/memory/axi_port.py, shared with the cocotb responder) when each R beat
and B response arrives, so with no stalls its cycles equal the RTL's. Cycles in which neither unit can
change anything (both wait for a response) are skipped, not stepped.

The data moves when a task starts (the L1 lines or the HBM bytes are copied at once): the engine's issue
rules and the compiler's ``wait`` bits keep a running task's data away from every other running task
(``sim/engine.py`` checks that), so the copy time cannot change a result.

Ordering of memory calls inside one cycle: by port, and for a port the AR before the completed write
(``HbmPorts``' rule); both units collect their calls for the cycle and they are made in that order.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from hwgen.config import HwConfig
from hwgen.dma_load import next_burst
from hwgen.dma_store import beats_per_line
from sim.memory.axi_port import HbmPorts

FAR = 1 << 62


class _Load:
    def __init__(self):
        self.busy = False
        self.free = 0                  # the first cycle of the current idle stretch
        self.ar = None                 # (address, beats) of the registered AR, or None
        self.next_addr = self.to_issue = self.to_receive = self.in_flight = 0
        self.beats = deque()           # (ready cycle, port, last beat of its burst) in AR order


class _Store:
    def __init__(self):
        self.busy = False
        self.free = 0
        self.aw = None
        self.aw_addr = self.aw_left = self.unacked = self.aw_sent = 0
        self.w_addr = self.w_left = self.w_pos = self.w_bursts = 0
        self.rd_left = 0
        self.have = False
        self.part = self.slot = 0
        self.full = False
        self.b = deque()               # (ready cycle, port) of written bursts, in order


class DmaUnits:
    def __init__(self, cfg: HwConfig, ports: HbmPorts):
        if cfg.memory.ports != 1:
            raise ValueError(f"memory.ports: {cfg.memory.ports} is not supported yet (allowed: 1, as the RTL)")
        self.cfg = cfg
        self.ports = ports
        self.now = 0                    # the next cycle to simulate
        self.load, self.store = _Load(), _Store()
        self.parts, self.gather = beats_per_line(cfg)
        self.outstanding = cfg.memory.outstanding
        self.r_last = self.b_last = -1  # handshake cycle of the previous R beat / B response (merged)
        self.stats = {"load_beats": 0, "store_beats": 0, "load_bursts": 0, "store_bursts": 0}

    # -- tasks ----------------------------------------------------------------------------------------
    def start_load(self, t: int, hbm_addr: int, lines: int) -> None:
        """A LOAD taken in cycle ``t``."""
        self.run_until(t + 1)
        u = self.load
        assert not u.busy
        u.busy = lines != 0
        u.free = t + 1
        u.next_addr = hbm_addr - hbm_addr % self.cfg.beat_bytes
        u.to_issue = u.to_receive = lines

    def start_store(self, t: int, hbm_addr: int, lines: int) -> None:
        self.run_until(t + 1)
        s = self.store
        assert not s.busy
        beats = lines // self.gather * self.parts
        s.busy = lines != 0
        s.free = t + 1
        s.aw_addr = s.w_addr = hbm_addr - hbm_addr % self.cfg.beat_bytes
        s.aw_left = s.w_left = beats
        s.rd_left = lines
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

    # -- one cycle --------------------------------------------------------------------------------------
    def _step(self, limit: int = FAR) -> None:
        c = self._skip(limit)
        calls = []                     # (port, kind, callback) made in HbmPorts' order at the end
        self._load_cycle(c, calls)
        self._store_cycle(c, calls)
        for _port, _kind, call in sorted(calls, key=lambda x: (x[0], x[1])):
            call()
        self.now = c + 1

    def _skip(self, limit: int) -> int:
        """Jump over cycles in which both units only wait for responses."""
        c, u, s = self.now, self.load, self.store
        if u.busy and (u.ar is not None or self._can_issue_ar()):
            return c
        if s.busy and (s.aw is not None or self._can_issue_aw() or self._w_ready()):
            return c
        nxt = FAR
        if u.busy and u.beats:
            nxt = min(nxt, max(u.beats[0][0], self.r_last + 1))
        if s.busy and s.b:
            nxt = min(nxt, max(s.b[0][0], self.b_last + 1))
        return max(c, min(nxt, limit - 1)) if nxt < FAR else c

    def _can_issue_ar(self) -> bool:
        u = self.load
        return u.to_issue != 0 and u.in_flight < self.outstanding

    def _can_issue_aw(self) -> bool:
        s = self.store
        return s.aw_left != 0 and s.unacked < self.outstanding

    def _w_ready(self) -> bool:
        s = self.store
        return s.w_left != 0 and (s.have or s.rd_left != 0 or s.full)

    def _load_cycle(self, c: int, calls: list) -> None:
        u = self.load
        if not u.busy:
            return
        ar_hs = u.ar is not None
        if ar_hs:
            addr, beats = u.ar
            port = self.ports.port_of(addr)

            def read(addr=addr, beats=beats, port=port):
                ready = self.ports.read(c, port, addr, beats)
                u.beats.extend((r, port, k == beats - 1) for k, r in enumerate(ready))
            calls.append((port, 0, read))
            self.stats["load_bursts"] += 1
        issue = (u.ar is None or ar_hs) and self._can_issue_ar()
        taken_last = False
        if u.beats and max(u.beats[0][0], self.r_last + 1) == c:
            _, port, last = u.beats.popleft()
            self.ports.r[port].accept(c)
            self.r_last = c
            self.stats["load_beats"] += 1
            taken_last = last
            u.to_receive -= 1
            if u.to_receive == 0:
                u.busy = False
                u.free = c + 1
        if issue:
            beats = next_burst(self.cfg, u.next_addr, u.to_issue)
            u.ar = (u.next_addr, beats)
            u.next_addr += beats * self.cfg.beat_bytes
            u.to_issue -= beats
        elif ar_hs:
            u.ar = None
        u.in_flight += int(issue) - int(taken_last)

    def _store_cycle(self, c: int, calls: list) -> None:
        s = self.store
        cfg = self.cfg
        aw_hs = s.aw is not None
        # W: a beat of the current burst once its AW was accepted in an earlier cycle
        beat_valid = s.have if self.gather == 1 else s.full
        w_take = s.busy and beat_valid and s.aw_sent > s.w_bursts
        w_last = False
        if w_take:
            w_addr, w_len = s.w_addr, next_burst(cfg, s.w_addr, s.w_left)
            w_last = s.w_pos == w_len - 1
            self.stats["store_beats"] += 1
            if w_last:
                port = self.ports.port_of(w_addr)

                def write(addr=w_addr, beats=w_len, port=port):
                    s.b.append((self.ports.write(c, port, addr, beats), port))
                calls.append((port, 1, write))
        # B
        b_take = False
        if s.busy and s.b and max(s.b[0][0], self.b_last + 1) == c:
            _, port = s.b.popleft()
            self.ports.b[port].accept(c)
            self.b_last = c
            b_take = True
        issue = s.busy and (s.aw is None or aw_hs) and self._can_issue_aw()
        # the output-buffer line pipeline
        if self.gather == 1:
            advance = not s.have or (w_take and s.part == self.parts - 1)
            if advance:
                s.part = 0
            elif w_take:
                s.part += 1
        else:
            take_line = s.have and (not s.full or w_take)
            advance = not s.have or take_line
            if take_line:
                s.full = s.slot == self.gather - 1
                s.slot = (s.slot + 1) % self.gather
            elif w_take:
                s.full = False
        if advance:
            s.have = s.rd_left != 0
            if s.rd_left:
                s.rd_left -= 1
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
        if issue:
            beats = next_burst(cfg, s.aw_addr, s.aw_left)
            s.aw = (s.aw_addr, beats)
            s.aw_addr += beats * cfg.beat_bytes
            s.aw_left -= beats
            self.stats["store_bursts"] += 1
        elif aw_hs:
            s.aw = None
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
