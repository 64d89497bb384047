"""A finished tune or transfer run as every later stage reads it: the record, the mode, the changed rows,
the tokenizer, and applying it to a freshly loaded base model. The one reader and writer of that layout:
``record.json``, and ``rows.safetensors`` (ids, before, after: embed, rows, transfer; :func:`write_rows`),
``model/`` (full) or ``adapter/`` (lora, prefix; rows also exports one, :func:`write_rows_adapter`).

    >>> run = TunedRun("runs/tune-1a2b3c4d5e6f")                  # doctest: +SKIP
    >>> run.mode, run.model_spec, run.rows()["ids"][:5]          # doctest: +SKIP
    >>> run.apply(models.load(run.model_spec))                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import warnings
from functools import cached_property
from pathlib import Path

import torch

from . import models
from .errors import KSLError
from .runs import RunRecord, left_out, verify

ROWS = "rows.safetensors"
KINDS = ("tune", "transfer")   # the runs that change a model (a run is named <kind>-<hash>)

# How a tune run archived without its weights computes them again: tuning registers it (it imports this module;
# this module must not import it back).
_rebuild = None


def rebuilt_by(fn):
    global _rebuild
    _rebuild = fn
    return fn


def write_rows(work: Path, ids, before, after) -> Path:
    """The changed rows of a tune or transfer run: their ids, and their values before and after."""
    from safetensors.torch import save_file

    save_file({"ids": ids.contiguous(), "before": before.contiguous(), "after": after.contiguous()}, work / ROWS)
    return work / ROWS


def write_rows_adapter(lm: models.LoadedModel, ids, rows, path: Path) -> None:
    """A PEFT TrainableTokens adapter holding ``rows`` at ``ids`` on the base (untuned) model, so a rows run
    loads in any PEFT-aware code without this package."""

    import peft
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # PEFT calls a transformers API deprecated in 5.x
        pm = peft.get_peft_model(copy.deepcopy(lm.model), peft.TrainableTokensConfig(
            token_indices=ids.tolist(), target_modules=["embed_tokens"]))
        for module in pm.modules():
            if hasattr(module, "trainable_tokens_delta") and "default" in module.trainable_tokens_delta:
                with torch.no_grad():
                    module.trainable_tokens_delta["default"].copy_(rows)
        pm.save_pretrained(path)


def apply_rows(model, ids: torch.Tensor, rows: torch.Tensor) -> None:
    """Paste ``rows`` into the model's input embedding at ``ids`` (partial transfer, tuned rows)."""
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight.index_copy_(0, ids.long().to(weight.device), rows.to(weight.dtype).to(weight.device))


class TunedRecord(RunRecord):
    """What ``tune`` and ``transfer`` return: the finished run's record; :attr:`tuned` reads its rows and weights."""

    @property
    def tuned(self) -> TunedRun:
        return TunedRun(self["path"])


class TunedRun:
    def __init__(self, path: str | Path):
        if not str(path).strip():
            raise KSLError("no tune run given", "pass --tuned runs/tune-<hash> (from `kslottery tune`)")
        self.path = Path(path)
        kind = self.path.name.split("-")[0]
        fix = "give a runs/tune-* or runs/transfer-* directory (from `kslottery tune` or `kslottery transfer`)"
        if kind not in KINDS:   # an eval or ks run would silently score the base model as a "tuned" one
            what = {"eval": "an eval run", "ks": "a ks run", "cert": "a cert run"}.get(
                kind, "not a runs/tune-* or runs/transfer-* directory")
            raise KSLError(f"{self.path} is not a finished tune or transfer run ({what})", fix)
        if not self.path.is_dir():
            raise KSLError(f"{self.path} is not a finished tune or transfer run (not a directory)", fix)
        if not (self.path / "DONE").is_file() or not (self.path / "record.json").is_file():
            fix = (f"rerun the {kind} command that makes it (it resumes), then give {self.path.with_name(self.path.name[:-8])}"
                   if self.path.name.endswith(".partial") else
                   f"delete or move it, then rerun the {kind} command that makes it")
            raise KSLError(f"{self.path} is not a finished tune or transfer run (no DONE)", fix)
        verify(self.path)   # a damaged run is an error naming the file, before anything reads it

    @property
    def name(self) -> str:
        return self.path.name

    def _gone(self, rel: str) -> bool:
        return any(g == rel or g.startswith(rel + "/") for g in left_out(self.path))

    def _need(self, rel: str) -> None:
        """Before reading ``rel`` (a file or folder): a run restored from the archive without it
        (:mod:`kslottery.method.archive`) is computed again, under the same name, from its parameters."""
        if not self._gone(rel):
            return
        if _rebuild is None:
            raise KSLError(f"{self.name} was restored from the archive without {rel}",
                           f"delete {self.path} and rerun the command that made it")
        _rebuild(self.path)
        self.__dict__.pop("record", None)

    @cached_property
    def record(self) -> dict:
        return json.loads((self.path / "record.json").read_text())

    @property
    def mode(self) -> str | None:
        """embed, full, lora, prefix or rows for a tune run; None for a transfer run."""
        return self.record.get("config", {}).get("mode")

    @property
    def model_spec(self) -> str | None:
        return self.record.get("model", {}).get("spec")

    @property
    def vocab_size(self) -> int:
        return self.record["model"]["vocab_size"]

    def rows(self) -> dict:
        """ids, before, after of every row the run changed."""
        from safetensors.torch import load_file

        self._need(ROWS)
        if not (self.path / ROWS).exists():
            raise KSLError(f"{self.path} is not a finished embed or rows tune run (no {ROWS})",
                           "run `kslottery tune --mode embed` first and pass its run directory")
        return load_file(self.path / ROWS)

    def tokenizer(self):
        return models.load_tokenizer(self.model_spec)

    def train_log(self) -> list[dict]:
        """One record per optimizer step (step, loss, lr, ...), resumed parts included."""
        with open(self.path / "train_log.jsonl") as f:
            return [json.loads(line) for line in f if line.strip()]

    def snapshot_files(self) -> dict[int, Path]:
        """{step: file} of the embedding snapshots an embed run saved (``--snapshots``), in step order."""
        self._need("snapshots")
        files = {int(p.stem[5:]): p for p in (self.path / "snapshots").glob("step-*.safetensors")}
        return dict(sorted(files.items()))

    def apply(self, lm: models.LoadedModel) -> dict:
        """Apply the run to ``lm``, a freshly loaded base model, in place; return the run's record."""
        if self.model_spec not in (None, lm.info.spec):
            raise KSLError(f"{self.name} was tuned from {self.model_spec!r}, not {lm.info.spec!r}",
                           f"evaluate it with --model {self.model_spec}")
        # the first of these the run holds is what it changed (a rows run also exports an adapter)
        held = next((rel for rel in (ROWS, "model", "adapter") if (self.path / rel).exists() or self._gone(rel)),
                    None)
        if held:
            self._need(held)
        if (self.path / ROWS).exists():
            models.untie(lm.model)
            rows = self.rows()
            apply_rows(lm.model, rows["ids"], rows["after"])
        elif (self.path / "model").exists():
            lm.model = models.load(str(self.path / "model"), progress=False).model
        elif (self.path / "adapter").exists():
            import peft
            lm.model = peft.PeftModel.from_pretrained(lm.model, self.path / "adapter").eval()
        return self.record
