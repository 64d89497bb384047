"""The fair test's design: everything that governs a score, stated before the score is computed.

One :class:`Design` per profile (the ``protocol:`` block of ``profiles/<name>.yaml``), committed before any
run it governs; the chapters read it and never change it after seeing scores. It fixes:

- **models**: the same protocol on each of ``models``, each with its own budget, learning rates and arms;
- **budgets**: tickets are *discovered* from a short embedding tuning chosen by a stated rule (the smallest
  snapshot of the budget sweep whose Benjamini-Hochberg ticket holds ``min_ticket`` rows), and every *trained*
  arm trains on the same ``train_pairs`` FLORES dev pairs for ``epochs`` at **its own learning rate**;
- **learning rates**: one grid per arm family (embedding, rows, full), each chosen by the mean chrF++ on
  ``dev_sentences`` held-out dev pairs (after the training pairs; devtest is never read) over
  ``selection_seeds``; a best point at a grid's edge adds the next point past it (``extend_step``, at most
  ``extend_most`` times), still on dev;
- **arms, seeds and sentences**: ``arms`` on their seed lists; every score on ``test_sentences`` devtest
  sentences from ``test_offset`` (the earlier ones were read by earlier designs);
- **comparisons and outcomes**: every declared comparison gets one outcome that says which way
  (:func:`kslottery.study.verdicts.outcome`) from the union of the seed-level t interval and the bootstrap
  (``crossed``: seeds and sentences resampled jointly, as every seed scores the same sentences); Holm runs per
  model and role (primary, secondary) over both deciding tests of each comparison, difference and equivalence;
- **stopping**: no seed or sentence is added after the first score; a comparison whose interval is too wide
  stays inconclusive.

    >>> d = Design.from_profile({"protocol": {"name": "fair-v2", "seeds": [0, 1, 2, 3], "full_seeds": [0, 1],
    ...                                       "secondary_seeds": [0, 1]}})
    >>> d.name, d.seeds, d.lr_grids["embed"], d.test_offset
    ('fair-v2', (0, 1, 2, 3), (0.0001, 0.0003, 0.001), 200)
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from ..method.errors import KSLError
from ..method.ticket import Rule
from .arms import REGISTRY

FAMILIES = ("embed", "rows", "full")
# Every arm a fair-test design may run, by its name in the registry (kslottery.study.arms.REGISTRY, which holds each
# arm's family, ticket source and seed list); a profile's ``arms`` picks among them and states what it cut.
ARMS = ("embedding tuning", "full fine-tuning", "Adam ticket", "SGD ticket", "top-18 by D", "earliest-seen rows",
        "frequency-matched rows", "most frequent rows", "':' row", "<bos> row", "partial transfer, Adam ticket",
        "partial transfer, SGD ticket")
# (a, b, kind): the difference is score(b) - score(a). Every comparison gets one outcome by one rule
# (kslottery.study.verdicts.outcome); ``kind`` names the question the claims ask of it: "equivalence" (does b match
# a within the margin?) or "superiority" (is b better than a?).
# The primary comparisons decide the claims. Holm runs per model over their deciding tests, the difference test
# and the equivalence test (TOST) of each, so that neither answer is easier to reach than the other.
PRIMARY = (
    # (1) specificity: does KS pick better rows than rows of the same size (the seed's Adam ticket's) chosen
    # without it?
    ("frequency-matched rows", "Adam ticket", "superiority"),
    ("earliest-seen rows", "Adam ticket", "superiority"),
    # (2) the paper's headline: does tuning the ticket match tuning the whole embedding, and the whole model?
    ("embedding tuning", "Adam ticket", "equivalence"),
    ("embedding tuning", "top-18 by D", "equivalence"),
    ("full fine-tuning", "Adam ticket", "equivalence"),
    # (3) the paper's premise: does embedding tuning match full fine-tuning?
    ("full fine-tuning", "embedding tuning", "equivalence"),
)
# Reported with their outcomes, Holm-adjusted among themselves per model; no claim's verdict rests on them. The
# top 18 rows against the controls are here, not primary: the controls take the Adam ticket's size, not 18.
SECONDARY = (
    ("frequency-matched rows", "top-18 by D", "superiority"),
    ("earliest-seen rows", "top-18 by D", "superiority"),
    ("top-18 by D", "':' row", "equivalence"),           # the replication's "one row does as well as 18"
    ("Adam ticket", "top-18 by D", "equivalence"),
    ("embedding tuning", "most frequent rows", "equivalence"),
    ("most frequent rows", "Adam ticket", "superiority"),
    ("embedding tuning", "SGD ticket", "equivalence"),
    ("frequency-matched rows", "SGD ticket", "superiority"),
    ("<bos> row", "Adam ticket", "superiority"),
    ("full fine-tuning", "top-18 by D", "equivalence"),
    ("Adam ticket", "partial transfer, Adam ticket", "superiority"),
    ("SGD ticket", "partial transfer, SGD ticket", "superiority"),
)
# The tickets a rows learning rate may be chosen with: the mean over them, so that no rows arm gets a rate tuned
# for it alone (fair-v1 chose with the KS ticket, which favoured it over the controls it met).
SELECTION_TICKETS = {"ks": ("ks",), "ks+frequency-matched": ("ks", "frequency-matched")}


def _h(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Design:
    name: str = _h("the protocol's name; every verdict of the claims table carries it", default="fair-v2")
    models: tuple = _h("the models the protocol runs on, each with its own discovery budget (by the same rule), "
                       "learning-rate selection and arms (default: the profile's model)", default=("gemma3-270m",))
    pair: str = _h("the primary language pair", default="eng_Latn-cat_Latn")
    train_pairs: int = _h("FLORES dev pairs every trained arm and every discovery trains on", default=512)
    batch_size: int = _h("pairs per optimizer step", default=8)
    epochs: float = _h("passes over the training pairs for every trained arm", default=1.0)
    dev_sentences: int = _h("held-out dev pairs (after the training pairs) that choose each learning rate",
                            default=100)
    test_offset: int = _h("the first devtest sentence scored: those before it were read by earlier designs",
                          default=200)
    test_sentences: int = _h("devtest sentences every arm is scored on, from test_offset", default=400)
    lr_grids: dict = _h("learning-rate grid per arm family", default_factory=lambda: {
        "embed": (1e-4, 3e-4, 1e-3), "rows": (3e-3, 1e-2, 3e-2), "full": (3e-6, 1e-5, 3e-5)})
    extend_step: float = _h("when a family's best dev score sits at its grid's edge, the next point this factor "
                            "past it is added (before any devtest score)", default=3.0)
    extend_most: int = _h("at most this many points added per family", default=2)
    precision: dict = _h("the training precision per family, no (float32) or bf16 (autocast, float32 master "
                         "weights); the sweep and the discoveries, whose rows the KS test reads, train in float32",
                         default_factory=lambda: {"embed": "no", "rows": "no", "full": "no"})
    selection_seeds: dict = _h("seeds each family's learning rate is chosen on", default_factory=lambda: {
        "embed": (0, 1), "rows": (0, 1), "full": (0,)})
    selection_ticket: str = _h("the tickets the rows family's learning rate is chosen with (the mean over them): ks, "
                               "or ks+frequency-matched", default="ks+frequency-matched")
    arms: tuple = _h("the arms run (names in the arm registry); every comparison whose arms both ran is judged",
                     default=ARMS)
    seeds: tuple = _h("seeds of the primary arms (fixed by the precision calculation)", default=(0, 1, 2, 3, 4))
    full_seeds: tuple = _h("seeds of full fine-tuning", default=(0, 1, 2, 3, 4))
    secondary_seeds: tuple = _h("seeds of the arms the registry marks secondary", default=(0, 1, 2, 3, 4))
    discovery_rule: str = _h("ticket rule and level of discovery", default="bh_0.05")
    min_ticket: int = _h("the smallest discovery budget whose ticket holds at least this many rows", default=12)
    max_ticket_share: float = _h("... and at most this share of the rows the discovery tuning changed, so that a "
                                 "frequency-matched control of the ticket's size exists among the other changed rows "
                                 "(fair-v2.1)", default=0.5)
    raise_steps: int = _h("fair-v2.2: when a seed's discovery ticket at the sweep's budget holds fewer than "
                          "min_ticket rows (or more than max_ticket_share of its changed rows), the discovery steps rise "
                          "by one, the same for every seed, at most this many times, until every seed's ticket holds; "
                          "0: a seed's ticket need only be non-empty", default=0)
    sweep_snapshots: tuple = _h("budget-sweep snapshots (optimizer steps)", default=(
        *range(1, 17), 24, 32, 48, 64))
    adam_lrs: tuple = _h("budget-sweep Adam learning rates", default=(1e-3, 2e-3, 5e-3, 1e-2))
    sgd_lrs: tuple = _h("budget-sweep SGD learning rates (none: no SGD trunk)", default=(0.23, 0.46, 1.2, 2.3))
    margin: float = _h("equivalence margin in chrF++ (TOST)", default=2.0)
    alpha: float = _h("level of every test", default=0.05)
    bootstrap: str = _h("how the bootstrap resamples: crossed (one draw of sentences shared by every seed, as they "
                        "share the sentences) or nested (fair-v1: sentences drawn anew within each seed)",
                        default="crossed")
    n_bootstrap: int = _h("resamples of the bootstrap (enough that one resample cannot move a p across a Holm "
                          "threshold)", default=10000)

    def __post_init__(self):
        if any(set(d) != set(FAMILIES) for d in (self.lr_grids, self.selection_seeds, self.precision)):
            raise KSLError(f"protocol {self.name}: lr_grids, selection_seeds and precision need exactly "
                           f"{', '.join(FAMILIES)}", "give one grid, one seed list and one precision per family")
        if set(self.precision.values()) - {"no", "bf16"}:
            raise KSLError(f"protocol {self.name}: unknown precision in {self.precision}", "use no or bf16")
        if any(len(g) < 2 for g in self.lr_grids.values()):
            raise KSLError(f"protocol {self.name}: a learning-rate grid has fewer than 2 points", "give 3 points")
        if not set(self.secondary_seeds) <= set(self.seeds) or not set(self.full_seeds) <= set(self.seeds):
            raise KSLError(f"protocol {self.name}: secondary and full seeds must be primary seeds too",
                           "take them from the start of `seeds`")
        Rule.parse(self.discovery_rule)   # a misspelt rule is refused when the profile is read
        if self.margin <= 0:
            raise KSLError(f"protocol {self.name}: margin {self.margin} is not positive", "state a positive margin")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise KSLError(f"protocol {self.name}: arms {unknown} are not fair-test arms", f"use {', '.join(ARMS)}")
        missing = sorted({x for a, b, _ in PRIMARY for x in (a, b)} - set(self.arms))
        if missing:
            raise KSLError(f"protocol {self.name}: the primary comparisons need {missing}",
                           "run every arm of a primary comparison; cut secondary arms only")
        if self.selection_ticket not in SELECTION_TICKETS:
            raise KSLError(f"protocol {self.name}: unknown selection ticket {self.selection_ticket!r}",
                           f"use one of {', '.join(SELECTION_TICKETS)}")
        if self.bootstrap not in ("crossed", "nested"):
            raise KSLError(f"protocol {self.name}: unknown bootstrap {self.bootstrap!r}", "use crossed or nested")
        if not self.models:
            raise KSLError(f"protocol {self.name}: no models", "name one or more, e.g. models: [gemma3-270m]")

    @classmethod
    def from_profile(cls, profile: dict) -> Design:
        """The profile's ``protocol:`` block, every key checked; lists become tuples (the design is frozen). Without
        ``models``, the protocol runs on the profile's model (``common: model``)."""
        block = dict(profile.get("protocol") or {})
        if "models" not in block and (profile.get("common") or {}).get("model"):
            block["models"] = [profile["common"]["model"]]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - names)
        if unknown:
            raise KSLError(f"unknown protocol keys {unknown}", f"use {', '.join(sorted(names))}")
        hints = typing.get_type_hints(cls)
        for key, value in list(block.items()):
            if hints[key] is tuple:
                block[key] = tuple(value)
            elif hints[key] is dict:
                block[key] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        return cls(**block)

    def precision_words(self) -> str:
        """How the arms train, in words: "bfloat16 autocast" or "float32" when every family agrees, else per family."""
        words = {"bf16": "bfloat16 autocast", "no": "float32"}
        if len(set(self.precision.values())) == 1:
            return words[next(iter(self.precision.values()))]
        return ", ".join(f"{family} {words[p]}" for family, p in self.precision.items())

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

    def comparisons(self) -> list[tuple[str, str, str, str]]:
        """(role, a, b, kind) of every declared comparison whose two arms this design runs, primary first."""
        ran = set(self.arms) | {"base"}
        return [(role, a, b, kind) for role, table in (("primary", PRIMARY), ("secondary", SECONDARY))
                for a, b, kind in table if a in ran and b in ran]

    def sgd_trunk(self) -> bool:
        """Whether any arm needs the plain-SGD discovery (and so the sweep's SGD snapshots)."""
        return any(REGISTRY[a].trunk == "sgd" for a in self.arms)


def _runs_of(ints: list[int]) -> list[str]:
    """[1, 2, 3, 5, 8, 9] -> ["1–3", "5", "8", "9"]: runs of three or more consecutive integers shortened."""
    out, start = [], 0
    for i in range(1, len(ints) + 1):
        if i == len(ints) or ints[i] != ints[i - 1] + 1:
            run = ints[start:i]
            out += [f"{run[0]}\u2013{run[-1]}"] if len(run) >= 3 else [str(x) for x in run]
            start = i
    return out
