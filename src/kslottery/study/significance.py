"""The 18-token experiment with the paper's ticket: significance-defined, one per seed, at the budget the
budget sweep chose, against controls of the same size, compared arm to arm.

Every seed tunes the embedding at the chosen budget, runs KS discovery on its own rows and keeps its own
significance-defined ticket (``rule`` at ``alpha``, whatever size that is). The arms (:data:`ARMS`) are
branches of that trunk; :func:`compare_arms` turns their hypotheses into paired differences pooled over
seeds, with an equivalence test (TOST, margin stated in advance) for every "matches" claim.

    >>> r = experiment("gemma3-270m", "eng_Latn-cat_Latn", train_limit=512, batch_size=8, lr=1e-2, steps=8,
    ...                lr_full=2e-5, seeds=[0, 1, 2], eval_limit=100)                       # doctest: +SKIP
    >>> compare_arms(r, margin=1.0)                                                         # doctest: +SKIP
"""

from __future__ import annotations

import math

import pandas as pd

from ..method import data, evaluate
from ..method.errors import KSLError
from ..method.models import load_tokenizer
from ..method.ticket import PAPER_TICKET_SIZES, SIGNIFICANCE_RULES, decode_tokens, ks_from_rows, select
from ..method.tuned import TunedRun
from .arms import Arm, Trunk, plan
from .comparison import compare, paired_seeds
from .experiments import jaccard
from .protocol import Protocol

PAPER_K = 18   # the paper's en->ca ticket size, the book's earlier top-k

# The chapter's arms. Controls take the size of the seed's own ticket. A top-k ticket of the same size is
# not an arm: with every row's KS test on the same d values, p is a decreasing function of D, so the
# significance ticket *is* the top-|ticket| rows by D (the notebook checks it on every seed).
ARMS = [
    Arm("base", kind="base"),
    Arm("embed", mode="embed", lr="embed"),
    Arm("full", mode="full", lr="full", seeds="method_seeds"),
    Arm("KS ticket", mode="rows", ticket="ks", lr="rows"),
    Arm(f"top-{PAPER_K} by D", mode="rows", ticket=f"topk:{PAPER_K}", lr="rows"),
    Arm("most frequent", mode="rows", ticket="frequency", lr="rows"),
    Arm("frequency-matched", mode="rows", ticket="frequency-matched", lr="rows"),
    Arm("KS ticket without <bos>", mode="rows", ticket="without-bos", lr="rows"),
    Arm("<bos> alone", mode="rows", ticket="bos", lr="rows"),
    Arm("transfer of KS ticket", kind="transfer", ticket="ks"),
]
# Stated before any score: which differences the chapter tests, and which are equivalence claims.
# (a, b, equivalence?): the difference is score(b) - score(a).
COMPARISONS = [
    ("embed", "KS ticket", True),
    ("embed", "most frequent", True),
    ("most frequent", "KS ticket", False),
    ("frequency-matched", "KS ticket", False),
    (f"top-{PAPER_K} by D", "KS ticket", False),
    ("KS ticket", "KS ticket without <bos>", True),
    ("KS ticket", "transfer of KS ticket", False),
    ("embed", "full", False),
]
SGD_ARM = Arm("KS ticket, SGD discovery", mode="rows", ticket="ks", lr="rows", trunk="sgd")
SGD_COMPARISONS = [("embed", SGD_ARM.name, True), ("KS ticket", SGD_ARM.name, False)]


