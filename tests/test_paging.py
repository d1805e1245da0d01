"""Paged tensors: entry format, allocator, fragmentation, page table (hwgen/spec/page_table.py); TLB model and bursts
(sim/model/memory/tlb.py)."""
from itertools import pairwise

import numpy as np
import pytest

from hwgen.compiler.page_allocator import PageAllocator
from hwgen.rtl.signatures import pte_layout
from hwgen.spec import config
from hwgen.spec.page_table import PTE, PTE_BITS, PTE_BYTES, PageFault, PageTable, pack_pte, pte_field, unpack_pte
from sim.model.memory.tlb import Burst, Tlb, split_at, translate_burst

P4K = config.from_dict({"memory": {"page_bytes": 4096}})
DEFAULT = config.load("default")


def alloc4k(pages: int = 16, **kw) -> PageAllocator:
    return PageAllocator(P4K, pages * 4096, **kw)


# ---- config ----------------------------------------------------------------------------------------

def test_config_fields():
    m = DEFAULT.memory
    assert (m.page_bytes, m.tlb_entries, m.tlb_sets, m.tlb_ways) == (65536, 32, 1, 32)
    for bad, line in [
        ({"page_bytes": 2048}, "memory.page_bytes: 2048 is not allowed: must be a power of two in [4096, 1073741824]"),
        ({"page_bytes": 12288}, "memory.page_bytes: 12288 is not allowed: must be a power of two in [4096, "
                                "1073741824]"),
        ({"tlb_entries": 3}, "memory.tlb_entries: 3 is not allowed: must be a power of two in [1, 1024]"),
        ({"tlb_entries": 2048}, "memory.tlb_entries: 2048 is not allowed: must be a power of two in [1, 1024]"),
        ({"tlb_entries": 4, "tlb_sets": 8}, "memory.tlb_sets: 8 is not allowed: must be <= tlb_entries (4)"),
    ]:
        with pytest.raises(config.ConfigError) as err:
            config.from_dict({"memory": bad})
        assert err.value.problems == [line]
    assert config.from_dict({"memory": {"tlb_entries": 64, "tlb_sets": 4}}).memory.tlb_ways == 16


# ---- entry format ----------------------------------------------------------------------------------

def test_pte_round_trip_and_layout():
    assert [(f.name, f.bits) for f in PTE] == [("valid", 1), ("read", 1), ("write", 1), ("ppn", 40)]
    rng = np.random.default_rng(1)
    for _ in range(200):
        fields = {f.name: int(rng.integers(0, 1 << f.bits)) for f in PTE}
        word = pack_pte(**fields)
        assert 0 <= word < (1 << PTE_BITS)
        assert unpack_pte(word) == fields
        for f in PTE:
            assert int(pte_field(np.array([word], dtype=np.uint64), f.name)[0]) == fields[f.name]
    assert pack_pte(valid=1) == 1 and pack_pte(read=1) == 2 and pack_pte(write=1) == 4 and pack_pte(ppn=1) == 8
    assert unpack_pte(0) == {"valid": 0, "read": 0, "write": 0, "ppn": 0}
    layout = pte_layout()
    assert layout.size == sum(f.bits for f in PTE)
    assert [name for name, _ in layout] == [f.name for f in PTE]


def test_pte_field_errors():
    with pytest.raises(ValueError, match=r"^pte.ppn: 1099511627776 does not fit in 40 unsigned bits "
                                         r"\(allowed: 0..1099511627775\)$"):
        pack_pte(valid=1, ppn=1 << 40)
    with pytest.raises(ValueError, match=r"^pte.valid: 2 does not fit in 1 unsigned bits \(allowed: 0..1\)$"):
        pack_pte(valid=2)
    with pytest.raises(ValueError, match=r"pte.write: -1 does not fit"):
        pack_pte(write=-1)
    with pytest.raises(ValueError, match=r"pte: unknown field\(s\) \['dirty'\] \(allowed: valid, read, write, ppn\)"):
        pack_pte(dirty=1)
    with pytest.raises(ValueError, match="is not a 64-bit entry"):
        unpack_pte(1 << 64)


