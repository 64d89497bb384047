"""Evaluate a model on FLORES: generate once, score under every extraction rule, record everything.

    >>> record = evaluate(EvalConfig(model="gemma3-270m", pair="eng_Latn-cat_Latn", limit=200))  # doctest: +SKIP
    >>> print(format_table(record))                                                              # doctest: +SKIP

The run directory (``runs/eval-<hash>``) holds ``params.json``, ``outputs.jsonl`` (per sentence:
source, reference, raw continuation, flags, and each rule's hypothesis) and ``record.json``.
Generation checkpoints after every batch, so an interrupted evaluation resumes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

# archive: a tune run restored without its weights computes them again when they are read
from . import archive, data, generate, metrics, models, prompts  # noqa: F401
from .errors import KSLError
from .runs import Run, RunRecord, named_params, releases_locks
from .tuned import TunedRun


@dataclass(frozen=True)
class EvalConfig:
    model: str = field(default=models.DEFAULT_MODEL, metadata={"help": "model spec: preset, tiny:<preset>, "
                       "local directory, .gguf file or hub id"})
    pair: str = field(default="eng_Latn-cat_Latn", metadata={"help": "FLORES language pair SRC-TGT"})
    template: str = field(default="explicit", metadata={"help": f"prompt template: {', '.join(prompts.TEMPLATES)}"})
    split: str = field(default="devtest", metadata={"help": "FLORES split to score on (not with a file)",
                                                    "unnamed_with": ("test_file", "source_file")})
    test_file: str | None = field(default=None, metadata={"help": "your own test set instead of FLORES: a TSV "
                                  "(source<TAB>reference) or a .jsonl of {\"src\", \"tgt\"}; --pair names its "
                                  "languages", "named_when_set": True})
    source_file: str | None = field(default=None, metadata={"help": "your own test set as two line-aligned text "
                                    "files: the source side (with --target-file)", "named_when_set": True})
    target_file: str | None = field(default=None, metadata={"help": "the reference side (with --source-file)",
                                    "named_when_set": True})
    limit: int | None = field(default=200, metadata={"help": "first N sentences (none: all)"})
    offset: int = field(default=0, metadata={"help": "skip the first N sentences: e.g. score FLORES dev pairs "
                                             "after the ones a run trained on (held-out dev for choosing a "
                                             "learning rate)", "named_when_set": True})
    batch_size: int = field(default=32, metadata={"help": "sentences per generation batch (larger amortises "
                            "reading the weights per step: on 2 CPU cores 32 gives ~2x the tokens/s of 8)"})
    max_new_tokens: int = field(default=128, metadata={"help": "cap on generated tokens"})
    num_beams: int = field(default=1, metadata={"help": "1 = greedy; the paper's group used 4"})
    stop_on_newline: bool = field(default=False, metadata={"help": "also stop at any newline-bearing token "
                                  "(off: the model must stop by itself, as in the paper)"})
    drop_finished: bool = field(default=False, metadata={"help": "greedy only: rows that stopped leave the "
                                "batch (same tokens up to float noise; 1.2x faster on 2 CPU cores when most rows stop early)",
                                "named_when_set": True})
    exact_bf16: bool = field(default=True, metadata={"help": "greedy only: choose each token through a bfloat16 "
                             "vocabulary pass whose candidates are rescored exactly, so the tokens are the float32 "
                             "head's (rows the error bound cannot settle take the float32 head); faster where the "
                             "head dominates, e.g. Gemma on a CPU", "named": False})   # same tokens: not in the run name
    dtype: str = field(default="float32", metadata={"help": "float32 or bfloat16"})
    seed: int = field(default=0, metadata={"help": "torch seed (greedy decoding does not use it)"})
    tuned: str | None = field(default=None, metadata={"help": "a tune or transfer run directory to apply "
                              "to the model first (none: the base model)"})
    allow_pickle: bool = field(default=False, metadata={"help": "let a local model directory load pickle "
                               "weights (*.bin, *.pt), which can run code: only for files you trust", "named": False})


def load_test_set(config: EvalConfig) -> data.Bitext:
    """FLORES, or the user's own test set when a file is given."""
    return data.load_bitext(config.pair, config.split, config.limit, config.test_file, config.source_file,
                            config.target_file, offset=config.offset)


