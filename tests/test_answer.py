"""The study's answer in words: each question's reply and the opening sentences, computed from outcomes."""

import pandas as pd
import pytest

from kslottery.study import answer, verdicts


def _comps(outcomes: dict) -> pd.DataFrame:
    """A comparisons table with the given outcome per (model, a, b); b − a and the intervals follow the outcome."""
    numbers = {"b worse": (-2.35, (-3.14, -1.59)), "equivalent": (0.1, (-0.9, 1.1)), "inconclusive": (0.5, (-2.0, 3.0)),
               "b better": (1.2, (0.4, 2.0)), "equivalent; b slightly worse": (-0.6, (-1.0, -0.2)),
               "equivalent; b slightly better": (0.6, (0.2, 1.0))}
    return pd.DataFrame([{"model": m, "a": a, "b": b, "outcome": o, "b - a": numbers[o][0],
                          "95 % (union)": numbers[o][1], "90 % (union)": (-0.7, 0.9), "margin": 2.0}
                         for (m, a, b), o in outcomes.items()])


def _arms(means: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "arm": arm, "chrF++ whole": v} for (m, arm), v in means.items()])


@pytest.mark.parametrize("outcome, kind, said", [
    ("equivalent", "equivalence", "yes"),
    ("equivalent; b slightly worse", "equivalence", "yes"),
    ("b worse, beyond the margin", "equivalence", "no: worse, beyond the margin"),
    # a difference whose interval reaches inside the margin is not said to break the match by more than it may
    ("b better", "equivalence", "not shown: better, perhaps by less than the margin"),
    ("b worse", "equivalence", "not shown: worse, perhaps by less than the margin"),
    ("b better", "superiority", "yes"),
    ("b better, beyond the margin", "superiority", "yes"),
    ("equivalent; b slightly better", "superiority", "yes, by less than the margin"),
    # an equivalence bounds a difference; it does not show there is none
    ("equivalent", "superiority", "not shown better: within the margin"),
    ("b worse", "superiority", "no: worse"),
    ("inconclusive", "superiority", "cannot tell"),
])
def test_a_question_is_answered_yes_no_and_which_way_or_cannot_tell(outcome, kind, said):
    assert answer.reply(outcome, kind) == said


def test_the_opening_sentences_say_how_much_is_recovered_and_which_way_on_each_model():
    comps = _comps({("g", "embedding tuning", "Adam ticket"): "b worse",
                    ("s", "embedding tuning", "Adam ticket"): "b worse",
                    ("g", "frequency-matched rows", "Adam ticket"): "equivalent",
                    ("s", "frequency-matched rows", "Adam ticket"): "inconclusive"})
    arms = _arms({("g", "base"): 20.0, ("g", "embedding tuning"): 30.0, ("g", "Adam ticket"): 26.0,
                  ("s", "base"): 10.0, ("s", "embedding tuning"): 18.0, ("s", "Adam ticket"): 16.0})
    assert answer.recovered(arms, "g") == pytest.approx(0.6)
    assert answer.sentence(comps, arms) == (
        "On both models, tuning only the KS ticket (the embedding rows a Kolmogorov–Smirnov test flags as shifted by "
        "tuning) scores worse than tuning the whole embedding. The ticket recovers 60\u00a0% of embedding tuning's "
        "gain over the base model on g and 75\u00a0% on s. On g, KS's rows do as well as frequency-matched rows of the "
        "same size (within the margin), but are not shown better; on s, we could not tell whether KS picks better rows "
        "than frequency-matched rows of the same size.")
    # the first screen bolds the answer, the first sentence, and nothing else
    assert answer.lead(comps, arms).startswith("**On both models, tuning only the KS ticket (")
    assert answer.lead(comps, arms).count("**") == 2 and "embedding.** The ticket recovers" in answer.lead(comps, arms)
    # with the tickets' sizes, the answer says how many rows it judges (a mean over seeds whose tickets differ)
    arms["rows"] = [None, None, 53.0, None, None, 14.4]
    assert ("tuning) scores worse than tuning the whole embedding. The ticket, 53 rows on g and about 14 on s, "
            "recovers 60") in answer.sentence(comps, arms)
    arms.loc[arms["model"] == "s", "rows"] = None
    assert "embedding. The ticket, 53 rows on g, recovers" in answer.sentence(comps, arms)
    arms.loc[arms["arm"] == "embedding tuning", "chrF++ whole"] = 0.0   # no gain to share: the size said alone
    assert "embedding. The ticket holds 53 rows on g. Embedding tuning does not beat" in answer.sentence(comps, arms)
    arms.loc[arms["arm"] == "embedding tuning", "chrF++ whole"] = [30.0, 18.0]
    arms = arms.drop(columns="rows")
    arms.loc[(arms["model"] == "s") & (arms["arm"] == "embedding tuning"), "chrF++ whole"] = 9.0
    assert "The ticket recovers 60\u00a0% of embedding tuning's gain over the base model on g. Embedding tuning does " \
           "not beat the base model on s, so there is no gain to recover there." in answer.sentence(comps, arms)
    arms.loc[(arms["model"] == "g") & (arms["arm"] == "embedding tuning"), "chrF++ whole"] = 19.0
    assert "Embedding tuning does not beat the base model on either model" in answer.sentence(comps, arms)


