"""cocotb test of BlockRam (hwgen/rtl/block_ram.py): its ECP5 form (DP16KD tiles, simulated by the model in
``ecp5_dp16kd.v``, with their output registers) beside its behavioural form, for each shape in
BLOCK_RAM_TB_SHAPES (JSON: [[width, depth, granularity], ...], shape k's ports prefixed ``s<k>_``).

Both forms of a shape take the same inputs; every cycle brings random writes (random byte enables) and reads
with ``en`` and ``take`` each low a quarter of the time, and in every cycle after reset the two read ports'
data must be equal. A read never names the word written in the same cycle (not defined on the ECP5). The test
also counts the reads whose data reached the port (taken) with a word that was written, so it cannot pass on
two ports that never move.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from sim.rtl.tb.clock import start_clock

SHAPES = json.loads(os.environ.get("BLOCK_RAM_TB_SHAPES", "[]"))
CYCLES = int(os.environ.get("BLOCK_RAM_TB_CYCLES", "3000"))


async def drive(dut, k: int, shape, rng: random.Random, stats: dict) -> None:
    width, depth, granularity = shape
    lanes = width // 8 if granularity else 1
    sig = {name: getattr(dut, f"s{k}_{name}") for name in
           ("waddr", "wdata", "wen", "raddr", "ren", "rtake", "ref", "ecp5")}
    # most accesses go to a few words spread over the whole depth (every address bit moves), so reads find
    # written words; the rest anywhere
    hot = [0, depth - 1, *(rng.randrange(depth) for _ in range(14))]

    def address() -> int:
        return rng.choice(hot) if rng.random() < 0.8 else rng.randrange(depth)

    for _ in range(CYCLES):
        waddr = address()
        writing = rng.random() < 0.5
        sig["waddr"].value = waddr
        sig["wdata"].value = rng.getrandbits(width)
        sig["wen"].value = rng.getrandbits(lanes) if writing else 0
        raddr = address()
        while writing and raddr == waddr and depth > 1:
            raddr = address()
        sig["raddr"].value = raddr
        sig["ren"].value = int(rng.random() < 0.75)
        sig["rtake"].value = int(rng.random() < 0.75)
        await RisingEdge(dut.clk)
        await ReadOnly()
        ref, got = int(sig["ref"].value), int(sig["ecp5"].value)
        assert got == ref, f"shape {shape}: ECP5 tiles read {got:#x}, the behavioural RAM {ref:#x}"
        stats[k] += ref != 0
        await FallingEdge(dut.clk)


@cocotb.test()
async def ecp5_tiles_equal_the_behavioural_ram(dut):
    start_clock(dut)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    stats = dict.fromkeys(range(len(SHAPES)), 0)
    tasks = [cocotb.start_soon(drive(dut, k, shape, random.Random(f"block-ram-{k}"), stats))
             for k, shape in enumerate(SHAPES)]
    for task in tasks:
        await task
    for k, shape in enumerate(SHAPES):
        assert stats[k] > CYCLES // 3, f"shape {shape}: only {stats[k]} cycles read a written word"
