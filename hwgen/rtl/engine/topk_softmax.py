"""Streaming top-k + integer softmax for top-k sparse attention: one row of scores in, its kept entries out.

The numerics are ``golden.numerics.topk_row`` and ``golden.numerics.int_softmax`` bit for bit; the constants
and widths come from ``hwgen.spec.softmax`` (``softmax_constants`` / ``softmax_widths``), which both read.

Phases of one row (the unit works on one row at a time; ``scores.ready`` is high only while collecting):

1. COLLECT, 1 beat per cycle: each accepted beat is registered, then in the next cycle sorted into a
   ``kmax``-slot register list ordered by value descending then index ascending (the streaming rule of
   ``topk_row``: a valid beat goes in only when fewer than ``k`` entries are kept or its value is STRICTLY
   greater than the smallest kept one, which is then dropped). Each slot compares its value with the beat's
   (one signed 32-bit comparator per slot, in the cycle the beat is accepted, against the list of that cycle;
   the sort cycle corrects for the one insertion in between) and keeps, takes the beat or takes its upper
   neighbour: no search, no variable shift. The slots at and beyond ``k`` take part without being kept, so a
   beat that does not go in changes none of the kept ones: no k-th select stands in front of the list. The
   last beat is sorted in the cycle after it is accepted (``COLLECT_LATENCY``), before EXP or the empty beat.
2. EXP, one kept entry issued per cycle (slot 0 holds the maximum m; the value list shifts down a slot per
   cycle, so the entry issued is always in slot 0) into a 7-stage pipeline:
     issue : -q = m - s (33-bit subtract), dead = -q >= (z_max + 1) * q_ln2 (constant compare)
     +1    : z = floor(-q / q_ln2) as (-q * M) >> shift, exact for every -q below the dead limit (checked at
             construction: a proof plus an exhaustive check); dead entries have e = 0, so the rest of their
             datapath is don't-care and only the low bits of -q travel on
     +2    : z * q_ln2 (a constant multiply, registered)
     +3    : t = p + q_b = q_b - (-q - z * q_ln2) (subtract)
     +4    : t^2 (a small squarer)
     +5    : L = t^2 + q_c, e = L >> z (0 when dead), registered
     +6    : e -> e[slot]; total += e
   ``EXP_LATENCY`` = 7 cycles from issuing an entry to ``total`` including it.
3. DIV: r = floor(2^32 / total) by restoring division, one quotient bit per cycle, always ``DIV_CYCLES`` (23)
   iterations (the width of r at the smallest allowed frac_bits, so the timing does not depend on frac_bits).
   Its last cycle also picks the first entry to emit.
4. EMIT, one entry per cycle in ASCENDING index order: while EXP runs, each kept slot counts the kept indices
   below its own (one broadcast per cycle, ties to the lower slot), so the next entry is the slot whose rank
   equals a counter, picked one cycle ahead into registers (index, e); the product e * r is registered in the
   next cycle (``EMIT_LATENCY``: one cycle before the first entry) and the output stage gives
   p = min(127, product >> 25). A row without any valid beat skips 2-4 and emits one ``empty`` beat.

Timing (exact; a cycle model uses :meth:`TopkSoftmax.row_cycles`, from ``hwgen/spec/timing.py``, instead of
simulating the unit): a row of ``n`` beats that keeps ``count`` entries occupies the unit from the cycle its
first beat is accepted to the cycle after its last entry is emitted, which is when the next row's first beat
is accepted if the producer is always valid:

    count == 0: n + COLLECT_LATENCY + EMPTY_CYCLES                                    (= n + 2)
    count >= 1: n + COLLECT_LATENCY + (EXP_LATENCY - 1 + count) + DIV_CYCLES + EMIT_LATENCY + count
                (= n + 2 * count + 31)

``entries.ready`` is ignored: the consumer must always be ready (the row unit's consumer is).
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.spec.softmax import softmax_constants, softmax_widths
from hwgen.spec.timing import TopkSoftmaxTiming

FRAC_BITS_MIN, FRAC_BITS_MAX = 4, 10
KMAX_MAX = 256
SCORE_BITS, INDEX_BITS, P_FIELD_BITS = 32, 16, 8

SCORE_LAYOUT = data.StructLayout({"value": signed(SCORE_BITS), "index": unsigned(INDEX_BITS), "valid": 1,
                                  "last": 1})
ENTRY_LAYOUT = data.StructLayout({"index": unsigned(INDEX_BITS), "p": unsigned(P_FIELD_BITS), "last": 1,
                                  "empty": 1})


def const_divider(divisor: int, limit: int) -> tuple[int, int]:
    """(M, shift) with ``(n * M) >> shift == n // divisor`` for every integer 0 <= n < ``limit``.

    M = ceil(2^shift / divisor) = (2^shift + err) / divisor with 0 <= err < divisor. For n = a * divisor + b
    (0 <= b < divisor): n * M / 2^shift = a + (b + n * err / 2^shift) / divisor, and the last term is in
    [0, 1) whenever n * err < 2^shift. So the smallest shift with (limit - 1) * err < 2^shift is exact; it is
    also checked exhaustively (limit is small: at most 31 * 710 for frac_bits 10).
    """
    if divisor < 1 or limit < 1:
        raise ValueError(f"const_divider: divisor {divisor} and limit {limit} must be >= 1")
    shift = 0
    while True:
        mult = -(-(1 << shift) // divisor)
        err = mult * divisor - (1 << shift)
        if (limit - 1) * err < (1 << shift):
            break
        shift += 1
    assert all((n * mult) >> shift == n // divisor for n in range(limit))
    return mult, shift


class TopkSoftmax(TopkSoftmaxTiming, wiring.Component):
    """Top-k of a streamed row of scores plus the integer softmax of the kept scores (module docstring)."""

    def __init__(self, kmax: int, frac_bits: int):
        if isinstance(kmax, bool) or not isinstance(kmax, int) or not 1 <= kmax <= KMAX_MAX:
            raise ValueError(f"kmax: {kmax!r} is not allowed (allowed: an int in 1..{KMAX_MAX})")
        if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or \
                not FRAC_BITS_MIN <= frac_bits <= FRAC_BITS_MAX:
            raise ValueError(f"frac_bits: {frac_bits!r} is not allowed (allowed: an int in {FRAC_BITS_MIN}.."
                             f"{FRAC_BITS_MAX}; below {FRAC_BITS_MIN} the exp approximation is too coarse, above "
                             f"{FRAC_BITS_MAX} the 32-bit reciprocal 2^32 // total keeps too few bits)")
        self.kmax, self.frac_bits = kmax, frac_bits
        self.constants = c = softmax_constants(frac_bits)
        self.widths = w = softmax_widths(frac_bits, kmax)
        assert c["score_bits"] == SCORE_BITS and c["p_max"] < (1 << P_FIELD_BITS)
        # restoring division starting from 2^32 >> DIV_CYCLES needs the quotient to fit DIV_CYCLES bits
        assert w["r"] <= self.DIV_CYCLES and (1 << (c["recip_bits"] - self.DIV_CYCLES)) < c["l_max"]
        self.dead_limit = (c["z_max"] + 1) * c["q_ln2"]   # -q >= this <=> floor(-q / q_ln2) > z_max <=> dead
        self.recip_mult, self.recip_shift = const_divider(c["q_ln2"], self.dead_limit)
        super().__init__({
            "k": In(range(kmax + 1)),
            "scores": In(stream.Signature(SCORE_LAYOUT)),
            "entries": Out(stream.Signature(ENTRY_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        K, c, w = self.kmax, self.constants, self.widths
        slot_shape = range(max(K, 2))
        vals = Signal(data.ArrayLayout(signed(SCORE_BITS), K))
        idxs = Signal(data.ArrayLayout(unsigned(INDEX_BITS), K))
        cnt = Signal(range(K + 1))
        beat = self.scores.payload

        # ---- collect: sorted insertion of the beat accepted in the cycle before (``held``) ---------------
        held, held_full, held_k = Signal(SCORE_LAYOUT), Signal(), Signal.like(self.k)   # k counts as of the beat
        sort_in = held_full & held.valid
        before = Signal(K)   # slot i is kept and stays ahead of the beat (value >= beat: ties keep the older)
        # The beat is compared with the list in the cycle it is accepted, registered with it: ge_slot[i] = slot i
        # >= beat on the list of that cycle, ge_held = the beat sorted in during that cycle >= this beat. In the
        # next cycle the list has moved by at most that one insertion (``moved``, ``was_before``: the insertion's
        # before), so each slot's compare is one of those registers: no 32-bit comparator in front of the list.
        ge_slot, ge_held = Signal(K), Signal()
        moved, was_before = Signal(), Signal(K)
        m.d.sync += [held_full.eq(0), moved.eq(sort_in), was_before.eq(before)]
        with m.If(self.scores.valid & self.scores.ready):
            m.d.sync += [held.eq(beat), held_full.eq(1), held_k.eq(self.k), ge_held.eq(held.value >= beat.value),
                         *(ge_slot[i].eq(vals[i] >= beat.value) for i in range(K))]
        for i in range(K):
            shifted = ge_held if i == 0 else Mux(was_before[i - 1], ge_held, ge_slot[i - 1])
            m.d.comb += before[i].eq((cnt > i) & Mux(moved & ~was_before[i], shifted, ge_slot[i]))
        with m.If(sort_in):
            # a beat that does not go in (the k kept ones all >= it) only moves slots at or beyond k
            for i in range(K):
                src_v = held.value if i == 0 else Mux(before[i - 1], held.value, vals[i - 1])
                src_i = held.index if i == 0 else Mux(before[i - 1], held.index, idxs[i - 1])
                with m.If(~before[i]):
                    m.d.sync += [vals[i].eq(src_v), idxs[i].eq(src_i)]
        cnt_next = Signal.like(cnt)
        m.d.comb += cnt_next.eq(Mux(sort_in & (cnt < held_k), cnt + 1, cnt))
        m.d.sync += cnt.eq(cnt_next)

        # ---- exp pipeline ----------------------------------------------------------------------------
        ctr = Signal(range(K + self.EXP_LATENCY))
        issue = Signal()
        nq_bits = (self.dead_limit - 1).bit_length()
        z_bits = w["z"]
        s1 = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "dead": 1, "nq": nq_bits}))
        s2 = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "dead": 1, "nq": nq_bits, "z": z_bits}))
        zl_bits = (((1 << z_bits) - 1) * c["q_ln2"]).bit_length()
        s2b = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "dead": 1, "nq": nq_bits, "z": z_bits,
                                        "zl": zl_bits}))
        s3 = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "dead": 1, "z": z_bits,
                                       "t": w["p_plus_b"]}))
        s4 = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "dead": 1, "z": z_bits,
                                       "sq": w["square"]}))
        s5 = Signal(data.StructLayout({"valid": 1, "slot": slot_shape, "e": w["e"]}))
        e_regs = Signal(data.ArrayLayout(unsigned(w["e"]), K))
        total = Signal(w["total"])

        # EXP shifts the list down a slot per cycle, so the entry issued is always slot 0 (no select over the
        # slots in front of the subtraction); the maximum m, slot 0 in the first EXP cycle, is kept in vmax
        vmax = Signal(signed(SCORE_BITS))
        neg_q = Signal(SCORE_BITS + 1)   # m - s in [0, 2^32 - 1]
        m.d.comb += neg_q.eq(Mux(ctr == 0, 0, vmax - vals[0]))
        m.d.sync += [s1.valid.eq(issue), s1.slot.eq(ctr), s1.dead.eq(neg_q >= self.dead_limit),
                     s1.nq.eq(neg_q)]
        m.d.sync += [s2.valid.eq(s1.valid), s2.slot.eq(s1.slot), s2.dead.eq(s1.dead), s2.nq.eq(s1.nq),
                     s2.z.eq((s1.nq * self.recip_mult) >> self.recip_shift)]
        m.d.sync += [s2b.valid.eq(s2.valid), s2b.slot.eq(s2.slot), s2b.dead.eq(s2.dead), s2b.nq.eq(s2.nq),
                     s2b.z.eq(s2.z), s2b.zl.eq(s2.z * c["q_ln2"])]
        m.d.sync += [s3.valid.eq(s2b.valid), s3.slot.eq(s2b.slot), s3.dead.eq(s2b.dead), s3.z.eq(s2b.z),
                     s3.t.eq(c["q_b"] - (s2b.nq - s2b.zl))]
        m.d.sync += [s4.valid.eq(s3.valid), s4.slot.eq(s3.slot), s4.dead.eq(s3.dead), s4.z.eq(s3.z),
                     s4.sq.eq(s3.t * s3.t)]
        m.d.sync += [s5.valid.eq(s4.valid), s5.slot.eq(s4.slot),
                     s5.e.eq(Mux(s4.dead, 0, (s4.sq + c["q_c"]) >> s4.z))]
        with m.If(s5.valid):
            m.d.sync += total.eq(total + s5.e)
            for i in range(K):
                with m.If(s5.slot == i):
                    m.d.sync += e_regs[i].eq(s5.e)

        # ---- reciprocal -----------------------------------------------------------------------------
        dctr = Signal(range(self.DIV_CYCLES))
        rem = Signal(max(w["total"], c["recip_bits"] - self.DIV_CYCLES + 1))   # always < total
        quo = Signal(self.DIV_CYCLES)                                           # r, once DIV is over
        rem2 = Signal(len(rem) + 1)
        ge = Signal()
        m.d.comb += [rem2.eq(Cat(0, rem)), ge.eq(rem2 >= total)]

        # ---- emission order: each kept slot's rank among the kept indices, counted while EXP runs -------
        # (slot ctr's index is broadcast in the cycle after its issue and every slot counts the smaller ones), so
        # picking the next entry is an equality match on a rank, not a search over the indices
        rank = Signal(data.ArrayLayout(range(max(K, 2)), K))
        bc_valid, bc_index, bc_slot = Signal(), Signal(INDEX_BITS), Signal(slot_shape)
        m.d.sync += [bc_valid.eq(issue), bc_index.eq(idxs[ctr]), bc_slot.eq(ctr)]
        with m.If(bc_valid):
            for i in range(K):
                earlier = (bc_slot < i) if i else 0   # a tie goes to the lower slot
                with m.If((bc_index < idxs[i]) | ((bc_index == idxs[i]) & earlier)):
                    m.d.sync += rank[i].eq(rank[i] + 1)
        next_rank = Signal(range(max(K, 2)))
        out_index = Signal(INDEX_BITS)
        out_e = Signal(w["e"])
        pick = Signal()
        chosen = [(cnt > i) & (rank[i] == next_rank) for i in range(K)]   # one-hot
        with m.If(pick):
            m.d.sync += [next_rank.eq(next_rank + 1),
                         out_index.eq(reduce(operator.or_, (Mux(chosen[i], idxs[i], 0) for i in range(K)))),
                         out_e.eq(reduce(operator.or_, (Mux(chosen[i], e_regs[i], 0) for i in range(K))))]
        emit_ctr = Signal(range(max(K, 2)))
        # the product e * r is registered (with its index) before the entry leaves: the multiplier is not in
        # front of the consumer's logic
        prod, prod_index = Signal(w["e"] + w["r"]), Signal(INDEX_BITS)
        p_raw = Signal(len(prod))
        m.d.comb += p_raw.eq(prod >> (c["recip_bits"] - c["p_bits"]))

        # ---- control -------------------------------------------------------------------------------
        with m.FSM():
            with m.State("COLLECT"):
                m.d.comb += self.scores.ready.eq(1)
                with m.If(self.scores.valid & beat.last):
                    m.next = "LAST"
            with m.State("LAST"):                 # the last beat is sorted in
                m.d.sync += [ctr.eq(0), total.eq(0), rank.eq(0), next_rank.eq(0)]
                with m.If(cnt_next == 0):
                    m.next = "EMPTY"
                with m.Else():
                    m.next = "EXP"
            with m.State("EXP"):
                m.d.comb += issue.eq(ctr < cnt)
                m.d.sync += [ctr.eq(ctr + 1), *(vals[i].eq(vals[i + 1]) for i in range(K - 1))]
                with m.If(ctr == 0):
                    m.d.sync += vmax.eq(vals[0])
                with m.If(ctr == cnt + (self.EXP_LATENCY - 2)):   # the last entry's e is in total next cycle
                    m.d.sync += [dctr.eq(0), quo.eq(0), rem.eq(1 << (c["recip_bits"] - self.DIV_CYCLES))]
                    m.next = "DIV"
            with m.State("DIV"):
                m.d.sync += [rem.eq(Mux(ge, rem2 - total, rem2)), quo.eq(Cat(ge, quo[:-1])), dctr.eq(dctr + 1)]
                with m.If(dctr == self.DIV_CYCLES - 1):
                    m.d.comb += pick.eq(1)
                    m.d.sync += emit_ctr.eq(0)
                    m.next = "PRODUCT"
            with m.State("PRODUCT"):              # the first entry's product (EMIT_LATENCY)
                m.d.comb += pick.eq(1)
                m.d.sync += [prod.eq(out_e * quo[:w["r"]]), prod_index.eq(out_index)]
                m.next = "EMIT"
            with m.State("EMIT"):
                last = emit_ctr == cnt - 1
                m.d.sync += [prod.eq(out_e * quo[:w["r"]]), prod_index.eq(out_index)]
                m.d.comb += [self.entries.valid.eq(1),
                             self.entries.payload.index.eq(prod_index),
                             self.entries.payload.p.eq(Mux(p_raw > c["p_max"], c["p_max"], p_raw)),
                             self.entries.payload.last.eq(last)]
                m.d.sync += emit_ctr.eq(emit_ctr + 1)
                with m.If(last):
                    m.d.sync += cnt.eq(0)
                    m.next = "COLLECT"
                with m.Else():
                    m.d.comb += pick.eq(1)
            with m.State("EMPTY"):
                m.d.comb += [self.entries.valid.eq(1), self.entries.payload.empty.eq(1),
                             self.entries.payload.last.eq(1)]
                m.next = "COLLECT"
        return m