def run_params(config: EvalConfig, bitext: data.Bitext) -> dict:
    """The parameters that name an eval run (before a tuned run's directory is reduced to its name)."""
    return {**named_params(config), "data": bitext.name, "data_sha256": bitext.sha256}


def check(config: EvalConfig) -> tuple[prompts.Template, data.Bitext]:
    """Every check that can run before a model loads or a run directory exists; the test set."""
    template = prompts.get_template(config.template)
    if config.batch_size < 1 or config.max_new_tokens < 1 or config.num_beams < 1:
        raise KSLError("batch_size, max_new_tokens and num_beams must be at least 1", "pass positive values")
    if config.drop_finished and config.num_beams > 1:
        raise KSLError("drop_finished applies to greedy decoding only", "use num_beams 1 or leave drop_finished off")
    models.resolve_dtype(config.dtype)
    models.check_spec(config.model)
    bitext = load_test_set(config)
    for code in (bitext.src_lang, bitext.tgt_lang):
        prompts.language_name(code)   # fail before any work if the template cannot name the language
    if config.tuned:
        tuned = TunedRun(config.tuned)
        if tuned.model_spec not in (None, config.model):
            raise KSLError(f"{tuned.name} was tuned from {tuned.model_spec!r}, not {config.model!r}",
                           f"evaluate it with --model {tuned.model_spec}")
    return template, bitext


def _load_done(path) -> dict[int, generate.Continuation]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by an interruption: everything after it is redone
            i = row.pop("i")
            done[i] = generate.Continuation(**row)
    return done


@releases_locks
def evaluate(config: EvalConfig, runs_dir=None, lm=None, progress: bool = True) -> EvalRecord:
    """Score ``config`` and return its record; reuse the run directory when it is complete.

    ``lm``: a loaded model to use (it must be ``config.model``), or a function returning one, called only
    when the run has to be computed."""
    template, bitext = check(config)
    params = run_params(config, bitext)
    revisions = {}
    if config.tuned:
        # Tuned runs are named by the hash of their own parameters: the name identifies the weights.
        tuned = Path(config.tuned)
        params["tuned"] = tuned.name
        if config.drop_finished and TunedRun(tuned).mode == "prefix":
            # until generate._start put PEFT's prefix into the decoder's cache, these scores lost the prefix
            # after the first token
            revisions["prefix_in_cache"] = True
    run = Run("eval", params, runs_dir, seed=config.seed, revisions=revisions)
    if (reused := run.reuse(EvalRecord)) is not None:
        return reused
    if callable(lm):
        lm = lm()
    if lm is None:
        lm = models.load(config.model, dtype=config.dtype, allow_pickle=config.allow_pickle, progress=progress)
    if config.tuned:
        TunedRun(config.tuned).apply(lm)
    if torch.cuda.is_available():   # the paper profile: generate on the GPU
        lm.model.to("cuda")
    torch.manual_seed(config.seed)
    work = run.start()
    ids = [prompts.encode_prompt(lm.tokenizer, template.render(s, bitext.src_lang, bitext.tgt_lang))
           for s in bitext.src]
    prompts.warn_long_prompts(ids, lm.model, config.max_new_tokens)   # issue 44: say so before minutes pass
    ckpt = work / "generations.partial.jsonl"
    done = _load_done(ckpt)

    def checkpoint(indices, conts):
        with open(ckpt, "a") as f:
            for i, c in zip(indices, conts):
                f.write(json.dumps({"i": i, **c.to_dict()}, ensure_ascii=False) + "\n")

    decoding: dict = {}   # the exact bf16 head's counters (this process's batches only, after a resume)
    conts = generate.generate(lm.model, lm.tokenizer, ids, batch_size=config.batch_size,
                              max_new_tokens=config.max_new_tokens, num_beams=config.num_beams,
                              stop_on_newline=config.stop_on_newline, progress=progress,
                              on_batch=checkpoint, done=done, drop_finished=config.drop_finished,
                              exact_bf16=config.exact_bf16, stats=decoding)
    record = score_outputs(bitext, [c.to_dict() for c in conts], work / "outputs.jsonl")
    ckpt.unlink()
    record = {"config": asdict(config), "model": lm.info.to_dict(), "data": {
        "name": bitext.name, "sha256": bitext.sha256, "n": len(bitext),
        "files": [str(Path(f).resolve()) for f in (config.test_file, config.source_file, config.target_file) if f]},
        **record, "decoding": {"exact_bf16": config.exact_bf16 and config.num_beams == 1, **decoding}}
    return run.complete(record, EvalRecord)


