"""The training loop (Accelerate) and its modes: embed, full, lora, prefix, rows.

    >>> cfg = TuneConfig(model="gemma3-270m", pair="eng_Latn-cat_Latn", mode="embed", limit=400)  # doctest: +SKIP
    >>> record = tune(cfg)                                                                         # doctest: +SKIP

``embed`` and ``rows`` train a row delta: the input embedding is frozen and a float32 parameter holds
``delta`` for the trainable rows only (every token that occurs in the training data for ``embed``; the
ticket for ``rows``). With weight decay 0 this is exactly dense AdamW on the whole matrix (a row that
never receives gradient has zero moments and never moves) without a dense optimizer pass over 262k
rows, and the output head stays frozen (untied). Logits are computed only at target positions.

One process, one GPU, or several under ``accelerate launch`` / ``torchrun``: the global batch is split
across processes and the loss is normalised by the global number of target tokens, so N processes give
the same update as one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import checkpoints, data, models, prompts
from .errors import Interrupted, KSLError
from .runs import Run, named_params, releases_locks, write_json
from .ticket import check_ticket_model, ticket_ids
from .trainable import RowDelta, deterministic, n_trainable, prepare_model, schedule
from .tuned import TunedRecord, apply_rows, write_rows, write_rows_adapter

MODES = ("embed", "full", "lora", "prefix", "rows")
SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adamw", "sgd")

# The paper's hyperparameters (authors' group code for embed/full; the replication for rows).
PAPER_PRESET = {
    "embed": dict(lr=2e-5, epochs=3, schedule="cosine", warmup_ratio=0.03, batch_size=128),
    "full": dict(lr=2e-5, epochs=3, schedule="cosine", warmup_ratio=0.03, batch_size=128),
    "rows": dict(lr=1e-2, epochs=5),
}


@dataclass(frozen=True)
class TuneConfig:
    model: str = field(default=models.DEFAULT_MODEL, metadata={"help": "model spec"})
    pair: str = field(default="eng_Latn-cat_Latn", metadata={"help": "FLORES language pair SRC-TGT"})
    split: str = field(default="dev", metadata={"help": "FLORES split to train on (not with a file)",
                                                "unnamed_with": ("train_file", "source_file")})
    limit: int | None = field(default=None, metadata={"help": "first N training pairs (none: all)"})
    train_file: str | None = field(default=None, metadata={"help": "your own training pairs instead of FLORES: "
                                   "a TSV (source<TAB>target) or a .jsonl of {\"src\", \"tgt\"}; --pair names "
                                   "their languages"})
    source_file: str | None = field(default=None, metadata={"help": "your own training pairs as two line-aligned "
                                    "text files: the source side (with --target-file)", "named_when_set": True})
    target_file: str | None = field(default=None, metadata={"help": "the target side (with --source-file)",
                                    "named_when_set": True})
    template: str = field(default="explicit", metadata={"help": "prompt template, or sampled-paraphrases "
                          "(one instruction paraphrase drawn per training example)"})
    mode: str = field(default="embed", metadata={"help": f"what trains: {', '.join(MODES)}"})
    ticket: str | tuple[int, ...] | None = field(default=None, metadata={
        "help": "rows mode: ticket JSON, or comma-separated token ids (in Python: the ids themselves)"})
    preset: str | None = field(default=None, metadata={"help": "'paper': the paper's lr/epochs/schedule for the mode"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training pairs"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after N optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "global batch (pairs per optimizer step, all processes)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    schedule: str = field(default="constant", metadata={"help": "constant or cosine (after warmup)"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "fraction of steps with linear warmup"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (0: untouched rows stay put)"})
    max_len: int = field(default=256, metadata={"help": "truncate examples to N tokens"})
    mixed_precision: str = field(default="no", metadata={"help": "no or bf16 (autocast; fp32 master weights)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    prefix_tokens: int = field(default=16, metadata={"help": "prefix-tuning virtual tokens"})
    prefix_init: str = field(default="random", metadata={
        "help": "prefix mode: random (PEFT's default: N(0,1) keys and values, far from anything the model "
                "attends to) or zero (keys and values 0: the prefix only takes attention mass at first)",
        "named_when_set": True})
    sparse_rows: bool = field(default=True, metadata={"help": "embed/rows: train a row delta with target-only "
                              "logits (off: the naive dense loop, for benchmarks)"})
    checkpoint_every: int = field(default=25, metadata={"help": "save a resumable checkpoint every N steps"})
    snapshots: tuple[int, ...] = field(default=(), metadata={
        "help": "embed/rows: also save the tuned rows after these optimizer steps (e.g. 8,16,32,64), so one run "
                "gives every shorter budget of a budget sweep", "named_when_set": True})
    optimizer: str = field(default="adamw", metadata={
        "help": f"{' or '.join(OPTIMIZERS)} (plain SGD, no momentum: a step proportional to the gradient, where "
                "Adam moves every touched coordinate by about lr)", "named_when_set": True})
    seed: int = field(default=0, metadata={"help": "data order and initialisation seed"})
    allow_pickle: bool = field(default=False, metadata={"help": "let a local model directory load pickle "
                               "weights (*.bin, *.pt), which can run code: only for files you trust", "named": False})

    def resolved(self) -> "TuneConfig":
        if self.mode not in MODES:
            raise KSLError(f"unknown tuning mode {self.mode!r}", f"use one of {', '.join(MODES)}")
        if self.schedule not in SCHEDULES:
            raise KSLError(f"unknown schedule {self.schedule!r}", f"use one of {', '.join(SCHEDULES)}")
        if self.mixed_precision not in ("no", "bf16"):
            raise KSLError(f"unknown mixed precision {self.mixed_precision!r}", "use no or bf16")
        if self.prefix_init not in ("random", "zero"):
            raise KSLError(f"unknown prefix init {self.prefix_init!r}", "use random or zero")
        if self.mode == "rows" and not self.ticket:
            raise KSLError("rows mode needs a ticket", "pass --ticket TICKET.json or --ticket 13,263,278")
        if self.optimizer not in OPTIMIZERS:
            raise KSLError(f"unknown optimizer {self.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}")
        if self.snapshots and (self.mode not in ("embed", "rows") or not self.sparse_rows):
            raise KSLError("snapshots are saved for embed and rows tuning only", "drop --snapshots")
        if any(int(n) < 1 for n in self.snapshots):
            raise KSLError(f"snapshot steps {list(self.snapshots)} must be at least 1", "pass steps like 8,16,32")
        if self.mode != "embed" and not self.sparse_rows:
            raise KSLError("--no-sparse-rows (the naive dense loop) exists only for mode embed", "drop the flag")
        for name in ("batch_size", "grad_accum", "max_len", "checkpoint_every", "lora_r", "prefix_tokens"):
            if getattr(self, name) < 1:
                raise KSLError(f"{name} must be at least 1 (got {getattr(self, name)})",
                               f"pass --{name.replace('_', '-')} 1 or more")
        for name in ("lr", "epochs"):
            if not 0 < getattr(self, name) < math.inf:   # inf passed "> 0" and trained rows into NaN
                raise KSLError(f"{name} must be positive and finite (got {getattr(self, name)})",
                               f"pass a positive --{name}")
        if self.max_steps is not None and self.max_steps < 1:
            raise KSLError(f"max_steps must be at least 1 (got {self.max_steps})", "pass --max-steps 1 or more, or none")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.weight_decay < math.inf:   # nan fails both
            raise KSLError("warmup_ratio must lie in [0, 1) and weight_decay be >= 0", "pass values in range")
        if self.batch_size % self.grad_accum:
            raise KSLError(f"batch_size {self.batch_size} is not a multiple of grad_accum {self.grad_accum}",
                           "choose batch_size = grad_accum x micro-batch")
        if self.preset is None:
            return self
        if self.preset != "paper" or self.mode not in PAPER_PRESET:
            raise KSLError(f"no preset {self.preset!r} for mode {self.mode!r}",
                           f"use --preset paper with mode {', '.join(PAPER_PRESET)}")
        return replace(self, preset=None, **PAPER_PRESET[self.mode])


# --- data -------------------------------------------------------------------------------------

def training_bitext(cfg: TuneConfig) -> data.Bitext:
    """FLORES, or the user's own training pairs when a file is given."""
    return data.load_bitext(cfg.pair, cfg.split, cfg.limit, cfg.train_file, cfg.source_file, cfg.target_file,
                            flag="--train-file")


