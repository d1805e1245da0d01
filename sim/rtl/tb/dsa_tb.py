"""cocotb testbench for dsa_<name>: runs the jobs that sim.rtl.runner pickled, writes the results back.

Environment: DSA_TB_JOBS (pickle: list of jobs, see sim.rtl.runner.engine_job), DSA_TB_RESULTS (pickle written
here: {"results": [...], "error": str | None}).

Per job (one program): with reset held, the L1 image is written through ``fill_*`` and the page-table inputs
(``page_table_base`` / ``page_table_entries``: the program's table in the HBM image) are set; reset is released
right after a rising edge, and that edge starts cycle 0 -- the same cycle 0 as the simulator's and as the
HBM responder's (``sim/rtl/tb/hbm_responder.py``, timed by the shared ``sim/model/memory/axi_port.py``), which answers
every ``m_axi_hbm<i>`` port from the job's HBM image with the job's random stalls while one
``sim/rtl/tb/axi_monitor.py`` per port checks every AXI rule. The first task is offered in cycle 0, or with an
L3 in the first cycle ``l3_ready`` is high (the simulator's ``start_cycle``); task issue cycles count from
that offer. Inputs are driven
right after a rising edge; the testbench reads ``task_ready`` in the read-only phase to know whether the
offer is taken at the next edge. Python sleeps while it waits (for ``task_ready``, for ``idle``): it does
not wake every cycle. With an L3, once idle the testbench flushes it (``l3_flush``, then waits for
``l3_flushing`` to fall) so the dirty lines reach HBM before C is read there; the flush is not counted. The
L3's counters (``l3_hits`` ...: every slice's, summed) are reported as ``l3``.
A page fault (``page_fault`` nonzero) halts the engine: the testbench stops offering
tasks, waits for ``idle`` and reports the fault. C in HBM is read through the page table (virtual addresses).
"""
import time

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from hwgen.rtl.top import L3_COUNTERS, hbm_prefix
from hwgen.spec.page_table import PageTable
from hwgen.spec.program import output_words
from hwgen.spec.timing import OutputBufferTiming
from sim.model.memory.axi_port import HbmPorts
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import PERIOD_NS, start_clock
from sim.rtl.tb.hbm_responder import HbmResponder
from sim.rtl.tb.jobs import load_jobs, run_all


