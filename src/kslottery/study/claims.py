"""Paper vs this study: every claim of the paper beside this study's measurement from one profile.

The numbers come from the result tables the profile's notebooks saved (:func:`kslottery.study.results.load_tables`:
the runs, else the book's CSVs), never typed in; a claim whose notebook has not run in the profile says so.
The paper reports spBLEU on LLaMA-7B; the study's CPU profiles report chrF++ on other models, so "reproduced" compares the *shape*
of a claim (which arm is better, by how much relative to the gain over the base model), not its value.
"""

from __future__ import annotations

import pandas as pd

from . import fair_claims
from .results import load_tables
from .verdicts import PERHAPS, VERDICT_WORDS, WEAKLY, verdict_word

# (claim, the number claimed, where that number comes from) in the paper's order. The paper's numbers
# reach this study through an independent replication's transcription (the notes, section 2, mark them
# "reported"); the replication's own findings are its claims, not the paper's.
TRANSCRIBED = "the paper, as quoted by the independent replication (introduction, reference 2)"
# The paper states its theorem; this study could not retrieve the paper's text, so cannot test it as stated.
NOT_RETRIEVED = "not testable as stated: this study could not retrieve the theorem's text"
# A claim no chapter of the profile measures: the verdict vocabulary's fourth word, with its reason.
NOT_RUN = "not testable: no chapter of this profile measures it"
PAPER = {
    "embed_vs_full": ("Embedding tuning matches full fine-tuning",
                      "embedding 29.0 vs full 27.3 spBLEU (mean of 4 pairs)", TRANSCRIBED),
    "ticket_vs_embed": ("Partial tuning of the KS ticket matches embedding tuning",
                        "KS ticket 27.9 vs embedding 29.0", TRANSCRIBED),
    "eighteen": ("18 rows suffice for en→ca (base → partial tuning of the ticket)", "base 5.7 → 18-row ticket 37.7", TRANSCRIBED),
    "sizes": ("The ticket comes from a KS significance test (sizes 12–18)", "ca 18, es 18, ro 15, da 12, de 15, pt 17",
              TRANSCRIBED),
    "certified": ("The ticket is certified to perform as well as embedding tuning",
                  "a theorem (published; its text not retrieved here)",
                  "the paper (title and abstract)"),
    "prefix": ("Prefix tuning is clearly weaker", "prefix 17.4 vs embedding 29.0", TRANSCRIBED),
    "frequency": ("Tuning the most frequent tokens is comparable to embedding tuning",
                  "frequency 28.8 vs embedding 27.9 (as quoted; 27.9 is also the KS ticket's mean)", TRANSCRIBED),
    "random": ("The KS ticket beats rows chosen without it: frequency-matched rows of its size (implied by the method)",
               "not reported", "implied by the method"),
    "exposure": ("The KS ticket beats the rows training reaches first (implied by the method)", "not reported",
                 "implied by the method"),
    "stopping": ("(replication) the gain is mostly learning to stop", "collapse ≈ 0.94 on LLaMA-7B en→ca",
                 "the independent replication (introduction, reference 2)"),
    "single_row": ("(replication) one row (the newline, the start token or the colon) does as well as 18",
                   "96–103 % of the 18-row gain",
                   "the independent replication (introduction, reference 2)"),
}


def _verdict(ok: bool | str | None) -> str:
    """reproduced / not reproduced / not testable; a string is a verdict with its reason (inconclusive...)."""
    if isinstance(ok, str):
        return ok
    return {True: "reproduced", False: "not reproduced", None: "not testable: the chapter's measurement is undefined"}[ok]