def run_params(cfg: TuneConfig, bitext: data.Bitext) -> dict:
    """The parameters that name a tune run. The ticket enters by its ids, not by the path it was read from;
    a file has no FLORES split, so the split leaves the name when one is given."""
    return {**named_params(cfg), "ticket": ticket_ids(cfg.ticket) if cfg.ticket else None,
            "data": bitext.name, "data_sha256": bitext.sha256}


def check(cfg: TuneConfig) -> tuple[TuneConfig, data.Bitext]:
    """Every check that can run before a model loads or a run directory exists: the resolved config and
    the training pairs."""
    cfg = cfg.resolved()
    models.check_spec(cfg.model)
    bitext = training_bitext(cfg)
    prompts.training_templates(cfg.template, 0)
    for code in (bitext.src_lang, bitext.tgt_lang):
        prompts.language_name(code)
    if cfg.ticket:
        vocab = models.vocab_rows(cfg.model)
        ticket_ids(cfg.ticket, vocab)
        check_ticket_model(cfg.ticket, cfg.model, vocab)
    return cfg, bitext


def encode_checked(tokenizer, bitext: data.Bitext, cfg: TuneConfig) -> tuple[list[dict], dict]:
    """The training examples with a target token left within ``max_len``, and the counts of what was cut
    (:func:`prompts.usable_examples`; an error when nothing is left)."""
    templates = prompts.training_templates(cfg.template, len(bitext), cfg.seed)
    return prompts.usable_examples([
        prompts.encode_example(tokenizer, tm, s, t, bitext.src_lang, bitext.tgt_lang, cfg.max_len)
        for tm, s, t in zip(templates, bitext.src, bitext.tgt)], cfg.max_len)


