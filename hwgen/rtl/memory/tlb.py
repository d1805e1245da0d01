"""TLB of the DMA path: virtual -> physical translation with a one-level page-table walk on a miss.

The behaviour is ``sim.model.memory.tlb.Tlb`` exactly (hits, misses, walks, replacement, faults and counters); the
entry format and the table layout are the ones of ``hwgen.spec.page_table`` (``PTE``, ``PageTable``), imported from
there, so the format is written once. Sizes come from ``cfg.memory``: ``tlb_entries`` entries in
``tlb_sets`` sets of ``tlb_ways`` ways, pages of ``page_bytes``.

Interface
---------
- ``table_base`` (in, ``addr_width``): physical byte address of the page table (entry ``vpn`` is the 64-bit
  little-endian word at ``table_base + vpn * PTE_BYTES``).
- ``table_entries`` (in): the number of entries of the table; a virtual page ``vpn >= table_entries`` is an
  OUTSIDE fault, decided without a walk.
- ``flush`` (in): 1 drops every entry at the next clock edge (one cycle). ``req.ready`` is low while ``flush``
  is high, so the request after a flush sees the empty TLB. Flush between requests to match the model's
  ``Tlb.flush()``; a walk already under way when ``flush`` rises still fills its entry afterwards (as the
  model does for a translation that follows the flush).
- ``req`` (stream in): ``{vaddr, write}``, one translation per transfer (``write``: the DMA stores to the page).
- ``resp`` (stream out): ``{paddr, fault}`` with ``fault`` a ``Fault``: NONE, UNMAPPED (the entry's valid bit is
  0), PERMISSION (read / write bit 0 for this access), OUTSIDE (beyond ``table_entries``). ``paddr`` is
  ``ppn * page_bytes + vaddr % page_bytes`` (truncated to ``addr_width``) when ``fault`` is NONE, else 0.
- ``walk_req`` (stream out): the physical address of the entry to read on a miss.
- ``walk_resp`` (stream in): the 64-bit entry word read there (fields decoded with ``signatures.pte_layout``; bits
  above the last field are ignored, the format keeps them zero; ppn bits above ``addr_width - log2(page_bytes)``
  are dropped).
- ``hits``, ``misses``, ``walks``, ``evictions``, ``faults`` (out, 32 bits, wrapping): the counters of
  ``Tlb.stats``. An OUTSIDE access counts as a miss and a fault, like the model (which has no entry for it),
  but not as a walk and no walk is issued: the table has no entry to read. ``walks`` counts the misses that
  read the table (counted when the miss is accepted).

One request is in flight at a time: ``req.ready`` is high when nothing is in flight, or when the response of
the one in flight is taken in this cycle (and ``flush`` is low). A request is looked up in the cycle it is
accepted (the set's tags compared, the hit's entry selected) and the result registered; the next cycle
answers from those registers and updates the LRU order, so the compare and the update are not one path.

Timing (properties of the instance; a cycle model reads them instead of recomputing)
------------------------------------------------------------------------------------
- ``hit_latency`` = 2: ``resp.valid`` rises two cycles after the ``req`` handshake on a hit (and on an OUTSIDE
  fault): the lookup is registered, then the response.
- ``walk_issue_latency`` = 2: on a miss ``walk_req.valid`` rises two cycles after the ``req`` handshake and stays
  high until ``walk_req.ready``; ``walk_resp.ready`` is high from the cycle after the ``walk_req`` handshake.
- ``fill_latency`` = 1: ``resp.valid`` rises the cycle after the ``walk_resp`` handshake.
- ``hit_interval`` = 2: back-to-back hits with ``resp.ready`` high complete one every two cycles (the next
  request is accepted in the cycle the previous response is taken). A miss occupies the TLB from its ``req``
  handshake to its ``resp`` handshake: ``miss_latency(walk_cycles)`` from the handshake to ``resp.valid`` when
  the walk is accepted at once and answered ``walk_cycles`` (>= 1) cycles after its handshake.

Replacement (the model's ``OrderedDict`` per set, in registers)
-------------------------------------------------------------
Entries never move: each valid entry of set ``vpn % sets`` has an ``age``, its place in the set's LRU order
(0 most recently used, n-1 least, for n valid entries), so ``contents()`` gives the model's
``Tlb.contents()`` by sorting a set's valid entries by age. A hit makes its entry's age 0 and ages by one
every entry younger than it. A miss whose entry is valid fills: the first invalid way if the set has room,
otherwise the way of age ``ways - 1`` (the LRU entry) is evicted; the new entry gets age 0 and every other one
ages by one. Only ages change on a hit, and a fill writes one way, so no entry is shifted across the set (the
shift was the unit's slowest path). An invalid entry is not filled, so it faults on every access. Permission
is checked after the lookup (hit or fill), so a permission fault still updates the LRU order or fills, as in
the model. Every way is a register and the lookup compares all ways of the set in parallel, so the size is
limited to ``MAX_ENTRIES`` entries (ample for 8..64-entry TLBs); a larger TLB needs a memory-based design.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.signatures import hw_enum, pte_layout
from hwgen.spec import page_table as spec_page_table
from hwgen.spec.page_table import FAULT_BITS, PAGE_FAULT_UNITS, PTE, PTE_BITS, PTE_BYTES
from hwgen.spec.timing import TlbTiming

MAX_ENTRIES = 64        # registers and one comparator per way: fine up to here
COUNTER_BITS = 32


#: the fault code as a hardware shape (the encoding is ``hwgen.spec.page_table.Fault``)
Fault = hw_enum(spec_page_table.Fault, FAULT_BITS)


def page_fault_layout() -> data.StructLayout:
    """The engine's ``page_fault`` output: one Fault per unit of ``PAGE_FAULT_UNITS``, LSB-first."""
    return data.StructLayout({unit: Fault for unit in PAGE_FAULT_UNITS})


