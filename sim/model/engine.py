"""Cycle model of the DSA engine: same outputs as the RTL and, for the engine alone, the same cycle count.

Per tile the model is vectorised: one numpy pass reads A back from the L1 image (every format) and finds
every row's encode time Σ_w max(1, marked elements in scan word w). Only the dispatcher, which hands jobs
to the lowest free row unit one per cycle, is a short loop over jobs (never over cycles). Every latency
comes from the timing contracts the RTL components inherit (``hwgen/spec/timing.py``: RowUnitTiming,
EngineTiming, ...), so a pipeline change moves both.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hwgen.spec import isa
from hwgen.spec.config import HwConfig
from hwgen.spec.layout import INDEX_BYTES, PTR_BYTES, Layout
from hwgen.spec.page_table import PageFault, PageTable
from hwgen.spec.program import Program, Result, decode_output, hbm_lines, output_lines, output_words, unpermute_rows
from hwgen.spec.timing import EngineTiming, ResultWriterTiming, RowUnitTiming, TopkPathTiming
from sim.model.memory.dma import DmaUnits, out_lines_to_bytes
from sim.model.memory.energy import energy_report
from sim.model.memory.l3_slices import memory_side


@dataclass
class Scan:
    """A as the row units see it, rows in stored order."""
    a: np.ndarray            # int8 (M, K): the logical values
    passing: np.ndarray      # bool (M, K): elements that reach the MACs (gemm: all)
    row_cycles: np.ndarray   # int64 (M,): Σ over the row's scan words of max(1, marked)
    marked: np.ndarray       # int64 (M,): elements the compactor emits per job of the row
    words: np.ndarray        # int64 (M,): scan words (L1 lines on the A port) per job of the row


def _lines(l1: np.ndarray, start: int, nbytes: int) -> np.ndarray:
    return l1[start:].reshape(-1)[:nbytes]


def _word_costs(counts: np.ndarray) -> np.ndarray:
    """(M, words) marked counts -> per-row encode cycles: an empty word still costs one."""
    return np.maximum(counts, 1).sum(axis=1)


def scan(cfg: HwConfig, f: dict[str, int], l1: np.ndarray) -> Scan:
    """Decode A from the image and count what each row costs the zero compactor."""
    lay, W = Layout.of(cfg), cfg.line_bytes
    m, k, thr = f["m"], f["k"], f["threshold"]
    fmt, gemm = f["a_format"], f["opcode"] == isa.Opcode.GEMM

    def counts_of(flags: np.ndarray) -> np.ndarray:  # (M, words*W) -> (M, words)
        return flags.reshape(m, -1, W).sum(axis=2)

    def passes(v: np.ndarray) -> np.ndarray:
        return (v != 0) & (np.abs(v.astype(np.int16)) >= thr)

    if fmt == isa.AFormat.DENSE:
        nw = lay.words(k)
        rows = _lines(l1, f["a_addr"], m * nw * W).reshape(m, nw * W).view(np.int8)
        inside = np.arange(nw * W) < k
        marks = np.broadcast_to(inside, rows.shape) if gemm else passes(rows) & inside
        a = rows[:, :k].copy()
        passing = np.ones((m, k), bool) if gemm else marks[:, :k]
        return Scan(a, passing, _word_costs(counts_of(marks)), marks.sum(axis=1), np.full(m, nw))

    if fmt == isa.AFormat.BITMASK:
        nw = lay.words(k)
        bits = np.unpackbits(_lines(l1, f["a_addr"], lay.mask_lines(m, k) * W), bitorder="little")
        marks = bits[:m * nw * W].reshape(m, nw * W).astype(bool)
        ptr = _lines(l1, f["a_ptr"], (m + 1) * PTR_BYTES).view("<u4")
        full = np.zeros((m, nw * W), dtype=np.int8)
        full[marks] = _lines(l1, f["a_meta"], int(ptr[-1])).view(np.int8)
        a = full[:, :k]
        return Scan(a, passes(a), _word_costs(counts_of(marks)), marks.sum(axis=1), np.full(m, nw))

    if fmt == isa.AFormat.NM:
        n_log2, m_log2 = f["nm_n_log2"], f["nm_m_log2"]
        kept = lay.nm_kept(k, n_log2, m_log2)
        nw = lay.words(kept)
        vals = _lines(l1, f["a_addr"], m * nw * W).reshape(m, nw * W).view(np.int8)
        bits = 1 << lay.nm_meta_bits_log2(m_log2)
        raw = np.unpackbits(_lines(l1, f["a_meta"], m * nw * W * bits // 8), bitorder="little")
        idx = (raw.reshape(m, nw * W, bits).astype(np.int64) << np.arange(bits)).sum(axis=2)
        stored = np.arange(nw * W) < kept
        marks = passes(vals) & stored
        group_size = 1 << m_log2
        cols = (np.arange(nw * W) >> n_log2) * group_size + idx
        full = np.zeros((m, (kept >> n_log2) * group_size + 1), dtype=np.int8)   # + a column for padding
        np.put_along_axis(full, np.where(stored, cols, full.shape[1] - 1), np.where(stored, vals, 0), axis=1)
        a = full[:, :k].copy()
        return Scan(a, passes(a), _word_costs(counts_of(marks)), marks.sum(axis=1), np.full(m, nw))

    # CSR: row i scans the value lines that hold entries ptr[i] .. ptr[i+1]-1 (one line if empty)
    ptr = _lines(l1, f["a_ptr"], (m + 1) * PTR_BYTES).view("<u4").astype(np.int64)
    nnz = int(ptr[-1])
    vals = _lines(l1, f["a_addr"], nnz).view(np.int8)
    col = _lines(l1, f["a_meta"], nnz * INDEX_BYTES).view("<u2").astype(np.int64)
    lo, hi = ptr[:-1], ptr[1:]
    first = lo // W
    words = np.where(hi > lo, (hi - 1) // W - first + 1, 1)
    row_of_word = np.repeat(np.arange(m), words)
    word = first[row_of_word] + np.arange(words.sum()) - np.repeat(np.cumsum(words) - words, words)
    cum = np.concatenate([[0], np.cumsum(passes(vals))])
    start = np.clip(word * W, lo[row_of_word], hi[row_of_word])
    end = np.clip(word * W + W, lo[row_of_word], hi[row_of_word])
    counts = cum[end] - cum[start]
    a = np.zeros((m, k), dtype=np.int8)
    a[np.repeat(np.arange(m), hi - lo), col] = vals
    row_cycles = np.bincount(row_of_word, weights=np.maximum(counts, 1), minlength=m).astype(np.int64)
    marked = np.bincount(row_of_word, weights=counts, minlength=m).astype(np.int64)
    return Scan(a, passes(a), row_cycles, marked, words)


def decode_b(cfg: HwConfig, f: dict[str, int], l1: np.ndarray) -> np.ndarray:
    lay, W = Layout.of(cfg), cfg.line_bytes
    nbl = lay.b_row_lines(f["n"])
    rows = _lines(l1, f["b_addr"], f["k"] * nbl * W).reshape(f["k"], nbl * W).view(np.int8)
    return rows[:, :f["n"]].copy()


def schedule(cfg: HwConfig, row_cycles: np.ndarray, blocks: np.ndarray, a_format: int,
             requant: int = 0) -> tuple[int, int]:
    """(cycles from start to done, busy row-unit cycles) for jobs (i, j) in row-major order on R units;
    row i has ``blocks[i]`` jobs.
    The cycle count is exact w.r.t. the RTL.

    One step per job: the dispatcher takes the next cycle >= the earliest free unit and gives the job to
    the lowest-numbered free unit. A unit's results leave in order, so only each unit's last job
    decides when its writes end.
    """
    result_latency, min_period = RowUnitTiming.result_latency, RowUnitTiming.min_period(cfg)
    first, done_delay = EngineTiming.first_dispatch_cycle, EngineTiming.done_delay
    front = RowUnitTiming.front_latency(a_format)
    R = cfg.engine.rows
    free = [first] * R
    last_te = [None] * R
    t = first - 1
    busy = 0
    for duration in np.repeat(row_cycles + (front - 1), blocks).tolist():
        earliest = min(free)
        t = t + 1 if t >= earliest else earliest
        u = 0
        while free[u] > t:
            u += 1
        te = t + duration                      # last encode cycle of this job
        last_te[u] = te
        free[u] = te if te > t + min_period else t + min_period
        busy += free[u] - t
    last_write = 0
    for u, te in enumerate(last_te):
        if te is not None:
            ready = te + result_latency
            last_write = max(last_write, ready + (u - (ready - 1)) % R)   # first cycle >= ready in u's slot
    return last_write + ResultWriterTiming.latency(requant) + done_delay, busy


class EngineModel:
    """``run(program) -> Result`` like every executor; ``outputs=False`` skips the arithmetic (sweeps).

    The model keeps what the hardware keeps between the tasks of a program: the L1 image and the output
    buffer (one row of L lanes per output line), so a task reads what an earlier one wrote."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg

    def run(self, program: Program, outputs: bool = True,
            progress: Callable[[int, int], None] | None = None) -> Result:
        """``progress(tasks taken, tasks)`` hears how far a long program is (every 256 tasks and at the end)."""
        cfg = self.cfg
        if program.config_digest != cfg.digest():
            raise ValueError(f"program was compiled for config {program.config_digest}, not {cfg.digest()}")
        wall = time.perf_counter()
        image = np.zeros(0, np.uint8) if program.hbm is None else program.hbm.copy()
        table = program.page_table(cfg, image)
        if table is None and any(isa.unit_of(f["opcode"]) != isa.Unit.COMPUTE for f in program.fields):
            raise ValueError("program: LOAD / STORE tasks but no page table (page_table_base is None); compile "
                             "operands in HBM with hwgen.compiler.tiling.compile_matmul_hbm")
        # the memory side the DMA talks to: the L3 (or its slices, one per port) in front of HBM, or HBM; tasks are
        # offered from the first cycle the L3 is ready (its tags are cleared after reset), and cycles count from there
        hbm, ports = memory_side(cfg)
        start = ports.ready_cycle if cfg.l3.enabled else 0
        core = EngineCore(cfg, image, table, ports, arithmetic=outputs or len(program.descriptors) > 1,
                          l1=program.l1.copy())
        core.start(program.fields, start)
        total = len(program.descriptors)
        while core.queue and core.run_next():
            if progress is not None and len(core.queue) % 256 == 0:
                progress(total - len(core.queue), total)
        if progress is not None:
            progress(total, total)
        end = core.end_cycle()
        result = {name: read_output(cfg, spec, core.out, image, table) for name, spec in program.outputs.items()} \
            if outputs else {}
        stats = core.stats
        stats["fragmentation"] = program.fragmentation
        if cfg.l3.enabled:              # first: reading the L3's stats drains the writes it holds, some to HBM
            stats["l3"] = ports.stats
        stats["hbm"] = hbm.stats
        stats["start_cycle"] = start
        stats["task_issue"] = [c - start for c in stats["task_issue"]]   # counted from the first task offered
        stats["energy"] = energy_report(cfg, stats)
        stats["wall_s"] = time.perf_counter() - wall
        return Result(outputs=result, cycles=end - start, stats=stats)

    def _matmul(self, f: dict[str, int], l1: np.ndarray, out: np.ndarray, stats: dict, arithmetic: bool) -> int:
        cfg, lay = self.cfg, Layout.of(self.cfg)
        s = scan(cfg, f, l1)
        b = decode_b(cfg, f, l1)
        blocks = np.full(f["m"], lay.blocks(f["n"]), dtype=np.int64)
        if f["causal"]:
            blocks = np.minimum(blocks, lay.causal_blocks(np.arange(f["m"]), f["m"], f["n"]))
        cycles, busy = schedule(cfg, s.row_cycles, blocks, f["a_format"], f["requant"])
        stats["elems"] += int(s.marked @ blocks)
        stats["unit_busy_cycles"] += busy
        # L1 and output-buffer traffic for the energy report: a line per A scan word, L bytes of B per element
        W = cfg.line_bytes
        stats["l1_read_bytes"] += int(s.words @ blocks) * W + int(s.marked @ blocks) * cfg.engine.lanes
        stats["out_write_bytes"] += int(blocks.sum()) * cfg.out_line_bits // 8
        if f["accumulate"]:      # the dispatcher reads each job's line to start its accumulators from
            stats["out_read_bytes"] += int(blocks.sum()) * cfg.out_line_bits // 8
        if f["requant"] != isa.Requant.NONE:
            stats["l1_write_bytes"] += f["m"] * lay.words(f["n"]) * W
        # a zero in B gates its lane for every element that reaches the MACs, in every block the row runs
        zeros = np.zeros((f["k"], lay.blocks(f["n"]) * cfg.engine.lanes), dtype=np.int64)
        zeros[:, :f["n"]] = b == 0
        per_block = np.cumsum(zeros.reshape(f["k"], -1, cfg.engine.lanes).sum(axis=2), axis=1)
        stats["gated_macs"] += int((s.passing @ per_block)[np.arange(f["m"]), blocks - 1].sum())
        if arithmetic:
            from golden import kernels  # the one definition of the arithmetic
            numeric = cfg.numeric()
            # accumulate: every job starts from its output line (lanes past N too: they add B's zero padding)
            start = read_rows(cfg, f, out) if f["accumulate"] else None
            init = None if start is None else start[:, :f["n"]]
            if f["opcode"] == isa.Opcode.GEMM:
                c = kernels.gemm(numeric, s.a, b, init=init).numpy()
            else:
                c = kernels.spmm(numeric, s.a, b, threshold=f["threshold"], init=init).numpy()
            if f["requant"] != isa.Requant.NONE:
                c = requantize_into_l1(cfg, f, l1, c)
            write_rows(cfg, f, out, c, blocks, start)
        return cycles