class EvalRecord(RunRecord):
    """A finished eval run's record, with typed readers for what the study reads from it (it stays the dict
    ``record.json`` holds, so code and tests that read keys keep working)."""

    def chrf(self, rule: str = "whole") -> float:
        return self._score(rule, "chrf++")

    def bleu(self, rule: str = "whole") -> float:
        return self._score(rule, "bleu")

    def mean_words(self, rule: str = "whole") -> float:
        return self["scores"][rule]["mean_words"]

    @property
    def eos_rate(self) -> float:
        return self["termination"]["eos_rate"]

    def hypotheses(self) -> dict[str, list[str]]:
        return hypotheses(self)

    def _score(self, rule: str, metric: str) -> float:
        if rule not in self["scores"]:
            raise KSLError(f"eval run {self.get('run')} has no extraction rule {rule!r}",
                           f"use one of {', '.join(self['scores'])}")
        return self["scores"][rule][metric]["score"]


def outputs(record: dict) -> list[dict]:
    """The saved outputs of a finished eval run, one per sentence in order: source, reference, raw continuation,
    its flags and the hypothesis under every extraction rule (``hyp``)."""
    with open(Path(record["path"]) / "outputs.jsonl") as f:
        return [json.loads(line) for line in f]


def hypotheses(record: dict) -> dict[str, list[str]]:
    """The extracted hypotheses of a finished eval run, per extraction rule, in sentence order."""
    rows = [o["hyp"] for o in outputs(record)]
    return {rule: [r[rule] for r in rows] for rule in rows[0]} if rows else {}


def score_outputs(bitext: data.Bitext, conts: list[dict], outputs_path=None) -> dict:
    """Scores and termination statistics of raw continuations under every extraction rule."""
    hyps = {name: [rule(c["text"]) for c in conts] for name, rule in metrics.RULES.items()}
    scores = {}
    for name, h in hyps.items():
        scores[name] = {**metrics.corpus_scores(h, bitext.tgt, bitext.tgt_lang), "mean_words": metrics.mean_words(h)}
    if outputs_path is not None:
        with open(outputs_path, "w") as f:
            for i, c in enumerate(conts):
                row = {"i": i, "src": bitext.src[i], "ref": bitext.tgt[i], **c,
                       "hyp": {name: h[i] for name, h in hyps.items()}}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"termination": metrics.termination_stats(conts), "scores": scores,
            "ref_mean_words": metrics.mean_words(bitext.tgt)}


def format_table(record: dict) -> str:
    """One line per extraction rule: BLEU, chrF++, spBLEU, length; termination underneath."""
    t = record["termination"]
    cfg = record["config"]
    data_name = record["data"]["name"] if record["data"].get("files") else f"{cfg['split']}[:{record['data']['n']}]"
    lines = [f"{cfg['model']}  {cfg['pair']}  template={cfg['template']}  {data_name}"
             f"  run={record['run']}{'  (reused)' if record.get('reused') else ''}",
             f"{'rule':<14}{'BLEU':>8}{'chrF++':>8}{'spBLEU':>8}{'words':>8}{'len ratio':>10}"]
    for rule, s in record["scores"].items():
        sp = s["spbleu"]["score"]
        lines.append(f"{rule:<14}{s['bleu']['score']:>8.2f}{s['chrf++']['score']:>8.2f}"
                     f"{'n/a' if sp is None else f'{sp:.2f}':>8}{s['mean_words']:>8.1f}"
                     f"{s['bleu']['length_ratio']:>10.2f}")
    lines.append(f"EOS rate {t['eos_rate']:.1%}  newline stop {t['newline_rate']:.1%}  cap {t['cap_rate']:.1%}"
                 f"  mean new tokens {t['mean_new_tokens']:.1f}  (reference {record['ref_mean_words']:.1f} words)")
    first = next(iter(record["scores"].values()))
    lines.append(f"BLEU: {first['bleu']['signature']}")
    lines.append(f"chrF++: {first['chrf++']['signature']}")
    if first["spbleu"]["score"] is None:
        lines.append(f"spBLEU unavailable: {first['spbleu']['reason']}")
    return "\n".join(lines)
