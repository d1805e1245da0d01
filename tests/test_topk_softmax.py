# amaranth: UnusedElaboratable=no
"""TopkSoftmax in Amaranth's simulator against golden.numerics (topk_row + int_softmax), bit for bit and cycle
for cycle: every row's busy time must equal ``TopkSoftmax.row_cycles`` exactly.

The linter comment above: constructors that raise ValueError leave an unused Elaboratable behind."""
import random

import pytest
import torch
from amaranth.back import verilog
from amaranth.sim import Simulator

from golden.numerics import int_softmax, topk_row
from hwgen.rtl.engine.topk_softmax import TopkSoftmax, const_divider
from hwgen.spec.softmax import softmax_constants

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _golden_row(beats, k, frac_bits):
    """Expected entries of one row: [(index, p)] in ascending index order ([] for a row with no valid beat)."""
    scores = torch.tensor([v for v, _ in beats], dtype=torch.int64)
    valid = torch.tensor([ok for _, ok in beats], dtype=torch.bool)
    values, positions = topk_row(scores, k, valid)
    if values.numel() == 0:
        return []
    p = int_softmax(values, frac_bits)   # kept scores in top-k order (value desc, index asc)
    return sorted(zip(positions.tolist(), p.tolist(), strict=True))


def _random_row(rng, frac_bits):
    n = rng.randint(1, 40)
    q_ln2 = softmax_constants(frac_bits)["q_ln2"]
    kind = rng.choice(["ties", "spread", "extreme", "near", "small"])
    base = rng.randint(-(1 << 20), 1 << 20)
    if kind == "ties":        # a handful of distinct values: many equal scores, also at the k-th place
        pool = [rng.randint(-50, 50) for _ in range(rng.randint(1, 3))]
        values = [rng.choice(pool) for _ in range(n)]
    elif kind == "spread":    # anything in the 32-bit range: almost everything but the maximum is dead
        values = [rng.randint(INT32_MIN, INT32_MAX) for _ in range(n)]
    elif kind == "extreme":   # the corners: -q up to 2^32 - 1
        values = [rng.choice([INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 0]) for _ in range(n)]
    elif kind == "near":      # -q around multiples of q_ln2 and around the dead limit 31 * q_ln2
        values = [base - rng.randint(0, 31) * q_ln2 + rng.choice([-1, 0, 1]) for _ in range(n)]
    else:                     # within a few q_ln2 of each other: the interesting softmax
        values = [base + rng.randint(-6 * q_ln2, 6 * q_ln2) for _ in range(n)]
    mask_rate = rng.choice([0.0, 0.0, 0.3, 0.8, 1.0])
    return [(v, rng.random() >= mask_rate) for v in values]


def _simulate(dut, rows, ks):
    """Feed rows back to back (producer always valid); return per row (first accept cycle, entries, last cycle)
    with entries as [(index, p, last, empty)]."""
    beats = [(r, i, v, ok, i == len(row) - 1) for r, row in enumerate(rows) for i, (v, ok) in enumerate(row)]
    slowest = max(TopkSoftmax.row_cycles(len(row), min(len(row), k)) for row, k in zip(rows, ks, strict=True))
    first = [None] * len(rows)
    done = [None] * len(rows)
    got = [[] for _ in rows]

    async def tb(ctx):
        pos, row_out, cycle, idle = 0, 0, 0, 0
        while row_out < len(rows):
            assert idle <= slowest + 2, "the unit hangs"
            if pos < len(beats):
                r, i, v, ok, last = beats[pos]
                ctx.set(dut.k, ks[r])
                ctx.set(dut.scores.payload.value, v)
                ctx.set(dut.scores.payload.index, i)
                ctx.set(dut.scores.payload.valid, ok)
                ctx.set(dut.scores.payload.last, last)
                ctx.set(dut.scores.valid, 1)
            else:
                ctx.set(dut.scores.valid, 0)
            ctx.set(dut.entries.ready, 1)   # the consumer is always ready
            if pos < len(beats) and ctx.get(dut.scores.ready):
                if i == 0:
                    first[r] = cycle
                pos, idle = pos + 1, 0
            if ctx.get(dut.entries.valid):
                payload = ctx.get(dut.entries.payload)
                got[row_out].append((payload.index, payload.p, payload.last, payload.empty))
                if payload.last:
                    done[row_out] = cycle
                    row_out += 1
                idle = 0
            await ctx.tick()
            cycle, idle = cycle + 1, idle + 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return first, got, done


