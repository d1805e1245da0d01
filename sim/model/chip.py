"""Cycle model of the ASA scheduler running a DAG program (``hwgen/compiler/dag.py``) on the chip's engines.

The model steps the chip's clock: each cycle the engines (``sim.model.engine.EngineCore``: one per engine, each with
its own L1, output buffer and DMA units, all on ONE shared memory side through ``SharedMemory``, the
arbiter's model) take descriptors, then the scheduler does what its RTL (``hwgen/rtl/scheduler/asa.py``) does
in that cycle. Cycles in which nothing can change are skipped (the stall counters still count them). The rules,
cycle by cycle; every latency is a class attribute of ``hwgen.spec.timing.AsaTiming``, which the RTL ``Asa``
inherits (named in brackets), read from there:

- Reads (load and gate values): INCR bursts cut as ``dma_load.next_burst``, one AR every two cycles at most
  while fewer than ``memory.outstanding`` are in flight (a burst counts until the cycle of its last R beat,
  inclusive); R beats one per cycle in order (``read_region``).
- Load: the host's ``start`` in cycle S; the header's AR in S + [start_ar_latency]; then the task table, the
  successor lists and the descriptors (empty ones skipped), the first region's first AR [decode_gap] cycles
  after the header's last R beat and each next one's [region_gap] cycles after the previous region's last R
  beat, into the RAMs. Scheduling starts [run_latency] after the last R beat.
- Window: while a slot is free, the next task of the table enters it, one per cycle; a task entering in e is
  visible (may be picked) from e + [entry_latency]. A slot is free again the cycle after its task's
  completion is popped.
- Issue: a pick in c is applied in c + 1, which picks nothing (so at most one task every two cycles). A pick:
  among the visible tasks whose predecessors have all completed (or been skipped) and that are not yet issued,
  the policy picks one: ``in_order`` the lowest-numbered task not yet issued (only if it is ready: nothing
  overtakes it), ``static_list`` the highest ``rank``, ``adaptive`` the highest key (below); ties to the lower
  number. Applied in c + 1: a predicated task whose bit is clear is skipped (its completion is pushed in c + 1,
  ``skipped`` counts it); otherwise it goes to the lowest-numbered engine free in c + 1, whose feeder offers
  its first descriptor [feed_latency] cycles later and each next one in the cycle after the previous one is
  taken; with none free nothing happens, and c + 2 picks again. A pick cycle and an applying cycle count
  ``stall_no_engine`` when the picked task runs on an engine and none is free in that cycle; a pick cycle
  without a pick while a visible task waits counts ``stall_not_ready``.
- Completion: in the first cycle f in which the engine has taken the task's last descriptor (in an earlier
  cycle) and all its units are idle, the completion is pushed (the engine is free from f + 1), and
  ``adj = mlog(f - issue) - mlog(est)`` is recorded. A gate task's completion goes to the gate unit: it takes it
  in g = max(f + 1, the cycle after its previous push), reads the gate values (``gate_rows`` x lane blocks
  output lines) with the first AR in g + [gate_ar_latency], and pushes the completion in
  r_last + [gate_push_latency] + ``gate_cycles`` (one cycle per value, plus gate_k + 1 per row for TOPK), where
  r_last is the last beat or g + [gate_derive_latency] + [gate_div_cycles] (the row tiles' division), whichever
  is later.
- Release: completions are popped in push order (pushed in the same cycle: engines in index order, then a skip,
  then the gate unit) from [pop_latency] cycles after their push, one at a time, and each walks its successor
  list one entry per cycle (a task without successors takes one cycle), [walk_latency] cycles after the pop (the
  list registered first; the next pop may come in the walk's last cycle): the successor's count of released
  predecessors goes up; when it reaches its ``deps`` the successor is ready from [release_latency] cycles after
  the entry's walk cycle (``adaptive``: [rekey_latency] more), and under ``adaptive`` its key is ``mlog(rank) +
  adj(p)``, p the popped task (a skipped task passes on the adj it was released with). Tasks without predecessors
  start with ``mlog(rank)``; other policies use ``rank``. ``mlog`` is Mitchell's base-2 logarithm with
  ``MLOG_FRAC`` fraction bits (``hwgen.rtl.scheduler.asa.mlog_hw`` in hardware, exact integers here).
- Done: [done_latency] after the walk of the last completion; the program's cycles count from S.

Engines: ``engine(cfg, image, table, memory, arithmetic)`` objects with ``start(fields, first_offer_cycle)``
(the task's descriptors, offered from that cycle, each next one the cycle after the previous one is taken),
``step(c)``, ``finished(c)`` (the completion rule above), ``next_wake(c)``, ``drain()`` and ``stats``.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from hwgen.spec import isa
from hwgen.spec.axi import next_burst
from hwgen.spec.config import HwConfig, check_memory_side
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, Program, Result, decode_output, output_words
from hwgen.spec.task_table import HEADER, SUCC_BYTES, TASK, GateOp
from hwgen.spec.timing import MLOG_FRAC, AsaTiming
from sim.model.memory.axi_port import ResponseChannel
from sim.model.memory.energy import energy_report
from sim.model.memory.l3_slices import memory_side

__all__ = ["MLOG_FRAC", "ChipModel", "SharedMemory", "gate_bits", "gate_cycles", "mlog", "read_region"]


def mlog(x: int) -> int:
    """Mitchell's log2 of x >= 1 with MLOG_FRAC fraction bits: msb position, then the bits below it."""
    x = max(int(x), 1)
    msb = x.bit_length() - 1
    frac = ((x - (1 << msb)) << MLOG_FRAC) >> msb
    return (msb << MLOG_FRAC) | frac


