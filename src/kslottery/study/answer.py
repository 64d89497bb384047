"""The study's answer in words, computed from the fair test's outcomes: the sentence the book opens with, one
finding per question, and the answer table (a row per question, a column per model). Every word here is a
function of the comparisons table (:func:`kslottery.study.fair.comparisons`) and the arms' mean scores
(:func:`kslottery.study.fair.arm_table`), so the prose follows whatever a run finds.

    >>> reply("b worse", "equivalence"), reply("equivalent", "superiority"), reply("inconclusive", "equivalence")
    ('no: worse', 'no: as good, not better', 'cannot tell')
"""

from __future__ import annotations

import pandas as pd

from kslottery.study.fair import said
from kslottery.study.verdicts import claim_verdict

# The questions a reader asks, each answered by one primary comparison (a, b) of the design: an *equivalence*
# question asks whether b matches a, a *superiority* one whether b beats a.
QUESTIONS = (
    ("Does tuning only the KS ticket match tuning the whole embedding?", "embedding tuning", "Adam ticket",
     "equivalence"),
    ("Does KS pick better rows than frequency-matched rows of the same size?", "frequency-matched rows",
     "Adam ticket", "superiority"),
    ("Does KS pick better rows than the rows training reaches first?", "earliest-seen rows", "Adam ticket",
     "superiority"),
    ("Do the paper's 18 rows (top-18 by D) match tuning the whole embedding?", "embedding tuning", "top-18 by D",
     "equivalence"),
    ("Does tuning only the KS ticket match full fine-tuning?", "full fine-tuning", "Adam ticket", "equivalence"),
    ("Does tuning the embedding match full fine-tuning?", "full fine-tuning", "embedding tuning", "equivalence"),
)


def direction(outcome: str) -> str:
    """An outcome's direction in one word: better, worse, equivalent or inconclusive (a difference inside the
    margin, "equivalent; b slightly worse", reads as equivalent)."""
    if outcome.startswith("equivalent") or outcome == "inconclusive":
        return outcome.split(";")[0]
    return "better" if outcome.startswith("b better") else "worse"


def reply(outcome: str, kind: str) -> str:
    """A question's answer from its comparison's outcome: yes, no (and which way), or cannot tell."""
    verdict = claim_verdict(outcome, kind)
    if verdict == "inconclusive":
        return "cannot tell"
    if verdict == "reproduced":
        return "yes"
    way = direction(outcome)
    return "no: as good, not better" if way == "equivalent" else f"no: {way}"


def _models(comps: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(comps["model"]))


def _row(comps: pd.DataFrame, model: str, a: str, b: str):
    hit = comps[(comps["model"] == model) & (comps["a"] == a) & (comps["b"] == b)]
    return hit.iloc[0] if len(hit) else None


def recovered(arms: pd.DataFrame, model: str, arm: str = "Adam ticket", whole: str = "embedding tuning") -> float:
    """The share of ``whole``'s gain over the base model that ``arm`` recovers on ``model`` (mean chrF++ over
    seeds, whole continuation): 1.0 is all of it, 0 nothing, above 1 more."""
    mean = _means(arms, model)
    return float((mean[arm] - mean["base"]) / (mean[whole] - mean["base"]))


def _means(arms: pd.DataFrame, model: str) -> pd.Series:
    return arms[arms["model"] == model].set_index("arm")["chrF++ whole"]


def _gain(arms: pd.DataFrame, model: str) -> float:
    mean = _means(arms, model)
    return float(mean["embedding tuning"] - mean["base"])


def _per_model(words: dict[str, str]) -> str:
    """"worse on both models", or "worse on gemma3-270m and equivalent on smollm2-135m"."""
    if len(set(words.values())) == 1:
        word = next(iter(words.values()))
        return word + (f" on {'both' if len(words) == 2 else f'all {len(words)}'} models" if len(words) > 1 else "")
    return " and ".join(f"{w} on {m}" for m, w in words.items())


_AGAINST = {"better": "scores better than {a}", "worse": "scores worse than {a}",
            "equivalent": "scores as well as {a} (within the margin)", "inconclusive": "is inconclusive against {a}"}


def sentence(comps: pd.DataFrame, arms: pd.DataFrame) -> str:
    """The answer in two short sentences: how much of embedding tuning's gain the KS ticket recovers and how it
    compares with it; then how it compares with the frequency-matched control."""
    models = _models(comps)
    shares = " and ".join(f"{100 * recovered(arms, m):.0f} % ({m})" if _gain(arms, m) > 0 else
                          f"nothing ({m}, where embedding tuning does not beat the base model)" for m in models)
    said = {}
    for a in ("embedding tuning", "frequency-matched rows"):
        said[a] = {m: _AGAINST[direction(r["outcome"]) if (r := _row(comps, m, a, "Adam ticket")) is not None
                               else "inconclusive"].format(a=a) for m in models}
    return (f"Tuning only the KS ticket recovers {shares} of embedding tuning's gain over the base model, and it "
            f"{_per_model(said['embedding tuning'])}. The KS ticket {_per_model(said['frequency-matched rows'])}.")


def findings(comps: pd.DataFrame) -> str:
    """One Markdown bullet per question that ran: the question in bold, its answer per model, and the outcome
    with its numbers (b − a in chrF++ on devtest)."""
    lines = []
    for question, a, b, kind in QUESTIONS:
        said = {m: (reply(r["outcome"], kind), _short(r)) for m in _models(comps)
                if (r := _row(comps, m, a, b)) is not None}
        if not said:
            continue
        answers = {m: x[0] for m, x in said.items()}
        numbers = "; ".join(f"{m}: {text}" for m, (_, text) in said.items())
        head = _per_model(answers)
        lines.append(f"- **{question}** {head[0].upper()}{head[1:]} ({numbers}).")
    return "\n".join(lines)


def _short(row) -> str:
    return said(row, short=True)


def answer(comps: pd.DataFrame) -> pd.DataFrame:
    """The study's answer, one row per question of :data:`QUESTIONS` and one column per model: the primary
    comparison's outcome in a few words (chrF++ on devtest; b − a), for the book's first screen."""
    rows = []
    for question, a, b, _ in QUESTIONS:
        row = {"question": question}
        for model in _models(comps):
            r = _row(comps, model, a, b)
            row[model] = _short(r) if r is not None else "not run"
        rows.append(row)
    return pd.DataFrame(rows)
