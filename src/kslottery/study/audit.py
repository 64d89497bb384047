"""The audit of the headline: how much of a gain is stopping, how much survives another prompt, which
controls match it, and how stable the ticket is.

An independent replication of the paper found that tuned rows mostly teach the model to stop, that the
gain is keyed to the fixed prompt template, and that a single row suffices. Each function here measures
one of those claims on the study's own runs (shared with the headline through :class:`Protocol`):

- :func:`termination`: every arm's gain under the whole-continuation, first-line and field-restart
  rules, and its *collapse* 1 - gain(first line) / gain(whole), with paired-bootstrap intervals;
- :func:`template_transfer`: deltas trained under one template scored under every template;
- :func:`ticket_stability`: overlap of tickets across seeds, templates and languages.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import pandas as pd

from ..method import data, evaluate, metrics
from ..method.discovery import DiscoveryConfig, discover
from ..method.errors import KSLError
from ..method.models import load_tokenizer
from .arms import Branch, Trunk, catalogue, plan
from .experiments import jaccard
from .protocol import Protocol

RULES = ("whole", "first_line", "field_restart")


def stop_rows(tokenizer) -> dict[str, list[int]]:
    """Single-row (or two-row) tickets that can only teach stopping: the newline, ':', BOS and EOS rows."""
    out = {}
    for name, text in (("newline row", "\n"), ("':' row", ":")):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise KSLError(f"{text!r} is not one token for this tokenizer", "choose stop rows by id")
        out[name] = ids
    special = [i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id) if i is not None]
    out["BOS+EOS rows"] = sorted(set(special))
    return out


def arms(p: Protocol, lr_embed: float, lr_rows: float, k: int, seeds: list[int], audit_seeds: list[int],
         random_draws: int, matched_draws: int | None = None) -> list[Branch]:
    """Train (or reuse) every audited arm: one :class:`~kslottery.study.arms.Branch` per arm and seed (or draw).

    ``seeds``: the headline arms (embedding tuning, the KS ticket and its transfer, shared with the
    headline notebook); ``audit_seeds``: the stopping rows and the transfer controls; ``random_draws``
    uniform random tickets (shared with the headline) and ``matched_draws`` (default: as many)
    frequency-matched ones, matched to the first seed's ticket."""

    stops = stop_rows(load_tokenizer(p.model))
    known = catalogue(k, fixed=tuple(stops))
    names = ["base", "base + newline stop", "embed", f"KS top-{k}", *stops, f"random-{k}",
             f"frequency-matched-{k}", f"transfer KS top-{k}", "transfer, norm-matched random delta",
             "transfer, delta x 0.5", "transfer, delta x 2"]
    chosen = [replace(known[n], seeds="audit_seeds") if n in stops else known[n] for n in names]
    trunk = Trunk(p, {"embed": lr_embed, "rows": lr_rows},
                  {"seeds": seeds, "audit_seeds": audit_seeds, "draws": list(range(random_draws)),
                   "matched_draws": list(range(random_draws if matched_draws is None else matched_draws))},
                  rule="topk", k=k, fixed=stops)
    return plan(trunk, chosen)


def termination(p: Protocol, plan, n: int = 1000) -> pd.DataFrame:
    """Gain decomposition of every arm against the base model (chrF++, paired bootstrap over sentences)."""
    refs = data.load_flores(p.pair, "devtest", limit=p.eval_limit).tgt
    tgt = data.parse_pair(p.pair)[1]
    base = evaluate.hypotheses(p.score())
    rows = []
    for b in plan:
        arm, seed = b.arm, b.seed
        rec = p.score(b.path, **b.score)
        term = rec["termination"]
        row = {"arm": arm, "seed": seed, "eos_rate": term["eos_rate"], "cap_rate": term["cap_rate"],
               "mean_words": rec.mean_words(), "run": rec["run"]}
        for rule in RULES:
            row[f"chrf++ {rule}"] = rec.chrf(rule)
        if arm != "base":
            dec = metrics.gain_decomposition(base, evaluate.hypotheses(rec), refs, tgt, n=n)
            for rule in RULES:
                row[f"gain {rule}"] = dec[rule]["gain"]
                row[f"gain {rule} ci"] = tuple(dec[rule]["ci95"])
            row["collapse"] = dec["collapse"]["value"]
            row["collapse ci"] = tuple(dec["collapse"]["ci95"])
        rows.append(row)
    return pd.DataFrame(rows)


