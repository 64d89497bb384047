"""The fair test (protocol ``fair-v2``, :mod:`kslottery.study.design`): on each model, each arm family at its own
learning rate chosen on held-out dev pairs, tickets discovered at their own budgets, the exposure and frequency
controls, and outcomes that say which way by rules fixed in advance (:mod:`kslottery.study.verdicts`).

    >>> d = Design.from_profile(profile)                                                   # doctest: +SKIP
    >>> r = {m: fair_test(d, m, adam=(1e-2, 8)) for m in d.models}                          # doctest: +SKIP
    >>> comparisons(r, d)                                                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from ..method import baselines, data, evaluate
from ..method.errors import KSLError
from ..method.ticket import Rule
from .arms import FAMILY, REGISTRY, Trunk, arms, plan, prefetch, ticket_for
from .comparison import compare, paired_seeds, shown_interval
from .design import FAMILIES, SELECTION_TICKETS, Design
from .recipe import Recipe
from .results import slug
from .verdicts import claim_verdict, extend_grid, holm, outcome, t_interval, t_p_value, t_tost_p, union


def select_lr(train: Callable[[float, int], dict], score: Callable[[str], float], grid, seeds) -> dict:
    """Train at every (lr, seed) of the grid and keep the lr with the best mean held-out score (ties: the
    smaller lr). Returns {"table": one row per run, "means": mean score per lr, "chosen": the lr}."""
    rows = []
    for lr in grid:
        for seed in seeds:
            run = train(lr, seed)
            rows.append({"lr": lr, "seed": seed, "dev chrf++": score(run["path"]), "run": run["run"]})
    table = pd.DataFrame(rows)
    means = table.groupby("lr")["dev chrf++"].mean().sort_index()
    return {"table": table, "means": means, "chosen": float(means.idxmax())}


def grid_edges(selection: dict) -> str:
    """A sentence on whether any family's chosen rate is the lowest or highest point of its grid: there a
    better rate may lie outside the grid, and the arm's "own best rate" is only the grid's best."""
    edges = []
    for family, sel in selection.items():
        grid = sorted(float(lr) for lr in sel["means"].index)
        if len(grid) > 1 and sel["chosen"] in (grid[0], grid[-1]):
            side = "lowest" if sel["chosen"] == grid[0] else "highest"
            grown = sel.get("extended", 0)   # the rule already extended it: said, as the edge remains
            after = f" after {grown} extension{'s' * (grown > 1)} of the stated grid" if grown else ""
            edges.append(f"{family} ({sel['chosen']:g}, its grid's {side} point{after})")
    if not edges:
        return "every family's chosen rate lies inside its grid"
    return "the chosen rate is at the edge of the grid for " + "; ".join(edges) + ": a better rate may lie outside it"


def dev_config(proto: Recipe, design: Design, path: str):
    """The eval config of a run on the held-out dev pairs: dev[train_pairs:][:dev_sentences]."""
    return proto.eval_config(path, split="dev", offset=design.dev_offset(), limit=design.dev_sentences)


def dev_score(proto: Recipe, design: Design) -> Callable[[str], float]:
    """chrF++ (whole continuation) of a run on the held-out dev pairs: dev[train_pairs:][:dev_sentences]."""
    def score(path: str) -> float:
        rec = proto.score(path, split="dev", offset=design.dev_offset(), limit=design.dev_sentences)
        return rec.chrf("whole")
    return score


def selections(proto: Recipe, design: Design, main: Trunk) -> dict:
    """:func:`select_lr` for every family: its grid (family x lr x seed; for rows also x the design's selection
    tickets, whose mean decides) trained at once through the executor and scored on the held-out dev pairs; then
    the extension rule (:func:`kslottery.study.verdicts.extend_grid`): a family whose best point is at an edge of
    its grid gets the next point past it, trained and scored the same way, at most ``design.extend_most`` times.
    Devtest is never read."""
    prec = {f: {"mixed_precision": design.precision[f]} for f in FAMILIES}
    configs = {"embed": lambda lr, u: proto.config(mode="embed", lr=lr, seed=u[0], **prec["embed"]),
               "rows": lambda lr, u: proto.config(mode="rows", lr=lr, seed=u[0], ticket=tuple(
                   ticket_for(REGISTRY[_ARM_OF[u[1]]], main, u[0])), **prec["rows"]),
               "full": lambda lr, u: proto.config(mode="full", lr=lr, seed=u[0], **prec["full"])}
    # the units a family's mean runs over: (seed, ticket source) pairs, the source None outside the rows family
    units = {f: [(s, src) for s in design.selection_seeds[f]
                 for src in (SELECTION_TICKETS[design.selection_ticket] if f == "rows" else (None,))] for f in configs}
    grids = {f: list(design.lr_grids[f]) for f in configs}
    trained, dev, added = {}, {}, dict.fromkeys(configs, 0)
    todo = [(f, lr) for f in configs for lr in grids[f]]
    while todo:
        grid = [(f, lr, u) for f, lr in todo for u in units[f]]
        trained |= dict(zip(grid, proto.tune_all([configs[f](lr, u) for f, lr, u in grid])))
        paths = [p for p in dict.fromkeys(trained[g]["path"] for g in grid) if p not in dev]
        dev |= {p: rec.chrf("whole") for p, rec in
                zip(paths, proto.score_all([dev_config(proto, design, p) for p in paths]))}
        todo = []
        for f in configs:
            means = {lr: sum(dev[trained[(f, lr, u)]["path"]] for u in units[f]) / len(units[f]) for lr in grids[f]}
            nxt = extend_grid(means, design.extend_step, design.extend_most, added[f])
            if nxt is not None:
                nxt = float(f"{nxt:.2g}")   # 1e-4 / 3 -> 3.3e-05: a rate a reader can type
                grids[f].append(nxt)
                added[f] += 1
                todo.append((f, nxt))
    out = {f: select_lr(lambda lr, u, f=f: trained[(f, lr, u)], lambda path: dev[path], sorted(grids[f]), units[f])
           for f in configs}
    for f in configs:
        out[f] |= {"extended": added[f], "stated": tuple(float(x) for x in design.lr_grids[f])}
        table = out[f]["table"]   # its "seed" column holds the units: split them into seed and ticket
        out[f]["table"] = table.assign(seed=[u[0] for u in table["seed"]], ticket=[u[1] for u in table["seed"]])
    return out


# The arm whose ticket a selection ticket source trains (its runs at the chosen rate are that arm's runs).
_ARM_OF = {"ks": "Adam ticket", "frequency-matched": "frequency-matched rows"}


def fair_test(design: Design, model: str, adam: tuple[float, int], sgd: tuple[float, int] | None = None, *,
              template: str = "explicit", max_new_tokens: int = 96, eval_batch_size: int = 32,
              drop_finished: bool = False, progress: bool = True) -> dict:
    """On one model: discovery at the stated budgets (``adam`` and, when the design runs an SGD arm, ``sgd``:
    (lr, steps) from the budget sweep's rule), the learning rate of every family chosen on held-out dev pairs,
    then every arm of the design on its seeds, scored on devtest[test_offset:][:test_sentences]. Returns
    {"model", "selection": {family: select_lr result}, "lrs", "scores", "hyps", "refs", "tgt", "trunks"}."""
    proto = Recipe(model=model, pair=design.pair, train_limit=design.train_pairs, eval_limit=design.test_sentences,
                   template=template, epochs=design.epochs, batch_size=design.batch_size,
                   max_new_tokens=max_new_tokens, eval_batch_size=eval_batch_size, drop_finished=drop_finished,
                   progress=progress)
    rule = Rule.parse(design.discovery_rule)
    seeds = design.seed_lists()
    budgets = [("main", adam, {})]
    if design.sgd_trunk():
        if sgd is None:
            raise KSLError(f"protocol {design.name} runs an SGD arm but no SGD budget was given",
                           "run the budget sweep's SGD snapshots or drop the SGD arms")
        budgets.append(("sgd", sgd, {"optimizer": "sgd"}))
    # the stages: the trunks' discovery tunings, the learning-rate grids (dev only), then the arms
    trunks, steps_of = {}, {}
    for name, (lr, steps), extra in budgets:
        make = lambda n, lr=lr, extra=extra: Trunk(proto, {"embed": lr}, seeds, rule=rule.rule,   # noqa: E731
                                                   alpha=rule.level, options={"max_steps": n},
                                                   embed_options=extra, arm_options={})
        trunks[name] = discovery_budget(design, make, steps)
        steps_of[name] = (lr, trunks[name].options["max_steps"], steps)
    selection = selections(proto, design, trunks["main"])
    lrs = {f"{f} (chosen)": sel["chosen"] for f, sel in selection.items()}
    for t in trunks.values():
        t.arm_lrs = {f: sel["chosen"] for f, sel in selection.items()}
        t.arm_precision = dict(design.precision)
    bitext = data.load_flores(design.pair, "devtest", limit=design.test_sentences, offset=design.test_offset)
    rows, hyps = [], {}
    branches = plan(trunks, [REGISTRY["base"], *arms(*design.arms)])
    configs = [proto.eval_config(b.path, offset=design.test_offset) for b in branches]
    for b, rec in zip(branches, proto.score_all(configs)):
        hyps[(b.arm, b.seed)] = evaluate.hypotheses(rec)
        rows.append({"model": model, "arm": b.arm, "seed": b.seed,
                     "rows": len(b.ticket) if b.ticket is not None else None,
                     "chrf++ whole": rec.chrf("whole"),
                     "chrf++ first_line": rec.chrf("first_line"),
                     "eos_rate": rec.eos_rate, "run": rec["run"],
                     "trained": b.run["run"] if b.run else None,
                     "lr": (b.run or {}).get("config", {}).get("lr"), "ticket": b.ticket})
    return {"model": model, "selection": selection, "lrs": lrs, "scores": pd.DataFrame(rows), "hyps": hyps,
            "refs": bitext.tgt, "tgt": bitext.tgt_lang, "trunks": trunks, "budgets": steps_of}


def discovery_budget(design: Design, make: Callable[[int], Trunk], steps: int) -> Trunk:
    """The trunk whose discoveries every arm's ticket comes from, at ``steps`` (the sweep's choice on seed 0) or,
    under ``design.raise_steps`` (fair-v2.2), the fewest steps past it at which *every* seed's ticket obeys the
    sweep's own size rule: at least ``min_ticket`` rows and at most ``max_ticket_share`` of the rows its tuning
    changed. One step count for all seeds; discoveries only, so no score is read. ``make(n)``: the trunk at n
    steps. Refuses in one line when no count within reach holds."""
    found = {}
    for n in range(steps, steps + design.raise_steps + 1):
        trunk = make(n)
        prefetch([(trunk, s) for s in trunk.seeds["seeds"]])
        if not design.raise_steps:
            trunk.require_tickets()
            return trunk
        found[n] = {s: (len(trunk.ticket(s)), int(trunk.discovery(s)["n_changed"])) for s in trunk.seeds["seeds"]}
        if all(design.min_ticket <= k <= design.max_ticket_share * c for k, c in found[n].values()):
            return trunk
    sizes = "; ".join(f"{n} steps: " + ", ".join(f"seed {s} {k}/{c}" for s, (k, c) in f.items())
                      for n, f in found.items())
    raise KSLError(f"no discovery budget from {steps} to {steps + design.raise_steps} steps gives every seed a ticket "
                   f"of {design.min_ticket} rows to {design.max_ticket_share:.0%} of its changed rows ({sizes})",
                   "raise the protocol's raise_steps, or amend its budget rule before any score")


def budget_words(results: dict) -> str:
    """The discovery budget each model's tickets came from, in words, and the sweep's choice where fair-v2.2's
    rule raised it: "gemma3-270m lr 0.01 x 5 steps; smollm2-135m lr 0.02 x 10 steps (the sweep chose 9)"."""
    parts = []
    for model, r in results.items():
        lr, steps, sweep = r["budgets"]["main"]
        parts.append(f"{model} lr {lr:g} × {steps} steps" + (f" (the sweep chose {sweep})" if steps != sweep else ""))
    return "; ".join(parts)


def caption_seeds(design: Design) -> str:
    """The seeds a figure's arms ran on, for its caption: the primary arms', then the two groups that run fewer."""
    show = lambda seeds: ", ".join(map(str, seeds))   # noqa: E731
    return (f"{show(design.seeds)} (full fine-tuning {show(design.full_seeds)}; secondary arms "
            f"{show(design.secondary_seeds)})")


def comparisons(results: dict, design: Design, rule: str = "whole") -> pd.DataFrame:
    """Every declared comparison on every model (``results``: {model: :func:`fair_test` result}): b − a, the
    bootstrap (the design's scheme) and seed-level t intervals at 95 % and 90 %, their unions, the p of no
    difference and the p of no equivalence (TOST at the margin), each the larger of the t test's and the
    bootstrap's, Holm-adjusted per model over both tests of the primary comparisons (the family that decides the
    claims) and separately of the secondary ones, the outcome (:func:`kslottery.study.verdicts.outcome`) and the
    claim's verdict it gives."""
    rows = []
    for model, result in results.items():
        hyps = result["hyps"]
        seeds_of: dict[str, list] = {}
        for arm, seed in hyps:
            seeds_of.setdefault(arm, []).append(seed)
        for role, a, b, kind in design.comparisons():
            if a not in seeds_of or b not in seeds_of:
                raise KSLError(f"{model}: comparison {b} - {a}: an arm was not run", "run every arm of the design")
            pairs = [(hyps[(a, x)][rule], hyps[(b, y)][rule]) for x, y in paired_seeds(seeds_of[a], seeds_of[b])]
            boot = compare(pairs, result["refs"], result["tgt"], n=design.n_bootstrap, scheme=design.bootstrap,
                           margin=design.margin)
            per_seed = boot["per_seed"]
            mean, t_lo, t_hi = t_interval(per_seed, 0.95)
            _, t90_lo, t90_hi = t_interval(per_seed, 0.90)
            rows.append({"model": model, "role": role, "a": a, "b": b, "kind": kind, "seeds": len(per_seed),
                         "b - a": mean, "bootstrap 95 %": tuple(boot["ci95"]), "t 95 %": (t_lo, t_hi),
                         "bootstrap 90 %": tuple(boot["ci90"]), "t 90 %": (t90_lo, t90_hi),
                         "p (seeds)": t_p_value(per_seed), "p (bootstrap)": boot["p"],
                         "p equivalence (seeds)": t_tost_p(per_seed, design.margin),
                         "p equivalence (bootstrap)": boot["p_tost"], "per seed": per_seed})
    out = pd.DataFrame(rows)
    # each test's p: the larger of the t test's and the bootstrap's, as the union is the wider interval
    out["p"] = out[["p (seeds)", "p (bootstrap)"]].max(axis=1)
    out["p equivalence"] = out[["p equivalence (seeds)", "p equivalence (bootstrap)"]].max(axis=1)
    out["p difference (Holm)"] = out["p equivalence (Holm)"] = float("nan")
    for _, part in out.groupby(["model", "role"], sort=False):
        # one family per model and role: both deciding tests of each comparison (difference and equivalence)
        family = {("diff", i): p for i, p in part["p"].items()} | {("eq", i): p for i, p in part["p equivalence"].items()}
        adjusted = holm(family)
        for (test, i), p in adjusted.items():
            out.loc[i, "p difference (Holm)" if test == "diff" else "p equivalence (Holm)"] = p
    # The intervals the rule reads: the union of the bootstrap and the t interval (the smallest interval that
    # holds both, so at least as wide as either); equivalence reads the 90 % union, a difference the 95 % one.
    out["90 % (union)"] = [union(b, t) for b, t in zip(out["bootstrap 90 %"], out["t 90 %"])]
    out["95 % (union)"] = [union(b, t) for b, t in zip(out["bootstrap 95 %"], out["t 95 %"])]
    out["outcome"] = [outcome(r["90 % (union)"], r["95 % (union)"], design.margin, r["p difference (Holm)"], design.alpha,
                              p_equivalence=r["p equivalence (Holm)"]) for _, r in out.iterrows()]
    out["verdict"] = [claim_verdict(o, k) for o, k in zip(out["outcome"], out["kind"])]
    out["margin"] = design.margin
    out["protocol"] = design.name
    return out