def experiment(model: str, pair: str, *, train_limit: int, batch_size: int, lr: float, steps: int,
               lr_full: float, seeds: list[int], eval_limit: int, method_seeds: list[int] | None = None,
               template: str = "explicit", rule: str = "bh", alpha: float = 0.05, sgd_lr: float | None = None,
               max_new_tokens: int = 96, eval_batch_size: int = 32, drop_finished: bool = False,
               progress: bool = True) -> dict:
    """Every arm at every seed, trained for ``steps`` optimizer steps of ``batch_size`` pairs from FLORES dev
    [:train_limit] (partial tuning at the embedding's ``lr``: the same budget) and scored on devtest
    [:eval_limit]. With ``sgd_lr``, one more arm tunes the ticket a plain-SGD embedding tuning finds.

    Returns {"scores": one row per arm x seed, "tickets": one row per seed x ticket arm (its tokens),
    "hyps": {(arm, seed): {rule: hypotheses}}, "refs", "tgt"}."""
    proto = Protocol(model=model, pair=pair, train_limit=train_limit, eval_limit=eval_limit, template=template,
                     batch_size=batch_size, max_new_tokens=max_new_tokens, eval_batch_size=eval_batch_size,
                     drop_finished=drop_finished, progress=progress)
    lrs = {"embed": lr, "rows": lr, "full": lr_full}
    seed_lists = {"seeds": seeds, "method_seeds": method_seeds or seeds}
    trunks = {"main": Trunk(proto, lrs, seed_lists, rule=rule, alpha=alpha, options={"max_steps": steps})}
    arms = list(ARMS)
    if sgd_lr is not None:
        trunks["sgd"] = Trunk(proto, {**lrs, "embed": sgd_lr}, seed_lists, rule=rule, alpha=alpha,
                              options={"max_steps": steps}, embed_options={"optimizer": "sgd"})
        arms.append(SGD_ARM)
    trunks["main"].require_tickets()
    branches = plan(trunks, arms)
    tok = load_tokenizer(model)
    rows, tickets, hyps = [], [], {}
    for b in branches:
        rec = proto.score(b.path)
        hyps[(b.arm, b.seed)] = evaluate.hypotheses(rec)
        row = {"arm": b.arm, "seed": b.seed, "rows": len(b.ticket) if b.ticket is not None else None}
        for rule_ in ("whole", "first_line"):
            row[f"chrf++ {rule_}"] = rec.chrf(rule_)
        row.update(bleu=rec.bleu(), eos_rate=rec.eos_rate,
                   mean_words=rec.mean_words(),
                   trainable_params=(b.run or {}).get("train", {}).get("n_trainable", 0), run=rec["run"],
                   trained=b.run["run"] if b.run else None)
        rows.append(row)
        if b.ticket is not None and b.arm != "transfer of KS ticket":
            tickets.append({"arm": b.arm, "seed": b.seed, "rows": len(b.ticket), "has <bos>": tok.bos_token_id in b.ticket,
                            "ids": list(b.ticket), "tokens": " ".join(decode_tokens(tok, b.ticket[:24]))
                            + (" ..." if len(b.ticket) > 24 else "")})
    bitext = data.load_flores(pair, "devtest", limit=eval_limit)
    return {"scores": pd.DataFrame(rows), "tickets": pd.DataFrame(tickets), "hyps": hyps, "refs": bitext.tgt,
            "tgt": bitext.tgt_lang, "trunks": trunks}


def compare_arms(result: dict, comparisons: list[tuple[str, str, bool]] | None = None, margin: float = 1.0,
                 rules: tuple[str, ...] = ("whole", "first_line"), n: int = 1000) -> pd.DataFrame:
    """Paired differences score(b) - score(a) in chrF++ over the seeds both arms ran (the base model and
    single-seed arms pair with every seed of the other arm), resampling seeds and sentences; equivalence
    rows carry the TOST verdict at ``margin``."""
    hyps = result["hyps"]
    arms_run = {a for a, _ in hyps}
    if comparisons is None:
        comparisons = COMPARISONS + (SGD_COMPARISONS if SGD_ARM.name in arms_run else [])
    seeds_of = {}
    for arm, seed in hyps:
        seeds_of.setdefault(arm, []).append(seed)
    out = []
    for a, b, equiv in comparisons:
        if a not in arms_run or b not in arms_run:
            raise KSLError(f"comparison {a} vs {b}: arm not run", f"run both arms (ran: {', '.join(sorted(arms_run, key=str))})")
        matched = paired_seeds(seeds_of[a], seeds_of[b])
        for rule in rules:
            r = compare([(hyps[(a, x)][rule], hyps[(b, y)][rule]) for x, y in matched], result["refs"],
                        result["tgt"], margin=margin if equiv else None, n=n)
            out.append({"a": a, "b": b, "rule": rule, "seeds": len(matched), "b - a": r["delta"],
                        "ci95 low": r["ci95"][0], "ci95 high": r["ci95"][1], "ci95 width": r["ci95_width"],
                        "differs (95 %)": r["superior"], "equivalence margin": margin if equiv else None,
                        "equivalent (TOST 5 %)": r.get("equivalent") if equiv else None, "per seed": r["per_seed"]})
    return pd.DataFrame(out)


