# amaranth: UnusedElaboratable=no
"""HBM behind AXI: the timing contract of sim/model/memory/axi_port.py (pure Python), and the cocotb responder
(sim/rtl/tb/hbm_responder.py) against AXI masters in Verilog.

The RTL tests build one top (``HbmTestCore`` in ``VivadoTop``, data width = one beat of the ``tiny``
preset) and run every test of ``sim/rtl/tb/hbm_responder_tb.py`` in one simulator process, each reported as
its own pytest test:

  rd0  AxiBurstReader, RREADY always high          -> m_axi_hbm0_*
  rd1  AxiBurstReader(backpressure=True), r_allow  -> m_axi_hbm1_*
  wr0  AxiBurstWriter (below, test-only)           -> m_axi_hbm2_*
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.utils import exact_log2

from hwgen.rtl.memory.axi import AxiSignature, VivadoTop
from hwgen.rtl.memory.axi_burst_reader import AxiBurstReader
from hwgen.spec import config
from hwgen.spec.axi import BOUNDARY_BYTES, BURST_INCR, MAX_INCR_BEATS, RESP_OKAY
from sim.model.memory.axi_port import HbmPorts, ResponseChannel, controller_cycles
from sim.model.memory.hbm import HbmModel, HbmTiming, make_requests
from sim.rtl import runner

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "axi"
TOP = "hbm_responder_top"
TB_MODULE = "sim.rtl.tb.hbm_responder_tb"
TINY = config.load("tiny")
DEFAULT = config.load("default")

COCOTB_TESTS = [
    "cycle_zero_and_read_latency",
    "reset_restarts_cycle_zero",
    "reads_exact_at_p0",
    "writes_exact_at_p0",
    "mixed_traffic/p=0.0",
    "mixed_traffic/p=0.5",
    "mixed_traffic/p=0.9",
    "slverr_outside_image",
    "idle_responder_sleeps",
]


# ---------------------------------------------------------------------------------------------------
# a test-only AXI4 write master

class AxiBurstWriter(wiring.Component):
    """Writes ``length`` bytes from ``addr`` in the INCR bursts of ``hwgen.spec.axi.plan``.

    Beat j of a command carries the 32-bit little-endian words ``seed + j*W + k`` (k = 0..W-1, W words per
    beat) and WSTRB = ``strb``. Up to ``max_outstanding`` bursts are in flight (from AW issue to B); the W
    beats of a burst start the cycle after its AW is issued, so they run ahead of AW while AWREADY is low.
    ``error`` is set by a BRESP other than OKAY; ``done`` rises after the last B. Read channels unused.
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 128, id_width: int = 2, length_width: int = 24,
                 max_outstanding: int = 4):
        self.axi = AxiSignature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        self.max_outstanding = max_outstanding
        super().__init__({
            "start": In(1), "addr": In(addr_width), "length": In(length_width), "seed": In(32),
            "strb": In(data_width // 8),
            "busy": Out(1), "done": Out(1), "error": Out(1), "bursts": Out(length_width),
            "bus": Out(self.axi),
        })

    def elaborate(self, platform):
        m = Module()
        aw, w, b = self.bus.aw, self.bus.w, self.bus.b
        size = self.axi.size
        words = self.axi.data_width // 32
        page_beats = BOUNDARY_BYTES // self.axi.bytes_per_beat
        m.submodules.lens = lens = fifo.SyncFIFO(width=8, depth=self.max_outstanding)

        next_addr = Signal(len(self.addr))
        beats_left = Signal(len(self.length) - size)
        in_flight = Signal(range(self.max_outstanding + 1))
        to_boundary = Signal(range(page_beats + 1))
        capped = Signal(range(MAX_INCR_BEATS + 1))
        beats = Signal(range(MAX_INCR_BEATS + 1))
        m.d.comb += [
            to_boundary.eq(page_beats - next_addr[size:12]),
            capped.eq(Mux(beats_left > MAX_INCR_BEATS, MAX_INCR_BEATS, beats_left)),
            beats.eq(Mux(to_boundary < capped, to_boundary, capped)),
        ]

        # AW: registered, held until AWREADY; the burst's length goes to the W side at once
        issue = Signal()
        m.d.comb += [
            issue.eq(self.busy & (~aw.valid | aw.ready) & (beats_left != 0) & (in_flight < self.max_outstanding)),
            lens.w_en.eq(issue),
            lens.w_data.eq(beats - 1),
        ]
        with m.If(issue):
            m.d.sync += [
                aw.valid.eq(1),
                aw.payload.id.eq(self.bursts[:self.axi.id_width]),
                aw.payload.addr.eq(next_addr),
                aw.payload.len.eq(beats - 1),
                aw.payload.size.eq(size),
                aw.payload.burst.eq(BURST_INCR),
                next_addr.eq(next_addr + (beats << size)),
                beats_left.eq(beats_left - beats),
                self.bursts.eq(self.bursts + 1),
            ]
        with m.Elif(aw.ready):
            m.d.sync += aw.valid.eq(0)

        # W: beats of the bursts in AW order; the payload changes only on a handshake
        w_on = Signal()
        w_left = Signal(8)                 # beats after the current one in this burst
        w_beat = Signal(32)                # beat number within the command
        base = Signal(32)
        m.d.comb += [
            base.eq(self.seed + (w_beat << exact_log2(words))),
            w.valid.eq(w_on),
            w.payload.data.eq(Cat(*((base + k)[:32] for k in range(words)))),
            w.payload.strb.eq(self.strb),
            w.payload.last.eq(w_left == 0),
        ]
        step = w.valid & w.ready
        take = Signal()
        m.d.comb += [take.eq(lens.r_rdy & (~w_on | (step & w.payload.last))), lens.r_en.eq(take)]
        with m.If(step):
            m.d.sync += [w_beat.eq(w_beat + 1), w_left.eq(w_left - 1)]
            with m.If(w.payload.last):
                m.d.sync += w_on.eq(0)
        with m.If(take):
            m.d.sync += [w_on.eq(1), w_left.eq(lens.r_data)]

        # B
        complete = b.valid & b.ready
        m.d.comb += b.ready.eq(1)
        with m.If(complete & (b.payload.resp != RESP_OKAY)):
            m.d.sync += self.error.eq(1)
        m.d.sync += in_flight.eq(in_flight + issue - complete)

        m.d.comb += [self.bus.ar.valid.eq(0), self.bus.r.ready.eq(1)]

        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    self.busy.eq(1), self.done.eq(0), self.error.eq(0), self.bursts.eq(0), w_beat.eq(0),
                    next_addr.eq(self.addr[size:] << size),
                    beats_left.eq(self.length >> size),
                ]
        with m.Elif((beats_left == 0) & (in_flight == 0)):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m


