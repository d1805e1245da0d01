"""HBM behind AXI4 ports: when a read beat or a write response may leave the memory side of a port.

Written once, pure Python (no cocotb): the Python simulator's DMA and the cocotb responder
(``sim/rtl/tb/hbm_responder.py``) both call ``HbmPorts``, so the simulator and the RTL testbench see the same
memory timing. All ``cfg.memory.ports`` ports share one ``HbmModel`` (sim/model/memory/hbm.py); a port adds
only its own response channels (one R beat and one B response per cycle, in request order).

Cycles
------
Cycle ``n`` is the clock period that ends with rising edge ``n + 1``. A handshake "in cycle n" means
``valid`` and ``ready`` were both high during that period, i.e. sampled high at the edge that ends it. A
response presented "in cycle n" has its ``valid`` (and payload) driven right after the edge that starts
cycle n, so the master samples it at the edge that ends cycle n. Cycle 0 is the period that ends with the
first rising edge at which the design samples its reset low (the testbench releases ``rst`` right after a
rising edge; that edge starts cycle 0).

Timing rules
------------
``c = controller_cycles = ceil(cfg.memory.hbm.controller_ns * cfg.clock.mhz / 1000)`` (float noise below
1e-9 ignored, as in hbm.py), ``B = cfg.beat_bytes``, ``A`` = the burst address rounded down to a beat.
Beat ``k`` of a burst covers bytes ``[A + k*B, A + (k+1)*B)``; only full-width INCR beats exist here.

- ``read(cycle, port, address, beats)``, called for the AR handshake in ``cycle``: the beats go to the
  HBM as read requests arriving in cycle ``cycle + c``; the result is, per beat, the first cycle its RVALID
  may be high: ``max(hbm completion of the beat, cycle + 1)``.
- ``write(cycle, port, address, beats)``, called in the cycle a write burst is complete at the port, i.e.
  ``cycle = max(AW handshake cycle, last W handshake cycle)`` (the last W beat, unless W ran ahead of its
  AW): the beats go to the HBM as write requests arriving in ``cycle + c`` (WSTRB does not shorten them);
  the result is the first cycle BVALID may be high: ``max(completion of every beat, cycle + 1)``.
- HBM requests: one per ``U = max(B, access_bytes)``-aligned unit of the burst (the part of the burst in
  that unit), in address order; a beat is complete when its unit is. With ``B >= access_bytes`` that is one
  request of ``B`` bytes per beat; with narrower beats (the ``tiny`` preset: 16-byte beats, 32-byte
  accesses) two beats share one access instead of reading it twice.
- Order of calls: nondecreasing ``cycle``; within one cycle, port 0 .. P-1, and for each port its AR
  handshake before its completed write. ``HbmModel`` serves requests of a later call behind those of
  earlier calls, so this order is part of the timing; the simulator issues its calls in the same order.
  A call out of this order (or a second call of one kind for one port in one cycle) raises ``ValueError``.
  Because arrivals never decrease, these calls give the same completions as one ``HbmModel.serve`` of
  all their requests at once (tests/test_hbm_responder.py checks it).
- ``own_channels=True`` (the L3's slices, one per port: ``sim/model/memory/l3_slices.py``): every port's
  interleave chunks map to pseudo-channels of its own (``interleave_bytes x ports <= access_bytes x
  pseudo-channels`` with the HBM model's pseudo-channel-first address map; checked here), so the requests of
  two ports never meet in a controller and calls of different ports commute: the order is then checked per
  port only (nondecreasing cycles, the AR before the completed write), and any interleaving of the ports'
  calls gives the completions of the cycle-ordered one the responder makes.
- The port index selects the response channels and the counters only: the HBM sees physical addresses,
  and ``port_of`` (``(address // interleave_bytes) % ports``) is not enforced here.

Response channels (``ResponseChannel``, one R and one B per port in ``HbmPorts.r`` / ``HbmPorts.b``)
--------------------------------------------------------------------------------------------------------
Responses of one port leave in request order (R beats in AR order across IDs, B in AW order: in-order
responses are legal AXI), one per cycle: a response is presented in cycle ``max(ready, previous response's
handshake cycle + 1)`` at the earliest. When neither side stalls, presentation and handshake coincide:
``serve_read`` / ``serve_write`` give those cycles directly (what the simulator uses at 0 % stalls); the
responder calls ``earliest`` and then ``accept`` with the real handshake cycle.

``stats``: bytes and bursts per port, achieved bandwidth per port and in total, and ``hbm`` (the shared
``HbmModel.stats``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from hwgen.spec.config import HwConfig
from sim.model.memory.hbm import HbmModel

READ, WRITE = 0, 1
KINDS = ("read", "write")
MAX_BEATS = 256            # AXI4 INCR


def controller_cycles(cfg: HwConfig) -> int:
    """``controller_ns`` in engine cycles, rounded up (float noise below 1e-9 ignored: 20 ns at 1 GHz = 20)."""
    return math.ceil(round(cfg.memory.hbm.controller_ns * cfg.clock.mhz / 1000, 9))


class ResponseChannel:
    """One in-order response channel (R or B) of one port: at most one response per cycle, in request order.

    ``last`` is the handshake cycle of the previous response (-1: none yet)."""

    def __init__(self):
        self.last = -1
        self.count = 0

    def earliest(self, ready: int) -> int:
        """The first cycle the next response may be presented, if it is ready in cycle ``ready``."""
        return max(ready, self.last + 1)

    def accept(self, cycle: int) -> None:
        """Record the handshake of the next response in ``cycle``."""
        if cycle <= self.last:
            raise ValueError(f"cycle: {cycle} is not allowed: must be > the previous handshake ({self.last})")
        self.last = cycle
        self.count += 1

    def take(self, ready: int) -> int:
        """Present and accept the next response at once (the master never stalls); returns its cycle."""
        cycle = self.earliest(ready)
        self.accept(cycle)
        return cycle

    def take_all(self, ready: Iterable[int]) -> list[int]:
        return [self.take(r) for r in ready]

    def reset(self) -> None:
        self.last = -1
        self.count = 0


class HbmPorts:
    """``cfg.memory.ports`` AXI4 ports in front of one shared ``HbmModel``; see the module docstring."""

    def __init__(self, cfg: HwConfig, hbm: HbmModel | None = None, own_channels: bool = False):
        self.cfg = cfg
        self.hbm = HbmModel(cfg) if hbm is None else hbm
        if self.hbm.timing.mhz != cfg.clock.mhz:
            raise ValueError(f"hbm: timed at {self.hbm.timing.mhz} MHz, not at clock.mhz ({cfg.clock.mhz})")
        self.ports = cfg.memory.ports
        self.own_channels = bool(own_channels)
        if own_channels and not self._ports_own_channels():
            amap = self.hbm.map
            raise ValueError(f"own_channels: the ports share pseudo-channels (memory.interleave_bytes "
                             f"{cfg.memory.interleave_bytes} x {self.ports} ports > {amap.interleave} bytes x "
                             f"{amap.radix['pseudo_channel']} pseudo-channels, or an address map that does not "
                             "put the pseudo-channel first)")
        self.beat_bytes = cfg.beat_bytes
        self.interleave_bytes = cfg.memory.interleave_bytes
        self.controller_cycles = controller_cycles(cfg)
        self.unit_bytes = max(self.beat_bytes, self.hbm.timing.access_bytes)
        self.r = [ResponseChannel() for _ in range(self.ports)]
        self.b = [ResponseChannel() for _ in range(self.ports)]
        self._clear()

    def _ports_own_channels(self) -> bool:
        """Whether the interleave chunks of each port map to pseudo-channels no other port's chunks use."""
        amap, il = self.hbm.map, self.cfg.memory.interleave_bytes
        return (amap.order[0] == "pseudo_channel" and il % amap.interleave == 0
                and il * self.ports <= amap.interleave * amap.radix["pseudo_channel"])

    def _clear(self) -> None:
        self._last = (-1, -1)          # (cycle, slot) of the previous call; slot = 2 * port + kind
        self._last_of = [(-1, -1)] * self.ports    # the same per port (``own_channels``)
        self._port = [{"bytes_read": 0, "bytes_written": 0, "reads": 0, "writes": 0, "first_cycle": None,
                       "last_ready": -1} for _ in range(self.ports)]

    def reset(self) -> None:
        """Back to cycle 0: the HBM model, the response channels and the counters."""
        self.hbm.reset()
        for ch in (*self.r, *self.b):
            ch.reset()
        self._clear()

    def port_of(self, address: int) -> int:
        """The port whose interleave chunk holds ``address``."""
        return (address // self.interleave_bytes) % self.ports

    # -- requests ------------------------------------------------------------------------------------
    def accept_cycle(self, cycle: int, kind: int, address: int | None = None) -> int:
        """The first cycle >= ``cycle`` a request can be taken: at once (the ports buffer no requests of
        their own; ``L3Ports`` has the same method for its request buffers)."""
        return cycle

    def read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        """AR handshake in ``cycle``: per beat, the first cycle its RVALID may be high. ``stream`` (the
        read-once hint a cache in front may use) means nothing to HBM; it keeps one interface for both."""
        done, group = self._serve(cycle, port, address, beats, READ)
        floor = cycle + 1
        ready = [max(int(done[g]), floor) for g in group]
        self._account(port, cycle, beats, READ, max(ready))
        return ready

    def write(self, cycle: int, port: int, address: int, beats: int) -> int:
        """Write burst complete at the port in ``cycle``: the first cycle its BVALID may be high."""
        done, _ = self._serve(cycle, port, address, beats, WRITE)
        ready = max(max(done), cycle + 1)
        self._account(port, cycle, beats, WRITE, ready)
        return ready

    def serve_read(self, cycle: int, port: int, address: int, beats: int) -> list[int]:
        """``read`` followed by the port's R channel with no stalls: the cycle of each R handshake."""
        return self.r[port].take_all(self.read(cycle, port, address, beats))

    def serve_write(self, cycle: int, port: int, address: int, beats: int) -> int:
        """``write`` followed by the port's B channel with no stalls: the cycle of the B handshake."""
        return self.b[port].take(self.write(cycle, port, address, beats))

    def _serve(self, cycle: int, port: int, address: int, beats: int, kind: int) -> tuple[list[int], list[int]]:
        what = f"{KINDS[kind]}(cycle={cycle}, port={port}, address={address}, beats={beats})"
        for name, value, low, high in (("cycle", cycle, 0, None), ("port", port, 0, self.ports - 1),
                                       ("address", address, 0, None), ("beats", beats, 1, MAX_BEATS)):
            if not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise ValueError(f"{what}: {name} {value!r} is not allowed: must be an integer {bound}")
        slot = (cycle, 2 * port + kind)
        last = self._last_of[port] if self.own_channels else self._last
        if slot <= last:
            last_cycle, last_slot = last
            before = f"{KINDS[last_slot % 2]} on port {last_slot // 2} in cycle {last_cycle}"
            rule = ("cycles must not decrease" if cycle < last_cycle else
                    "within a cycle, calls go port by port, AR before the completed write")
            raise ValueError(f"{what}: out of order after {before}: {rule}")
        self._last = max(self._last, slot)
        self._last_of[port] = slot
        B, U = self.beat_bytes, self.unit_bytes
        start = address - address % B
        end = start + beats * B
        lo = [max(u * U, start) for u in range(start // U, (end - 1) // U + 1)]
        sizes = [min((a // U + 1) * U, end) - a for a in lo]
        done = self.hbm.serve_units(cycle + self.controller_cycles, kind == WRITE, lo, sizes)
        first = start // U
        group = [(start + k * B) // U - first for k in range(beats)]
        return done, group

    def _account(self, port: int, cycle: int, beats: int, kind: int, ready: int) -> None:
        s = self._port[port]
        s["bytes_read" if kind == READ else "bytes_written"] += beats * self.beat_bytes
        s["reads" if kind == READ else "writes"] += 1
        if s["first_cycle"] is None:
            s["first_cycle"] = cycle
        s["last_ready"] = max(s["last_ready"], ready)

    # -- statistics ----------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """Per port: bytes and bursts each way, and bytes per cycle over the port's active span (from its
        first request to one past its last response ready or accepted); totals over all ports; ``hbm``."""
        mhz = self.cfg.clock.mhz
        ports, first, end = [], None, None
        for p, s in enumerate(self._port):
            moved = s["bytes_read"] + s["bytes_written"]
            out = {k: v for k, v in s.items() if k != "last_ready"}
            if s["first_cycle"] is None:
                out.update(end_cycle=None, bytes_per_cycle=0.0, gbytes_per_s=0.0)
            else:
                stop = max(s["last_ready"], self.r[p].last, self.b[p].last) + 1
                bpc = moved / (stop - s["first_cycle"])
                out.update(end_cycle=stop, bytes_per_cycle=bpc, gbytes_per_s=bpc * mhz / 1000)
                first = s["first_cycle"] if first is None else min(first, s["first_cycle"])
                end = stop if end is None else max(end, stop)
            ports.append(out)
        total_read = sum(s["bytes_read"] for s in self._port)
        total_written = sum(s["bytes_written"] for s in self._port)
        bpc = (total_read + total_written) / (end - first) if first is not None else 0.0
        return {"ports": ports, "bytes_read": total_read, "bytes_written": total_written,
                "bytes_per_cycle": bpc, "gbytes_per_s": bpc * mhz / 1000,
                "controller_cycles": self.controller_cycles, "hbm": self.hbm.stats}


__all__ = ["KINDS", "MAX_BEATS", "READ", "WRITE", "HbmPorts", "ResponseChannel", "controller_cycles"]