class EngineCore:
    """One engine's state between descriptors -- its L1, output buffer, compute unit and DMA units (with their
    TLBs) on a memory side -- and the engine's issue rule, written once for both ways of running it:
    ``run_next`` takes the next descriptor at the earliest cycle the rule allows (one engine alone:
    ``EngineModel``); ``step(c)`` takes it only if the rule allows cycle ``c`` (the chip's engines stepped by
    one clock on a shared memory side: ``sim/model/chip.py``).

    Issue rule (``hwgen/rtl/engine/engine.py``): a descriptor offered from ``offer_at`` is taken in a cycle after
    the previous take in which its unit and every unit in its ``wait`` bits are idle, and in which it would not
    share the L1 write port with a running task (a LOAD and a compute task that writes L1 never run together)."""

    def __init__(self, cfg: HwConfig, image: np.ndarray, table: PageTable | None, memory, arithmetic: bool = True,
                 l1: np.ndarray | None = None):
        self.cfg, self.image, self.table, self.arithmetic = cfg, image, table, arithmetic
        self.l1 = np.zeros((cfg.l1_lines, cfg.line_bytes), np.uint8) if l1 is None else l1
        self.out = np.zeros((cfg.out_lines, cfg.engine.lanes), dtype=np.int64)
        self.dma = DmaUnits(cfg, memory, table)
        self.model = EngineModel(cfg)
        self.compute_free, self.compute_writes_l1 = 0, False
        self.store_reads = []          # per STORE: (memory "out" / "l1", first line, end line, task index)
        self.last = {}                 # the last LOAD and compute task: unit -> (task index, fields)
        self.t = -1                    # the cycle of the last take
        self.taken = 0                 # descriptors taken so far (their index for hazard messages)
        self.queue: deque = deque()
        self.offer_at = 0
        self.halted = False
        self._stats = {"backend": "sim", "elems": 0, "gated_macs": 0, "unit_busy_cycles": 0, "task_cycles": [],
                       "task_issue": [], "l1_read_bytes": 0, "l1_write_bytes": 0, "out_read_bytes": 0,
                       "out_write_bytes": 0}

    # ---- the issue rule ----
    def _needs(self, f: dict[str, int]) -> tuple[list[str], int]:
        """The DMA units that must be idle and the first cycle the compute unit and the order allow."""
        unit = isa.unit_of(f["opcode"])
        writes_l1 = unit == isa.Unit.LOAD or f["opcode"] == isa.Opcode.TOPK or (
            unit == isa.Unit.COMPUTE and f["requant"] != isa.Requant.NONE)
        units = {unit} | {u for u in isa.Unit if f["wait"] >> u & 1}
        if unit == isa.Unit.LOAD and self.compute_writes_l1:
            units.add(isa.Unit.COMPUTE)
        if unit == isa.Unit.COMPUTE and writes_l1:
            units.add(isa.Unit.LOAD)
        floor = max(self.t + 1, self.offer_at, self.compute_free if isa.Unit.COMPUTE in units else 0)
        return [_UNIT_NAMES[u] for u in sorted(units) if u != isa.Unit.COMPUTE], floor

    def start(self, fields, first_offer: int) -> None:
        """A task's descriptors, the first offered in cycle ``first_offer``, each next one after a take."""
        self.queue.extend(fields)
        self.offer_at = first_offer

    def run_next(self) -> bool:
        """Take the next descriptor at the earliest cycle it can be (False: a page fault halted the engine)."""
        units, floor = self._needs(self.queue[0])
        c = max([floor, *(self.dma.free_at(u) for u in units)])
        return self._take(c)

    def step(self, c: int) -> None:
        """Cycle ``c`` of a shared clock: take the offered descriptor if the rule allows it in ``c``."""
        self.dma.run_until(c)
        if not self.queue or self.halted:
            return
        units, floor = self._needs(self.queue[0])
        if c >= floor and all(self.dma.free_at_if_done(u, c) for u in units):
            self._take(c)

    def finished(self, c: int) -> bool:
        """Every descriptor taken (in an earlier cycle) and every unit idle in cycle ``c``: ``idle`` is high."""
        return not self.queue and c > self.t and c >= self.compute_free and all(
            self.dma.free_at_if_done(u, c) for u in ("load", "store"))

    def next_wake(self, c: int) -> int:
        """The next cycle after ``c`` in which this engine may take a descriptor or finish."""
        if self.dma.load.busy or self.dma.store.busy:
            return c + 1
        if self.queue:
            return max(c + 1, self._needs(self.queue[0])[1])
        return max(c + 1, self.compute_free, self.t + 1)

    def end_cycle(self) -> int:
        """The first cycle in which every unit is idle after the last take (one engine run to the end)."""
        return max(self.t + 1, self.compute_free, self.dma.free_at("load"), self.dma.free_at("store"))

    def drain(self) -> None:
        self.dma.free_at("load")
        self.dma.free_at("store")

    # ---- one take ----
    def _take(self, c: int) -> bool:
        cfg, f = self.cfg, self.queue[0]
        self.dma.run_until(c)
        if self.dma.halt_at is not None and self.dma.halt_at <= c:
            self.halted = True         # a page fault halted the engine: this task and the rest are not taken
            self.queue.clear()
            return False
        self.queue.popleft()
        index, self.taken = self.taken, self.taken + 1
        self.t = c
        self.offer_at = c + 1
        stats, dma, l1, out = self._stats, self.dma, self.l1, self.out
        stats["task_issue"].append(c)
        unit = isa.unit_of(f["opcode"])
        if unit == isa.Unit.STORE:
            if not f["source"] and f["lines"] % dma.gather:
                raise ValueError(f"task {index}: STORE of {f['lines']} output lines, {dma.gather} to an AXI beat: "
                                 f"lines must be a multiple of {dma.gather} (the DMA writes whole beats)")
            if f["source"]:
                _check_l1_store(cfg, f, index, self.last, self.compute_free, dma, c)
            _store(cfg, f, self.image, out, l1, self.table)
            dma.start_store(c, f["hbm_addr"], f["lines"], from_l1=bool(f["source"]))
            memory, first, line_bytes = (("l1", f["d_addr"], cfg.line_bytes) if f["source"]
                                         else ("out", f["c_addr"], cfg.out_line_bits // 8))
            stats[f"{memory}_read_bytes"] += f["lines"] * line_bytes
            self.store_reads.append((memory, first, first + f["lines"], index))
            return True
        _check_store_hazard(cfg, f, index, self.store_reads, dma, c)
        self.last[unit] = (index, f)
        if unit == isa.Unit.LOAD:
            _load(cfg, f, self.image, l1, self.table)
            dma.start_load(c, f["hbm_addr"], f["lines"], bool(f["stream"]))
            return True
        if f["opcode"] == isa.Opcode.TOPK:
            cycles = topk_task(cfg, f, l1, out)
        else:
            cycles = self.model._matmul(f, l1, out, stats, self.arithmetic)
        stats["task_cycles"].append(cycles)
        writes_l1 = f["opcode"] == isa.Opcode.TOPK or f["requant"] != isa.Requant.NONE
        self.compute_free, self.compute_writes_l1 = c + cycles + 1, writes_l1
        return True

    @property
    def stats(self) -> dict:
        stats = dict(self._stats)
        stats.update(self.dma.stats)
        stats["lane_macs"] = stats["elems"] * self.cfg.engine.lanes
        stats["l1_write_bytes"] += stats["load_beats"] * self.cfg.beat_bytes
        return stats


def requantize_into_l1(cfg: HwConfig, f: dict[str, int], l1: np.ndarray, c: np.ndarray) -> np.ndarray:
    """C -> int8 with the table at rq_addr (golden.numerics.requantize); the int8 rows also land at d_addr."""
    from golden.executor import requantize_table
    lay, n = Layout.of(cfg), f["n"]
    entries = n if f["requant"] == isa.Requant.PER_CHANNEL else 1
    mult = _lines(l1, f["rq_addr"], entries * 2).view("<u2").astype(np.int64)
    shift_line = f["rq_addr"] + lay.lines_for_bytes(entries * 2)
    shift = _lines(l1, shift_line, entries).astype(np.int64)
    y = requantize_table(c, mult, shift)
    rows = l1[f["d_addr"]:f["d_addr"] + f["m"] * lay.words(n)].reshape(f["m"], -1)   # a view into l1
    rows[:, :n] = y.view(np.uint8)
    return y.astype(np.int64)


def read_rows(cfg: HwConfig, f: dict[str, int], out: np.ndarray) -> np.ndarray:
    """The output lines of a task's C, stored row order: int64 (M, lane blocks x L)."""
    nbj = Layout.of(cfg).blocks(f["n"])
    return out[f["c_addr"]:f["c_addr"] + f["m"] * nbj].reshape(f["m"], nbj * cfg.engine.lanes).copy()


def write_rows(cfg: HwConfig, f: dict[str, int], out: np.ndarray, c: np.ndarray, blocks: np.ndarray,
               start: np.ndarray | None = None) -> None:
    """C (stored row order) -> the output buffer, one line per job that ran; lanes past N keep ``start``
    (the lines an ``accumulate`` task started from) or are 0."""
    lay, L = Layout.of(cfg), cfg.engine.lanes
    nbj = lay.blocks(f["n"])
    padded = np.zeros((f["m"], nbj * L), dtype=np.int64) if start is None else start
    padded[:, :f["n"]] = c
    lines = padded.reshape(f["m"], nbj, L)
    ran = np.arange(nbj)[None, :] < blocks[:, None]
    rows, cols = np.nonzero(ran)
    out[lay.c_line(f["c_addr"], rows * nbj, cols)] = lines[rows, cols]


def read_output(cfg: HwConfig, spec, out: np.ndarray, image: np.ndarray | None = None,
                table: PageTable | None = None) -> np.ndarray:
    """An output as the host reads it back: from HBM where a STORE put it (through the page table: ``hbm_addr``
    is virtual), else from the output buffer (lanes wrap to acc_bits)."""
    if spec.hbm_addr is not None:
        count, line_bytes = hbm_lines(cfg, spec)
        blob = table.read(image, spec.hbm_addr, count * line_bytes)
        return decode_output(cfg, spec, output_words(cfg, blob, line_bytes))
    lines = out[output_lines(cfg, spec)]
    return unpermute_rows(spec, lines.reshape(spec.m, -1)[:, :spec.n])


_UNIT_NAMES = {isa.Unit.LOAD: "load", isa.Unit.STORE: "store"}


def _load(cfg: HwConfig, f: dict[str, int], image: np.ndarray, l1: np.ndarray, table: PageTable) -> None:
    """A LOAD's data: ``lines`` L1 lines from virtual ``hbm_addr``. A page fault moves nothing here (the DMA
    model stops the unit; the data of a faulted program is not defined)."""
    W, addr, n = cfg.line_bytes, f["hbm_addr"], f["lines"]
    if f["a_addr"] + n > cfg.l1_lines:
        raise ValueError(f"LOAD of {n} lines to L1 line {f['a_addr']}: outside L1 ({cfg.l1_lines} lines)")
    try:
        blob = table.read(image, addr, n * W)
    except PageFault:
        return
    if len(blob) != n * W:
        raise ValueError(f"LOAD of {n} lines from HBM 0x{addr:x}: outside HBM ({image.size} bytes)")
    l1[f["a_addr"]:f["a_addr"] + n] = np.frombuffer(blob, np.uint8).reshape(n, W)


def _store(cfg: HwConfig, f: dict[str, int], image: np.ndarray, out: np.ndarray, l1: np.ndarray,
           table: PageTable) -> None:
    """A STORE's data: ``lines`` output lines from ``c_addr`` (``source`` 1: L1 lines from ``d_addr``) to virtual
    ``hbm_addr`` (a page fault writes nothing here)."""
    if f["source"]:
        if f["d_addr"] + f["lines"] > cfg.l1_lines:
            raise ValueError(f"STORE of {f['lines']} lines from L1 line {f['d_addr']}: outside L1 "
                             f"({cfg.l1_lines} lines)")
        blob = l1[f["d_addr"]:f["d_addr"] + f["lines"]].tobytes()
    else:
        blob = out_lines_to_bytes(cfg, out[f["c_addr"]:f["c_addr"] + f["lines"]])
    try:
        table.write(image, f["hbm_addr"], blob)
    except PageFault:
        return
    except ValueError as e:
        raise ValueError(f"STORE of {len(blob)} bytes to HBM 0x{f['hbm_addr']:x}: outside HBM ({image.size} "
                         f"bytes)") from e


def _writes(cfg: HwConfig, f: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The lines [first, end) a task writes, by memory ("out": output buffer, "l1")."""
    lay = Layout.of(cfg)
    if f["opcode"] == isa.Opcode.LOAD:
        return {"l1": (f["a_addr"], f["a_addr"] + f["lines"])}
    if f["opcode"] == isa.Opcode.TOPK:
        return {"l1": (f["a_addr"], f["a_addr"] + f["m"] * lay.words(f["n"]))}
    out = {"out": (f["c_addr"], f["c_addr"] + f["m"] * lay.blocks(f["n"]))}
    if f["requant"] != isa.Requant.NONE:
        out["l1"] = (f["d_addr"], f["d_addr"] + f["m"] * lay.words(f["n"]))
    return out


def _check_store_hazard(cfg: HwConfig, f: dict[str, int], index: int, store_reads: list, dma: DmaUnits,
                        t: int) -> None:
    """A task must not write lines that a still-running STORE reads: output lines, or L1 lines for a STORE
    with ``source`` 1 (the compiler's ``wait`` bits prevent it; a program that breaks the rule would differ
    between sim and RTL)."""
    if not store_reads or dma.free_at_if_done("store", t):
        return
    memory, first, end, who = store_reads[-1]
    if memory not in _writes(cfg, f):
        return
    w0, w1 = _writes(cfg, f)[memory]
    if w0 < end and first < w1:
        raise ValueError(f"task {index}: writes {memory} lines {w0}..{w1 - 1} while task {who} (STORE) still "
                         f"reads lines {first}..{end - 1}: set wait bit STORE")


def _check_l1_store(cfg: HwConfig, f: dict[str, int], index: int, last: dict, compute_free: int, dma: DmaUnits,
                    t: int) -> None:
    """A STORE from L1 taken in cycle ``t`` must not read lines that the last LOAD or compute task (``last``:
    unit -> (task index, fields)) still writes; the compiler's ``wait`` bits prevent it."""
    first, end = f["d_addr"], f["d_addr"] + f["lines"]
    for unit, (who, g) in last.items():
        running = t < compute_free if unit == isa.Unit.COMPUTE else not dma.free_at_if_done("load", t)
        w0, w1 = _writes(cfg, g).get("l1", (0, 0))
        if running and w0 < end and first < w1:
            raise ValueError(f"task {index}: STORE reads L1 lines {first}..{end - 1} while task {who} "
                             f"({isa.Unit(unit).name}) still writes lines {w0}..{w1 - 1}: set wait bit "
                             f"{isa.Unit(unit).name}")


def topk_task(cfg: HwConfig, f: dict[str, int], l1: np.ndarray, out: np.ndarray) -> int:
    """Scores from the output buffer -> top-k + integer softmax per row -> P bytes into L1."""
    import torch

    from golden.numerics import int_softmax, topk_row
    lay = Layout.of(cfg)
    m, n = f["m"], f["n"]
    nbj = lay.blocks(n)
    scores = out[f["c_addr"]:f["c_addr"] + m * nbj].reshape(m, nbj * cfg.engine.lanes)[:, :n]
    scores = ((scores + (1 << 31)) % (1 << 32)) - (1 << 31)   # the unit reads the low 32 bits of a lane
    valid = np.ones((m, n), dtype=bool)
    if f["causal"]:
        valid = np.arange(n)[None, :] <= np.arange(m)[:, None] + (n - m)
    counts = []
    p_rows = l1[f["a_addr"]:f["a_addr"] + m * lay.words(n)].reshape(m, -1)   # a view: writes land in l1
    for i in range(m):
        values, idx = topk_row(torch.from_numpy(scores[i]), f["topk"], torch.from_numpy(valid[i]))
        counts.append(len(idx))
        if len(idx):
            p = int_softmax(values, cfg.attention.frac_bits).numpy()
            p_rows[i, idx.numpy()] = p.astype(np.uint8)
    return TopkPathTiming.task_cycles(cfg, n, counts)