def ticket_rules(result: dict, alphas: tuple[float, ...] = (0.05,)) -> pd.DataFrame:
    """Per trunk and seed: the ticket size under every rule, the largest D, and whether the significance
    ticket equals the top rows by D of the same size (it must, when every row has the same d)."""

    rows = []
    for name, t in result["trunks"].items():
        for s in t.seeds["seeds"]:
            run = TunedRun(t.embed(s)["path"])
            res = ks_from_rows(run.rows(), run.vocab_size)
            ticket = t.ticket(s)
            row = {"trunk": name, "seed": s, "rows changed": int(res.changed.sum()), "max D": float(res.statistic.max())}
            for a in alphas:
                for rule in SIGNIFICANCE_RULES:
                    row[f"{rule} {a:g}"] = len(select(res, rule, a))
            row["ticket = top rows by D"] = set(ticket) == set(select(res, "topk", k=len(ticket)).tolist()) if ticket else None
            rows.append(row)
    return pd.DataFrame(rows)


PAIR_ARMS = [Arm("base", kind="base"), Arm("embed", mode="embed", lr="embed"),
             Arm("KS ticket", mode="rows", ticket="ks", lr="rows")]


def six_pairs(model: str, pairs: list[str], *, train_limit: int, batch_size: int, lr: float, steps: int,
              eval_limit: int, seed: int = 0, template: str = "explicit", rule: str = "bh", alpha: float = 0.05,
              max_new_tokens: int = 96, eval_batch_size: int = 32, drop_finished: bool = False,
              progress: bool = True, score: bool = True) -> dict:
    """Per language pair, at one budget and seed: the ticket size under every rule beside the paper's, the
    base, embedding-tuned and ticket-tuned scores (not with ``score=False``: discovery only), and each ticket's
    rows (with which of them occur in every training example, i.e. the template's rows, shared by every pair by
    construction).

    Returns {"pairs": one row per pair, "tickets": {pair: ids}, "in_every_example": {pair: ids},
    "embed_runs": {pair: path}, "tokens": {id: token}}."""

    tok = load_tokenizer(model)
    rows, tickets, shared, embed_runs = [], {}, {}, {}
    for pair in pairs:
        proto = Protocol(model=model, pair=pair, train_limit=train_limit, eval_limit=eval_limit, template=template,
                         batch_size=batch_size, max_new_tokens=max_new_tokens, eval_batch_size=eval_batch_size,
                         drop_finished=drop_finished, progress=progress)
        trunk = Trunk(proto, {"embed": lr, "rows": lr}, {"seeds": [seed]}, rule=rule, alpha=alpha,
                      options={"max_steps": steps})
        embed_runs[pair] = trunk.embed(seed)["path"]
        run = TunedRun(embed_runs[pair])
        res = ks_from_rows(run.rows(), run.vocab_size)
        tgt = data.parse_pair(pair)[1]
        row = {"pair": pair, "paper size": PAPER_TICKET_SIZES.get(tgt), "rows changed": int(res.changed.sum())}
        for r in SIGNIFICANCE_RULES:
            row[f"{r} {alpha:g}"] = len(select(res, r, alpha))
        ticket = trunk.ticket(seed)
        if not score:
            branches = []
        elif ticket:
            branches = plan(trunk, PAIR_ARMS)
        else:   # nothing significant: no ticket to tune, the pair still shows its sizes and base score
            branches = plan(trunk, PAIR_ARMS[:2])
        for b in branches:
            rec = proto.score(b.path)
            row[f"chrf++ {b.arm}"] = rec.chrf("whole")
            row[f"chrf++ first line, {b.arm}"] = rec.chrf("first_line")
        counts = trunk.counts(seed)
        every = set.intersection(*(set(e["input_ids"]) for e in trunk.seen(seed)))
        tickets[pair], shared[pair] = ticket, sorted(every & set(ticket))
        row.update({"ticket rows in every example": len(shared[pair]), "has <bos>": tok.bos_token_id in ticket,
                    "ticket tokens": " ".join(decode_tokens(tok, ticket[:12])) + (" ..." if len(ticket) > 12 else ""),
                    "seen tokens": len(counts)})
        rows.append(row)
    ids = sorted({i for t in tickets.values() for i in t})
    return {"pairs": pd.DataFrame(rows), "tickets": tickets, "in_every_example": shared, "embed_runs": embed_runs,
            "tokens": dict(zip(ids, decode_tokens(tok, ids)))}