def said(row, short: bool = False) -> str:
    """A comparison's outcome in words with its direction, size and interval. In full, naming the model and the arms:
    "on gemma3-270m, Adam ticket is worse than embedding tuning by 2.3 chrF++ (95 % [1.6, 3.1])"; ``short``, for a
    table cell whose row and column name them: "worse by 2.3 chrF++ (95 % interval 1.6 to 3.1)"."""
    diff, lo, hi, l90, h90 = shown_interval(row)
    word, a, b = row["outcome"], row["a"], row["b"]
    span = (lambda x, y: f"{x:.1f} to {y:.1f}") if short else (lambda x, y: f"[{x:.1f}, {y:.1f}]")
    on, unit = ("", "") if short else (f"on {row['model']}, ", " chrF++")
    if word == "inconclusive":
        rest = "" if short else f", 90 % {span(l90, h90)}, margin ±{row['margin']:g}"
        interval = "; 95 % interval " if short else ", 95 % "
        return f"{on}{b} against {a}: " * (not short) + (f"inconclusive ({diff:+.1f} chrF++{interval}{span(lo, hi)}"
                                                          f"{rest})")
    if word == "equivalent":
        within = "" if short else f"{b} is equivalent to {a} within ±{row['margin']:g} chrF++ "
        interval = " chrF++; 90 % interval " if short else ", 90 % "
        return f"{on}{within}" + ("equivalent " if short else "") + f"({diff:+.1f}{interval}{span(l90, h90)})"
    way = "better" if diff > 0 else "worse"
    near, far = sorted((abs(lo), abs(hi)))
    beyond = ", beyond the margin" if word.endswith("margin") else ""
    if short:   # a table cell keeps "beyond the margin": without it a reader cannot tell how far the difference goes
        text = f"{way} by {abs(diff):.1f} chrF++ (95 % interval {span(near, far)}{beyond})"
        return ("equivalent, slightly " + text) if word.startswith("equivalent") else text
    slightly = "slightly " if word.startswith("equivalent") else ""
    return f"{on}{b} is {slightly}{way} than {a} by {abs(diff):.1f}{unit} (95 % {span(near, far)}{beyond})"


