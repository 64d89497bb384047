"""The fair test's statistics: the seed-level t interval, Holm's correction, the verdict rules, the seeds a
margin needs. Golden values are computed by hand or by scipy independently of the module."""

import math

import pytest
from scipy import stats

from kslottery.method.errors import KSLError
from kslottery.study import verdicts

# Four illustrative per-seed differences, of the spread the previous design's primary comparison had.
PER_SEED = [0.65, 2.43, 3.77, 4.10]


@pytest.mark.parametrize("per_seed", [PER_SEED, [1.0, 2.0], [-3.1, 0.2, 0.9, 4.4, -1.0]])
def test_t_interval_equals_scipy(per_seed):
    mean, low, high = verdicts.t_interval(per_seed)
    ref = stats.t.interval(0.95, len(per_seed) - 1, loc=sum(per_seed) / len(per_seed), scale=stats.sem(per_seed))
    assert mean == pytest.approx(sum(per_seed) / len(per_seed))
    assert (low, high) == pytest.approx(ref, abs=1e-12)


def test_t_interval_refuses_one_seed():
    with pytest.raises(KSLError, match="two seeds"):
        verdicts.t_interval([1.0])


# (p-values, Holm-adjusted by hand: sort ascending, multiply the i-th smallest by m - i, carry the maximum)
HOLM = [
    ({"a": 0.01, "b": 0.04, "c": 0.03}, {"a": 0.03, "b": 0.06, "c": 0.06}),
    ({"x": 0.001, "y": 0.02, "z": 0.5, "w": 0.011}, {"x": 0.004, "y": 0.04, "z": 0.5, "w": 0.033}),
    ({"only": 0.2}, {"only": 0.2}),
    ({"p": 0.6, "q": 0.7}, {"p": 1.0, "q": 1.0}),
]


@pytest.mark.parametrize("raw, adjusted", HOLM)
def test_holm_matches_a_hand_computed_table(raw, adjusted):
    assert verdicts.holm(raw) == pytest.approx(adjusted)
    assert list(verdicts.holm(raw)) == list(raw)


@pytest.mark.parametrize("outcome, kind, verdict", [
    ("equivalent", "equivalence", "reproduced"),
    ("equivalent; b slightly worse", "equivalence", "reproduced"),
    ("b worse", "equivalence", "not reproduced"),
    ("b worse, beyond the margin", "equivalence", "not reproduced"),
    ("inconclusive", "equivalence", "inconclusive"),
    ("b better", "superiority", "reproduced"),
    ("equivalent; b slightly better", "superiority", "reproduced"),
    ("equivalent", "superiority", "not reproduced"),         # no difference: the claimed advantage is absent
    ("b worse", "superiority", "not reproduced"),
    ("inconclusive", "superiority", "inconclusive"),
])
def test_a_claims_verdict_follows_from_its_comparisons_outcome(outcome, kind, verdict):
    assert verdicts.claim_verdict(outcome, kind) == verdict


def test_a_verdict_of_an_unknown_outcome_is_refused():
    with pytest.raises(KSLError, match="no verdict for outcome 'not equivalent'"):
        verdicts.claim_verdict("not equivalent", "equivalence")


def test_union_is_the_more_conservative_interval():
    assert verdicts.union((0.67, 4.80), (1.2, 3.96)) == (0.67, 4.80)
    assert verdicts.union((0.0, 1.0), (-0.5, 0.8)) == (-0.5, 1.0)


def test_seeds_needed_follows_the_t_quantile():
    sd = 1.3
    n = verdicts.seeds_needed(sd, margin=2.0)
    assert n == 4
    t = stats.t.ppf(0.95, n - 1) * sd / math.sqrt(n)
    assert t < 2.0 <= stats.t.ppf(0.95, n - 2) * sd / math.sqrt(n - 1)
    assert verdicts.seeds_needed(sd, margin=1.0) == 7
    assert verdicts.seeds_needed(sd, margin=0.1, most=20) is None
    assert verdicts.t_p_value([1.0, 1.0]) == 0.0 and verdicts.t_p_value([0.0, 0.0]) == 1.0
    assert verdicts.t_p_value(PER_SEED) == pytest.approx(stats.ttest_1samp(PER_SEED, 0).pvalue)


