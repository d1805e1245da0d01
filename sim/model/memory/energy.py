"""Energy and traffic per level of the memory hierarchy, from a run's counters and the config's energy table.

Written once for every executor that fills the counters (the simulator's ``Result.stats``; the RTL's perf
counters later). Costs come only from ``HwConfig.energy`` (per 64-bit access of each SRAM, per MAC) and
``memory.hbm.pj_per_bit``; nothing here is a number of its own.

Counters read from ``stats`` (missing ones count as 0, so a program without HBM has no HBM line):

==================  ==============================================================================
``lane_macs``       lane-MAC slots of the elements that reached the MACs (elements x L)
``gated_macs``      of those, lanes gated by a zero in B (operand register held: no MAC energy)
``l1_read_bytes``   bytes the row units read from L1: one line per A scan word, L bytes of B per element
                    (value and index side reads of bitmask / N:M / CSR are not counted)
``l1_write_bytes``  bytes written into L1 (LOAD beats, requantized C, top-k P)
``out_write_bytes`` bytes written into the output buffer (one output line per job)
``out_read_bytes``  bytes read from the output buffer (STORE, top-k scores, a job's line for ``accumulate``)
``l3``              the L3 model's ``stats`` (``bytes_read`` / ``bytes_written``, hits and misses)
``hbm``             ``HbmPorts.stats`` (``bytes_read`` / ``bytes_written`` at the HBM)
==================  ==============================================================================
"""
from __future__ import annotations

from typing import Any

from hwgen.spec.config import HwConfig

WORD_BYTES = 8     # the energy table is per 64-bit access


def _words(nbytes: int) -> int:
    return -(-int(nbytes) // WORD_BYTES)


def energy_report(cfg: HwConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """Per level: bytes moved and picojoules; ``total_pj``; ``pj_per_useful_mac`` where MACs ran."""
    e = cfg.energy
    macs = int(stats.get("lane_macs", 0)) - int(stats.get("gated_macs", 0))
    levels: dict[str, dict[str, float]] = {"mac": {"macs": macs, "pj": macs * e.mac_pj}}
    for level, read, write, pj in (("l1", "l1_read_bytes", "l1_write_bytes", e.l1_pj_per_64b),
                                   ("out", "out_read_bytes", "out_write_bytes", e.out_pj_per_64b)):
        r, w = int(stats.get(read, 0)), int(stats.get(write, 0))
        levels[level] = {"bytes_read": r, "bytes_written": w, "pj": (_words(r) + _words(w)) * pj}
    for level, pj_of in (("l3", lambda moved: _words(moved) * cfg.l3_pj_per_64b),
                         ("hbm", lambda moved: moved * 8 * cfg.memory.hbm.pj_per_bit)):
        s = stats.get(level) or {}
        r, w = int(s.get("bytes_read", 0)), int(s.get("bytes_written", 0))
        if r or w:
            levels[level] = {"bytes_read": r, "bytes_written": w, "pj": pj_of(r + w)}
    total = sum(v["pj"] for v in levels.values())
    useful = int(stats.get("useful_macs", macs))
    return {"levels": levels, "total_pj": total, "pj_per_useful_mac": total / useful if useful else None}


__all__ = ["energy_report"]
