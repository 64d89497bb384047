"""The study's answer in words, computed from the fair test's outcomes: the sentence the book opens with, one
finding per question, and the answer table (a row per question, a column per model). Every word here is a
function of the comparisons table (:func:`kslottery.study.fair.comparisons`) and the arms' mean scores
(:func:`kslottery.study.fair.arm_table`), so the prose follows whatever a run finds.

    >>> reply("b worse, beyond the margin", "equivalence"), reply("b worse", "equivalence")
    ('no: worse, beyond the margin', 'not shown: worse, perhaps by less than the margin')
    >>> reply("equivalent", "superiority"), reply("inconclusive", "equivalence")
    ('not shown better: within the margin', 'cannot tell')
    >>> reply("equivalent; b slightly worse", "superiority"), reply("equivalent; b slightly better", "superiority")
    ('no: slightly worse', 'yes, by less than the margin')
"""

from __future__ import annotations

import pandas as pd

from kslottery.study.design import PRIMARY
from kslottery.study.fair import said
from kslottery.study.verdicts import PERHAPS, claim_verdict, embedding_gain, gain_words, size_unsettled, within_gain

# The questions a reader asks, in the order they ask them, each answered by one primary comparison (a, b) of the
# design; whether it asks "does b match a" (equivalence) or "does b beat a" (superiority) is the comparison's
# kind in design.PRIMARY, not restated here.
_KIND = {(a, b): kind for a, b, kind in PRIMARY}
QUESTIONS = tuple((q, a, b, _KIND[(a, b)]) for q, a, b in (
    ("Does tuning only the KS ticket match tuning the whole embedding?", "embedding tuning", "Adam ticket"),
    ("Does KS pick better rows than frequency-matched rows of the same size?", "frequency-matched rows",
     "Adam ticket"),
    ("Does KS pick better rows than the rows training reaches first?", "earliest-seen rows", "Adam ticket"),
    ("Do 18 rows, as many as the paper's ticket (our top 18 by D), match tuning the whole embedding?",
     "embedding tuning", "top-18 by D"),
    ("Does tuning only the KS ticket match full fine-tuning?", "full fine-tuning", "Adam ticket"),
    ("Does tuning the embedding match full fine-tuning?", "full fine-tuning", "embedding tuning"),
))


def direction(outcome: str) -> str:
    """An outcome's direction: better, worse, equivalent, inconclusive, or slightly better / slightly worse (a
    difference detected inside the margin, which a superiority claim counts as better: its own words, so that the
    opening sentence never says "not better" where the answer says "yes"); a difference wholly past the margin
    keeps those words ("worse, beyond the margin"), so a reader can tell it from one the margin may contain."""
    if outcome.startswith("equivalent; b "):
        return outcome.removeprefix("equivalent; b ")
    if outcome.startswith("equivalent") or outcome == "inconclusive":
        return outcome
    return outcome.removeprefix("b ")


def reply(outcome: str, kind: str) -> str:
    """A question's answer from its comparison's outcome: yes, no (and which way), or cannot tell. The words claim
    no more than the interval: an equivalence bounds a difference, it does not show there is none; a difference
    whose interval reaches inside the margin may be smaller than the margin ("perhaps by less than the margin")."""
    verdict = claim_verdict(outcome, kind)
    if verdict == "inconclusive":
        return "cannot tell"
    if verdict == "reproduced":
        return "yes, by less than the margin" if outcome == "equivalent; b slightly better" else "yes"
    way = direction(outcome)
    if way == "equivalent":   # a bound on the difference, not its absence
        return "not shown better: within the margin"
    if size_unsettled(outcome, kind):   # a match within the margin is not ruled out
        return f"not shown: {way}{PERHAPS}"
    return f"no: {way}"


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
    return embedding_gain(arms, model, "chrF++ whole")


def _on(models: list[str], total: int) -> str:
    """"on both models", "on all 3 models", "on gemma3-270m", "on gemma3-270m and smollm2-135m"."""
    if len(models) == total > 1:
        return "on both models" if total == 2 else f"on all {total} models"
    return "on " + " and ".join(models)


def _grouped(words: dict[str, str], template: str) -> str:
    """Each distinct word once with the models it holds on: template.format(word=..., on=...), joined by "; "."""
    groups: dict[str, list[str]] = {}
    for model, word in words.items():
        groups.setdefault(word, []).append(model)
    return "; ".join(template.format(word=w, on=_on(ms, len(words))) for w, ms in groups.items())


