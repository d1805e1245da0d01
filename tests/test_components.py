"""Each RTL component against a naive Python model, in Amaranth's simulator (no Verilator needed)."""
import random

import pytest
from amaranth.sim import Simulator

from hwgen.rtl.engine.mac_lanes import MacLanes
from hwgen.rtl.engine.output_buffer import OutputBuffer
from hwgen.rtl.engine.scratchpad import Scratchpad
from hwgen.rtl.engine.zero_compactor import ZeroCompactor
from hwgen.spec import config


def _run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("width", [8, 16])
def test_zero_compactor_every_mask(width):
    dut = ZeroCompactor(width)
    masks = range(1 << width) if width == 8 else random.Random(1).sample(range(1 << width), 3000) + [0, 1 << 15]

    async def tb(ctx):
        for mask in masks:
            ctx.set(dut.mask, mask)
            await ctx.delay(1e-9)
            assert ctx.get(dut.any) == (mask != 0)
            if mask:
                low = (mask & -mask).bit_length() - 1
                assert ctx.get(dut.index) == low, hex(mask)
                assert ctx.get(dut.rest) == mask & ~(1 << low)
    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()


def _overflow(x, bits, mode):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if mode == "saturate":
        return max(lo, min(hi, x))
    return (x - lo) % (1 << bits) + lo


