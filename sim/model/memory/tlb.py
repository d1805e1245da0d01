"""The TLB model and burst splitting of paged tensors; the formats they use live in ``hwgen/spec/page_table.py``.

The entry format (``PTE``), the table in memory (``PageTable``) and the allocator (``PageAllocator``) are
hardware formats, written once in ``hwgen.spec.page_table`` and re-exported here. This module adds the timing-free
model of the TLB (``Tlb``, which the RTL ``hwgen/rtl/memory/tlb.py`` matches access for access) and the split of a
virtual burst into physical ones (``translate_burst``). The cycle-exact TLB of the DMA path, built on
``Tlb``, is ``sim.model.memory.dma``.

TLB (``Tlb``)
-------------
``entries`` translations in ``entries // ways`` sets of ``ways`` (set = ``vpn % sets``; ``ways = entries``,
one set, is fully associative, the default of ``Tlb.of(cfg, ...)`` with ``memory.tlb_sets = 1``). LRU within a
set: a hit makes the entry most recently used; a miss walks the table (one PTE read at
``table.entry_address(vpn)``), and if the entry is valid fills it, evicting the least recently used entry of
the set when the set is full. An invalid entry is not filled (the fault is raised on every access). A
permission fault is raised after the lookup (hit or fill). An access beyond the table (``vpn >=
num_entries``) counts as a miss and a fault but is not a walk: the table has no entry to read (the RTL
decides it from ``table_entries`` alone), so ``walks`` = misses - those accesses. Each walk costs
``miss_penalty`` cycles in ``walk_cycles`` (a stand-in for timing-free use; ``sim.model.memory.dma`` times the walk
as the PTE read it is, over ``HbmPorts``; the default, 30, stands in for one 8-byte read from a closed HBM
row at the default config: tRCD + tCL + data = 29 cycles at 1 GHz, plus one for the fill). The TLB is not
coherent with the table: after ``free`` / a new table, ``flush()`` (or ``invalidate``).

Bursts
------
``translate_burst(translator, vaddr, nbytes)`` cuts a virtual burst at every page boundary and translates the
first byte of each piece (one TLB lookup per page touched): the physical bursts never cross a page and
cover every byte exactly once, in address order; adjacent pieces are never merged, even when their physical
pages happen to be consecutive. Pages are multiples of 4 KiB, so the cuts fall on 4 KiB boundaries and
splitting each physical burst further by the AXI4 rule (no burst crosses 4 KiB, ``hwgen.spec.axi.plan``)
gives the same bursts as splitting the virtual burst at 4 KiB first; a burst inside one page may still cross
4 KiB (``boundary=4096`` cuts there too).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

from hwgen.spec.config import HwConfig
from hwgen.spec.page_table import (
    PageFault,
    PageTable,
    _check_pow2,
)

# ---------------------------------------------------------------------------------------------------
# the TLB

DEFAULT_MISS_PENALTY = 30   # cycles per walk: a stand-in until the memory model answers the PTE read


class Tlb:
    """Set-associative (default: fully associative) LRU TLB in front of ``table`` (see the module docstring)."""

    def __init__(self, table: PageTable, entries: int = 32, ways: int | None = None,
                 miss_penalty: int = DEFAULT_MISS_PENALTY, record_walks: bool = False):
        self.entries = _check_pow2("entries", entries, 1, 1024)
        self.ways = self.entries if ways is None else _check_pow2("ways", ways, 1, self.entries)
        if not isinstance(miss_penalty, int) or miss_penalty < 0:
            raise ValueError(f"miss_penalty: {miss_penalty!r} is not allowed: must be an integer >= 0 (cycles)")
        self.sets = self.entries // self.ways
        self.miss_penalty = miss_penalty
        self.table = table
        self.page_bytes = table.page_bytes
        self.page_shift = table.page_shift
        self.walk_log: list[int] | None = [] if record_walks else None
        self.flush()
        self.reset_stats()

    @classmethod
    def of(cls, cfg: HwConfig, table: PageTable, miss_penalty: int = DEFAULT_MISS_PENALTY,
           record_walks: bool = False) -> Tlb:
        if table.page_bytes != cfg.memory.page_bytes:
            raise ValueError(f"page table: page_bytes {table.page_bytes} differs from memory.page_bytes "
                             f"({cfg.memory.page_bytes})")
        return cls(table, cfg.memory.tlb_entries, cfg.memory.tlb_ways, miss_penalty, record_walks)

    def flush(self) -> None:
        """Drop every translation (after the table changed)."""
        self._sets: list[OrderedDict[int, tuple[int, int, int]]] = [OrderedDict() for _ in range(self.sets)]

    def invalidate(self, vpn: int) -> None:
        self._sets[vpn & (self.sets - 1)].pop(vpn, None)

    def reset_stats(self) -> None:
        self._hits = self._misses = self._walks = self._evictions = self._faults = 0

    def contents(self) -> list[list[int]]:
        """The vpns held, per set, least recently used first."""
        return [list(s) for s in self._sets]

    def _lookup(self, vpn: int, vaddr: int, write: bool) -> tuple[int, bool]:
        """(ppn, hit) for one access; updates LRU and counters; faults raise."""
        s = self._sets[vpn & (self.sets - 1)]
        got = s.get(vpn)
        if got is not None:
            s.move_to_end(vpn)
            self._hits += 1
            hit = True
        else:
            self._misses += 1
            hit = False
            if not 0 <= vpn < self.table.num_entries:      # no entry to read: a fault, not a walk
                self._faults += 1
                self.table.walk(vpn)                        # raises the "outside" PageFault
            self._walks += 1
            if self.walk_log is not None:
                self.walk_log.append(self.table.entry_address(vpn))
            e = self.table.walk(vpn)
            if not e["valid"]:
                self._faults += 1
                raise PageFault(vaddr, "unmapped", f"vaddr 0x{vaddr:x} (page {vpn}): not mapped (valid = 0)")
            if len(s) >= self.ways:
                s.popitem(last=False)
                self._evictions += 1
            got = s[vpn] = (e["ppn"], e["read"], e["write"])
        ppn, r, w = got
        if not (w if write else r):
            self._faults += 1
            raise PageFault(vaddr, "permission", f"vaddr 0x{vaddr:x} (page {vpn}): "
                                                 f"{'write' if write else 'read'} not allowed")
        return ppn, hit

    def access(self, vaddr: int, write: bool = False) -> tuple[int, str, str | None]:
        """One access as the RTL answers it: (physical address or 0, kind, fault reason or None), where kind is
        "hit", "walk" (a miss that reads the table) or "outside" (a miss beyond the table: no walk)."""
        vaddr = int(vaddr)
        walks, hits = self._walks, self._hits
        try:
            paddr, _ = self.translate(vaddr, write)
            reason = None
        except PageFault as e:
            paddr, reason = 0, e.reason
        kind = "hit" if self._hits > hits else "walk" if self._walks > walks else "outside"
        return paddr, kind, reason

    def translate(self, vaddr: int, write: bool = False) -> tuple[int, bool]:
        """(physical address, hit) of one access."""
        vaddr = int(vaddr)
        if vaddr < 0:
            raise PageFault(vaddr, "outside", f"vaddr {vaddr}: negative")
        ppn, hit = self._lookup(vaddr >> self.page_shift, vaddr, write)
        return (ppn << self.page_shift) | (vaddr & (self.page_bytes - 1)), hit

    def translate_many(self, vaddrs: Any, write: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``translate`` of a stream, in order: (physical addresses, hits). Accesses that stay in
        the page of the previous access are hits without changing LRU order (that page is already the most
        recently used), so only the page changes go through the lookup loop."""
        va = np.asarray(vaddrs, dtype=np.int64).reshape(-1)
        if va.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        if (va < 0).any():
            raise PageFault(int(va[va < 0][0]), "outside", f"vaddr {int(va[va < 0][0])}: negative")
        vpn = va >> self.page_shift
        first = np.flatnonzero(np.concatenate(([True], vpn[1:] != vpn[:-1])))
        ppn = np.empty(len(first), dtype=np.int64)
        hit = np.ones(len(va), dtype=bool)
        counts = np.diff(np.append(first, len(va)))
        for i, (j, c) in enumerate(zip(first.tolist(), counts.tolist(), strict=True)):
            ppn[i], hit[j] = self._lookup(int(vpn[j]), int(va[j]), write)
            self._hits += c - 1
        return (np.repeat(ppn, counts) << self.page_shift) | (va & (self.page_bytes - 1)), hit

    @property
    def stats(self) -> dict[str, Any]:
        lookups = self._hits + self._misses
        return {
            "entries": self.entries,
            "ways": self.ways,
            "sets": self.sets,
            "lookups": lookups,
            "hits": self._hits,
            "misses": self._misses,
            "miss_rate": self._misses / lookups if lookups else 0.0,
            "walks": self._walks,
            "walk_cycles": self._walks * self.miss_penalty,
            "evictions": self._evictions,
            "faults": self._faults,
        }