def collapse_summary(term: pd.DataFrame) -> dict:
    """How many tuned runs' collapse intervals contain 0 (their gain survives the first-line rule), and the
    largest |whole-continuation gain| among those whose interval excludes 0: near 0 the ratio is noise, so a
    reader needs that gain to tell a real collapse from an undefined one."""
    tuned = term[term["arm"] != "base"].dropna(subset=["collapse"])
    cis = [(g, ci) for g, ci in zip(tuned["gain whole"], tuned["collapse ci"]) if ci and ci[0] is not None]
    inside = [lo <= 0 <= hi for _, (lo, hi) in cis]
    outside = [abs(g) for (g, _), keep in zip(cis, inside) if not keep]
    return {"contains0": sum(inside), "runs": len(inside), "excludes0_max_gain": max(outside, default=0.0)}


def template_gains(tt: pd.DataFrame, trained: str, rule: str = "first_line") -> pd.Series:
    """One trained delta's gain over the base model under each template (:func:`template_transfer`'s table)."""
    rows = tt[tt["trained"] == trained]
    if rows.empty:
        raise KSLError(f"no delta trained as {trained!r} in the template table",
                       f"pick one of {sorted(tt['trained'].unique())}")
    return rows.set_index("template")[f"gain {rule}"]


def template_transfer(p: Protocol, lr_embed: float, lr_rows: float, k: int, templates: list[str],
                      seed: int = 0) -> pd.DataFrame:
    """chrF++ (whole and first line) of deltas trained under the protocol's template, and under sampled
    instruction paraphrases, scored under every template, with the base model under the same template."""
    trained = {"base": None}
    emb = p.tune(mode="embed", lr=lr_embed, seed=seed)
    ticket = discover(DiscoveryConfig(tuned=emb["path"], k=k))
    trained[f"embed ({p.template})"] = emb
    trained[f"KS top-{k} ({p.template})"] = p.tune(mode="rows", ticket=ticket.ticket_file(f"topk-{k}"),
                                                   lr=lr_rows, seed=seed)
    trained["embed (sampled paraphrases)"] = p.tune(mode="embed", lr=lr_embed, seed=seed, template="sampled-paraphrases")
    rows = []
    for label, run in trained.items():
        for t in templates:
            rec = p.score(run["path"] if run else None, template=t)
            rows.append({"trained": label, "template": t, "chrf++ whole": rec.chrf("whole"),
                         "chrf++ first_line": rec.chrf("first_line"),
                         "eos_rate": rec.eos_rate, "run": rec["run"]})
    df = pd.DataFrame(rows)
    base = df[df["trained"] == "base"].set_index("template")
    for rule in ("whole", "first_line"):
        df[f"gain {rule}"] = df[f"chrf++ {rule}"] - df["template"].map(base[f"chrf++ {rule}"])
    return df


def ticket_stability(p: Protocol, lr_embed: float, k: int, seeds: list[int], templates: list[str],
                     pairs: list[str]) -> tuple[pd.DataFrame, dict]:
    """Top-k tickets from embedding tuning across seeds, training templates and language pairs; returns
    (Jaccard matrix, summary: the mean overlap between seeds, and the mean overlap across templates and
    across languages with seed 0). The template and language tickets keep seed 0, hence its data order, so
    they can overlap seed 0 more than another seed does: the between-seed overlap is no ceiling for them."""


    def ticket(**kw):
        rec = discover(DiscoveryConfig(tuned=p.tune(mode="embed", lr=lr_embed, **kw)["path"], k=k))
        return rec["tickets"][f"topk-{k}"]["ids"]

    sets = {f"seed {s}": ticket(seed=s) for s in seeds}
    for t in templates:
        if t != p.template:
            sets[f"template {t}"] = ticket(seed=seeds[0], template=t)
    for pair in pairs:
        if pair != p.pair:
            sets[f"pair {pair}"] = ticket(seed=seeds[0], pair=pair)
    m = jaccard(sets)

    def mean(labels_a, labels_b=None):
        pairs_ = combinations(labels_a, 2) if labels_b is None else [(a, b) for a in labels_a for b in labels_b]
        vals = [m.loc[a, b] for a, b in pairs_]
        return float(sum(vals) / len(vals)) if vals else float("nan")

    seed_labels = [f"seed {s}" for s in seeds]
    other_t = [label for label in sets if label.startswith("template")]
    other_p = [label for label in sets if label.startswith("pair")]
    summary = {"between seeds (mean Jaccard)": mean(seed_labels),
               "across templates (vs seed 0)": mean([seed_labels[0]], other_t),
               "across languages (vs seed 0)": mean([seed_labels[0]], other_p)}
    return m, summary
