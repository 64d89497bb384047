"""The fair test's design: everything that governs a score, stated before the score is computed.

One :class:`Design` per profile (the ``protocol:`` block of ``profiles/<name>.yaml``), committed before any
run it governs; the chapters read it and never change it after seeing scores. It fixes:

- **budgets**: tickets are *discovered* from a short embedding tuning chosen by a stated rule (the smallest
  snapshot of the budget sweep whose Benjamini-Hochberg ticket holds ``min_ticket`` rows, applied to the
  Adam and to the plain-SGD snapshots separately), and every *trained* arm trains on the same ``train_pairs``
  FLORES dev pairs for ``epochs`` at **its own learning rate**;
- **learning rates**: one grid per arm family (embedding, rows, full), each chosen by the mean chrF++ on
  ``dev_sentences`` held-out dev pairs (after the training pairs; devtest is never read) over
  ``selection_seeds``;
- **arms, seeds and sentences**: primary arms on ``seeds`` (their number from the precision calculation in
  the method chapter), secondary arms on ``secondary_seeds``, full fine-tuning on ``full_seeds``; every score
  on the first ``test_sentences`` of devtest;
- **comparisons and verdicts**: the primary comparisons (equivalence at ``margin`` chrF++ by TOST, and the
  difference), the secondary ones (Holm-corrected), each judged by :mod:`kslottery.study.verdicts` from the
  union of the seed-level t interval and the two-level bootstrap (the smallest interval holding both);
- **stopping**: no seed or sentence is added after the first score; a comparison whose interval is too wide
  stays inconclusive.

    >>> d = Design.from_profile({"protocol": {"name": "fair-v1", "seeds": [0, 1, 2, 3]}})
    >>> d.name, d.seeds, d.lr_grids["embed"]
    ('fair-v1', (0, 1, 2, 3), (0.0003, 0.001, 0.003))
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from ..method.errors import KSLError
from ..method.ticket import Rule
from .arms import REGISTRY

FAMILIES = ("embed", "rows", "full")
# The fair test's arms, by their names in the registry (kslottery.study.arms.REGISTRY, which holds each arm's family,
# ticket source and seed list: primary arms run on ``seeds``, the others on ``secondary_seeds`` or ``full_seeds``).
# The SGD ticket is discovered by plain SGD; each control takes the size of the seed's Adam ticket.
ARMS = ("embedding tuning", "full fine-tuning", "Adam ticket", "SGD ticket", "earliest-seen rows", "most frequent rows",
        "frequency-matched rows", "top-18 by D", "<bos> row", "':' row", "partial transfer, Adam ticket",
        "partial transfer, SGD ticket")
# (a, b, kind): the difference is score(b) - score(a); "equivalence" claims are TOST at the margin.
PRIMARY = (
    ("embedding tuning", "Adam ticket", "equivalence"),
    ("embedding tuning", "SGD ticket", "equivalence"),
    ("embedding tuning", "top-18 by D", "equivalence"),      # the paper's headline: 18 rows match the embedding
    ("embedding tuning", "earliest-seen rows", "equivalence"),
)
SECONDARY = (
    ("full fine-tuning", "embedding tuning", "equivalence"),
    ("full fine-tuning", "Adam ticket", "equivalence"),
    ("full fine-tuning", "SGD ticket", "equivalence"),
    ("full fine-tuning", "earliest-seen rows", "equivalence"),   # added before any devtest score (see the profile)
    ("earliest-seen rows", "Adam ticket", "superiority"),
    ("most frequent rows", "Adam ticket", "superiority"),
    ("frequency-matched rows", "Adam ticket", "superiority"),
    ("frequency-matched rows", "SGD ticket", "superiority"),
    ("embedding tuning", "most frequent rows", "equivalence"),
    ("top-18 by D", "Adam ticket", "superiority"),
    ("<bos> row", "Adam ticket", "superiority"),
    ("':' row", "Adam ticket", "superiority"),
    ("Adam ticket", "partial transfer, Adam ticket", "superiority"),
    ("SGD ticket", "partial transfer, SGD ticket", "superiority"),
)


def _h(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Design:
    name: str = _h("the protocol's name; every verdict of the claims table carries it", default="fair-v1")
    pair: str = _h("the primary language pair", default="eng_Latn-cat_Latn")
    train_pairs: int = _h("FLORES dev pairs every trained arm and every discovery trains on", default=512)
    batch_size: int = _h("pairs per optimizer step", default=8)
    epochs: float = _h("passes over the training pairs for every trained arm", default=1.0)
    dev_sentences: int = _h("held-out dev pairs (after the training pairs) that choose each learning rate",
                            default=100)
    test_sentences: int = _h("devtest sentences every arm is scored on", default=200)
    lr_grids: dict = _h("learning-rate grid per arm family", default_factory=lambda: {
        "embed": (3e-4, 1e-3, 3e-3), "rows": (3e-3, 1e-2, 3e-2), "full": (1e-5, 3e-5, 1e-4)})
    selection_seeds: dict = _h("seeds each family's learning rate is chosen on", default_factory=lambda: {
        "embed": (0, 1), "rows": (0, 1), "full": (0,)})
    selection_ticket: str = _h("the ticket the rows family's learning rate is chosen with", default="ks")
    seeds: tuple = _h("seeds of the primary arms (fixed by the precision calculation)", default=(0, 1, 2, 3, 4))
    full_seeds: tuple = _h("seeds of full fine-tuning", default=(0, 1, 2))
    secondary_seeds: tuple = _h("seeds of the secondary arms", default=(0, 1))
    discovery_rule: str = _h("ticket rule and level of discovery", default="bh_0.05")
    min_ticket: int = _h("the smallest discovery budget whose ticket holds at least this many rows", default=12)
    sweep_snapshots: tuple = _h("budget-sweep snapshots (optimizer steps)", default=(
        *range(1, 17), 24, 32, 48, 64))
    adam_lrs: tuple = _h("budget-sweep Adam learning rates", default=(1e-3, 2e-3, 5e-3, 1e-2))
    sgd_lrs: tuple = _h("budget-sweep SGD learning rates", default=(0.23, 0.46, 1.2, 2.3))
    margin: float = _h("equivalence margin in chrF++ (TOST)", default=2.0)
    alpha: float = _h("level of every test", default=0.05)
    n_bootstrap: int = _h("resamples of the two-level bootstrap", default=1000)

    def __post_init__(self):
        if set(self.lr_grids) != set(FAMILIES) or set(self.selection_seeds) != set(FAMILIES):
            raise KSLError(f"protocol {self.name}: lr_grids and selection_seeds need exactly {', '.join(FAMILIES)}",
                           "give one grid and one seed list per family")
        if any(len(g) < 2 for g in self.lr_grids.values()):
            raise KSLError(f"protocol {self.name}: a learning-rate grid has fewer than 2 points", "give 3 points")
        if not set(self.secondary_seeds) <= set(self.seeds) or not set(self.full_seeds) <= set(self.seeds):
            raise KSLError(f"protocol {self.name}: secondary and full seeds must be primary seeds too",
                           "take them from the start of `seeds`")
        Rule.parse(self.discovery_rule)   # a misspelt rule is refused when the profile is read
        if self.margin <= 0:
            raise KSLError(f"protocol {self.name}: margin {self.margin} is not positive", "state a positive margin")

    @classmethod
    def from_profile(cls, profile: dict) -> Design:
        """The profile's ``protocol:`` block, every key checked; lists become tuples (the design is frozen)."""
        block = dict(profile.get("protocol") or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - names)
        if unknown:
            raise KSLError(f"unknown protocol keys {unknown}", f"use {', '.join(sorted(names))}")
        hints = typing.get_type_hints(cls)
        for key, value in list(block.items()):
            if hints[key] is tuple:
                block[key] = tuple(value)
            elif hints[key] is dict:
                block[key] = {k: tuple(v) for k, v in value.items()}
        return cls(**block)

    def seed_lists(self) -> dict[str, list[int]]:
        """The trunk's seed lists, keyed as the registry's arms name them."""
        return {"seeds": list(self.seeds), "secondary": list(self.secondary_seeds), "full": list(self.full_seeds)}

    def seeds_of(self, arm: str) -> tuple:
        return tuple(self.seed_lists()[REGISTRY[arm].seeds])

    def settings(self) -> list[dict]:
        """The design as a reader's table: one row per setting, its value written out (grids and seed lists in
        full, a run of three or more consecutive integers as "1–16") and what it means (the field's help text)."""
        def text(v) -> str:
            if isinstance(v, dict):
                return "; ".join(f"{k}: {text(x)}" for k, x in v.items())
            if isinstance(v, (tuple, list)) and v and all(isinstance(x, int) for x in v):
                return ", ".join(_runs_of(list(v)))
            if isinstance(v, (tuple, list)):
                return ", ".join(text(x) for x in v)
            return f"{v:g}" if isinstance(v, float) else str(v)

        return [{"setting": f.name.replace("_", " "), "value": text(getattr(self, f.name)),
                 "meaning": f.metadata["help"]} for f in dataclasses.fields(self)]

    def dev_offset(self) -> int:
        """Held-out dev pairs start right after the training pairs."""
        return self.train_pairs


def _runs_of(ints: list[int]) -> list[str]:
    """[1, 2, 3, 5, 8, 9] -> ["1–3", "5", "8", "9"]: runs of three or more consecutive integers shortened."""
    out, start = [], 0
    for i in range(1, len(ints) + 1):
        if i == len(ints) or ints[i] != ints[i - 1] + 1:
            run = ints[start:i]
            out += [f"{run[0]}\u2013{run[-1]}"] if len(run) >= 3 else [str(x) for x in run]
            start = i
    return out
