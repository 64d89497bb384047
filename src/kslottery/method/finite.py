"""A run is finished only if what it computed is a number: every floating tensor it wrote and its loss finite.

``tune --lr inf`` and ``transfer --scale nan`` used to finish as DONE runs full of NaN, which ``evaluate
--tuned`` then scored without a word. :meth:`kslottery.method.runs.Run.finish` asks :func:`not_finite` before
it stamps DONE, and throws the run away when anything is not finite.
"""

from __future__ import annotations

import math
from pathlib import Path


def not_finite(work: Path, record: dict) -> str | None:
    """What is not finite in the run being finished in ``work`` (None when everything is)."""
    loss = (record.get("train") or {}).get("final_loss") if isinstance(record.get("train"), dict) else None
    if isinstance(loss, float) and not math.isfinite(loss):
        return f"its final loss is {loss}"
    files = sorted(work.rglob("*.safetensors"))
    if not files:
        return None
    import torch
    from safetensors import safe_open

    for path in files:
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad = int((~torch.isfinite(t)).sum())
                    return f"{path.relative_to(work)} holds {bad:,} values that are nan or inf (in {key})"
    return None
