"""Arms: the named recipes of an experiment, as branches of one trunk (open_lth's layout).

The trunk is what every arm of one seed shares: that seed's embedding tuning, the KS discovery on it and
the seed's own ticket under the experiment's selection rule. An :class:`Arm` is a recipe on top of it:
what is trained (a tuning mode) or pasted (partial transfer), from which ticket source, with which
learning rate and over which list of seeds. :data:`REGISTRY` holds every arm of the study under the one name
every page shows; chapters, the certificate and the claims select arms from it by name (:func:`arms`), and
:func:`plan` turns them into runs (trained, or reused by their hash-named directories).

    >>> trunk = Trunk(recipe, lrs={"embed": 1e-2, "rows": 1e-2}, seeds={"seeds": [0, 1, 2]},
    ...               rule="bh", alpha=0.05, options={"max_steps": 8})                   # doctest: +SKIP
    >>> runs = plan(trunk, arms("embedding tuning", "Adam ticket"))                      # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property, partial

from ..method import baselines, tuning
from ..method.discovery import DiscoveryConfig, discover
from ..method.errors import KSLError
from ..method.models import load_tokenizer
from ..method.ticket import Rule, select
from ..method.transfer import TransferConfig, transfer
from . import executor
from .recipe import Recipe

KINDS = ("base", "tune", "transfer")
SEED = "<seed>"   # in Arm.options: replaced by the branch's seed


@dataclass(frozen=True)
class Arm:
    name: str = field(metadata={"help": "the label every table and figure shows"})
    kind: str = field(default="tune", metadata={"help": "base (no training), tune, or transfer (paste rows)"})
    mode: str | None = field(default=None, metadata={"help": "the tuning mode of a tune arm (embed, rows, full...)"})
    ticket: str | None = field(default=None, metadata={
        "help": "where the rows come from (rows mode and transfer): a source in TICKETS, 'topk:K', or "
                "'fixed:NAME' for a ticket given to the trunk"})
    lr: str | None = field(default=None, metadata={
        "help": "the arm family whose learning rate the arm trains at: a key of the trunk's arm_lrs (else lrs)"})
    seeds: str = field(default="seeds", metadata={
        "help": "the key of the trunk's seed list this arm runs over: seeds (primary), secondary or full"})
    trunk: str = field(default="main", metadata={"help": "which trunk's discovery the ticket comes from"})
    draws: bool = field(default=False, metadata={
        "help": "the seed list holds draws of a random ticket: every draw trains at the trunk's first seed"})
    options: tuple = field(default=(), metadata={
        "help": "(field, value) pairs added to the run's TuneConfig or TransferConfig; the value SEED stands "
                "for the branch's seed"})
    score: tuple = field(default=(), metadata={"help": "(option, value) pairs for scoring, e.g. stop_on_newline"})

    def __post_init__(self):
        if self.kind not in KINDS:
            raise KSLError(f"arm {self.name!r}: unknown kind {self.kind!r}", f"use one of {', '.join(KINDS)}")
        if self.kind == "tune" and (self.mode is None or self.lr is None):
            raise KSLError(f"arm {self.name!r} trains but names no mode or learning rate", "give mode= and lr=")
        if (self.kind == "transfer" or self.mode == "rows") and self.ticket is None:
            raise KSLError(f"arm {self.name!r} needs a ticket source", f"give ticket= one of {', '.join(TICKETS)}")


@dataclass
class Trunk:
    """One embedding tuning per seed under ``recipe``, its KS discovery, and the seed's ticket: the ``rule``
    ticket at ``alpha`` (bh, bonferroni, alpha) or the top ``k`` rows by D (rule topk). ``options`` (TuneConfig
    fields such as max_steps) apply to every run of the trunk, ``embed_options`` (such as optimizer="sgd") only
    to the discovery's embedding tuning."""
    recipe: Recipe
    lrs: dict[str, float]
    seeds: dict[str, list[int]]
    rule: str = "bh"
    alpha: float = 0.05
    k: int = 18
    options: dict = field(default_factory=dict)
    embed_options: dict = field(default_factory=dict)
    fixed: dict[str, list[int]] = field(default_factory=dict)
    # The fair test trains its arms at a budget of their own (a full epoch), not at the discovery's: when
    # given, trained arms take these options instead of ``options``, and no arm reuses the discovery run.
    arm_options: dict | None = None
    # ... and at learning rates of their own (each family's, chosen on dev): when given, an arm's lr key is read
    # here, while ``lrs["embed"]`` stays the discovery's learning rate.
    arm_lrs: dict | None = None
    # ... and in a precision of their own per tuning mode ("no" or "bf16"; discovery always trains in float32,
    # as the KS test reads its rows): when given, a trained arm's mode is read here.
    arm_precision: dict | None = None

    def __post_init__(self):
        self._embed, self._found, self._counts, self._seen = {}, {}, {}, {}

    def embed_config(self, seed: int) -> tuning.TuneConfig:
        return self.recipe.config(mode="embed", lr=self.lrs["embed"], seed=seed, **self.options, **self.embed_options)

    def embed(self, seed: int) -> dict:
        if seed not in self._embed:
            self._embed[seed] = tuning.tune(self.embed_config(seed), progress=self.recipe.progress)
        return self._embed[seed]

    def discovery(self, seed: int) -> dict:
        if seed not in self._found:
            self._found[seed] = discover(DiscoveryConfig(tuned=self.embed(seed)["path"], alpha=self.alpha, k=self.k))
        return self._found[seed]

    def ticket_name(self) -> str:
        return Rule("topk", self.k).key if self.rule == "topk" else Rule(self.rule, self.alpha).key

    def ticket(self, seed: int) -> list[int]:
        """The seed's own ticket, in the discovery's order (larger D first)."""
        return self.discovery(seed).ids(self.ticket_name())

    def require_tickets(self) -> None:
        """Refuse, before any arm trains, a budget too small for the rule: a seed with an empty ticket."""
        prefetch([(self, s) for s in self.seeds["seeds"]])
        for s in self.seeds["seeds"]:
            if not self.ticket(s):
                lr, steps = self.lrs["embed"], self.options.get("max_steps")
                raise KSLError(f"seed {s}: no row is significant under {self.rule} at {self.alpha} after {steps} "
                               f"steps of lr {lr:g}", "take the budget the budget sweep chose (its smallest budget "
                               "with a ticket)")

    def topk(self, seed: int, k: int) -> list[int]:
        """The k rows of largest D in this seed's discovery (ties: smaller p, then smaller id)."""

        return [int(i) for i in select(self.discovery(seed).result(), "topk", k=k)]

    def batches(self, seed: int) -> tuple[list[dict], list[list[int]]]:
        """The encoded training examples of this seed's discovery tuning and its micro-batches in training
        order, up to max_steps (a pure function of the config: no run is read)."""
        if seed not in self._seen:
            cfg = self.recipe.config(mode="embed", lr=self.lrs["embed"], seed=seed, **self.options,
                                       **self.embed_options)
            examples = tuning.training_examples(cfg, self.tokenizer)
            self._seen[seed] = (examples, tuning.batch_order(len(examples), cfg))
        return self._seen[seed]

    def seen(self, seed: int) -> list[dict]:
        """The encoded training examples this seed's embedding tuning actually sees, in index order."""
        examples, batches = self.batches(seed)
        return [examples[i] for i in sorted({i for batch in batches for i in batch})]

    def earliest(self, seed: int) -> list[int]:
        """The exposure control: as many rows as the seed's ticket, those whose first gradient came first."""
        examples, batches = self.batches(seed)
        return baselines.earliest_ticket(examples, batches, len(self.ticket(seed))).ids

    @cached_property
    def tokenizer(self):
        """The model's tokenizer, loaded once per trunk (a 262k-token one costs about a second)."""
        return load_tokenizer(self.recipe.model)

    def token(self, text: str) -> int:
        """The id of a text that the tokenizer encodes as one token (the ':' row)."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise KSLError(f"{text!r} is {len(ids)} tokens for {self.recipe.model}", "drop the arm built on it")
        return int(ids[0])

    def counts(self, seed: int) -> Counter:
        """Token counts of the examples the seed saw: the rows it can move, and so the pool of the random
        and frequency controls."""
        if seed not in self._counts:
            self._counts[seed] = baselines.token_counts(self.seen(seed))
        return self._counts[seed]

    def bos(self) -> int:
        if self.tokenizer.bos_token_id is None:
            raise KSLError(f"{self.recipe.model}'s tokenizer has no BOS token", "drop the arms built on <bos>")
        return int(self.tokenizer.bos_token_id)


def _ks(t: Trunk, s: int, draw: int) -> list[int]:
    return t.ticket(s)


# Ticket sources: (trunk, seed, draw) -> ids; ``draw`` seeds the random ones (the seed itself unless the arm
# holds draws). Controls take the size of the seed's own ticket.
TICKETS = {
    "ks": _ks,
    "frequency": lambda t, s, d: baselines.frequency_ticket(t.counts(s), len(t.ticket(s))).ids,
    "frequency-matched": lambda t, s, d: baselines.frequency_matched_ticket(t.ticket(s), t.counts(s), seed=d).ids,
    "random": lambda t, s, d: baselines.random_ticket(t.counts(s), len(t.ticket(s)), seed=d).ids,
    "without-bos": lambda t, s, d: [i for i in t.ticket(s) if i != t.bos()],   # bos() is cached
    "bos": lambda t, s, d: [t.bos()],
    "earliest": lambda t, s, d: t.earliest(s),
    "colon": lambda t, s, d: [t.token(":")],
}


def ticket_for(arm: Arm, trunk: Trunk, seed: int, draw: int | None = None) -> list[int]:
    src = arm.ticket
    if src.startswith("topk:"):
        return trunk.topk(seed, int(src[5:]))
    if src.startswith("fixed:"):
        if src[6:] not in trunk.fixed:
            raise KSLError(f"arm {arm.name!r}: no fixed ticket {src[6:]!r}", "pass it in the trunk's fixed tickets")
        return list(trunk.fixed[src[6:]])
    if src not in TICKETS:
        raise KSLError(f"arm {arm.name!r}: unknown ticket source {src!r}",
                       f"use one of {', '.join(TICKETS)}, topk:K or fixed:NAME")
    ids = TICKETS[src](trunk, seed, seed if draw is None else draw)
    if not ids:
        raise KSLError(f"arm {arm.name!r}: the {src} ticket of seed {seed} is empty",
                       "raise the training budget (see the budget sweep) or drop the arm")
    return [int(i) for i in ids]


@dataclass
class Branch:
    """One arm at one seed (or draw): its run (None for the base model), the ticket it trained or pasted, and
    how it is scored."""
    arm: str
    seed: int | None
    run: dict | None
    ticket: list[int] | None = None
    score: dict = field(default_factory=dict)

    @property
    def path(self) -> str | None:
        return self.run["path"] if self.run else None


def prefetch(seeds: list[tuple[Trunk, int]]) -> None:
    """The first stage: the embedding tuning of every (trunk, seed) listed that is not computed yet, all at once
    through the executor; :meth:`Trunk.embed` then reuses them."""
    todo, seen = [], set()
    for t, s in seeds:   # a trunk is a mutable dataclass, so not hashable: known by its identity
        if s not in t._embed and (id(t), s) not in seen:
            seen.add((id(t), s))
            todo.append((t, s))
    calls = [(partial(tuning.tune, progress=t.recipe.progress), t.embed_config(s)) for t, s in todo]
    for (t, s), rec in zip(todo, _map(calls, "tune")):
        t._embed[s] = rec


def _call(call: tuple) -> object:
    fn, item = call
    return fn(item)


def _quiet(calls: list[tuple]) -> bool:
    """Whether an owner was asked for no progress bars (a notebook's progress=False): then neither is the executor."""
    return any(getattr(fn, "keywords", {}).get("progress") is False for fn, _ in calls)


def _map(calls: list[tuple], kind: str, quiet: bool | None = None) -> list:
    """(owner, config) pairs through the executor, results in order."""
    quiet = _quiet(calls) if quiet is None else quiet
    return executor.current(progress=not quiet).map(_call, calls, kind) if calls else []


def _trunk_seed(arm: Arm, t: Trunk, s: int) -> int | None:
    """The seed whose embedding tuning the branch of ``arm`` at ``s`` reads (its donor or its ticket's
    discovery), or None when it reads none (full fine-tuning, a fixed ticket, the <bos> or ':' row)."""
    seed = t.seeds["seeds"][0] if arm.draws else s
    if arm.kind == "transfer":
        return seed
    if arm.mode == "rows":
        return None if arm.ticket in ("bos", "colon") or arm.ticket.startswith("fixed:") else seed
    reuse = arm.mode == "embed" and arm.lr == "embed" and not arm.options and t.arm_options is None and t.arm_lrs is None
    return seed if reuse else None


def _job(arm: Arm, t: Trunk, s: int) -> tuple[Branch, str | None, object]:
    """The branch of ``arm`` at seed (or draw) ``s`` and what computes its run: the run kind and its (owner,
    config), or (None, None) for the trunk's own run, reused."""
    seed, draw = (t.seeds["seeds"][0], s) if arm.draws else (s, None)
    opts = {k: (s if v == SEED else v) for k, v in arm.options}
    score = dict(arm.score)
    if arm.kind == "transfer":
        ids = ticket_for(arm, t, seed, draw)
        return Branch(arm.name, s, None, ids, score), "transfer", (transfer, TransferConfig(
            tuned=t.embed(seed)["path"], ticket=tuple(ids), **opts))
    if arm.mode == "embed" and arm.lr == "embed" and not opts and t.arm_options is None and t.arm_lrs is None:
        return Branch(arm.name, s, t.embed(seed), None, score), None, None
    lrs = t.lrs if t.arm_lrs is None else t.arm_lrs
    if lrs.get(arm.lr) is None:
        raise KSLError(f"arm {arm.name} needs its learning rate", f"give the trunk a learning rate for {arm.lr}")
    ids = ticket_for(arm, t, seed, draw) if arm.mode == "rows" else None
    precision = {} if t.arm_precision is None else {"mixed_precision": t.arm_precision[arm.mode]}
    cfg = t.recipe.config(mode=arm.mode, lr=lrs[arm.lr], seed=seed, **({"ticket": tuple(ids)} if ids is not None else {}),
                          **(t.options if t.arm_options is None else t.arm_options), **precision, **opts)
    return Branch(arm.name, s, None, ids, score), "tune", (partial(tuning.tune, progress=t.recipe.progress), cfg)


def jobs(trunks: Trunk | dict[str, Trunk], arms: list[Arm]) -> list[tuple[Branch, str | None, object]]:
    """Every arm at every seed of its list, as :func:`_job` gives it (base: no run). The stages: the trunks'
    embedding tunings the branches read, all at once (:func:`prefetch`), then their discoveries and tickets here."""
    trunks = {"main": trunks} if isinstance(trunks, Trunk) else trunks
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise KSLError(f"arm names repeat: {names}", "give every arm its own name")
    wanted = []
    for arm in arms:
        if arm.trunk not in trunks:
            raise KSLError(f"arm {arm.name!r} names trunk {arm.trunk!r}", f"use one of {', '.join(trunks)}")
        t = trunks[arm.trunk]
        if arm.kind != "base" and arm.seeds not in t.seeds:
            raise KSLError(f"arm {arm.name!r} runs over seed list {arm.seeds!r}", f"give the trunk seeds[{arm.seeds!r}]")
        wanted += [(arm, t, None)] if arm.kind == "base" else [(arm, t, s) for s in t.seeds[arm.seeds]]
    prefetch([(t, seed) for arm, t, s in wanted if arm.kind != "base" and (seed := _trunk_seed(arm, t, s)) is not None])
    return [(Branch(arm.name, None, None, None, dict(arm.score)), None, None) if arm.kind == "base" else _job(arm, t, s)
            for arm, t, s in wanted]


def compute(todo: list[tuple[Branch, str | None, tuple | None]]) -> list[Branch]:
    """The runs of :func:`jobs`' branches, in order: every tune run through the executor at once, then every
    transfer (it reads only finished embedding tunings)."""
    out, quiet = {}, _quiet([call for _, _, call in todo if call])
    for kind in ("tune", "transfer"):
        at = [i for i, (_, k, _) in enumerate(todo) if k == kind]
        out |= dict(zip(at, _map([todo[i][2] for i in at], kind, quiet)))
    return [replace(b, run=out[i]) if i in out else b for i, (b, _, _) in enumerate(todo)]


def plan(trunks: Trunk | dict[str, Trunk], arms: list[Arm]) -> list[Branch]:
    """Train (or reuse) every arm at every seed of its list; returns one branch per (arm, seed)."""
    return compute(jobs(trunks, arms))



# The arm registry: every arm of the study, by the one name every table, figure and claim shows. Its learning
# rate is its family's (the trunk says which value); its seed list is primary (``seeds``), ``secondary`` or
# ``full``, and each chapter's trunk says which seeds those are. Controls take the size of the seed's Adam ticket.
PAPER_K = 18   # the paper's en->ca ticket size
REGISTRY = {a.name: a for a in (
    Arm("base", kind="base"),
    Arm("embedding tuning", mode="embed", lr="embed"),
    Arm("full fine-tuning", mode="full", lr="full", seeds="full"),
    Arm("Adam ticket", mode="rows", ticket="ks", lr="rows"),
    Arm("SGD ticket", mode="rows", ticket="ks", lr="rows", trunk="sgd"),
    Arm(f"top-{PAPER_K} by D", mode="rows", ticket=f"topk:{PAPER_K}", lr="rows"),
    Arm("earliest-seen rows", mode="rows", ticket="earliest", lr="rows"),
    Arm("most frequent rows", mode="rows", ticket="frequency", lr="rows", seeds="secondary"),
    Arm("frequency-matched rows", mode="rows", ticket="frequency-matched", lr="rows", seeds="secondary"),
    Arm("random rows", mode="rows", ticket="random", lr="rows", seeds="secondary"),
    Arm("<bos> row", mode="rows", ticket="bos", lr="rows", seeds="secondary"),
    Arm("':' row", mode="rows", ticket="colon", lr="rows", seeds="secondary"),
    Arm("partial transfer, Adam ticket", kind="transfer", ticket="ks", seeds="secondary"),
    Arm("partial transfer, SGD ticket", kind="transfer", ticket="ks", trunk="sgd", seeds="secondary"),
    Arm("partial transfer, random rows", kind="transfer", ticket="random", seeds="secondary"),
)}
FAMILY = {name: ("transfer" if a.kind == "transfer" else a.mode or "base") for name, a in REGISTRY.items()}


def arms(*names: str) -> list[Arm]:
    """The registry's arms of these names, in this order; a name it does not hold is refused with the names it does."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KSLError(f"no arm named {unknown} in the registry", f"use one of {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in names]
