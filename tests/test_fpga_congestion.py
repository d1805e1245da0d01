"""router2's congestion heatmaps summed by module and signal (sim/fpga/congestion.py), on hand-made files shaped as
nextpnr writes them, and the routing progress read from its log."""
from sim.fpga import congestion

NETS = """board_rst,45
board.chip.asa.slot0_valid_LUT4_A_Z[3],30
board.chip.asa.slot0_valid_LUT4_A_Z[2],10
board.chip.engine0.l1.fill__data_q[5],25
board.chip.engine0.l1.fill__data_q[6],15
board.chip.engine0.unit0.e_mask_TRELLIS_FF_Q_15_DI_PFUMX_Z_C0[2],20
board.chip.engine0.unit0.acc,0
o$21,x
"""


def _write(folder, iteration, text):
    for kind in ("congestion_by_wiretype", "utilisation_by_wiretype", "congestion_by_coordinate"):
        (folder / f"run_heat_{kind}_{iteration}.csv").write_text("0\n")
    (folder / f"run_heat_congestion_by_net_{iteration}.csv").write_text(text)


def test_summary_sums_by_module_and_signal(tmp_path):
    _write(tmp_path, 3, "board.chip.asa.x,999\n")
    _write(tmp_path, 12, NETS)
    c = congestion.summary(tmp_path, "run_heat")
    assert c.iteration == 12 and c.total == 145       # the latest map; zero and malformed rows ignored
    assert c.modules == [("(top)", 45), ("board.chip.asa", 40), ("board.chip.engine0.l1", 40),
                         ("board.chip.engine0.unit0", 20)]
    assert c.nets[:3] == [("board_rst", 45, 1), ("board.chip.asa.slot0_valid", 40, 2),
                          ("board.chip.engine0.l1.fill__data_q", 40, 2)]
    assert ("board.chip.engine0.unit0.e_mask", 20, 1) in c.nets
    line = congestion.describe(c, modules=2, nets=1)
    assert line == ("congestion at router2 iteration 12 by module: (top) 31 %, board.chip.asa 28 %; largest: "
                    "board_rst (1 net)")


def test_no_heatmap_is_said(tmp_path):
    assert congestion.summary(tmp_path, "run_heat") is None
    assert congestion.describe(None) == "no congestion heatmap was written"


def test_prune_keeps_the_latest_complete_iteration(tmp_path):
    _write(tmp_path, 2, NETS)
    _write(tmp_path, 3, NETS)
    (tmp_path / "run_heat_congestion_by_wiretype_4.csv").write_text("0\n")   # iteration 4 is being written
    (tmp_path / "other_heat_congestion_by_net_1.csv").write_text(NETS)      # another seed's: left alone
    congestion.prune(tmp_path, "run_heat")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["other_heat_congestion_by_net_1.csv", "run_heat_congestion_by_wiretype_4.csv"]
                          + [f"run_heat_{k}_3.csv" for k in ("congestion_by_wiretype", "utilisation_by_wiretype",
                                                              "congestion_by_coordinate", "congestion_by_net")])


def test_a_new_run_starts_without_an_earlier_runs_heatmaps(tmp_path):
    """A build again in the same folder: the first run's iteration 118 must not hide the second's iteration 67
    (prune kept the old map, deleted the new ones, and the summary of a congested seed said no map was written)."""
    _write(tmp_path, 118, "")
    (tmp_path / "other_heat_congestion_by_net_1.csv").write_text(NETS)      # another seed's: left alone
    congestion.clear(tmp_path, "run_heat")
    _write(tmp_path, 67, NETS)
    congestion.prune(tmp_path, "run_heat")
    assert congestion.summary(tmp_path, "run_heat").iteration == 67
    assert (tmp_path / "other_heat_congestion_by_net_1.csv").exists()


def test_progress_reads_the_last_iteration():
    log = ("Info: Running main router loop...\n"
           "Info:     iter=1 wires=738207 overused=59913 overuse=73460 archfail=NA\n"
           "Info:     iter=2 wires=767067 overused=41302 overuse=45093 archfail=NA\n")
    assert congestion.progress(log) == (2, 767067, 41302)
    assert congestion.progress("Info: Running placer\n") is None
