"""The budget sweep: how large a significance-defined ticket is as a function of the training budget.

The paper's ticket is the set of rows whose KS test is significant, and whether any row is significant
depends on how far tuning moved it: on the default model no row is at 32 AdamW steps of lr 1e-3, and
nearly every touched row is at lr 1e-2. One embed run per learning rate with ``snapshots`` gives every
shorter budget for free; this module turns each snapshot into ticket sizes under each rule and into
what explains D: how often the row occurs in the training text and how early it first gets a gradient.

    >>> table = sweep("gemma3-270m", "eng_Latn-cat_Latn", train_limit=512, batch_size=8,
    ...               lrs=[1e-3, 5e-3], snapshots=[8, 16, 32, 64])                # doctest: +SKIP
    >>> smallest_budget(table, "bh_0.05", at_least=12)                            # doctest: +SKIP
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..method import baselines, models, trainable, tuning
from ..method.baselines import first_gradient_step, token_counts
from ..method.errors import KSLError
from ..method.ks import KSResult
from ..method.runs import Run, releases_locks
from ..method.ticket import SIGNIFICANCE_RULES, Rule, decode_tokens, ks_from_rows, select
from ..method.tuned import TunedRun
from . import executor
from .results import load_tables

RULES = SIGNIFICANCE_RULES


def row_exposure(examples: list[dict], batches: list[list[int]], grad_accum: int = 1) -> tuple[dict, dict]:
    """Per token id: how often it occurs in the training inputs, and the first optimizer step (1-based)
    whose batch contains it (the step at which the row first receives a gradient)."""
    return dict(token_counts(examples)), first_gradient_step(examples, batches, grad_accum)


def snapshot_rows(run_path: str | Path, steps: list[int] | None = None) -> dict[int, dict]:
    """{step: {"ids", "before", "after"}} for every snapshot of an embed run (or only ``steps``), ``before``
    from its rows file (rows that never changed keep a zero delta, so only the rows the run changed can
    differ)."""
    import torch
    from safetensors.torch import load_file

    run = TunedRun(run_path)
    snaps = [p for step, p in run.snapshot_files().items() if steps is None or step in steps]
    if not snaps:
        raise KSLError(f"{run.name} has no snapshots", "tune with --snapshots 8,16,32,... (embed mode)")
    rows = run.rows()
    out = {}
    for path in snaps:
        snap = load_file(path)
        slot = {int(i): n for n, i in enumerate(snap["ids"].tolist())}
        idx = torch.tensor([slot[int(i)] for i in rows["ids"].tolist()], dtype=torch.long)
        out[int(path.stem[5:])] = {"ids": rows["ids"], "before": rows["before"],
                                   "after": rows["before"] + snap["delta"][idx]}
    return out


SNAPSHOT_KS = "snapshot-ks.safetensors"
_PARTS = ("statistic", "pvalue", "k", "changed")   # of KSResult, at the changed rows


@releases_locks
def snapshot_ks(run_path: str | Path) -> dict[int, KSResult]:
    """{step: the KS test over the whole vocabulary} for every snapshot of an embed run, computed once into a run of
    its own (``snapks-<hash>`` beside the tune run: each result's changed rows, every other row has D = 0, p = 1).
    The sweep's tables and tickets read it, so a sweep restored from the archive without its snapshots (18 MB each
    on Gemma) needs neither them nor its KS tests again (about 35 s each on Gemma)."""
    from safetensors.torch import load_file, save_file

    tuned = TunedRun(run_path)
    run = Run("snapks", {"tuned": tuned.name, "method": "auto"}, Path(run_path).parent)
    if run.reuse() is None:
        work, parts = run.start(), {}
        for step, rows in snapshot_rows(run_path).items():
            res, ids = ks_from_rows(rows, tuned.vocab_size), rows["ids"].long().clone()   # shared by every step
            parts |= {f"{step}.ids": ids, **{f"{step}.{name}": getattr(res, name)[ids].contiguous()
                                             for name in _PARTS}}
        save_file(parts, work / SNAPSHOT_KS)
        run.complete({"tune_run": tuned.name, "vocab_size": tuned.vocab_size, "d": res.d,
                      "steps": sorted({int(k.split(".")[0]) for k in parts})})
    record, saved = run.record(), load_file(run.path / SNAPSHOT_KS)
    out = {}
    for step in record["steps"]:
        parts = {name: saved[f"{step}.{name}"] for name in _PARTS}
        out[step] = KSResult.at_rows(saved[f"{step}.ids"], record["vocab_size"], record["d"], "auto", **parts)
    return out


def snapshot_table(run_path: str | Path, examples: list[dict], batches: list[list[int]], grad_accum: int = 1,
                   alpha: float = 0.05) -> "pd.DataFrame":
    """One row per snapshot: rows changed, ticket size under each rule at ``alpha``, the largest D, and the
    Spearman correlation of D (over changed rows) with training-token count and with first-gradient step."""
    from scipy.stats import spearmanr


    run = TunedRun(run_path)
    rec = run.record
    counts, first = row_exposure(examples, batches, grad_accum)
    table = []
    for step, res in snapshot_ks(run_path).items():
        changed = np.flatnonzero(res.changed.numpy())
        D = res.statistic.numpy()[changed]
        row = {"lr": rec["config"]["lr"], "optimizer": rec["config"].get("optimizer", "adamw"), "step": step,
               "rows_changed": len(changed), "max_D": float(D.max()) if len(D) else 0.0,
               "min_p": float(res.pvalue.min())}
        for rule in RULES:
            row[str(Rule(rule, alpha))] = len(select(res, rule, alpha))
        for name, source in (("count", counts), ("first_step", first)):
            x = [source.get(int(i), 0) for i in changed]
            defined = len(changed) > 2 and len(set(x)) > 1 and len(set(D.tolist())) > 1   # else rho is undefined
            row[f"spearman_D_{name}"] = float(spearmanr(D, x).statistic) if defined else float("nan")
        table.append(row)
    return pd.DataFrame(table)


def smallest_budget(table: "pd.DataFrame", rule: str = "bh_0.05", at_least: int = 12,
                    at_most_share: float = 0.5) -> dict | None:
    """The choice stated before any score is seen: the smallest budget lr x steps (for Adam, a bound on how
    far any coordinate can move; ties: fewer steps) whose ``rule`` ticket has at least ``at_least`` rows and at
    most ``at_most_share`` of the rows the tuning had changed by then, so that a frequency-matched control of the
    ticket's size can be drawn from the other changed rows; None when no snapshot qualifies."""
    sized = (table[rule] >= at_least) & (table[rule] <= at_most_share * table["rows_changed"])
    ok = table[sized].assign(budget=lambda t: t["lr"] * t["step"])
    ok = ok.sort_values(["budget", "step"])
    return None if ok.empty else ok.iloc[0].to_dict()