def gate_cycles(f: dict[str, int]) -> int:
    """Cycles the gate unit spends on the values once they are in: one per value, plus per row for TOPK one to
    sort in the row's last value and k to apply the picks."""
    picks = f["gate_k"] if f["gate"] == GateOp.TOPK else 0
    per_row = f["gate_cols"] + (picks + 1 if picks else 0)
    return f["gate_rows"] * per_row


def gate_bits(cfg: HwConfig, f: dict[str, int], values: np.ndarray) -> dict[int, bool]:
    """Predicate bits a gate task sets from its (rows x cols) int values: the rule of ``golden.graph.gate_bits``
    (the one definition) applied to the gate the task's fields describe, numbered from ``gate_base``."""
    from golden.graph import gate_bits as rule
    from hwgen.spec.workload import Gate
    f = {**dict.fromkeys(TASK.names, 0), **f}   # absent fields are 0, as in the table
    rows, cols = f["gate_rows"], f["gate_cols"]
    thr = f["gate_threshold"] - (1 << 32) if f["gate_threshold"] >> 31 else f["gate_threshold"]
    gate = Gate("threshold", threshold=thr) if f["gate"] == GateOp.THRESHOLD else \
        Gate("topk", k=f["gate_k"], capacity=f["gate_capacity"], tile_rows=f["gate_tile_rows"])
    bits = rule(gate, np.asarray(values)[:rows, :cols])
    return {f["gate_base"] + i: bool(b) for i, b in enumerate(bits)}


class SharedMemory:
    """The arbiter in front of the memory side as the models see it: every master's calls go to one
    ``HbmPorts`` / ``L3Ports`` / ``L3Slices``, which take requests in cycle order, one AR and one AW per cycle; a
    request in a cycle already used is taken in the next free one (the arbiter's wait)."""

    def __init__(self, ports):
        self.ports = ports
        self.last = (-1, -1)    # (cycle, kind) of the last request: kind 0 read, 1 write
        self.waits = 0

    def _slot(self, cycle: int, kind: int, address: int) -> int:
        c = cycle if (cycle, kind) > self.last else self.last[0] + (1 if kind <= self.last[1] else 0)
        c = self.ports.accept_cycle(c, kind, address)   # e.g. the L3's request buffer full: its READY is low
        self.waits += c - cycle
        self.last = (c, kind)
        return c

    def port_of(self, address: int) -> int:
        return self.ports.port_of(address)

    def read(self, cycle: int, port: int, address: int, beats: int, stream: bool = False) -> list[int]:
        return self.ports.read(self._slot(cycle, 0, address), port, address, beats, stream)

    def write(self, cycle: int, port: int, address: int, beats: int) -> int:
        return self.ports.write(self._slot(cycle, 1, address), port, address, beats)

    def master(self) -> _Master:
        """One master's view (an engine's DMA units): the shared requests, its own R and B channels."""
        return _Master(self)


