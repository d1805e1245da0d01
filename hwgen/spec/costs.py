"""What silicon costs as it grows: the access latency and the access energy of an SRAM array of a given capacity,
and the 45 nm area of the parts the chip is made of. Each figure comes with its source; the fits are computed
here from the published points, so the table is the only copy.

A big L3 is far away: wires, not transistors, set its latency and energy, and both grow roughly with the square
root of the capacity. The fits below are power laws ``value = a * (capacity / 1 MiB) ** b``, least squares in log
space over the points:

- **latency** (ns) from published load-to-use latencies of CPU caches of 32 KiB to 45 MiB. A CPU's figure includes
  its load pipeline, so the fit is an upper bound for an accelerator's cache of the same size; it is the size
  trend that matters to a sweep. Fit: 4.84 ns x (C / 1 MiB) ^ 0.41 (36 ns at 128 MiB, 1.5 ns at 64 KiB).
- **energy** per 64-bit access from Horowitz (ISSCC 2014, 45 nm): 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ. Fit:
  101 pJ x (C / 1 MiB) ^ 0.47 (1.0 nJ at 128 MiB).

``hwgen.spec.config`` uses them where a config leaves ``l3.hit_cycles`` or ``energy.l3_pj_per_64b`` unset: the
capacity is one L3 slice's (``l3.bytes / memory.ports``), the array a request reaches.

Area (``sim/model/area.py``) counts, at 45 nm: the MAC lanes (Horowitz's multiplier and adder areas, NanGate
flip-flops for their registers) and every SRAM (the Intel 45 nm 6T cell, over an assumed array efficiency).
"""
from __future__ import annotations

import math

MIB = 1 << 20

#: (capacity in bytes, load-to-use latency in ns, source)
LATENCY_POINTS = (
    (32 << 10, 4 / 4.0, "Skylake-S L1D, 4 cycles at 4.0 GHz (AnandTech, The Intel Skylake-X Review, 2017)"),
    (256 << 10, 11 / 4.0, "Skylake-S L2, 11 cycles at 4.0 GHz (same)"),
    (8 << 20, 44 / 4.0, "Skylake-S L3, 8 MB, 44 cycles at 4.0 GHz (same)"),
    (32 << 10, 4 / 3.4, "Ivy Bridge i7-3770 L1, 4 cycles at 3.4 GHz (7-cpu.com, Intel Ivy Bridge)"),
    (256 << 10, 12 / 3.4, "Ivy Bridge i7-3770 L2, 12 cycles at 3.4 GHz (same)"),
    (8 << 20, 30 / 3.4, "Ivy Bridge i7-3770 L3, 8 MB, about 30 cycles at 3.4 GHz (same)"),
    (20 << 20, 17.5, "Xeon E5-2690 L3, 20 MB, 15-20 ns (AnandTech, Xeon E5-2600 v3 review, 2014)"),
    (45 << 20, 26.0, "Xeon E5-2699 v3 L3, 45 MB, 20-32 ns (same)"),
)
#: (capacity in bytes, pJ per 64-bit access, source)
ENERGY_POINTS = (
    (8 << 10, 10.0, "8 KB SRAM, 64-bit read (M. Horowitz, Computing's energy problem, ISSCC 2014, 45 nm)"),
    (32 << 10, 20.0, "32 KB SRAM (same)"),
    (1 << 20, 100.0, "1 MB SRAM (same)"),
)

# ---- 45 nm area ----
AREA_NODE = "45 nm"
INT8_MULT_UM2 = 282.0     # Horowitz ISSCC 2014: 8-bit multiply
INT32_ADD_UM2 = 137.0     # Horowitz ISSCC 2014: 32-bit add (an accumulator of acc_bits scales from it)
FLIP_FLOP_UM2 = 4.522     # NanGate 45 nm Open Cell Library, DFF_X1
SRAM_CELL_UM2 = 0.346     # Intel 45 nm 6T SRAM cell (K. Mistry et al., IEDM 2007)
SRAM_ARRAY_EFFICIENCY = 0.5   # cells / macro area: decoders, sense amplifiers, I/O and redundancy take the rest
                              # (an assumption: compiled macros span about 0.4-0.7)


def _fit(points) -> tuple[float, float]:
    """(a, b) of value = a * (capacity / 1 MiB) ** b, least squares in log space."""
    x = [math.log(c / MIB) for c, _, _ in points]
    y = [math.log(v) for _, v, _ in points]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    b = sum((p - mx) * (q - my) for p, q in zip(x, y, strict=True)) / sum((p - mx) ** 2 for p in x)
    return math.exp(my - b * mx), b


LATENCY_FIT = _fit(LATENCY_POINTS)
ENERGY_FIT = _fit(ENERGY_POINTS)


def sram_latency_ns(capacity_bytes: int) -> float:
    """Access latency of an SRAM array (a cache) of this capacity."""
    a, b = LATENCY_FIT
    return a * (capacity_bytes / MIB) ** b


def sram_pj_per_64b(capacity_bytes: int) -> float:
    """Energy of one 64-bit access to an SRAM array of this capacity."""
    a, b = ENERGY_FIT
    return a * (capacity_bytes / MIB) ** b


def sram_mm2(bits: int) -> float:
    """45 nm area of an SRAM macro holding ``bits``."""
    return bits * SRAM_CELL_UM2 / SRAM_ARRAY_EFFICIENCY / 1e6


__all__ = ["AREA_NODE", "ENERGY_FIT", "ENERGY_POINTS", "LATENCY_FIT", "LATENCY_POINTS", "sram_latency_ns",
           "sram_mm2", "sram_pj_per_64b"]
