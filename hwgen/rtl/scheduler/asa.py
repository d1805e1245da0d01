"""The ASA task scheduler: loads a DAG program (``hwgen/spec/task_table.py``) from HBM and feeds its tasks to the
engines, in dependency order, by a policy. ``sim/model/chip.py`` is its cycle model and reads every latency
below from this class (``Asa.feed_latency`` ...), as ``sim/model/engine.py`` reads ``DsaEngine``'s.

Ports: ``bus`` (AXI4 master, reads only: ARID 0, responses in order; AW/W idle, BREADY high); ``start`` (a pulse,
taken while not ``busy`` and no burst of an aborted run is in flight), ``program_base`` (the header's physical
address, taken at ``start``), ``policy`` (``Policy``, taken at ``start``); per engine ``e``: ``task<e>``
(descriptors, ``hwgen/spec/isa.py``) and bit ``e`` of ``idle``; ``page_table_base`` / ``page_table_entries`` (from the
header, for the engines); ``busy``, ``done`` (from the cycle after the last completion is popped until the next
``start``), ``error`` (``AsaError``: sticky until the next start; the run stops), the counters ``issued``,
``skipped``, ``stall_no_engine``, ``stall_not_ready``, ``cycles`` (start to done; all cleared at start), the
predicate bits ``predicates`` (cleared at start) and, for testbenches and traces, ``released`` /
``released_task`` (a completion popped in this cycle, and its task) and ``picked`` / ``picked_task`` /
``picked_engine`` / ``picked_skip`` (a task issued to that engine, or skipped, in this cycle).

Cycle rules (cycle S: ``start`` is high; every "AR in x" below is its first possible handshake, with ARREADY
high; beats are taken in the cycle they are offered, RREADY is always high):

- Reader: a command in cycle t puts its first AR on the bus in t + 1; then one AR per cycle while fewer than
  ``memory.outstanding`` bursts are in flight, a burst counting until (and including) the cycle of its last
  beat. Bursts are cut as ``dma_load.next_burst`` (at most ``memory.burst_beats``, none across a 4 KiB /
  interleave boundary).
- Load: header command in S (AR in S + ``start_ar_latency``); the header's last beat in t -> the first non-empty
  region's first AR in t + ``decode_gap`` (the header decoded into registers first); a region's last beat in t
  -> the next non-empty region's (task table, successor lists, descriptors) first AR in t + ``region_gap``; the
  last beat of the load in t -> scheduling from t + ``run_latency``. A header with more tasks / successors /
  descriptors than ``scheduler.*`` stops the run (``TOO_MANY_TASKS``), as does any RRESP other than OKAY
  (``AXI_ERROR``).
- Window (``scheduler.window`` slots): while a slot is free, the next task of the table enters, one per cycle;
  one entering in e may be picked from e + ``entry_latency`` (RAM read, the row registered, its rank's
  Mitchell log registered, the slot register, then its row of the pick's comparison matrix). A slot is free
  again the cycle after its task's completion is popped.
- Issue: a pick in c is applied in c + 1, a cycle that picks nothing. Among window tasks not yet issued whose
  predecessors all completed (or were skipped), ``in_order`` picks the lowest-numbered task not yet issued
  (only if ready), ``static_list`` the highest ``rank``, ``adaptive`` the highest key; ties to the lower task
  number. Applied: a predicated task whose bit is clear is skipped (its completion pushed in c + 1); otherwise
  it goes to the lowest-numbered engine free in c + 1, or, with none free, c + 2 picks again. Issue in a ->
  first descriptor offered in a + ``feed_latency``; each next one in the cycle after the previous one is
  taken. A pick cycle or an applying cycle whose task runs on an engine and finds none free counts
  ``stall_no_engine``; a pick cycle without a pick while a window task waits counts ``stall_not_ready``.
- Completion: in the first cycle f in which the engine has taken the task's last descriptor (in an earlier
  cycle) and ``idle`` is high, its completion is pushed; the engine is free from f + 1. ``adj = mlog(f -
  issue) - mlog(est)`` is recorded. A gate task's completion goes to the gate unit instead, which takes it in
  g = max(f + 1, the cycle after its previous push), reads the values (first AR in g + ``gate_ar_latency``)
  into its buffer while it divides gate_rows into tiles (``gate_div_cycles``, one quotient bit per cycle), and
  from the cycle after the later of the two (r_last: the last beat, or g + ``gate_derive_latency`` +
  ``gate_div_cycles``; with no values g + ``gate_derive_latency`` - 1) spends
  ``gate_cycles`` cycles on them, one value per cycle (TOPK: plus, per row, one to sort in its last value and
  gate_k to apply the picks), and pushes the completion two cycles after the last one (r_last +
  ``gate_push_latency`` + gate_cycles), in which the last predicate bit is written (each value is registered
  from the RAM, and each step's bit is registered before it is written). Its predicate block is cleared in
  r_last + 2.
- Release: completions are popped in push order (same cycle: engines in index order, then a skip, then the gate
  unit) from ``pop_latency`` cycles after their push (the FIFO's head registered first), one at a time; each
  registers its successor list and walks it from the next cycle (``walk_latency``), one entry per cycle (none:
  one cycle); the next completion may be popped in the last cycle of a walk. Entry walked in w: the successor's
  count of released predecessors goes up in w + 2; when it reaches ``deps`` the release is registered, and the
  successor may be picked from w + ``release_latency`` (``adaptive``: + ``rekey_latency``, its new key's row of
  the pick matrix), and under ``adaptive`` its key is ``mlog(rank) + adj(p)`` (p: the popped task; a skipped task
  passes on the adj it was released with; tasks without predecessors start at ``mlog(rank)``; other policies: key
  = rank).
- Done: high from the cycle after the walk of the last completion (``done_latency``).

``mlog`` is Mitchell's log2 with ``MLOG_FRAC`` fraction bits: the msb position, then the next bits below it.
The RAMs (``amaranth.lib.memory``, one write port each) hold the task table, successors, released-predecessor
counts and released adjs, and the gate values (``out_lines`` output lines); the descriptors are in a ``BlockRam``
per engine (registered reads: each engine's port payload leaves the RAM's output register). A beat narrower
than an entry is gathered; a wider one holds several entries per RAM row, so every region must start on a
multiple of max(entry, beat) bytes (``hwgen.compiler.dag.write_program_region`` does it).
"""
from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwgen.rtl import signatures
from hwgen.rtl.block_ram import BlockRam
from hwgen.rtl.memory.dma_load import BurstPlanner
from hwgen.spec import isa, task_table
from hwgen.spec.axi import BURST_INCR, RESP_OKAY
from hwgen.spec.task_table import ADDR_BITS, ERROR_BITS, HEADER, SUCC_BYTES, TASK, GateOp
from hwgen.spec.timing import MLOG_FRAC, AsaTiming

COUNTER_BITS = 32
KEY_BITS = 26         # signed: rank (24 bits) or mlog(rank) + adj
ADJ_BITS = 15         # signed: mlog(32-bit) - mlog(24-bit)
MLOG_BITS = 5 + MLOG_FRAC
TOPK_MAX = (1 << TASK.bits("gate_k")) - 1


#: the error code as a hardware shape (the encoding is ``hwgen.spec.task_table.AsaError``)
AsaError = signatures.hw_enum(task_table.AsaError, ERROR_BITS)


class Policy(enum.Enum, shape=2):
    IN_ORDER = 0
    STATIC_LIST = 1
    ADAPTIVE = 2


