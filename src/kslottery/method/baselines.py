"""Control tickets: random rows, frequency-matched random rows, the most frequent tokens, the earliest-seen
rows, single rows.

Each returns a :class:`~kslottery.method.ticket.Ticket`, so every control goes through the same partial tuning
and transfer code as a KS ticket. Candidates are the rows seen in training (the only rows embedding
tuning can move).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .errors import KSLError
from .ticket import Ticket, decode_tokens


def token_counts(examples: list[dict]) -> Counter:
    """How often each id occurs in the training inputs (prompt and target)."""
    return Counter(t for e in examples for t in e["input_ids"])


def _check(k: int, counts: Counter) -> None:
    if k < 1 or k > len(counts):
        raise KSLError(f"ticket size {k} is outside 1..{len(counts)} (rows seen in training)", "choose a smaller k")


def random_ticket(counts: Counter, k: int, seed: int = 0, tokenizer=None) -> Ticket:
    """k rows drawn uniformly from the rows seen in training."""
    _check(k, counts)
    ids = sorted(np.random.default_rng(seed).choice(sorted(counts), size=k, replace=False).tolist())
    return Ticket(ids=ids, rule=f"random-seed{seed}", tokens=decode_tokens(tokenizer, ids))


def frequency_ticket(counts: Counter, k: int, tokenizer=None) -> Ticket:
    """The k most frequent training tokens (ties by smaller id)."""
    _check(k, counts)
    ids = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    return Ticket(ids=ids, rule="frequency", tokens=decode_tokens(tokenizer, ids))


def frequency_matched_ticket(reference: list[int], counts: Counter, seed: int = 0, tokenizer=None) -> Ticket:
    """For each reference row, a random other seen row of about the same training frequency
    (drawn among the 5 nearest in frequency rank), so frequency alone cannot explain a difference."""
    ranked = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rank = {i: r for r, i in enumerate(ranked)}
    rng = np.random.default_rng(seed)
    taken = set(reference)
    ids = []
    for ref in reference:
        r = rank.get(ref, len(ranked) - 1)
        pool = sorted((j for j in ranked if j not in taken), key=lambda j: (abs(rank[j] - r), j))[:5]
        if not pool:
            raise KSLError("not enough seen rows to match the reference ticket", "use a smaller ticket")
        pick = int(rng.choice(pool))
        taken.add(pick)
        ids.append(pick)
    return Ticket(ids=sorted(ids), rule=f"frequency-matched-seed{seed}", tokens=decode_tokens(tokenizer, sorted(ids)))


def single_row_ticket(token_id: int, tokenizer=None) -> Ticket:
    return Ticket(ids=[int(token_id)], rule="single", tokens=decode_tokens(tokenizer, [token_id]))


def first_gradient_step(examples: list[dict], batches: list[list[int]], grad_accum: int = 1) -> dict[int, int]:
    """Per token id: the first optimizer step (1-based) whose batch contains it, i.e. the step at which its row
    first receives a gradient. ``batches`` are the micro-batches in training order (``tuning.batch_order``)."""
    first: dict[int, int] = {}
    for micro_index, micro in enumerate(batches):
        step = micro_index // grad_accum + 1
        for i in micro:
            for t in examples[i]["input_ids"]:
                first.setdefault(t, step)
    return first


def earliest_ticket(examples: list[dict], batches: list[list[int]], k: int, grad_accum: int = 1,
                    tokenizer=None) -> Ticket:
    """The exposure control: the k rows whose first gradient came first. Under Adam a row's first update has
    the same size whatever its gradient, so the rows seen earliest have moved longest; if a KS ticket is no
    more than this list, it measures exposure, not importance. Ties (rows first seen in the same step) go to
    the more frequent training token, then the smaller id."""
    counts = token_counts(examples)
    _check(k, counts)
    first = first_gradient_step(examples, batches, grad_accum)
    ids = sorted(first, key=lambda i: (first[i], -counts[i], i))[:k]
    return Ticket(ids=ids, rule="earliest-seen", tokens=decode_tokens(tokenizer, ids))