def sweep(model: str, pair: str, train_limit: int, batch_size: int, lrs: list[float], snapshots: list[int],
          optimizer: str = "adamw", template: str = "explicit", seed: int = 0, checkpoint_every: int = 25,
          alpha: float = 0.05, progress: bool = True) -> "pd.DataFrame":
    """One embed run per learning rate over ``train_limit`` FLORES dev pairs for max(snapshots) steps (one
    epoch when that is train_limit / batch_size), and the snapshot table of each, stacked."""

    tables, examples = [], None
    cfgs = [tuning.TuneConfig(model=model, pair=pair, split="dev", limit=train_limit, template=template,
                              mode="embed", lr=lr, batch_size=batch_size, seed=seed, optimizer=optimizer,
                              max_steps=None if max(snapshots) * batch_size == train_limit else max(snapshots),
                              snapshots=tuple(snapshots), checkpoint_every=checkpoint_every) for lr in lrs]
    # every learning rate's run at once through the executor (kslottery.study.executor); the tables here
    recs = executor.current(progress=progress).map(partial(tuning.tune, progress=progress), cfgs, "tune")
    for cfg, rec in zip(cfgs, recs):
        if examples is None:   # the learning rate changes neither the examples nor the batch order
            examples = tuning.training_examples(cfg)
            batches = tuning.batch_order(len(examples), cfg)
        table = snapshot_table(rec["path"], examples, batches, alpha=alpha)
        tables.append(table.assign(final_loss=rec["train"]["final_loss"], run=rec["run"], path=rec["path"]))
    return pd.concat(tables, ignore_index=True)


def sweeps(models: list[str], lrs: list[float], sgd_lrs: list[float], **common) -> "pd.DataFrame":
    """:func:`sweep` for each model, Adam and (when ``sgd_lrs`` holds any) plain SGD, stacked with a model
    column: every model's budget is chosen by the same stated rule from its own snapshots."""
    parts = []
    for model in models:
        for optimizer, grid in (("adamw", lrs), ("sgd", sgd_lrs)):
            if grid:
                parts.append(sweep(model=model, lrs=list(grid), optimizer=optimizer, **common).assign(model=model))
    table = pd.concat(parts, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]]


def training_counts(model: str, pair: str, train_limit: int, template: str = "explicit") -> dict[int, int]:
    """How often each token id occurs in the training inputs of a sweep (prompt and target)."""

    cfg = tuning.TuneConfig(model=model, pair=pair, split="dev", limit=train_limit, template=template)
    return dict(baselines.token_counts(tuning.training_examples(cfg)))


