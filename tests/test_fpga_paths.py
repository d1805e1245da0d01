"""The path estimate of ``dsa fpga paths``: arrival times through each kind of ECP5 cell, and on a real component
the same worst path as nextpnr's within the stated third."""
import json

import pytest

from hwgen.spec import config
from sim.fpga import paths
from sim.fpga.paths import estimate
from tests.test_cli import invoke


def _ff(d, q, ce="1"):
    return {"type": "TRELLIS_FF", "port_directions": {"CLK": "input", "DI": "input", "CE": "input", "Q": "output"},
            "connections": {"CLK": [1], "DI": [d], "CE": [ce], "Q": [q]}}


def _lut(a, b, z):
    return {"type": "LUT4", "port_directions": {"A": "input", "B": "input", "C": "input", "D": "input",
                                                "Z": "output"},
            "connections": {"A": [a], "B": [b], "C": ["0"], "D": ["0"], "Z": [z]}}


def _carry(a, cin, s, cout):
    pins = {p: "input" for p in ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1", "CIN")}
    pins.update(S0="output", S1="output", COUT="output")
    conn = {p: ["0"] for p in pins}
    conn.update(A0=[a], CIN=[cin], S0=[s], S1=[900 + s], COUT=[cout])
    return {"type": "CCU2C", "port_directions": pins, "connections": conn}


def _ram(regmode, out, addr):
    return {"type": "DP16KD", "parameters": {"REGMODE_B": regmode, "REGMODE_A": regmode},
            "port_directions": {"CLKB": "input", "ADB0": "input", "DOB0": "output"},
            "connections": {"CLKB": [1], "ADB0": [addr], "DOB0": [out]}}


def test_arrival_through_each_kind_of_cell(tmp_path):
    cells = {
        # two LUTs between registers
        "a_TRELLIS_FF_Q": _ff(10, 11), "l1": _lut(11, 11, 12), "l2": _lut(12, 11, 13), "b_TRELLIS_FF_Q": _ff(13, 14),
        # a RAM without its output register into one LUT, and with it
        "slow": _ram("NOREG", 20, 14), "l3": _lut(20, 20, 21), "c_TRELLIS_FF_Q": _ff(21, 22),
        "fast": _ram("OUTREG", 30, 14), "l4": _lut(30, 30, 31), "d_TRELLIS_FF_Q": _ff(31, 32),
        # a four-cell carry chain from a register, its last sum into a register's clock enable
        "k0": _carry(14, "0", 40, 41), "k1": _carry("0", 41, 42, 43), "k2": _carry("0", 43, 44, 45),
        "k3": _carry("0", 45, 46, 47), "e_TRELLIS_FF_Q": _ff("0", 48, ce=46),
    }
    netlist = tmp_path / "n.json"
    netlist.write_text(json.dumps({"modules": {"m": {"cells": cells, "netnames": {"a": {"bits": [11]}}}}}))
    [module] = estimate(netlist, top=10)
    got = {p.end: p for p in module.worst}
    hop = paths.ROUTE + paths.LUT
    assert got["b.DI"].ns == pytest.approx(paths.CLK_TO_Q + 2 * hop + paths.ROUTE, abs=0.01)
    assert got["b.DI"].cells == "FLL" and got["b.DI"].start == "a"
    assert got["c.DI"].ns == pytest.approx(paths.RAM_OUT["NOREG"] + hop + paths.ROUTE, abs=0.01)
    assert got["d.DI"].ns == pytest.approx(paths.RAM_OUT["OUTREG"] + hop + paths.ROUTE, abs=0.01)
    chain = paths.CLK_TO_Q + paths.ROUTE + paths.CARRY_IN + 2 * paths.CARRY_CHAIN + paths.CARRY_SUM + paths.ROUTE
    assert got["e.CE"].ns == pytest.approx(chain, abs=0.01) and got["e.CE"].cells == "Fcccc"
    assert module.endpoints == 5 + 2                            # the FF inputs on nets, the RAMs' addresses
    assert module.over[8.0] == 0 and [p.end for p in module.worst][0] == "c.DI"


def test_the_estimate_finds_nextpnrs_worst_path(tmp_path):
    """tiny's MAC lanes: ``fpga paths`` lists the worst register inputs without place and route, and its worst
    is within a third of the one nextpnr routes (``fpga timing``, one seed)."""
    cfg = config.load("tiny")
    result = invoke("fpga", "paths", "--config", "tiny", "--component", "mac_lanes", "--top", "5",
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    [module] = json.loads((tmp_path / f"{cfg.build_name}-timing" / "paths.json").read_text())["mac_lanes"]
    assert module["module"] == "mac_lanes" and 0 < len(module["worst"]) <= 5
    estimated = module["worst"][0]["ns"]
    assert "mac_lanes" in result.output and f"{estimated:.1f}" in result.output
    timed = invoke("fpga", "timing", "--config", "tiny", "--component", "mac_lanes", "--seeds", "1",
                   "--out", tmp_path)
    assert timed.exit_code == 0, timed.output
    [record] = json.loads((tmp_path / f"{cfg.build_name}-timing" / "timing.json").read_text())
    routed = 1000 / record["fmax_mhz"]
    assert routed * 2 / 3 <= estimated <= routed * 4 / 3, (estimated, routed)


def test_a_flattened_netlist_shows_the_paths_across_modules(tmp_path):
    """Two modules, a register in one and three LUT levels in the other before its register: kept hierarchical
    (as ``fpga build`` leaves its netlist) each module's paths stop at its ports; ``fpga paths --netlist``
    flattens it and follows the path from one module's register into the other's."""
    from amaranth import Elaboratable, Module, Signal
    from amaranth.back import verilog

    from sim.fpga.yosys import synthesize

    class Source(Elaboratable):
        def __init__(self):
            self.d, self.q = Signal(16), Signal(16)

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.q.eq(self.d)
            return m

    class Sink(Elaboratable):
        def __init__(self):
            self.a, self.y = Signal(16), Signal()

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.y.eq((self.a * 3 + 1).any() ^ self.a.xor())
            return m

    class Top(Elaboratable):
        def __init__(self):
            self.d, self.y = Signal(16), Signal()

        def elaborate(self, platform):
            m = Module()
            m.submodules.source, m.submodules.sink = source, sink = Source(), Sink()
            m.d.comb += [source.d.eq(self.d), sink.a.eq(source.q), self.y.eq(sink.y)]
            return m

    top = Top()
    (tmp_path / "top.v").write_text(verilog.convert(top, ports=[top.d, top.y], name="top"))
    netlist = tmp_path / synthesize(tmp_path, ["top.v"], "top", "ecp5", netlist=True).netlist
    apart = {mp.module: mp for mp in estimate(netlist)}
    assert not any(p.start.startswith("source") for p in apart["top.sink"].worst)     # it starts at the port
    result = invoke("fpga", "paths", "--netlist", netlist, "--top", "3")
    assert result.exit_code == 0, result.output
    [flat] = json.loads((tmp_path / "paths.json").read_text())[f"{netlist.stem} (flattened)"]
    worst = flat["worst"][0]
    assert worst["start"].startswith("source.") and worst["end"].startswith("sink."), worst
    assert worst["cells"].startswith("F") and worst["ns"] > apart["top.sink"].worst[0].ns


@pytest.mark.parametrize(("args", "line"), [
    (["--component", "alu"], "error: --component: 'alu' is not allowed (allowed: all, or comma-separated names"),
    (["--component", "tlb", "--top", "0"], "error: --top: 0 is not allowed (allowed: 1..1000)"),
    ([], "error: --component / --netlist: give exactly one"),
    (["--component", "tlb", "--netlist", "n.json"], "error: --component / --netlist: give exactly one"),
    (["--netlist", "missing.json"], "error: --netlist: missing.json is not allowed (allowed: a JSON netlist"),
])
def test_bad_paths_input_exits_2_before_any_work(tmp_path, args, line):
    result = invoke("fpga", "paths", *args, "--out", tmp_path)
    assert result.exit_code == 2
    assert line in result.output
    assert not any(tmp_path.iterdir())
