"""Tickets: which embedding rows a selection rule keeps, and the record that says how.

Selection happens over the *candidate* rows, those that changed in tuning (an untouched row has
D = 0 and p = 1 and can never be significant; counting it would only loosen Bonferroni and BH).

Rules (the paper does not publish its own, so each is a parameter):
- ``alpha``: p < alpha, uncorrected;
- ``bonferroni``: p < alpha / n_candidates;
- ``bh``: Benjamini-Hochberg at false-discovery rate alpha;
- ``topk``: the k largest D.
Ties are broken deterministically: larger D first, then smaller p, then smaller id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import KSLError
from .ks import KSResult, ks_test

# the rules and their one spelling live in .rules (no torch: a profile is checked against them before it loads)
from .rules import RULE_NAMES, RULES, SIGNIFICANCE_RULES, Rule  # noqa: F401

PAPER_TICKET_SIZES = {"cat_Latn": 18, "spa_Latn": 18, "ron_Latn": 15, "dan_Latn": 12, "deu_Latn": 15, "por_Latn": 17}


@dataclass
class Ticket:
    ids: list[int]
    rule: str
    alpha: float | None = None
    k: int | None = None
    tokens: list[str] = field(default_factory=list)
    statistic: list[float] = field(default_factory=list)
    pvalue: list[float] = field(default_factory=list)
    n_candidates: int | None = None
    n_unchanged: int | None = None
    n_rows: int | None = None
    d: int | None = None
    method: str | None = None
    model: str | None = None
    data_sha256: str | None = None
    code_version: str | None = None
    # What the ids mean: the vocabulary they index and the tokenizer that names them (tickets written before
    # these fields existed have None and are checked by their model alone), and the tune run they came from.
    vocab_size: int | None = None
    tokenizer_sha256: str | None = None
    tune_run: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Ticket":
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise KSLError(f"cannot read a ticket from {path} ({type(e).__name__})",
                           "give a ticket JSON written by `kslottery ks`") from None

    def to_peft_config(self, target_modules: str | list[str] = "embed_tokens"):
        """A PEFT ``TrainableTokensConfig`` that trains exactly these rows."""
        from peft import TrainableTokensConfig

        return TrainableTokensConfig(token_indices=list(self.ids), target_modules=target_modules)


def tokenizer_fingerprint(tokenizer) -> str:
    """The sha256 of a tokenizer's vocabulary (every piece and its id): equal fingerprints mean every id names
    the same token, which is what a ticket's ids need to mean the same thing."""
    pieces = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(pieces, ensure_ascii=False).encode()).hexdigest()


def check_ticket_model(spec, model: str | None, vocab: int | None = None, tokenizer=None) -> None:
    """Refuse a ticket file discovered on another model: its ids would name other rows, or other tokens.
    Ids given directly carry no model and are only range-checked (:func:`ticket_ids`)."""
    if isinstance(spec, (list, tuple)) or not spec or not _is_file(str(spec)) or model is None:
        return
    t = Ticket.load(spec)
    name = Path(spec).name
    fix = f"use a ticket that `kslottery ks` found on a tune run of {model}"
    if t.model is not None and t.model != model:
        raise KSLError(f"ticket {name} was discovered on {t.model!r}, not {model!r}", fix)
    if t.vocab_size is not None and vocab is not None and t.vocab_size != vocab:
        raise KSLError(f"ticket {name} indexes a vocabulary of {t.vocab_size:,} rows, not {vocab:,}", fix)
    if t.tokenizer_sha256 and tokenizer is not None and t.tokenizer_sha256 != tokenizer_fingerprint(tokenizer):
        raise KSLError(f"ticket {name} was discovered with another tokenizer than {model!r} has now", fix)


def decode_tokens(tokenizer, ids) -> list[str]:
    return [tokenizer.convert_ids_to_tokens(int(i)) for i in ids] if tokenizer is not None else []


