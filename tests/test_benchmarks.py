"""The benchmarks' decisions that govern a profile: the precision rule, applied to measured rows."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from training_precision import decide  # noqa: E402


def _rows(change: dict):
    """Both models, every family, both precisions: bf16 0.3 chrF++ up, 1 % lower loss, 1.25x faster, 6 GiB;
    ``change`` maps (model, family) to the bf16 fields that differ."""
    quality, speed = [], []
    for m in ("gemma3-270m", "smollm2-135m"):
        for f in ("embed", "rows", "full"):
            for p in ("fp32", "bf16"):
                q = {"model": m, "family": f, "precision": p, "dev_chrf": 32.0, "final_loss": 1.60}
                s = {"model": m, "family": f, "precision": p, "s_per_step": 5.0, "peak_rss_gib": 6.0}
                if p == "bf16":
                    q |= {"dev_chrf": 32.3, "final_loss": 1.584}
                    s |= {"s_per_step": 4.0}
                    for key, value in change.get((m, f), {}).items():
                        (q if key in q else s)[key] = value
                quality.append(q)
                speed.append(s)
    return quality, speed


@pytest.mark.parametrize("change, family, why", [
    ({}, "embed", None),
    ({("smollm2-135m", "rows"): {"dev_chrf": 32.6}}, "rows", "smollm2-135m: dev chrF++ 32.60 vs 32.00"),
    ({("gemma3-270m", "full"): {"peak_rss_gib": 15.5}}, "full", "gemma3-270m: peak RSS 15.5 GiB"),
    ({("gemma3-270m", "embed"): {"s_per_step": 5.0}}, "embed", "gemma3-270m: 5.00 s a step vs 5.00, not faster"),
    ({("smollm2-135m", "full"): {"final_loss": 1.64}}, "full", "smollm2-135m: final loss 1.6400 vs 1.6000"),
])
def test_a_family_trains_in_bf16_only_when_every_condition_holds_on_both_models(change, family, why):
    decided = decide(*_rows(change))
    assert decided[family] == ({"precision": "bf16", "why": "every condition holds"} if why is None
                               else {"precision": "no", "why": why})
    assert all(d["precision"] == "bf16" for f, d in decided.items() if f != family)
