"""The claims the fair test judges (protocol fair-v2), for :mod:`kslottery.study.claims`: one verdict per claim and
model, each the declared comparison's outcome (:func:`kslottery.study.verdicts.claim_verdict`), said with its
direction, size and interval, and naming the model it holds on.
"""

from __future__ import annotations

from .comparison import shown_interval
from .fair import said
from .verdicts import PERHAPS, WEAKLY, embedding_gain, gain_words, size_unsettled, within_gain

# Claims the fair test judges: (claim, comparison a, comparison b). A claim whose comparison did not run (an arm
# the design cut) is left to the claims table's "not measured".
FAIR_CLAIMS = (("ticket_vs_embed", "embedding tuning", "Adam ticket"),
               ("embed_vs_full", "full fine-tuning", "embedding tuning"),
               ("random", "frequency-matched rows", "Adam ticket"),
               ("exposure", "earliest-seen rows", "Adam ticket"),
               ("eighteen", "embedding tuning", "top-18 by D"),
               ("frequency", "embedding tuning", "most frequent rows"),
               ("single_row", "top-18 by D", "':' row"))


def judge(add, fair: dict) -> None:
    """Every claim of ``FAIR_CLAIMS`` on every model of the fair test's comparisons table; the collapse of the
    gain into learning to stop, descriptively, in chrF++ and in BLEU."""
    c = fair["comparisons"]
    keys = list(zip(c["model"], c["a"], c["b"]))
    for key, a, b in FAIR_CLAIMS:
        for model in dict.fromkeys(c["model"]):
            if (model, a, b) not in keys:
                continue
            row = keys.index((model, a, b))   # the row of the page's Table 1 (same order)
            r = c.iloc[row]
            diff, lo, hi, l90, h90 = shown_interval(r)
            ours = (f"{b} − {a} = {diff:+.1f} chrF++: {said(r)}; 95 % union [{lo:.1f}, {hi:.1f}], "
                    f"90 % union [{l90:.1f}, {h90:.1f}], {int(r['seeds'])} seeds ({r['role']})")
            verdict = r["verdict"] if r["verdict"] == "reproduced" else f"{r['verdict']}: {r['outcome']}"
            if size_unsettled(r["outcome"], r["kind"]):   # its interval may reach inside the margin
                verdict += PERHAPS
            gain = embedding_gain(fair["scores"], model, "chrf++ whole") if "scores" in fair else float("nan")
            if within_gain(a, b, r["outcome"], gain, r["margin"], r["kind"]):   # the verdict stands, its weakness said
                verdict += WEAKLY + gain_words(gain, r["margin"])
            note = (f"{r['kind']} claim; outcome {r['outcome']!r} by one rule for both sides (equivalent: 90 % union "
                    f"inside ±{r['margin']:g} chrF++ and Holm-adjusted equivalence p below 0.05; better or worse: 95 % "
                    f"union excludes 0 and Holm-adjusted difference p below 0.05; here difference p "
                    f"{r['p difference (Holm)']:.3g}, equivalence p {r['p equivalence (Holm)']:.3g}); each arm at its "
                    "family's dev-chosen lr")
            brief = f"{b} − {a}: {diff:+.1f} [{lo:.1f}, {hi:.1f}], {r['outcome']}"
            if key == "eighteen" and "scores" in fair:   # the paper's number is base -> ticket: ours beside it
                s = fair["scores"][fair["scores"]["model"] == model]
                base, top = (s.loc[s["arm"] == arm, "chrf++ whole"].mean() for arm in ("base", b))
                brief = f"base {base:.1f} → {b} {top:.1f}; {brief}"
            add(key, ours, verdict, "fair_test", note, protocol=str(r["protocol"]), brief=brief,
                evidence=f"comparisons#row{row}", model=model)
    if "scores" in fair:
        for model in dict.fromkeys(c["model"]):
            s = fair["scores"]
            _fair_stopping(add, s[s["model"] == model], str(c["protocol"].iloc[0]), model)


METRIC_NAMES = {"chrf++": "chrF++", "bleu": "BLEU"}   # as the tables spell them


