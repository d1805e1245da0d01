"""Paged tensors in hardware terms, written once: the page-table entry format, the table as it sits in HBM,
and the page-fault codes the DMA units report. The allocator that places tensors in pages is the compiler's
(``hwgen/compiler/page_allocator.py``).

The RTL TLB (``hwgen/rtl/memory/tlb.py``) decodes entries with ``PTE`` and reads the table at
``PageTable.entry_address``; the simulator's TLB model (``sim/model/memory/tlb.py``) translates with
``PageTable``. Sizes come from ``HwConfig.memory``: ``page_bytes`` (default 64 KiB), ``tlb_entries``,
``tlb_sets``.

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
"""
from __future__ import annotations

import enum
from typing import Any

import numpy as np

from hwgen.spec.fields import Field, FieldTable

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


class Fault(enum.IntEnum):
    """The fault code a DMA unit's TLB reports; the values are the hardware encoding (``FAULT_BITS`` bits)."""

    NONE = 0
    UNMAPPED = 1      # entry valid bit 0 (PageFault reason "unmapped")
    PERMISSION = 2    # read / write bit 0 for this access ("permission")
    OUTSIDE = 3       # vpn >= table_entries ("outside")


FAULT_BITS = 2
FAULT_OF_REASON = {"unmapped": Fault.UNMAPPED, "permission": Fault.PERMISSION, "outside": Fault.OUTSIDE}

#: the engine's ``page_fault`` output: the Fault of each DMA unit, ``FAULT_BITS`` each, LSB-first in this order
#: (LOAD in bits 0-1, STORE in bits 2-3), held until reset; any nonzero field halts the engine
PAGE_FAULT_UNITS = ("load", "store")


def decode_page_fault(value: int) -> dict[str, str]:
    """The ``page_fault`` output read as an int -> {"load": Fault name, "store": Fault name}."""
    mask = (1 << FAULT_BITS) - 1
    return {unit: Fault((int(value) >> (i * FAULT_BITS)) & mask).name for i, unit in enumerate(PAGE_FAULT_UNITS)}


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
