"""The L3 with several HBM ports: one slice per port behind the port interleaver, the timing of
``hwgen/rtl/top.memory_side`` cycle for cycle.

The RTL (``l3.enabled``, ``memory.ports`` P > 1)::

    upstream (the engine's DMA, or the chip's arbiter)
        -> HbmInterleaver (burst at a -> port (a // interleave_bytes) % P; responses in request order)
        -> slice i = L3Cache(cfg, port=i): l3.bytes / P, same ways, line, banks
        -> m_axi_hbm<i>

``L3Slices(cfg, hbm=None, seed=LFSR_SEED, cleared=False)`` has the interface of ``L3Ports``
(``sim/model/memory/l3.py``) with P ports, the one ``HbmPorts`` has: ``port_of(address)``, ``read(cycle, port,
address, beats, stream=False)`` / ``write(cycle, port, address, beats, full=True)`` (``port`` is the address's
port; the call goes to that slice), the response channels ``r[i]`` / ``b[i]`` (slice i's: the master's
handshakes go there), ``serve_read`` / ``serve_write``, ``accept_cycle``, ``ready_cycle``, ``idle_cycle``,
``flush``, ``drain``, ``reset``, ``stats``, ``contains`` / ``dirty`` / ``dirty_lines``. Slice i is
``L3Ports(cfg, hbm, slice_=i, merge=...)``: the numbers of ``L3Timing.of(cfg)`` (per slice), its sets indexed by
the address without the slice bits (``L3Timing.local``), its master calls on HBM port i.

Timing, and why each slice can be timed on its own:

- Requests. The interleaver hands AR / AW / W to the addressed slice in the cycle they come (no cycle added;
  its order FIFOs hold every burst one engine keeps in flight), so a slice sees the calls the single-port cache
  would, for its own addresses.
- Responses. The interleaver returns R beats and B responses in request order over all slices, one per cycle:
  response k is handshaken in ``max(ready_k, h_{k-1} + 1)`` (the master's READY high). A slice's response that is
  ready before its turn waits in the slice's output FIFO (``L3Timing.response_fifo`` deep), and while that FIFO
  is full the slice's data stage stalls. Calls come in request order and a slice computes each of its requests
  whole, so the merged handshakes of every earlier request are known when a slice needs them: the slices share
  the merged R and B channels (``merge``) and the returned cycles are those handshakes (so a master that takes
  ``max(ready, its previous handshake + 1)`` gets exactly them).
- HBM. Each port owns its pseudo-channels (``hwgen.spec.config.check_memory_side``), so the slices' HBM requests
  never meet in a controller: each slice makes its master calls in its own cycle order on its port and
  ``HbmPorts(cfg, own_channels=True)`` accepts calls of different ports in any interleaving, with the completions
  of the cycle-ordered calls the cocotb responder makes.
- Reset and flush. All slices clear their tags in the same ``init_cycles`` (``l3_ready`` is the AND of theirs);
  ``flush(cycle)`` pulses every slice, each takes it once it is idle and ends in its own ``F_i``;
  ``l3_flushing`` (the OR) is low again from ``max F_i``.

``stats``: the ``L3Ports`` counters summed over the slices (rates from the sums; ``flushes`` / ``flush_cycles``
count the flushes of the whole cache), the HBM's counters once, and ``slices``: per slice ``hits``, ``misses``,
``evictions``, ``writebacks``.
"""
from __future__ import annotations

from typing import Any

from hwgen.spec.config import HwConfig, check_memory_side
from hwgen.spec.l3 import LFSR_SEED, L3Timing
from sim.model.memory.axi_port import HbmPorts, ResponseChannel
from sim.model.memory.l3 import L3Ports

#: the per-slice counters ``stats["slices"]`` lists
SLICE_COUNTERS = ("hits", "misses", "evictions", "writebacks")