# ---------------------------------------------------------------------------------------------------
# the test top

class HbmTestCore(wiring.Component):
    def __init__(self, cfg: config.HwConfig):
        kw = {"data_width": cfg.beat_bytes * 8, "id_width": cfg.axi_id_bits}
        n = cfg.memory.outstanding
        self._parts = {
            "rd0": AxiBurstReader(**kw, max_outstanding=n),
            "rd1": AxiBurstReader(**kw, max_outstanding=n, backpressure=True),
            "wr0": AxiBurstWriter(**kw, max_outstanding=n),
        }
        super().__init__({name: Out(part.signature) for name, part in self._parts.items()})

    def elaborate(self, platform):
        m = Module()
        for name, part in self._parts.items():
            m.submodules[name] = part
            connect(m, flipped(getattr(self, name)), part)
        return m


AXI_PORTS = {"rd0.bus": "m_axi_hbm0", "rd1.bus": "m_axi_hbm1", "wr0.bus": "m_axi_hbm2"}


def hbm_top() -> VivadoTop:
    return VivadoTop(HbmTestCore(TINY), AXI_PORTS)


# ---------------------------------------------------------------------------------------------------
# the timing contract, pure Python

def lone_read(cfg: config.HwConfig) -> int:
    """Cycles from an AR handshake to the first RVALID of a lone read of a closed row."""
    t = HbmTiming.of(cfg)
    return controller_cycles(cfg) + t.tRCD + t.tCL + t.data_cycles


class InstantHbm:
    """An HBM that completes every request in its arrival cycle: only the port's own rules remain."""

    def __init__(self, cfg):
        self.timing = HbmTiming.of(cfg)

    def serve(self, requests):
        return np.asarray(requests["arrival"], dtype=np.int64)

    def serve_units(self, arrival, is_write, addresses, sizes):
        return [arrival] * len(addresses)

    def reset(self):
        pass


@pytest.mark.parametrize("mhz, ns, want", [(1000.0, 20.0, 20), (300.0, 20.0, 6), (1000 / 3, 20.0, 7),
                                           (1000.0, 14.0, 14), (700.0, 10.0, 7), (1000.0, 0.0, 0)])
def test_controller_cycles_round_up(mhz, ns, want):
    cfg = config.from_dict({"clock": {"mhz": mhz}, "memory": {"hbm": {"controller_ns": ns}}})
    assert controller_cycles(cfg) == HbmPorts(cfg).controller_cycles == want


