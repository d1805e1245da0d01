"""cocotb testbench of the ASA scheduler alone (``hwgen/rtl/scheduler/asa.py`` in ``VivadoTop``: ``m_axi_hbm0_*``
and the other ports flat), with fake engines driven from Python; runs the jobs ``tests/test_asa.py`` pickled.

Environment: ASA_TB_JOBS (pickle: a list of jobs), ASA_TB_RESULTS (pickle written here: {"results": [...],
"error": str | None}). A job: ``config``, ``hbm`` (the image bytes), ``program_base``, ``policy`` (code),
``stall``, ``seed``, ``preds`` (each task's predecessors), ``skip`` (tasks that must be skipped), ``watchdog``
(cycles without a completion popped before the run fails) and ``budget`` (cycles in all), ``label``.

One ``HbmResponder`` (the first job's stalls and seed) and one ``AxiMonitor`` on ``m_axi_hbm0`` serve all jobs;
per job: reset (which restarts both) with the job's image copied into the responder's buffer;
reset is released right after a rising edge that starts cycle 0, with ``start`` high in cycle 0 (S = 0, as in
the model). The testbench wakes on every rising edge: it reads what happened in the cycle that ended, then
drives the next one.

Fake engine (what ``tests/test_asa.FakeEngine`` models): ``ready`` = ``idle`` = (the cycle is past
``busy_until``); a descriptor taken in cycle t (fields: ``k`` the task, ``n`` its number within the task, ``m``
a duration) sets ``busy_until = max(busy_until, t + m)``, so the engine's ``idle`` drops the cycle after the
take, like the real engine's units.

Scoreboard (fails the run at once): descriptors of a task come in order, on one engine, each taken once; a
task is offered only after every predecessor's completion was popped (``released``), never if it must be
skipped; a completion is popped once. Watchdog: no completion popped for ``watchdog`` cycles, or the run past
``budget`` cycles, fails with a dump of the scheduler's ports and the testbench's view.
"""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from hwgen.rtl.scheduler.asa import Asa
from hwgen.spec import isa
from sim.model.memory.axi_port import HbmPorts
from sim.rtl.tb.axi_monitor import AxiMonitor
from sim.rtl.tb.clock import start_clock
from sim.rtl.tb.hbm_responder import HbmResponder
from sim.rtl.tb.jobs import load_jobs, run_all

PREFIX = "m_axi_hbm0"
IMAGE_BYTES = 1 << 20        # every job's image fits; a read beyond it is answered SLVERR
COUNTERS = ("issued", "skipped", "stall_no_engine", "stall_not_ready", "cycles")


class ScoreboardError(AssertionError):
    pass


