"""The recipe every arm of a chapter shares: how it is trained and scored (not the profile's ``protocol:`` block,
which is :class:`kslottery.study.design.Design`).

Every arm of a chapter trains on the same FLORES dev pairs with the same batch, epochs and template, and is
scored on the same devtest sentences with the same decoding, so the run directories (named by the hash of
exactly these parameters) are shared between chapters: an arm one chapter trained is reused, not retrained,
by another.

    >>> p = Recipe(model="gemma3-270m", pair="eng_Latn-cat_Latn", train_limit=400, eval_limit=200)  # doctest: +SKIP
    >>> record = p.score(p.tune(mode="embed", lr=1e-3)["path"])                                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..method import evaluate, tuning
from . import executor


def tune_config(preset: str | None = None, mixed_precision: str = "no", **kw) -> tuning.TuneConfig:
    """A TuneConfig; ``preset`` (e.g. the paper's hyperparameters) applies only to the modes it defines."""
    if preset is not None and kw.get("mode", "embed") not in tuning.PAPER_PRESET:
        preset = None
    return tuning.TuneConfig(preset=preset, mixed_precision=mixed_precision, **kw)


@dataclass
class Recipe:
    model: str
    pair: str
    train_limit: int
    eval_limit: int
    template: str = "explicit"
    epochs: float = 1.0
    batch_size: int = 8
    max_new_tokens: int = 128
    eval_batch_size: int = 32
    num_beams: int = 1
    preset: str | None = None
    mixed_precision: str = "no"
    drop_finished: bool = False
    progress: bool = True

    def config(self, **kw) -> tuning.TuneConfig:
        """A TuneConfig of this recipe; ``kw`` (TuneConfig fields) override it, mixed_precision included."""
        common = dict(model=self.model, pair=self.pair, split="dev", limit=self.train_limit, template=self.template,
                      epochs=self.epochs, batch_size=self.batch_size, mixed_precision=self.mixed_precision)
        return tune_config(self.preset, **{**common, **kw})

    def tune(self, **kw) -> dict:
        """Train (or reuse) one arm; ``kw`` are TuneConfig fields (mode, lr, ticket, seed, template...)."""
        return tuning.tune(self.config(**kw), progress=self.progress)

    def tune_all(self, configs: list[tuning.TuneConfig]) -> list[dict]:
        """Train (or reuse) independent runs through the executor (:mod:`kslottery.study.executor`), in order."""
        return executor.current(progress=self.progress).map(partial(tuning.tune, progress=self.progress), configs, "tune")

    def eval_config(self, tuned: str | None = None, template: str | None = None, stop_on_newline: bool = False,
                    split: str = "devtest", offset: int = 0, limit: int | None = None) -> evaluate.EvalConfig:
        return evaluate.EvalConfig(model=self.model, pair=self.pair, template=template or self.template,
                                   split=split, offset=offset, limit=limit or self.eval_limit,
                                   max_new_tokens=self.max_new_tokens, batch_size=self.eval_batch_size,
                                   num_beams=self.num_beams, stop_on_newline=stop_on_newline, tuned=tuned,
                                   drop_finished=self.drop_finished)

    def score(self, tuned: str | None = None, template: str | None = None, stop_on_newline: bool = False,
              split: str = "devtest", offset: int = 0, limit: int | None = None) -> dict:
        """Score the base model or a tune/transfer run on devtest (under ``template``, default the protocol's);
        ``split="dev"`` with an ``offset`` past the training pairs scores held-out dev pairs instead."""
        cfg = self.eval_config(tuned, template, stop_on_newline, split, offset, limit)
        return evaluate.evaluate(cfg, progress=self.progress)

    def score_all(self, configs: list[evaluate.EvalConfig]) -> list[evaluate.EvalRecord]:
        """Score (or reuse) independent eval runs through the executor, in order."""
        return executor.current(progress=self.progress).map(partial(evaluate.evaluate, progress=self.progress),
                                                            configs, "eval")