def test_the_findings_answer_each_question_that_ran_with_its_numbers():
    comps = _comps({("g", "embedding tuning", "Adam ticket"): "b worse",
                    ("s", "embedding tuning", "Adam ticket"): "equivalent",
                    ("g", "frequency-matched rows", "Adam ticket"): "b better",
                    ("s", "frequency-matched rows", "Adam ticket"): "b better"})
    lines = answer.findings(comps).splitlines()
    assert lines == [
        "- **Does tuning only the KS ticket match tuning the whole embedding?** Not shown: worse, perhaps by less "
        "than the margin on g; yes on s.",
        "  - g: worse by 2.4 chrF++ (95 % interval 1.6 to 3.1)",
        "  - s: equivalent (+0.1 chrF++; 90 % interval -0.7 to 0.9)",
        "- **Does KS pick better rows than frequency-matched rows of the same size?** Yes on both models.",
        "  - g: better by 1.2 chrF++ (95 % interval 0.4 to 2.0)",
        "  - s: better by 1.2 chrF++ (95 % interval 0.4 to 2.0)",
    ]
    assert answer.answer(comps).iloc[2]["g"] == "not run"


def test_no_verdict_on_either_model_and_a_difference_that_rounds_to_zero_reads_as_zero():
    comps = _comps({("g", "embedding tuning", "top-18 by D"): "inconclusive",
                    ("s", "embedding tuning", "top-18 by D"): "inconclusive"})
    comps.loc[0, ["b - a", "95 % (union)"]] = pd.Series([-0.04, (-0.04, 0.02)], index=["b - a", "95 % (union)"])
    lines = answer.findings(comps).splitlines()
    assert lines[0].endswith("Cannot tell on either model.")
    assert lines[1] == "  - g: inconclusive (+0.0 chrF++; 95 % interval 0.0 to 0.0)"


