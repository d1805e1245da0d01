"""cocotb tests of AxiArbiter (hwgen/rtl/memory/axi_arbiter.py) alone: cocotbext-axi AxiMasters on its slave ports, one
AxiRam behind its master port.

The top (built by tests/test_axi_arbiter.py, names by hwgen.rtl.memory.axi.VivadoTop): the masters' ports as
``s_axi_m<i>_*``, the joined bus as ``m_axi_bus_*``. Parameters come from ARBITER_TB_PARAMS (JSON: masters,
id_width, outstanding, addr_width, data_width); randomness from ARBITER_TB_SEED (default 1).

Traffic: each master runs ``WORKERS`` concurrent workers doing random operations: reads of a shared
read-only region (checked against the initial image), writes to a shared region every master writes
(overlapping), and writes + reads of the worker's own region (reads checked against what it wrote). The
stall probability p pauses every channel of every AxiMaster and of the AxiRam (VALID withheld / READY
low).

``Checker`` is the module docstring's rule as a Python model, run on every cycle: from the masters' VALIDs
and payloads and its own copy of the grant state (hold, last granted, W order, ``w_ahead``) it predicts every
``bus`` VALID and payload and every READY toward a master, and every R/B VALID, payload and READY, and
compares them with the RTL. So the round robin, the hold, the ID tagging and zero added latency are
checked in every cycle of every test. It also records the bus writes in order (AW + W beats), replayed on
the initial image at the end: the RAM must hold exactly that (every write landed, in bus order), and each
master's written bytes must all have reached the bus. AxiMonitors (strict) watch every port.
"""
from __future__ import annotations

import json
import os
import random
import warnings
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from sim.rtl.tb.axi_monitor import AxiMonitor

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi(\.|$)")
warnings.filterwarnings("error", category=DeprecationWarning, module=r"sim(\.|$)")

from cocotbext.axi import AxiBus, AxiMaster, AxiRam  # noqa: E402

from sim.rtl.tb.clock import start_clock  # noqa: E402

PARAMS = json.loads(os.environ.get("ARBITER_TB_PARAMS", '{"masters": 2, "id_width": 2, "outstanding": 8, '
                                   '"addr_width": 16, "data_width": 128}'))
SEED = int(os.environ.get("ARBITER_TB_SEED", "1"))
N = PARAMS["masters"]
I = PARAMS["id_width"]                   # noqa: E741 (the AXI name)
OUTSTANDING = PARAMS["outstanding"]
B = PARAMS["data_width"] // 8
S = max(1, (N - 1).bit_length())
RAM_BYTES = 1 << PARAMS["addr_width"]
BUS = "m_axi_bus"
UPS = [f"s_axi_m{i}" for i in range(N)]
WORKERS = 3
# regions: [0, RO) read-only, [RO, SHARED) written by everyone, then one private chunk per worker
RO, SHARED = RAM_BYTES // 4, RAM_BYTES // 2
CHUNK = (RAM_BYTES - SHARED) // (N * WORKERS) // B * B
FIELDS = {"ar": ("id", "addr", "len", "size", "burst"), "aw": ("id", "addr", "len", "size", "burst"),
          "w": ("data", "strb", "last"), "r": ("id", "data", "resp", "last"), "b": ("id", "resp")}


def pauses(rng: random.Random, p: float):
    """A cocotbext-axi pause generator: True (pause) with probability ``p`` each cycle."""
    while True:
        yield rng.random() < p


class _Port:
    """Handles of one port's channels: ``v[ch]``, ``r[ch]`` (valid/ready), ``f[ch][field]``."""

    def __init__(self, dut, prefix: str):
        self.v = {ch: getattr(dut, f"{prefix}_{ch}valid") for ch in FIELDS}
        self.r = {ch: getattr(dut, f"{prefix}_{ch}ready") for ch in FIELDS}
        self.f = {ch: {f: getattr(dut, f"{prefix}_{ch}{f}") for f in fields} for ch, fields in FIELDS.items()}

    def payload(self, ch: str) -> dict[str, int]:
        return {f: int(h.value) for f, h in self.f[ch].items()}


class _Grant:
    """Round robin with hold for one address channel (the model of ``AxiArbiter._arbitrate``)."""

    def __init__(self):
        self.held: int | None = None
        self.last = N - 1
        self.since: list[int | None] = [None] * N   # cycle a master's VALID rose (-1 once shown, None after)
        self.delays: list[tuple[int, int]] = []       # (master, cycles from VALID to shown on bus)

    def select(self, valids: list[bool]) -> int | None:
        if self.held is not None:
            return self.held
        return next(((self.last + k) % N for k in range(1, N + 1) if valids[(self.last + k) % N]), None)