async def run_job(dut, clock, job):
    cfg = job["config"]
    rise = RisingEdge(dut.clk)
    dut.rst.value = 1
    dut.task_valid.value = 0
    await rise
    # fill L1 while in reset (memories are not reset), one line per cycle
    dut.fill_en.value = 1
    for addr, data in enumerate(job["lines"]):
        dut.fill_addr.value = addr
        dut.fill_data.value = data
        await rise
    dut.fill_en.value = 0
    table_base, table_entries = job["page_table"]
    dut.page_table_base.value = table_base
    dut.page_table_entries.value = table_entries
    dut.tlb_flush.value = 0
    if cfg.l3.enabled:
        dut.l3_flush.value = 0
    image = np.frombuffer(job["hbm"], dtype=np.uint8).copy()
    responder = HbmResponder(dut, HbmPorts(cfg), image, clock, dut.rst, stall=job["stall"], seed=job["seed"],
                             plant=job.get("plant"))
    monitors = [AxiMonitor(dut, hbm_prefix(i), dut.clk, dut.rst) for i in range(cfg.memory.ports)]
    await rise
    # cycle 0 starts here
    dut.rst.value = 0
    t0_ns = get_sim_time("ns")
    wall = time.perf_counter()
    issue = []

    if cfg.l3.enabled:                     # the L3 clears its tags after reset: offer tasks once it is ready
        await ReadOnly()
        if not dut.l3_ready.value:
            await RisingEdge(dut.l3_ready)
        t0_ns = get_sim_time("ns")          # task issue cycles count from the first task offered

    def cycle() -> int:
        return int((get_sim_time("ns") - t0_ns) // PERIOD_NS)

    budget_ns = job["budget"] * PERIOD_NS
    for index, desc in enumerate(job["descs"]):
        dut.task_payload.value = desc
        dut.task_valid.value = 1
        await ReadOnly()
        while not dut.task_ready.value and not dut.page_fault.value:
            fired = await First(RisingEdge(dut.task_ready), dut.page_fault.value_change, Timer(budget_ns, unit="ns"))
            if isinstance(fired, Timer):
                raise TimeoutError(f"{job['label']}: task {index} not taken by cycle {cycle()} (budget "
                                   f"{job['budget']}, busy units {int(dut.unit_busy.value):03b})")
            await ReadOnly()
        if dut.page_fault.value:            # halted: this task and the rest are not taken
            await rise
            break
        issue.append(cycle())
        await rise
    dut.task_valid.value = 0
    await ReadOnly()
    if not dut.idle.value:
        fired = await First(RisingEdge(dut.idle), Timer(budget_ns, unit="ns"))
        if isinstance(fired, Timer):
            raise TimeoutError(f"{job['label']}: not idle by cycle {cycle()} (budget {job['budget']}, busy "
                               f"units {int(dut.unit_busy.value):03b})")
    await rise
    wall = time.perf_counter() - wall
    if cfg.l3.enabled:                     # write the L3's dirty lines back, as a host does before reading HBM
        dut.l3_flush.value = 1
        await rise
        dut.l3_flush.value = 0
        await ReadOnly()
        if dut.l3_flushing.value:
            # bound: a walk step per set, and every line of every set dirty, written back beat by beat
            bound = job["budget"] + cfg.l3.sets * (1 + cfg.l3.ways * (cfg.l3.line_bytes // cfg.beat_bytes + 1))
            fired = await First(FallingEdge(dut.l3_flushing), Timer(bound * PERIOD_NS, unit="ns"))
            if isinstance(fired, Timer):
                raise TimeoutError(f"{job['label']}: the L3 flush did not end within {bound} cycles")
        await rise
    if int(dut.dma_error.value):
        raise RuntimeError(f"{job['label']}: DMA error bits {int(dut.dma_error.value):02b}, slave errors "
                           f"{responder.errors[:3]}")
    for monitor in monitors:
        monitor.assert_clean()
    result = {"cycles": int(dut.cycles.value), "elems": int(dut.elems.value), "gated": int(dut.gated.value),
              "task_issue": issue, "wall_s": wall, "outputs": [], "axi_edges": responder.edges,
              "page_fault": int(dut.page_fault.value), "tlb_hits": int(dut.tlb_hits.value),
              "tlb_misses": int(dut.tlb_misses.value), "tlb_walks": int(dut.tlb_walks.value)}
    if cfg.l3.enabled:                     # line accesses, summed over the L3's slices (the flush counts none)
        result["l3"] = {name: int(getattr(dut, f"l3_{name}").value) for name in L3_COUNTERS}
    responder.stop()
    for monitor in monitors:
        monitor.stop()
    # results: from HBM where a STORE put them, else from the output buffer (one line at a time, driven and
    # sampled on the falling edge: the read port's data follows its address by the buffer's READ_LATENCY)
    fall = FallingEdge(dut.clk)
    await fall
    dut.out_en.value = 1
    for name, where, addrs in job["reads"]:
        if where == "hbm":
            start, count, line_bytes = addrs       # start: a virtual address; lines as hwgen.spec.program.hbm_lines
            table = PageTable.in_image(image, table_base, table_entries, cfg.memory.page_bytes)
            words = output_words(cfg, table.read(image, start, count * line_bytes), line_bytes)
        else:
            words = []
            for addr in addrs:
                dut.out_addr.value = addr
                for _ in range(OutputBufferTiming.READ_LATENCY):
                    await fall
                words.append(int(dut.out_data.value))
        result["outputs"].append((name, words))
    dut.out_en.value = 0
    return result


@cocotb.test()
async def run_programs(dut):
    jobs = load_jobs()
    clock = start_clock(dut)
    dut.clear.value = 0
    dut.fill_en.value = dut.out_en.value = 0
    await run_all(jobs, lambda job: run_job(dut, clock, job))
