"""The allocator that places tensors in pages (the compilers use it; the format of the table it writes is
``hwgen.spec.page_table``).

Allocator (``PageAllocator``)
-----------------------------
Physical pool ``[base, base + physical_bytes)`` of ``physical_bytes // page_bytes`` pages. A tensor of
``n`` bytes gets ``ceil(n / page_bytes)`` pages: contiguous in virtual space (first fit: the lowest free
run of virtual pages long enough; the tensor starts on a page boundary) and, in physical space, the first
pages of the free list. Free list: without ``seed``, lowest page number first (a freed page is reused
before any higher one); with ``seed``, the pages start in a random order drawn once from the seed
(scattered, to exercise translation) and freed pages go back to the head of the list in tensor order,
so they are reused first. Both are deterministic. The virtual space has ``virtual_bytes // page_bytes``
pages, by default twice the physical pages (virtual holes left by ``free`` then rarely refuse a tensor
whose pages are free).

Fragmentation (``PageAllocator.fragmentation()``), over the live tensors:

- ``internal = (allocated_bytes - requested_bytes) / allocated_bytes``: the bytes wasted in the last page of
  each tensor over the bytes of the pages they own (``allocated_bytes = pages x page_bytes``); 0.0 when
  nothing is allocated.
- ``external = 1 - largest_free_run / free_pages``: physical free pages that are not in the longest run of
  consecutive free physical pages; 0.0 when no page is free (or all free pages are one run). Paging makes a
  tensor fit whenever enough pages are free, so this costs no capacity; it measures how scattered the free
  memory (and so the next tensor's pages, and its bursts) is.
- ``virtual_external``: the same over the virtual pages.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwgen.spec.config import HwConfig
from hwgen.spec.page_table import PPN_LIMIT, PTE, PTE_BYTES, PageFault, PageTable, pack_pte


@dataclass(frozen=True)
class Tensor:
    """Where a tensor lives: ``nbytes`` from ``vaddr`` (page-aligned), virtual pages ``vpn..vpn+pages-1``
    mapped in order onto the physical pages ``ppns``."""

    name: str
    nbytes: int
    vaddr: int
    vpn: int
    ppns: tuple[int, ...]
    writable: bool
    page_bytes: int

    @property
    def pages(self) -> int:
        return len(self.ppns)

    @property
    def alloc_bytes(self) -> int:
        return self.pages * self.page_bytes

    @property
    def waste_bytes(self) -> int:
        """Bytes of the last page the tensor does not use."""
        return self.alloc_bytes - self.nbytes

    @property
    def end(self) -> int:
        """One past the last virtual byte."""
        return self.vaddr + self.nbytes


def _free_runs(used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of False in ``used``."""
    free = np.concatenate(([0], (~used).astype(np.int8), [0]))
    edges = np.diff(free)
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


