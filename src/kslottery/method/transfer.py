"""Partial transfer: paste a ticket's tuned rows into the untouched base model.

    >>> rec = transfer(TransferConfig(tuned="runs/tune-...", ticket="runs/ks-.../ticket-topk-18.json"))  # doctest: +SKIP

The result is a run directory with the same ``rows.safetensors`` layout as a tune run, so the evaluator
loads both the same way. ``delta`` variants give the controls: ``learned`` (the tuned rows, optionally
scaled by ``scale``) and ``norm-matched`` (a random direction per row with the learned delta's norm).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import archive  # noqa: F401  (a tune run restored without its weights computes them again)
from .errors import KSLError
from .runs import Run, releases_locks
from .ticket import check_ticket_model, ticket_ids
from .tuned import TunedRecord, TunedRun, write_rows

DELTAS = ("learned", "norm-matched")


@dataclass(frozen=True)
class TransferConfig:
    tuned: str = field(default="", metadata={"help": "an embed-mode tune run directory (the donor)"})
    ticket: str = field(default="", metadata={"help": "ticket JSON or comma-separated token ids"})
    delta: str = field(default="learned", metadata={"help": f"what is pasted: {', '.join(DELTAS)}"})
    scale: float = field(default=1.0, metadata={"help": "multiply the delta (0.5, 2: the scaling controls)"})
    seed: int = field(default=0, metadata={"help": "seed of the norm-matched random directions"})


def transferred_rows(rows: dict, ids: list[int], delta: str = "learned", scale: float = 1.0, seed: int = 0) -> dict:
    """before/after for the ticket rows that tuning changed, with the chosen delta applied."""
    if delta not in DELTAS:
        raise KSLError(f"unknown delta {delta!r}", f"use one of {', '.join(DELTAS)}")
    where = {int(i): n for n, i in enumerate(rows["ids"].tolist())}
    keep = [i for i in ids if i in where]
    idx = torch.tensor([where[i] for i in keep], dtype=torch.long)
    before, after = rows["before"][idx], rows["after"][idx]
    d = after - before
    if delta == "norm-matched":
        noise = torch.randn(d.shape, generator=torch.Generator().manual_seed(seed))
        d = noise / noise.norm(dim=1, keepdim=True) * d.norm(dim=1, keepdim=True)
    return {"ids": torch.tensor(keep, dtype=torch.long), "before": before, "after": before + scale * d}


@releases_locks
def transfer(cfg: TransferConfig, runs_dir=None) -> TunedRecord:
    if cfg.delta not in DELTAS:
        raise KSLError(f"unknown delta {cfg.delta!r}", f"use one of {', '.join(DELTAS)}")
    if not math.isfinite(cfg.scale):   # nan or inf would paste rows of NaN into the model
        raise KSLError(f"scale {cfg.scale} is not a finite number", "pass --scale like 0.5, 1 or 2")
    tuned = TunedRun(cfg.tuned)
    rows, tune_rec = tuned.rows(), tuned.record
    ids = ticket_ids(cfg.ticket, tuned.vocab_size)
    check_ticket_model(cfg.ticket, tuned.model_spec, tuned.vocab_size)
    params = {**asdict(cfg), "tuned": Path(cfg.tuned).name, "ticket": ids}
    run = Run("transfer", params, runs_dir, seed=cfg.seed)
    if (reused := run.reuse(TunedRecord)) is not None:
        return reused
    out = transferred_rows(rows, ids, cfg.delta, cfg.scale, cfg.seed)
    work = run.start()
    write_rows(work, out["ids"], out["before"], out["after"])
    record = {"config": asdict(cfg), "tune_run": Path(cfg.tuned).name, "model": tune_rec["model"],
              "ticket_ids": ids, "rows_pasted": len(out["ids"]),
              "rows_not_changed_by_tuning": sorted(set(ids) - set(out["ids"].tolist()))}
    return run.complete(record, TunedRecord)