def test_the_default_profile_states_a_design_whose_counts_follow_from_the_precision_calculation():
    import yaml

    from kslottery.study.design import ARMS, PRIMARY, SECONDARY, Design
    from kslottery.study.results import repo_root

    d = Design.from_profile(yaml.safe_load((repo_root() / "profiles" / "default.yaml").read_text()))
    assert d.name == "fair-v2.3" and d.dev_offset() == d.train_pairs == 512 and d.max_ticket_share == 0.5
    assert d.raise_steps == 6
    assert d.models == ("gemma3-270m", "smollm2-135m") and d.bootstrap == "crossed"
    # fresh sentences: devtest[:200] was scored under earlier designs
    assert d.test_offset == 200 and d.test_offset + d.test_sentences <= 1012
    # fair-v1's t interval over 4 seeds, [0.67, 4.80], gives the seed spread the seed count is built on
    sd = (4.80 - 0.67) / 2 / stats.t.ppf(0.975, 3) * math.sqrt(4)
    assert round(sd, 2) == 1.30
    assert len(d.seeds) == verdicts.seeds_needed(1.30, d.margin, delta=0.5) == 5
    # every arm that enters a primary comparison runs on every seed
    for a, b, _ in PRIMARY:
        assert d.seeds_of(a) == d.seeds_of(b) == d.seeds, (a, b)
    assert {x for a, b, _ in PRIMARY + SECONDARY for x in (a, b)} <= set(ARMS)
    # the grids start low enough to bracket fair-v1's edge choices (embedding 3e-4, full 1e-5)
    assert min(d.lr_grids["embed"]) <= 1e-4 and min(d.lr_grids["full"]) <= 3e-6
    with pytest.raises(KSLError, match="unknown protocol keys"):
        Design.from_profile({"protocol": {"seed": [0]}})
    with pytest.raises(KSLError, match="the primary comparisons need"):
        Design(arms=("embedding tuning", "Adam ticket"))


@pytest.mark.parametrize("verdict, word", [
    ("reproduced", "reproduced"), ("not reproduced", "not reproduced"),
    ("not reproduced: the arms differ (better, 95 % interval [0.3, 1.2])", "not reproduced"),
    ("inconclusive: the 95 % interval [-1.0, 2.5] is not inside ±2", "inconclusive"),
    ("not testable: no chapter of this profile measures it", "not testable"), ("none: plumbing test", None)])
def test_a_verdict_is_read_by_its_longest_vocabulary_word(verdict, word):
    assert verdicts.verdict_word(verdict) == word


# fair-v2's outcome words. The first row is fair-v1's Adam ticket - embedding tuning (book/results/default at
# c48db40: 90 % union [-3.00, -1.73], bootstrap 95 % [-3.14, -1.59]), which fair-v1 called "inconclusive".
@pytest.mark.parametrize("ci90, ci95, p, outcome", [
    ((-3.00, -1.73), (-3.14, -1.59), None, "b worse"),
    ((-3.23, -1.88), (-3.39, -1.74), None, "b worse"),                    # fair-v1's top-18 by D
    ((-4.91, -2.39), (-5.20, -2.10), None, "b worse, beyond the margin"),  # wholly past -2
    ((2.40, 4.00), (2.10, 4.30), None, "b better, beyond the margin"),
    ((-0.24, 1.00), (-0.32, 1.12), None, "equivalent"),                   # fair-v1's SGD ticket
    ((0.20, 1.00), (0.10, 1.20), None, "equivalent; b slightly better"),
    ((-1.50, -0.30), (-1.70, -0.10), None, "equivalent; b slightly worse"),
    ((0.50, 3.00), (0.30, 3.30), 0.08, "inconclusive"),                   # significant alone, not after Holm
    ((0.50, 3.00), (0.30, 3.30), 0.01, "b better"),
    ((-2.50, 1.50), (-3.00, 2.00), None, "inconclusive"),
    ((-1.90, 1.99), (-2.00, 2.00), None, "equivalent"),                   # the 95 % interval may touch the margin
])
def test_outcomes_say_which_way(ci90, ci95, p, outcome):
    assert verdicts.outcome(ci90, ci95, 2.0, p_adjusted=p) == outcome
    assert outcome in verdicts.OUTCOME_WORDS


