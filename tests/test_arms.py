"""Arms as branches of a trunk (kslottery.study.arms) and the six pairs' seed overlap (kslottery.study.six_pairs)."""

import pandas as pd
import pytest

from kslottery.method import ticket, tuning
from kslottery.method.errors import KSLError
from kslottery.study import budget
from kslottery.study.arms import Arm, Trunk, plan
from kslottery.study.recipe import Recipe


@pytest.mark.parametrize("kw, message", [
    (dict(name="x", mode="rows", lr="rows"), "needs a ticket source"),
    (dict(name="x", mode="rows"), "names no mode or learning rate"),
    (dict(name="x", kind="paste"), "unknown kind"),
    (dict(name="x", kind="transfer"), "needs a ticket source"),
])
def test_an_arm_that_cannot_run_is_refused_when_declared(kw, message):
    with pytest.raises(KSLError, match=message):
        Arm(**kw)


@pytest.fixture(scope="module")
def trunk(tmp_path_factory, flores_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("KSL_RUNS", str(tmp_path_factory.mktemp("runs")))
    # The smoke profile's chosen budget: on the tiny random model Bonferroni keeps 12 of 283 rows.
    p = Recipe(model="tiny:smollm2-135m", pair="eng_Latn-cat_Latn", train_limit=16, eval_limit=2, batch_size=4,
                 max_new_tokens=2, progress=False)
    yield Trunk(p, {"embed": 0.02, "rows": 0.02}, {"seeds": [0, 1]}, rule="bonferroni", alpha=0.05,
                options={"max_steps": 2})
    mp.undo()


def test_each_seed_has_its_own_significance_ticket_and_it_is_the_top_rows_by_d(trunk):
    from kslottery.method.ticket import ks_from_rows, select
    from kslottery.method.tuned import TunedRun

    t0, t1 = trunk.ticket(0), trunk.ticket(1)
    assert len(t0) == 12 and t0 != t1
    run = TunedRun(trunk.embed(0)["path"])
    assert run.record["config"]["max_steps"] == 2 and run.record["train"]["steps"] == 2
    res = ks_from_rows(run.rows(), run.vocab_size)
    assert set(t0) == set(select(res, "topk", k=len(t0)).tolist())


def test_controls_take_the_tickets_size_and_the_rows_the_seed_saw(trunk):
    from kslottery.method.models import load_tokenizer
    from kslottery.study.arms import ticket_for

    ks = trunk.ticket(0)
    freq = ticket_for(Arm("f", mode="rows", ticket="frequency", lr="rows"), trunk, 0)
    matched = ticket_for(Arm("m", mode="rows", ticket="frequency-matched", lr="rows"), trunk, 0)
    assert len(freq) == len(matched) == len(ks) and not set(matched) & set(ks)
    counts = trunk.counts(0)
    # two steps of 4 pairs: only those 8 examples are the pool, not all 16 training pairs
    cfg = trunk.recipe.config(mode="embed", lr=0.02, seed=0, max_steps=2)
    examples = tuning.encode_all(load_tokenizer("tiny:smollm2-135m"), tuning.training_bitext(cfg), cfg)
    seen = [i for b in tuning.batch_order(len(examples), cfg) for i in b]
    assert len(seen) == 8
    assert set(counts) == {t for i in seen for t in examples[i]["input_ids"]}
    assert set(freq) <= set(counts) and set(matched) <= set(counts)
    bos = load_tokenizer("tiny:smollm2-135m").bos_token_id
    assert ticket_for(Arm("b", mode="rows", ticket="bos", lr="rows"), trunk, 0) == [bos]


def test_plan_trains_each_arm_at_each_seed_and_refuses_what_it_cannot_run(trunk):
    import json
    from pathlib import Path

    branches = plan(trunk, [Arm("base", kind="base"), Arm("KS", mode="rows", ticket="ks", lr="rows"),
                            Arm("paste", kind="transfer", ticket="ks")])
    assert [(b.arm, b.seed) for b in branches] == [("base", None), ("KS", 0), ("KS", 1), ("paste", 0), ("paste", 1)]
    for b in branches[1:3]:
        params = json.loads((Path(b.path) / "params.json").read_text())["params"]
        assert params["ticket"] == sorted(trunk.ticket(b.seed)) and params["max_steps"] == 2
    assert branches[3].run["ticket_ids"] == sorted(trunk.ticket(0))
    with pytest.raises(KSLError, match="arm names repeat"):
        plan(trunk, [Arm("base", kind="base"), Arm("base", kind="base")])
    with pytest.raises(KSLError, match="seed list 'audit_seeds'"):
        plan(trunk, [Arm("stop", mode="rows", ticket="bos", lr="rows", seeds="audit_seeds")])
    with pytest.raises(KSLError, match="arm full needs its learning rate"):
        plan(trunk, [Arm("full", mode="full", lr="full")])


def test_the_chosen_budget_comes_from_the_sweeps_table(tmp_path, monkeypatch):
    from kslottery.study.results import save_tables

    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    sweep = pd.DataFrame({"optimizer": ["adamw"] * 4 + ["sgd"], "lr": [1e-3, 1e-3, 1e-2, 1e-2, 0.2],
                          "step": [8, 16, 8, 16, 8], "bh_0.05": [0, 3, 472, 900, 14],
                          "rows_changed": [1000, 2000, 1000, 2000, 1000]})
    save_tables("trial", "budget_sweep", sweep=sweep)
    assert budget.chosen("trial", "bh_0.05", 12) == {"lr": 0.01, "steps": 8, "rule": "bh", "alpha": 0.05}
    with pytest.raises(KSLError, match="reaches a bh_0.05 ticket of 1000 rows"):
        budget.chosen("trial", "bh_0.05", 1000)
    with pytest.raises(KSLError, match="has no budget sweep table"):
        budget.chosen("no-such-profile")


def test_a_ticket_of_hundreds_of_ids_passes_as_ids_or_as_text():
    ids = list(range(1000, 1400))
    assert ticket.ticket_ids(tuple(reversed(ids)), 49152) == ids
    assert ticket.ticket_ids(",".join(map(str, ids)), 49152) == ids     # once tried as a file name: OSError


def test_a_budget_without_a_ticket_is_refused_before_any_arm_trains():
    from kslottery.study.arms import Trunk
    from kslottery.study.recipe import Recipe

    trunk = Trunk(Recipe(model="tiny:smollm2-135m", pair="eng_Latn-cat_Latn", train_limit=16, eval_limit=4),
                  {"embed": 0.001, "rows": 0.001}, {"seeds": [0, 1]}, options={"max_steps": 2})
    from kslottery.method.discovery import DiscoveryRecord

    trunk._found = {0: DiscoveryRecord({"tickets": {"bh-0.05": {"ids": [5, 7]}}}),
                    1: DiscoveryRecord({"tickets": {"bh-0.05": {"ids": []}}})}
    with pytest.raises(KSLError, match=r"seed 1: no row is significant under bh at 0.05 after 2 steps of lr 0.001") as e:
        trunk.require_tickets()
    assert "\n" not in str(e.value) and "budget sweep chose" in str(e.value)


def test_the_seed_overlap_reuses_the_trunks_discovery_runs_and_averages_off_the_diagonal(trunk):
    import os
    from pathlib import Path

    from kslottery.study.six_pairs import seed_overlap

    expected = {s: trunk.ticket(s) for s in (0, 1)}
    before = sorted(Path(os.environ["KSL_RUNS"]).glob("tune-*"))
    r = seed_overlap("tiny:smollm2-135m", "eng_Latn-cat_Latn", [0, 1], train_limit=16, batch_size=4, lr=0.02,
                     steps=2, rule="bonferroni", alpha=0.05)
    assert sorted(Path(os.environ["KSL_RUNS"]).glob("tune-*")) == before   # same parameters: no new run
    assert r["tickets"] == expected
    a, b = set(expected[0]), set(expected[1])
    assert r["mean"] == pytest.approx(len(a & b) / len(a | b))
    with pytest.raises(KSLError, match="two seeds or more"):
        seed_overlap("tiny:smollm2-135m", "eng_Latn-cat_Latn", [0], train_limit=16, batch_size=4, lr=0.02, steps=2)


@pytest.mark.parametrize("matrix, mean", [
    ([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]], 0.4),
    ([[1.0, 0.0], [0.0, 1.0]], 0.0),
])
def test_mean_off_diagonal_leaves_out_each_set_against_itself(matrix, mean):
    from kslottery.study.six_pairs import mean_off_diagonal

    assert mean_off_diagonal(pd.DataFrame(matrix)) == pytest.approx(mean)