def key_comparisons(comps: pd.DataFrame) -> pd.DataFrame:
    """The primary comparisons of every model, for the results chapter: the outcome first (a narrow column scrolls
    out of view last), then b − a, the 90 % union that equivalence reads and the 95 % union a difference reads,
    the Holm-adjusted p of each deciding test (difference, equivalence) and the paired seeds."""
    rows = []
    for _, r in comps[comps["role"] == "primary"].iterrows():
        rows.append({"model": r["model"], "comparison": f"{r['b']} − {r['a']}", "outcome": r["outcome"],
                     "b − a": r["b - a"], "90 % union": r["90 % (union)"], "95 % union": r["95 % (union)"],
                     "p difference (Holm)": r["p difference (Holm)"], "p equivalence (Holm)": r["p equivalence (Holm)"],
                     "seeds": int(r["seeds"])})
    return pd.DataFrame(rows)


def exposure(result: dict) -> pd.DataFrame:
    """Per seed: the discovery's steps and the rows its tuning changed, how many rows the first batch of the
    discovery tuning already reaches (the earliest-seen rows
    beyond that many are chosen among ties), how much the Adam ticket overlaps the earliest-seen rows and the most
    frequent rows (Jaccard), and the paired score differences of those arms (whole continuation)."""
    s = result["scores"]
    trunk = result.get("trunks", {}).get("main")
    rows = []
    for seed in sorted(set(s.loc[s["arm"] == "Adam ticket", "seed"])):
        at = lambda arm, seed=seed: s[(s["arm"] == arm) & (s["seed"] == seed)]   # noqa: E731
        ticket = set(at("Adam ticket")["ticket"].iloc[0])
        row = {"model": result["model"], "seed": seed, "Adam ticket rows": len(ticket)}
        if trunk is not None:
            row["discovery steps"] = int(trunk.options["max_steps"])
            row["rows changed"] = int(trunk.discovery(int(seed))["n_changed"])
            first = baselines.first_gradient_step(*trunk.batches(int(seed)))
            row["rows first seen at step 1"] = sum(step == 1 for step in first.values())
        for arm in ("earliest-seen rows", "most frequent rows"):
            other = at(arm)
            if len(other):
                ids = set(other["ticket"].iloc[0])
                row[f"Jaccard with {arm}"] = len(ticket & ids) / len(ticket | ids)
                row[f"Adam ticket - {arm}"] = at("Adam ticket")["chrf++ whole"].iloc[0] - other["chrf++ whole"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def selection_table(result: dict) -> pd.DataFrame:
    """One row per family and grid point: the mean held-out dev score, its seeds, and whether it was chosen."""
    rows = []
    for family, sel in result["selection"].items():
        for lr, mean in sel["means"].items():
            runs = sel["table"].loc[sel["table"]["lr"] == lr]
            rows.append({"model": result["model"], "family": family, "lr": lr, "dev chrF++ (mean)": mean,
                         "runs": len(runs), "chosen": lr == sel["chosen"],
                         "added by the extension rule": float(lr) not in sel.get("stated", (lr,))})
    return pd.DataFrame(rows)


def arm_table(result: dict) -> pd.DataFrame:
    """One row per arm: its family's chosen lr, seeds, ticket size, and mean devtest scores over its seeds
    (whole continuation, first line) with the share of outputs that stopped by themselves."""
    s = result["scores"]
    rows = []
    for arm, g in s.groupby("arm", sort=False):
        rows.append({"model": result["model"], "arm": arm, "family": FAMILY[arm], "lr": g["lr"].dropna().iloc[0]
                     if g["lr"].notna().any() else None, "seeds": len(g),
                     "rows": g["rows"].mean() if g["rows"].notna().any() else None,
                     "chrF++ whole": g["chrf++ whole"].mean(), "chrF++ first line": g["chrf++ first_line"].mean(),
                     "stops by itself": g["eos_rate"].mean()})
    return pd.DataFrame(rows)


def headline_values(result: dict, comps: pd.DataFrame, exposure_table: pd.DataFrame) -> dict:
    """The numbers the book's prose cites from one model's fair test, keyed for glue, every key prefixed by the
    model's slug (``gemma3_270m_``): per comparison
    ``<slug of b>_vs_<slug of a>_{diff,boot_lo,boot_hi,t_lo,t_hi,u90_lo,u90_hi,verdict,outcome,seeds}`` (``u90``: the 90 %
    union an equivalence outcome reads), each family's chosen lr
    (``lr_<family>``) and whether any sits at its grid's edge (``lr_edges``, a sentence), each arm's mean devtest
    chrF++ (``mean_<slug of arm>``, whole continuation), the margin
    against embedding tuning's gain over the base model (``margin_in_gain``, a sentence), the Adam and
    SGD ticket sizes (``<trunk>_rows_{min,max}``), the rows the first batch reaches
    (``first_batch_rows_{min,max}``) and the mean Jaccard overlaps of the exposure control with the number of seeds
    each is a mean over (``jaccard_<arm>[_seeds]``). Plain
    Python values."""
    out = {}
    comps = comps[comps["model"] == result["model"]]
    for _, r in comps.iterrows():
        key = f"{slug(r['b'])}_vs_{slug(r['a'])}"
        out |= {f"{key}_diff": float(r["b - a"]), f"{key}_verdict": str(r["verdict"]), f"{key}_seeds": int(r["seeds"]),
                f"{key}_outcome": str(r["outcome"]), f"{key}_said": said(r),
                f"{key}_boot_lo": float(r["bootstrap 95 %"][0]), f"{key}_boot_hi": float(r["bootstrap 95 %"][1]),
                f"{key}_t_lo": float(r["t 95 %"][0]), f"{key}_t_hi": float(r["t 95 %"][1]),
                f"{key}_u90_lo": float(r["90 % (union)"][0]), f"{key}_u90_hi": float(r["90 % (union)"][1])}
    out |= {f"lr_{family}": float(sel["chosen"]) for family, sel in result["selection"].items()}
    if result["selection"]:
        out["lr_edges"] = grid_edges(result["selection"])
    s = result["scores"]
    arms = arm_table(result)
    out |= {f"mean_{slug(arm)}": float(m) for arm, m in zip(arms["arm"], arms["chrF++ whole"])}
    if len(comps) and {"mean_base", "mean_embedding_tuning"} <= out.keys():
        # the margin is fixed in chrF++; a reader needs it against the gain it judges
        margin, gain = float(comps["margin"].iloc[0]), out["mean_embedding_tuning"] - out["mean_base"]
        out["margin_in_gain"] = (f"the margin of {margin:g} chrF++ is {margin / gain:.0%} of embedding tuning's gain "
                                 f"over the base model ({gain:+.1f} chrF++)" if gain > 0 else
                                 f"embedding tuning gains nothing over the base model ({gain:+.1f} chrF++), so the "
                                 f"margin of {margin:g} chrF++ cannot be read against its gain")
    if "budgets" in result:   # the discovery budget used, and the sweep's choice it started from (fair-v2.2)
        lr, steps, sweep = result["budgets"]["main"]
        out |= {"discovery_lr": float(lr), "discovery_steps": int(steps), "sweep_steps": int(sweep)}
    for arm, key in (("Adam ticket", "adam"), ("SGD ticket", "sgd")):
        rows = s.loc[s["arm"] == arm, "rows"].dropna()
        if len(rows):
            out |= {f"{key}_rows_min": int(rows.min()), f"{key}_rows_max": int(rows.max())}
    if "rows first seen at step 1" in exposure_table.columns:
        first = exposure_table["rows first seen at step 1"]
        out |= {"first_batch_rows_min": int(first.min()), "first_batch_rows_max": int(first.max())}
    for col in exposure_table.columns:
        if col.startswith("Jaccard with "):
            key = f"jaccard_{slug(col.removeprefix('Jaccard with '))}"
            # the mean over the seeds that arm ran on (a secondary arm runs on fewer): the prose names how many
            out |= {key: float(exposure_table[col].mean()), f"{key}_seeds": int(exposure_table[col].notna().sum())}
    out["arms_scored"] = int(len(s))
    out["extended"] = ", ".join(f"{f} {sel['extended']}" for f, sel in result["selection"].items())
    prefix = slug(result["model"])
    return {f"{prefix}_{k}": v for k, v in out.items()}
