"""The scheduler's program format: a header, the task table and the successor lists, each one field table.

A DAG program lives in HBM (physical addresses, outside the paged tensors) as::

    header (HEADER, one 64-byte line)  at the program base the host writes into the CSR ``program_base``
    task table: ``tasks`` entries of TASK (32 bytes each), in a topological order (every task after its
                predecessors), from ``table_addr``
    successor lists: uint16 task indices, from ``succ_addr``; task t's are entries succ_first .. + succ_count
    descriptors: the engines' descriptors (``hwgen/spec/isa.py``), from ``desc_addr``; task t runs first .. + count

The scheduler (``hwgen/rtl/scheduler/asa.py``, modelled by ``sim/model/chip.py``) reads all of it into on-chip
RAMs sized by ``scheduler.tasks`` / ``successors`` / ``descriptors``. A task runs on one engine: its descriptors are fed
to that engine in order, and the task is complete when the last one was taken and the engine is idle again.

Predicates: ``gate`` tasks write predicate bits once they complete, from the int32 values their STORE left
at ``gate_addr`` (output lines: ``gate_rows`` rows of ``ceil(gate_cols / lanes)`` lines of ``lanes``
accumulators, row-major): THRESHOLD sets bit ``gate_base + c`` when ``value[r][c] > gate_threshold`` for
any row r; TOPK picks, for each row r (a token) in order, the ``gate_k`` largest columns (experts; ties to
the lower column) and, for each one that has taken fewer than ``gate_capacity`` rows, sets bit
``gate_base + c * gate_tiles + r // gate_tile_rows`` (expert c has work in token tile r // gate_tile_rows).
A task with ``pred_en`` runs only if bit ``pred`` is set once it is ready; otherwise it is skipped: it
takes no engine and releases its successors at once.
"""
from __future__ import annotations

import enum

from hwgen.spec.fields import Field, FieldTable

ADDR_BITS = 40


class GateOp(enum.IntEnum):
    NONE = 0
    THRESHOLD = 1   # head gating: gate > threshold
    TOPK = 2        # MoE router: top-k experts per token, capacity per expert, bits per (expert, token tile)


class AsaError(enum.IntEnum):
    """Why the scheduler stopped a run (its ``error`` output and the CSR ``error``, ``ERROR_BITS`` bits); the values
    are the hardware encoding."""

    NONE = 0
    TOO_MANY_TASKS = 1    # header counts above scheduler.tasks / successors / descriptors
    AXI_ERROR = 2         # an RRESP other than OKAY


ERROR_BITS = 2


TASK = FieldTable("task", width=256, fields=(
    Field("first", 16, "first descriptor of the task (index into the descriptor array)"),
    Field("count", 8, "descriptors the task feeds to its engine (1..255)"),
    Field("deps", 8, "predecessors: the task is ready once this many have completed or been skipped"),
    Field("succ_first", 16, "first entry of the task's successor list"),
    Field("succ_count", 8, "successors"),
    Field("rank", 24, "static priority: estimated cycles of the longest path from the task to the end"),
    Field("est", 24, "estimated cycles of the task itself (adaptive: compared with the measured time)"),
    Field("pred_en", 1, "the task runs only if predicate bit `pred` is set"),
    Field("pred", 8, "predicate bit the task reads"),
    Field("gate", 2, "GateOp the task applies to its output once it completes"),
    Field("gate_base", 8, "first predicate bit the gate writes"),
    Field("gate_rows", 16, "rows of gate values"),
    Field("gate_cols", 8, "gate values per row"),
    Field("gate_k", 4, "TOPK: columns kept per row"),
    Field("gate_capacity", 16, "TOPK: rows a column takes at most"),
    Field("gate_tile_rows", 16, "TOPK: rows per predicate bit of a column"),
    Field("gate_threshold", 32, "THRESHOLD: a value above it (signed) sets the bit"),
    Field("gate_addr", ADDR_BITS, "physical HBM byte address of the gate values"),
))

HEADER = FieldTable("header", width=512, fields=(
    Field("tasks", 16, "task-table entries"),
    Field("successors", 16, "successor-list entries"),
    Field("descriptors", 16, "descriptors"),
    Field("table_addr", ADDR_BITS, "physical byte address of the task table"),
    Field("succ_addr", ADDR_BITS, "physical byte address of the successor lists"),
    Field("desc_addr", ADDR_BITS, "physical byte address of the descriptors"),
    Field("page_table_base", ADDR_BITS, "physical byte address of the page table the engines translate with"),
    Field("page_table_entries", 24, "page-table entries"),
))

SUCC_BYTES = 2   # one successor: a uint16 task index


def gate_tiles(rows: int, tile_rows: int) -> int:
    """Token tiles of a TOPK gate: predicate bits per column."""
    return -(-rows // tile_rows)