# ---------------------------------------------------------------------------------------------------
# bursts

class Burst(NamedTuple):
    """One physical burst: ``nbytes`` from ``paddr``, the bytes of ``vaddr..vaddr+nbytes-1``."""

    paddr: int
    nbytes: int
    vaddr: int


def split_at(vaddr: Any, nbytes: Any, boundary: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut bursts (broadcast arrays) at every multiple of ``boundary``: (index of the burst each piece comes
    from, piece start, piece bytes), pieces in burst order then address order."""
    if boundary < 1 or boundary & (boundary - 1):
        raise ValueError(f"boundary: {boundary} is not allowed: must be a power of two")
    va, nb = (a.reshape(-1) for a in np.broadcast_arrays(np.asarray(vaddr, dtype=np.int64),
                                                         np.asarray(nbytes, dtype=np.int64)))
    if (nb < 1).any() or (va < 0).any():
        k = int(np.flatnonzero((nb < 1) | (va < 0))[0])
        raise ValueError(f"burst {k}: vaddr {int(va[k])}, {int(nb[k])} bytes is not allowed: need vaddr >= 0 "
                         f"and bytes >= 1")
    shift = boundary.bit_length() - 1
    count = ((va + nb - 1) >> shift) - (va >> shift) + 1
    src = np.repeat(np.arange(len(va)), count)
    starts = np.cumsum(count) - count
    k = np.arange(int(count.sum())) - starts[src]                 # piece number within its burst
    lo = np.where(k == 0, va[src], ((va[src] >> shift) + k) << shift)
    hi = np.minimum(((lo >> shift) + 1) << shift, va[src] + nb[src])
    return src, lo, hi - lo


def translate_burst(translator: PageTable | Tlb, vaddr: int, nbytes: int, write: bool = False,
                    boundary: int | None = None) -> list[Burst]:
    """The physical bursts of one virtual burst, cut at page boundaries (and at ``boundary`` too if it is
    smaller, e.g. 4096 for the AXI4 rule); with a ``Tlb``, one lookup per piece."""
    cut = translator.page_bytes if boundary is None else min(translator.page_bytes, boundary)
    _, lo, n = split_at(vaddr, nbytes, cut)
    if isinstance(translator, Tlb):
        paddr, _ = translator.translate_many(lo, write)
    else:
        paddr = translator.translate_many(lo, write)
    return [Burst(int(p), int(b), int(v)) for p, b, v in zip(paddr.tolist(), n.tolist(), lo.tolist(), strict=True)]


__all__ = ["DEFAULT_MISS_PENALTY", "Burst", "Tlb", "split_at", "translate_burst"]