def seed_overlap(model: str, pair: str, seeds: list[int], *, train_limit: int, batch_size: int, lr: float,
                 steps: int, template: str = "explicit", rule: str = "bh", alpha: float = 0.05,
                 progress: bool = False) -> dict:
    """One pair's tickets under several seeds at one budget, each seed tuning on its own draw of sentences: the
    reference the six pairs' overlap is read against. At the fair test's pair, budget and seeds these are the
    fair test's discovery runs, reused (same parameters, same run hashes), so the reference shares its protocol.

    Returns {"tickets": {seed: ids}, "overlap": Jaccard matrix, "mean": its mean off the diagonal}."""

    if len(seeds) < 2:
        raise KSLError(f"seed overlap needs two seeds or more, got {list(seeds)}", "list at least two seeds")
    proto = Protocol(model=model, pair=pair, train_limit=train_limit, eval_limit=0, template=template,
                     batch_size=batch_size, progress=progress)
    trunk = Trunk(proto, {"embed": lr}, {"seeds": list(seeds)}, rule=rule, alpha=alpha, options={"max_steps": steps})
    tickets = {s: trunk.ticket(s) for s in seeds}
    overlap = jaccard({f"seed {s}": t for s, t in tickets.items()})
    return {"tickets": tickets, "overlap": overlap, "mean": mean_off_diagonal(overlap)}


def mean_off_diagonal(m: pd.DataFrame) -> float:
    """The mean of a square matrix's off-diagonal cells (a pairwise overlap without each set's overlap with
    itself); nan for a 1x1 matrix."""
    import numpy as np

    a = m.to_numpy(dtype=float)
    off = a[~np.eye(len(a), dtype=bool)]
    return float(off.mean()) if off.size else float("nan")


def precision(result: dict, comparisons: pd.DataFrame, arms: tuple[str, str], max_width: float,
              rule: str = "whole", n: int = 1000) -> dict:
    """The width of one comparison's 95 % interval against the design's ``max_width``, and what would bring
    it there: more sentences, or more seeds.

    Each seed's difference is the true one plus a seed effect (variance tau2) plus sentence noise (sigma2 at
    these sentences, measured by a bootstrap over sentences within each seed); the pooled interval's
    variance is (tau2 + sigma2) / seeds. More sentences shrink only sigma2, so when the seeds differ by more
    than their sentences explain, no number of sentences reaches the width: the answer is seeds. Widths for
    other designs scale the measured one by this model."""

    import numpy as np

    r = comparisons[(comparisons["a"] == arms[0]) & (comparisons["b"] == arms[1]) & (comparisons["rule"] == rule)]
    if r.empty:
        raise KSLError(f"no comparison {arms[1]} vs {arms[0]} under rule {rule}", "compare those arms first")
    seeds = sorted({s for a, s in result["hyps"] if a == arms[0]} & {s for a, s in result["hyps"] if a == arms[1]},
                   key=str)
    if len(seeds) < 2:
        raise KSLError(f"{arms[1]} vs {arms[0]}: {len(seeds)} common seed(s)", "a seed spread needs two seeds or more")
    width, sentences = float(r["ci95 width"].iloc[0]), len(result["refs"])
    z = 2 * 1.959964
    single = [compare([(result["hyps"][(arms[0], s)][rule], result["hyps"][(arms[1], s)][rule])], result["refs"],
                      result["tgt"], n=n) for s in seeds]
    per_seed = np.array([c["delta"] for c in single])
    sigma2 = float(np.mean([(c["ci95_width"] / z) ** 2 for c in single]))
    tau2 = max(float(per_seed.var(ddof=1)) - sigma2, 0.0)
    k = len(seeds)

    def model(n_seeds: int, n_sentences: int) -> float:   # the interval's variance under the two components
        return (tau2 + sigma2 * sentences / n_sentences) / n_seeds

    def width_at(n_seeds: int, n_sentences: int) -> float:
        return width * math.sqrt(model(n_seeds, n_sentences) / model(k, sentences)) if model(k, sentences) else 0.0

    target = model(k, sentences) * (max_width / width) ** 2 if width else float("inf")
    if width <= max_width:
        more_sentences, more_seeds = sentences, k
    else:
        more_sentences = math.ceil(sigma2 * sentences / (k * target - tau2)) if k * target > tau2 else None
        more_seeds = math.ceil((tau2 + sigma2) / target)
    return {"comparison": f"{arms[1]} - {arms[0]} ({rule})", "seeds": k, "sentences": sentences,
            "ci95 width": width, "max width": max_width, "within": width <= max_width,
            "seed sd (beyond sentences)": math.sqrt(tau2), "one seed's sentence-only width": z * math.sqrt(sigma2),
            "sentences for the width": more_sentences, "seeds for the width": more_seeds,
            "width with one more seed": width_at(k + 1, sentences)}
