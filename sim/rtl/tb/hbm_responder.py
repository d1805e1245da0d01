"""cocotb AXI4 slave for the ``m_axi_hbm<i>_*`` ports of a design: HBM behind AXI, timed by sim/model/memory/axi_port.

``HbmResponder(dut, HbmPorts(cfg), image, clock, dut.rst)`` answers every port of ``ports`` (a map
prefix -> HbmPorts port index; default ``m_axi_hbm<i>`` -> i for all ``cfg.memory.ports`` ports) from one
byte image (a bytearray or a 1-D uint8 numpy array; physical addresses from 0) shared by the ports. Read
beats and write responses leave when ``HbmPorts`` says (module docstring of ``sim.model.memory.axi_port``: the
timing rules and the cycle convention), so at 0 % stalls the RTL sees exactly the timing the simulator
predicts with ``HbmPorts.serve_read`` / ``serve_write``.

Protocol: INCR bursts of 1..256 full-width beats (an unaligned address is rounded down to a beat), WSTRB
byte enables, responses in request order (R beats in AR order across IDs, B in AW order), RID/BID = the
request's ID. W beats may come before their AW (they wait in a buffer); a write is complete at the port
in the cycle both its AW and its last W beat have been accepted. RRESP/BRESP are OKAY, or SLVERR for a
beat outside the image (such a beat reads as zeros and is not written), a narrow beat (AxSIZE below the
bus width) or a FIXED/WRAP burst; each SLVERR is also appended to ``errors``. Timing does not depend on
the image: out-of-range beats are still timed by the HBM model.

Stall knobs: ``stall`` (a probability in [0, 0.9], or a dict per channel ``ar r aw w b``) gives each
channel of each port its own seeded generator (``random.Random(f"{seed}-{prefix}-{channel}")``). READY
channels (ARREADY, AWREADY, WREADY) are low with probability p in each cycle the responder is awake;
RVALID/BVALID: a response that may be presented is held back with probability p in that cycle (once
presented, VALID stays up until the handshake, as AXI requires). p = 0 draws nothing and never pauses.

Planted violations (``plant``, for tests that the checkers cannot miss a failure): ``"rlast"`` ends the first
read burst of two or more beats with RLAST on its first beat, once; the AXI monitor must then fail the run.

Cycle 0 and sampling: on each rising edge the responder reads the signals the design registers at that
edge (the values of the cycle that just ended) and then drives its outputs for the cycle that starts
(writes land in the same time step, after the design's registers updated, as with cocotbext-axi and
``sim.rtl.tb.axi_monitor``). Cycle 0 is the period that ends with the first rising edge at which ``reset``
reads inactive, i.e. the testbench writes ``rst = 0`` right after the edge that starts cycle 0. Create the
responder before cycle 0 ends (normally while reset is active). A later reset clears the port state and
calls ``HbmPorts.reset()``: cycles, ``records``, ``calls`` and ``errors`` start again from cycle 0. The
cycle number of an edge comes from the simulation time (``(t - t0) / period`` with the period of
``clock``), so the clock must be a cocotb ``Clock`` that runs from before reset to the end.

Records: ``records[prefix]`` holds the cycle of every AR (with id, address, beats), AW, last W, completed
write, R beat and B handshake on that port, and ``w_ahead`` (W beats that came before their AW);
``calls`` lists every ``HbmPorts`` call in order as ``(cycle, port, kind, address, beats)``, enough to
replay the timing in pure Python.

Cost: one coroutine serves all ports. It wakes on every rising edge while a response is presented or due
within a cycle, or a master VALID is high; otherwise it sleeps on the rising edge of any master VALID
(ARVALID/AWVALID/WVALID of any port), a reset change or a timer set one simulation step before the edge
that starts the cycle of the next due response, so HBM latency and idle time cost no Python. An awake edge
reads the three master VALIDs and, per channel with a handshake possible, READY or the payload of each
port (a few VPI reads per port), plus a ``ReadOnly`` re-check of the VALIDs before it sleeps. ``edges``
counts the edges it woke on.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_steps

from sim.model.memory.axi_port import KINDS, READ, WRITE, HbmPorts

CHANNELS = ("ar", "r", "aw", "w", "b")
MAX_STALL = 0.9
PLANTS = (None, "rlast")
BURST_INCR = 1
OKAY, SLVERR = 0, 2
_FIELDS = {
    "ar": ("valid", "ready", "id", "addr", "len", "size", "burst"),
    "aw": ("valid", "ready", "id", "addr", "len", "size", "burst"),
    "w": ("valid", "ready", "data", "strb", "last"),
    "r": ("valid", "ready", "id", "data", "resp", "last"),
    "b": ("valid", "ready", "id", "resp"),
}
_OPTIONAL = {"id", "size", "burst", "strb", "resp"}


class SlaveError(NamedTuple):
    """A request answered with SLVERR (or a master that broke WLAST): where, when and why."""

    cycle: int
    prefix: str
    channel: str        # "r" (read) or "w" (write)
    address: int
    message: str


@dataclass
class PortRecord:
    """Handshake cycles of one port, in order."""

    ar: list[tuple[int, int, int, int]] = field(default_factory=list)   # (cycle, id, address, beats)
    aw: list[tuple[int, int, int, int]] = field(default_factory=list)   # (cycle, id, address, beats)
    w_last: list[int] = field(default_factory=list)                     # last W beat of each burst
    w_done: list[int] = field(default_factory=list)                     # write complete (HbmPorts.write)
    r: list[int] = field(default_factory=list)                          # every R beat
    b: list[int] = field(default_factory=list)
    w_ahead: int = 0                                                    # W beats accepted before their AW

    def clear(self) -> None:
        for name in ("ar", "aw", "w_last", "w_done", "r", "b"):
            getattr(self, name).clear()
        self.w_ahead = 0


class _Pause:
    def __init__(self, p: float, rng: random.Random):
        self.p, self.rng = p, rng

    def __call__(self) -> bool:
        return self.p > 0 and self.rng.random() < self.p


class _Burst:
    """An accepted AW waiting for its W beats."""

    __slots__ = ("id", "addr", "beats", "got", "resp")

    def __init__(self, bid: int, addr: int, beats: int, resp: int):
        self.id, self.addr, self.beats, self.resp = bid, addr, beats, resp
        self.got = 0        # W beats taken so far


class _Port:
    """Handles and state of one AXI port."""

    def __init__(self, dut, prefix: str, index: int, stall: dict[str, float], seed: int):
        self.prefix, self.index = prefix, index
        self.h = {}
        for ch, names in _FIELDS.items():
            for name in names:
                try:
                    self.h[ch + name] = getattr(dut, f"{prefix}_{ch}{name}")
                except AttributeError:
                    if name not in _OPTIONAL:
                        raise ValueError(f"{prefix}: the design has no port {prefix}_{ch}{name}") from None
        self.pause = {ch: _Pause(stall[ch], random.Random(f"{seed}-{prefix}-{ch}")) for ch in CHANNELS}
        self.valids = (self.h["arvalid"], self.h["awvalid"], self.h["wvalid"])
        self.record = PortRecord()
        self.ready = {"ar": None, "aw": None, "w": None}   # value driven in the current cycle (None: not yet)
        self.clear()

    def clear(self) -> None:
        self.rq: deque = deque()     # R beats: (ready, id, address, last, resp)
        self.bq: deque = deque()     # B responses: (ready, id, resp)
        self.aws: deque = deque()    # accepted AWs whose W beats are not all in
        self.wbuf: deque = deque()   # W beats ahead of their AW: (cycle, data, strb, last)
        self.r_on = self.b_on = False  # RVALID / BVALID driven high in the current cycle

    def set(self, name: str, value: int) -> None:
        handle = self.h.get(name)
        if handle is not None:
            handle.value = value


class HbmResponder:
    """AXI4 slave for the ports of ``dut`` named in ``ports`` (prefix -> port index of ``timing``), backed by
    ``image`` and timed by ``timing``; ``clock`` is the running cocotb ``Clock`` of the design, ``reset`` its
    reset signal (active high unless ``reset_active_level=False``). See the module docstring."""

    def __init__(self, dut, timing: HbmPorts, image, clock: Clock, reset=None, *,
                 ports: dict[str, int] | None = None, stall: float | dict[str, float] = 0.0, seed: int = 0,
                 reset_active_level: bool = True, plant: str | None = None):
        if plant not in PLANTS:
            raise ValueError(f"plant: {plant!r} is not allowed (allowed: {', '.join(map(str, PLANTS))})")
        self.plant = plant               # a protocol violation to commit once, to test the checkers (PLANTS)
        self.timing = timing
        self.image = image
        self._mem = memoryview(image).cast("B")
        if self._mem.readonly:
            raise ValueError("image: must be writable (bytearray or numpy uint8 array)")
        self.clock = clock
        self._period = get_sim_steps(clock.period, clock.unit)
        self.reset, self._reset_level = reset, bool(reset_active_level)
        if ports is None:
            ports = {f"m_axi_hbm{i}": i for i in range(timing.ports)}
        if len(set(ports.values())) != len(ports) or not all(0 <= i < timing.ports for i in ports.values()):
            raise ValueError(f"ports: {ports!r} is not allowed: distinct port indices in [0, {timing.ports})")
        if isinstance(stall, (int, float)):
            stall = dict.fromkeys(CHANNELS, float(stall))
        else:
            stall = {**dict.fromkeys(CHANNELS, 0.0), **stall}
        for ch, p in stall.items():
            if ch not in CHANNELS or not 0 <= p <= MAX_STALL:
                raise ValueError(f"stall: {ch}={p!r} is not allowed: channels {', '.join(CHANNELS)}, "
                                 f"probabilities in [0, {MAX_STALL}]")
        self.stall = stall
        self.beat_bytes = timing.beat_bytes
        self._size = self.beat_bytes.bit_length() - 1
        self._full_strb = (1 << self.beat_bytes) - 1
        self._ports = [_Port(dut, prefix, index, stall, seed) for prefix, index in
                       sorted(ports.items(), key=lambda kv: kv[1])]     # HbmPorts wants port order
        for port in self._ports:
            width = len(port.h["rdata"])
            if width != 8 * self.beat_bytes:
                raise ValueError(f"{port.prefix}: {width}-bit data, but cfg.beat_bytes is {self.beat_bytes}")
        self.port_index = {port.prefix: port.index for port in self._ports}
        self.records = {port.prefix: port.record for port in self._ports}
        self.calls: list[tuple[int, int, str, int, int]] = []
        self.errors: list[SlaveError] = []
        self.edges = 0
        self._t0: int | None = None      # simulation step of the edge that starts cycle 0
        for port in self._ports:
            port.set("rvalid", 0)
            port.set("bvalid", 0)
            self._drive_readies(port)
        self._task = cocotb.start_soon(self._run())

    # -- public --------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._task.cancel()

    @property
    def cycle(self) -> int | None:
        """The cycle in progress (None before cycle 0 is known)."""
        if self._t0 is None:
            return None
        return (get_sim_time("step") - self._t0) // self._period

    @property
    def idle(self) -> bool:
        """Nothing accepted and not yet answered."""
        return not any(p.rq or p.bq or p.aws or p.wbuf or p.r_on or p.b_on for p in self._ports)

    # -- main loop -----------------------------------------------------------------------------------
    def _in_reset(self) -> bool:
        if self.reset is None:
            return False
        try:
            return bool(int(self.reset.value)) == self._reset_level
        except ValueError:       # X/Z at start-up
            return True

    async def _run(self) -> None:
        edge = RisingEdge(self.clock.signal)
        wake = [RisingEdge(v) for port in self._ports for v in port.valids]
        if self.reset is not None:
            wake.append(self.reset.value_change)
        while True:
            await edge
            self.edges += 1
            now = get_sim_time("step")
            if self._in_reset():
                if self._t0 is not None or not self.idle:      # a reset after cycle 0: start afresh
                    self._t0 = None
                    self.timing.reset()
                    self.calls.clear()
                    self.errors.clear()
                    for port in self._ports:
                        port.clear()
                        port.record.clear()
                for port in self._ports:
                    port.set("rvalid", 0)
                    port.set("bvalid", 0)
                    self._drive_readies(port)
                continue
            if self._t0 is None:
                self._t0 = now - self._period      # this edge ends cycle 0
            cycle, rem = divmod(now - self._t0, self._period)
            if rem:
                raise RuntimeError(f"HbmResponder: a rising edge at step {now}, off the clock period grid")
            was = [(port.r_on, port.b_on) for port in self._ports]
            for port in self._ports:
                self._sample(port, cycle - 1)
            due = None
            for port, (was_r, was_b) in zip(self._ports, was, strict=True):
                self._drive(port, cycle, was_r, was_b)
                for on, queue, channel in ((port.r_on, port.rq, self.timing.r), (port.b_on, port.bq, self.timing.b)):
                    if not on and queue:
                        t = channel[port.index].earliest(queue[0][0])
                        due = t if due is None else min(due, t)
            if any(p.r_on or p.b_on for p in self._ports) or (due is not None and due <= cycle + 1):
                continue
            await ReadOnly()                      # a master VALID may have risen at this very edge
            if any(v.value == 1 for p in self._ports for v in p.valids):
                continue
            triggers = list(wake)
            if due is not None:
                triggers.append(Timer(self._t0 + due * self._period - 1 - now, unit="step"))
            await First(*triggers)

    # -- the cycle that ended: handshakes ------------------------------------------------------------
    def _sample(self, port: _Port, n: int) -> None:
        h, rec = port.h, port.record
        if port.r_on and h["rready"].value == 1:
            self.timing.r[port.index].accept(n)
            rec.r.append(n)
            port.rq.popleft()
            port.r_on = False
        if port.b_on and h["bready"].value == 1:
            self.timing.b[port.index].accept(n)
            rec.b.append(n)
            port.bq.popleft()
            port.b_on = False
        if port.ready["ar"] and h["arvalid"].value == 1:
            self._accept_ar(port, n)
        if port.ready["aw"] and h["awvalid"].value == 1:
            bid, addr, beats, resp = self._address(port, "aw", n)
            rec.aw.append((n, bid, addr, beats))
            port.aws.append(_Burst(bid, addr, beats, resp))
        if port.ready["w"] and h["wvalid"].value == 1:
            strb = int(h["wstrb"].value) if "wstrb" in h else self._full_strb
            port.wbuf.append((n, int(h["wdata"].value), strb, int(h["wlast"].value)))
            rec.w_ahead += not port.aws
        while port.aws and port.wbuf:
            self._write_beat(port, n)

    def _address(self, port: _Port, ch: str, n: int) -> tuple[int, int, int, int]:
        """(id, beat-aligned address, beats, resp) of an accepted AR/AW; SLVERR for what is not served."""
        h = port.h
        bid = int(h[ch + "id"].value) if ch + "id" in h else 0
        addr = int(h[ch + "addr"].value)
        beats = int(h[ch + "len"].value) + 1
        size = int(h[ch + "size"].value) if ch + "size" in h else self._size
        kind = int(h[ch + "burst"].value) if ch + "burst" in h else BURST_INCR
        start = addr - addr % self.beat_bytes
        why = None
        if kind != BURST_INCR:
            why = f"burst type {kind} (only INCR is served)"
        elif size != self._size:
            why = f"{1 << size}-byte beats (only full {self.beat_bytes}-byte beats are served)"
        elif start + beats * self.beat_bytes > len(self._mem):
            why = f"beats past the end of the {len(self._mem)}-byte image"
        if why is not None:
            self.errors.append(SlaveError(n, port.prefix, "r" if ch == "ar" else "w", addr,
                                          f"{beats}-beat burst at 0x{addr:x}: {why}"))
        return bid, start, beats, OKAY if why is None or why.startswith("beats past") else SLVERR

    def _accept_ar(self, port: _Port, n: int) -> None:
        bid, addr, beats, resp = self._address(port, "ar", n)
        port.record.ar.append((n, bid, addr, beats))
        self.calls.append((n, port.index, KINDS[READ], addr, beats))
        ready = self.timing.read(n, port.index, addr, beats)
        B, size = self.beat_bytes, len(self._mem)
        early = self.plant == "rlast" and beats > 1       # planted: RLAST on the first beat of this burst
        if early:
            self.plant = None
        for k, t in enumerate(ready):
            a = addr + k * B
            port.rq.append((t, bid, a, k == beats - 1 or (early and k == 0), resp if a + B <= size else SLVERR))

    def _write_beat(self, port: _Port, n: int) -> None:
        burst = port.aws[0]
        cycle, data, strb, last = port.wbuf.popleft()
        B = self.beat_bytes
        a = burst.addr + burst.got * B
        if burst.resp == OKAY and a + B <= len(self._mem):
            if strb == self._full_strb:
                self._mem[a:a + B] = data.to_bytes(B, "little")
            else:
                raw = data.to_bytes(B, "little")
                for i in range(B):
                    if strb >> i & 1:
                        self._mem[a + i] = raw[i]
        else:
            burst.resp = SLVERR
        burst.got += 1
        done = burst.got == burst.beats
        if bool(last) != done:
            self.errors.append(SlaveError(cycle, port.prefix, "w", a, f"wlast={last} on beat {burst.got} of a "
                                          f"{burst.beats}-beat write"))
        if not done:
            return
        port.aws.popleft()
        port.record.w_last.append(cycle)
        port.record.w_done.append(n)
        self.calls.append((n, port.index, KINDS[WRITE], burst.addr, burst.beats))
        port.bq.append((self.timing.write(n, port.index, burst.addr, burst.beats), burst.id, burst.resp))

    # -- the cycle that starts: outputs --------------------------------------------------------------
    def _drive(self, port: _Port, c: int, was_r: bool, was_b: bool) -> None:
        """Outputs for cycle ``c``; ``was_r``/``was_b``: RVALID/BVALID were high in cycle c - 1."""
        if not port.r_on:
            if port.rq and self.timing.r[port.index].earliest(port.rq[0][0]) <= c and not port.pause["r"]():
                _, rid, a, last, resp = port.rq[0]
                data = int.from_bytes(self._mem[a:a + self.beat_bytes], "little") if resp == OKAY else 0
                port.set("rid", rid)
                port.set("rdata", data)
                port.set("rresp", resp)
                port.set("rlast", int(last))
                port.set("rvalid", 1)
                port.r_on = True
            elif was_r:
                port.set("rvalid", 0)
        if not port.b_on:
            if port.bq and self.timing.b[port.index].earliest(port.bq[0][0]) <= c and not port.pause["b"]():
                _, bid, resp = port.bq[0]
                port.set("bid", bid)
                port.set("bresp", resp)
                port.set("bvalid", 1)
                port.b_on = True
            elif was_b:
                port.set("bvalid", 0)
        self._drive_readies(port)

    def _drive_readies(self, port: _Port) -> None:
        for ch in ("ar", "aw", "w"):
            value = not port.pause[ch]()
            if value != port.ready[ch]:
                port.set(ch + "ready", int(value))
                port.ready[ch] = value


__all__ = ["CHANNELS", "MAX_STALL", "PLANTS", "HbmResponder", "PortRecord", "SlaveError"]