def _certified(add, tables: dict, **_) -> None:
    cert = tables["certification"]
    if "rates" not in cert:
        return
    r = cert["rates"]
    ks = r[r["object"] == "Adam ticket"].sort_values("sigma")
    if not len(ks):
        return
    lo, hi = ks.iloc[0], ks.iloc[-1]
    ours = (f"partial tuning of the Adam ticket, certified agreement {hi['certified']:.0%} "
            f"[{hi['certified ci95 low']:.0%}, {hi['certified ci95 high']:.0%}] at σ = {hi['sigma']:g}, where "
            f"the smoothed model keeps the model's prediction at {hi['smoothed = model']:.0%} of contexts; at "
            f"sigma {lo['sigma']:g} ({lo['smoothed = model']:.0%} kept) {lo['certified']:.0%}, with "
            f"{lo['below ceiling']:.0%} of contexts below the ceiling")
    brief = (f"certified agreement {hi['certified']:.0%} [{hi['certified ci95 low']:.0%}, "
             f"{hi['certified ci95 high']:.0%}] at σ {hi['sigma']:g}"
             + (f", where the smoothed model abstains at {hi['abstain']:.0%} of contexts" if "abstain" in hi else "")
             + f"; {lo['certified']:.0%} at σ {lo['sigma']:g}")
    add("certified", ours, NOT_RETRIEVED, "certification", brief=brief, note=(
        "what the study's own certificate (randomized smoothing) shows for the paper's object; the chapter "
        "computes its limits before sampling"))


# Where each claim is measured, in order: a later source replaces what an earlier one found for the same claim
# (the fair test, which tests the paper's own object, comes last). Each entry runs only when its
# notebook's tables exist in the profile.
SOURCES = [
    ("certification", _certified),
    ("six_pairs", lambda add, tables, **_: _six_pairs(add, tables["six_pairs"], fair_claims.sgd_sizes(tables)
                                                      + fair_claims.budget_sizes(tables))),
    ("fair_test", lambda add, tables, **_: fair_claims.judge(add, tables["fair_test"])),
]
# The budget and learning rates each source chapter judged its claims under; the fair test names its protocol.
PROTOCOLS = {
    # Under protocol fair-v1 these two chapters train at the discovery budget (the sweep's Adam lr and steps),
    # not at dev-chosen learning rates: their claims are about the ticket's size and its certificate.
    "certification": "discovery budget (every arm at the budget sweep's Adam lr and steps)",
    "six_pairs": "discovery budget (the budget sweep's Adam lr and steps, seed 0)",
}
NOTEBOOKS = ["baseline_and_prompts", "budget_sweep", *dict(SOURCES)]
# The table on each source chapter's page that holds a claim's numbers ("notebook/name": the name it is saved and
# published under, kslottery.report.tables.readable(csv=...)); the claims table links each row to it.
EVIDENCE = {"certification": "rates", "six_pairs": "pairs", "fair_test": "comparisons"}


def claims(profile: str, k: int = 18, notebooks: list[str] | None = None, model: str = "") -> pd.DataFrame:
    """One row per claim and model: the paper's number, this study's (chrF++ whole / first line unless stated),
    whether the claim's shape reproduced, and the notebook it comes from. ``model``: the profile's model, which the
    chapters that run one model measured on (the fair test names its own).

    ``notebooks``: the profile's own notebooks. Only their tables are read, so a chapter the profile retired
    (its last tables still in the book, from another protocol) never judges a claim beside the current one."""
    names = [nb for nb in NOTEBOOKS if notebooks is None or nb in notebooks]
    tables = {nb: t for nb in names if (t := load_tables(profile, nb)) is not None}
    found = {}

    def add(key, ours, ok, source, note="", protocol=None, evidence=None, brief=None, model=None):
        claim, paper, origin = PAPER[key]
        if source == "fair_test":   # the fair test's verdicts replace an earlier source's for the same claim
            found.pop((key, None), None)
        found[(key, model)] = {"claim": claim, "model": model or "", "paper": paper, "paper's number from": origin,
                             "this study": ours,
                      "in brief": brief or ours,
                      "verdict": _verdict(ok), "source": source, "note": note,
                      "protocol": protocol or PROTOCOLS.get(source, ""),
                      "evidence": f"{source}/{evidence or EVIDENCE[source]}"}

    for notebook, measure in SOURCES:
        if notebook in tables:
            measure(add, tables, k=k)
    rows = [{**row, "model": row["model"] or model} for row in found.values()]
    for key, (claim, paper, origin) in PAPER.items():
        if not any(k == key for k, _ in found):
            rows.append({"claim": claim, "model": "", "paper": paper, "paper's number from": origin,
                         "this study": "not measured in this profile", "in brief": "not measured",
                         "verdict": NOT_RETRIEVED if key == "certified"
                         else NOT_RUN, "source": "", "note": "", "protocol": "", "evidence": ""})
    order = {claim: i for i, (claim, _, _) in enumerate(PAPER.values())}
    return pd.DataFrame(rows).sort_values("claim", key=lambda c: c.map(order), kind="stable", ignore_index=True)