# ---- allocator -------------------------------------------------------------------------------------

def test_placement_lowest_first():
    a = alloc4k()
    x = a.alloc("x", 5000)
    y = a.alloc("y", 4096, writable=False)
    z = a.alloc("z", 1)
    assert (x.vaddr, x.pages, x.ppns, x.waste_bytes) == (0, 2, (0, 1), 3192)
    assert (y.vaddr, y.ppns, y.writable, y.waste_bytes) == (2 * 4096, (2,), False, 0)
    assert (z.vaddr, z.ppns, z.end) == (3 * 4096, (3,), 3 * 4096 + 1)
    assert list(a.tensors) == ["x", "y", "z"] and a.free_pages == 12
    # with a pool base the physical page numbers move, the virtual ones do not
    b = PageAllocator(P4K, 8 * 4096, base=0x100000)
    t = b.alloc("t", 8192)
    assert (t.vaddr, t.ppns) == (0, (256, 257))
    assert b.translate(4097) == 0x100000 + 4097


def test_scattered_is_deterministic_and_scattered():
    def ppns(seed):
        a = alloc4k(64, seed=seed)
        return [a.alloc(f"t{i}", 3 * 4096 + 7).ppns for i in range(10)]
    assert ppns(5) == ppns(5)
    assert ppns(5) != ppns(6)
    flat = [p for t in ppns(5) for p in t]
    assert len(set(flat)) == len(flat) and flat != sorted(flat)


def test_free_and_reuse():
    a = alloc4k()
    a.alloc("x", 8192)
    a.alloc("y", 3 * 4096)
    a.alloc("z", 4096)
    a.free("y")
    assert a.free_pages == 16 - 3
    w = a.alloc("w", 4096 * 2)                 # lowest free pages and the first free virtual run
    assert (w.vaddr, w.ppns) == (2 * 4096, (2, 3))
    v = a.alloc("v", 4096 * 2)                 # physical: 4 (left of y), then 6; virtual: vpn 4 is too short
    assert v.ppns == (4, 6) and v.vaddr == 6 * 4096
    a.free("x")
    with pytest.raises(KeyError, match=r"tensor 'x': not allocated \(allocated: z, w, v\)"):
        a.free("x")
    # scattered: freed pages are reused first, in the order the tensor had them
    s = alloc4k(32, seed=3)
    first = s.alloc("a", 4 * 4096).ppns
    s.alloc("b", 4096)
    s.free("a")
    assert s.alloc("c", 3 * 4096).ppns == first[:3]


def test_allocator_errors():
    a = alloc4k()
    a.alloc("x", 10 * 4096)
    with pytest.raises(MemoryError) as err:
        a.alloc("big", 7 * 4096 - 5)
    assert str(err.value) == ("tensor 'big': 28667 bytes need 7 pages of 4096 bytes, but only 6 of 16 physical "
                              "pages are free (24576 bytes)")
    with pytest.raises(ValueError, match=r"tensor 'x': already allocated \(40960 bytes at vaddr 0x0\); free it first"):
        a.alloc("x", 1)
    for size in (0, -5):
        with pytest.raises(ValueError, match=rf"tensor 'e': size {size} bytes is not allowed: must be an integer >= 1"):
            a.alloc("e", size)
    with pytest.raises(ValueError, match="tensor name"):
        a.alloc("", 1)
    with pytest.raises(ValueError, match=r"physical_bytes: 5000 is not allowed: must be a positive multiple of "
                                         r"page_bytes \(4096\)"):
        PageAllocator(P4K, 5000)
    # virtual space: holes can refuse a tensor whose physical pages are free
    v = PageAllocator(P4K, 4 * 4096, virtual_bytes=4 * 4096)
    for n in "abcd":
        v.alloc(n, 4096)
    v.free("a")
    v.free("c")
    with pytest.raises(MemoryError, match="the largest free virtual run is 1 of 4 pages"):
        v.alloc("e", 8192)


