"""cocotb testbench of the whole chip (``dsa_<name>_chip``: ``hwgen/rtl/chip.py``): a host on ``s_axi_ctrl`` runs DAG
programs that ``sim.rtl.runner.run_chip_batch`` pickled, and writes the results back.

Environment: DSA_TB_JOBS (pickle: list of jobs, see ``sim.rtl.runner.chip_job``), DSA_TB_RESULTS (pickle written
here: {"results": [...], "error": str | None}).

One ``HbmResponder`` per ``m_axi_hbm<i>`` port (timed by the shared ``sim/model/memory/axi_port.py``, with the first
job's random stalls) and one ``AxiMonitor`` per port serve every job; per job, reset with the job's HBM image
copied into the responder's buffer. Reset is released right after a rising edge, which starts cycle 0. The
host, as the chip's README says: waits for ``status.l3_ready``, writes ``program_base``, ``policy`` and
``irq_enable``, writes ``control.start``, waits for ``irq``, reads the counters, writes ``control.l3_flush``
and waits for ``status.l3_flushing`` to fall, then reads the outputs from HBM through the page table.

Scoreboard (a coroutine sampling the trace outputs every cycle; a violation fails the run at once): a task is
issued (or skipped) once, only after every predecessor's completion was popped, is skipped exactly when the
golden model says its predicate is clear, and is popped once, after its issue. Watchdog: no completion popped
for ``watchdog`` cycles, or the run past ``budget`` cycles, fails with a dump of the counters and the
testbench's view of the tasks.
"""
from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from hwgen.rtl.top import hbm_prefix
from hwgen.spec.csr_map import BYTE_COUNTERS, CONTROL_BITS, COUNTERS, STATUS_BITS
from hwgen.spec.page_table import PageTable
from hwgen.spec.program import output_words
from sim.model.memory.axi_port import HbmPorts
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import PERIOD_NS, start_clock
from sim.rtl.tb.hbm_responder import HbmResponder
from sim.rtl.tb.jobs import load_jobs, run_all


class ScoreboardError(AssertionError):
    pass


