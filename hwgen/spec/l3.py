"""The L3 cache's timing contract: every number of the cache that is not in the config verbatim, and its
replacement LFSR. The RTL (``hwgen/rtl/memory/l3_cache.py``, whose docstring is the micro-architecture) and
the model (``sim/model/memory/l3.py``) both read them.
"""
from __future__ import annotations

from dataclasses import dataclass

from hwgen.spec.axi import BOUNDARY_BYTES, MAX_INCR_BEATS

#: AR handshake -> first RVALID of a read hit with no extra delay stages (request FIFO, S1, line queue,
#: data micro-op, output register)
MIN_HIT_CYCLES = 5
LFSR_POLY = 0xB400          # Galois form of x^16 + x^14 + x^13 + x^11 + 1
LFSR_SEED = 0xACE1


@dataclass(frozen=True)
class L3Timing:
    """Every number of the cache that is not in the config verbatim (the simulator reads these)."""

    line_beats: int
    sets: int
    ways: int
    mshrs: int
    hit_cycles: int
    hit_delay: int          # register stages between S1 and the line queue
    line_queue: int         # line accesses between S1 and the end of their data micro-ops
    request_fifo: int       # read requests (and write requests) waiting for the tag stage
    w_fifo: int             # W beats buffered at the slave
    pending_writes: int     # HBM writes (write-backs, write-through) tracked from S1 to their B
    banks: int              # tag and data RAMs per array, interleaved by set (set % banks)
    init_cycles: int        # after reset, one tag row of every bank is cleared per cycle; S1 starts after it

    @classmethod
    def of(cls, cfg) -> "L3Timing":
        c = cfg.l3
        B = cfg.beat_bytes
        if c.line_bytes % B:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed: must be a multiple of beat_bytes ({B})")
        if c.line_bytes > BOUNDARY_BYTES or c.line_bytes // B > MAX_INCR_BEATS:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed by the RTL cache: must be <= "
                             f"{BOUNDARY_BYTES} and <= {MAX_INCR_BEATS} beats (one AXI burst per line)")
        if c.hit_cycles < MIN_HIT_CYCLES:
            raise ValueError(f"l3.hit_cycles: {c.hit_cycles} is not allowed by the RTL cache: must be >= "
                             f"{MIN_HIT_CYCLES} (its shortest AR-to-RVALID path)")
        out = cfg.memory.outstanding
        return cls(line_beats=c.line_bytes // B, sets=c.sets, ways=c.ways, mshrs=c.mshrs, hit_cycles=c.hit_cycles,
                   hit_delay=c.hit_cycles - MIN_HIT_CYCLES, line_queue=max(2 * c.mshrs, 4),
                   request_fifo=2 * out, w_fifo=2 * out * cfg.memory.burst_beats, banks=c.banks,
                   init_cycles=c.sets // c.banks, pending_writes=max(2 * c.mshrs, 4))