def test_single_beat_to_a_closed_row():
    ports = HbmPorts(DEFAULT)
    assert lone_read(DEFAULT) == 20 + 14 + 14 + 1
    assert ports.read(7, 0, 0, 1) == [7 + lone_read(DEFAULT)]
    # a write to another closed bank: write latency = tCL in the model, so the same number
    other = int(ports.hbm.map.unmap(4, 0, 0, 0, 0))      # a pseudo-channel the read did not touch
    assert ports.write(7, 0, other, 1) == 7 + lone_read(DEFAULT)
    assert ports.stats["hbm"]["row_misses"] == 2 * DEFAULT.beat_bytes // DEFAULT.memory.hbm.access_bytes


def test_stream_of_beats_default():
    ports = HbmPorts(DEFAULT)
    # 16 beats x 64 B = 32 accesses, one per pseudo-channel: all ready together, then one R beat per cycle
    assert ports.read(0, 0, 0, 16) == [lone_read(DEFAULT)] * 16
    first = 100 + lone_read(DEFAULT)                # another bank group, long after: closed rows again
    assert ports.serve_read(100, 0, 1024, 16) == list(range(first, first + 16))
    # the first burst's beats were never taken from the R channel: serve_read orders only its own
    assert ports.r[0].last == first + 15


def test_incremental_calls_equal_one_batch():
    """Calls in nondecreasing cycles give what one HbmModel.serve of all the beats gives (plus cycle + 1)."""
    rng = np.random.default_rng(3)
    bursts, cycle = [], 0
    for _ in range(60):
        cycle += int(rng.integers(1, 6))
        beats = int(rng.integers(1, 17))
        bursts.append((cycle, int(rng.integers(0, 1 << 14)) * 64, beats, bool(rng.integers(0, 2))))
    ports = HbmPorts(DEFAULT)
    got = []
    for c, a, n, w in bursts:
        got.append([ports.write(c, 0, a, n)] if w else ports.read(c, 0, a, n))
    batch = HbmModel(DEFAULT)
    reqs = [(c + 20, a + 64 * k, w) for c, a, n, w in bursts for k in range(n)]
    done = batch.serve(make_requests([r[1] for r in reqs], 64, [r[0] for r in reqs], [r[2] for r in reqs]))
    want, i = [], 0
    for c, _, n, w in bursts:
        d = [max(int(x), c + 1) for x in done[i:i + n]]
        want.append([max(d)] if w else d)
        i += n
    assert got == want
    assert ports.stats["hbm"]["accesses"] == batch.stats["accesses"]


def test_narrow_beats_share_an_access():
    """tiny: 16-byte beats, 32-byte accesses; two beats of one access are one HBM access."""
    assert (TINY.beat_bytes, TINY.memory.hbm.access_bytes) == (16, 32)
    ports = HbmPorts(TINY)
    ready = ports.read(0, 0, 16, 4)              # beats at 16, 32, 48, 64: accesses 0, 1, 1, 2
    assert ready[1] == ready[2] and ports.stats["hbm"]["accesses"] == 3
    assert ports.stats["ports"][0]["bytes_read"] == 64
    # later, the open row: a row hit (an unaligned address reads its whole beat)
    assert ports.read(1000, 0, 8, 1) == [1000 + controller_cycles(TINY) + HbmTiming.of(TINY).hit_read_cycles]


def test_ready_is_at_least_the_next_cycle():
    ports = HbmPorts(DEFAULT, hbm=InstantHbm(DEFAULT))
    ports.controller_cycles = 0
    assert ports.read(5, 0, 0, 3) == [6, 6, 6]
    assert ports.write(9, 0, 0, 2) == 10
    assert ports.serve_read(10, 0, 0, 2) == [11, 12]


def test_response_channel():
    ch = ResponseChannel()
    assert ch.take_all([10, 10, 5, 20]) == [10, 11, 12, 20]
    assert (ch.earliest(3), ch.earliest(30)) == (21, 30)
    with pytest.raises(ValueError, match="must be > the previous handshake"):
        ch.accept(20)
    ch.accept(25)
    assert (ch.last, ch.count) == (25, 5)