def encode_all(tokenizer, bitext: data.Bitext, cfg: TuneConfig) -> list[dict]:
    """The examples a run trains on (what the study's exposure and token counts replay)."""
    return encode_checked(tokenizer, bitext, cfg)[0]


def training_examples(cfg: TuneConfig, tokenizer=None) -> list[dict]:
    """The encoded examples a run of ``cfg`` trains on, from its own data and its model's tokenizer."""
    return encode_all(tokenizer or models.load_tokenizer(cfg.model), training_bitext(cfg), cfg)


def planned_steps(n: int, batch_size: int, epochs: float, max_steps: int | None = None) -> int:
    """The optimizer steps a run over ``n`` examples takes: whole batches per epoch (at least one), a
    fractional last epoch rounded, capped by ``max_steps``."""
    steps_per_epoch = max(n // batch_size, 1)
    total = min(steps_per_epoch * math.ceil(epochs), round(steps_per_epoch * epochs)) or 1
    return min(total, max_steps) if max_steps else total


def batch_order(n: int, cfg: TuneConfig) -> list[list[int]]:
    """Every micro-batch of the run, in order: a seeded permutation per epoch, cut into global
    micro-batches. Being a pure function of (n, cfg), it lets a resumed run skip what is done."""
    micro = cfg.batch_size // cfg.grad_accum
    steps_per_epoch = max(n // cfg.batch_size, 1)
    total = planned_steps(n, cfg.batch_size, cfg.epochs, cfg.max_steps)
    batches = []
    epoch = 0
    while len(batches) < total * cfg.grad_accum:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch)).tolist()
        perm = (perm * math.ceil(cfg.batch_size / n)) if n < cfg.batch_size else perm
        for s in range(0, steps_per_epoch * cfg.batch_size, micro):
            batches.append(perm[s:s + micro])
        epoch += 1
    return batches[: total * cfg.grad_accum]


def collate(examples: list[dict], pad_id: int) -> dict:
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), prompts.IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --- the loop ---------------------------------------------------------------------------------

def _accelerator(cfg: TuneConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if not torch.distributed.is_initialized():
        AcceleratorState._reset_state(reset_partial_state=True)   # tests run several loops in one process
        GradientState._reset_state()
    # Accumulation is done by hand (the loss is already divided by grad_accum), so Accelerate's is off.
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())