class PageAllocator:
    """Places named tensors in pages of ``cfg.memory.page_bytes`` (see the module docstring)."""

    def __init__(self, cfg: HwConfig, physical_bytes: int, *, base: int = 0, virtual_bytes: int | None = None,
                 seed: int | None = None):
        self.page_bytes = cfg.memory.page_bytes
        pb = self.page_bytes
        if not isinstance(physical_bytes, int) or physical_bytes < pb or physical_bytes % pb:
            raise ValueError(f"physical_bytes: {physical_bytes!r} is not allowed: must be a positive multiple of "
                             f"page_bytes ({pb})")
        if not isinstance(base, int) or base < 0 or base % pb:
            raise ValueError(f"base: {base!r} is not allowed: must be >= 0 and a multiple of page_bytes ({pb})")
        if virtual_bytes is None:
            virtual_bytes = 2 * physical_bytes
        if not isinstance(virtual_bytes, int) or virtual_bytes < pb or virtual_bytes % pb:
            raise ValueError(f"virtual_bytes: {virtual_bytes!r} is not allowed: must be a positive multiple of "
                             f"page_bytes ({pb})")
        self.base = base
        self.first_ppn = base // pb
        self.physical_pages = physical_bytes // pb
        self.virtual_pages = virtual_bytes // pb
        if self.first_ppn + self.physical_pages > PPN_LIMIT:
            raise ValueError(f"physical_bytes: pages up to {self.first_ppn + self.physical_pages} do not fit the "
                             f"{PTE.mask['ppn'].bit_length()}-bit ppn of an entry")
        self.seed = seed
        if seed is None:
            self._free: list[int] | deque[int] = list(range(self.physical_pages))   # a heap: lowest first
        else:
            order = np.random.default_rng(seed).permutation(self.physical_pages)
            self._free = deque(int(p) for p in order)
        self._used = np.zeros(self.physical_pages, dtype=bool)      # pool-relative physical pages
        self._vused = np.zeros(self.virtual_pages, dtype=bool)
        self._tensors: dict[str, Tensor] = {}

    # ---- placement ----
    def alloc(self, name: str, nbytes: int, *, writable: bool = True) -> Tensor:
        if not isinstance(name, str) or not name:
            raise ValueError(f"tensor name: {name!r} is not allowed: must be a non-empty string")
        if name in self._tensors:
            t = self._tensors[name]
            raise ValueError(f"tensor {name!r}: already allocated ({t.nbytes} bytes at vaddr 0x{t.vaddr:x}); "
                             f"free it first")
        if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes < 1:
            raise ValueError(f"tensor {name!r}: size {nbytes!r} bytes is not allowed: must be an integer >= 1")
        nbytes = int(nbytes)
        pb = self.page_bytes
        pages = -(-nbytes // pb)
        if pages > len(self._free):
            raise MemoryError(f"tensor {name!r}: {nbytes} bytes need {pages} pages of {pb} bytes, but only "
                              f"{len(self._free)} of {self.physical_pages} physical pages are free "
                              f"({len(self._free) * pb} bytes)")
        starts, lengths = _free_runs(self._vused)
        fit = np.flatnonzero(lengths >= pages)
        if not fit.size:
            largest = int(lengths.max()) if lengths.size else 0
            raise MemoryError(f"tensor {name!r}: {nbytes} bytes need {pages} consecutive virtual pages of {pb} "
                              f"bytes, but the largest free virtual run is {largest} of {self.virtual_pages} pages")
        vpn = int(starts[fit[0]])
        if self.seed is None:
            rel = [heapq.heappop(self._free) for _ in range(pages)]
        else:
            rel = [self._free.popleft() for _ in range(pages)]
        self._used[rel] = True
        self._vused[vpn:vpn + pages] = True
        t = Tensor(name=name, nbytes=nbytes, vaddr=vpn * pb, vpn=vpn, ppns=tuple(self.first_ppn + p for p in rel),
                   writable=bool(writable), page_bytes=pb)
        self._tensors[name] = t
        return t

    def free(self, name: str) -> None:
        t = self._tensors.pop(name, None)
        if t is None:
            have = ", ".join(self._tensors) or "none"
            raise KeyError(f"tensor {name!r}: not allocated (allocated: {have})")
        rel = [p - self.first_ppn for p in t.ppns]
        self._used[rel] = False
        self._vused[t.vpn:t.vpn + t.pages] = False
        if self.seed is None:
            for p in rel:
                heapq.heappush(self._free, p)
        else:
            self._free.extendleft(reversed(rel))

    @property
    def tensors(self) -> dict[str, Tensor]:
        """The live tensors by name (a copy), in allocation order."""
        return dict(self._tensors)

    def __getitem__(self, name: str) -> Tensor:
        return self._tensors[name]

    @property
    def free_pages(self) -> int:
        return len(self._free)

    # ---- the mapping ----
    def mapping(self) -> dict[int, tuple[int, bool]]:
        """vpn -> (ppn, writable) of every mapped page."""
        return {t.vpn + i: (p, t.writable) for t in self._tensors.values() for i, p in enumerate(t.ppns)}

    def translate(self, vaddr: int) -> int:
        """The reference translation, from the tensors (not the table); unmapped -> PageFault."""
        vpn, off = divmod(int(vaddr), self.page_bytes)
        for t in self._tensors.values():
            if t.vpn <= vpn < t.vpn + t.pages:
                return t.ppns[vpn - t.vpn] * self.page_bytes + off
        raise PageFault(int(vaddr), "unmapped", f"vaddr 0x{int(vaddr):x} (page {vpn}): no tensor there")

    def page_table(self, base: int | None = None) -> PageTable:
        """The table of the whole virtual space, placed at physical ``base`` (default: right after the pool).
        Read-only tensors get write = 0; unmapped pages are all-zero entries."""
        size = self.virtual_pages * PTE_BYTES
        pool_lo, pool_hi = self.base, self.base + self.physical_pages * self.page_bytes
        if base is None:
            base = pool_hi
        if base < pool_hi and base + size > pool_lo:
            raise ValueError(f"page table base: 0x{base:x} is not allowed: the table "
                             f"(0x{base:x}..0x{base + size:x}) overlaps the page pool (0x{pool_lo:x}..0x{pool_hi:x})")
        words = np.zeros(self.virtual_pages, dtype=np.uint64)
        for t in self._tensors.values():
            flags = pack_pte(valid=1, read=1, write=int(t.writable))
            words[t.vpn:t.vpn + t.pages] = (np.array(t.ppns, dtype=np.uint64) << np.uint64(PTE.shift["ppn"])) \
                | np.uint64(flags)
        return PageTable.from_entries(words, self.page_bytes, base)

    # ---- report ----
    def fragmentation(self) -> dict[str, Any]:
        """Occupancy and fragmentation of the live tensors (definitions in the module docstring)."""
        requested = sum(t.nbytes for t in self._tensors.values())
        used_pages = int(self._used.sum())
        allocated = used_pages * self.page_bytes
        free_pages = self.physical_pages - used_pages
        _, lengths = _free_runs(self._used)
        largest = int(lengths.max()) if lengths.size else 0
        _, vlengths = _free_runs(self._vused)
        vfree = self.virtual_pages - int(self._vused.sum())
        vlargest = int(vlengths.max()) if vlengths.size else 0
        return {
            "page_bytes": self.page_bytes,
            "tensors": len(self._tensors),
            "physical_pages": self.physical_pages,
            "used_pages": used_pages,
            "free_pages": free_pages,
            "requested_bytes": requested,
            "allocated_bytes": allocated,
            "internal_waste_bytes": allocated - requested,
            "internal": (allocated - requested) / allocated if allocated else 0.0,
            "free_runs": int(lengths.size),
            "largest_free_run": largest,
            "external": 1 - largest / free_pages if free_pages else 0.0,
            "virtual_pages": self.virtual_pages,
            "virtual_free_pages": vfree,
            "virtual_largest_free_run": vlargest,
            "virtual_external": 1 - vlargest / vfree if vfree else 0.0,
        }
