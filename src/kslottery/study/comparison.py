"""Comparing two arms: the paired difference pooled over seeds, with its bootstrap intervals.

The intervals are read by the study's one set of rules (:mod:`kslottery.study.verdicts`): "matches" is an
equivalence test (TOST: the 90 % interval inside a margin stated in advance), "better" a difference test.

Seeds are a second source of variance beside sentences: each seed's two arms are scored on the same
sentences, and the bootstrap resamples seeds and, within each drawn seed, sentences (a two-level
bootstrap), so the interval covers both.

    >>> r = compare([(hyps_embed_s0, hyps_ticket_s0), (hyps_embed_s1, hyps_ticket_s1)], refs, "cat_Latn")
    ...                                                                   # doctest: +SKIP
    >>> r["delta"], r["ci95"], r["ci90"]                                  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..method.bootstrap import crossed_resamples, percentile_interval, resamples
from ..method.errors import KSLError
from ..method.metrics import _metrics


def paired_seeds(seeds_a: list, seeds_b: list) -> list[tuple]:
    """Which run of arm a meets which run of arm b: seed with the same seed; an arm run once (the base model,
    a single full fine-tuning) meets every seed of the other arm."""
    sa, sb = sorted(seeds_a, key=str), sorted(seeds_b, key=str)
    if len(sa) == 1:
        return [(sa[0], s) for s in sb]
    if len(sb) == 1:
        return [(s, sb[0]) for s in sa]
    return [(s, s) for s in sa if s in sb]


def compare(pairs: list[tuple[list[str], list[str]]], refs: list[str], tgt_lang: str, metric: str = "chrf++",
            n: int = 1000, seed: int = 0, scheme: str = "nested", margin: float | None = None) -> dict:
    """score(b) - score(a), averaged over seeds; ``pairs`` holds one (hyps_a, hyps_b) per seed, all on
    ``refs``. Returns the difference, each seed's, its 95 % and 90 % bootstrap intervals (the 90 % one is what a
    TOST at 5 % reads), the bootstrap's two-sided p of no difference and, given ``margin``, its p of no
    equivalence (``p_tost``). ``scheme``: ``crossed`` draws one set of
    sentences per resample for every seed (every seed scores the same sentences:
    :func:`kslottery.method.bootstrap.crossed_resamples`); ``nested`` draws sentences anew within each drawn seed
    (protocol fair-v1's scheme, which divides the sentences' share of the variance by the number of seeds)."""
    if not pairs:
        raise KSLError("no seeds to compare", "give one (hyps_a, hyps_b) pair per seed")
    if any(len(a) != len(refs) or len(b) != len(refs) for a, b in pairs):
        raise KSLError("every seed's hypotheses must cover the same sentences as refs", "score both arms on refs")
    m = _metrics(tgt_lang)[metric]

    def score(stats):
        return m._compute_score_from_stats(stats.round().astype(int).tolist()).score

    stats = [(np.asarray(m._extract_corpus_statistics(a, [refs]), dtype=np.float64),
              np.asarray(m._extract_corpus_statistics(b, [refs]), dtype=np.float64)) for a, b in pairs]
    per_seed = [score(sb.sum(0)) - score(sa.sum(0)) for sa, sb in stats]
    seeds = len(pairs)
    if scheme not in ("crossed", "nested"):
        raise KSLError(f"unknown bootstrap scheme {scheme!r}", "use crossed or nested")
    draws = crossed_resamples(seeds, len(refs), n, seed) if scheme == "crossed" else resamples([len(refs)] * seeds, n, seed)
    boot = np.array([np.mean([score(c @ stats[i][1]) - score(c @ stats[i][0]) for i, c in draw]) for draw in draws])
    low, high = percentile_interval(boot, 0.95)
    low90, high90 = percentile_interval(boot, 0.90)
    # the two-sided bootstrap p of "no difference": twice the smaller tail at 0, never below 1/(n + 1)
    tail = min(int((boot <= 0).sum()), int((boot >= 0).sum()))
    p_boot = min(1.0, 2 * (tail + 1) / (n + 1))
    # with a margin: the bootstrap's p of no equivalence, the larger tail beyond -margin or +margin
    p_tost = None if margin is None else max(int((boot <= -margin).sum()) + 1, int((boot >= margin).sum()) + 1) / (n + 1)
    return {"metric": metric, "delta": round(float(np.mean(per_seed)), 4),
            "per_seed": [round(d, 4) for d in per_seed], "ci95": [round(float(low), 4), round(float(high), 4)],
            "ci90": [round(float(low90), 4), round(float(high90), 4)], "ci95_width": round(float(high - low), 4),
            "p": round(p_boot, 6), "p_tost": None if p_tost is None else round(p_tost, 6),
            "seeds": seeds, "n_resamples": n, "seed": seed, "scheme": scheme}


def shown_interval(row) -> tuple[float, ...]:
    """A comparison's difference and its 95 % and 90 % union bounds as the book prints them, to one decimal: rounded
    first, and + 0.0, so that a value that rounds to zero prints as 0.0, never -0.0."""
    return tuple(round(float(x), 1) + 0.0 for x in (row["b - a"], *row["95 % (union)"], *row["90 % (union)"]))
