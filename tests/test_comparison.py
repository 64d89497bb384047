"""Paired differences pooled over seeds, their bootstrap intervals, and the rules that read them."""

import pytest

from kslottery.method.errors import KSLError
from kslottery.study import comparison, verdicts

REFS = ["El gat dorm al sofà.", "La casa és blava i gran.", "Avui plou molt a Barcelona.",
        "Els nens juguen al parc.", "M'agrada el cafè amb llet.", "On és l'estació de tren?",
        "Demà anirem a la platja.", "El llibre és sobre la taula."]
BAD = ["El gos.", "Una casa.", "Plou.", "Nens.", "Cafè.", "Estació.", "Platja.", "Llibre."]
NEAR = [r.replace(".", "!") for r in REFS]     # every sentence off by one character


def test_identical_arms_differ_by_nothing_at_any_level():
    r = comparison.compare([(REFS, REFS), (REFS, REFS)], REFS, "cat_Latn", n=200)
    assert r["delta"] == 0 and r["ci95"] == r["ci90"] == [0, 0]
    assert verdicts.outcome(r["ci90"], r["ci95"], margin=1.0) == "equivalent" and r["p"] == 1.0


def test_a_large_difference_is_not_equivalent_and_a_small_one_is():
    far = comparison.compare([(BAD, REFS)], REFS, "cat_Latn", n=200)
    assert far["ci95"][0] > 0 and verdicts.outcome(far["ci90"], far["ci95"], margin=1.0) == "b better, beyond the margin"
    assert far["p"] == pytest.approx(2 / 201, abs=1e-6)   # no resample crosses 0: the smallest p 200 resamples can give
    near = comparison.compare([(REFS, NEAR)] * 3, REFS, "cat_Latn", n=200)
    assert -10 < near["ci90"][0] <= near["delta"] <= near["ci90"][1] < 10
    assert verdicts.outcome(near["ci90"], near["ci95"], margin=10.0).startswith("equivalent")
    # the 90 % interval a TOST reads lies inside the 95 % interval
    assert near["ci95"][0] <= near["ci90"][0] and near["ci90"][1] <= near["ci95"][1]


def test_seeds_that_disagree_widen_the_interval_past_the_margin():
    # seed 0: b much better; seed 1: b much worse. The mean is ~0, but resampling seeds shows how unsure it is.
    split = comparison.compare([(BAD, REFS), (REFS, BAD)], REFS, "cat_Latn", n=400)
    assert abs(split["delta"]) < 1e-6 and split["per_seed"][0] == -split["per_seed"][1]
    assert split["ci95_width"] > 50 and split["ci95"][0] < 0 < split["ci95"][1]
    assert verdicts.outcome(split["ci90"], split["ci95"], margin=5.0) == "inconclusive"


def test_bad_comparisons_are_refused():
    with pytest.raises(KSLError, match="no seeds to compare"):
        comparison.compare([], REFS, "cat_Latn")
    with pytest.raises(KSLError, match="must cover the same sentences"):
        comparison.compare([(REFS[:3], REFS)], REFS, "cat_Latn")


@pytest.mark.parametrize("a, b, expected", [
    ([0, 1, 2], [0, 1, 2], [(0, 0), (1, 1), (2, 2)]),
    ([0, 1, 2, 3], [0], [(0, 0), (1, 0), (2, 0), (3, 0)]),     # one full fine-tuning run meets every seed
    ([None], [1, 0], [(None, 0), (None, 1)]),                  # the base model meets every seed
    ([0, 1], [1, 2], [(1, 1)]),
])
def test_paired_seeds_is_the_one_pairing_rule(a, b, expected):
    from kslottery.study.comparison import paired_seeds

    assert paired_seeds(a, b) == expected


def test_crossed_resamples_share_the_sentence_indices_across_seeds():
    from kslottery.method.bootstrap import crossed_resamples

    for draw in crossed_resamples(groups=5, size=30, n=20, seed=3):
        assert len(draw) == 5
        first = draw[0][1]
        assert first.sum() == 30 and all((c == first).all() for _, c in draw)


def _coverage(draws, n_sims=300, seeds=5, sentences=100, n=300):
    """Share of simulated studies whose 95 % percentile interval holds the true difference (0.5), when every seed
    scores the same sentences: d[s, i] = 0.5 + seed effect + sentence effect + noise."""
    import numpy as np

    from kslottery.method.bootstrap import percentile_interval

    rng, hit = np.random.default_rng(7), 0
    for k in range(n_sims):
        d = (0.5 + rng.normal(0, 0.3, (seeds, 1)) + rng.normal(0, 2.0, (1, sentences))
             + rng.normal(0, 1.0, (seeds, sentences)))
        boot = [np.mean([c @ d[g] / sentences for g, c in draw]) for draw in draws(seeds, sentences, n, k)]
        lo, hi = percentile_interval(boot, 0.95)
        hit += lo <= 0.5 <= hi
    return hit / n_sims


def test_the_crossed_bootstrap_covers_near_nominal_where_independent_draws_do_not():
    from kslottery.method.bootstrap import crossed_resamples, resamples

    crossed = _coverage(lambda s, i, n, k: crossed_resamples(s, i, n, k))
    nested = _coverage(lambda s, i, n, k: resamples([i] * s, n, k))
    assert 0.90 <= crossed <= 0.98, crossed
    assert nested < 0.85, nested        # the sentences' variance divided by the seeds: far too narrow


def test_compare_reads_the_crossed_scheme_and_refuses_an_unknown_one():
    r = comparison.compare([(BAD, REFS), (BAD, NEAR)], REFS, "cat_Latn", n=100, scheme="crossed")
    assert r["scheme"] == "crossed" and r["ci95"][0] <= r["delta"] <= r["ci95"][1]
    with pytest.raises(KSLError, match="unknown bootstrap scheme 'paired'"):
        comparison.compare([(BAD, REFS)], REFS, "cat_Latn", scheme="paired")


def test_the_bootstrap_p_of_no_equivalence_is_small_inside_the_margin_and_large_beyond():
    same = comparison.compare([(REFS, REFS)] * 3, REFS, "cat_Latn", n=200, scheme="crossed", margin=1.0)
    assert same["p_tost"] == pytest.approx(1 / 201, abs=1e-6) and same["p"] == 1.0
    far = comparison.compare([(BAD, REFS)] * 3, REFS, "cat_Latn", n=200, scheme="crossed", margin=1.0)
    assert far["p_tost"] == 1.0 and far["p"] == pytest.approx(2 / 201, abs=1e-6)
    assert comparison.compare([(REFS, REFS)], REFS, "cat_Latn", n=20)["p_tost"] is None   # no margin, no test