def test_fragmentation_exact():
    a = alloc4k()
    f = a.fragmentation()
    assert (f["internal"], f["external"], f["free_pages"], f["largest_free_run"]) == (0.0, 0.0, 16, 16)
    a.alloc("x", 5000)          # 2 pages, 3192 wasted
    a.alloc("y", 4096)          # 1 page, 0 wasted
    a.alloc("z", 1)             # 1 page, 4095 wasted
    f = a.fragmentation()
    assert (f["requested_bytes"], f["allocated_bytes"], f["internal_waste_bytes"]) == (9097, 16384, 7287)
    assert f["internal"] == 7287 / 16384
    assert (f["free_pages"], f["free_runs"], f["largest_free_run"], f["external"]) == (12, 1, 12, 0.0)
    a.free("y")                 # physical page 2 free: runs [2] and [4..15]
    f = a.fragmentation()
    assert f["internal"] == 7287 / 12288
    assert (f["free_pages"], f["free_runs"], f["largest_free_run"]) == (13, 2, 12)
    assert f["external"] == 1 - 12 / 13
    assert f["virtual_external"] == 1 - 28 / 29          # 32 virtual pages, hole at vpn 2
    a.free("z")                 # pages 2..15 free again, one run
    f = a.fragmentation()
    assert (f["free_runs"], f["external"]) == (1, 0.0)
    # every other page used: 8 free runs of 1 page
    b = alloc4k()
    for i in range(16):
        b.alloc(f"t{i}", 4096)
    for i in range(0, 16, 2):
        b.free(f"t{i}")
    f = b.fragmentation()
    assert (f["free_pages"], f["free_runs"], f["largest_free_run"], f["internal"]) == (8, 8, 1, 0.0)
    assert f["external"] == 1 - 1 / 8
    # everything used: no free page, external 0 by definition
    c = alloc4k(4)
    c.alloc("all", 4 * 4096 - 100)
    f = c.fragmentation()
    assert (f["free_pages"], f["external"], f["internal"]) == (0, 0.0, 100 / 16384)


# ---- page table ------------------------------------------------------------------------------------

def scattered_table(seed=11):
    a = PageAllocator(DEFAULT, 64 * 65536, seed=seed)
    tensors = [a.alloc("a", 3 * 65536 + 100), a.alloc("b", 17, writable=False), a.alloc("c", 5 * 65536)]
    a.free("a")
    tensors = tensors[1:] + [a.alloc("d", 2 * 65536 + 1)]
    return a, a.page_table(), tensors