def train(lm: models.LoadedModel, cfg: TuneConfig, examples: list[dict], work: Path | None = None,
          progress: bool = True, log: list | None = None) -> dict:
    """Run the loop; checkpoint into ``work/ckpt`` and resume from it. Returns the training summary;
    per-step entries are appended to ``log`` when given (and to ``work/train_log.jsonl``)."""
    from tqdm import tqdm

    acc = _accelerator(cfg)
    torch.manual_seed(cfg.seed)
    loss_mod, params = prepare_model(lm, cfg, examples)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    snapshots = {int(n) for n in cfg.snapshots}
    batches = batch_order(len(examples), cfg)
    total = len(batches) // cfg.grad_accum
    sched = schedule(opt, cfg, total)
    loss_mod, opt = acc.prepare(loss_mod, opt)
    pad = lm.tokenizer.pad_token_id
    # Target tokens per example, counted once: the loss is normalised by the global count of each batch.
    n_targets = [prompts.n_targets(e) for e in examples]
    start = checkpoints.resume(work, params, opt, sched, acc.is_main_process) if work is not None else 0
    log = [] if log is None else log
    t0, toks = time.time(), 0
    world, rank = acc.num_processes, acc.process_index
    bar = tqdm(total=total, initial=start, desc=f"tuning ({cfg.mode})", unit="step",
               disable=not progress or not acc.is_main_process)
    with checkpoints.deferred_signals() as pending, deterministic():
        for step in range(start, total):
            t_step = time.time()
            step_loss, step_targets = 0.0, 0
            for micro in batches[step * cfg.grad_accum:(step + 1) * cfg.grad_accum]:
                mine = micro[rank::world]   # Accelerate-launched processes each take their share of the global batch
                batch = collate([examples[i] for i in mine], pad)
                n_global = sum(n_targets[i] for i in micro)
                batch = {k: v.to(acc.device) for k, v in batch.items()}
                with acc.autocast():
                    loss_sum = loss_mod(**batch)
                # DDP averages gradients over processes: scale so the result is the global per-token mean.
                acc.backward(loss_sum * world / (n_global * cfg.grad_accum))
                step_loss += acc.reduce(loss_sum.detach(), "sum").item()
                step_targets += n_global
                toks += int(batch["attention_mask"].sum()) * world
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            entry = {"step": step + 1, "loss": step_loss / step_targets, "lr": sched.get_last_lr()[0],
                     "step_s": time.time() - t_step, "tokens_per_s": toks / max(time.time() - t0, 1e-9)}
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", tok_s=f"{entry['tokens_per_s']:.0f}")
            bar.update()
            if work is not None and acc.is_main_process:
                with open(work / "train_log.jsonl", "a") as f:
                    f.write(json.dumps(entry) + "\n")
                if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < total:
                    checkpoints.save(work, params, opt, sched, step + 1)
                if step + 1 in snapshots:
                    checkpoints.snapshot(work, lm, step + 1)
            stop = torch.tensor(float(len(pending)), device=acc.device)
            if world > 1:   # every process stops at the same step, or the next collective would hang
                stop = acc.reduce(stop, "sum")
            if stop.item():
                bar.close()
                if work is not None and acc.is_main_process:
                    checkpoints.save(work, params, opt, sched, step + 1)
                raise Interrupted(pending[0] if pending else signal.SIGTERM,
                                  f"after step {step + 1} of {total} (checkpoint saved)")
    bar.close()
    return {"steps": total, "resumed_at": start, "final_loss": log[-1]["loss"] if log else None,
            "tokens_per_s": log[-1]["tokens_per_s"] if log else None, "n_trainable": n_trainable(params),
            "world_size": world}


# --- artifacts --------------------------------------------------------------------------------