def gradient_scale(model: str, pair: str, train_limit: int, batch_size: int, template: str = "explicit") -> dict:
    """The size of the first batch's gradient on the touched embedding rows (per coordinate): what plain SGD
    multiplies by its learning rate, where Adam moves every touched coordinate by about lr."""


    cfg = tuning.TuneConfig(model=model, pair=pair, split="dev", limit=train_limit, template=template,
                            mode="embed", batch_size=batch_size)
    lm = models.load(model, progress=False)
    examples = tuning.training_examples(cfg, lm.tokenizer)
    loss_mod, params = trainable.prepare_model(lm, cfg, examples)
    first = tuning.batch_order(len(examples), cfg)[0]
    batch = tuning.collate([examples[i] for i in first], lm.tokenizer.pad_token_id)
    targets = int((batch["labels"][:, 1:] != -100).sum())
    (loss_mod(**batch) / targets).backward()
    g = params[0].grad
    g = g[g.abs().sum(1) > 0].abs()
    row_median = g.median(1).values
    return {"rows_touched": len(g), "median_abs_grad": float(g.median()), "mean_abs_grad": float(g.mean()),
            "row_median_p10": float(row_median.quantile(0.1)), "row_median_p90": float(row_median.quantile(0.9))}


def band_summary(table: "pd.DataFrame", band: tuple[int, int] = (12, 18),
                 rules: tuple[str, ...] = ("alpha_0.05", "bh_0.05", "bonferroni_0.05")) -> "pd.DataFrame":
    """Per optimizer, learning rate and rule: whether some snapshot's ticket lands in the paper's size band,
    and where the size crosses it (the last snapshot below the band and the first one above it)."""
    rows = []
    keys = ["model", "optimizer", "lr"] if "model" in table else ["optimizer", "lr"]
    for key, g in table.sort_values("step").groupby(keys, sort=False):
        *model, opt, lr = key
        for rule in rules:
            sizes = list(zip(g["step"].astype(int), g[rule].astype(int)))
            inside = [f"{s} steps: {n}" for s, n in sizes if band[0] <= n <= band[1]]
            below = [(s, n) for s, n in sizes if n < band[0]]
            above = [(s, n) for s, n in sizes if n > band[1]]
            rows.append({**dict(zip(["model"], model)), "optimizer": opt, "lr": lr, "rule": rule.replace("_0.05", ""),
                         "in band": "; ".join(inside) or "none",
                         "last below": f"{below[-1][1]} at {below[-1][0]} steps" if below else "-",
                         "first above": f"{above[0][1]} at {above[0][0]} steps" if above else "-"})
    return pd.DataFrame(rows)


def snapshot_ticket(run_path: str | Path, step: int, rule: str = "bh", alpha: float = 0.05,
                    counts: dict | None = None) -> "pd.DataFrame":
    """The rows a rule selects at one snapshot, in the ticket's order (larger D first): id, token, D, p and,
    given ``counts``, how often the token occurs in the training inputs."""

    run = TunedRun(run_path)
    res = snapshot_ks(run_path)[step]
    ids = [int(i) for i in select(res, rule, alpha)]
    return pd.DataFrame({"id": ids, "token": decode_tokens(run.tokenizer(), ids),
                         "D": [float(res.statistic[i]) for i in ids], "p": [float(res.pvalue[i]) for i in ids],
                         **({"train_count": [counts.get(i, 0) for i in ids]} if counts is not None else {})})


def chosen(profile: str, rule: str = "bh_0.05", at_least: int = 12, optimizer: str = "adamw",
           model: str | None = None, at_most_share: float = 0.5) -> dict:
    """The budget the profile's budget sweep chose (its saved table, the ``optimizer``'s snapshots of ``model``,
    :func:`smallest_budget`): {"lr", "steps", "rule", "alpha"}, for the chapters that discover or train at it."""

    tables = load_tables(profile, "budget_sweep")
    if tables is None:
        raise KSLError(f"profile {profile} has no budget sweep table",
                       f"run `kslottery run --profile {profile} --only budget_sweep` first")
    sweep = tables["sweep"]
    if model is not None and "model" in sweep:
        if model not in set(sweep["model"]):
            raise KSLError(f"the {profile} budget sweep did not run {model}",
                           f"add {model} to the budget sweep's models and run it")
        sweep = sweep[sweep["model"] == model]
    choice = smallest_budget(sweep[sweep["optimizer"] == optimizer], rule, at_least, at_most_share)
    if choice is None:
        raise KSLError(f"no {optimizer} budget of the {profile} sweep reaches a {rule} ticket of {at_least} rows "
                       f"(at most {at_most_share:.0%} of the changed rows) on {model or 'its model'}",
                       "extend the sweep's learning rates or snapshots")
    r = Rule.parse(rule)
    return {"lr": float(choice["lr"]), "steps": int(choice["step"]), "rule": r.rule, "alpha": r.level}