# How the KS ticket compares with tuning the whole embedding, and KS's rows with frequency-matched rows of the
# same size, by direction: each a clause that follows "On <models>, ".
_AGAINST_EMBEDDING = {
    "better": "tuning only the KS ticket scores better than tuning the whole embedding",
    "worse": "tuning only the KS ticket scores worse than tuning the whole embedding",
    "better, beyond the margin": "tuning only the KS ticket scores better than tuning the whole embedding, by more "
                                 "than the margin",
    "worse, beyond the margin": "tuning only the KS ticket scores worse than tuning the whole embedding, by more "
                                "than the margin",
    "equivalent": "tuning only the KS ticket scores as well as tuning the whole embedding, within the margin",
    "slightly better": "tuning only the KS ticket scores slightly better than tuning the whole embedding, within "
                       "the margin",
    "slightly worse": "tuning only the KS ticket scores slightly worse than tuning the whole embedding, within "
                      "the margin",
    "inconclusive": "we could not tell whether tuning only the KS ticket does as well as tuning the whole embedding"}
_AGAINST_CONTROL = {
    "better": "KS picks better rows than frequency-matched rows of the same size",
    "worse": "KS picks worse rows than frequency-matched rows of the same size",
    "better, beyond the margin": "KS picks better rows than frequency-matched rows of the same size, by more than "
                                 "the margin",
    "worse, beyond the margin": "KS picks worse rows than frequency-matched rows of the same size, by more than the "
                                "margin",
    "equivalent": "KS's rows do as well as frequency-matched rows of the same size (within the margin), but are not "
                  "shown better",
    "slightly better": "KS picks slightly better rows than frequency-matched rows of the same size, within the margin",
    "slightly worse": "KS picks slightly worse rows than frequency-matched rows of the same size, within the margin",
    "inconclusive": "we could not tell whether KS picks better rows than frequency-matched rows of the same size"}
# The KS ticket, defined where the book first names it: the opening sentence.
_DEFINED = "the KS ticket (the embedding rows a Kolmogorov–Smirnov test flags as shifted by tuning)"


def _clauses(ways: dict[str, str], words: dict[str, str]) -> str:
    """One sentence: "On <models>, <clause>" per distinct direction, in the models' order, joined by "; "."""
    text = _grouped({m: words[w] for m, w in ways.items()}, "{on}, {word}")
    return text[0].upper() + text[1:] + "."


def sentence(comps: pd.DataFrame, arms: pd.DataFrame) -> str:
    """The answer in three short sentences: how the KS ticket compares with tuning the whole embedding (the ticket
    defined on first mention), how much of that gain it recovers on each model, and whether KS picks better rows
    than frequency-matched rows of the same size."""
    models = _models(comps)
    way = {a: {m: direction(r["outcome"]) if (r := _row(comps, m, a, "Adam ticket")) is not None else "inconclusive"
               for m in models} for a in ("embedding tuning", "frequency-matched rows")}
    first = _clauses(way["embedding tuning"], _AGAINST_EMBEDDING).replace("the KS ticket", _DEFINED, 1)
    margin = float(comps["margin"].iloc[0])
    gain = {m: _gain(arms, m) for m in models}
    # a share of a gain smaller than the margin divides noise by little more than noise: the gain is said instead
    gained = [m for m in models if gain[m] >= margin]
    # a no-break space: "0 %" must not break between the number and its sign
    shares = [(f"{100 * recovered(arms, m):.0f}\u00a0%", f" on {m}" if len(models) > 1 else "") for m in gained]
    size = _sizes(arms, models)
    ticket = f"The ticket, {size}," if size else "The ticket"
    second = (f"{ticket} recovers {shares[0][0]} of embedding tuning's gain over the base model{shares[0][1]}"
              + "".join(f" and {x}{on}" for x, on in shares[1:]) + "." if gained else "")
    for m in (m for m in models if 0 < gain[m] < margin):
        second += (f" On {m}, embedding tuning gains only {gain[m]:+.1f} chrF++ over the base model, inside the "
                   f"±{margin:g} margin, so no share of it is given.")
    if none := [m for m in models if gain[m] <= 0]:
        on = _on(none, len(models)).replace("on both models", "on either model")
        second += f" Embedding tuning does not beat the base model {on}, so there is no gain to recover there."
    if size and not gained:
        second = f"The ticket holds {size}." + second
    third = _clauses(way["frequency-matched rows"], _AGAINST_CONTROL)
    # "as well as" said on a model whose embedding tuning barely moves it is qualified in the same paragraph
    weak = [m for m in models if any(_weak(_row(comps, m, a, "Adam ticket"), arms) for a in way)]
    fourth = " ".join(f"On {m}, an equivalence this close may also hold for an arm that learned nothing." if gain[m] > 0
                      else f"On {m}, {gain_words(gain[m], margin)}." for m in weak)
    return f"{first} {second.strip()} {third} {fourth}".strip()


