"""What a fair-test design costs before it runs: its runs counted from the design, times measured beforehand.

The protocol states its cost before the first score (issue: the default profile must fit 12 hours on the
2-core machine): :func:`estimate` counts every tuning step and every scored sentence the design implies, per
model and stage, and prices them with step and scoring times recorded on the target machine. The worst case
counts every extension of every learning-rate grid.

    >>> d = Design(models=("m",), train_pairs=64, batch_size=8, seeds=(0, 1), full_seeds=(0, 1),
    ...            secondary_seeds=(0, 1), arms=("embedding tuning", "full fine-tuning", "Adam ticket",
    ...            "top-18 by D", "earliest-seen rows", "frequency-matched rows"), sgd_lrs=(), selection_ticket="ks")
    >>> t = estimate(d, {"m": Times(step={"embed": 1.0, "rows": 1.0, "full": 2.0}, sentence=0.1)})
    >>> int(t["hours"].sum() * 3600)
    1362
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..method.runs import runs_root
from ..method.status import finished_runs, tune_steps
from .arms import FAMILY, REGISTRY
from .design import SELECTION_TICKETS, Design


@dataclass(frozen=True)
class Times:
    step: dict = None      # seconds per optimizer step, per family (embed, rows, full), at the design's batch
    sentence: float = 0.0  # seconds per scored sentence, at the profile's decoding settings
    ks: float = 0.0        # seconds of one KS test over every embedding row (a sweep snapshot, a discovery)
    source: str = ""       # where the times were measured


def estimate(design: Design, times: dict[str, Times], discovery_steps: int = 16,
             other_hours: float = 0.0) -> pd.DataFrame:
    """Per model and stage: the runs, tuning steps and scored sentences the design implies and their hours at
    ``times`` ({model: Times}); discovery at most ``discovery_steps`` steps (the budget is chosen by the sweep);
    ``worst`` adds every grid extension. ``other_hours``: the profile's other chapters, one row."""
    epoch = math.ceil(design.train_pairs / design.batch_size * design.epochs)
    rows = []
    for model in design.models:
        t = times[model]
        sweeps = len(design.adam_lrs) + (len(design.sgd_lrs) if design.sgd_trunk() else 0)
        trunks = 2 if design.sgd_trunk() else 1
        # the rows family's mean runs over the selection tickets too
        per_lr = {f: len(design.selection_seeds[f]) * (len(SELECTION_TICKETS[design.selection_ticket]) if f == "rows"
                                                       else 1) for f in design.lr_grids}
        grid = {f: len(design.lr_grids[f]) * per_lr[f] for f in design.lr_grids}
        extra = {f: design.extend_most * per_lr[f] for f in design.lr_grids}
        # an arm's run at its family's chosen lr and a selection seed is the selection's own run, reused
        reused = {"embedding tuning": "embed", "full fine-tuning": "full", "Adam ticket": "rows"}
        if "frequency-matched" in SELECTION_TICKETS[design.selection_ticket]:
            reused["frequency-matched rows"] = "rows"
        arm_runs = {f: 0 for f in ("embed", "rows", "full")}
        scored = 1   # the base model
        for arm in design.arms:
            seeds = design.seeds_of(arm)
            scored += len(seeds)
            family = FAMILY[arm]
            if REGISTRY[arm].kind == "tune":
                own = set(design.selection_seeds[reused[arm]]) if arm in reused else set()
                arm_runs[family] += len(set(seeds) - own)
        stages = [
            ("budget sweep", sweeps, sweeps * (max(design.sweep_snapshots) * t.step["embed"]
                                               + len(design.sweep_snapshots) * t.ks), 0),
            ("discovery", trunks * len(design.seeds),
             trunks * len(design.seeds) * (discovery_steps * t.step["embed"] + t.ks), 0),
            ("learning-rate selection", sum(grid.values()), sum(n * epoch * t.step[f] for f, n in grid.items()),
             sum(grid.values()) * design.dev_sentences),
            ("grid extensions (worst case)", sum(extra.values()), sum(n * epoch * t.step[f] for f, n in extra.items()),
             sum(extra.values()) * design.dev_sentences),
            ("arms", sum(arm_runs.values()), sum(n * epoch * t.step[f] for f, n in arm_runs.items()),
             scored * design.test_sentences),
        ]
        for stage, runs, train_s, sentences in stages:
            rows.append({"model": model, "stage": stage, "runs": runs, "train hours": train_s / 3600,
                         "scored sentences": sentences, "score hours": sentences * t.sentence / 3600})
    if other_hours:
        rows.append({"model": "", "stage": "the profile's other chapters", "runs": 0, "train hours": other_hours,
                     "scored sentences": 0, "score hours": 0.0})
    out = pd.DataFrame(rows)
    out["hours"] = out["train hours"] + out["score hours"]
    return out


