"""Timing contracts: the latencies of the components that the cycle model reproduces, written once.

Each class here is the timing half of one Amaranth component, which inherits it (``class RowUnit(RowUnitTiming,
wiring.Component)``), so ``RowUnit.result_latency`` is still a property of the component, and the cycle model
(``sim/model/``) reads the same number without importing Amaranth. The component's docstring explains the
pipeline behind each number; a pipeline change edits the number here, and the model moves with it.
"""
from __future__ import annotations

from hwgen.spec import isa
from hwgen.spec.task_table import TASK

#: fraction bits of the scheduler's Mitchell log2 (``adaptive`` policy): msb position, then this many bits below it
MLOG_FRAC = 8


#: a block RAM read through a registered port (``signatures.registered_read``): an address in cycle t -> its data
#: in t + 2, the RAM's output, then the port's data register
REGISTERED_READ_LATENCY = 2


class ScratchpadTiming:
    READ_LATENCY = REGISTERED_READ_LATENCY


class OutputBufferTiming:
    READ_LATENCY = REGISTERED_READ_LATENCY


class MacLanesTiming:
    #: an operand presented -> the ``result_valid`` strobe that includes it (operand register, product register,
    #: accumulate)
    latency = 3


class RowUnitTiming:
    """Job accepted in cycle td -> last encode cycle te = td + front_latency(format) + Σ - 1 (Σ = sum over the
    row's scan words of max(1, marked elements)); the unit takes a new job from max(te, td + min_period) on;
    the result is ready in te + result_latency."""

    #: of its L1 ports
    READ_LATENCY = ScratchpadTiming.READ_LATENCY

    #: cycles from the last encode cycle to the result being ready: the index / value read (T0), U (B's row
    #: base, a registered multiply), V (B address), the B read, then the MAC pipeline
    result_latency = 2 * READ_LATENCY + 2 + MacLanesTiming.latency

    @staticmethod
    def front_latency(a_format: int) -> int:
        """Cycles from accepting a job to its first encode cycle: latch the job, read word 0, detect it;
        CSR first reads the row's two pointers, latches them and derives the scan range (two cycles more)."""
        csr = a_format == isa.AFormat.CSR
        return 1 + csr * (RowUnitTiming.READ_LATENCY + 2) + RowUnitTiming.READ_LATENCY + 1

    @staticmethod
    def min_period(cfg) -> int:
        """Shortest time between two jobs on one unit: R, one round of the output writer."""
        return cfg.engine.rows


class ResultWriterTiming:
    #: of its L1 ports (the requant table)
    READ_LATENCY = ScratchpadTiming.READ_LATENCY

    @staticmethod
    def latency(requant: int) -> int:
        """Cycles from a result's write slot to its writes (result_writer.py): a plain line is written once its
        row base is multiplied, a requantized one after the line is registered, the table read, the entries'
        pick, the multiply (in pieces, then summed), round, shift and clamp."""
        return 2 if requant == isa.Requant.NONE else ResultWriterTiming.READ_LATENCY + 7


class EngineTiming:
    #: the issue cycle is cycle 0; the descriptor is registered in cycle 1, when the task's sizes (scan words,
    #: B lines, lane blocks, the causal last blocks) are derived from it, and dispatch begins in cycle 2
    first_dispatch_cycle = 2
    #: the compute unit's end is decided in the cycle after the last output-buffer write
    done_delay = 1

    @staticmethod
    def write_slot(cycle: int, rows: int) -> int:
        """Which row unit owns the output-buffer write port in ``cycle`` (counted from the start)."""
        return (cycle - 1) % rows


class TopkSoftmaxTiming:
    """A row of ``n`` beats that keeps ``count`` entries occupies the unit from the cycle its first beat is
    accepted to the cycle after its last entry is emitted (``row_cycles``)."""

    COLLECT_LATENCY = 1  # a beat accepted in t is sorted into the list in t + 1 (registered first)
    EXP_LATENCY = 7     # issue of an entry -> ``total`` includes its e
    DIV_CYCLES = 23     # restoring-division iterations for r = 2^32 // total (width of r at frac_bits = 4)
    EMPTY_CYCLES = 1    # a row without a valid beat: one cycle for its ``empty`` beat after the last beat
    EMIT_LATENCY = 1    # the first entry's product e * r registered before it is emitted

    @staticmethod
    def row_cycles(n_beats: int, count: int) -> int:
        """Cycles the unit is busy with a row of ``n_beats`` beats (>= 1) that keeps ``count`` entries: from the
        cycle it accepts the first beat to the cycle after it emits the last entry (the empty beat if
        ``count`` is 0). Back to back with an always-valid producer, the next row starts exactly then."""
        if n_beats < 1 or not 0 <= count <= n_beats:
            raise ValueError(f"row_cycles: n_beats={n_beats}, count={count} (allowed: n_beats >= 1, "
                             "0 <= count <= n_beats)")
        t = TopkSoftmaxTiming
        if count == 0:
            return n_beats + t.COLLECT_LATENCY + t.EMPTY_CYCLES
        return n_beats + t.COLLECT_LATENCY + (t.EXP_LATENCY - 1 + count) + t.DIV_CYCLES + t.EMIT_LATENCY + count


