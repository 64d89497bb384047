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
from .verdicts import VERDICT_WORDS, verdict_word

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
    "random": ("The KS ticket beats random tokens (implied by the method)", "not reported", "implied by the method"),
    "stopping": ("(replication) the gain is mostly learning to stop", "collapse ≈ 0.94 on LLaMA-7B en→ca",
                 "the independent replication (introduction, reference 2)"),
    "single_row": ("(replication) one row (`\\n`, `<s>` or `:`) does as well as 18", "96–103 % of the 18-row gain",
                   "the independent replication (introduction, reference 2)"),
}


def _mean(scores: pd.DataFrame, arm: str, rule: str, metric: str = "chrf++") -> float | None:
    df = scores[(scores["arm"] == arm) & (scores["rule"] == rule)]
    return float(df[metric].mean()) if len(df) else None


def _fmt(*values, unit: str = "") -> str:
    return " vs ".join("—" if v is None else f"{v:.1f}{unit}" for v in values)


def _matches(a: float | None, b: float | None, base: float | None) -> bool | None:
    """``a`` matches ``b`` when their difference is within 10 % of ``b``'s gain over the base model."""
    return None if None in (a, b, base) else abs(a - b) <= 0.1 * max(abs(b - base), 1e-9)


def _verdict(ok: bool | str | None) -> str:
    """reproduced / not reproduced / not testable; a string is a verdict with its reason (inconclusive...)."""
    if isinstance(ok, str):
        return ok
    return {True: "reproduced", False: "not reproduced", None: "not testable: the chapter's measurement is undefined"}[ok]


def _headline(add, tables: dict, k: int, **_) -> None:
    """The 18-token chapter: every arm trained at the first budget, one seed per arm."""
    s = tables["partial_tuning_18_tokens"]["scores"]
    arm = lambda a, r: _mean(s, a, r)   # noqa: E731
    ticket = f"KS top-{k}"
    for key, a, b in (("embed_vs_full", "embed", "full"), ("ticket_vs_embed", ticket, "embed")):
        w, f = (arm(a, "whole"), arm(b, "whole")), (arm(a, "first_line"), arm(b, "first_line"))
        base = arm("base", "whole")
        add(key, f"{_fmt(*w)} (whole); {_fmt(*f)} (first line)", _matches(*w, base), "partial_tuning_18_tokens",
            "matches = within 10 % of the second arm's gain over the base model (whole continuation)")
    w, f = (arm("base", "whole"), arm(ticket, "whole")), (arm("base", "first_line"), arm(ticket, "first_line"))
    emb = arm("embed", "whole")
    share = None if None in w + (emb,) or emb == w[0] else (w[1] - w[0]) / (emb - w[0])
    add("eighteen", f"{w[0]:.1f} → {w[1]:.1f} (whole); {f[0]:.1f} → {f[1]:.1f} (first line)",
        None if share is None else share >= 0.9, "partial_tuning_18_tokens",
        "" if share is None else f"the ticket recovers {share:.0%} of embedding tuning's whole-continuation gain")
    pre = (arm("prefix", "whole"), arm("embed", "whole"))
    add("prefix", _fmt(*pre) + " (prefix vs embed, whole)", None if None in pre else pre[0] < pre[1],
        "partial_tuning_18_tokens")
    fr = (arm(f"frequency-{k}", "whole"), arm("embed", "whole"))
    add("frequency", _fmt(*fr) + f" (frequency-{k} vs embedding tuning, whole)",
        _matches(*fr, arm("base", "whole")), "partial_tuning_18_tokens",
        "the notes label 28.8 vs 27.9 frequency vs embedding tuning; 27.9 is also the KS ticket's reported mean")
    rnd = (arm(ticket, "whole"), arm(f"random-{k}", "whole"))
    add("random", _fmt(*rnd) + f" (KS top-{k} vs random-{k}, whole)", None if None in rnd else rnd[0] > rnd[1],
        "partial_tuning_18_tokens", "random: mean over draws")