def test_responses_in_order_per_port_and_ports_share_the_hbm():
    cfg = config.from_dict({"memory": {"ports": 2}})
    ports = HbmPorts(cfg)
    same_bank = [int(ports.hbm.map.unmap(0, 0, 0, 0, c)) for c in range(2)]
    t = ports.hbm.timing
    r0 = ports.serve_read(0, 0, same_bank[0], 1)
    r1 = ports.serve_read(0, 1, same_bank[1], 1)       # the other port, same bank: behind port 0 by tCCD_L
    assert r0 == [lone_read(cfg)] and r1 == [lone_read(cfg) + t.tCCD_L]
    # B responses of one port in AW order, one per cycle
    a, b = (int(ports.hbm.map.unmap(pc, 0, 0, 0, 0)) for pc in (5, 6))
    assert [ports.serve_write(3, 0, a, 1), ports.serve_write(4, 0, b, 1)] == [3 + lone_read(cfg),
                                                                             4 + lone_read(cfg)]


def test_port_of_interleaves():
    cfg = config.from_dict({"memory": {"ports": 4, "interleave_bytes": 4096}})
    ports = HbmPorts(cfg)
    assert [ports.port_of(a) for a in (0, 4095, 4096, 8191, 3 * 4096, 4 * 4096, 5 * 4096 + 7)] == \
        [0, 0, 1, 1, 3, 0, 1]
    assert HbmPorts(DEFAULT).port_of(123456789) == 0


def test_call_order_is_enforced():
    cfg = config.from_dict({"memory": {"ports": 2}})
    ports = HbmPorts(cfg)
    ports.read(4, 0, 0, 1)
    ports.write(4, 0, 64, 1)
    ports.read(4, 1, 128, 1)
    ports.write(4, 1, 192, 1)
    for call, rule in [(lambda: ports.read(3, 0, 0, 1), "cycles must not decrease"),
                       (lambda: ports.read(4, 1, 0, 1), "AR before the completed write"),
                       (lambda: ports.write(4, 0, 0, 1), "port by port")]:
        with pytest.raises(ValueError, match=rule):
            call()
    ports.read(5, 1, 0, 1)
    with pytest.raises(ValueError, match=r"read\(cycle=5, port=0, .*after read on port 1 in cycle 5"):
        ports.read(5, 0, 0, 1)
    ports.reset()
    assert ports.read(0, 0, 0, 1) == [lone_read(cfg)]


@pytest.mark.parametrize("args, field", [((0, 0, 0, 0), "beats 0"), ((0, 0, 0, 257), "beats 257"),
                                         ((0, 1, 0, 1), "port 1"), ((0, 0, -64, 1), "address -64"),
                                         ((-1, 0, 0, 1), "cycle -1"), ((0, 0, 0.5, 1), "address 0.5")])
def test_bad_arguments(args, field):
    with pytest.raises(ValueError, match=f"{field} is not allowed"):
        HbmPorts(DEFAULT).read(*args)


def test_stats_and_clock_check():
    cfg = config.from_dict({"memory": {"ports": 2}})
    ports = HbmPorts(cfg)
    beats = ports.serve_read(10, 0, 0, 8)
    b = ports.serve_write(10, 1, 4096, 4)
    s = ports.stats
    p0, p1 = s["ports"]
    assert (p0["bytes_read"], p0["reads"], p0["bytes_written"]) == (8 * 64, 1, 0)
    assert (p1["bytes_written"], p1["writes"]) == (4 * 64, 1)
    assert p0["end_cycle"] == beats[-1] + 1 and p0["bytes_per_cycle"] == pytest.approx(512 / (beats[-1] + 1 - 10))
    assert p1["end_cycle"] == b + 1
    assert s["bytes_per_cycle"] == pytest.approx(768 / (max(beats[-1], b) + 1 - 10))
    assert s["hbm"]["bytes_read"] == 512 and s["controller_cycles"] == 20
    with pytest.raises(ValueError, match="clock.mhz"):
        HbmPorts(cfg, HbmModel(config.from_dict({"clock": {"mhz": 500.0}})))


# ---------------------------------------------------------------------------------------------------
# Verilator + cocotb

@pytest.fixture(scope="module")
def hbm_build() -> Path:
    return runner.build_component(hbm_top(), TOP, BUILD_ROOT)


@pytest.fixture(scope="module")
def hbm_results(hbm_build) -> dict[str, str | None]:
    return runner.run_cocotb(hbm_build, TOP, TB_MODULE)


@pytest.mark.rtl
def test_hbm_ran_every_cocotb_test(hbm_results):
    assert sorted(hbm_results) == sorted(COCOTB_TESTS)


@pytest.mark.rtl
@pytest.mark.parametrize("name", COCOTB_TESTS)
def test_hbm_responder(hbm_results, name):
    assert name in hbm_results, f"{name} did not run: {sorted(hbm_results)}"
    assert hbm_results[name] is None, hbm_results[name]
