"""The paper's six pairs: each pair's KS ticket at one discovery budget and seed, its size beside the paper's,
and how much the pairs' tickets overlap against the overlap of one pair's tickets across seeds.

    >>> r = experiment("gemma3-270m", ["eng_Latn-cat_Latn", "eng_Latn-deu_Latn"], train_limit=512, batch_size=8,
    ...                lr=1e-2, steps=8, eval_limit=100, score=False)                      # doctest: +SKIP
    >>> mean_off_diagonal(jaccard(r["tickets"]))                                             # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import data
from ..method.errors import KSLError
from ..method.models import load_tokenizer
from ..method.ticket import PAPER_TICKET_SIZES, SIGNIFICANCE_RULES, decode_tokens, select
from .arms import Trunk, arms, compute, jobs, prefetch
from .recipe import Recipe

PAIR_ARMS = ("base", "embedding tuning", "Adam ticket")   # registry names; a pair without a ticket runs the first two


def experiment(model: str, pairs: list[str], *, train_limit: int, batch_size: int, lr: float, steps: int,
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
    protos = [Recipe(model=model, pair=pair, train_limit=train_limit, eval_limit=eval_limit, template=template,
                     batch_size=batch_size, max_new_tokens=max_new_tokens, eval_batch_size=eval_batch_size,
                     drop_finished=drop_finished, progress=progress) for pair in pairs]
    trunks = [Trunk(proto, {"embed": lr, "rows": lr}, {"seeds": [seed]}, rule=rule, alpha=alpha,
                    options={"max_steps": steps}) for proto in protos]
    # the stages: every pair's embedding tuning at once, each pair's ticket here, every pair's arms at once, their scores
    prefetch([(trunk, seed) for trunk in trunks])
    # a pair without a ticket (nothing significant) still shows its sizes and base score
    todo = [jobs(trunk, arms(*(PAIR_ARMS if trunk.ticket(seed) else PAIR_ARMS[:2]))) if score else [] for trunk in trunks]
    done = compute([job for pair_jobs in todo for job in pair_jobs])
    of = [proto for proto, pair_jobs in zip(protos, todo) for _ in pair_jobs]   # each branch's pair's recipe
    recs = protos[0].score_all([proto.eval_config(b.path) for proto, b in zip(of, done)])
    at = 0
    for pair, trunk, pair_jobs in zip(pairs, trunks, todo):
        embed_runs[pair] = trunk.embed(seed)["path"]
        res = trunk.discovery(seed).result()
        tgt = data.parse_pair(pair)[1]
        row = {"pair": pair, "paper size": PAPER_TICKET_SIZES.get(tgt), "rows changed": int(res.changed.sum())}
        for r in SIGNIFICANCE_RULES:
            row[f"{r} {alpha:g}"] = len(select(res, r, alpha))
        ticket = trunk.ticket(seed)
        for b, rec in zip(done[at:at + len(pair_jobs)], recs[at:at + len(pair_jobs)]):
            row[f"chrf++ {b.arm}"] = rec.chrf("whole")
            row[f"chrf++ first line, {b.arm}"] = rec.chrf("first_line")
        at += len(pair_jobs)
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
    proto = Recipe(model=model, pair=pair, train_limit=train_limit, eval_limit=0, template=template,
                     batch_size=batch_size, progress=progress)
    trunk = Trunk(proto, {"embed": lr}, {"seeds": list(seeds)}, rule=rule, alpha=alpha, options={"max_steps": steps})
    tickets = {s: trunk.ticket(s) for s in seeds}
    overlap = jaccard({f"seed {s}": t for s, t in tickets.items()})
    return {"tickets": tickets, "overlap": overlap, "mean": mean_off_diagonal(overlap)}


def mean_off_diagonal(m: pd.DataFrame) -> float:
    """The mean of a square matrix's off-diagonal cells (a pairwise overlap without each set's overlap with
    itself); nan for a 1x1 matrix."""
    a = m.to_numpy(dtype=float)
    off = a[~np.eye(len(a), dtype=bool)]
    return float(off.mean()) if off.size else float("nan")


def jaccard(sets: dict[str, list[int]]) -> pd.DataFrame:
    """Pairwise Jaccard overlap |a & b| / |a | b| of labelled sets (1 on the diagonal; 0 for two empty sets)."""
    labels = list(sets)
    m = [[len(set(sets[a]) & set(sets[b])) / max(len(set(sets[a]) | set(sets[b])), 1) for b in labels] for a in labels]
    return pd.DataFrame(m, index=labels, columns=labels)