class TopkPathTiming:
    #: cycles from the start cycle to the unit accepting the first score: read the first line (cycle 1), then
    #: its data, read through the output buffer's registered port
    first_beat = 1 + OutputBufferTiming.READ_LATENCY

    @staticmethod
    def task_cycles(cfg, n: int, counts) -> int:
        """Cycles of a TOPK task over rows of ``n`` scores keeping ``counts[i]`` entries each."""
        return TopkPathTiming.first_beat + sum(TopkSoftmaxTiming.row_cycles(n, c) for c in counts)


class TlbTiming:
    #: cycles from the ``req`` handshake to ``resp.valid`` on a hit or an OUTSIDE fault (lookup registered, then
    #: the response)
    hit_latency = 2
    #: cycles from the ``req`` handshake to ``walk_req.valid`` on a miss
    walk_issue_latency = 2
    #: cycles from the ``walk_resp`` handshake to ``resp.valid``
    fill_latency = 1
    #: cycles between accepted requests when they hit back to back and ``resp.ready`` stays high
    hit_interval = 2

    @classmethod
    def miss_latency(cls, walk_cycles: int) -> int:
        """Cycles from the ``req`` handshake to ``resp.valid`` on a miss whose walk is accepted at once and
        answered ``walk_cycles`` (>= 1) cycles after the ``walk_req`` handshake."""
        if walk_cycles < 1:
            raise ValueError(f"walk_cycles: {walk_cycles} is not allowed: the answer comes at least one cycle "
                             "after the walk request")
        return cls.walk_issue_latency + walk_cycles + cls.fill_latency


class AsaTiming:
    #: start in S -> header AR in S + 2 (the command's first burst length registered, then the AR); every read's
    #: ARs are at least two cycles apart (the next burst's length is registered from the registers a burst leaves)
    start_ar_latency = 2
    #: the header's last R beat in t -> the first region's first AR in t + 4 (header register, the regions' sizes
    #: and addresses registered, command, then the AR)
    decode_gap = 4
    #: a load region's last R beat in t -> the next region's first AR in t + 3 (phase register, command, the AR)
    region_gap = 3
    #: the last R beat of the load in t -> scheduling from t + 1
    run_latency = 1
    #: a task entering the window in e (table RAM read) may be picked from e + 5 (the row registered, the log of
    #: its rank registered, the slot register, then its row of the pick's comparison matrix)
    entry_latency = 5
    #: a pick in c (over the slots' registers) is applied, issued or skipped, in c + 1 from the registered winner,
    #: its skip bit and whether an engine was free; c + 1 picks nothing (the model's ``pending``)
    pick_latency = 1
    #: issue in c -> the first descriptor offered in c + 4 (the pick registered, the engine's registers, the
    #: descriptor RAM read, then its output register: the payload leaves a register)
    feed_latency = 4
    #: a completion pushed in c may be popped from c + 2 (the completion FIFO's head and its slot's successor
    #: list and adj are registered first)
    pop_latency = 2
    #: a completion popped in p walks its successor list's entry k in p + 1 + k (the list registered first)
    walk_latency = 1
    #: successor entry walked in w (successor RAM read) -> count RAM read in w + 1, write in w + 2, the release
    #: registered in w + 3, ready in w + 4
    release_latency = 4
    #: under ``adaptive`` a release changes the task's key: its row of the pick's matrix is computed in the cycle
    #: after, so it may be picked one cycle later (w + release_latency + rekey_latency)
    rekey_latency = 1
    #: the gate unit takes a gate task in g (its task number registered) -> the table RAM read in g + 1, its
    #: fields latched in g + 2, what it works with (row tiles, lane blocks, the division's dividend) derived
    #: from them in g + 3
    gate_derive_latency = 3
    #: the gate unit takes a gate task in g -> first AR in g + 7 (the table read, the fields latched, derived,
    #: the values' size multiplied, the command, then the AR)
    gate_ar_latency = gate_derive_latency + 4
    #: the gate values' last R beat in t -> completion pushed in t + 3 + gate_cycles (the first cycle reads the
    #: first value; each value is registered from the RAM, and each step's predicate bit is registered and
    #: written in the cycle after it)
    gate_push_latency = 3
    #: the gate unit's restoring division of gate_rows + gate_tile_rows - 1 by gate_tile_rows: one quotient bit
    #: per cycle from g + gate_derive_latency + 1 on, so processing waits for max(last R beat,
    #: g + gate_derive_latency + gate_div_cycles); with no values it starts from g + gate_derive_latency + 1
    gate_div_cycles = TASK.bits("gate_rows") + 1
    #: the walk of the last completion ends in w -> done from w + 1
    done_latency = 1
