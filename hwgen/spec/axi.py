"""AXI4 encodings and the burst rules the DMA units, the L3 and the interleaver follow, written once for the RTL
(``hwgen/rtl/memory/``) and the cycle model (``sim/model/memory/``).

A transfer of whole beats (one beat = one L1 line) is cut into INCR bursts, each as long as possible but at
most ``memory.burst_beats`` and never crossing a ``burst_boundary`` (4 KiB, the AXI4 rule, or the port
interleave if smaller): ``next_burst`` is the length of the first, ``plan`` the whole cut. Pages are >= 4 KiB
and page-aligned in both spaces, so the cut is the same on virtual and physical addresses. An output line and
a beat differ in width by a power of two: ``beats_per_line`` says how a STORE packs one into the other.
"""
from __future__ import annotations

BURST_FIXED, BURST_INCR, BURST_WRAP = 0, 1, 2
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3
#: an INCR burst must not cross an address boundary of this many bytes
BOUNDARY_BYTES = 4096
#: longest INCR burst (AXI4); FIXED and WRAP bursts are at most 16 beats
MAX_INCR_BEATS = 256


def burst_boundary(cfg) -> int:
    """No burst crosses a multiple of this many bytes: 4 KiB (AXI4) or the port interleave if smaller."""
    return min(BOUNDARY_BYTES, cfg.memory.interleave_bytes)


def next_burst(cfg, addr: int, beats: int) -> int:
    """Beats of the first burst of a transfer of ``beats`` beats from ``addr`` (what BurstPlanner computes)."""
    boundary = burst_boundary(cfg)
    return min(beats, cfg.memory.burst_beats, (boundary - addr % boundary) // cfg.beat_bytes)


def plan(cfg, addr: int, beats: int) -> list[tuple[int, int]]:
    """[(address, beats), ...] of the bursts a transfer of ``beats`` beats from ``addr`` is cut into."""
    out = []
    while beats:
        n = next_burst(cfg, addr, beats)
        out.append((addr, n))
        addr += n * cfg.beat_bytes
        beats -= n
    return out


def beats_per_line(cfg) -> tuple[int, int]:
    """(parts, gather): beats per output line and output lines per beat; one of them is 1."""
    line, beat = cfg.out_line_bits, cfg.beat_bytes * 8
    return max(1, line // beat), max(1, beat // line)


def store_beats(cfg, lines: int) -> int:
    parts, gather = beats_per_line(cfg)
    return lines * parts // gather