def test_jaccard_is_one_on_the_diagonal_and_the_share_of_the_union_off_it():
    from kslottery.study.six_pairs import jaccard

    m = jaccard({"a": [1, 2, 3], "b": [2, 3, 4, 5], "c": []})
    assert m.loc["a", "a"] == 1.0 and m.loc["a", "b"] == pytest.approx(2 / 5) and m.loc["c", "c"] == 0.0


def test_mean_off_diagonal_of_one_set_is_nan():
    from kslottery.study.six_pairs import mean_off_diagonal

    assert mean_off_diagonal(pd.DataFrame([[1.0]])) != mean_off_diagonal(pd.DataFrame([[1.0]]))


def test_protocol_trains_the_configs_a_direct_tune_would():
    # Chapters reuse each other's runs only if the configs are identical.
    from dataclasses import asdict

    p = Recipe(model="gemma3-270m", pair="eng_Latn-cat_Latn", train_limit=400, eval_limit=200)
    direct = tuning.TuneConfig(model="gemma3-270m", pair="eng_Latn-cat_Latn", split="dev", limit=400,
                               template="explicit", mode="embed", lr=1e-3, epochs=1.0, batch_size=8, seed=2)
    assert asdict(p.config(mode="embed", lr=1e-3, seed=2)) == asdict(direct)
    # the paper preset reaches the modes it defines and leaves LoRA alone
    paper = Recipe(model="m", pair="eng_Latn-cat_Latn", train_limit=997, eval_limit=1012, preset="paper")
    assert paper.config(mode="embed").resolved().schedule == "cosine"
    assert paper.config(mode="lora", lr=3e-4).resolved().lr == 3e-4


def test_load_tokenizer_matches_the_full_load(tiny):
    from kslottery.method import models

    tok = models.load_tokenizer("tiny:smollm2-135m")
    assert len(tok) == len(tiny.tokenizer) and tok("Hola")["input_ids"] == tiny.tokenizer("Hola")["input_ids"]


def test_the_discovery_run_gives_back_the_ks_test_it_computed(trunk):
    """Selections beyond the run's own tickets (top-k of any k, other rules) read the ks run, not a new KS test."""
    import torch

    from kslottery.method.ticket import ks_from_rows, select
    from kslottery.method.tuned import TunedRun

    run = TunedRun(trunk.embed(0)["path"])
    fresh, stored = ks_from_rows(run.rows(), run.vocab_size), trunk.discovery(0).result()
    assert torch.equal(fresh.statistic, stored.statistic) and torch.equal(fresh.pvalue, stored.pvalue)
    assert torch.equal(fresh.changed, stored.changed) and torch.equal(fresh.k, stored.k) and fresh.d == stored.d
    for k in (1, 5, 30):
        assert trunk.topk(0, k) == select(fresh, "topk", k=k).tolist()