class Checker:
    """Predicts every cycle of the arbiter's ports from the masters' signals; see the module docstring."""

    def __init__(self, dut):
        self.dut = dut
        self.bus = _Port(dut, BUS)
        self.ups = [_Port(dut, p) for p in UPS]
        self.grant = {"ar": _Grant(), "aw": _Grant()}
        self.w_order: deque[int] = deque()
        self.w_ahead = False
        self.cycle = 0
        self.errors: list[str] = []
        self.aws: list[tuple[int, int, int]] = []        # bus AW handshakes: (master, address, beats)
        self.w_bursts: list[list[tuple[int, int]]] = []  # bus W bursts, (data, strb) per beat
        self.w_beats: list[tuple[int, int]] = []         # beats of the W burst in progress
        self.handshakes = {ch: [0] * N for ch in FIELDS}
        self.full_waits = 0      # cycles an AW waited for room in the W order
        self.w_leads = 0         # W beats that passed before their AW's handshake (W order empty)
        self.w_aheads = 0        # W bursts complete before their AW's handshake
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        self._task.cancel()

    def _err(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {text}")

    async def _run(self) -> None:
        edge = RisingEdge(self.dut.clk)
        while True:
            await edge
            if int(self.dut.rst.value):
                continue
            self._check()
            self.cycle += 1

    def _check(self) -> None:
        bus, ups = self.bus, self.ups
        rooms = len(self.w_order) < OUTSTANDING or N == 1
        shown = {}
        for ch in ("ar", "aw"):
            grant = self.grant[ch]
            valids = [u.v[ch].value == 1 for u in ups]
            for i, v in enumerate(valids):
                if v and grant.since[i] is None:
                    grant.since[i] = self.cycle
                elif not v:
                    grant.since[i] = None
            sel = grant.select(valids)
            on = sel is not None and (ch == "ar" or rooms)
            self.full_waits += sel is not None and not on
            shown[ch] = sel if on else None
            if (bus.v[ch].value == 1) != on:
                self._err(f"bus {ch}valid={int(bus.v[ch].value)}, model {int(on)} (sel {sel}, held {grant.held})")
                continue
            ready = bus.r[ch].value == 1
            if on:
                want = ups[sel].payload(ch)
                want["id"] |= sel << I
                got = bus.payload(ch)
                if got != want:
                    self._err(f"bus {ch} payload {got} != master {sel}'s tagged {want}")
                if grant.since[sel] not in (None, -1):
                    grant.delays.append((sel, self.cycle - grant.since[sel]))
                    grant.since[sel] = -1
            for i, u in enumerate(ups):
                want_ready = ready if N == 1 else on and i == sel and ready     # one master: a wire
                if (u.r[ch].value == 1) != want_ready:
                    self._err(f"master {i} {ch}ready={int(u.r[ch].value)}, model {int(want_ready)}")
            if on and ready:
                grant.held, grant.last, grant.since[sel] = None, sel, None
                self.handshakes[ch][sel] += 1
                if ch == "aw":
                    p = bus.payload("aw")
                    if p["size"] != (B.bit_length() - 1) or p["burst"] != 1:
                        self._err(f"bus AW size/burst {p['size']}/{p['burst']}: the replay wants full INCR")
                    self.aws.append((sel, p["addr"], p["len"] + 1))
            elif on:
                grant.held = sel
        self._check_w(shown["aw"], shown["aw"] is not None and bus.r["aw"].value == 1)
        for ch in ("r", "b"):
            self._check_response(ch)

    def _check_w(self, aw_sel: int | None, aw_take: bool) -> None:
        bus, ups = self.bus, self.ups
        if N == 1:
            w_on, sel = True, 0
        elif self.w_order:
            w_on, sel = True, self.w_order[0]
        elif not self.w_ahead and aw_sel is not None:
            w_on, sel = True, aw_sel
        else:
            w_on, sel = False, None
        on = w_on and ups[sel].v["w"].value == 1
        ready = bus.r["w"].value == 1
        if (bus.v["w"].value == 1) != on:
            self._err(f"bus wvalid={int(bus.v['w'].value)}, model {int(on)} (order {list(self.w_order)})")
        for i, u in enumerate(ups):
            if (u.r["w"].value == 1) != (w_on and i == sel and ready):
                self._err(f"master {i} wready={int(u.r['w'].value)}, model {int(w_on and i == sel and ready)}")
        last = False
        if on:
            p = bus.payload("w")
            if p != ups[sel].payload("w"):
                self._err(f"bus W payload {p} != master {sel}'s {ups[sel].payload('w')}")
            if ready:
                self.handshakes["w"][sel] += 1
                self.w_leads += N > 1 and not self.w_order and not aw_take
                self.w_beats.append((p["data"], p["strb"]))
                last = p["last"] == 1
                if last:
                    self.w_bursts.append(self.w_beats)
                    self.w_beats = []
        if N == 1:
            return
        early = last and not self.w_order          # the burst of the AW on show passed ahead of it
        if last and self.w_order:
            self.w_order.popleft()
        if aw_take and not self.w_ahead and not early:
            self.w_order.append(aw_sel)
        if aw_take:
            self.w_ahead = False
        elif early:
            self.w_ahead = True
            self.w_aheads += 1

    def _check_response(self, ch: str) -> None:
        bus, ups = self.bus, self.ups
        valid = bus.v[ch].value == 1
        p = bus.payload(ch) if valid else None
        target = 0 if N == 1 else (p["id"] >> I if valid else None)
        for i, u in enumerate(ups):
            if (u.v[ch].value == 1) != (valid and i == target):
                self._err(f"master {i} {ch}valid={int(u.v[ch].value)}, bus {ch}valid={int(valid)} to {target}")
        if not valid:
            return
        if target >= N:
            self._err(f"bus {ch} ID {p['id']} names no master")
            return
        want = dict(p, id=p["id"] & ((1 << I) - 1))
        got = ups[target].payload(ch)
        if got != want:
            self._err(f"master {target} {ch} payload {got} != bus {p}")
        if (bus.r[ch].value == 1) != (ups[target].r[ch].value == 1):
            self._err(f"bus {ch}ready={int(bus.r[ch].value)} != master {target}'s")
        if bus.r[ch].value == 1:
            self.handshakes[ch][target] += 1

    def bus_writes(self) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
        """(master, address, beats, W beats) of every bus write, in bus order (W bursts follow AW order)."""
        if len(self.w_bursts) != len(self.aws) or self.w_beats:
            self._err(f"{len(self.aws)} AWs but {len(self.w_bursts)} W bursts (+{len(self.w_beats)} beats)")
        return [(*aw, data) for aw, data in zip(self.aws, self.w_bursts, strict=True)]

    def replay(self, image: bytearray) -> bytearray:
        out = bytearray(image)
        for _, addr, beats, data in self.bus_writes():
            if len(data) != beats:
                self._err(f"bus write at 0x{addr:x}: {len(data)} W beats of {beats}")
            base = addr - addr % B
            for k, (word, strb) in enumerate(data):
                raw = word.to_bytes(B, "little")
                for j in range(B):
                    if strb >> j & 1:
                        out[base + k * B + j] = raw[j]
        return out


async def setup(dut, p: float, label: str):
    """Clock, reset, RAM (random image), masters, monitors, checker, all with pauses of probability p."""
    rng = random.Random(f"{SEED}-{label}")
    start_clock(dut)
    dut.rst.value = 1
    image = bytearray(rng.randbytes(RAM_BYTES))
    ram = AxiRam(AxiBus.from_prefix(dut, BUS), dut.clk, dut.rst, size=RAM_BYTES)
    ram.write(0, bytes(image))
    masters = [AxiMaster(AxiBus.from_prefix(dut, prefix), dut.clk, dut.rst) for prefix in UPS]
    if p > 0:
        for model in (ram, *masters):
            for channel in (model.write_if.aw_channel, model.write_if.w_channel, model.write_if.b_channel,
                            model.read_if.ar_channel, model.read_if.r_channel):
                channel.set_pause_generator(pauses(random.Random(rng.random()), p))
    monitors = [AxiMonitor(dut, prefix, dut.clk, dut.rst) for prefix in (BUS, *UPS)]
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    checker = Checker(dut)
    await RisingEdge(dut.clk)
    return rng, image, ram, masters, monitors, checker


async def finish(dut, image: bytearray, ram: AxiRam, monitors, checker: Checker, written: list[int]) -> None:
    await ClockCycles(dut.clk, 4)
    checker.stop()
    want = checker.replay(image)
    got = bytearray(ram.read(0, RAM_BYTES))
    assert not checker.errors, "\n".join(checker.errors[:6])
    bad = [a for a in range(RAM_BYTES) if got[a] != want[a]]
    assert not bad, f"RAM differs from the replay of the bus writes at {len(bad)} bytes, first 0x{bad[0]:x}"
    for i in range(N):
        bytes_on_bus = sum(bin(strb).count("1") for m, _, _, data in checker.bus_writes() if m == i for _, strb in data)
        assert bytes_on_bus == written[i], f"master {i}: {written[i]} bytes written, {bytes_on_bus} on the bus"
    for monitor in monitors:
        monitor.assert_clean()
    assert sum(len(mon.reads) for mon in monitors[1:]) == len(monitors[0].reads)
    assert sum(len(mon.writes) for mon in monitors[1:]) == len(monitors[0].writes)


@cocotb.test()
async def zero_contention(dut):
    """One master at a time, no stalls: every AR and AW is on the bus in the cycle its master raises VALID
    (X = 0), and its handshakes on both sides are in that same cycle."""
    rng, image, ram, masters, monitors, checker = await setup(dut, 0.0, "zero")
    written = [0] * N
    for rnd in range(2):
        for i, master in enumerate(masters):
            addr = SHARED + (i * WORKERS) * CHUNK + rnd * B
            data = rng.randbytes(3 * B)
            await master.write(addr, data)
            written[i] += len(data)
            assert (await master.read(addr, len(data))).data == data
            at = rng.randrange(0, RO - 64)
            assert (await master.read(at, 64)).data == bytes(image[at:at + 64])
    for ch in ("ar", "aw"):
        delays = checker.grant[ch].delays
        assert delays and all(d == 0 for _, d in delays), f"{ch}: VALID-to-bus delays {delays}"
    await finish(dut, image, ram, monitors, checker, written)


async def worker(master: AxiMaster, index: int, w: int, rng: random.Random, image: bytearray, ops: int,
                 written: list[int]) -> None:
    """Random reads and writes of one master (see the module docstring); checks every read."""
    own = SHARED + (index * WORKERS + w) * CHUNK
    shadow = bytearray(image[own:own + CHUNK])
    for _ in range(ops):
        kind = rng.choice(["ro", "shared", "own_write", "own_read"])
        length = rng.choice([rng.randint(1, 3 * B), rng.randint(1, 40 * B), rng.randint(1, 256 * B)])
        if kind == "ro":
            length = min(length, RO)
            addr = rng.randrange(0, RO - length + 1)
            got = (await master.read(addr, length)).data
            assert got == bytes(image[addr:addr + length]), f"master {index}: read-only 0x{addr:x}+{length} wrong"
        elif kind == "shared":
            length = min(length, SHARED - RO)
            addr = rng.randrange(RO, SHARED - length + 1)
            await master.write(addr, rng.randbytes(length))
            written[index] += length
        else:
            length = min(length, CHUNK)
            off = rng.randrange(0, CHUNK - length + 1)
            if kind == "own_write":
                data = rng.randbytes(length)
                await master.write(own + off, data)
                shadow[off:off + length] = data
                written[index] += length
            got = (await master.read(own + off, length)).data
            assert got == bytes(shadow[off:off + length]), f"master {index} worker {w}: own 0x{own + off:x} wrong"


@cocotb.test()
@cocotb.parametrize(p=[0.0, 0.5, 0.9])
async def random_traffic(dut, p: float):
    """Every master and the RAM stall every channel with probability p: data per master, every write landed,
    monitors clean, and the arbiter's every cycle as the model says."""
    rng, image, ram, masters, monitors, checker = await setup(dut, p, f"random-{p}")
    ops = 12 if p < 0.9 else 6
    written = [0] * N
    tasks = [cocotb.start_soon(worker(master, i, w, random.Random(rng.random()), image, ops, written))
             for i, master in enumerate(masters) for w in range(WORKERS)]
    for task in tasks:
        await task
    await finish(dut, image, ram, monitors, checker, written)
    for ch in ("ar", "aw"):
        delays = [d for _, d in checker.grant[ch].delays]
        dut._log.info("%s: %d bursts, VALID-to-bus delay max %d mean %.2f, per master %s", ch, len(delays),
                      max(delays), sum(delays) / len(delays), checker.handshakes[ch])
    dut._log.info("p=%.1f: %d cycles, %d bus writes, %d W beats (%d bursts) ahead of their AW, %d cycles an AW "
                  "waited for room in the W order", p, checker.cycle, len(checker.aws), checker.w_leads,
                  checker.w_aheads, checker.full_waits)