def _finetune(add, tables: dict, **_) -> None:
    """Without the headline, the finetune notebook compares embedding and full tuning on every pair (base from
    the grid, whose scores use the same sentences and decoding when the profile sizes them alike)."""
    if "partial_tuning_18_tokens" in tables or "chrf++ (whole)" not in tables["finetune"]["table"]:
        return
    t, grid = tables["finetune"]["table"], tables.get("baseline_and_prompts")
    parts, oks = [], []
    for pair, g in t.groupby("pair", sort=False):
        e, f = (g.loc[g["mode"] == m, "chrf++ (whole)"] for m in ("embed", "full"))
        if not len(e) or not len(f):
            continue
        e, f = float(e.iloc[0]), float(f.iloc[0])
        base = None
        if grid is not None:
            b = grid["grid"]
            b = b[(b["pair"] == pair) & (b["template"] == "explicit") & (b["rule"] == "whole")]
            base = float(b["chrf++"].iloc[0]) if len(b) else None
        parts.append(f"{pair.split('-')[1][:3]}: {e:.1f} vs {f:.1f}" + ("" if base is None else f" (base {base:.1f})"))
        if base is not None:
            oks.append(_matches(e, f, base))
    if parts:
        add("embed_vs_full", "; ".join(parts) + " (chrF++, whole)", None if not oks else all(oks), "finetune",
            "matches = within 10 % of full fine-tuning's gain over the base model, on every pair")


def _ks_sizes(add, tables: dict, **_) -> None:
    t = tables["ks_ticket_discovery"]["tickets"]
    sig = t[~t["ticket"].str.startswith("topk")]
    ours = "; ".join(f"{r.ticket}: {int(r.size)}" for r in sig.groupby("ticket", sort=False)["size"].max()
                     .reset_index().itertuples())
    add("sizes", f"largest over runs: {ours}", bool((sig["size"] > 0).any()), "ks_ticket_discovery",
        "no: no row is significant, so a ticket exists only as top-k" if not (sig["size"] > 0).any() else "")


