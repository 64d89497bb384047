"""The one resampling scheme behind every interval in the study: seeds, then sentences within each drawn seed.

A resample draws as many groups (seeds) as there are, with replacement, and within each drawn group as many
sentences as it holds, with replacement; it is returned as per-sentence counts, so any statistic built from
per-sentence sufficient statistics (sacrebleu's, or 0/1 outcomes) is a weighted sum and nothing is
re-tokenized. With one group it is the ordinary bootstrap over sentences. The random stream is the same as
drawing the group indices with ``integers(0, groups, groups)`` and each group's sentences with
``integers(0, size, size)``, so intervals are reproducible from the seed alone.

    >>> [[(g, c.tolist()) for g, c in r] for r in resamples([3], n=2, seed=0)]
    [[(0, [0, 2, 1])], [(0, [3, 0, 0])]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def resamples(sizes: list[int], n: int, seed: int = 0) -> Iterator[list[tuple[int, np.ndarray]]]:
    """``n`` resamples of groups of ``sizes`` sentences: each a list of (group index, per-sentence counts)."""
    rng = np.random.default_rng(seed)
    groups = len(sizes)
    for _ in range(n):
        drawn = rng.integers(0, groups, groups)
        yield [(int(g), np.bincount(rng.integers(0, sizes[g], sizes[g]), minlength=sizes[g])) for g in drawn]


def crossed_resamples(groups: int, size: int, n: int, seed: int = 0) -> Iterator[list[tuple[int, np.ndarray]]]:
    """``n`` resamples of a crossed design, ``groups`` seeds that all score the same ``size`` sentences: each
    resample draws the seeds with replacement and ONE set of sentence counts shared by every drawn seed. A
    sentence that is hard for one seed is hard for all, so the sentences' share of the variance is not divided
    by the number of seeds, as independent draws per seed (:func:`resamples`) would divide it."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        drawn = rng.integers(0, groups, groups)
        counts = np.bincount(rng.integers(0, size, size), minlength=size)
        yield [(int(g), counts) for g in drawn]


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central percentile interval of bootstrap ``values`` at ``level``."""
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)