def mlog_hw(m: Module, x, name: str, staged: bool = False) -> Signal:
    """Mitchell's log2 of unsigned ``x`` (0 reads as 1): Cat(frac, msb), MLOG_FRAC fraction bits. ``staged``:
    the msb's position and ``x`` are registered first, so the log is of ``x`` one cycle earlier."""
    n = len(x)
    msb = Signal(range(max(n, 2)), name=f"{name}_msb")
    found = Signal.like(msb, name=f"{name}_found")
    for i in range(n):               # the highest set bit wins (later statements override)
        with m.If(x[i]):
            m.d.comb += found.eq(i)
    if staged:
        x_q = Signal(n, name=f"{name}_x")
        m.d.sync += [msb.eq(found), x_q.eq(x)]
        x = x_q
    else:
        m.d.comb += msb.eq(found)
    shift = Signal(range(max(n, 2)), name=f"{name}_shift")
    norm = Signal(n, name=f"{name}_norm")
    m.d.comb += [shift.eq(n - 1 - msb), norm.eq((x << shift)[:n])]
    ext = Cat(Const(0, MLOG_FRAC), norm[:n - 1])
    out = Signal(MLOG_FRAC + len(msb), name=name)
    m.d.comb += out.eq(Cat(ext[n - 1:n - 1 + MLOG_FRAC], msb))
    return out