def progress(design: Design, root=None, discovery_steps: int = 16) -> pd.DataFrame:
    """Per model: the tuning steps and scored sentences the design plans (counted as :func:`estimate` counts them,
    without grid extensions), those its finished runs in ``root`` already hold, and the hours left at the seconds
    a step and a sentence those runs recorded (NaN until one has finished). The design's runs: tunings on its
    pair, training pairs and batch; scores of its pair's test sentences or held-out dev sentences. A profile
    that runs over several sittings (the default on two cores) says here how far it got."""
    unit = {m: Times(step=dict.fromkeys(("embed", "rows", "full"), 1.0), sentence=1.0) for m in design.models}
    plan = estimate(design, unit, discovery_steps)
    plan = plan[plan["stage"] != "grid extensions (worst case)"].groupby("model")[["train hours", "scored sentences"]].sum()
    done = {m: {"steps": 0, "step_s": 0.0, "sentences": 0, "sentence_s": 0.0} for m in design.models}
    scored = {("devtest", design.test_offset), ("dev", design.dev_offset())}   # the arms' and the selection's
    for name, meta, record in finished_runs(runs_root(root), ("tune", "eval")):
        p = meta["params"]
        if p.get("model") not in done or p.get("pair") != design.pair:
            continue
        d, wall = done[p["model"]], record.get("wall_s", 0.0)
        if name.startswith("tune-") and (p.get("limit"), p.get("batch_size")) == (design.train_pairs, design.batch_size):
            d["steps"] += tune_steps(p) or 0
            d["step_s"] += wall
        elif name.startswith("eval-") and (p.get("split"), p.get("offset")) in scored:
            d["sentences"] += p.get("limit") or 0
            d["sentence_s"] += wall
    rows = []
    for m in design.models:
        d = done[m]
        steps, sentences = round(plan.loc[m, "train hours"] * 3600), int(plan.loc[m, "scored sentences"])
        per_step = d["step_s"] / d["steps"] if d["steps"] else float("nan")
        per_sentence = d["sentence_s"] / d["sentences"] if d["sentences"] else float("nan")
        left = (max(steps - d["steps"], 0) * per_step + max(sentences - d["sentences"], 0) * per_sentence) / 3600
        rows.append({"model": m, "tuning steps": d["steps"], "of steps": steps, "scored sentences": d["sentences"],
                     "of sentences": sentences, "s a step": per_step, "s a sentence": per_sentence, "hours left": left})
    return pd.DataFrame(rows)


def progress_lines(table: pd.DataFrame) -> list[str]:
    """:func:`progress` as the lines ``kslottery status --profile`` prints."""
    def rate(x: float, unit: str) -> str:
        return "no rate yet" if math.isnan(x) else f"{x:.1f} s a {unit}"
    lines = []
    for r in table.to_dict("records"):
        left = "unknown until a run of each kind finished" if math.isnan(r["hours left"]) else f"about {r['hours left']:.1f} h"
        lines.append(f"{r['model']}: tuning steps {r['tuning steps']}/{r['of steps']} ({rate(r['s a step'], 'step')}), "
                     f"scored sentences {r['scored sentences']}/{r['of sentences']} ({rate(r['s a sentence'], 'sentence')}); "
                     f"left: {left}")
    return lines