def export(lm: models.LoadedModel, cfg: TuneConfig, before: torch.Tensor | None, work: Path) -> dict:
    """Write what changed: rows (embed/rows), a PEFT adapter (rows/lora/prefix), or the full weights."""

    model = lm.model
    out = {}
    if cfg.mode in ("embed", "rows"):
        emb = model.get_input_embeddings()
        if isinstance(emb, RowDelta):
            ids, after = emb.ids.cpu(), emb.rows_after().cpu()
            model.set_input_embeddings(emb.base)
        else:
            after_all = emb.weight.detach().float().cpu()
            ids = (after_all != before).any(1).nonzero().flatten() if cfg.mode == "embed" else \
                torch.tensor(ticket_ids(cfg.ticket))
            after = after_all[ids].float()
        apply_rows(model, ids, after)
        changed = (after != before[ids]).any(1)
        write_rows(work, ids[changed], before[ids][changed], after[changed])
        out.update(rows_trained=len(ids), rows_changed=int(changed.sum()))
        if cfg.mode == "rows":
            write_rows_adapter(lm, ids, after, work / "adapter")
    elif cfg.mode == "full":
        model.save_pretrained(work / "model")
        lm.tokenizer.save_pretrained(work / "model")
    else:
        model.save_pretrained(work / "adapter")
    return out


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def loss_trend(log_file: Path) -> tuple[float, float] | None:
    """Mean loss over the first and the last tenth of a run's steps (one step each at least: a single step's
    loss is noisy), from its whole log, resumed parts included."""
    if not log_file.exists():
        return None
    losses = [json.loads(line)["loss"] for line in log_file.read_text().splitlines() if line.strip()]
    k = max(1, len(losses) // 10)
    return (sum(losses[:k]) / k, sum(losses[-k:]) / k) if len(losses) > 1 else None


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that writes run directories under torchrun/accelerate."""
    return int(os.environ.get("RANK", "0")) == 0


@releases_locks
def tune(cfg: TuneConfig, runs_dir=None, progress: bool = True) -> TunedRecord:
    """Resolve, train, export into ``runs/tune-<hash>``; reuse a finished run, resume an interrupted one.

    Under torchrun / accelerate launch every process trains; only rank 0 writes the run directory."""
    cfg, bitext = check(cfg)
    run = Run("tune", run_params(cfg, bitext), runs_dir, seed=cfg.seed)
    main = is_main_process()
    # Only rank 0 writes the run, so only rank 0 takes its lock: another rank would wait on its own rank 0.
    if (reused := run.reuse(TunedRecord, claim=main)) is not None:
        return reused
    lm = models.load(cfg.model, allow_pickle=cfg.allow_pickle, progress=progress and main)
    if cfg.ticket:   # the tokenizer, now loaded, is the one the ticket's ids must have been read with
        check_ticket_model(cfg.ticket, cfg.model, lm.info.vocab_size, lm.tokenizer)
    examples, fit = encode_checked(lm.tokenizer, bitext, cfg)   # before the run's folder exists
    work = run.start() if main else run.work
    if main and (fit["no_target_left"] or fit["target_truncated"]):
        warn(f"--max-len {cfg.max_len} cut the target of {fit['no_target_left'] + fit['target_truncated']} of "
             f"{fit['examples']} training examples ({fit['no_target_left']} entirely: left out)")
    before = lm.model.get_input_embeddings().weight.detach().clone().float()
    summary = {**train(lm, cfg, examples, work, progress), "input": fit}
    if not main:
        return TunedRecord(config=asdict(cfg), train=summary, run=run.name, reused=False, path=str(run.path))
    trend = loss_trend(work / "train_log.jsonl")
    # Rounding noise is not a rise: a run whose loss ends within 0.1 % of where it began did not diverge.
    if trend and trend[1] > trend[0] * 1.001 + 1e-9:
        warn(f"the training loss rose over the run ({trend[0]:.3f} at the start, {trend[1]:.3f} at the end) at lr "
             f"{cfg.lr:g}; a smaller --lr may train (this run is kept)")
    artifacts = export(lm, cfg, before, work)
    record = {"config": asdict(cfg), "model": lm.info.to_dict(),
              "data": {"name": bitext.name, "sha256": bitext.sha256, "n": len(bitext)},
              "train": summary, **artifacts}
    write_json(work / "train_summary.json", summary)
    shutil.rmtree(work / "ckpt", ignore_errors=True)
    return run.complete(record, TunedRecord)