class _Ram:
    """``depth`` entries of ``bits`` bits in rows of ``row_bits`` (several entries per row when the AXI beat is
    wider than an entry); reads have one cycle of latency (``read``: entry index in, entry out)."""

    def __init__(self, m: Module, name: str, bits: int, depth: int, row_bits: int, lanes: bool = False):
        self.m, self.name, self.bits = m, name, bits
        self.per = row_bits // bits
        self.sel_bits = exact_log2(self.per)
        self.mem = memory.Memory(shape=row_bits, depth=max(2, -(-depth // self.per)), init=[])
        m.submodules[name] = self.mem
        self.wp = self.mem.write_port(granularity=bits if lanes and self.per > 1 else None)
        self.addr_bits = ceil_log2(max(2, depth))
        self._reads = 0

    def read(self, transparent: bool = False):
        m, i = self.m, self._reads
        self._reads += 1
        port = self.mem.read_port(domain="sync", transparent_for=(self.wp,) if transparent else ())
        addr = Signal(self.addr_bits, name=f"{self.name}_raddr{i}")
        m.d.comb += port.addr.eq(addr >> self.sel_bits)
        if self.per == 1:
            return addr, port.data
        sel = Signal(self.sel_bits, name=f"{self.name}_rsel{i}")
        m.d.sync += sel.eq(addr[:self.sel_bits])
        return addr, port.data.word_select(sel, self.bits)


class _RegisteredRam:
    """A ``_Ram`` whose reads are registered (``signatures.registered_read``: the block RAM's own output register,
    data two cycles after the address): one ``BlockRam`` per reader, all written together through ``wp``. Only
    the low ``kept`` bits of each entry are stored (the rest of a descriptor is always 0), as Yosys trims an
    inferred memory's unread bits."""

    def __init__(self, m: Module, name: str, bits: int, depth: int, row_bits: int, readers: int, kept: int):
        self.m, self.name, self.bits, self.kept = m, name, bits, kept
        self.per = row_bits // bits
        self.sel_bits = exact_log2(self.per)
        rows = max(2, -(-depth // self.per))
        self.rams = [BlockRam(kept * self.per, rows) for _ in range(readers)]
        for i, ram in enumerate(self.rams):
            m.submodules[f"{name}{i}"] = ram
        self.wp = memory.WritePort.Signature(addr_width=len(self.rams[0].write.addr), shape=row_bits).create()
        for ram in self.rams:
            m.d.comb += [ram.write.addr.eq(self.wp.addr), ram.write.en.eq(self.wp.en),
                         ram.write.data.eq(Cat(self.wp.data.word_select(i, bits)[:kept] for i in range(self.per)))]
        self.addr_bits = ceil_log2(max(2, depth))

    def read(self, i: int):
        """Reader ``i``: (entry index, en, take, entry), as ``registered_read``'s addr, en, take and data."""
        m, port = self.m, self.rams[i].read
        addr = Signal(self.addr_bits, name=f"{self.name}_raddr{i}")
        m.d.comb += port.addr.eq(addr >> self.sel_bits)
        if self.per == 1:
            return addr, port.en, port.take, port.data.as_unsigned()
        sel_ram, sel = Signal(self.sel_bits, name=f"{self.name}_rsel{i}_ram"), Signal(self.sel_bits,
                                                                                    name=f"{self.name}_rsel{i}")
        with m.If(port.en):
            m.d.sync += sel_ram.eq(addr[:self.sel_bits])
        with m.If(port.take):
            m.d.sync += sel.eq(sel_ram)
        return addr, port.en, port.take, port.data.word_select(sel, self.kept)


def _multi_fifo(m: Module, name: str, depth: int, width: int, pushes, clear):
    """A FIFO taking several pushes per cycle, in list order: ``pushes`` [(valid, data)]; returns
    (head, nonempty, pop). A push in c may be popped from c + 1; ``clear`` empties it."""
    n = exact_log2(depth)
    entries = Array(Signal(width, name=f"{name}_{i}") for i in range(depth))
    wp, rp = Signal(n, name=f"{name}_wp"), Signal(n, name=f"{name}_rp")
    level = Signal(range(depth + 1), name=f"{name}_level")
    pop = Signal(name=f"{name}_pop")
    offset = Const(0, range(len(pushes) + 1))
    for valid, payload in pushes:
        with m.If(valid):
            m.d.sync += entries[(wp + offset)[:n]].eq(payload)
        offset = offset + valid
    m.d.sync += [wp.eq(wp + offset), rp.eq(rp + pop), level.eq(level + offset - pop)]
    with m.If(clear):
        m.d.sync += [wp.eq(0), rp.eq(0), level.eq(0)]
    return entries[rp], level != 0, pop


class Asa(AsaTiming, wiring.Component):
    """The scheduler; see the module docstring for the ports and the cycle rules."""

    def __init__(self, cfg):
        self._cfg = cfg
        sched = cfg.scheduler
        if cfg.out_line_bits % (cfg.beat_bytes * 8) and (cfg.beat_bytes * 8) % cfg.out_line_bits:
            raise ValueError(f"engine: {cfg.out_line_bits}-bit output lines and {cfg.beat_bytes * 8}-bit AXI beats: "
                             "the gate unit needs one to be a multiple of the other")
        members = {
            "bus": Out(signatures.hbm_axi(cfg)),
            "start": In(1),
            "program_base": In(ADDR_BITS),
            "policy": In(2),
        }
        for e in range(sched.engines):
            members[f"task{e}"] = Out(stream.Signature(signatures.descriptor_layout()))
        members.update({
            "idle": In(sched.engines),
            "page_table_base": Out(HEADER.bits("page_table_base")),
            "page_table_entries": Out(HEADER.bits("page_table_entries")),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(AsaError),
            "issued": Out(COUNTER_BITS),
            "skipped": Out(COUNTER_BITS),
            "stall_no_engine": Out(COUNTER_BITS),
            "stall_not_ready": Out(COUNTER_BITS),
            "cycles": Out(COUNTER_BITS),
            "predicates": Out(sched.predicates),
            "released": Out(1),
            "released_task": Out(HEADER.bits("tasks")),
            "picked": Out(1),                             # a task issued or skipped in this cycle
            "picked_task": Out(HEADER.bits("tasks")),
            "picked_engine": Out(range(max(sched.engines, 2))),
            "picked_skip": Out(1),
        })
        super().__init__(members)

    def tasks(self, e: int):
        return getattr(self, f"task{e}")

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        sched = cfg.scheduler
        E, W, P = sched.engines, sched.window, sched.predicates
        B = cfg.beat_bytes
        beat_bits = 8 * B
        size = exact_log2(B)
        TB = HEADER.bits("tasks")
        ar, r = self.bus.ar, self.bus.r
        task_layout, header_layout = signatures.struct_layout(TASK), signatures.struct_layout(HEADER)

        # ---------------- state ----------------
        phase = Signal(range(8))
        IDLE, HDR, DECODE, TABLE, SUCC, DESC, RUN = range(7)
        pol = Signal(2)
        adaptive, in_order = pol == Policy.ADAPTIVE.value, pol == Policy.IN_ORDER.value
        counter = self.cycles
        ntasks = Signal(TB)
        halt = Signal()                         # a run stops (error), comb in the cycle it happens

        # ---------------- the AXI reader ----------------
        cmd, cmd_addr, cmd_beats = Signal(), Signal(ADDR_BITS), Signal(32)
        rd_addr, rd_left = Signal(ADDR_BITS), Signal(32)
        in_flight = Signal(range(cfg.memory.outstanding + 1))
        # a command's first burst length is registered from the command, the next ones from the registers a burst
        # leaves (BurstPlanner.registered): a region's first AR the cycle after its command, then one every two
        # cycles at most, and no compare, select and add chain runs from the reader's registers back into them
        plan_addr, plan_left = Signal(ADDR_BITS), Signal(32)
        m.d.comb += [plan_addr.eq(Mux(cmd, cmd_addr, rd_addr)), plan_left.eq(Mux(cmd, cmd_beats, rd_left))]
        m.d.comb += r.ready.eq(1)
        beat = r.valid
        complete = beat & r.payload.last
        ar_free = ~ar.valid | ar.ready
        issue_ar = Signal()
        n_beats, planned = BurstPlanner(cfg, plan_addr, plan_left).registered(m, moved=issue_ar)
        m.d.comb += issue_ar.eq(ar_free & planned & ~cmd & (rd_left != 0) &
                                ((in_flight < cfg.memory.outstanding) | complete))
        with m.If(issue_ar):
            m.d.sync += [ar.valid.eq(1), ar.payload.id.eq(0), ar.payload.addr.eq(rd_addr),
                         ar.payload.len.eq(n_beats - 1), ar.payload.size.eq(size), ar.payload.burst.eq(BURST_INCR),
                         rd_addr.eq(rd_addr + (n_beats << size)), rd_left.eq(rd_left - n_beats)]
        with m.Else():
            with m.If(ar.ready):
                m.d.sync += ar.valid.eq(0)
            with m.If(cmd):
                m.d.sync += [rd_addr.eq(cmd_addr), rd_left.eq(cmd_beats)]
        with m.If(halt):
            m.d.sync += rd_left.eq(0)          # an aborted run issues nothing more; its beats are dropped
        m.d.sync += in_flight.eq(in_flight + issue_ar - complete)
        m.d.comb += [self.bus.aw.valid.eq(0), self.bus.w.valid.eq(0), self.bus.b.ready.eq(1)]
        bad_beat = beat & (r.payload.resp != RESP_OKAY)

        # ---------------- RAMs ----------------
        def row(bits):
            return max(bits, beat_bits)
        task_ram = _Ram(m, "task_ram", TASK.width, sched.tasks, row(TASK.width))
        count_ram = _Ram(m, "count_ram", 8, sched.tasks, task_ram.per * 8, lanes=True)
        adj_ram = _Ram(m, "adj_ram", ADJ_BITS, sched.tasks, task_ram.per * ADJ_BITS, lanes=True)
        succ_ram = _Ram(m, "succ_ram", 8 * SUCC_BYTES, sched.successors, row(8 * SUCC_BYTES))
        desc_ram = _RegisteredRam(m, "desc_ram", isa.DESCRIPTOR_BITS, sched.descriptors, row(isa.DESCRIPTOR_BITS), E,
                                  kept=isa.DESCRIPTOR.used)
        gate_ram = _Ram(m, "gate_ram", cfg.out_line_bits, cfg.out_lines, row(cfg.out_line_bits))

        # gather beats narrower than an entry; ``rx`` counts the beats of the current region
        rx = Signal(32)
        gathered = {}
        for ram in (task_ram, succ_ram, desc_ram, gate_ram):
            k = max(1, ram.bits // beat_bits)
            if k == 1:
                gathered[ram.name] = (r.payload.data, Const(1), rx)
            else:
                acc = Signal(ram.bits - beat_bits, name=f"{ram.name}_gather")
                with m.If(beat):
                    m.d.sync += acc.eq(Cat(acc[beat_bits:], r.payload.data) if k > 2 else r.payload.data)
                gathered[ram.name] = (Cat(acc, r.payload.data), rx[:exact_log2(k)] == k - 1, rx >> exact_log2(k))

        # ---------------- load ----------------
        hdr = Signal(HEADER.width)
        hdr_beats = max(1, HEADER.width // beat_bits)
        with m.If(beat & (phase == HDR)):
            if hdr_beats == 1:
                m.d.sync += hdr.eq(r.payload.data[:HEADER.width])
            else:
                m.d.sync += hdr.eq(Cat(hdr[beat_bits:], r.payload.data))
        h = header_layout(hdr[:header_layout.size])

        def beats_of(n, entry_bytes):
            return (n * entry_bytes + B - 1) >> size
        region_beats = {TABLE: Signal(32, name="table_beats"), SUCC: Signal(32, name="succ_beats"),
                        DESC: Signal(32, name="desc_beats")}
        region_addr = {TABLE: Signal(ADDR_BITS, name="table_addr"), SUCC: Signal(ADDR_BITS, name="succ_addr"),
                       DESC: Signal(ADDR_BITS, name="desc_addr")}
        hdr_beats_of = {TABLE: beats_of(h.tasks, TASK.bytes), SUCC: beats_of(h.successors, SUCC_BYTES),
                        DESC: beats_of(h.descriptors, isa.DESCRIPTOR_BITS // 8)}
        hdr_addr_of = {TABLE: h.table_addr, SUCC: h.succ_addr, DESC: h.desc_addr}
        cmd_pending = Signal()

        def next_region(after, beats):
            """The first non-empty region after ``after`` (RUN if none), as a comb value."""
            out = Const(RUN, phase.shape())
            for ph in reversed([p for p in (TABLE, SUCC, DESC) if p > after]):
                out = Mux(beats[ph] != 0, ph, out)
            return out

        start_ok = (phase == IDLE) & (in_flight == 0) & ~ar.valid
        region_last = beat & (rx == Mux(phase == HDR, hdr_beats - 1,
                                        Mux(phase == TABLE, region_beats[TABLE] - 1,
                                            Mux(phase == SUCC, region_beats[SUCC] - 1, region_beats[DESC] - 1))))
        with m.If(beat):
            m.d.sync += rx.eq(rx + 1)
        too_many = (h.tasks > sched.tasks) | (h.successors > sched.successors) | (h.descriptors > sched.descriptors)
        go = (phase == IDLE) & self.start & start_ok
        with m.Switch(phase):
            with m.Case(IDLE):
                with m.If(go):
                    m.d.comb += [cmd.eq(1), cmd_addr.eq(self.program_base), cmd_beats.eq(hdr_beats)]
                    m.d.sync += [phase.eq(HDR), rx.eq(0), pol.eq(self.policy), self.busy.eq(1), self.done.eq(0),
                                 self.error.eq(AsaError.NONE), counter.eq(1), cmd_pending.eq(0)]
            with m.Case(HDR):
                with m.If(region_last):
                    m.d.sync += phase.eq(DECODE)
            with m.Case(DECODE):
                m.d.sync += [ntasks.eq(h.tasks), self.page_table_base.eq(h.page_table_base),
                             self.page_table_entries.eq(h.page_table_entries), rx.eq(0)]
                for ph in (TABLE, SUCC, DESC):
                    m.d.sync += [region_beats[ph].eq(hdr_beats_of[ph]), region_addr[ph].eq(hdr_addr_of[ph])]
                with m.If(too_many):
                    m.d.comb += halt.eq(1)
                    m.d.sync += self.error.eq(AsaError.TOO_MANY_TASKS)
                with m.Else():       # the first region's command goes out from the registers, in the next cycle
                    first = next_region(DECODE, hdr_beats_of)
                    m.d.sync += [phase.eq(first), cmd_pending.eq(first != RUN)]
            for ph in (TABLE, SUCC, DESC):
                with m.Case(ph):
                    with m.If(cmd_pending):
                        m.d.comb += [cmd.eq(1), cmd_addr.eq(region_addr[ph]), cmd_beats.eq(region_beats[ph])]
                        m.d.sync += cmd_pending.eq(0)
                    with m.If(region_last):
                        nxt = next_region(ph, region_beats)
                        m.d.sync += [phase.eq(nxt), rx.eq(0), cmd_pending.eq(nxt != RUN)]
        with m.If(bad_beat & (phase != IDLE)):
            m.d.comb += halt.eq(1)
            m.d.sync += self.error.eq(AsaError.AXI_ERROR)
        with m.If(self.busy & ~self.done):
            m.d.sync += counter.eq(counter + 1)

        # task-table rows: the table RAM, and per task its released-predecessor count (0) and adj (0)
        t_data, t_we, t_row = gathered["task_ram"]
        load_table = beat & (phase == TABLE) & t_we
        rows = [task_layout(t_data.word_select(i, TASK.width)[:task_layout.size]) for i in range(task_ram.per)]
        m.d.comb += [task_ram.wp.addr.eq(t_row), task_ram.wp.data.eq(t_data), task_ram.wp.en.eq(load_table)]
        for ram, what in ((succ_ram, SUCC), (desc_ram, DESC)):
            data, we, row_i = gathered[ram.name]
            m.d.comb += [ram.wp.addr.eq(row_i), ram.wp.data.eq(data), ram.wp.en.eq(beat & (phase == what) & we)]

        # ---------------- window slots ----------------
        def slot_sigs(name, shape):
            return [Signal(shape, name=f"slot{j}_{name}") for j in range(W)]
        s_valid, s_wait, s_ready = slot_sigs("valid", 1), slot_sigs("wait", 1), slot_sigs("ready", 1)
        s_task, s_first, s_count = slot_sigs("task", TB), slot_sigs("first", 16), slot_sigs("count", 8)
        s_pen, s_pred, s_est = slot_sigs("pred_en", 1), slot_sigs("pred", 8), slot_sigs("est", 24)
        s_sfirst, s_scount = slot_sigs("succ_first", 16), slot_sigs("succ_count", 8)
        s_mrank, s_key, s_adj = slot_sigs("mrank", MLOG_BITS), slot_sigs("key", signed(KEY_BITS)), \
            slot_sigs("adj", signed(ADJ_BITS))
        s_gate = slot_sigs("gate", 1)
        A = Array  # noqa: N806

        next_in = Signal(TB)
        # the entry pipeline: en (table RAM read) -> e2 (the row registered) -> e3 (mlog(rank) registered) -> slot
        en_valid, en_task, en_slot = Signal(), Signal(TB), Signal(range(W))
        e2_valid, e2_task, e2_slot = Signal(), Signal(TB), Signal(range(W))
        e3_valid, e3_task, e3_slot = Signal(), Signal(TB), Signal(range(W))
        taken = Signal(W)
        m.d.comb += taken.eq(Cat(s_valid) | Mux(en_valid, (Const(1, W) << en_slot)[:W], 0)
                             | Mux(e2_valid, (Const(1, W) << e2_slot)[:W], 0)
                             | Mux(e3_valid, (Const(1, W) << e3_slot)[:W], 0))
        free_slot = Signal(range(W))
        for j in reversed(range(W)):
            with m.If(~taken[j]):
                m.d.comb += free_slot.eq(j)
        in_run = phase == RUN
        # in RUN only a bad beat halts a run (too many tasks halts it in DECODE): the header's compares stay off
        # everything that runs
        running = in_run & ~bad_beat
        en_go = running & (next_in < ntasks) & ~taken.all()
        e_addr, e_data = task_ram.read()
        ec_addr, ec_data = count_ram.read(transparent=True)
        ea_addr, ea_data = adj_ram.read(transparent=True)
        m.d.comb += [e_addr.eq(next_in), ec_addr.eq(next_in), ea_addr.eq(next_in)]
        m.d.sync += [en_valid.eq(en_go), en_task.eq(next_in), en_slot.eq(free_slot)]
        with m.If(en_go):
            m.d.sync += next_in.eq(next_in + 1)

        # ---------------- release pipeline (declared here: the entering task needs its forward) ----------------
        s3_valid, s3_task, s3_adj = Signal(), Signal(TB), Signal(signed(ADJ_BITS))
        r3_addr, r3_data = count_ram.read(transparent=True)
        r3_new = Signal(8)
        m.d.comb += r3_new.eq(r3_data - 1)
        r3_ready = Signal()
        m.d.comb += r3_ready.eq(s3_valid & (r3_new == 0))
        # stage 4: the release is registered, then wakes its slot (no count RAM read in front of the pick's
        # comparison matrix)
        r4_ready, s4_task, s4_adj = Signal(), Signal(TB), Signal(signed(ADJ_BITS))
        m.d.sync += [r4_ready.eq(r3_ready), s4_task.eq(s3_task), s4_adj.eq(s3_adj)]

        # a release of the entering task in any stage is caught there (its count reaches 0 only once)
        e2_row, e2_ready, e2_adj = Signal(task_layout), Signal(), Signal(signed(ADJ_BITS))
        e3_row, e3_ready, e3_adj = Signal(task_layout), Signal(), Signal(signed(ADJ_BITS))
        e3_mrank = Signal(MLOG_BITS)
        e1_fwd, e2_fwd, e3_fwd = (r4_ready & (s4_task == t) for t in (en_task, e2_task, e3_task))
        m.d.sync += [e2_valid.eq(en_valid), e2_task.eq(en_task), e2_slot.eq(en_slot),
                     e2_row.eq(e_data[:task_layout.size]), e2_ready.eq(e1_fwd | (ec_data == 0)),
                     e2_adj.eq(Mux(e1_fwd, s4_adj, ea_data.as_signed())),
                     e3_valid.eq(e2_valid), e3_task.eq(e2_task), e3_slot.eq(e2_slot), e3_row.eq(e2_row),
                     e3_ready.eq(e2_ready | e2_fwd), e3_adj.eq(Mux(e2_fwd, s4_adj, e2_adj)),
                     e3_mrank.eq(mlog_hw(m, e2_row.rank, "entry_mrank"))]
        et = e3_row
        e_adj = Mux(e3_fwd, s4_adj, e3_adj)
        with m.If(e3_valid):
            for j in range(W):
                with m.If(e3_slot == j):
                    m.d.sync += [s_valid[j].eq(1), s_wait[j].eq(1), s_ready[j].eq(e3_ready | e3_fwd),
                                 s_task[j].eq(e3_task), s_first[j].eq(et.first), s_count[j].eq(et.count),
                                 s_pen[j].eq(et.pred_en), s_pred[j].eq(et.pred), s_est[j].eq(et.est),
                                 s_sfirst[j].eq(et.succ_first), s_scount[j].eq(et.succ_count),
                                 s_mrank[j].eq(e3_mrank), s_adj[j].eq(e_adj), s_gate[j].eq(et.gate != GateOp.NONE),
                                 s_key[j].eq(Mux(adaptive, e3_mrank + e_adj, et.rank))]

        # ---------------- pick: argmax (key, -task) over ready waiting slots ----------------
        # Which of two slots wins is kept as a registered matrix, beats[j][i] = (key, -task) of j > that of i,
        # recomputed every cycle from the slot registers; the pick is then the candidate that beats every other
        # candidate, two levels of logic instead of a comparator tree. A slot whose values were just written is
        # held back one cycle while its row of the matrix is computed: an entering one (``s_new``) and, under
        # ``adaptive``, one whose key its release just changed (``s_rekeyed``: ``rekey_latency``).
        head = Signal(TB)                                   # in_order: the lowest task not yet issued
        s_new, s_rekeyed = slot_sigs("new", 1), slot_sigs("rekeyed", 1)
        m.d.sync += [s_new[j].eq(e3_valid & (e3_slot == j)) for j in range(W)]
        visible = [s_valid[j] & s_wait[j] & ~s_new[j] for j in range(W)]
        # in_order: whether a slot holds the head task, registered (both compares are made every cycle, for head
        # and head + 1, so only a select waits for this cycle's pick)
        at_head = slot_sigs("at_head", 1)
        # a pick in c is applied (issued or skipped) in c + 1, which picks nothing (``pick_latency``): the winner,
        # whether it is skipped and whether an engine was free are registered in c, so no loop of pick -> issue ->
        # the slots' flags -> the next pick has to close in one cycle
        pick_valid = Signal()
        cand = [visible[j] & s_ready[j] & ~s_rekeyed[j] & (~in_order | at_head[j]) & ~pick_valid for j in range(W)]
        key_next = [Signal(signed(KEY_BITS), name=f"slot{j}_key_next") for j in range(W)]
        # which slot a release of stage 4 wakes, and its key then, are worked out in stage 3 (against the slots
        # and the task entering one in that cycle) and registered: no compare or add in front of the matrix
        wake_match = [Signal(name=f"slot{j}_wake_match") for j in range(W)]
        wake_key = [Signal(signed(KEY_BITS), name=f"slot{j}_wake_key") for j in range(W)]
        for j in range(W):
            entering = e3_valid & (e3_slot == j)
            m.d.sync += [wake_match[j].eq((s_valid[j] | entering) & (Mux(entering, e3_task, s_task[j]) == s3_task)),
                         wake_key[j].eq(Mux(entering, e3_mrank, s_mrank[j]) + s3_adj)]
        wakes = [r4_ready & wake_match[j] for j in range(W)]
        for j in range(W):
            m.d.comb += key_next[j].eq(Mux(wakes[j] & adaptive, wake_key[j], s_key[j]))
        m.d.sync += [s_rekeyed[j].eq(wakes[j] & adaptive) for j in range(W)]
        # one unsigned order: the key (offset binary) above the task number inverted (ties to the lower task)
        order = [Cat(~s_task[j], s_key[j].as_unsigned() ^ (1 << (KEY_BITS - 1))) for j in range(W)]
        beats = {}
        for j in range(W):
            for i in range(j + 1, W):
                beats[j, i] = Signal(name=f"beats{j}_{i}")
                m.d.sync += beats[j, i].eq(order[j] > order[i])
                beats[i, j] = ~beats[j, i]
        winner = Signal(W)
        for j in range(W):
            m.d.comb += winner[j].eq(cand[j] & Cat(~cand[i] | beats[j, i] for i in range(W) if i != j).all())
        pick = Signal(range(W))
        for bit in range(max(1, ceil_log2(W))):
            m.d.comb += pick[bit].eq((winner & sum(1 << j for j in range(W) if (j >> bit) & 1)) != 0)
        has_pick = Cat(cand).any() & running
        preds = Signal(P)
        pred_bits = Cat(preds, Const(0, max(0, 256 - P)))
        # whether each slot's task would be skipped does not depend on the pick
        skips = Cat(s_pen[j] & ~pred_bits.bit_select(s_pred[j], 1) for j in range(W))
        winner_q, skips_q, pick_slot = Signal(W), Signal(W), Signal(range(W))
        m.d.sync += [pick_valid.eq(has_pick), winner_q.eq(winner), skips_q.eq(skips), pick_slot.eq(pick)]
        skip = running & pick_valid & (winner_q & skips_q).any()

        # ---------------- engines: issue, feed, completion ----------------
        e_busy = [Signal(name=f"eng{e}_busy") for e in range(E)]
        free_eng = Signal(range(max(E, 2)))
        for e in reversed(range(E)):
            with m.If(~e_busy[e]):
                m.d.comb += free_eng.eq(e)
        any_free = ~Cat(e_busy).all()
        was_free = Signal()                                 # an engine was free in the pick's cycle
        m.d.sync += was_free.eq(any_free)
        runs = running & pick_valid & ~(winner_q & skips_q).any()      # the pick applied runs on an engine
        issue = runs & any_free
        waiting_any = Cat(visible).any()
        m.d.comb += [self.picked.eq(issue | skip), self.picked_task.eq(A(s_task)[pick_slot]),
                     self.picked_engine.eq(free_eng), self.picked_skip.eq(skip)]
        advance = issue | skip
        for j in range(W):
            task_next = Mux(e3_valid & (e3_slot == j), e3_task, s_task[j])
            m.d.sync += at_head[j].eq(Mux(advance, task_next == head + 1, task_next == head))
        # the issue's engine side runs from registers in the next cycle: which slot, which engine
        issued_q, pick_q, eng_q = Signal(), Signal(range(W)), Signal(range(max(E, 2)))
        m.d.sync += [issued_q.eq(issue), pick_q.eq(pick_slot), eng_q.eq(free_eng)]
        with m.If(advance):
            m.d.sync += head.eq(head + 1)
            for j in range(W):
                with m.If(winner_q[j]):
                    m.d.sync += s_wait[j].eq(0)
        with m.If(issue):
            m.d.sync += self.issued.eq(self.issued + 1)
        with m.If(skip):
            m.d.sync += self.skipped.eq(self.skipped + 1)
        # a pick that runs stalls for an engine in its own cycle and in the one that applies it: both are
        # counted when it is applied, from the registered engine state of the first
        m.d.sync += self.stall_no_engine.eq(self.stall_no_engine + (runs & ~was_free) + (runs & ~any_free))
        with m.If(running & ~pick_valid & ~has_pick & waiting_any):
            m.d.sync += self.stall_not_ready.eq(self.stall_not_ready + 1)

        eng_push, gate_push_in = [], []
        for e in range(E):
            port = self.tasks(e)
            all_taken = Signal(name=f"eng{e}_all_taken")
            slot = Signal(range(W), name=f"eng{e}_slot")
            est, is_gate = Signal(24, name=f"eng{e}_est"), Signal(name=f"eng{e}_gate")
            # the descriptors flow RAM -> the RAM's output (``held``) -> the port's payload (its output register):
            # the next one waits in the RAM's output while the engine has not taken the one on the port, so a
            # descriptor is offered every cycle and the payload leaves a register (``feed_latency``)
            rd_idx, rd_left = Signal(16, name=f"eng{e}_rd_idx"), Signal(8, name=f"eng{e}_rd_left")
            left, held = Signal(8, name=f"eng{e}_left"), Signal(name=f"eng{e}_held")
            d_addr, d_en, d_take, d_data = desc_ram.read(e)
            take = port.valid & port.ready
            to_port = held & (~port.valid | take)
            read = (~held | to_port) & (rd_left != 0)
            m.d.comb += [d_addr.eq(rd_idx), d_en.eq(read), d_take.eq(to_port), port.payload.eq(d_data)]
            with m.If(read):
                m.d.sync += [rd_idx.eq(rd_idx + 1), rd_left.eq(rd_left - 1), held.eq(1)]
            with m.Elif(to_port):
                m.d.sync += held.eq(0)
            with m.If(to_port):
                m.d.sync += port.valid.eq(1)
            with m.Elif(take):
                m.d.sync += port.valid.eq(0)
            with m.If(issue & (free_eng == e)):
                m.d.sync += e_busy[e].eq(1)
            with m.If(issued_q & (eng_q == e)):
                m.d.sync += [rd_idx.eq(A(s_first)[pick_q]), rd_left.eq(A(s_count)[pick_q]),
                             left.eq(A(s_count)[pick_q]), slot.eq(pick_q), est.eq(A(s_est)[pick_q]),
                             is_gate.eq(A(s_gate)[pick_q])]
            with m.If(take):
                m.d.sync += left.eq(left - 1)
                with m.If(left == 1):
                    m.d.sync += all_taken.eq(1)
            finish = e_busy[e] & all_taken & self.idle[e]
            with m.If(finish):
                m.d.sync += [e_busy[e].eq(0), all_taken.eq(0)]
            with m.If(~running):
                m.d.sync += [e_busy[e].eq(0), all_taken.eq(0), rd_left.eq(0), held.eq(0), port.valid.eq(0)]
            # adj = mlog(f - issue) - mlog(est) at the finish f, from registers: ``since`` counts c + 2 - issue and
            # each log takes two stages (the msb's position registered, then the shift), so mt holds mlog(c - issue)
            # in every cycle c from issue + 4 on and me holds mlog(est) from then (a task's last descriptor is taken
            # in issue + feed_latency at the earliest, so it finishes in issue + 5 or later); no subtraction and
            # no 32-bit log stands in front of the slot's adj
            since = Signal(COUNTER_BITS, name=f"eng{e}_since")
            m.d.sync += since.eq(since + 1)
            with m.If(issued_q & (eng_q == e)):
                m.d.sync += since.eq(4)
            mt, me = Signal(signed(ADJ_BITS), name=f"eng{e}_mt"), Signal(signed(ADJ_BITS), name=f"eng{e}_me")
            m.d.sync += [mt.eq(mlog_hw(m, since, f"eng{e}_mlog_time", staged=True)),
                         me.eq(mlog_hw(m, est, f"eng{e}_mlog_est", staged=True))]
            adj = Signal(signed(ADJ_BITS), name=f"eng{e}_adj")
            m.d.comb += adj.eq(mt - me)
            with m.If(finish):
                for j in range(W):
                    with m.If(slot == j):
                        m.d.sync += s_adj[j].eq(adj)
            # pushes are gated by the phase only: one pushed in the cycle a run halts is never popped (the next
            # run's start clears the FIFOs), and the halt (an AXI error, combinational) stays off the FIFO's logic
            eng_push.append((finish & ~is_gate & in_run, slot))
            gate_push_in.append((finish & is_gate & in_run, slot))

        # ---------------- gate unit ----------------
        g_state = Signal(range(9))
        G_IDLE, G_ADDR, G_FETCH, G_DERIVE, G_SIZE, G_CMD, G_READ, G_WAIT, G_PROC = range(9)
        gq_head, gq_any, gq_pop = _multi_fifo(m, "gate_q", W, ceil_log2(max(W, 2)), gate_push_in, go)
        g_slot = Signal(range(W))
        ga_addr, ga_data = task_ram.read()
        g_task = Signal(TB)                        # the task taken, registered before it addresses the table
        m.d.comb += ga_addr.eq(g_task)
        gt = task_layout(ga_data[:task_layout.size])
        # the fields as the table holds them, latched straight from the RAM (nothing stands between a block RAM's
        # output and its register), then what the unit works with, derived from them a cycle later
        f_gate, f_rows, f_cols = Signal.like(gt.gate), Signal.like(gt.gate_rows), Signal.like(gt.gate_cols)
        f_k, f_tile_rows = Signal.like(gt.gate_k), Signal.like(gt.gate_tile_rows)
        g_op, g_base, g_rows, g_cols = Signal(2), Signal(8), Signal(16), Signal(8)
        g_k, g_cap, g_tile_rows, g_thr = Signal(4), Signal(16), Signal(16), Signal(signed(32))
        g_tiles, g_blocks, g_beats = Signal(16), Signal(8), Signal(32)
        # g_tiles = ceil(gate_rows / gate_tile_rows) by restoring division, one quotient bit per cycle from the
        # cycle after G_DERIVE on (a divider in one cycle would be the slowest path of the chip by far)
        div_n = Signal(self.gate_div_cycles)       # dividend, its next bit at the top
        div_r = Signal(self.gate_div_cycles)       # remainder, always < the divisor
        div_left = Signal(range(self.gate_div_cycles + 1))
        div_r2 = Cat(div_n[-1], div_r)
        div_ge = div_r2 >= g_tile_rows
        with m.If(div_left != 0):
            m.d.sync += [div_n.eq(div_n << 1), div_r.eq(Mux(div_ge, div_r2 - g_tile_rows, div_r2)),
                         g_tiles.eq(Cat(div_ge, g_tiles[:-1])), div_left.eq(div_left - 1)]
        div_done = div_left <= 1                  # the quotient is complete from the next cycle on
        lanes_log = exact_log2(cfg.engine.lanes)
        line_beats = cfg.out_line_bits // beat_bits            # beats per output line (0: lines per beat > 1)
        g_lines = g_rows * g_blocks
        g_lines_beats = g_lines * line_beats if line_beats else \
            (g_lines + beat_bits // cfg.out_line_bits - 1) >> exact_log2(beat_bits // cfg.out_line_bits)
        g_addr = Signal(ADDR_BITS)
        m.d.comb += gq_pop.eq((g_state == G_IDLE) & gq_any & running)
        g_push = Signal()
        gate_last = Signal()
        with m.Switch(g_state):
            with m.Case(G_IDLE):
                with m.If(gq_pop):
                    m.d.sync += [g_state.eq(G_ADDR), g_slot.eq(gq_head), g_task.eq(A(s_task)[gq_head])]
            with m.Case(G_ADDR):                  # the table RAM reads the task's row
                m.d.sync += g_state.eq(G_FETCH)
            with m.Case(G_FETCH):                 # the task's gate fields arrive from the table RAM
                m.d.sync += [g_state.eq(G_DERIVE), f_gate.eq(gt.gate), f_rows.eq(gt.gate_rows),
                             f_cols.eq(gt.gate_cols), f_k.eq(gt.gate_k), f_tile_rows.eq(gt.gate_tile_rows),
                             g_base.eq(gt.gate_base), g_addr.eq(gt.gate_addr), g_cap.eq(gt.gate_capacity),
                             g_thr.eq(gt.gate_threshold.as_signed())]
            with m.Case(G_DERIVE):                # the row tiles, the lane blocks and the dividend
                tr = Mux(f_tile_rows == 0, 1, f_tile_rows)
                m.d.sync += [g_state.eq(G_SIZE), g_op.eq(f_gate), g_rows.eq(f_rows), g_cols.eq(f_cols),
                             g_k.eq(Mux(f_gate == GateOp.TOPK, f_k, 0)), g_tile_rows.eq(tr),
                             g_blocks.eq((f_cols + cfg.engine.lanes - 1) >> lanes_log),
                             div_n.eq(f_rows + tr - 1), div_r.eq(0), div_left.eq(self.gate_div_cycles)]
                with m.If((f_rows == 0) | (f_cols == 0)):   # no values: nothing to read or divide
                    m.d.sync += g_state.eq(G_PROC)
            with m.Case(G_SIZE):                  # the values' size, a registered multiply
                m.d.sync += [g_state.eq(G_CMD), g_beats.eq(g_lines_beats)]
            with m.Case(G_CMD):
                m.d.comb += [cmd.eq(1), cmd_addr.eq(g_addr), cmd_beats.eq(g_beats)]
                m.d.sync += [g_state.eq(G_READ), rx.eq(0)]
            with m.Case(G_READ):
                with m.If(beat & (rx == g_beats - 1)):
                    m.d.sync += g_state.eq(Mux(div_done, G_PROC, G_WAIT))
            with m.Case(G_WAIT):
                with m.If(div_done):
                    m.d.sync += g_state.eq(G_PROC)
            with m.Case(G_PROC):
                with m.If(gate_last):
                    m.d.comb += g_push.eq(1)
                    m.d.sync += g_state.eq(G_IDLE)
        with m.If(~running):
            m.d.sync += g_state.eq(G_IDLE)
        gd, gwe, grow = gathered["gate_ram"]
        m.d.comb += [gate_ram.wp.addr.eq(grow), gate_ram.wp.data.eq(gd),
                     gate_ram.wp.en.eq(beat & (g_state == G_READ) & (phase == RUN) & gwe)]

        # gate processing: ``cur`` is the step done in this cycle, ``nxt`` the next (its value read now)
        # STEP_A: a value per cycle (it is registered, then sorted in or compared in the next cycle); GAP: the
        # row's last value is sorted in; STEP_B: a pick per cycle; DRAIN: the last bit is worked out; END: written
        PRE, STEP_A, GAP, STEP_B, DRAIN, END = range(6)
        # c_bit / n_bit: the column's first predicate bit offset of TOPK, c_c * g_tiles kept as a running sum.
        # What decides the next step is registered with the step: whether another column / row / pick follows
        # (c_more_c: c_c + 1 < g_cols, c_more_r, c_more_b), whether the row ends its tile (c_tile_end), and the
        # value's RAM line (c_line = the row's base + c_c / lanes; c_next_rb: the next row's base), so no compare
        # or add stands between a step's counters and the next step's RAM address
        c_ph, c_r, c_c, c_b = Signal(3), Signal(16), Signal(8), Signal(4)
        c_ti, c_tr, c_bit = Signal(16), Signal(16), Signal(24)
        c_more_c, c_more_r, c_more_b, c_tile_end = Signal(), Signal(), Signal(), Signal()
        c_line, c_next_rb = Signal(24), Signal(24)
        n_ph, n_r, n_c, n_b = Signal(3), Signal(16), Signal(8), Signal(4)
        n_ti, n_tr, n_bit = Signal(16), Signal(16), Signal(24)
        n_more_c, n_more_r, n_more_b, n_tile_end = Signal(), Signal(), Signal(), Signal()
        n_line, n_next_rb = Signal(24), Signal(24)
        m.d.comb += [n_ph.eq(c_ph), n_r.eq(c_r), n_c.eq(c_c), n_b.eq(c_b), n_ti.eq(c_ti), n_tr.eq(c_tr),
                     n_bit.eq(c_bit), n_more_c.eq(c_more_c), n_more_r.eq(c_more_r), n_more_b.eq(c_more_b),
                     n_tile_end.eq(c_tile_end), n_line.eq(c_line), n_next_rb.eq(c_next_rb)]

        def first_column():
            m.d.comb += [n_c.eq(0), n_bit.eq(0), n_more_c.eq(1 < g_cols)]

        def new_row():
            with m.If(c_more_r):
                first_column()
                m.d.comb += [n_ph.eq(STEP_A), n_r.eq(c_r + 1), n_more_r.eq(c_r + 2 < g_rows),
                             n_line.eq(c_next_rb), n_next_rb.eq(c_next_rb + g_blocks),
                             n_ti.eq(c_ti + c_tile_end), n_tr.eq(Mux(c_tile_end, 0, c_tr + 1)),
                             n_tile_end.eq(Mux(c_tile_end, 1 == g_tile_rows, c_tr + 2 == g_tile_rows))]
            with m.Else():
                m.d.comb += n_ph.eq(DRAIN)
        with m.Switch(c_ph):
            with m.Case(PRE):
                with m.If((g_rows == 0) | (g_cols == 0)):
                    m.d.comb += n_ph.eq(DRAIN)
                with m.Else():
                    first_column()
                    m.d.comb += [n_ph.eq(STEP_A), n_r.eq(0), n_ti.eq(0), n_tr.eq(0), n_more_r.eq(1 < g_rows),
                                 n_tile_end.eq(1 == g_tile_rows), n_line.eq(0), n_next_rb.eq(g_blocks)]
            with m.Case(STEP_A):
                with m.If(c_more_c):
                    block_end_c = c_c[:lanes_log].all() if lanes_log else Const(1)
                    m.d.comb += [n_c.eq(c_c + 1), n_bit.eq(c_bit + g_tiles), n_more_c.eq(c_c + 2 < g_cols),
                                 n_line.eq(c_line + block_end_c)]
                with m.Elif(g_k != 0):
                    m.d.comb += n_ph.eq(GAP)
                with m.Else():
                    new_row()
            with m.Case(GAP):
                m.d.comb += [n_ph.eq(STEP_B), n_b.eq(0), n_more_b.eq(1 < g_k)]
            with m.Case(STEP_B):
                with m.If(c_more_b):
                    m.d.comb += [n_b.eq(c_b + 1), n_more_b.eq(c_b + 2 < g_k)]
                with m.Else():
                    new_row()
            with m.Case(DRAIN):
                m.d.comb += n_ph.eq(END)
        proc = (g_state == G_PROC) & running
        m.d.comb += gate_last.eq(proc & (c_ph == END))     # the last step's bit is written in this cycle
        with m.If(proc):
            m.d.sync += [c_ph.eq(n_ph), c_r.eq(n_r), c_c.eq(n_c), c_b.eq(n_b), c_ti.eq(n_ti), c_tr.eq(n_tr),
                         c_bit.eq(n_bit), c_more_c.eq(n_more_c), c_more_r.eq(n_more_r), c_more_b.eq(n_more_b),
                         c_tile_end.eq(n_tile_end), c_line.eq(n_line), c_next_rb.eq(n_next_rb)]
        with m.Else():
            m.d.sync += c_ph.eq(PRE)
        gv_addr, gv_data = gate_ram.read()
        m.d.comb += gv_addr.eq(n_line)
        acc = cfg.engine.acc_bits
        # the step's value is registered straight from the RAM (a_*: the step of the cycle before)
        value, a_step, a_c, a_bit = Signal(signed(acc)), Signal(), Signal(8), Signal(24)
        step_a = proc & (c_ph == STEP_A)
        m.d.sync += [value.eq(gv_data.word_select(c_c[:lanes_log] if lanes_log else 0, acc)), a_step.eq(step_a),
                     a_c.eq(c_c), a_bit.eq(c_bit)]
        step_b = proc & (c_ph == STEP_B)
        start_proc = proc & (c_ph == PRE)

        # TOPK: the row's best gate_k (value, column) so far, sorted (ties: the earlier column first)
        tv = [Signal(signed(acc), name=f"topk{i}_v") for i in range(TOPK_MAX)]
        tc = [Signal(8, name=f"topk{i}_c") for i in range(TOPK_MAX)]
        tb = [Signal(24, name=f"topk{i}_bit") for i in range(TOPK_MAX)]     # tc * g_tiles
        tvl = [Signal(name=f"topk{i}_valid") for i in range(TOPK_MAX)]
        ge = [tvl[i] & (a_c != 0) & (tv[i] >= value) for i in range(TOPK_MAX)]
        with m.If(a_step):
            for i in range(TOPK_MAX):
                with m.If(~ge[i]):
                    if i == 0:
                        m.d.sync += [tv[i].eq(value), tc[i].eq(a_c), tb[i].eq(a_bit), tvl[i].eq(1)]
                    else:
                        with m.If(ge[i - 1]):
                            m.d.sync += [tv[i].eq(value), tc[i].eq(a_c), tb[i].eq(a_bit), tvl[i].eq(1)]
                        with m.Else():
                            m.d.sync += [tv[i].eq(tv[i - 1]), tc[i].eq(tc[i - 1]), tb[i].eq(tb[i - 1]),
                                         tvl[i].eq(tvl[i - 1] & (a_c != 0))]
        # the picks take the list's head, one per STEP_B cycle, and the list moves up behind it (no select by the
        # pick's number in front of the predicate's add); the next row's first value starts a new list
        with m.Elif(step_b):
            for i in range(TOPK_MAX):
                nxt = i + 1 < TOPK_MAX
                m.d.sync += [tv[i].eq(tv[i + 1] if nxt else 0), tc[i].eq(tc[i + 1] if nxt else 0),
                             tb[i].eq(tb[i + 1] if nxt else 0), tvl[i].eq(tvl[i + 1] if nxt else 0)]
        # a step's predicate bit is worked out in its cycle and written in the next (stage 2): a RAM read, a
        # select and an add in front of every predicate's compare were the scheduler's slowest path. A row's
        # picks are distinct columns and its first pick comes gate_cols steps after the last of the row
        # before, so stage 2's capacity check never misses a count still in flight.
        # each column's room (gate_capacity less its picks so far) and whether it has any, a register of its own:
        # the capacity check is one bit picked by the column, not a count's compare in front of the predicates
        room = [Signal(16, name=f"gate_room{j}") for j in range(P)]
        has_room = Signal(P)
        s2_pick, s2_col, s2_topk = Signal(), Signal(8), Signal(32)
        s2_thr, s2_bit_thr = Signal(), Signal(9)
        m.d.sync += [s2_pick.eq(step_b & tvl[0] & (tc[0] < P)), s2_col.eq(tc[0]), s2_topk.eq(g_base + tb[0] + c_ti),
                     s2_thr.eq(a_step & (g_op == GateOp.THRESHOLD) & (value > g_thr)), s2_bit_thr.eq(g_base + a_c)]
        apply = Signal()
        m.d.comb += apply.eq(s2_pick & has_room.bit_select(s2_col[:ceil_log2(P)], 1))
        # the block to clear, registered in the first cycle of processing and cleared in the second
        clear, block_end = Signal(), Signal(32)
        m.d.sync += [clear.eq(start_proc),
                     block_end.eq(g_base + Mux(g_op == GateOp.TOPK, g_cols * g_tiles, g_cols))]
        with m.If(start_proc):
            m.d.sync += [*(r.eq(g_cap) for r in room), has_room.eq(Mux(g_cap != 0, (1 << P) - 1, 0))]
        for j in range(P):
            with m.If(apply & (s2_col == j)):
                m.d.sync += [room[j].eq(room[j] - 1), has_room[j].eq(room[j] != 1)]
        for q in range(P):
            with m.If(clear & (q >= g_base) & (q < block_end)):
                m.d.sync += preds[q].eq(0)
            with m.If((apply & (s2_topk == q)) | (s2_thr & (s2_bit_thr == q))):
                m.d.sync += preds[q].eq(1)

        # ---------------- completions: FIFO and release ----------------
        pushes = [*eng_push, (in_run & pick_valid & (winner_q & skips_q).any(), pick_slot), (g_push, g_slot)]
        q_head, q_any, q_take = _multi_fifo(m, "done_q", W, ceil_log2(max(W, 2)), pushes, go)
        walking, w_ptr, w_left = Signal(), Signal(16), Signal(8)
        w_adj = Signal(signed(ADJ_BITS))
        completed = Signal(TB + 1)
        # the FIFO's head completion and its slot's successor list and adj are registered (``hd_*``) before it
        # is popped: a completion pushed in c may be popped from c + ``pop_latency``. A completion popped in p
        # registers its list, walked from p + 1 (``walk_latency``), one entry per cycle (none: one cycle); the
        # next one may be popped in the last cycle of the walk
        hd_valid, c_head, hd_task = Signal(), Signal(range(W)), Signal(TB)
        hd_first, hd_count, hd_adj = Signal.like(s_sfirst[0]), Signal.like(s_scount[0]), Signal(signed(ADJ_BITS))
        walk_last = walking & (w_left <= 1)
        c_pop = Signal()
        m.d.comb += [c_pop.eq(running & hd_valid & (~walking | walk_last)),
                     q_take.eq(running & q_any & (~hd_valid | c_pop))]
        with m.If(q_take):
            m.d.sync += [hd_valid.eq(1), c_head.eq(q_head), hd_task.eq(A(s_task)[q_head]),
                         hd_first.eq(A(s_sfirst)[q_head]), hd_count.eq(A(s_scount)[q_head]),
                         hd_adj.eq(A(s_adj)[q_head])]
        with m.Elif(c_pop):
            m.d.sync += hd_valid.eq(0)
        with m.If(go):
            m.d.sync += hd_valid.eq(0)
        m.d.comb += [self.released.eq(c_pop), self.released_task.eq(hd_task)]
        ent_valid = walking & (w_left != 0)
        sr_addr, sr_data = succ_ram.read()
        m.d.comb += sr_addr.eq(w_ptr)
        with m.If(walking):
            m.d.sync += [w_ptr.eq(w_ptr + 1), w_left.eq(w_left - 1)]
            with m.If(walk_last):
                m.d.sync += walking.eq(0)
        with m.If(c_pop):
            for j in range(W):
                with m.If(c_head == j):
                    m.d.sync += s_valid[j].eq(0)
            m.d.sync += [walking.eq(1), w_ptr.eq(hd_first), w_left.eq(hd_count), w_adj.eq(hd_adj)]
        with m.If(walk_last):
            m.d.sync += completed.eq(completed + 1)
        # stage 2: the successor's count is read; stage 3: written back, the successor released at zero;
        # stage 4 (above): its slot woken and its adj written from the registered release (no count read, minus
        # one and zero test in front of the adj RAM's write enable); an entering task that reads its adj a
        # cycle early takes the release's from the forwards of its stages 2 and 3
        s2_valid, s2_adj = Signal(), Signal(signed(ADJ_BITS))
        m.d.sync += [s2_valid.eq(ent_valid & running), s2_adj.eq(w_adj),
                     s3_valid.eq(s2_valid & running), s3_task.eq(sr_data), s3_adj.eq(s2_adj)]
        m.d.comb += r3_addr.eq(Mux(s2_valid, sr_data, 0))
        def one_lane(t):
            return Const(1, count_ram.per) << (t[:count_ram.sel_bits] if count_ram.sel_bits else Const(0, 1))
        with m.If(phase == TABLE):
            m.d.comb += [count_ram.wp.addr.eq(t_row), count_ram.wp.data.eq(Cat(rw.deps for rw in rows)),
                         count_ram.wp.en.eq(Mux(load_table, (1 << task_ram.per) - 1, 0)),
                         adj_ram.wp.addr.eq(t_row), adj_ram.wp.data.eq(0),
                         adj_ram.wp.en.eq(Mux(load_table, (1 << task_ram.per) - 1, 0))]
        with m.Else():
            m.d.comb += [count_ram.wp.addr.eq(s3_task >> count_ram.sel_bits),
                         count_ram.wp.data.eq(r3_new.replicate(count_ram.per)),
                         count_ram.wp.en.eq(Mux(s3_valid, one_lane(s3_task), 0)),
                         adj_ram.wp.addr.eq(s4_task >> adj_ram.sel_bits),
                         adj_ram.wp.data.eq(s4_adj.as_unsigned().replicate(adj_ram.per)),
                         adj_ram.wp.en.eq(Mux(r4_ready, one_lane(s4_task), 0))]
        for j in range(W):
            with m.If(wakes[j]):
                m.d.sync += [s_ready[j].eq(1), s_adj[j].eq(s4_adj), s_key[j].eq(key_next[j])]

        # ---------------- run start / end ----------------
        with m.If(go):
            m.d.sync += [next_in.eq(0), head.eq(0), completed.eq(0), walking.eq(0), en_valid.eq(0), e2_valid.eq(0),
                         e3_valid.eq(0), r4_ready.eq(0),
                         self.issued.eq(0), self.skipped.eq(0), self.stall_no_engine.eq(0),
                         self.stall_not_ready.eq(0), preds.eq(0)]
            m.d.sync += [s.eq(0) for s in s_valid]
        with m.If(running & ((walk_last & (completed + 1 == ntasks)) | (ntasks == 0))):
            m.d.sync += [phase.eq(IDLE), self.busy.eq(0), self.done.eq(1)]
        with m.If(halt):
            m.d.sync += [phase.eq(IDLE), self.busy.eq(0)]
        m.d.comb += self.predicates.eq(preds)
        return m