def _certified(add, tables: dict, **_) -> None:
    cert = tables["certification"]
    if "rates" not in cert:
        return
    r = cert["rates"]
    ks = r[r["object"] == "KS ticket"].sort_values("sigma")
    if not len(ks):
        return
    lo, hi = ks.iloc[0], ks.iloc[-1]
    ours = (f"partial tuning of the KS ticket, certified agreement {hi['certified']:.0%} "
            f"[{hi['certified ci95 low']:.0%}, {hi['certified ci95 high']:.0%}] at sigma {hi['sigma']:g}, where "
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


def _audit(add, tables: dict, k: int, **_) -> None:
    d = tables["termination_and_templates"]["term"]
    r = d[d["arm"] == f"KS top-{k}"]
    if len(r):
        c = r["collapse"].mean()
        add("stopping", f"collapse of KS top-{k}: {c:.2f} (mean over {len(r)} seeds); "
            f"embedding tuning: {d.loc[d['arm'] == 'embed', 'collapse'].mean():.2f}",
            None if c != c else bool(c >= 0.5), "termination_and_templates",
            "collapse = 1 - gain(first line) / gain(whole); undefined where the whole gain is 0")
    ticket_gain = d.loc[d["arm"] == f"KS top-{k}", "gain whole"].mean()
    singles = d[d["arm"].isin(["newline row", "':' row", "BOS+EOS rows"])].groupby("arm")["gain whole"].mean()
    if len(singles) and ticket_gain:
        share = singles.max() / ticket_gain
        add("single_row", f"best single row {singles.idxmax()}: {share:.0%} of the {k}-row gain (whole)",
            bool(share >= 0.9), "termination_and_templates")


# Where each claim is measured, in order: a later source replaces what an earlier one found for the same claim
# (the significance chapters, which test the paper's own object, come last). Each entry runs only when its
# notebook's tables exist in the profile.
SOURCES = [
    ("partial_tuning_18_tokens", _headline),
    ("finetune", _finetune),
    ("ks_ticket_discovery", _ks_sizes),
    ("certification", _certified),
    ("termination_and_templates", _audit),
    ("significance_ticket", lambda add, tables, **_: _significance(add, tables["significance_ticket"])),
    ("six_pairs", lambda add, tables, **_: _six_pairs(add, tables["six_pairs"], fair_claims.sgd_sizes(tables))),
    ("fair_test", lambda add, tables, **_: fair_claims.judge(add, tables["fair_test"])),
]
# The budget and learning rates each source chapter judged its claims under; the fair test names its protocol.
PROTOCOLS = {
    "partial_tuning_18_tokens": "first budget (256 pairs, 32 Adam steps, each arm at a fixed lr)",
    "finetune": "first budget (256 pairs, 32 Adam steps, each arm at a fixed lr)",
    "ks_ticket_discovery": "first budget (256 pairs, 32 Adam steps, each arm at a fixed lr)",
    "termination_and_templates": "first budget (256 pairs, 32 Adam steps, each arm at a fixed lr)",
    # Under protocol fair-v1 these two chapters train at the discovery budget (the sweep's Adam lr and steps),
    # not at dev-chosen learning rates: their claims are about the ticket's size and its certificate.
    "certification": "discovery budget (every arm at the budget sweep's Adam lr and steps)",
    "significance_ticket": "KS budget (every arm at the budget sweep's lr and steps)",
    "six_pairs": "discovery budget (the budget sweep's Adam lr and steps, seed 0)",
}
NOTEBOOKS = ["baseline_and_prompts", "budget_sweep", *dict(SOURCES)]
# The table on each source chapter's page that holds a claim's numbers ("notebook/name": the name it is saved and
# published under, kslottery.report.tables.readable(csv=...)); the claims table links each row to it.
EVIDENCE = {
    "partial_tuning_18_tokens": "scores", "finetune": "table", "ks_ticket_discovery": "tickets",
    "certification": "rates", "termination_and_templates": "term", "significance_ticket": "comparisons",
    "six_pairs": "pairs", "fair_test": "comparisons",
}


def claims(profile: str, k: int = 18, notebooks: list[str] | None = None) -> pd.DataFrame:
    """One row per claim: the paper's number, this study's (chrF++ whole / first line unless stated),
    whether the claim's shape reproduced, and the notebook it comes from.

    ``notebooks``: the profile's own notebooks. Only their tables are read, so a chapter the profile retired
    (its last tables still in the book, from another protocol) never judges a claim beside the current one."""
    names = [nb for nb in NOTEBOOKS if notebooks is None or nb in notebooks]
    tables = {nb: t for nb in names if (t := load_tables(profile, nb)) is not None}
    found = {}

    def add(key, ours, ok, source, note="", protocol=None, evidence=None, brief=None):
        claim, paper, origin = PAPER[key]
        found[key] = {"claim": claim, "paper": paper, "paper's number from": origin, "this study": ours,
                      "in brief": brief or ours,
                      "verdict": _verdict(ok), "source": source, "note": note,
                      "protocol": protocol or PROTOCOLS.get(source, ""),
                      "evidence": f"{source}/{evidence or EVIDENCE[source]}"}

    for notebook, measure in SOURCES:
        if notebook in tables:
            measure(add, tables, k=k)
    rows = list(found.values())
    for key, (claim, paper, origin) in PAPER.items():
        if key not in found:
            rows.append({"claim": claim, "paper": paper, "paper's number from": origin,
                         "this study": "not measured in this profile", "in brief": "not measured",
                         "verdict": NOT_RETRIEVED if key == "certified"
                         else NOT_RUN, "source": "", "note": "", "protocol": "", "evidence": ""})
    order = {claim: i for i, (claim, _, _) in enumerate(PAPER.values())}
    return pd.DataFrame(rows).sort_values("claim", key=lambda c: c.map(order), ignore_index=True)


def _equivalence_verdict(r) -> str | bool:
    """TOST at the chapter's margin: equivalent -> reproduced; the 95 % interval wholly outside the margin ->
    not reproduced; otherwise the data cannot tell at this precision."""
    if r["equivalent (TOST 5 %)"] is True or r["equivalent (TOST 5 %)"] == "True":
        return True
    m, low, high = r["equivalence margin"], r["ci95 low"], r["ci95 high"]
    if low >= m or high <= -m:
        return False
    if low > 0 or high < 0:
        return (f"not reproduced: the arms differ ({'better' if low > 0 else 'worse'}, 95 % interval "
                f"[{low:.1f}, {high:.1f}]), perhaps by less than ±{m:g}")
    return f"inconclusive: the 95 % interval [{low:.1f}, {high:.1f}] is not inside ±{m:g}"


def _significance(add, sig: dict) -> None:
    """The claims the significance-defined ticket chapter tests as the paper states them (paired, per seed)."""
    c = sig["comparisons"]
    c = c[c["rule"] == "whole"].set_index(["a", "b"])

    def diff(a, b):
        r = c.loc[(a, b)]
        return r, (f"{b} − {a}: {r['b - a']:+.1f} chrF++, 95 % CI [{r['ci95 low']:.1f}, {r['ci95 high']:.1f}], "
                   f"{int(r['seeds'])} seeds")

    sizes = sig["tickets"]
    sizes = ", ".join(str(int(n)) for n in sizes.loc[sizes["arm"] == "KS ticket", "rows"])
    if ("embed", "KS ticket") in c.index:
        r, text = diff("embed", "KS ticket")
        add("ticket_vs_embed", f"{text} (tickets of {sizes} rows)", _equivalence_verdict(r), "significance_ticket",
            f"equivalence test (TOST) at ±{r['equivalence margin']:g} chrF++, whole continuation")
    if ("embed", "full") in c.index and ("embed", "KS ticket") in c.index:
        # The paper's first claim, tested paired at the chapter's budget; the chapter states its one margin
        # for "matches" on the ticket row, and the same margin judges this match.
        r, text = diff("embed", "full")
        r = r.copy()
        r["equivalence margin"] = c.loc[("embed", "KS ticket"), "equivalence margin"]
        full_seeds = sorted(sig["scores"].loc[sig["scores"]["arm"] == "full", "seed"]) if "scores" in sig else []
        one_run = (f"; full fine-tuning is one run (seed {int(full_seeds[0])}), paired with each seed's "
                   "embedding tuning" if len(full_seeds) == 1 else "")
        add("embed_vs_full", text, _equivalence_verdict(r), "significance_ticket",
            f"at the significance chapter's budget; equivalence at the chapter's ±{r['equivalence margin']:g} "
            f"chrF++, whole continuation{one_run}")
    if ("embed", "most frequent") in c.index:
        r, text = diff("embed", "most frequent")
        add("frequency", f"{text} (the most frequent tokens, as many as the ticket)", _equivalence_verdict(r),
            "significance_ticket", "the paper's 28.8 vs 27.9 compares frequency tuning with embedding tuning")
    if ("frequency-matched", "KS ticket") in c.index:
        r, text = diff("frequency-matched", "KS ticket")
        add("random", f"{text} (frequency-matched random rows of the ticket's size)",
            bool(r["ci95 low"] > 0), "significance_ticket", "reproduced = the ticket is better, 95 % CI above 0")


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
    count a claim the paper never made as one of its claims."""
    words = table["verdict"].map(verdict_word)
    out = {f"verdicts_{w.replace(' ', '_')}": int((words == w).sum()) for w in VERDICT_WORDS}
    out["verdicts_total"] = len(table)
    if "paper's number from" in table.columns:
        own = table["paper's number from"].astype(str).str.startswith("the paper")
        out |= {f"paper_{w.replace(' ', '_')}": int((words[own] == w).sum()) for w in VERDICT_WORDS}
        out |= {"paper_total": int(own.sum()), "verdicts_others": int((~own).sum())}
    return out
