"""Recommendation: a user x item interaction matrix, 95-99 % sparse, with Zipf-distributed item popularity, times
item embeddings (the aggregation step of a two-tower or matrix-factorization recommender: a user's vector is the
weighted sum of the embeddings of the items they touched).

Item popularity follows Zipf's law, p(item of rank r) ∝ r^-zipf (Breslau et al. 1999 for web objects; s ≈ 1 for
MovieLens-style catalogues); user activity is log-normal around the mean that gives ``density``, so a few heavy
users hold long rows. Interaction strengths are int8 1..127 (implicit feedback: a count or a rating, scaled).
"""
from __future__ import annotations

import numpy as np


def interactions(users: int, items: int, density: float, zipf: float = 1.0, seed: int = 0) -> np.ndarray:
    """users x items int8, about ``density`` of it nonzero, popular items in many rows."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density: {density} is not allowed (allowed: 0 < density <= 1)")
    if zipf < 0:
        raise ValueError(f"zipf: {zipf} is not allowed (allowed: >= 0)")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** zipf
    popularity = popularity[rng.permutation(items)]          # popular items anywhere in the catalogue
    popularity /= popularity.sum()
    activity = rng.lognormal(0.0, 1.0, size=users)
    counts = np.clip(np.round(activity / activity.mean() * density * items), 1, items).astype(int)
    a = np.zeros((users, items), dtype=np.int8)
    for u, c in enumerate(counts):
        picked = rng.choice(items, size=c, replace=False, p=popularity)
        a[u, picked] = rng.integers(1, 128, size=c)
    return a


def embeddings(items: int, factors: int, seed: int = 0) -> np.ndarray:
    """items x factors int8, the full range."""
    rng = np.random.default_rng(seed + 1)
    return rng.integers(-128, 128, size=(items, factors), dtype=np.int16).astype(np.int8)


__all__ = ["interactions", "embeddings"]