def request_layout(addr_width: int) -> data.StructLayout:
    """A translation request (``req``): the virtual address, and whether the access writes."""
    return data.StructLayout({"vaddr": addr_width, "write": 1})


def response_layout(addr_width: int) -> data.StructLayout:
    """A translation response (``resp``): the physical address (0 unless ``fault`` is NONE) and the Fault."""
    return data.StructLayout({"paddr": addr_width, "fault": Fault})


def _log2(name: str, value: int) -> int:
    assert value >= 1 and not value & (value - 1), f"{name}: {value} is not a power of two"
    return value.bit_length() - 1


class Tlb(TlbTiming, wiring.Component):
    """Set-associative LRU TLB with a page-table walker port (see the module docstring)."""

    def __init__(self, cfg, addr_width: int = 40):
        mem = cfg.memory
        if mem.tlb_entries > MAX_ENTRIES:
            raise ValueError(f"memory.tlb_entries: {mem.tlb_entries} is not allowed for the RTL TLB: at most "
                             f"{MAX_ENTRIES} (every entry is a register with its own comparator)")
        self.entries, self.sets, self.ways = mem.tlb_entries, mem.tlb_sets, mem.tlb_ways
        self.page_bytes = mem.page_bytes
        self.page_shift = _log2("memory.page_bytes", mem.page_bytes)
        self.set_bits = _log2("memory.tlb_sets", mem.tlb_sets)
        ppn_field = PTE.mask["ppn"].bit_length()
        low, high = self.page_shift + self.set_bits + 1, self.page_shift + ppn_field
        if isinstance(addr_width, bool) or not isinstance(addr_width, int) or not low <= addr_width <= high:
            raise ValueError(f"addr_width: {addr_width!r} is not allowed: must be an int in [{low}, {high}] (above "
                             f"log2(page_bytes) + log2(tlb_sets), at most log2(page_bytes) + the {ppn_field}-bit ppn)")
        self.addr_width = addr_width
        self.vpn_bits = addr_width - self.page_shift
        self.ppn_bits = addr_width - self.page_shift     # a paddr has as many page bits as a vaddr
        self.tag_bits = self.vpn_bits - self.set_bits
        self.age_bits = max(1, (self.ways - 1).bit_length())
        self.entry_layout = data.StructLayout({"valid": 1, "read": 1, "write": 1, "tag": self.tag_bits,
                                               "ppn": self.ppn_bits, "age": self.age_bits})
        self.req_layout = request_layout(addr_width)
        self.resp_layout = response_layout(addr_width)
        # not a port: the entries, [set][way]; testbenches read it through ``contents``
        self.store = Signal(data.ArrayLayout(data.ArrayLayout(self.entry_layout, self.ways), self.sets))
        super().__init__({
            "table_base": In(addr_width),
            "table_entries": In(self.entries_bits(cfg, addr_width)),   # up to the whole virtual space
            "flush": In(1),
            "req": In(stream.Signature(self.req_layout)),
            "resp": Out(stream.Signature(self.resp_layout)),
            "walk_req": Out(stream.Signature(addr_width)),
            "walk_resp": In(stream.Signature(PTE_BITS)),
            "hits": Out(COUNTER_BITS),
            "misses": Out(COUNTER_BITS),
            "walks": Out(COUNTER_BITS),
            "evictions": Out(COUNTER_BITS),
            "faults": Out(COUNTER_BITS),
        })

    @staticmethod
    def entries_bits(cfg, addr_width: int = 40) -> int:
        """Width of ``table_entries``: up to the whole virtual space of ``addr_width`` bits."""
        return addr_width - _log2("memory.page_bytes", cfg.memory.page_bytes) + 1

    def contents(self, store) -> list[list[int]]:
        """The vpns held per set, least recently used first (``Tlb.contents()`` of the model), from the value of
        ``store``: ``ctx.get(dut.store)`` in a testbench, or its bits as an int."""
        bits = store if isinstance(store, int) else store.as_bits()   # plain ints: field views are slow here
        size, valid = self.entry_layout.size, self.entry_layout["valid"]
        tag, age = self.entry_layout["tag"], self.entry_layout["age"]
        out = []
        for s in range(self.sets):
            held = []
            for w in range(self.ways):
                entry = bits >> ((s * self.ways + w) * size)
                if entry >> valid.offset & 1:
                    vpn = ((entry >> tag.offset) & ((1 << self.tag_bits) - 1)) << self.set_bits | s
                    held.append(((entry >> age.offset) & ((1 << self.age_bits) - 1), vpn))
            out.append([vpn for _, vpn in sorted(held, reverse=True)])     # the oldest first
        return out

    def elaborate(self, platform):
        m = Module()
        W, shift = self.ways, self.page_shift
        req, resp, walk_req, walk_resp = self.req, self.resp, self.walk_req, self.walk_resp

        resp_pending = Signal()     # resp.valid
        looked = Signal()           # the request accepted in the cycle before: its lookup is in the l_* registers
        walking = Signal()          # waiting for walk_resp
        vaddr = Signal(self.addr_width)     # the request in flight (needed again for the answer and the fill)
        write = Signal()
        m.d.comb += resp.valid.eq(resp_pending)
        m.d.comb += req.ready.eq(~self.flush & ~looked & ~walk_req.valid & ~walking & (~resp_pending | resp.ready))
        m.d.comb += walk_resp.ready.eq(walking)
        accept = req.valid & req.ready

        # one set is read per cycle: the request's on a lookup, the registered one's while it is answered or walked
        req_vpn = req.payload.vaddr[shift:]
        walk_vpn = vaddr[shift:]
        set_index = Mux(walking | looked, walk_vpn, req_vpn)[:self.set_bits] if self.set_bits else 0
        cur = self.store[set_index]

        # lookup (combinational on req.payload)
        match = Signal(W)
        for w in range(W):
            m.d.comb += match[w].eq(cur[w].valid & (cur[w].tag == req_vpn[self.set_bits:]))
        hit = match.any()
        hit_entry = Signal(self.entry_layout)
        hit_bits = 0
        for w in range(W):     # one-hot select: an OR of masked ways, no priority chain
            hit_bits = hit_bits | (cur[w].as_value() & match[w].replicate(self.entry_layout.size))
        m.d.comb += hit_entry.eq(hit_bits)
        outside = req_vpn >= self.table_entries

        # the walked entry, decoded with the one PTE field table
        layout = pte_layout()
        pte = layout(walk_resp.payload[:layout.size])
        full = Cat(cur[w].valid for w in range(W)).all()

        # LRU update of the selected set. A hit (``touch``: its one-hot way) ages the entries younger than it and
        # makes it the youngest; a fill writes ``fill_entry`` into ``victim`` (the first free way, or the oldest
        # when the set is full) and ages every other entry
        # the lookup, registered in the cycle of the request
        l_outside, l_hit, l_match, l_entry = Signal(), Signal(), Signal(W), Signal(self.entry_layout)
        touch, fill = Signal(W), Signal()
        fill_entry = Signal(self.entry_layout)
        hit_age = l_entry.age            # a hit touches the entry the lookup selected
        victim = Signal(W)
        for w in reversed(range(W)):
            with m.If(~cur[w].valid):
                m.d.comb += victim.eq(1 << w)
        with m.If(full):
            m.d.comb += victim.eq(Cat(cur[w].age == W - 1 for w in range(W)))
        new_set = Signal(data.ArrayLayout(self.entry_layout, W))
        for w in range(W):
            m.d.comb += new_set[w].eq(cur[w])
            with m.If(fill & victim[w]):
                m.d.comb += new_set[w].eq(fill_entry)
            with m.Elif(touch[w]):
                m.d.comb += new_set[w].age.eq(0)
            with m.Elif(cur[w].valid & (fill | (touch.any() & (cur[w].age < hit_age)))):
                m.d.comb += new_set[w].age.eq(cur[w].age + 1)
        with m.If(fill | touch.any()):
            m.d.sync += cur.eq(new_set)

        def respond(fault, ppn=None, offset=None):
            """Register the response; ``paddr`` is 0 unless the access is allowed."""
            fault = Fault(fault)
            paddr = 0 if ppn is None else Mux(fault == Fault.NONE, Cat(offset, ppn), 0)
            m.d.sync += [resp_pending.eq(1), resp.payload.fault.eq(fault), resp.payload.paddr.eq(paddr)]

        with m.If(resp.valid & resp.ready):
            m.d.sync += resp_pending.eq(0)      # a request accepted in this cycle may set it again below

        m.d.sync += looked.eq(accept)
        with m.If(accept):
            m.d.sync += [vaddr.eq(req.payload.vaddr), write.eq(req.payload.write), l_outside.eq(outside),
                         l_hit.eq(hit), l_match.eq(match), l_entry.eq(hit_entry)]

        with m.If(looked):
            offset = vaddr[:shift]
            with m.If(l_outside):
                respond(Fault.OUTSIDE)
                m.d.sync += [self.misses.eq(self.misses + 1), self.faults.eq(self.faults + 1)]
            with m.Elif(l_hit):
                allowed = Mux(write, l_entry.write, l_entry.read)
                respond(Mux(allowed, Fault.NONE, Fault.PERMISSION), l_entry.ppn, offset)
                m.d.comb += touch.eq(l_match)
                m.d.sync += self.hits.eq(self.hits + 1)
                with m.If(~allowed):
                    m.d.sync += self.faults.eq(self.faults + 1)
            with m.Else():
                m.d.sync += [walk_req.valid.eq(1),
                             walk_req.payload.eq(self.table_base + walk_vpn * PTE_BYTES),
                             self.misses.eq(self.misses + 1), self.walks.eq(self.walks + 1)]

        with m.If(walk_req.valid & walk_req.ready):
            m.d.sync += [walk_req.valid.eq(0), walking.eq(1)]

        with m.If(walk_resp.valid & walk_resp.ready):
            m.d.sync += walking.eq(0)
            with m.If(~pte.valid):
                respond(Fault.UNMAPPED)      # not filled: it faults again next time
                m.d.sync += self.faults.eq(self.faults + 1)
            with m.Else():
                allowed = Mux(write, pte.write, pte.read)
                respond(Mux(allowed, Fault.NONE, Fault.PERMISSION), pte.ppn[:self.ppn_bits], vaddr[:shift])
                m.d.comb += [fill.eq(1),      # full: the oldest leaves; else the first free way
                             fill_entry.valid.eq(1), fill_entry.read.eq(pte.read), fill_entry.write.eq(pte.write),
                             fill_entry.tag.eq(walk_vpn[self.set_bits:]), fill_entry.ppn.eq(pte.ppn),
                             fill_entry.age.eq(0)]
                with m.If(full):
                    m.d.sync += self.evictions.eq(self.evictions + 1)
                with m.If(~allowed):
                    m.d.sync += self.faults.eq(self.faults + 1)

        with m.If(self.flush):      # wins over an update in the same cycle
            m.d.sync += self.store.eq(0)
        return m


__all__ = ["COUNTER_BITS", "MAX_ENTRIES", "Fault", "Tlb", "page_fault_layout", "request_layout", "response_layout"]