def _sizes(arms: pd.DataFrame, models: list[str]) -> str:
    """"53 rows on g and about 14 on s": the ticket's size on each model (the mean over seeds, "about" where the
    seeds' tickets differ), so the answer says how small the thing it judges is; empty without ticket sizes."""
    if "rows" not in arms:
        return ""
    held = arms[arms["arm"] == "Adam ticket"].set_index("model")["rows"].dropna()
    sizes = []
    for m in (m for m in models if m in held):
        n = held[m]
        unit = "" if sizes else " row" if n == 1 else " rows"   # "53 rows on g and 14 on s"
        sizes.append(f"{'' if float(n).is_integer() else 'about '}{n:,.0f}{unit}{f' on {m}' if len(models) > 1 else ''}")
    return " and ".join(sizes)


def lead(comps: pd.DataFrame, arms: pd.DataFrame) -> str:
    """:func:`sentence` as the book's first screen shows it (Markdown): its first sentence, the answer, in bold."""
    text = sentence(comps, arms)
    cut = text.index(". ", text.index("KS ticket (")) + 1
    return f"**{text[:cut]}**{text[cut:]}"


def findings(comps: pd.DataFrame, arms: pd.DataFrame | None = None) -> str:
    """One Markdown bullet per question that ran: the question in bold and its answer on every model, then one
    sub-bullet per model with the outcome and its numbers (b − a in chrF++ on devtest), qualified where
    embedding tuning's own gain lies inside the margin (``arms``, :func:`kslottery.study.verdicts.within_gain`)."""
    lines = []
    for question, a, b, kind in QUESTIONS:
        rows = {m: r for m in _models(comps) if (r := _row(comps, m, a, b)) is not None}
        if not rows:
            continue
        head = _grouped({m: reply(r["outcome"], kind) for m, r in rows.items()}, "{word} {on}")
        head = head.replace("cannot tell on both models", "cannot tell on either model")
        if weak := [m for m, r in rows.items() if _weak(r, arms)]:
            head += f" (weakly {_on(weak, len(rows))})"
        lines.append(f"- **{question}** {head[0].upper()}{head[1:]}.")
        lines += [f"  - {m}: {_short(r, arms)}" for m, r in rows.items()]
    return "\n".join(lines)


def _weak(row, arms: pd.DataFrame | None) -> bool:
    """Whether a comparison's row (None: not run) is a weak equivalence (:func:`~.verdicts.within_gain`)."""
    return row is not None and arms is not None and within_gain(
        row["a"], row["b"], row["outcome"], _gain(arms, row["model"]), row["margin"],
        _KIND.get((row["a"], row["b"]), "equivalence"))


def _short(row, arms: pd.DataFrame | None = None) -> str:
    """A comparison's outcome in a few words; with ``arms``, qualified where the equivalence is weak."""
    text = said(row, short=True)
    return f"{text}; but {gain_words(_gain(arms, row['model']), row['margin'])}" if _weak(row, arms) else text


def answer(comps: pd.DataFrame, arms: pd.DataFrame | None = None) -> pd.DataFrame:
    """The study's answer, one row per question of :data:`QUESTIONS` and one column per model: the primary
    comparison's outcome in a few words (chrF++ on devtest; b − a), qualified as :func:`findings` does."""
    rows = []
    for question, a, b, _ in QUESTIONS:
        row = {"question": question}
        for model in _models(comps):
            r = _row(comps, model, a, b)
            row[model] = _short(r, arms) if r is not None else "not run"
        rows.append(row)
    return pd.DataFrame(rows)
