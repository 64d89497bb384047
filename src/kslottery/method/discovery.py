"""KS ticket discovery as a run: tuned rows in, KS statistics and tickets out.

    >>> rec = discover(DiscoveryConfig(tuned="runs/tune-1a2b3c4d5e6f", k=18))   # doctest: +SKIP
    >>> rec["tickets"]["topk-18"]["tokens"]                                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from . import archive  # noqa: F401  (a tune run restored without its weights computes them again)
from .errors import KSLError
from .ks import METHODS, KSResult
from .runs import Run, RunRecord, releases_locks
from .ticket import SIGNIFICANCE_RULES, Rule, Ticket, ks_from_rows, make_ticket, tokenizer_fingerprint
from .tuned import TunedRun

KS_FILE = "ks.safetensors"   # D and p of every changed row, as the run computed them


@dataclass(frozen=True)
class DiscoveryConfig:
    tuned: str = field(default="", metadata={"help": "an embed-mode tune run directory"})
    alpha: float = field(default=0.05, metadata={"help": "significance level for the alpha, bonferroni and bh rules"})
    k: int = field(default=18, metadata={"help": "ticket size for the topk rule (the paper's en->ca ticket has 18)"})
    method: str = field(default="auto", metadata={"help": "p-values: auto (scipy's choice), exact or asymp"})


def check(cfg: DiscoveryConfig) -> None:
    """The arguments, before any work."""

    if not 0 < cfg.alpha < 1:
        raise KSLError(f"alpha {cfg.alpha} is not a significance level in (0, 1)", "pass e.g. --alpha 0.05")
    if cfg.k < 1:
        raise KSLError(f"k {cfg.k} is not a ticket size", "pass --k 1 or more (the paper's en->ca ticket: 18)")
    if cfg.method not in METHODS:
        raise KSLError(f"unknown KS p-value method {cfg.method!r}", f"use one of {', '.join(METHODS)}")


@releases_locks
def discover(cfg: DiscoveryConfig, runs_dir=None, tokenizer=None) -> DiscoveryRecord:
    check(cfg)
    tuned = TunedRun(cfg.tuned)
    tune_rec = tuned.record
    if tuned.mode != "embed":
        raise KSLError(f"{Path(cfg.tuned).name} is a {tune_rec['config']['mode']}-mode run",
                       "KS discovery reads an embed-mode run (every row free to move)")
    params = {**asdict(cfg), "tuned": Path(cfg.tuned).name}
    run = Run("ks", params, runs_dir)
    if (reused := run.reuse(DiscoveryRecord)) is not None:
        return reused
    rows = tuned.rows()   # after the reuse: a finished discovery never reads the tuning's rows again
    work = run.start()   # the run's wall-clock starts here, so that it counts the KS test itself
    if tokenizer is None:
        tokenizer = tuned.tokenizer()
    res = ks_from_rows(rows, tune_rec["model"]["vocab_size"], cfg.method)
    prov = dict(tokenizer=tokenizer, model=tune_rec["model"]["spec"], data_sha256=tune_rec["data"]["sha256"],
                code_version=__version__, vocab_size=tune_rec["model"]["vocab_size"],
                tokenizer_sha256=tokenizer_fingerprint(tokenizer), tune_run=Path(cfg.tuned).name)
    tickets = {Rule(rule, cfg.alpha).key: make_ticket(res, rule, alpha=cfg.alpha, **prov)
               for rule in SIGNIFICANCE_RULES}
    tickets[Rule("topk", cfg.k).key] = make_ticket(res, "topk", k=cfg.k, **prov)
    for name, t in tickets.items():
        t.save(work / f"ticket-{name}.json")
    from safetensors.torch import save_file
    ids = rows["ids"].long()
    save_file({"ids": ids, "statistic": res.statistic[ids].contiguous(), "pvalue": res.pvalue[ids].contiguous()},
              work / KS_FILE)
    record = {"config": asdict(cfg), "tune_run": Path(cfg.tuned).name, "model": tune_rec["model"],
              "n_rows": int(len(res.changed)), "n_changed": int(res.changed.sum()), "d": res.d,
              "max_statistic": float(res.statistic.max()), "min_pvalue": float(res.pvalue.min()),
              "tickets": {n: {"size": len(t), "ids": t.ids, "tokens": t.tokens, "file": f"ticket-{n}.json"}
                          for n, t in tickets.items()}}
    return run.complete(record, DiscoveryRecord)


class DiscoveryRecord(RunRecord):
    """A finished ks run's record (the dict ``record.json`` holds) with readers for its tickets, so that no
    caller builds a ticket's file name: ``.ticket("bh-0.05")``, ``.ticket_file("topk-18")``, ``.ids(...)``."""

    def _entry(self, name: str) -> dict:
        if name not in self["tickets"]:
            raise KSLError(f"ks run {self.get('run')} has no ticket {name!r}", f"use one of {', '.join(self['tickets'])}")
        return self["tickets"][name]

    def ticket_file(self, name: str) -> str:
        return str(Path(self["path"]) / self._entry(name)["file"])

    def ticket(self, name: str) -> Ticket:
        return Ticket.load(self.ticket_file(name))

    def ids(self, name: str) -> list[int]:
        return list(self._entry(name)["ids"])

    def result(self) -> KSResult:
        """The run's KS test over the whole vocabulary, as it computed it (D and p of the changed rows from
        ``ks.safetensors``; D = 0, p = 1 elsewhere): any other selection of rows reads it here instead of
        testing the rows again."""
        from safetensors.torch import load_file

        saved = load_file(str(Path(self["path"]) / KS_FILE))
        res = KSResult.at_rows(saved["ids"], int(self["n_rows"]), int(self["d"]), self["config"]["method"],
                               saved["statistic"], saved["pvalue"])
        if int(res.changed.sum()) != self["n_changed"]:   # a row that moved with D = 0 (a permutation): test again
            tuned = TunedRun(Path(self["path"]).parent / self["tune_run"])
            return ks_from_rows(tuned.rows(), res.statistic.numel(), self["config"]["method"])
        return res
