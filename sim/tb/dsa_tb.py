"""cocotb testbench for dsa_<name>: runs the jobs that sim.runner pickled, writes the results back.

Environment: DSA_TB_JOBS (pickle: list of jobs, see sim.runner._job), DSA_TB_RESULTS (pickle written
here: {"results": [...], "error": str | None}). Inputs are driven and outputs sampled on the falling
edge of clk, half a cycle away from the rising edge where the DUT samples and updates, so no read or
write races the clock. Python does not wake every cycle of a run: it waits for ``done`` (or a timer).
"""
import os
import pickle
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

PERIOD_NS = 2


async def run_job(dut, job):
    fall = FallingEdge(dut.clk)
    # fill L1, one line per cycle
    dut.fill__en.value = 1
    for addr, data in enumerate(job["lines"]):
        dut.fill__addr.value = addr
        dut.fill__data.value = data
        await fall
    dut.fill__en.value = 0
    # run the program's tasks in order: start each (only while idle), then sleep until done rises or the
    # budget runs out; the counters restart with every task
    result = {"cycles": 0, "elems": 0, "gated": 0, "task_cycles": [], "wall_s": 0.0, "outputs": []}
    for index, desc in enumerate(job["descs"]):
        while dut.busy.value:
            await fall
        dut.desc.value = desc & ((1 << len(dut.desc)) - 1)
        dut.start.value = 1
        t0 = time.perf_counter()
        await fall
        dut.start.value = 0
        if not dut.done.value:
            fired = await First(RisingEdge(dut.done), Timer(job["budget"] * PERIOD_NS, unit="ns"))
            if isinstance(fired, Timer):
                raise TimeoutError(f"{job['shape']}, task {index}: done not seen after {int(dut.cycles.value)} "
                                   f"cycles (budget {job['budget']}, busy={int(dut.busy.value)}, "
                                   f"elems={int(dut.elems.value)})")
            await fall
        result["wall_s"] += time.perf_counter() - t0
        result["task_cycles"].append(int(dut.cycles.value))
        result["cycles"] += int(dut.cycles.value)
        result["elems"] += int(dut.elems.value)
        result["gated"] += int(dut.gated.value)
    # read the output buffer: one line per cycle, data one cycle after its address
    dut.out__en.value = 1
    for name, addrs in job["reads"]:
        words = []
        for addr in addrs:
            dut.out__addr.value = addr
            await fall
            words.append(int(dut.out__data.value))
        result["outputs"].append((name, words))
    dut.out__en.value = 0
    return result


@cocotb.test()
async def run_programs(dut):
    with open(os.environ["DSA_TB_JOBS"], "rb") as fh:
        jobs = pickle.load(fh)
    results, error = [], None
    Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    dut.start.value = dut.fill__en.value = dut.out__en.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    try:
        for job in jobs:
            results.append(await run_job(dut, job))
    except Exception as exc:
        error = f"program {len(results)} of {len(jobs)}: {exc}"
        raise
    finally:
        with open(os.environ["DSA_TB_RESULTS"], "wb") as fh:
            pickle.dump({"results": results, "error": error}, fh)
