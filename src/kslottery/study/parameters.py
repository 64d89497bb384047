"""What a notebook accepts: one check of a parameter's value, which the profile runner applies before any folder
or kernel exists (:mod:`kslottery.report.profile_schema`) and each notebook again on what it was given
(:func:`kslottery.study.experiments.check`, since papermill only warns).

A parameter is recognised by its name (the notebooks share one vocabulary: ``limit``, ``pairs``, ``lr_embed``
...). Without the runner's check, ``limit: 0`` or a bad pair passed the schema and failed inside the kernel, with
a 40-line papermill traceback and an empty results folder left behind.
"""

from __future__ import annotations

import math
import re

from ..method import data, prompts
from ..method.errors import KSLError
from ..method.rules import SIGNIFICANCE_RULES, Rule

# counts that must be at least 1 (None, where a notebook allows it, means "all" or "off")
COUNTS = re.compile(r"^(.*_)?(limit|batch_size|max_new_tokens|k|min_ticket|sentences|positions|n0|n|n_bootstrap|"
                    r"draws|checkpoint_every|num_beams|snapshots|train_pairs)$")
RATES = re.compile(r"^(lr(_\w+)?|lrs|sgd_lrs?|epochs|sigmas|margin|max_width)$")   # finite and > 0
LEVELS = re.compile(r"^(alpha|alphas|cert_alpha|cover)$")                          # in (0, 1]
PAIRS = re.compile(r"^(\w+_)?pairs?$")
TEMPLATES = re.compile(r"^(\w+_)?templates?$")


# settings with a closed set of values, as TuneConfig.resolved checks them (imported there with torch, which a
# profile check must not wait for)
CHOICES = {"mixed_precision": ("no", "bf16"), "prefix_init": ("random", "zero"), "preset": ("paper",)}


def _check_rule(rule: str, where: str, source: str) -> None:
    """A significance rule in the study's one spelling (:class:`kslottery.method.rules.Rule`)."""
    try:
        ok = Rule.parse(rule).rule in SIGNIFICANCE_RULES
    except KSLError:
        ok = False
    if not ok:
        raise _bad(source, where, rule, "not a rule like bonferroni_0.05",
                   f"write <rule>_<alpha> with rule one of {', '.join(SIGNIFICANCE_RULES)} and alpha in (0, 1)")


def _items(value) -> list:
    return value if isinstance(value, list) else [value]


def _bad(source: str, where: str, value, what: str, fix: str) -> KSLError:
    return KSLError(f"{source}: {where} is {value!r}, {what}", fix)


def _known_codes() -> set[str] | None:
    """FLORES's language codes, where the data folder is set (else the notebook names a missing folder)."""
    try:
        return set(data.flores_languages("devtest"))
    except KSLError:
        return None


def check_value(name: str, value, where: str, source: str) -> None:
    """One parameter's value against what its notebook does with it (each element of a list); ``source`` opens
    the message ("profile profiles/mine.yaml", "notebook six_pairs")."""
    if value is None:
        return
    for item in _items(value):
        if isinstance(item, bool) or isinstance(item, (list, dict)):
            continue   # kinds are the schema's business (check_parameters); a list of budgets is checked below
        if COUNTS.match(name) and not (isinstance(item, int) and item >= 1):
            raise _bad(source, where, item, "not a count of at least 1", f"give {name} 1 or more")
        if RATES.match(name) and not (isinstance(item, (int, float)) and math.isfinite(item) and item > 0):
            raise _bad(source, where, item, "not a finite number > 0", f"give {name} a positive number, like 0.01")
        if LEVELS.match(name) and not (isinstance(item, (int, float)) and 0 < item <= 1):
            raise _bad(source, where, item, "not a level in (0, 1]", f"give {name} a level like 0.05")
        if name in CHOICES and item not in CHOICES[name]:
            raise _bad(source, where, item, f"not one of {', '.join(CHOICES[name])}",
                       f"give {name} as one of {', '.join(CHOICES[name])}")
        if name.endswith("rule") and isinstance(item, str):
            _check_rule(item, where, source)
        if PAIRS.match(name) and isinstance(item, str):
            _check_pair(item, where, source)
        if TEMPLATES.match(name) and isinstance(item, str) and item != prompts.SAMPLED:
            if item not in prompts.TEMPLATES:
                raise _bad(source, where, item, "not a prompt template", f"use one of {', '.join(prompts.TEMPLATES)}")
    lr, steps = (value + [None, None])[:2] if isinstance(value, list) and len(value) == 2 else (None, None)
    if name.endswith("_budget") and not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0
                                         and isinstance(steps, int) and steps >= 1):
        raise _bad(source, where, value, "not a budget [lr, steps]", f"give {name} as [learning rate > 0, steps >= 1]")


def _check_pair(pair: str, where: str, source: str) -> None:
    try:
        src, tgt = data.parse_pair(pair)
        prompts.language_name(src), prompts.language_name(tgt)   # the prompt names both languages
    except KSLError as e:
        raise KSLError(f"{source}: {where}: {e.problem}", e.fix) from None
    known = _known_codes()
    for code in (src, tgt):
        if known is not None and code not in known:
            raise KSLError(f"{source}: {where}: FLORES-200 has no language {code!r}",
                           f"use one of: {', '.join(sorted(known))}")