def _lane_results(dut: MacLanes, feed, cycles: int) -> list[list[int]]:
    """Run ``feed`` on ``dut`` for ``cycles`` cycles; every result the lanes strobe, in order."""
    got = []

    async def watch(ctx):
        async for _, _, valid, result in ctx.tick().sample(dut.result_valid, dut.result):
            if valid:
                got.append([result[lane] for lane in range(dut.result_layout.length)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_process(watch)
    sim.run_until(1e-6 * cycles)
    return got


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_mac_lanes_rule_every_step(mode):
    """Saturation is applied after every addition, so the order of products matters; the model mirrors it."""
    lanes, bits = 4, 16
    dut = MacLanes(lanes, 8, bits, mode)
    rng = random.Random(7)
    jobs = [[(rng.choice([-128, 127, rng.randint(-128, 127)]), [rng.choice([-128, 127]) for _ in range(lanes)],
              rng.random() < 0.8) for _ in range(rng.randint(1, 12))] for _ in range(30)]
    expected = []
    for job in jobs:
        acc = [0] * lanes
        for a, b, valid in job:
            if valid:
                acc = [_overflow(acc[lane] + a * b[lane], bits, mode) for lane in range(lanes)]
        expected.append(acc)

    async def feed(ctx):
        for job in jobs:
            for e, (a, b, valid) in enumerate(job):
                ctx.set(dut.a, a)
                for lane in range(lanes):
                    ctx.set(dut.b[lane], b[lane])
                ctx.set(dut.valid, valid)
                ctx.set(dut.last, e == len(job) - 1)
                await ctx.tick()
        ctx.set(dut.valid, 0)
        ctx.set(dut.last, 0)
        await ctx.tick().repeat(MacLanes.latency + 2)

    assert _lane_results(dut, feed, sum(len(j) for j in jobs) + 20) == expected


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("schedule", ["earliest", "latest"])
def test_mac_lanes_start_from_the_init_register_of_the_job(mode, schedule):
    """``first`` opens a job on init[slot] (a bubble too: a job with nothing marked returns its init); the
    slots are taken in turn, so a job's init may be written while earlier jobs are still in the lanes: as
    early as two cycles after the first operand of the last job that used the same slot, or as late as the
    cycle after its own first operand."""
    slots = MacLanes.INIT_SLOTS
    lanes, bits = 4, 16
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    dut = MacLanes(lanes, 8, bits, mode)
    rng = random.Random(11)
    jobs = []
    for _ in range(40):
        init = [rng.choice([lo, hi, 0, rng.randint(lo, hi)]) for _ in range(lanes)]
        ops = [(rng.choice([-128, 127, rng.randint(-128, 127)]), [rng.choice([-128, 127, 0]) for _ in range(lanes)],
                rng.random() < 0.8) for _ in range(rng.choice([1, 1, 2, rng.randint(1, 10)]))]
        if rng.random() < 0.2:
            ops = [(0, [0] * lanes, False)]          # a job with no marked element: only its closing bubble
        jobs.append((init, ops, rng.randint(0, 2)))  # (init, operands, idle cycles before it)
    expected = []
    for init, ops, _ in jobs:
        acc = list(init)
        for a, b, valid in ops:
            if valid:
                acc = [_overflow(acc[lane] + a * b[lane], bits, mode) for lane in range(lanes)]
        expected.append(acc)
    # the cycle each job's first operand is presented, and the cycle its init is written
    firsts, cycle = [], 1
    for _, ops, gap in jobs:
        cycle += gap
        firsts.append(cycle)
        cycle += len(ops)
    writes = {}
    for n, first in enumerate(firsts):
        w = (firsts[n - slots] + 2 if n >= slots else n) if schedule == "earliest" else first + 1
        assert w not in writes and w <= first + 1
        writes[w] = n
    timeline = {}
    for n, ((_, ops, _), first) in enumerate(zip(jobs, firsts, strict=True)):
        for e, op in enumerate(ops):
            timeline[first + e] = (n, e == 0, e == len(ops) - 1, op)

    async def feed(ctx):
        for c in range(cycle + MacLanes.latency + 2):
            n, first, last, (a, b, valid) = timeline.get(c, (0, False, False, (0, [0] * lanes, False)))
            ctx.set(dut.a, a)
            for lane in range(lanes):
                ctx.set(dut.b[lane], b[lane])
            ctx.set(dut.valid, valid)
            ctx.set(dut.first, first)
            ctx.set(dut.last, last)
            ctx.set(dut.slot, n % slots)
            ctx.set(dut.init_valid, c in writes)
            if c in writes:
                ctx.set(dut.init_slot, writes[c] % slots)
                for lane in range(lanes):
                    ctx.set(dut.init[lane], jobs[writes[c]][0][lane])
            await ctx.tick()

    assert _lane_results(dut, feed, cycle + 20) == expected


def test_mac_lanes_latency_is_what_the_simulator_reads():
    dut = MacLanes(2, 8, 32, "wrap")

    async def tb(ctx):
        ctx.set(dut.a, 3)
        ctx.set(dut.b[0], 5)
        ctx.set(dut.valid, 1)
        ctx.set(dut.last, 1)
        await ctx.tick()
        ctx.set(dut.last, 0)
        ctx.set(dut.valid, 0)
        for cycle in range(1, 8):
            if ctx.get(dut.result_valid):
                assert cycle == MacLanes.latency
                assert ctx.get(dut.result[0]) == 15
                return
            await ctx.tick()
        raise AssertionError("no result")
    _run(dut, tb)


def test_scratchpad_banks_and_ports():
    cfg = config.from_dict({"base": "tiny", "l1": {"banks": 4}})
    dut = Scratchpad(cfg, read_ports=3)
    rng = random.Random(3)
    image = {line: rng.getrandbits(cfg.line_bytes * 8) for line in range(cfg.l1_lines)}

    async def tb(ctx):
        all_bytes = (1 << cfg.line_bytes) - 1
        for line, value in image.items():
            ctx.set(dut.fill.addr, line)
            ctx.set(dut.fill.data, value)
            ctx.set(dut.fill.en, all_bytes)
            await ctx.tick()
        # byte enables: write byte 3 of line 5 only
        ctx.set(dut.fill.addr, 5)
        ctx.set(dut.fill.data, (1 << (8 * cfg.line_bytes)) - 1)
        ctx.set(dut.fill.en, 1 << 3)
        await ctx.tick()
        image[5] |= 0xFF << 24
        ctx.set(dut.fill.en, 0)
        for _ in range(200):
            lines = [rng.randrange(cfg.l1_lines) for _ in dut.read]
            for port, line in zip(dut.read, lines, strict=True):
                ctx.set(port.addr, line)
                ctx.set(port.en, 1)
            await ctx.tick().repeat(Scratchpad.READ_LATENCY)
            for port, line in zip(dut.read, lines, strict=True):
                assert ctx.get(port.data) == image[line]
        # en low holds the data
        for port in dut.read:
            ctx.set(port.en, 0)
            ctx.set(port.addr, 0)
        held = [ctx.get(p.data) for p in dut.read]
        await ctx.tick().repeat(3)
        assert [ctx.get(p.data) for p in dut.read] == held
    _run(dut, tb)


@pytest.mark.parametrize("memory", ["scratchpad", "output_buffer"])
def test_registered_read_en_holds_the_ram_and_take_the_data(memory):
    """A registered read port (``signatures.registered_read``): an address with ``en`` in t gives its line in
    t + READ_LATENCY; with ``take`` low the port's data holds while the RAM reads on; with ``en`` low the RAM's
    output holds, and a later ``take`` loads the line read last."""
    cfg = config.from_dict({"base": "tiny", "l1": {"banks": 1}})
    dut = Scratchpad(cfg, read_ports=1) if memory == "scratchpad" else OutputBuffer(cfg, read_ports=1)
    write, port = (dut.fill, dut.read[0]) if memory == "scratchpad" else (dut.write, dut.read[0])
    lines = cfg.l1_lines if memory == "scratchpad" else cfg.out_lines
    width = len(port.data)
    image = {line: (line * 0x9E3779B97F4A7C15 + 1) % (1 << width) for line in range(min(lines, 16))}

    async def tb(ctx):
        for line, value in image.items():
            ctx.set(write.addr, line)
            ctx.set(write.data, value)
            ctx.set(write.en, (1 << len(write.en)) - 1)
            await ctx.tick()
        ctx.set(write.en, 0)
        ctx.set(port.addr, 3)
        await ctx.tick().repeat(dut.READ_LATENCY)
        assert ctx.get(port.data) == image[3]
        ctx.set(port.take, 0)                    # the RAM reads line 5, the data keeps line 3
        ctx.set(port.addr, 5)
        await ctx.tick().repeat(3)
        assert ctx.get(port.data) == image[3]
        ctx.set(port.en, 0)                      # the RAM's output keeps line 5 while the address moves on
        ctx.set(port.addr, 7)
        await ctx.tick().repeat(2)
        assert ctx.get(port.data) == image[3]
        ctx.set(port.take, 1)
        await ctx.tick()
        assert ctx.get(port.data) == image[5]
        ctx.set(port.en, 1)
        await ctx.tick().repeat(dut.READ_LATENCY)
        assert ctx.get(port.data) == image[7]
    _run(dut, tb)
