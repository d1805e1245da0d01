"""The integer softmax's constants and widths (I-BERT style), written once for the golden model
(``golden/numerics.py``: the arithmetic) and the RTL (``hwgen/rtl/engine/topk_softmax.py``: its datapath).

exp(x) for x in (-ln2, 0] is approximated by 0.3585 * (x + 1.353)^2 + 0.344; a general x <= 0 is written
x = -z * ln2 + p with p in (-ln2, 0], so exp(x) = 2^-z * exp(p). Everything is scaled by 2^frac_bits (and the
polynomial by 2^(2 * frac_bits) / 0.3585, a constant factor that normalisation cancels).
"""
from __future__ import annotations

import math
from fractions import Fraction


def round_half_up(v: Fraction) -> int:
    """The one rounding rule of the numerics (requantization, constants): half up."""
    return math.floor(v + Fraction(1, 2))


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: {k!r} is not allowed (allowed: an int >= 1)")


SOFTMAX_FRAC_BITS_MAX = 12
SOFTMAX_SCORE_BITS = 32   # scores are signed 32-bit: [-2^31, 2^31 - 1]
SOFTMAX_Z_MAX = 30
SOFTMAX_RECIP_BITS = 32
SOFTMAX_P_BITS = 7


def check_frac_bits(frac_bits: int) -> None:
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or not 0 <= frac_bits <= SOFTMAX_FRAC_BITS_MAX:
        raise ValueError(f"frac_bits: {frac_bits!r} is not allowed (allowed: an int in 0..{SOFTMAX_FRAC_BITS_MAX})")


def softmax_constants(frac_bits: int) -> dict[str, int]:
    """The integer softmax's constants for scores with ``frac_bits`` fractional bits, as plain ints.

    Computed exactly from the decimal constants (Fractions, no float rounding surprises):
      q_ln2 = round(ln(2) * 2^f) (half up; >= 1 for every f in 0..12)
      q_b   = floor(1.353 * 2^f)
      q_c   = floor((0.344 / 0.3585) * 2^(2f))
      z_max = 30, recip_bits = 32, p_bits = 7, p_max = 2^p_bits - 1 = 127
      score_bits = 32 (scores must be signed 32-bit)
      l_max = q_b^2 + q_c: the largest L, and exactly e of the row's maximum (q = 0, z = 0, p = 0)
    """
    check_frac_bits(frac_bits)
    scale = 1 << frac_bits
    q_ln2 = round_half_up(Fraction(math.log(2)) * scale)  # ln 2 is irrational: not near a half for f <= 12
    q_b = math.floor(Fraction("1.353") * scale)
    q_c = math.floor(Fraction("0.344") / Fraction("0.3585") * scale * scale)
    assert q_ln2 >= 1 and q_b >= q_ln2  # so p + q_b > 0 for every p in (-q_ln2, 0]
    return {
        "frac_bits": frac_bits,
        "q_ln2": q_ln2,
        "q_b": q_b,
        "q_c": q_c,
        "z_max": SOFTMAX_Z_MAX,
        "recip_bits": SOFTMAX_RECIP_BITS,
        "p_bits": SOFTMAX_P_BITS,
        "p_max": (1 << SOFTMAX_P_BITS) - 1,
        "score_bits": SOFTMAX_SCORE_BITS,
        "l_max": q_b * q_b + q_c,
    }


def softmax_widths(frac_bits: int, max_k: int = 256) -> dict[str, int]:
    """Bit widths (unsigned unless named ``*_signed``) that hold each softmax intermediate, for rows of at
    most ``max_k`` kept scores in the signed 32-bit range. Derivations are in :func:`int_softmax_stages`.

    ``prod`` is 33 only when l_max is a power of two (frac_bits = 0, where e * r can equal 2^32 exactly).
    """
    check_k(max_k)
    c = softmax_constants(frac_bits)
    l_max, recip = c["l_max"], 1 << c["recip_bits"]
    return {
        "s_signed": c["score_bits"],
        "neg_q": c["score_bits"],                        # m - s in [0, 2^32 - 1]
        "z": c["z_max"].bit_length(),                    # 0..30, plus a 1-bit "dead" flag
        "neg_p": max(1, (c["q_ln2"] - 1).bit_length()),  # (-q) mod q_ln2 in [0, q_ln2 - 1]
        "p_plus_b": c["q_b"].bit_length(),               # in [q_b - q_ln2 + 1, q_b], always > 0
        "square": (c["q_b"] ** 2).bit_length(),
        "L": l_max.bit_length(),
        "e": l_max.bit_length(),
        "total": (max_k * l_max).bit_length(),
        "r": (recip // l_max).bit_length(),              # total >= l_max, so r <= 2^32 // l_max
        "prod": (recip.bit_length() if l_max & (l_max - 1) == 0 else c["recip_bits"]),
        "P": c["p_bits"],
    }
