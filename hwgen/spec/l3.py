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
    """Every number of the cache that is not in the config verbatim (the simulator reads these). With
    ``memory.ports`` P > 1 the cache is P slices, one per HBM port (``hwgen.spec.config.check_memory_side``): these
    are the numbers of one slice (``sets = l3.sets / P``), and a slice indexes its sets with ``local(address)``,
    the address without the slice bits."""

    line_beats: int
    sets: int
    ways: int
    mshrs: int
    hit_cycles: int
    hit_delay: int          # register stages between S1 and the line queue
    line_queue: int         # line accesses between S1 and the end of their data micro-ops
    request_fifo: int       # read requests (and write requests) waiting for the tag stage
    w_fifo: int             # W beats buffered at the slave
    response_fifo: int      # R beats (and B responses) presented to the slave's master or waiting behind them:
                            # a data micro-op that makes one waits while this many have not been handshaken
    pending_writes: int     # HBM writes (write-backs, write-through) tracked from S1 to their B
    banks: int              # tag and data RAMs per array, interleaved by set (set % banks)
    init_cycles: int        # after reset, one tag row of every bank is cleared per cycle; S1 starts after it
    slices: int             # one slice per HBM port (memory.ports); ``sets`` is per slice
    slice_shift: int        # log2(memory.interleave_bytes): the slice index is the address bits above it

    @property
    def slice_bits(self) -> int:
        """Address bits that name the slice (``log2 slices``); a slice indexes its sets without them."""
        return (self.slices - 1).bit_length()

    def local(self, address: int) -> int:
        """``address`` as its slice sees it: the slice bits taken out (the bits above them move down), so the
        addresses of one slice are dense and index every set. The identity with one slice."""
        lo, sb = self.slice_shift, self.slice_bits
        return (address >> (lo + sb) << lo) | (address & ((1 << lo) - 1))

    def slice_of(self, address: int) -> int:
        """The slice (and HBM port) of ``address``: ``(address // interleave_bytes) % slices``."""
        return (address >> self.slice_shift) & (self.slices - 1)

    def physical(self, local: int, slice_: int) -> int:
        """The inverse of ``local`` for a line of slice ``slice_``: its address on the HBM port."""
        lo, sb = self.slice_shift, self.slice_bits
        return (local >> lo << (lo + sb)) | (slice_ << lo) | (local & ((1 << lo) - 1))

    @classmethod
    def of(cls, cfg) -> "L3Timing":
        c = cfg.l3
        B = cfg.beat_bytes
        if c.line_bytes % B:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed: must be a multiple of beat_bytes ({B})")
        if c.line_bytes > BOUNDARY_BYTES or c.line_bytes // B > MAX_INCR_BEATS:
            raise ValueError(f"l3.line_bytes: {c.line_bytes} is not allowed by the RTL cache: must be <= "
                             f"{BOUNDARY_BYTES} and <= {MAX_INCR_BEATS} beats (one AXI burst per line)")
        hit = cfg.l3_hit_cycles
        if hit < MIN_HIT_CYCLES:
            raise ValueError(f"l3.hit_cycles: {hit} is not allowed by the RTL cache: must be >= "
                             f"{MIN_HIT_CYCLES} (its shortest AR-to-RVALID path)")
        out = cfg.memory.outstanding
        slices = cfg.memory.ports
        sets = c.sets // slices
        if sets < c.banks:
            raise ValueError(f"l3.bytes: {c.bytes} is too small for {slices} slices (memory.ports): each must hold "
                             f"one set per bank ({c.banks})")
        return cls(line_beats=c.line_bytes // B, sets=sets, ways=c.ways, mshrs=c.mshrs, hit_cycles=hit,
                   hit_delay=hit - MIN_HIT_CYCLES, line_queue=max(2 * c.mshrs, 4),
                   request_fifo=2 * out, w_fifo=2 * out * cfg.memory.burst_beats, response_fifo=4, banks=c.banks,
                   init_cycles=sets // c.banks, pending_writes=max(2 * c.mshrs, 4), slices=slices,
                   slice_shift=cfg.memory.interleave_bytes.bit_length() - 1)
