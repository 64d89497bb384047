from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from kslottery.method import models, tuning
from kslottery.method.errors import KSLError
from kslottery.study import audit, experiments
from kslottery.study.protocol import Protocol


def test_protocol_trains_the_same_configs_as_the_other_notebooks():
    # The audit reuses the headline's and the discovery notebook's runs only if the configs are identical.
    p = Protocol(model="gemma3-270m", pair="eng_Latn-cat_Latn", train_limit=400, eval_limit=200)
    direct = tuning.TuneConfig(model="gemma3-270m", pair="eng_Latn-cat_Latn", split="dev", limit=400,
                               template="explicit", mode="embed", lr=1e-3, epochs=1.0, batch_size=8, seed=2)
    assert asdict(p.config(mode="embed", lr=1e-3, seed=2)) == asdict(direct)
    # the paper preset reaches the modes it defines and leaves LoRA alone
    paper = Protocol(model="m", pair="eng_Latn-cat_Latn", train_limit=997, eval_limit=1012, preset="paper")
    assert paper.config(mode="embed").resolved().schedule == "cosine"
    assert paper.config(mode="lora", lr=3e-4).resolved().lr == 3e-4


def test_stop_rows_are_single_tokens_of_the_real_tokenizer():
    tok = models.load_tokenizer("smollm2-135m")
    rows = audit.stop_rows(tok)
    assert rows["newline row"] == tok("\n", add_special_tokens=False)["input_ids"] == [198]
    assert tok.decode(rows["':' row"]) == ":"
    assert set(rows["BOS+EOS rows"]) == {tok.bos_token_id, tok.eos_token_id}


def test_stop_rows_refuse_a_tokenizer_that_splits_the_newline():
    class Split:
        bos_token_id, eos_token_id = 1, 2

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [5, 6]}

    with pytest.raises(KSLError, match="is not one token"):
        audit.stop_rows(Split())


def test_load_tokenizer_matches_the_full_load(tiny):
    tok = models.load_tokenizer("tiny:smollm2-135m")
    assert len(tok) == len(tiny.tokenizer) and tok("Hola")["input_ids"] == tiny.tokenizer("Hola")["input_ids"]


def test_headline_refuses_a_method_arm_without_its_learning_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    with pytest.raises(KSLError, match="arm lora needs its learning rate"):
        experiments.headline("tiny:smollm2-135m", "eng_Latn-cat_Latn", template="explicit", train_limit=8, epochs=1.0,
                       batch_size=4, lr_embed=1e-2, lr_rows=1e-2, k=4, seeds=[0], random_draws=1, eval_limit=2,
                       max_new_tokens=4, arms=["lora"], progress=False)


def test_every_notebook_scores_an_arm_in_the_same_eval_run(tmp_path, monkeypatch):
    # The default profile relies on it: the base model and the embedding-tuned model are scored once,
    # by whichever notebook comes first, and reused by the others (same EvalConfig -> same run name).
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    pair, model = "eng_Latn-cat_Latn", "tiny:smollm2-135m"
    score = dict(max_new_tokens=4, drop_finished=True)
    experiments.baseline_grid(model, [pair], ["explicit"], limit=2, batch_size=3, progress=False, **score)
    table, _ = experiments.finetune(model, [pair], {"embed": 1e-2}, train_limit=8, epochs=1.0, batch_size=4, eval_limit=2,
                              eval_batch_size=3, progress=False, **score)
    evals = sorted(p.name for p in tmp_path.glob("eval-*"))
    assert len(evals) == 2
    p = Protocol(model=model, pair=pair, train_limit=8, eval_limit=2, batch_size=4, eval_batch_size=3,
                 progress=False, **score)
    assert p.score()["run"] in evals
    assert p.score(p.tune(mode="embed", lr=1e-2)["path"])["run"] in evals
    assert sorted(p.name for p in tmp_path.glob("eval-*")) == evals
    # a different batch is a different run: the batch is part of what was computed
    assert Protocol(model=model, pair=pair, train_limit=8, eval_limit=2, batch_size=4, eval_batch_size=2,
                    progress=False, **score).score()["run"] not in evals


def test_each_seed_tunes_and_transfers_its_own_ticket(tmp_path, monkeypatch):
    """The KS arm and its transfer for seed s use the ticket discovered from seed s's embedding tuning
    (they once all used seed 0's), in the headline and in the audit."""
    import json

    from kslottery.method.discovery import DiscoveryConfig, discover
    from kslottery.study import audit

    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    p = Protocol(model="tiny:smollm2-135m", pair="eng_Latn-cat_Latn", train_limit=8, eval_limit=2, batch_size=4,
                 max_new_tokens=2, progress=False)
    plan = audit.arms(p, lr_embed=1e-2, lr_rows=1e-2, k=4, seeds=[0, 1], audit_seeds=[], random_draws=0)
    own = {s: discover(DiscoveryConfig(tuned=p.tune(mode="embed", lr=1e-2, seed=s)["path"], k=4))["tickets"]["topk-4"]["ids"]
           for s in (0, 1)}
    assert own[0] != own[1]   # else the test could not tell the tickets apart
    for b in plan:
        if b.arm == "KS top-4":
            assert json.loads((Path(b.path) / "params.json").read_text())["params"]["ticket"] == sorted(own[b.seed])
        if b.arm == "transfer KS top-4":
            assert b.run["ticket_ids"] == sorted(own[b.seed])


def test_collapse_summary_counts_intervals_with_0_and_names_the_gain_of_those_without():
    term = pd.DataFrame({"arm": ["base", "embed", "random-18", "newline row"],
                         "gain whole": [None, 14.7, -0.0145, 9.8],
                         "collapse": [None, -0.008, 1.18, -0.05],
                         "collapse ci": [None, (-0.15, 0.10), (1.0, 1.2), (-0.28, 0.11)]})
    assert audit.collapse_summary(term) == {"contains0": 2, "runs": 3, "excludes0_max_gain": 0.0145}


def test_template_gains_reads_one_delta_and_names_the_labels_on_a_typo():
    tt = pd.DataFrame({"trained": ["KS top-18 (explicit)"] * 2 + ["embed (explicit)"] * 2,
                       "template": ["explicit", "bare"] * 2, "gain first_line": [10.2, -0.1, 14.8, 15.7]})
    assert audit.template_gains(tt, "KS top-18 (explicit)").to_dict() == {"explicit": 10.2, "bare": -0.1}
    with pytest.raises(KSLError, match="KS top-18'.*pick one of"):
        audit.template_gains(tt, "KS top-18")