@pytest.mark.parametrize("kmax,frac_bits", [(4, 4), (4, 10), (8, 8), (8, 4), (8, 10)])
def test_rows_match_golden_and_row_cycles(kmax, frac_bits):
    rng = random.Random(kmax * 100 + frac_bits)
    rows = [_random_row(rng, frac_bits) for _ in range(60)]
    rows += [[(5, False)], [(INT32_MIN, True)], [(INT32_MAX, True), (INT32_MIN, True)], [(7, True)] * 40]
    ks = [rng.choice([1, kmax, rng.randint(1, kmax)]) for _ in rows]
    dut = TopkSoftmax(kmax, frac_bits)
    first, got, done = _simulate(dut, rows, ks)

    for r, (row, k) in enumerate(zip(rows, ks, strict=True)):
        expected = _golden_row(row, k, frac_bits)
        entries = got[r]
        if not expected:
            assert [(e[2], e[3]) for e in entries] == [(1, 1)], (r, entries)
        else:
            assert [(e[0], e[1]) for e in entries] == expected, (r, row, k)
            assert [e[2] for e in entries] == [0] * (len(expected) - 1) + [1]
            assert not any(e[3] for e in entries)
        busy = done[r] + 1 - first[r]
        assert busy == TopkSoftmax.row_cycles(len(row), len(expected)), (r, len(row), len(expected), busy)
        if r + 1 < len(rows):   # back to back: the next row starts the cycle after this one's last entry
            assert first[r + 1] == first[r] + busy


def test_streaming_rule_literal():
    """Ties at the k-th place keep the earlier index; a strictly greater newcomer evicts the smallest."""
    dut = TopkSoftmax(4, 8)
    rows = [[(3, True), (3, True), (3, True), (3, True), (3, True), (4, True)],
            [(9, True), (1, False), (9, True), (2, True)],
            [(-1, True)] * 6]
    first, got, done = _simulate(dut, rows, [2, 4, 3])
    assert [e[0] for e in got[0]] == [0, 5]
    assert [e[0] for e in got[1]] == [0, 2, 3]
    assert [e[0] for e in got[2]] == [0, 1, 2]
    assert [e[1] for e in got[2]] == [42, 42, 42]   # int_softmax of three equal scores: 128 // 3 = 42
    assert done[2] + 1 - first[2] == TopkSoftmax.row_cycles(6, 3)


def test_row_cycles_of_a_row_that_keeps_nothing_and_of_impossible_rows():
    """Rows that keep entries are timed against the RTL above; one that keeps none is the sort alone."""
    assert TopkSoftmax.row_cycles(1, 0) == 3      # the beat sorted in, then the empty beat
    assert TopkSoftmax.row_cycles(7, 0) == 9
    with pytest.raises(ValueError):
        TopkSoftmax.row_cycles(0, 0)
    with pytest.raises(ValueError):
        TopkSoftmax.row_cycles(2, 3)


@pytest.mark.parametrize("frac_bits", range(4, 11))
def test_const_divider_exact(frac_bits):
    q_ln2 = softmax_constants(frac_bits)["q_ln2"]
    limit = 31 * q_ln2
    mult, shift = const_divider(q_ln2, limit)
    assert all((n * mult) >> shift == n // q_ln2 for n in range(limit))


@pytest.mark.parametrize("frac_bits", [3, 11, -1, True, 8.0])
def test_frac_bits_out_of_range(frac_bits):
    with pytest.raises(ValueError, match="frac_bits"):
        TopkSoftmax(4, frac_bits)


@pytest.mark.parametrize("kmax", [0, 257, True])
def test_kmax_out_of_range(kmax):
    with pytest.raises(ValueError, match="kmax"):
        TopkSoftmax(kmax, 8)


def test_converts_to_verilog():
    text = verilog.convert(TopkSoftmax(16, 8), name="topk_softmax", emit_src=False)
    assert "module topk_softmax" in text
    for port in ("scores__payload", "scores__ready", "entries__payload", "entries__valid", "k"):
        assert port in text