class Host:
    """The CSRs by name (offsets from the job's CSR map), through cocotbext-axi's AXI4-Lite master."""

    def __init__(self, dut, csr_map: list[dict]):
        self.regs = {r["name"]: r for r in csr_map}
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), dut.clk, dut.rst)

    async def read(self, name: str) -> int:
        r = self.regs[name]
        value = 0
        for w in range(-(-r["width"] // 32)):
            word = await self.master.read(r["offset"] + 4 * w, 4)
            value |= int.from_bytes(word.data, "little") << (32 * w)
        return value

    async def write(self, name: str, value: int) -> None:
        r = self.regs[name]
        for w in range(-(-r["width"] // 32)):
            await self.master.write(r["offset"] + 4 * w, ((value >> (32 * w)) & 0xFFFFFFFF).to_bytes(4, "little"))

    async def bit(self, name: str, bits: tuple[str, ...], which: str) -> bool:
        return bool(await self.read(name) >> bits.index(which) & 1)


class Scoreboard:
    """Per cycle: the trace outputs against the program's DAG (see the module docstring)."""

    def __init__(self, dut, job):
        self.dut, self.job = dut, job
        n = len(job["preds"])
        self.issue, self.engine, self.pop = [None] * n, [None] * n, [None] * n
        self.skipped: set[int] = set()
        self.cycle, self.last_pop, self.error = 0, 0, None
        self.stop = False

    def dump(self, why: str) -> str:
        waiting = [t for t, p in enumerate(self.pop) if p is None]
        running = [t for t in waiting if self.issue[t] is not None]
        return (f"{self.job['label']}: {why}; not popped {waiting[:16]}, issued and not popped {running[:16]} on "
                f"engines {[self.engine[t] for t in running[:16]]}, skipped {sorted(self.skipped)[:16]}")

    async def run(self) -> None:
        dut, job = self.dut, self.job
        try:
            while not self.stop:
                await RisingEdge(dut.clk)
                await ReadOnly()
                n = self.cycle
                self.cycle += 1
                if dut.trace_picked.value:
                    t = int(dut.trace_picked_task.value)
                    skip = bool(dut.trace_picked_skip.value)
                    if not 0 <= t < len(self.issue) or self.issue[t] is not None:
                        raise ScoreboardError(self.dump(f"task {t} picked in cycle {n} (before: {self.issue[t]})"))
                    early = [p for p in job["preds"][t] if self.pop[p] is None]
                    if early:
                        raise ScoreboardError(self.dump(f"task {t} picked in cycle {n} before predecessors {early} "
                                                        "were released"))
                    if skip != (t in job["skip"]):
                        raise ScoreboardError(self.dump(f"task {t} {'skipped' if skip else 'issued'} in cycle {n}, "
                                                        f"the golden predicates say {'skip' if not skip else 'run'}"))
                    self.issue[t] = n
                    if skip:
                        self.skipped.add(t)
                    else:
                        self.engine[t] = int(dut.trace_picked_engine.value)
                if dut.trace_released.value:
                    t = int(dut.trace_released_task.value)
                    if not 0 <= t < len(self.pop) or self.pop[t] is not None or self.issue[t] is None:
                        raise ScoreboardError(self.dump(f"completion of task {t} popped in cycle {n}"))
                    self.pop[t] = self.last_pop = n
                if self.issue[0] is not None or any(p is not None for p in self.pop):
                    if n - self.last_pop > job["watchdog"] and self.last_pop:
                        raise ScoreboardError(self.dump(f"watchdog: no completion popped for {job['watchdog']} "
                                                        f"cycles (cycle {n})"))
                if n > job["budget"]:
                    raise ScoreboardError(self.dump(f"cycle budget {job['budget']} exceeded in cycle {n}"))
        except ScoreboardError as exc:
            self.error = exc


async def run_job(dut, job, image, host, responders, monitors):
    cfg = job["config"]
    rise = RisingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(2):
        await rise
    blob = np.frombuffer(job["hbm"], dtype=np.uint8)
    image[:] = 0
    image[:len(blob)] = blob
    await rise
    dut.rst.value = 0                              # this edge starts cycle 0
    board = Scoreboard(dut, job)
    watcher = cocotb.start_soon(board.run())
    wall = time.perf_counter()

    for _ in range(job["budget"] // 256):
        if await host.bit("status", STATUS_BITS, "l3_ready"):
            break
        await Timer(256 * PERIOD_NS, unit="ns")
    else:
        raise TimeoutError(board.dump("status.l3_ready never rose"))
    await host.write("program_base", job["program_base"])
    await host.write("policy", job["policy"])
    await host.write("irq_enable", 1)
    await host.write("control", 1 << CONTROL_BITS.index("start"))
    while not dut.irq.value:              # the scoreboard's watchdog and budget end a run that hangs
        await First(RisingEdge(dut.irq), Timer(4096 * PERIOD_NS, unit="ns"))
        if board.error:
            raise board.error
    done_seen = board.cycle
    wall = time.perf_counter() - wall
    board.stop = True
    result = {name: await host.read(name) for name in (*COUNTERS, *BYTE_COUNTERS, "error", "page_fault",
                                                        "dma_error", "predicates", "policy")}
    await host.write("irq", 1)
    await host.write("control", 1 << CONTROL_BITS.index("l3_flush"))
    for _ in range(job["budget"] // 64 + 64):
        if not await host.bit("status", STATUS_BITS, "l3_flushing"):
            break
    else:
        raise TimeoutError(board.dump("the L3 flush did not end"))
    await watcher
    if board.error:
        raise board.error
    for monitor in monitors:
        monitor.assert_clean()
    if any(r.errors for r in responders):
        raise ScoreboardError(f"{job['label']}: slave errors {[r.errors[:2] for r in responders]}")
    missing = [t for t, p in enumerate(board.pop) if p is None]
    if missing:
        raise ScoreboardError(board.dump(f"irq in cycle {done_seen}, but never popped {missing[:8]}"))
    table = PageTable.in_image(image, *job["page_table"], cfg.memory.page_bytes)
    outputs = [(name, output_words(cfg, table.read(image, start, count * line_bytes), line_bytes))
               for name, start, count, line_bytes in job["reads"]]
    # the start: the cycle ``cycles`` counts from (done is seen high from the cycle after irq's set)
    result.update(outputs=outputs, wall_s=wall, task_issue=board.issue, task_engine=board.engine,
                  task_pop=board.pop, skipped_tasks=sorted(board.skipped),
                  start_cycle=done_seen - 1 - result["cycles"])
    return result


@cocotb.test()
async def run_programs(dut):
    jobs = load_jobs()
    clock = start_clock(dut)
    dut.rst.value = 1
    cfg = jobs[0]["config"]
    image = np.zeros(max(len(j["hbm"]) for j in jobs), np.uint8)
    timing = HbmPorts(cfg)
    responders = [HbmResponder(dut, timing, image, clock, dut.rst, stall=jobs[0]["stall"], seed=jobs[0]["seed"])]
    monitors = [AxiMonitor(dut, hbm_prefix(i), dut.clk, dut.rst) for i in range(cfg.memory.ports)]
    host = Host(dut, jobs[0]["csr_map"])
    await run_all(jobs, lambda job: run_job(dut, job, image, host, responders, monitors))