async def run_job(dut, job, image, responder, monitor):
    cfg = job["config"]
    E = cfg.scheduler.engines
    n_tasks = len(job["preds"])
    rise = RisingEdge(dut.clk)
    ports = [(getattr(dut, f"task{e}_valid"), getattr(dut, f"task{e}_ready"), getattr(dut, f"task{e}_payload"))
             for e in range(E)]
    dut.rst.value = 1
    dut.start.value = 0
    dut.idle.value = (1 << E) - 1
    for _, ready, _ in ports:
        ready.value = 1
    await rise
    await rise
    blob = np.frombuffer(job["hbm"], dtype=np.uint8)
    image[:] = 0
    image[:len(blob)] = blob
    await rise
    dut.rst.value = 0                      # this edge starts cycle 0
    dut.start.value = 1
    dut.program_base.value = job["program_base"]
    dut.policy.value = job["policy"]

    busy_until = [-1] * E
    ready_now = [True] * E                  # what was driven for the cycle in progress
    expect = [None] * E                     # (task, next descriptor number) of the engine's current task
    offer = [None] * n_tasks                # first cycle the task's first descriptor was offered
    engine = [None] * n_tasks
    takes: list[list[int]] = [[] for _ in range(n_tasks)]
    finish = [None] * n_tasks
    pop = [None] * n_tasks
    last_pop = 0
    done_at = None

    def dump(why: str) -> str:
        state = {name: int(getattr(dut, name).value) for name in (*COUNTERS, "busy", "done", "error")}
        waiting = [t for t in range(n_tasks) if pop[t] is None]
        return (f"{job['label']}: {why}; ports {state}, predicates {int(dut.predicates.value):#x}; engines "
                f"(task, next descriptor) {expect}, busy_until {busy_until}; not popped {waiting[:16]}; offered "
                f"not popped {[t for t in waiting if offer[t] is not None][:16]}; "
                f"AXI beats {len(responder.records[PREFIX].r)}")

    c = 0                                   # the cycle in progress
    if job.get("expect_error"):             # a run that must stop with an error code
        while c < job["budget"]:
            await rise
            c += 1
            dut.start.value = 0
            if int(dut.error.value) and not dut.busy.value:
                break
        result = {"error": int(dut.error.value), "busy": int(dut.busy.value), "done": int(dut.done.value),
                  "issued": int(dut.issued.value)}
        for _ in range(64):                 # the aborted run's bursts drain
            await rise
        monitor.assert_clean()
        return result
    while True:
        await rise
        n = c                               # the cycle that just ended
        c += 1
        if n == 0:
            dut.start.value = 0
        for e, (valid, _, payload) in enumerate(ports):
            if not valid.value:
                continue
            f = isa.unpack(int(payload.value))
            t, k = f["k"], f["n"]
            if not 0 <= t < n_tasks:
                raise ScoreboardError(dump(f"engine {e} offered a descriptor of task {t} in cycle {n}"))
            if expect[e] is None or expect[e][0] != t:
                if k != 0 or offer[t] is not None:
                    raise ScoreboardError(dump(f"engine {e}: task {t} descriptor {k} offered in cycle {n} "
                                               f"(first offer {offer[t]})"))
                if t in job["skip"]:
                    raise ScoreboardError(dump(f"task {t} offered in cycle {n}, but its predicate is clear"))
                early = [p for p in job["preds"][t] if pop[p] is None or pop[p] >= n]
                if early:
                    raise ScoreboardError(dump(f"task {t} offered in cycle {n} before predecessors {early} "
                                               "were released"))
                offer[t], engine[t], expect[e] = n, e, (t, 0)
            elif k != expect[e][1]:
                raise ScoreboardError(dump(f"engine {e}: task {t} descriptor {k} offered in cycle {n}, expected "
                                           f"{expect[e][1]}"))
            if ready_now[e]:
                takes[t].append(n)
                busy_until[e] = max(busy_until[e], n + f["m"])
                expect[e] = (t, k + 1)
        for e in range(E):
            if expect[e] is not None and finish[expect[e][0]] is None and takes[expect[e][0]] \
                    and len(takes[expect[e][0]]) == job["counts"][expect[e][0]] and n > busy_until[e] \
                    and n > takes[expect[e][0]][-1]:
                finish[expect[e][0]] = n
        if dut.released.value:
            t = int(dut.released_task.value)
            if not 0 <= t < n_tasks or pop[t] is not None:
                raise ScoreboardError(dump(f"completion of task {t} popped in cycle {n} (before: {pop[t]})"))
            pop[t], last_pop = n, n
        if int(dut.error.value):
            raise ScoreboardError(dump(f"error code {int(dut.error.value)} in cycle {n}, slave errors "
                                       f"{responder.errors[:3]}"))
        if dut.done.value and n > 0:
            done_at = n
            break
        if n - last_pop > job["watchdog"]:
            raise ScoreboardError(dump(f"watchdog: no completion popped for {job['watchdog']} cycles (cycle {n})"))
        if n > job["budget"]:
            raise ScoreboardError(dump(f"cycle budget {job['budget']} exceeded"))
        for e, (_, ready, _) in enumerate(ports):
            ready_now[e] = c > busy_until[e]
            ready.value = int(ready_now[e])
        dut.idle.value = sum(int(c > busy_until[e]) << e for e in range(E))

    result = {name: int(getattr(dut, name).value) for name in COUNTERS}
    result.update(predicates=int(dut.predicates.value), busy=int(dut.busy.value), done_at=done_at,
                  offer=offer, issue=[None if o is None else o - Asa.feed_latency for o in offer], engine=engine,
                  finish=finish, pop=pop, takes=takes, page_table=(int(dut.page_table_base.value),
                                                                   int(dut.page_table_entries.value)),
                  axi_beats=len(responder.records[PREFIX].r))
    missing = [t for t in range(n_tasks) if pop[t] is None]
    never = [t for t in range(n_tasks) if offer[t] is None and t not in job["skip"]]
    short = [t for t in range(n_tasks) if offer[t] is not None and len(takes[t]) != job["counts"][t]]
    if missing or never or short:
        raise ScoreboardError(dump(f"done in cycle {done_at}, but never popped {missing[:8]}, never offered "
                                   f"{never[:8]}, descriptors not all taken {short[:8]}"))
    await rise
    await rise
    monitor.assert_clean()
    if responder.errors:
        raise ScoreboardError(f"{job['label']}: slave errors {responder.errors[:3]}")
    return result


@cocotb.test()
async def run_jobs(dut):
    jobs = load_jobs("ASA_TB")
    clock = start_clock(dut)
    dut.rst.value = 1
    # one responder and monitor for all jobs (a reset between jobs restarts them); each job's image is copied
    # into the one buffer
    image = np.zeros(IMAGE_BYTES, np.uint8)
    responder = HbmResponder(dut, HbmPorts(jobs[0]["config"]), image, clock, dut.rst, stall=jobs[0]["stall"],
                             seed=jobs[0]["seed"])
    monitor = AxiMonitor(dut, PREFIX, dut.clk, dut.rst)
    await run_all(jobs, lambda job: run_job(dut, job, image, responder, monitor), "ASA_TB")