def test_the_outcome_reads_both_sides_alike():
    """Mirroring an interval around 0 mirrors the outcome: no side of the margin is read at another level."""
    for lo90, hi90, lo95, hi95 in [(-3.0, -1.7, -3.1, -1.6), (0.2, 1.0, 0.1, 1.2), (-5.0, -2.4, -5.2, -2.1),
                                   (-2.5, 1.5, -3.0, 2.0)]:
        a = verdicts.outcome((lo90, hi90), (lo95, hi95), 2.0)
        b = verdicts.outcome((-hi90, -lo90), (-hi95, -lo95), 2.0)
        assert a.replace("worse", "X").replace("better", "worse").replace("X", "better") == b


def test_the_grid_extends_past_an_edge_at_most_twice():
    falling = {1e-3: 30.0, 3e-4: 31.0, 1e-4: 32.0}            # best at the lowest rate: look below it
    assert verdicts.extend_grid(falling) == pytest.approx(1e-4 / 3)
    falling[1e-4 / 3] = 32.5
    assert verdicts.extend_grid(falling, done=1) == pytest.approx(1e-4 / 9)
    falling[1e-4 / 9] = 33.0
    assert verdicts.extend_grid(falling, done=2) is None      # spent: the best stays the grid's best, at its edge
    rising = {1e-5: 30.0, 3e-5: 31.0, 1e-4: 31.5}
    assert verdicts.extend_grid(rising) == pytest.approx(3e-4)
    assert verdicts.extend_grid({1e-4: 30.0, 3e-4: 32.0, 1e-3: 31.0}) is None   # bracketed
    assert verdicts.extend_grid({1e-4: 31.0, 3e-4: 31.0, 1e-3: 30.0}) == pytest.approx(1e-4 / 3)  # tie: smaller


def test_equivalence_needs_its_holm_adjusted_p_as_a_difference_does():
    """Inside the margin at 90 % is not enough once the equivalence test is in a Holm family: its adjusted p decides,
    as the adjusted p of the difference test decides "better" or "worse"."""
    inside = ((-0.5, 0.8), (-0.7, 1.0))
    assert verdicts.outcome(*inside, 2.0, p_equivalence=0.01) == "equivalent"
    assert verdicts.outcome(*inside, 2.0, p_equivalence=0.2) == "inconclusive"
    beside = ((0.2, 1.0), (0.1, 1.2))
    assert verdicts.outcome(*beside, 2.0, p_adjusted=0.01, p_equivalence=0.2) == "b better"


@pytest.mark.parametrize("per_seed, margin, below", [
    ([0.1, 0.3, -0.2, 0.2, 0.0], 2.0, True), ([1.5, 1.9, 2.1, 1.2, 1.8], 2.0, False), ([3.0, 3.0], 2.0, False)])
def test_the_tost_p_is_below_alpha_exactly_when_the_90_percent_t_interval_lies_inside(per_seed, margin, below):
    p = verdicts.t_tost_p(per_seed, margin)
    _, lo, hi = verdicts.t_interval(per_seed, 0.90) if len(set(per_seed)) > 1 else (0, 3.0, 3.0)
    assert (p < 0.05) == below == (-margin < lo and hi < margin)


def test_the_arms_precision_is_said_in_words_for_the_results_chapter():
    from kslottery.study.design import Design

    assert Design(precision={"embed": "bf16", "rows": "bf16", "full": "bf16"}).precision_words() == "bfloat16 autocast"
    assert Design().precision_words() == "float32"
    assert Design(precision={"embed": "bf16", "rows": "no", "full": "bf16"}).precision_words() == (
        "embed bfloat16 autocast, rows float32, full bfloat16 autocast")