def _six_pairs(add, pairs: dict, sgd: str = "") -> None:
    t = pairs["pairs"]
    col = next(c for c in t.columns if c.startswith("bh ")) if any(c.startswith("bh ") for c in t.columns) else None
    if col is not None:
        ours = ", ".join(f"{p.split('-')[1][:3]} {int(n)}" for p, n in zip(t["pair"], t[col]))
        add("sizes", f"Benjamini-Hochberg 0.05 at the chosen budget: {ours}{sgd}", bool(t[col].between(12, 18).all()),
            "six_pairs", "reproduced = every pair's significance ticket has 12-18 rows at the design's Adam discovery "
                         "budget; en→ca's lower bound holds by construction (the budget rule picks the first budget at "
                         "which en→ca seed 0 reaches 12 rows)")


def verdict_counts(table: pd.DataFrame) -> dict:
    """How many claims got each verdict word (a verdict with its reason counts by its first words), keyed
    ``verdicts_<word>`` for the landing page's one-line summary, and ``verdicts_total``; with the table's
    "paper's number from" column, the same for the paper's own claims alone (``paper_<word>``, ``paper_total``)
    and how many claims are the replication's or the method's (``verdicts_others``): the landing page must not
    count a claim the paper never made as one of its claims. ``*_reproduced_weakly`` and
    ``*_not_reproduced_weakly``: how many of those verdicts carry :data:`~kslottery.study.verdicts.WEAKLY` (an
    equivalence inside embedding tuning's own gain: it makes a reproduction weak, and a superiority claim's
    "not reproduced: equivalent" weak too); ``*_not_reproduced_perhaps``: how many "not reproduced" carry
    :data:`~kslottery.study.verdicts.PERHAPS` (a difference whose interval reaches inside the margin: the claimed
    match may have failed by less than the margin)."""
    words = table["verdict"].map(verdict_word)
    marked = table["verdict"].astype(str).str.contains(WEAKLY, regex=False)
    perhaps = table["verdict"].astype(str).str.contains(PERHAPS, regex=False) & (words == "not reproduced")
    weak = {w: marked & (words == w) for w in ("reproduced", "not reproduced")}
    out = {f"verdicts_{w.replace(' ', '_')}": int((words == w).sum()) for w in VERDICT_WORDS}
    out |= {"verdicts_total": len(table)}
    out |= {f"verdicts_{w.replace(' ', '_')}_weakly": int(m.sum()) for w, m in weak.items()}
    out |= {"verdicts_not_reproduced_perhaps": int(perhaps.sum())}
    if "paper's number from" in table.columns:
        own = table["paper's number from"].astype(str).str.startswith("the paper")
        out |= {f"paper_{w.replace(' ', '_')}": int((words[own] == w).sum()) for w in VERDICT_WORDS}
        out |= {"paper_total": int(own.sum()), "verdicts_others": int((~own).sum())}
        out |= {f"paper_{w.replace(' ', '_')}_weakly": int(m[own].sum()) for w, m in weak.items()}
        out |= {"paper_not_reproduced_perhaps": int(perhaps[own].sum())}
    return out
