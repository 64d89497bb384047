"""The study's experiments, one function per result the notebooks show.

Each function takes the notebook's parameters, runs (or reuses) hash-named runs through the library,
and returns a tidy ``pandas.DataFrame``; the notebooks only call these and plot.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from ..method import evaluate, models
from ..method.errors import KSLError
from . import executor
from .parameters import check_value

# Notebook parameters that are lists (papermill passes whatever the YAML holds).
LIST_PARAMS = ("pairs", "templates", "seeds", "sigmas", "lrs", "sgd_lrs", "snapshots", "reference_seeds")


def check(notebook: str, **params) -> dict:
    """Validate a notebook's parameters (papermill only warns about unknown or mistyped ones), with the one check
    the profile runner applied before the kernel started (:func:`kslottery.study.parameters.check_value`)."""
    for name, value in params.items():
        if name in LIST_PARAMS and not isinstance(value, list):
            raise KSLError(f"{notebook}: parameter {name} must be a list, got {value!r}", "pass lists through YAML")
        check_value(name, value, name, f"notebook {notebook}")
    return params


def _eval_rows(record: dict, **labels) -> list[dict]:
    rows = []
    for rule, s in record["scores"].items():
        rows.append({**labels, "rule": rule, "bleu": s["bleu"]["score"], "chrf++": s["chrf++"]["score"],
                     "spbleu": s["spbleu"]["score"], "mean_words": s["mean_words"],
                     "eos_rate": record["termination"]["eos_rate"], "cap_rate": record["termination"]["cap_rate"],
                     "run": record["run"]})
    return rows


def baseline_grid(model: str, pairs: list[str], templates: list[str], split: str = "devtest", limit: int = 200,
                  max_new_tokens: int = 128, batch_size: int = 32, drop_finished: bool = False,
                  progress: bool = True) -> pd.DataFrame:
    """The base model on every pair x template, scored under every extraction rule."""
    loaded = {}

    def lm():   # loaded only if some cell of the grid is not already a finished run
        if "lm" not in loaded:
            loaded["lm"] = models.load(model, progress=progress)
        return loaded["lm"]

    cells = [(pair, template) for pair in pairs for template in templates]
    cfgs = [evaluate.EvalConfig(model=model, pair=pair, template=template, split=split, limit=limit,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, drop_finished=drop_finished)
            for pair, template in cells]
    ex = executor.current(progress=progress)
    # serially the cells share one loaded model; a Ray worker loads its own
    score = ((lambda cfg: evaluate.evaluate(cfg, lm=lm, progress=progress)) if ex.name == "serial"
             else partial(evaluate.evaluate, progress=progress))
    rows = []
    for (pair, template), rec in zip(cells, ex.map(score, cfgs, "eval")):
        rows += _eval_rows(rec, pair=pair, template=template)
    return pd.DataFrame(rows)