def _order(statistic: np.ndarray, pvalue: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices into ``ids``: larger D, then smaller p, then smaller id first."""
    return np.lexsort((ids, pvalue, -statistic))


def select(ks: KSResult, rule: str, alpha: float = 0.05, k: int | None = None) -> np.ndarray:
    """Selected row ids (in the tie-break order) among the rows that changed."""
    if rule not in RULES:
        raise KSLError(f"unknown selection rule {rule!r}", f"use one of {', '.join(RULES)}")
    if rule == "topk" and (k is None or k < 1):
        raise KSLError("rule topk needs k >= 1", "pass --k N")
    if rule != "topk" and not 0 < alpha < 1:
        raise KSLError(f"alpha must be in (0, 1), got {alpha}", "pass e.g. --alpha 0.05")
    cand = np.flatnonzero(ks.changed.numpy())
    D = ks.statistic.numpy()[cand]
    p = ks.pvalue.numpy()[cand]
    order = _order(D, p, cand)
    cand, D, p = cand[order], D[order], p[order]
    m = len(cand)
    if rule == "topk":
        return cand[:k]
    if rule == "alpha":
        keep = p < alpha
    elif rule == "bonferroni":
        keep = p < alpha / max(m, 1)
    else:  # Benjamini-Hochberg: the largest i with p_(i) <= i alpha / m, and every p at or below it
        ranked = np.sort(p)
        ok = np.flatnonzero(ranked <= alpha * np.arange(1, m + 1) / max(m, 1))
        keep = p <= ranked[ok[-1]] if len(ok) else np.zeros(m, bool)
    return cand[keep]


def make_ticket(ks: KSResult, rule: str, alpha: float = 0.05, k: int | None = None, tokenizer=None,
                **provenance) -> Ticket:
    ids = select(ks, rule, alpha, k)
    n_cand = int(ks.changed.sum())
    return Ticket(ids=[int(i) for i in ids], rule=rule, alpha=None if rule == "topk" else alpha,
                  k=k if rule == "topk" else None, tokens=decode_tokens(tokenizer, ids),
                  statistic=[float(ks.statistic[i]) for i in ids], pvalue=[float(ks.pvalue[i]) for i in ids],
                  n_candidates=n_cand, n_unchanged=len(ks.changed) - n_cand, n_rows=len(ks.changed),
                  d=ks.d, method=ks.method, **provenance)


def ks_from_rows(rows: dict, vocab_size: int, method: str = "auto") -> KSResult:
    """KS over the whole vocabulary from a tune run's changed rows; every other row has D = 0, p = 1."""
    import torch


    # On a GPU machine (the paper profile) the rows go to CUDA, where ks_counts uses its sort-based kernel.
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    part = ks_test(rows["before"].to(dev), rows["after"].to(dev), method=method)
    d = rows["before"].shape[1]
    D = torch.zeros(vocab_size, dtype=torch.float64)
    p = torch.ones(vocab_size, dtype=torch.float64)
    k = torch.zeros(vocab_size, dtype=torch.int32)
    changed = torch.zeros(vocab_size, dtype=torch.bool)
    ids = rows["ids"].long()
    D[ids], p[ids], k[ids], changed[ids] = part.statistic, part.pvalue, part.k, part.changed
    return KSResult(statistic=D, pvalue=p, k=k, changed=changed, d=d, method=method)


def _is_file(spec: str) -> bool:
    try:
        return Path(spec).is_file()
    except OSError:   # a few hundred comma-joined ids are longer than a file name may be
        return False


def ticket_ids(spec, vocab: int | None = None) -> list[int]:
    """Sorted token ids from a ticket JSON, ``"13,263,278"`` or a sequence of ids, checked against ``vocab``
    rows when known. A run is named by these ids, whichever form they came in."""

    if isinstance(spec, (list, tuple)):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
            raise KSLError(f"ticket {spec!r} holds something other than token ids", "give integer ids")
        ids = sorted(set(spec))
    elif not spec or not str(spec).strip():
        raise KSLError("no ticket given", "pass --ticket TICKET.json (from `kslottery ks`) or ids like 13,263")
    elif _is_file(spec):
        loaded = Ticket.load(spec).ids
        if not isinstance(loaded, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in loaded):
            bad = loaded if not isinstance(loaded, list) else next(i for i in loaded if not isinstance(i, int) or
                                                                  isinstance(i, bool))
            raise KSLError(f"ticket {spec} holds an id that is not an integer ({bad!r})",
                           "give a ticket JSON written by `kslottery ks` (its ids are token row numbers)")
        ids = sorted(set(loaded))
    else:
        try:
            ids = sorted({int(t) for t in spec.split(",") if t.strip()})
        except ValueError:
            raise KSLError(f"ticket {spec!r} is neither a file nor comma-separated ids",
                           "pass a ticket JSON written by `kslottery ks` or ids like 13,263") from None
    if not ids:
        raise KSLError("the ticket is empty", "give at least one token id")
    if ids[0] < 0:
        raise KSLError(f"ticket id {ids[0]} is negative", "token ids are row numbers 0, 1, 2, ...")
    if vocab is not None and ids[-1] >= vocab:
        raise KSLError(f"ticket id {ids[-1]} is outside the vocabulary ({vocab:,} rows)",
                       "use a ticket made for this model's tokenizer")
    return ids