def test_table_translates_like_the_allocator():
    a, table, tensors = scattered_table()
    assert table.base == 64 * 65536 and table.num_entries == 128 and table.size_bytes == 128 * PTE_BYTES
    assert len(table.image) == table.size_bytes
    rng = np.random.default_rng(0)
    pb = 65536
    for t in tensors:
        va = t.vaddr + np.unique(np.concatenate([rng.integers(0, t.nbytes, 4000), [0, t.nbytes - 1],
                                                 np.arange(0, t.nbytes, pb), np.arange(pb - 1, t.nbytes, pb)]))
        want = np.array(t.ppns)[(va - t.vaddr) // pb] * pb + (va - t.vaddr) % pb
        got = table.translate_many(va)
        assert np.array_equal(got, want)
        for v in va[:50].tolist():
            assert table.translate(v) == a.translate(v)
    # the bytes alone are enough: a table rebuilt from its image translates the same
    again = PageTable(table.image, 65536, table.base)
    d = a["d"]
    assert again.translate(d.vaddr + 65536 + 5) == d.ppns[1] * pb + 5
    # a walk reads one entry at base + vpn * 8
    e = unpack_pte(int.from_bytes(table.image[(d.vpn + 2) * 8:(d.vpn + 3) * 8], "little"))
    assert e == {"valid": 1, "read": 1, "write": 1, "ppn": d.ppns[2]}
    assert table.entry_address(d.vpn + 2) == table.base + (d.vpn + 2) * 8
    assert table.walk(a["b"].vpn)["write"] == 0


def test_table_faults():
    a, table, _ = scattered_table()
    free_vpn = next(v for v in range(table.num_entries) if v not in a.mapping())
    with pytest.raises(PageFault, match=rf"page {free_vpn}\): not mapped \(valid = 0\)") as err:
        table.translate(free_vpn * 65536 + 3)
    assert err.value.reason == "unmapped"
    with pytest.raises(PageFault, match=r"outside the page table \(128 pages"):
        table.translate(128 * 65536)
    with pytest.raises(PageFault, match="write not allowed") as err:
        table.translate(a["b"].vaddr, write=True)
    assert err.value.reason == "permission"
    assert table.translate(a["b"].vaddr) == a["b"].ppns[0] * 65536
    with pytest.raises(PageFault, match="not mapped"):
        table.translate_many([a["c"].vaddr, free_vpn * 65536])
    with pytest.raises(ValueError, match="overlaps the page pool"):
        a.page_table(base=65536)


# ---- TLB -------------------------------------------------------------------------------------------

def identity_table(pages: int, page_bytes: int = 4096) -> PageTable:
    words = [pack_pte(valid=1, read=1, write=1, ppn=1000 + v) for v in range(pages)]
    return PageTable.from_entries(words, page_bytes, base=0x8000)


def test_tlb_sequential_one_miss_per_page():
    t = Tlb(identity_table(64), entries=4, miss_penalty=25, record_walks=True)
    va = np.arange(0, 10 * 4096, 64)
    pa, hit = t.translate_many(va)
    assert np.array_equal(pa, va + 1000 * 4096)
    s = t.stats
    assert (s["lookups"], s["misses"], s["hits"]) == (len(va), 10, len(va) - 10)
    assert s["walk_cycles"] == 250 and s["miss_rate"] == 10 / len(va) and s["evictions"] == 6
    assert np.array_equal(np.flatnonzero(~hit), np.arange(10) * 64)
    assert t.walk_log == [0x8000 + 8 * v for v in range(10)]
    # the same stream one access at a time
    u = Tlb(identity_table(64), entries=4)
    one = [u.translate(int(v)) for v in va]
    assert [p for p, _ in one] == pa.tolist() and [h for _, h in one] == hit.tolist()
    assert u.stats == {**t.stats, "walk_cycles": 10 * u.miss_penalty}


@pytest.mark.parametrize("entries", [1, 4, 32])
def test_tlb_lru_thrash(entries):
    t = Tlb(identity_table(64), entries=entries)
    cycle = np.arange(entries + 1) * 4096 + 8
    t.translate_many(np.tile(cycle, 10))
    s = t.stats
    assert (s["misses"], s["hits"], s["miss_rate"]) == (10 * (entries + 1), 0, 1.0)
    u = Tlb(identity_table(64), entries=entries)          # entries pages cycling: only the first round misses
    u.translate_many(np.tile(cycle[:entries], 10))
    assert (u.stats["misses"], u.stats["hits"]) == (entries, 9 * entries)


def test_tlb_lru_order_and_sets():
    t = Tlb(identity_table(64), entries=4)
    for v in (0, 1, 2, 3, 0):
        t.translate(v * 4096)
    assert t.contents() == [[1, 2, 3, 0]]
    assert t.translate(4 * 4096) == (1004 * 4096, False)   # evicts 1, the least recently used
    assert t.contents() == [[2, 3, 0, 4]]
    assert t.translate(1 * 4096)[1] is False and t.translate(0)[1] is True
    # 4 entries, 2 ways: pages 0, 2, 4 share set 0 and thrash; pages 1, 3 stay in set 1
    s = Tlb(identity_table(64), entries=4, ways=2)
    s.translate_many(np.tile(np.array([0, 2, 4, 1, 3]) * 4096, 5))
    assert (s.stats["misses"], s.stats["hits"], s.sets) == (15 + 2, 8, 2)
    assert s.contents() == [[2, 4], [1, 3]]
    cfg = config.from_dict({"memory": {"page_bytes": 4096, "tlb_entries": 8, "tlb_sets": 2}})
    c = Tlb.of(cfg, identity_table(8))
    assert (c.entries, c.ways, c.sets) == (8, 4, 2)
    with pytest.raises(ValueError, match=r"ways: 8 is not allowed: must be a power of two in \[1, 4\]"):
        Tlb(identity_table(8), entries=4, ways=8)
    with pytest.raises(ValueError, match="differs from memory.page_bytes"):
        Tlb.of(DEFAULT, identity_table(8))


def test_tlb_faults_and_flush():
    words = [pack_pte(valid=1, read=1, write=0, ppn=7), 0, pack_pte(valid=1, read=1, write=1, ppn=9)]
    table = PageTable.from_entries(words, 4096)
    t = Tlb(table, entries=2)
    assert t.translate(5) == (7 * 4096 + 5, False)
    with pytest.raises(PageFault, match="write not allowed"):
        t.translate(6, write=True)                       # a hit, refused by the cached flags
    with pytest.raises(PageFault, match="not mapped"):
        t.translate(4096)
    with pytest.raises(PageFault, match="not mapped"):
        t.translate(4096)                                # invalid entries are not cached
    with pytest.raises(PageFault, match="outside the page table"):
        t.translate(3 * 4096)
    assert t.stats["faults"] == 4 and t.stats["misses"] == 4 and t.contents() == [[0]]
    assert t.stats["walks"] == 3                         # the access beyond the table reads no entry
    # the TLB is not coherent with the table: a stale entry stays until flushed
    t.table = PageTable.from_entries([pack_pte(valid=1, read=1, write=1, ppn=99)] * 3, 4096)
    assert t.translate(0)[0] == 7 * 4096
    t.flush()
    assert t.translate(0) == (99 * 4096, False)


def test_tlb_batch_equals_scalar():
    _, table, tensors = scattered_table(4)
    rng = np.random.default_rng(2)
    va = np.concatenate([t.vaddr + rng.integers(0, t.nbytes, 300) for t in tensors])
    va = np.repeat(va, rng.integers(1, 4, len(va)))
    rng.shuffle(va[: len(va) // 2])
    a, b = Tlb(table, entries=4, ways=2), Tlb(table, entries=4, ways=2)
    pa, hit = a.translate_many(va)
    one = [b.translate(int(v)) for v in va]
    assert pa.tolist() == [p for p, _ in one] and hit.tolist() == [h for _, h in one]
    assert a.stats == b.stats and a.contents() == b.contents()
    assert np.array_equal(pa, table.translate_many(va))


# ---- bursts ----------------------------------------------------------------------------------------

def test_split_at():
    src, lo, n = split_at([4000, 8192, 0], [200, 4096, 1], 4096)
    assert src.tolist() == [0, 0, 1, 2] and lo.tolist() == [4000, 4096, 8192, 0] and n.tolist() == [96, 104, 4096, 1]
    with pytest.raises(ValueError, match="burst 1: vaddr 5, 0 bytes is not allowed"):
        split_at([0, 5], [1, 0], 4096)


def test_bursts_split_at_pages():
    a, table, tensors = scattered_table(9)
    pb = 65536
    rng = np.random.default_rng(3)
    c, d = a["c"], a["d"]
    cases = [(c.vaddr, c.nbytes), (c.vaddr + pb - 1, 2), (c.vaddr + 5, 3 * pb), (d.vaddr + 1, d.nbytes - 1)]
    for t in (c, d):
        for _ in range(100):
            start = int(rng.integers(0, t.nbytes))
            cases.append((t.vaddr + start, int(rng.integers(1, t.nbytes - start + 1))))
    for boundary in (None, 4096):
        cut = boundary or pb
        for vaddr, nbytes in cases:
            bursts = translate_burst(table, vaddr, nbytes, boundary=boundary)
            assert all(isinstance(b, Burst) for b in bursts)
            assert bursts[0].vaddr == vaddr and sum(b.nbytes for b in bursts) == nbytes
            for b, nxt in pairwise(bursts):
                assert nxt.vaddr == b.vaddr + b.nbytes                     # every byte once, in order
            for b in bursts:
                assert b.paddr // cut == (b.paddr + b.nbytes - 1) // cut    # never crosses a page (or 4 KiB)
                assert b.paddr // 4096 == (b.paddr + b.nbytes - 1) // 4096 or boundary is None
                assert b.paddr == table.translate(b.vaddr)
                assert b.paddr + b.nbytes - 1 == table.translate(b.vaddr + b.nbytes - 1)
            pages = (vaddr + nbytes - 1) // cut - vaddr // cut + 1
            assert len(bursts) == pages
    # through the TLB: one lookup per page touched
    t = Tlb.of(DEFAULT, table)
    bursts = translate_burst(t, c.vaddr + 10, 3 * pb)
    assert [b.nbytes for b in bursts] == [pb - 10, pb, pb, 10]
    assert (t.stats["lookups"], t.stats["misses"]) == (4, 4)
    assert [(b.paddr, b.nbytes) for b in translate_burst(table, c.vaddr + 10, 3 * pb)] == \
        [(b.paddr, b.nbytes) for b in bursts]
    assert translate_burst(t, c.vaddr + 10, 100) == [Burst(c.ppns[0] * pb + 10, 100, c.vaddr + 10)]
    assert t.stats["hits"] == 1


# ---- one source of the formats; walks as the RTL counts them; the table in an HBM image --------------

def test_the_model_translates_with_the_spec_table():
    import hwgen.spec.page_table as spec
    import sim.model.memory.tlb as model
    for name in ("PageTable", "PageFault"):
        assert getattr(model, name) is getattr(spec, name)


def test_outside_is_a_miss_and_a_fault_but_no_walk():
    t = Tlb(identity_table(4), entries=2, miss_penalty=10, record_walks=True)
    assert t.access(4096 + 5) == (1001 * 4096 + 5, "walk", None)
    assert t.access(4096 + 6) == (1001 * 4096 + 6, "hit", None)
    assert t.access(4 * 4096) == (0, "outside", "outside")
    assert t.access(2 * 4096, write=True) == (1002 * 4096, "walk", None)
    s = t.stats
    assert (s["misses"], s["walks"], s["faults"], s["walk_cycles"]) == (3, 2, 1, 20)
    assert t.walk_log == [0x8000 + 8, 0x8000 + 16]        # no entry address for the page beyond the table
    words = [pack_pte(valid=1, read=1, write=0, ppn=3), 0]
    u = Tlb(PageTable.from_entries(words, 4096), entries=2)
    assert u.access(8, write=True) == (0, "walk", "permission")
    assert u.access(8, write=True) == (0, "hit", "permission")
    assert u.access(4096) == (0, "walk", "unmapped")


def test_table_in_an_image_reads_and_writes_virtual_ranges():
    a = PageAllocator(P4K, 8 * 4096, seed=2)
    x, ro = a.alloc("x", 3 * 4096 - 10), a.alloc("ro", 100, writable=False)
    table = a.page_table()
    image = np.zeros(table.base + table.size_bytes, dtype=np.uint8)
    image[table.base:] = np.frombuffer(table.image, np.uint8)
    again = PageTable.in_image(image, table.base, table.num_entries, 4096)
    assert again.image == table.image
    blob = bytes(range(256)) * 48
    again.write(image, x.vaddr + 5, blob[:x.nbytes - 5])
    assert again.read(image, x.vaddr + 5, x.nbytes - 5) == blob[:x.nbytes - 5]
    pieces = again.pieces(x.vaddr + 5, x.nbytes - 5)
    assert [n for _, n, _ in pieces] == [4091, 4096, 4086] and [p for p, _, _ in pieces] == \
        [x.ppns[0] * 4096 + 5, x.ppns[1] * 4096, x.ppns[2] * 4096]
    with pytest.raises(PageFault, match="write not allowed"):
        again.write(image, ro.vaddr, b"1")
    again.write(image, ro.vaddr, b"1", check=False)       # the compiler places read-only tensors
    with pytest.raises(ValueError, match="do not fit"):
        PageTable.in_image(image, table.base, table.num_entries + 1, 4096)
