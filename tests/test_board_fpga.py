"""The board build around the chip: the ECP5 PLL's dividers (against nextpnr's own ecppll), the ULX3S top's pins,
and `dsa fpga build`'s refusals."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen.rtl.block_ram import ecp5_tiling
from hwgen.rtl.board.ecp5_pll import pll_dividers
from hwgen.spec import config, host_link, isa
from tests.test_cli import invoke


@pytest.mark.parametrize("mhz", [125, 100, 137.5, 160, 66, 33.333, 200])
def test_pll_dividers_are_the_ones_ecppll_picks(tmp_path, mhz):
    ecppll = Path(sys.executable).parent / "yowasp-ecppll"
    subprocess.run([str(ecppll), "-i", "25", "-o", str(mhz), "-f", "pll.v"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=600)
    text = (tmp_path / "pll.v").read_text()
    theirs = {k: int(v) for k, v in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV)\((\d+)\)", text)}
    mine = pll_dividers(25, mhz)
    assert (mine.clki_div, mine.clkfb_div, mine.clkop_div) == (theirs["CLKI_DIV"], theirs["CLKFB_DIV"],
                                                              theirs["CLKOP_DIV"])
    assert 400 <= mine.vco_mhz <= 800


def test_a_clock_the_pll_cannot_make_is_refused():
    with pytest.raises(ValueError, match=r"clock.mhz: 1000 is not allowed on an ECP5 PLL \(allowed: 3.125..400"):
        pll_dividers(25, 1000)


def test_the_ulx3s_top_takes_the_boards_pins_and_clock():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hwgen.rtl.board.ulx3s import Ulx3sTop
    plan = ULX3S_85F_Platform().prepare(Ulx3sTop(config.load("ulx3s")), name="board_top")
    lpf = plan.files["board_top.lpf"]
    for pin in ("G2", "M1", "L4", "D6", "B2"):           # clk25, UART rx / tx, power button, LED 0
        assert f'SITE "{pin}"' in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    rtlil = plan.files["board_top.il"]
    assert "EHXPLLL" in rtlil and 'FREQUENCY_PIN_CLKOP "125"' in rtlil
    # the L1 and output buffer copies, the scheduler's descriptor RAMs (one per engine), the board memory and the
    # host bridge's buffer are DP16KD tiles with their output register (hwgen/rtl/block_ram.py): 9 L1 copies of 4
    # tiles and 2 output buffer copies of 8
    cfg = config.load("ulx3s")
    per = max(isa.DESCRIPTOR_BITS, cfg.beat_bytes * 8) // isa.DESCRIPTOR_BITS     # descriptors per RAM row
    desc = ecp5_tiling(isa.DESCRIPTOR.used * per, max(2, -(-cfg.scheduler.descriptors // per))).tiles
    board = ecp5_tiling(cfg.beat_bytes * 8, cfg.board.memory_bytes // cfg.beat_bytes, 8).tiles
    bridge = ecp5_tiling(32, host_link.MAX_WORDS).tiles                            # the host bridge's frame buffer
    tiles = rtlil.count("cell \\DP16KD ")
    assert tiles == 9 * 4 + 2 * 8 + cfg.scheduler.engines * desc + board + bridge, tiles
    assert rtlil.count('parameter \\REGMODE_B "OUTREG"') == tiles
    assert rtlil.count("cell \\DCCA ") == 1                 # the reset, on a global network


@pytest.mark.parametrize(("args", "line"), [
    (["--board", "icebreaker"], "error: --board: 'icebreaker' is not allowed (allowed: ulx3s)"),
    (["--board", "ulx3s", "--config", "tiny"], "error: --config: tiny is sized for board.target 'none', not 'ulx3s'"),
    (["--board", "ulx3s", "--seeds", "1,1"], "error: --seeds: '1,1' is not allowed (allowed: distinct integers"),
    (["--board", "ulx3s", "--seeds", ""], "error: --seeds: '' is not allowed"),
    (["--board", "ulx3s", "--jobs", "0"], "error: --jobs: 0 is not allowed (allowed: 1..64)"),
    (["--board", "ulx3s", "--timeout", "0"], "error: --timeout: 0.0 is not allowed (allowed: 1..1440)"),
    (["--board", "ulx3s", "--mhz", "500"], "error: --mhz: clock.mhz: 500 is not allowed on an ECP5 PLL (allowed: "
                                           "3.125..400.0)"),
    (["--board", "ulx3s", "--mhz", "0"], "error: --mhz: clock.mhz: 0.0 is not allowed: Input should be greater than"),
])
def test_bad_build_input_exits_2_before_any_work(tmp_path, args, line):
    result = invoke("fpga", "build", *args, "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert line in result.output
    assert not any(tmp_path.iterdir())


def test_a_seed_that_does_not_route_is_recorded_and_loses_no_other_seed(tmp_path, monkeypatch):
    """Seed 3 fails (as a congested seed does): the build keeps seeds 1 and 2, packs the better one, records seed 3
    with its error and counts it as 0 MHz in the median; with no seed routed the build fails with every error."""
    import json
    from types import SimpleNamespace

    from sim.fpga import board
    from sim.fpga.pnr import PnrResult
    from sim.rtl.errors import RtlError

    clock = "$glbnet$clk"
    fmax = {1: 47.9, 2: 53.7}
    packed = []

    def place_and_route(folder, netlist, part, *, seed, **kwargs):
        if seed not in fmax:
            raise RtlError(f"nextpnr (seed {seed}) did not finish in 60 s; most congested: engine 40 %")
        return PnrResult(seed=seed, fmax={clock: fmax[seed], "clk25_0__io": 300.0}, constraint={clock: 125.0},
                         utilisation={"TRELLIS_COMB": (40744, 83640)}, critical_from=f"a{seed}", critical_to="b",
                         seconds=1.0, log=Path(folder) / "log")

    monkeypatch.setattr(board, "synthesize", lambda folder, *a, **k: SimpleNamespace(
        netlist="n.json", seconds=1.0, total={"lut": 40744.0, "ff": 20011.0, "dsp": 42.0, "ram": 111.0}))
    monkeypatch.setattr(board, "place_and_route", place_and_route)
    monkeypatch.setattr(board, "ecppack", lambda folder, textcfg, bit: packed.append(textcfg))
    monkeypatch.setattr(board, "yosys_version", lambda: "yosys")
    monkeypatch.setattr(board, "nextpnr_version", lambda: "nextpnr")
    record_file = tmp_path / "record.json"
    result = invoke("fpga", "build", "--board", "ulx3s", "--seeds", "1,2,3", "--out", tmp_path / "out",
                    "--json", record_file)
    assert result.exit_code == 0, result.output
    assert "did not route" in result.output and "count as 0 MHz: 3" in result.output
    record = json.loads(record_file.read_text())
    assert record["fmax_mhz"] == {"per_seed": [47.9, 53.7, 0.0], "median": 47.9, "met": False}
    assert [run["routed"] for run in record["seeds"]] == [True, True, False]
    assert "seed 3" in record["seeds"][2]["error"] and "engine 40 %" in record["seeds"][2]["error"]
    assert packed == ["board_top_seed2.config"]          # the best routed seed's bitstream
    assert record["bitstream_seed"] == 2
    # its seed meets 53.7 of the PLL's 125 MHz: the build says the bitstream may fail on a board, and how to get
    # one that works
    assert ("warning: the bitstream (seed 2) meets 53.7 MHz, below the 125 MHz its PLL makes: it may fail on the "
            "board. For a board, build at a clock it meets: dsa fpga build --board ulx3s --mhz 48") in " ".join(
        result.output.split())

    # --mhz: the PLL makes that clock and nextpnr aims at it; a bitstream that meets it gets no warning
    asked = []
    routed = place_and_route

    def place_and_route(folder, netlist, part, *, seed, mhz, **kwargs):
        asked.append(mhz)
        run = routed(folder, netlist, part, seed=seed)
        return PnrResult(**{**vars(run), "constraint": {clock: mhz}})
    monkeypatch.setattr(board, "place_and_route", place_and_route)
    result = invoke("fpga", "build", "--board", "ulx3s", "--seeds", "1,2", "--mhz", "45", "--out", tmp_path / "out",
                    "--json", record_file)
    assert result.exit_code == 0, result.output
    record = json.loads(record_file.read_text())
    assert asked == [45, 45] and record["target_mhz"] == 45 and record["fmax_mhz"]["met"]
    assert "warning" not in result.output and "target met" in result.output
    assert 'FREQUENCY_PIN_CLKOP "45"' in (Path(record["bitstream"]).parent / "board_top.il").read_text()

    fmax.clear()
    result = invoke("fpga", "build", "--board", "ulx3s", "--seeds", "1,2", "--out", tmp_path / "out")
    assert result.exit_code == 3, result.output            # a tool's failure
    assert "no seed routed" in result.output and "seed 1" in result.output and "seed 2" in result.output