def test_an_equivalence_inside_embedding_tunings_own_gain_is_said_to_be_weak():
    # s's embedding tuning moves chrF++ by 0.9, inside the ±2 margin: "as well as" there cannot tell tuning from
    # not tuning, and every place that says "equivalent" on s says so; g's gain (10) leaves its words alone
    comps = _comps({("g", "embedding tuning", "Adam ticket"): "equivalent",
                    ("s", "embedding tuning", "Adam ticket"): "equivalent; b slightly worse",
                    ("g", "frequency-matched rows", "Adam ticket"): "b better",
                    ("s", "frequency-matched rows", "Adam ticket"): "b better"})
    arms = _arms({("g", "base"): 20.0, ("g", "embedding tuning"): 30.0, ("g", "Adam ticket"): 29.0,
                  ("s", "base"): 14.2, ("s", "embedding tuning"): 15.1, ("s", "Adam ticket"): 14.5})
    weak = ("embedding tuning itself moves chrF++ by only +0.9 over the base model, inside the ±2 margin, so this "
            "equivalence may also hold for an arm that learned nothing")
    said = answer.sentence(comps, arms)
    assert said.endswith("On s, an equivalence this close may also hold for an arm that learned nothing.")
    # a share of a gain inside the margin is not given (its denominator is noise); the gain itself is
    assert "recovers 90\u00a0% of embedding tuning's gain over the base model on g." in said
    assert ("On s, embedding tuning gains only +0.9 chrF++ over the base model, inside the ±2 margin, so no share "
            "of it is given.") in said and "% on s" not in said
    # a difference inside the margin keeps its direction in the opening sentence
    assert "on s, tuning only the KS ticket scores slightly worse than tuning the whole embedding, within" in said
    assert answer.findings(comps, arms).splitlines()[0:3] == [
        "- **Does tuning only the KS ticket match tuning the whole embedding?** Yes on both models (weakly on s).",
        "  - g: equivalent (+0.1 chrF++; 90 % interval -0.7 to 0.9)",
        f"  - s: equivalent, slightly worse by 0.6 chrF++ (95 % interval 0.2 to 1.0); but {weak}"]
    # a difference (better, worse) is read by the 95 % interval, not the margin: no qualifier
    assert "but" not in answer.findings(comps, arms).splitlines()[5]
    assert answer.answer(comps, arms).iloc[0]["s"].endswith(weak)
    # "slightly better" answers a question of superiority by a detected difference: not weakened by a small gain
    comps.loc[3, "outcome"] = "equivalent; b slightly better"
    assert "weakly" not in answer.findings(comps, arms).splitlines()[3]
    # without any equivalence on s, nothing to qualify
    comps["outcome"] = "b better"
    assert "cannot tell tuning from not tuning" not in answer.sentence(comps, arms)


def test_a_difference_inside_the_margin_keeps_its_direction_where_the_answer_says_yes():
    # "equivalent; b slightly better" answers a superiority question "yes": the opening sentence must not say
    # "not better" about it (it used to read every "equivalent..." outcome as plain equivalence)
    comps = _comps({("g", "embedding tuning", "Adam ticket"): "equivalent",
                    ("g", "frequency-matched rows", "Adam ticket"): "equivalent; b slightly better"})
    arms = _arms({("g", "base"): 20.0, ("g", "embedding tuning"): 30.0, ("g", "Adam ticket"): 29.0})
    said = answer.sentence(comps, arms)
    assert said.endswith("KS picks slightly better rows than frequency-matched rows of the same size, within the "
                         "margin.") and "not better" not in said
    assert answer.findings(comps, arms).splitlines()[2].startswith(
        "- **Does KS pick better rows than frequency-matched rows of the same size?** Yes, by less than the margin "
        "on g")


def test_a_difference_past_the_margin_says_so_in_every_place_it_is_read():
    comps = _comps({("g", "embedding tuning", "Adam ticket"): "b worse",
                    ("g", "full fine-tuning", "embedding tuning"): "b worse"})
    comps.loc[0, "outcome"] = comps.loc[1, "outcome"] = "b worse, beyond the margin"
    comps.loc[0, "95 % (union)"] = (-3.1, -2.2)   # as outcome() would call it: wholly past -2
    assert verdicts.outcome((-3.0, -2.3), (-3.1, -2.2), 2.0) == "b worse, beyond the margin"
    arms = _arms({("g", "base"): 20.0, ("g", "embedding tuning"): 30.0, ("g", "Adam ticket"): 26.0})
    assert "scores worse than tuning the whole embedding, by more than the margin." in answer.sentence(comps, arms)
    lines = answer.findings(comps, arms).splitlines()
    assert lines[0].endswith("No: worse, beyond the margin on g.")
    assert lines[1] == "  - g: worse by 2.4 chrF++ (95 % interval 2.2 to 3.1, beyond the margin)"
    # and where the interval reaches inside the margin, the table cell says no more than the direction
    comps.loc[0, ["outcome", "95 % (union)"]] = pd.Series(["b worse", (-3.14, -1.59)], index=["outcome", "95 % (union)"])
    assert answer.answer(comps, arms).iloc[0]["g"] == "worse by 2.4 chrF++ (95 % interval 1.6 to 3.1)"