class _Master:
    """What ``sim.model.memory.dma.DmaUnits`` needs of a memory side: requests through the arbiter's model, and R / B
    channels of its own (the arbiter routes each response to its master; beats of two masters in one cycle
    on the shared channel are not modelled)."""

    def __init__(self, shared: SharedMemory):
        self.shared = shared
        self.r = [ResponseChannel() for _ in range(shared.ports.ports)]
        self.b = [ResponseChannel() for _ in range(shared.ports.ports)]
        self.port_of, self.read, self.write = shared.port_of, shared.read, shared.write


def read_region(cfg: HwConfig, mem: SharedMemory, cycle: int, address: int, nbytes: int) -> int:
    """An AXI read of ``nbytes`` from ``address`` (physical), its first AR in ``cycle``: one AR every two cycles
    (each burst's length is registered) while fewer than ``memory.outstanding`` bursts are in flight; returns
    the cycle of the last R handshake."""
    B = cfg.beat_bytes
    addr, beats = address - address % B, -(-(address % B + nbytes) // B)
    in_flight: deque[int] = deque()   # last-beat handshake cycle of each burst in flight
    ar, r_last = cycle, cycle
    while beats:
        n = next_burst(cfg, addr, beats)
        while len(in_flight) >= cfg.memory.outstanding:
            ar = max(ar, in_flight.popleft() + 1)
        ready = mem.read(ar, mem.port_of(addr), addr, n)
        for r in ready:
            r_last = max(r, r_last + 1)
        in_flight.append(r_last)
        addr, beats, ar = addr + n * B, beats - n, ar + 2
    return r_last


class ChipModel:
    """``run(program) -> Result`` for DAG programs: the scheduler, ``scheduler.engines`` engines and the memory
    side (see the module docstring). ``policy`` overrides ``scheduler.policy`` (the benchmark compares them)."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg

    def run(self, program: Program, outputs: bool = True, policy: str | None = None, engine=None,
            start_cycle: int | None = None) -> Result:
        """``outputs=False`` only skips reading the outputs back: the arithmetic always runs, since later tasks'
        times (the zeros they skip) and the gates' predicates depend on earlier tasks' values.
        ``engine(cfg, image, table, memory, arithmetic)`` builds each engine's model (default
        ``sim.model.engine.EngineCore``; scheduler tests pass engines of fixed task times). ``start_cycle``: the cycle
        of the host's start (default: the first cycle the L3 is ready, or 0), e.g. the RTL run's, so that both
        see HBM (refresh) from the same cycle."""
        from sim.model.engine import read_output
        cfg = self.cfg
        if program.config_digest != cfg.digest():
            raise ValueError(f"program was compiled for config {program.config_digest}, not {cfg.digest()}")
        if not program.tasks:
            raise ValueError("program: no tasks (a single-engine program runs on sim.model.engine.EngineModel)")
        wall = time.perf_counter()
        check_memory_side(cfg)
        run = _Run(cfg, program, policy or cfg.scheduler.policy, True, engine, start_cycle)
        run.load()
        progress, stuck = (0, run.c), 16 * max((t["est"] for t in run.tasks), default=0) + (1 << 20)
        while run.completed < len(run.tasks):
            run.cycle()
            run.prev_c, run.c = run.c, run.next_cycle()
            run.count_idle()
            if run.completed != progress[0]:
                progress = (run.completed, run.c)
            elif run.c - progress[1] > stuck:   # the RTL would hang here too: say where
                waiting = [i for i in range(len(run.tasks)) if run.stats["task_done"][i] is None]
                raise RuntimeError(f"program: no task completed for {stuck} cycles (cycle {run.c}): tasks "
                                   f"{waiting[:8]} not done, engines running {run.engine_task}")
        done = run.last_pop + AsaTiming.done_latency
        for eng in run.engines:
            eng.drain()
        image, table = run.image, run.table
        result = {name: read_output(cfg, spec, None, image, table) for name, spec in program.outputs.items()} \
            if outputs else {}
        stats = run.stats
        for eng in run.engines:           # counters add up over the engines; rates are derived from the sums
            for k, v in eng.stats.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("_rate"):
                    stats[k] = stats.get(k, 0) + v
        lookups = stats.get("tlb_hits", 0) + stats.get("tlb_misses", 0)
        stats["tlb_hit_rate"] = stats.get("tlb_hits", 0) / lookups if lookups else 0.0
        stats["arbiter_waits"] = run.mem.waits
        if cfg.l3.enabled:              # first: reading the L3's stats drains the writes it holds, some to HBM
            stats["l3"] = run.ports.stats
        stats["hbm"] = run.hbm.stats
        stats["start_cycle"] = run.S
        stats["load_cycles"] = run.loaded - run.S
        stats["predicates"] = [run.preds[i] for i in range(program.params.get("predicate_bits", 0))]
        stats["policy"] = run.policy
        stats["engines"] = len(run.engines)
        stats["lane_macs"] = stats.get("elems", 0) * cfg.engine.lanes
        # the chip's byte counters (csr_map.BYTE_COUNTERS): bytes moved above the L3 (the arbiter's bus) and on the
        # HBM ports; without the L3 both are the HBM ports'
        above = stats["l3"] if cfg.l3.enabled else stats["hbm"]
        stats.update(l3_read_bytes=above["bytes_read"], l3_write_bytes=above["bytes_written"],
                     hbm_read_bytes=stats["hbm"]["bytes_read"], hbm_write_bytes=stats["hbm"]["bytes_written"])
        stats["energy"] = energy_report(cfg, stats)
        stats["wall_s"] = time.perf_counter() - wall
        return Result(outputs=result, cycles=done - run.S, stats=stats)


class _Run:
    """One program's run: the scheduler's registers and the engines, one ``cycle()`` at a time."""

    def __init__(self, cfg: HwConfig, program: Program, policy: str, arithmetic: bool, engine=None,
                 start_cycle: int | None = None):
        if engine is None:
            from sim.model.engine import EngineCore as engine
        if policy not in ("in_order", "static_list", "adaptive"):
            raise ValueError(f"policy: {policy!r} is not allowed (allowed: in_order, static_list, adaptive)")
        self.cfg, self.program, self.policy = cfg, program, policy
        self.image = program.hbm.copy()
        self.table = program.page_table(cfg, self.image)
        self.hbm, self.ports = memory_side(cfg)
        self.mem = SharedMemory(self.ports)
        self.S = max(self.ports.ready_cycle if cfg.l3.enabled else 0, start_cycle or 0)
        self.engines = [engine(cfg, self.image, self.table, self.mem.master(), arithmetic=arithmetic)
                        for _ in range(cfg.scheduler.engines)]
        self.tasks = [{**dict.fromkeys(TASK.names, 0), **t} for t in program.tasks]   # absent fields are 0
        self.fields = [isa.unpack(d) for d in program.descriptors]
        n = len(self.tasks)
        self.done_count = [0] * n
        self.key = [mlog(t["rank"]) if policy == "adaptive" else t["rank"] for t in self.tasks]
        self.adj = [0] * n
        self.issued_at: list[int | None] = [None] * n
        self.skipped: set[int] = set()
        self.window: set[int] = set()
        self.visible_at: list[int | None] = [None] * n
        self.next_in = 0                       # the next task to enter the window
        self.entered_at = -1                   # the cycle the last task entered
        self.engine_task: list[int | None] = [None] * len(self.engines)
        self.engine_free = [0] * len(self.engines)
        self.pushes: list[tuple[int, int, int, int]] = []   # (push cycle, source, engine, task) not in the FIFO
        self.fifo: deque[tuple[int, int]] = deque()    # (cycle it may be popped, task)
        self.walk: tuple[int, int] | None = None       # (task, next successor index)
        self.gate_free = 0
        self.preds = {i: False for i in range(cfg.scheduler.predicates)}
        self.completed = 0
        self.pending: int | None = None        # the task picked in the cycle before, applied in this one
        self.stats = {"backend": "sim", "issued": 0, "skipped": 0, "task_engine": [None] * n,
                      "task_issue": [None] * n, "task_done": [None] * n, "task_pop": [None] * n, "stall_no_engine": 0,
                      "stall_not_ready": 0, "gate_cycles": 0}

    def load(self) -> None:
        """The header, then the task table, the successor lists and the descriptors."""
        cfg, image, base = self.cfg, self.image, self.program.program_base
        header = HEADER.unpack(int.from_bytes(image[base:base + HEADER.bytes].tobytes(), "little"))
        t = read_region(cfg, self.mem, self.S + AsaTiming.start_ar_latency, base, HEADER.bytes)
        gap = AsaTiming.decode_gap
        for addr, nbytes in ((header["table_addr"], header["tasks"] * TASK.bytes),
                             (header["succ_addr"], header["successors"] * SUCC_BYTES),
                             (header["desc_addr"], header["descriptors"] * isa.DESCRIPTOR_BITS // 8)):
            if nbytes:
                t = read_region(cfg, self.mem, t + gap, addr, nbytes)
                gap = AsaTiming.region_gap
        self.loaded = self.c = self.last_pop = t + AsaTiming.run_latency
        self.ready_at = [self.loaded if t["deps"] == 0 else None for t in self.tasks]
        self.window_free = deque([self.loaded] * cfg.scheduler.window)   # cycle each free slot is usable
        self.engine_free = [self.loaded] * len(self.engines)
        self.gate_free = self.loaded

    # ---- one cycle ----
    def cycle(self) -> None:
        c = self.c
        for e, eng in enumerate(self.engines):
            eng.step(c)
            if self.engine_task[e] is not None and eng.finished(c):
                self._finish(e, c)
        if self.next_in < len(self.tasks) and self.window_free and self.window_free[0] <= c \
                and self.entered_at < c:
            self.window_free.popleft()
            self.window.add(self.next_in)
            self.visible_at[self.next_in] = c + AsaTiming.entry_latency
            self.next_in += 1
            self.entered_at = c
        self._issue(c)
        now = sorted(p for p in self.pushes if p[0] == c)
        self.pushes = [p for p in self.pushes if p[0] != c]
        self.fifo.extend((c + AsaTiming.pop_latency, tk) for *_, tk in now)
        self._release(c)

    def _finish(self, e: int, c: int) -> None:
        """Engine e went idle with its task all taken: push the completion (a gate's once its bits are set)."""
        cfg, tk = self.cfg, self.engine_task[e]
        task = self.tasks[tk]
        self.engine_task[e] = None
        self.engine_free[e] = c + 1
        self.adj[tk] = mlog(c - self.issued_at[tk]) - mlog(task["est"])
        self.stats["task_done"][tk] = c
        if task["gate"] == GateOp.NONE:
            self.pushes.append((c, 0, e, tk))
            return
        nbytes = task["gate_rows"] * Layout.of(cfg).blocks(task["gate_cols"]) * cfg.out_line_bits // 8
        g = max(c + 1, self.gate_free)
        r_last = g + AsaTiming.gate_derive_latency - 1
        if nbytes:   # processing waits for the values and for the division that counts the row tiles
            r_last = max(read_region(cfg, self.mem, g + AsaTiming.gate_ar_latency, task["gate_addr"], nbytes),
                         g + AsaTiming.gate_derive_latency + AsaTiming.gate_div_cycles)
        values = decode_output(cfg, OutputSpec(0, task["gate_rows"], task["gate_cols"]),
                               output_words(cfg, self.image[task["gate_addr"]:task["gate_addr"] + nbytes].tobytes()))
        self.preds.update(gate_bits(cfg, task, values))
        end = r_last + AsaTiming.gate_push_latency + gate_cycles(task)
        self.gate_free = end + 1
        self.stats["gate_cycles"] += end - c
        self.pushes.append((end, 2, 0, tk))

    def pick(self, c: int) -> int | None:
        """The task the policy issues (or skips) in cycle c, if any."""
        waiting = self._waiting(c)
        cands = [i for i in waiting if self.ready_at[i] is not None and self.ready_at[i] <= c]
        if self.policy == "in_order":
            head = min(waiting, default=None)
            cands = [head] if head in cands else []
        return max(cands, key=lambda i: (self.key[i], -i)) if cands else None

    def _waiting(self, c: int) -> list[int]:
        """Visible window tasks not yet issued or skipped."""
        return [i for i in self.window if self.issued_at[i] is None and i not in self.skipped
                and self.visible_at[i] <= c]

    def count_idle(self) -> None:
        """The stall counters of the cycles ``next_cycle`` skipped (c_prev + 1 .. c - 1): nothing changes in
        them, so each is what the first one is; a pick that stalls for an engine is made again every other cycle,
        so whether cycle c applies one follows from which of the two the first skipped cycle was."""
        skipped = self.c - self.prev_c - 1
        if skipped <= 0:
            return
        x = self.prev_c + 1
        applies = self.pending is not None                # x applies the pick of c_prev, else x picks
        i = self.pending if applies else self.pick(x)
        if i is None:
            if self._waiting(x):
                self.stats["stall_not_ready"] += skipped
        elif not self.skips(i) and self.free_engine(x) is None:
            self.stats["stall_no_engine"] += skipped
        self.pending = i if i is not None and (self.c - x) % 2 == (0 if applies else 1) else None

    def skips(self, i: int) -> bool:
        task = self.tasks[i]
        return bool(task["pred_en"]) and not self.preds[task["pred"]]

    def free_engine(self, c: int) -> int | None:
        return next((e for e, (t, f) in enumerate(zip(self.engine_task, self.engine_free, strict=True))
                     if t is None and f <= c), None)

    def _issue(self, c: int) -> None:
        """Pick in c, or apply (issue or skip) the pick of c - 1: a cycle that applies one picks nothing."""
        if self.pending is None:
            i = self.pick(c)
            if i is None:
                if self._waiting(c):
                    self.stats["stall_not_ready"] += 1
            else:
                self.pending = i
                if not self.skips(i) and self.free_engine(c) is None:
                    self.stats["stall_no_engine"] += 1
            return
        i, self.pending = self.pending, None
        if self.skips(i):
            self.skipped.add(i)
            self.pushes.append((c, 1, 0, i))
            self.stats["skipped"] += 1
            self.stats["task_done"][i] = c
            return
        e = self.free_engine(c)
        if e is None:
            self.stats["stall_no_engine"] += 1
            return
        task = self.tasks[i]
        self.issued_at[i] = c
        self.engine_task[e] = i
        self.engines[e].start(self.fields[task["first"]:task["first"] + task["count"]], c + AsaTiming.feed_latency)
        self.stats["issued"] += 1
        self.stats["task_engine"][i] = e
        self.stats["task_issue"][i] = c

    def _release(self, c: int) -> None:
        """Pop a completion when idle; walk its successors, one per cycle."""
        if self.walk is None and self.fifo and self.fifo[0][0] <= c:
            _, tk = self.fifo.popleft()
            self.walk = (tk, 0)
            self.stats["task_pop"][tk] = c
            self.window.discard(tk)
            self.window_free.append(c + 1)
        if self.walk is None:
            return
        tk, k = self.walk
        succ = self.tasks[tk]["succ"]
        if succ:
            s = succ[k]
            self.done_count[s] += 1
            if self.done_count[s] == self.tasks[s]["deps"]:
                self.ready_at[s] = c + AsaTiming.walk_latency + AsaTiming.release_latency \
                    + (AsaTiming.rekey_latency if self.policy == "adaptive" else 0)
                if self.policy == "adaptive":
                    self.adj[s] = self.adj[tk]
                    self.key[s] = mlog(self.tasks[s]["rank"]) + self.adj[tk]
        if k + 1 >= len(succ):
            self.walk = None
            self.completed += 1
            self.last_pop = c + AsaTiming.walk_latency
        else:
            self.walk = (tk, k + 1)

    def next_cycle(self) -> int:
        """The next cycle in which anything can change (the skip over idle cycles)."""
        c = self.c
        filling = self.next_in < len(self.tasks) and bool(self.window_free)
        if self.walk is not None or self.fifo or filling:
            return c + 1
        i = self.pending if self.pending is not None else self.pick(c + 1)
        if i is not None and (self.skips(i) or self.free_engine(c + 1) is not None):
            return c + 1
        wake = [p[0] for p in self.pushes]
        wake += [eng.next_wake(c) for e, eng in enumerate(self.engines) if self.engine_task[e] is not None]
        wake += [r for r in self.ready_at if r is not None and r > c]
        wake += [v for v in self.visible_at if v is not None and v > c]
        return max(c + 1, min(wake)) if wake else c + 1
