"""Paged tensors in hardware terms, written once: the page-table entry format, the table as it sits in HBM,
and the allocator that places tensors in pages (the compiler, ``hwgen.tiling``, uses it).

The RTL TLB (``hwgen/tlb.py``) decodes entries with ``PTE`` and reads the table at ``PageTable.entry_address``;
the simulator's TLB model (``sim/memory/paging.py``) translates with ``PageTable``. Sizes come from
``HwConfig.memory``: ``page_bytes`` (default 64 KiB), ``tlb_entries``, ``tlb_sets``. No Amaranth is imported
here (``pte_layout`` imports it lazily).

Page-table entry (``PTE``, one field table; packers and the Amaranth layout are derived from it)
----------------------------------------------------------------------------------------------
``PTE_BITS`` = 64 bits, stored little-endian in ``PTE_BYTES`` = 8 bytes; fields are packed LSB-first in
table order (valid is bit 0, read bit 1, write bit 2, ppn bits 3..42; bits 43..63 are zero). The hardware
decodes exactly these fields: ``valid`` = 0 is a page fault whatever the other bits hold; ``read`` /
``write`` = 0 make a DMA read / write of the page a permission fault; the physical address of virtual
address ``va`` is ``ppn * page_bytes + va % page_bytes``.

Page table (``PageTable``)
--------------------------
One level, linear: entry ``vpn`` (virtual page number ``va // page_bytes``) sits at physical address
``base + vpn * PTE_BYTES``; the table has one entry per page of the virtual space (``num_entries``), so a
walk is one 8-byte read. Virtual addresses at or beyond ``num_entries * page_bytes`` are a fault (decided
without reading the table). What the hardware needs: ``base``, ``num_entries`` (the engine's
``page_table_base`` / ``page_table_entries`` inputs), ``log2(page_bytes)`` (the config); ``PageTable.image``
is the bytes to write at ``base``, and every translation here decodes those bytes (nothing else), so a table
read back from a device translates the same (``PageTable.in_image`` reads one out of an HBM image).

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

from .config import HwConfig
from .fields import Field, FieldTable

# ---------------------------------------------------------------------------------------------------
# page-table entry: the one field table


PTE_BITS = 64                       # one entry in memory; bits above the table are zero
PTE = FieldTable("pte", width=PTE_BITS, word="entry", fields=(
    Field("valid", 1, "1: the entry maps a page; 0: page fault (the other fields are ignored)"),
    Field("read", 1, "1: DMA may read the page (loads into L1); 0: a read is a permission fault"),
    Field("write", 1, "1: DMA may write the page (stores from L1); 0: a write is a permission fault"),
    Field("ppn", 40, "physical page number: physical address = ppn * page_bytes + offset in the page"),
))
PTE_BYTES = PTE.bytes
PPN_LIMIT = 1 << PTE.fields[-1].bits   # physical pages the format can name
pte_layout = PTE.layout
pack_pte = PTE.pack
unpack_pte = PTE.unpack
pte_field = PTE.field


# ---------------------------------------------------------------------------------------------------
# faults

class PageFault(Exception):
    """A translation the hardware refuses: ``reason`` is "unmapped", "outside" or "permission"."""

    def __init__(self, vaddr: int, reason: str, message: str):
        self.vaddr = vaddr
        self.reason = reason
        super().__init__(message)


def _check_pow2(name: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low or value > high \
            or value & (value - 1):
        raise ValueError(f"{name}: {value!r} is not allowed: must be a power of two in [{low}, {high}]")
    return int(value)


# ---------------------------------------------------------------------------------------------------
# the page table as it sits in memory

class PageTable:
    """A linear table of ``num_entries`` packed entries at physical ``base`` (see the module docstring)."""

    def __init__(self, image: bytes, page_bytes: int, base: int = 0):
        self.page_bytes = _check_pow2("page_bytes", page_bytes, 4096, 1 << 30)
        self.page_shift = self.page_bytes.bit_length() - 1
        if len(image) == 0 or len(image) % PTE_BYTES:
            raise ValueError(f"page table: {len(image)} bytes is not allowed: must be a positive multiple of "
                             f"{PTE_BYTES} (one entry)")
        if base < 0 or base % PTE_BYTES:
            raise ValueError(f"page table base: 0x{base:x} is not allowed: must be >= 0 and a multiple of "
                             f"{PTE_BYTES}")
        self.base = int(base)
        self._image = bytes(image)
        self.entries = np.frombuffer(self._image, dtype="<u8")     # read-only view of the image

    @classmethod
    def from_entries(cls, words: Any, page_bytes: int, base: int = 0) -> PageTable:
        return cls(np.asarray(words, dtype="<u8").tobytes(), page_bytes, base)

    @classmethod
    def in_image(cls, image: Any, base: int, num_entries: int, page_bytes: int) -> PageTable:
        """The table of ``num_entries`` entries at physical ``base`` of an HBM image (bytes or uint8 array), as
        the hardware finds it from ``page_table_base`` / ``page_table_entries``."""
        blob = np.asarray(memoryview(image).cast("B"))[base:base + num_entries * PTE_BYTES]
        if num_entries < 1 or len(blob) != num_entries * PTE_BYTES:
            raise ValueError(f"page table: {num_entries} entries at 0x{base:x} do not fit in the "
                             f"{len(memoryview(image).cast('B'))}-byte image")
        return cls(blob.tobytes(), page_bytes, base)

    def pieces(self, vaddr: int, nbytes: int, write: bool = False) -> list[tuple[int, int, int]]:
        """(physical address, bytes, offset in the range) of each page-bounded piece of ``nbytes`` from ``vaddr``;
        a fault raises ``PageFault``."""
        out, at = [], 0
        while at < nbytes:
            va = vaddr + at
            n = min(nbytes - at, self.page_bytes - va % self.page_bytes)
            out.append((self.translate(va, write), n, at))
            at += n
        return out

    def read(self, image: Any, vaddr: int, nbytes: int) -> bytes:
        """``nbytes`` of virtual memory from ``vaddr``, gathered from the physical pages of ``image``."""
        mem = memoryview(image).cast("B")
        return b"".join(bytes(mem[p:p + n]) for p, n, _ in self.pieces(vaddr, nbytes))

    def write(self, image: Any, vaddr: int, blob: bytes, check: bool = True) -> None:
        """Scatter ``blob`` to virtual ``vaddr`` in ``image`` (``check``: the pages must be writable)."""
        mem = memoryview(image).cast("B")
        for p, n, at in self.pieces(vaddr, len(blob), write=check):
            mem[p:p + n] = blob[at:at + n]

    @property
    def image(self) -> bytes:
        """The bytes to write at ``base`` (entry ``vpn`` at offset ``vpn * PTE_BYTES``, little-endian)."""
        return self._image

    @property
    def num_entries(self) -> int:
        return len(self.entries)

    @property
    def size_bytes(self) -> int:
        return len(self._image)

    @property
    def virtual_bytes(self) -> int:
        return self.num_entries * self.page_bytes

    def entry_address(self, vpn: int) -> int:
        """Physical address of the entry a walk for ``vpn`` reads."""
        return self.base + int(vpn) * PTE_BYTES

    def walk(self, vpn: int) -> dict[str, int]:
        """The decoded entry of ``vpn`` (what one table walk reads); outside the table -> PageFault."""
        if not 0 <= vpn < self.num_entries:
            va = int(vpn) << self.page_shift
            raise PageFault(va, "outside", f"vaddr 0x{va:x} (page {vpn}): outside the page table "
                                           f"({self.num_entries} pages, {self.virtual_bytes} bytes)")
        return unpack_pte(int(self.entries[vpn]))

    def _check(self, vaddr: int, entry: dict[str, int], write: bool) -> None:
        vpn = vaddr >> self.page_shift
        if not entry["valid"]:
            raise PageFault(vaddr, "unmapped", f"vaddr 0x{vaddr:x} (page {vpn}): not mapped (valid = 0)")
        need = "write" if write else "read"
        if not entry[need]:
            raise PageFault(vaddr, "permission", f"vaddr 0x{vaddr:x} (page {vpn}): {need} not allowed")

    def translate(self, vaddr: int, write: bool = False) -> int:
        """Physical address of one virtual address, from the table's bytes."""
        vaddr = int(vaddr)
        if vaddr < 0:
            raise PageFault(vaddr, "outside", f"vaddr {vaddr}: negative")
        entry = self.walk(vaddr >> self.page_shift)
        self._check(vaddr, entry, write)
        return (entry["ppn"] << self.page_shift) | (vaddr & (self.page_bytes - 1))

    def translate_many(self, vaddrs: Any, write: bool = False) -> np.ndarray:
        """Vectorised ``translate`` (int64 array in, int64 array out); the first faulting address raises."""
        va = np.asarray(vaddrs, dtype=np.int64)
        vpn = va >> self.page_shift
        bad = np.flatnonzero((va < 0) | (vpn >= self.num_entries))
        if bad.size:
            self.translate(int(va.reshape(-1)[bad[0]]), write)       # raises with the message
        words = self.entries[vpn]
        ok = (pte_field(words, "valid") == 1) & (pte_field(words, "write" if write else "read") == 1)
        if not ok.all():
            self.translate(int(va[~ok].reshape(-1)[0]), write)        # raises with the message
        return (pte_field(words, "ppn") << self.page_shift) | (va & (self.page_bytes - 1))


# ---------------------------------------------------------------------------------------------------
# the allocator

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


__all__ = ["PPN_LIMIT", "PTE", "PTE_BITS", "PTE_BYTES", "PageAllocator", "PageFault", "PageTable", "Tensor",
           "pack_pte", "pte_field", "pte_layout", "unpack_pte"]
