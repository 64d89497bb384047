"""Independent recomputations the smoke notebooks print under nbval: each takes a saved artifact and
recomputes a published number by another path than the one that produced it (sacrebleu directly on
the saved hypotheses; scipy on the saved rows), so a golden can fail on a wrong value, not only on a
wrong count."""

from __future__ import annotations

import re
from pathlib import Path

from ..method import evaluate
from ..method.runs import runs_root
from ..method.tuned import TunedRun
from ..study.arms import FAMILY
from ..study.claims import PAPER
from ..study.comparison import paired_seeds
from ..study.results import load_tables
from .tables import readable


def rescore_chrf(run_name: str, rule: str = "whole") -> float:
    """chrF++ of an eval run, recomputed with sacrebleu from its outputs.jsonl."""
    import sacrebleu


    rows = evaluate.outputs({"path": runs_root() / run_name})
    return sacrebleu.corpus_chrf([r["hyp"][rule] for r in rows], [[r["ref"] for r in rows]], word_order=2).score


def scores_match_outputs(table, metric: str = "chrf++") -> bool:
    """Every (run, rule) chrF++ of a scores table equals the sacrebleu recomputation from the run's outputs
    (records keep 4 decimals)."""
    cells = table[["run", "rule", metric]].drop_duplicates().to_dict("records")
    return bool(cells) and all(round(rescore_chrf(c["run"], c["rule"]), 4) == round(c[metric], 4) for c in cells)


def ks_matches_scipy(tune_path: str | Path, row_id: int, statistic: float, pvalue: float) -> bool:
    """A row's KS statistic and p as scipy.stats.ks_2samp computes them from the run's saved rows."""
    from scipy.stats import ks_2samp

    rows = TunedRun(tune_path).rows()
    i = rows["ids"].tolist().index(row_id)
    ref = ks_2samp(rows["before"][i].double().numpy(), rows["after"][i].double().numpy())
    return abs(ref.statistic - statistic) < 1e-12 and abs(ref.pvalue - pvalue) <= 1e-9 * max(ref.pvalue, 1e-300)


def claim_matches_outputs(claims_table, profile: str, claim_key: str = "embed_vs_full") -> bool | None:
    """The embed-vs-full claim's paired difference (embedding - full, mean over the fair test's paired seeds),
    recomputed with sacrebleu from the eval runs of its source table. None when the fair test did not measure it."""
    rows = claims_table[(claims_table["claim"] == PAPER[claim_key][0]) & (claims_table["source"] == "fair_test")]
    if not len(rows):
        return None
    scores = load_tables(profile, "fair_test")["scores"]
    for _, row in rows.iterrows():   # one row per model
        shown = float(re.search(r"[+-]\d+\.\d", row["this study"]).group())
        own = scores[scores["model"] == row["model"]]
        a, b = (own[own["arm"] == arm].set_index("seed")["run"] for arm in ("full fine-tuning", "embedding tuning"))
        pairs = paired_seeds(list(a.index), list(b.index))   # the chapter's pairing
        diff = sum(rescore_chrf(b[y]) - rescore_chrf(a[x]) for x, y in pairs) / len(pairs)
        if round(diff, 1) != shown:
            return False
    return True


HELD = {True: "yes", False: "NO", None: "not testable"}


class SelfChecks:
    """A page's self-checks as a small table (what was recomputed by another path, and whether it held) under
    a caption naming what the page holds. Its text form is the same table as lines, stable between runs, so
    nbval compares the values and not an object's address.

    >>> print(SelfChecks("profile smoke: 2 seeds", {"ticket equals top rows by D": True}))
    Self-checks. profile smoke: 2 seeds
    - ticket equals top rows by D: yes
    """

    def __init__(self, context: str, held: dict[str, bool | None]):
        self.context = context
        self.held = {what: None if ok is None else bool(ok) for what, ok in held.items()}

    def __repr__(self) -> str:
        return "\n".join([f"Self-checks. {self.context}"] + [f"- {w}: {HELD[ok]}" for w, ok in self.held.items()])

    def _repr_html_(self) -> str:
        import pandas as pd

        df = pd.DataFrame({"recomputed by another path": list(self.held),
                           "held": [HELD[ok] for ok in self.held.values()]})
        return readable(df, caption=f"Self-checks. {self.context}").set_uuid("self-checks").to_html()

    @property
    def all_held(self) -> bool:
        return all(ok is not False for ok in self.held.values())


def arm_scores_match_outputs(scores) -> bool:
    """A wide scores table (``chrf++ whole`` / ``chrf++ first_line`` per eval ``run``, as the fair test keeps
    it) equals sacrebleu on each run's saved outputs, rule by rule."""
    import pandas as pd

    long = pd.concat([scores[["run"]].assign(rule=rule, **{"chrf++": scores[f"chrf++ {rule}"]})
                      for rule in ("whole", "first_line")])
    return scores_match_outputs(long)


def arms_at_chosen_lrs(result: dict) -> bool:
    """Every trained arm of the fair test ran at its family's learning rate chosen on dev (read back from each
    tune run's own config, not from the plan)."""
    s = result["scores"]
    trained = s[s["arm"].map(lambda a: FAMILY[a] in ("embed", "rows", "full"))]
    return bool(len(trained)) and all(r.lr == result["lrs"][f"{FAMILY[r.arm]} (chosen)"] for r in trained.itertuples())