class L3Slices:
    """``memory.ports`` L3 slices behind the interleaver; see the module docstring."""

    def __init__(self, cfg: HwConfig, hbm: HbmPorts | None = None, seed: int = LFSR_SEED, cleared: bool = False):
        check_memory_side(cfg)
        if not cfg.l3.enabled:
            raise ValueError("l3.enabled: false is not allowed here: L3Slices is the L3 (use HbmPorts without it)")
        self.cfg = cfg
        self.timing = L3Timing.of(cfg)
        self.hbm = HbmPorts(cfg, own_channels=True) if hbm is None else hbm
        if not self.hbm.own_channels:
            raise ValueError("hbm: must be HbmPorts(cfg, own_channels=True): the slices call their ports in their "
                             "own cycle order")
        self.enabled = True
        self.ports = cfg.memory.ports
        self.beat_bytes = cfg.beat_bytes
        self.cleared = cleared
        self._merge = (ResponseChannel(), ResponseChannel())        # the interleaver's R and B, request order
        self.slices = [L3Ports(cfg, self.hbm, seed=seed, cleared=cleared, slice_=i, merge=self._merge)
                       for i in range(self.ports)]
        self.r = [s.r[0] for s in self.slices]
        self.b = [s.b[0] for s in self.slices]
        self._clear()

    def _clear(self) -> None:
        self._hbm_base = self.slices[0]._hbm_counters()
        self._flushes = self._flush_cycles = 0
        self.flush_take = None

    @property
    def ready_cycle(self) -> int:
        return self.slices[0].ready_cycle

    def reset(self) -> None:
        """Back to cycle 0 and an empty cache: every slice, the merged channels and the HbmPorts behind."""
        self.hbm.reset()
        for ch in self._merge:
            ch.reset()
        for s in self.slices:
            for ch in (*s.r, *s.b):
                ch.reset()
            s._clear()
        self._clear()

    def port_of(self, address: int) -> int:
        return self.hbm.port_of(address)

    def _slice(self, port: int, address: int, what: str) -> L3Ports:
        if port != self.port_of(address):
            raise ValueError(f"{what}: port {port} is not allowed: address {address:#x} is in port "
                             f"{self.port_of(address)}'s interleave chunk (memory.interleave_bytes "
                             f"{self.cfg.memory.interleave_bytes})")
        return self.slices[port]

    # -- requests (HbmPorts' interface) ------------------------------------------------------------------
    def accept_cycle(self, cycle: int, kind: int, address: int | None = None) -> int:
        """The first cycle >= ``cycle`` the request buffer of ``address``'s slice has room (every slice's when
        ``address`` is None)."""
        slices = self.slices if address is None else [self.slices[self.port_of(address)]]
        return max(s.accept_cycle(cycle, kind) for s in slices)

    def read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        """AR handshake in ``cycle``: the cycle each R beat is handshaken at the interleaver (request order)."""
        return self._slice(port, address, "read").read(cycle, 0, address, beats, stream)

    def write(self, cycle: int, port: int, address: int, beats: int, full: bool = True) -> int:
        """Write burst complete in ``cycle``: the cycle its B response is handshaken at the interleaver."""
        return self._slice(port, address, "write").write(cycle, 0, address, beats, full)

    def serve_read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        return self.r[port].take_all(self.read(cycle, port, address, beats, stream))

    def serve_write(self, cycle: int, port: int, address: int, beats: int, full: bool = True) -> int:
        return self.b[port].take(self.write(cycle, port, address, beats, full))

    def drain(self) -> None:
        for s in self.slices:
            s.drain()

    # -- tag state -----------------------------------------------------------------------------------
    def contains(self, address: int) -> bool:
        return self.slices[self.port_of(address)].contains(address)

    def dirty(self, address: int) -> bool:
        return self.slices[self.port_of(address)].dirty(address)

    @property
    def dirty_lines(self) -> int:
        return sum(s.dirty_lines for s in self.slices)

    # -- idle and flush ------------------------------------------------------------------------------
    @property
    def idle_cycle(self) -> int:
        """The first cycle every slice is idle (see ``L3Ports.idle_cycle``)."""
        return max(s.idle_cycle for s in self.slices)

    def flush(self, cycle: int) -> int:
        """``l3_flush`` pulsed in ``cycle``: every slice flushes (``L3Ports.flush``); returns the first cycle
        ``l3_flushing`` (the OR of the slices') is low again. ``flush_take``: the last slice's take."""
        ends = [s.flush(cycle) for s in self.slices]
        self.flush_take = max(s.flush_take for s in self.slices)
        self._flushes += 1
        self._flush_cycles += max(ends) - self.flush_take
        return max(ends)

    # -- statistics ----------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """``L3Ports.stats`` of the whole cache (counters summed over the slices) and ``slices``."""
        self.drain()
        counts = {k: sum(s._n[k] for s in self.slices) for k in self.slices[0]._n}
        counts.update(flushes=self._flushes, flush_cycles=self._flush_cycles)
        firsts = [s._first for s in self.slices if s._first is not None]
        first = min(firsts) if firsts else None
        end = max(s._end for s in self.slices)
        out = self.slices[0].derive(counts, first, end, self.slices[0]._hbm_counters(), self._hbm_base)
        out["slices"] = [{k: s._n[k] for k in SLICE_COUNTERS} for s in self.slices]
        return out


def memory_side(cfg: HwConfig) -> tuple[HbmPorts, HbmPorts | L3Ports | L3Slices]:
    """The HBM ports of ``cfg`` and what the DMA (or the chip's arbiter) talks to in front of them: the ports
    themselves without the L3, the L3 (``L3Ports``) with one port, its slices (``L3Slices``) with several."""
    check_memory_side(cfg)
    sliced = cfg.l3.enabled and cfg.memory.ports > 1
    hbm = HbmPorts(cfg, own_channels=sliced)
    if not cfg.l3.enabled:
        return hbm, hbm
    return hbm, (L3Slices(cfg, hbm) if sliced else L3Ports(cfg, hbm))


__all__ = ["SLICE_COUNTERS", "L3Slices", "memory_side"]