def _collapse(s, metric: str) -> tuple[float, float]:
    """(whole-continuation gain of the Adam ticket over the base model, 1 - first-line gain / whole gain)."""
    mean = lambda arm, rule: s.loc[s["arm"] == arm, f"{metric} {rule}"].mean()   # noqa: E731
    whole = mean("Adam ticket", "whole") - mean("base", "whole")
    first = mean("Adam ticket", "first_line") - mean("base", "first_line")
    return whole, (1 - first / whole if whole > 0 else float("nan"))


def _fair_stopping(add, s, protocol: str, model: str) -> None:
    """Descriptive, as the design states: the collapse of the Adam ticket's gain over the base model,
    1 - gain(first line) / gain(whole), from seed means, in chrF++ and (the replication's metric family) BLEU;
    reproduced when at least half the gain is stopping in both."""
    metrics = [m for m in ("chrf++", "bleu") if f"{m} whole" in s]
    found = {m: _collapse(s, m) for m in metrics}
    if not found or any(w != w for w, _ in found.values()):
        return
    if any(w <= 0 for w, _ in found.values()):   # 1 - first / whole has no meaning without a gain
        gains = ", ".join(f"{w:+.1f} {METRIC_NAMES[m]}" for m, (w, _) in found.items())
        add("stopping", f"on {model}, the Adam ticket gains nothing over the base model ({gains})",
            "not testable: no gain over the base model to decompose", "fair_test",
            "collapse = 1 - gain(first line) / gain(whole) needs a positive whole-continuation gain",
            protocol=protocol, evidence="arms", brief=f"no gain to decompose ({gains})", model=model)
        return
    text = "; ".join(f"{METRIC_NAMES[m]}: collapse {c:.2f} (gain {w:+.1f})" for m, (w, c) in found.items())
    add("stopping", f"on {model}, the collapse of the Adam ticket's gain: {text}",
        bool(all(c >= 0.5 for _, c in found.values())), "fair_test",
        "descriptive (no interval): collapse = 1 - gain(first line) / gain(whole), in chrF++ and BLEU (the "
        "replication measured spBLEU: BLEU is the nearest metric here); reproduced when at least half the gain is "
        "stopping in both", protocol=protocol, evidence="arms", brief=text, model=model)


def sgd_sizes(tables: dict) -> str:
    """What plain SGD gave where the design did not judge it: the sweep's en→ca snapshots with a Benjamini-Hochberg
    ticket of 12-18 rows, and the SGD ticket's sizes over the fair test's seeds."""
    parts = []
    sweep = tables.get("budget_sweep", {}).get("sweep")
    if sweep is not None and "bh_0.05" in sweep and (sweep["optimizer"] == "sgd").any():
        sgd = sweep[sweep["optimizer"] == "sgd"]
        in_band = int(sgd["bh_0.05"].between(12, 18).sum())
        parts.append(f"12–18 rows at {in_band} of {len(sgd)} sweep snapshots (en→ca, seed 0)")
    scores = tables.get("fair_test", {}).get("scores")
    if scores is not None and (scores["arm"] == "SGD ticket").any():
        rows = scores.loc[scores["arm"] == "SGD ticket", "rows"]
        parts.append(f"the fair test's SGD tickets {int(rows.min())}–{int(rows.max())} rows over {len(rows)} seeds")
    return f"; plain SGD (not judged): {', '.join(parts)}" if parts else ""


def budget_sizes(tables: dict) -> str:
    """Ticket size as a function of budget, per model: at how many of the sweep's Adam snapshots the
    Benjamini-Hochberg ticket holds the paper's 12–18 rows, and its range."""
    sweep = tables.get("budget_sweep", {}).get("sweep")
    if sweep is None or "bh_0.05" not in sweep:
        return ""
    adam = sweep[sweep["optimizer"] == "adamw"]
    groups = adam.groupby("model", sort=False) if "model" in adam else [("", adam)]
    parts = [f"{model + ': ' if model else ''}12–18 rows at {int(g['bh_0.05'].between(12, 18).sum())} of {len(g)} "
             f"Adam snapshots (sizes {int(g['bh_0.05'].min())}–{int(g['bh_0.05'].max())})" for model, g in groups]
    return "; budget sweep (en→ca, seed 0), " + "; ".join(parts)
