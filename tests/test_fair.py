"""The fair test on the tiny model: held-out learning-rate selection never reads devtest, the earliest-seen
rows equal a direct computation from the training batches, and every trained arm of a seed used that seed's
ticket and its family's chosen learning rate."""

import dataclasses
from pathlib import Path

import pytest

from kslottery.method import baselines, data, models, tuning
from kslottery.method.errors import KSLError
from kslottery.study import answer, fair
from kslottery.study.arms import FAMILY, REGISTRY
from kslottery.study.design import Design
from kslottery.study.recipe import Recipe

TINY = "tiny:smollm2-135m"


def test_earliest_seen_rows_equal_a_direct_computation_from_the_batches(flores_dir):
    cfg = tuning.TuneConfig(model=TINY, limit=16, batch_size=4, max_steps=3, seed=1)
    examples = tuning.encode_all(models.load_tokenizer(TINY), tuning.training_bitext(cfg), cfg)
    batches = tuning.batch_order(len(examples), cfg)
    # directly: walk the steps in order; a row joins when its first batch comes; within a step the more
    # frequent token first, then the smaller id
    counts = {}
    for e in examples:
        for t in e["input_ids"]:
            counts[t] = counts.get(t, 0) + 1
    expected, seen = [], set()
    for batch in batches:
        new = {t for i in batch for t in examples[i]["input_ids"]} - seen
        expected += sorted(new, key=lambda t: (-counts[t], t))
        seen |= new
    for k in (1, 7, 25):
        assert baselines.earliest_ticket(examples, batches, k).ids == expected[:k]
    assert len(batches) == 3 and len(set(expected)) == len(expected)


def test_learning_rate_selection_never_reads_devtest(flores_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "clean"))
    design = Design(train_pairs=8, dev_sentences=3, batch_size=4)
    proto = Recipe(model=TINY, pair=design.pair, train_limit=8, eval_limit=3, batch_size=4, max_new_tokens=4,
                     progress=False)

    def train(lr, seed):
        return proto.tune(mode="embed", lr=lr, seed=seed, max_steps=2)

    clean = fair.select_lr(train, fair.dev_score(proto, design), (0.01, 1.0), (0,))
    real = data.load_flores

    def poisoned(pair, split="devtest", limit=None, root=None, offset=0):
        b = real(pair, split, limit, root, offset)
        if split != "devtest":
            return b
        return dataclasses.replace(b, tgt=["garbage"] * len(b), src=["garbage"] * len(b))

    monkeypatch.setattr(data, "load_flores", poisoned)
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "poisoned"))   # recompute everything under the poison
    again = fair.select_lr(train, fair.dev_score(proto, design), (0.01, 1.0), (0,))
    assert again["chosen"] == clean["chosen"]
    assert again["means"].tolist() == clean["means"].tolist()
    # and the scores it chose on are the held-out dev pairs, after the 8 training pairs
    rec = proto.score(train(0.01, 0)["path"], split="dev", offset=8, limit=3)
    assert rec["config"]["offset"] == 8 and "dev" in rec["data"]["name"] and "[8:]" in rec["data"]["name"]
    # the eval run's typed readers read what record.json holds
    assert rec.chrf("first_line") == rec["scores"]["first_line"]["chrf++"]["score"]
    assert rec.eos_rate == rec["termination"]["eos_rate"] and len(rec.hypotheses()["whole"]) == 3
    with pytest.raises(KSLError, match="no extraction rule 'last_line'"):
        rec.chrf("last_line")


SMOKE_BUDGETS = {"tiny:smollm2-135m": (0.02, 2), "tiny:gemma3-270m": (0.02, 3)}   # the smoke sweep's choices


def _smoke_fair_test(models=None):
    from kslottery.report.profiles import load_profile

    smoke = load_profile("smoke")
    design = Design.from_profile(smoke)
    assert design.models == tuple(SMOKE_BUDGETS)
    out = {m: fair.fair_test(design, m, adam=SMOKE_BUDGETS[m],
                             max_new_tokens=smoke["notebooks"]["fair_test"]["max_new_tokens"], progress=False)
           for m in models or design.models}
    return design, out


@pytest.mark.slow
def test_every_trained_arm_uses_its_seeds_ticket_and_its_familys_chosen_lr(flores_dir, tmp_path, monkeypatch):
    # The smoke profile's fair test on both tiny models, exactly (its design, its budgets, its decoding), in the
    # session's runs folder: under `make test` it runs after the smoke notebooks, in their worker, and reuses the
    # runs the fair-test notebook computed (tests/conftest.py, AFTER_NOTEBOOKS).
    import pandas as pd

    design, results = _smoke_fair_test()
    for m, r in results.items():
        s = r["scores"]
        assert set(s["model"]) == {m}
        for _, row in s[s["arm"] != "base"].iterrows():
            f, arm = FAMILY[row["arm"]], REGISTRY[row["arm"]]
            if f != "transfer":
                assert row["lr"] == r["lrs"][f"{f} (chosen)"], row["arm"]
            if arm.ticket == "ks":
                assert row["ticket"] == r["trunks"][arm.trunk].ticket(row["seed"]), row["arm"]
            if row["arm"] == "earliest-seen rows":
                assert len(row["ticket"]) == len(r["trunks"]["main"].ticket(row["seed"]))
        assert set(s.loc[s["arm"] == "full fine-tuning", "seed"]) == {0, 1} and "sgd" not in r["trunks"]
        assert len(r["refs"]) == design.test_sentences
        assert r["refs"] == data.load_flores(design.pair, "devtest", offset=design.test_offset,
                                             limit=design.test_sentences).tgt
    c = fair.comparisons(results, design)
    assert set(c["model"]) == set(design.models) and len(c) == 2 * len(design.comparisons())
    for _, row in c.iterrows():   # the outcome follows from the intervals and the Holm p by one rule
        (lo, hi), (l90, h90) = row["95 % (union)"], row["90 % (union)"]
        if row["outcome"].startswith("equivalent"):
            assert -design.margin < l90 and h90 < design.margin
        if "better" in row["outcome"] or "worse" in row["outcome"]:
            assert (lo > 0 or hi < 0) and row["p difference (Holm)"] < design.alpha
        if row["outcome"].startswith("equivalent"):
            assert row["p equivalence (Holm)"] < design.alpha
        if row["outcome"] == "inconclusive":
            assert not (-design.margin < l90 and h90 < design.margin and row["p equivalence (Holm)"] < design.alpha)
        assert row["p"] == max(row["p (seeds)"], row["p (bootstrap)"]) and row["p difference (Holm)"] >= row["p"]
    # Holm runs over the primary comparisons of both models together: m = 2 x 7 tests
    from kslottery.study.verdicts import holm
    for model in design.models:   # Holm per model over both tests of every primary comparison, and only those
        primary = c[(c["role"] == "primary") & (c["model"] == model)]
        assert len(primary) == 6
        adjusted = list(holm(dict(enumerate([*primary["p"], *primary["p equivalence"]]))).values())
        assert primary["p difference (Holm)"].tolist() + primary["p equivalence (Holm)"].tolist() == adjusted
    # the rows rate is chosen over the KS and the frequency-matched tickets, on both selection seeds
    rows_sel = results["tiny:smollm2-135m"]["selection"]["rows"]["table"]
    assert set(rows_sel["ticket"]) == {"ks", "frequency-matched"} and set(rows_sel["seed"]) == {0}
    r = results["tiny:smollm2-135m"]
    e = fair.exposure(r)
    from kslottery.method.baselines import first_gradient_step
    examples, batches = r["trunks"]["main"].batches(1)
    first_batch = {t for i in batches[0] for t in examples[i]["input_ids"]}   # no accumulation in this design
    assert e.loc[e["seed"] == 1, "rows first seen at step 1"].item() == len(first_batch)
    assert len(first_batch) == sum(v == 1 for v in first_gradient_step(examples, batches).values())
    v = fair.headline_values(r, c, e)
    assert v["tiny_colon_smollm2_135m_first_batch_rows_max"] == e["rows first seen at step 1"].max()
    assert v["tiny_colon_smollm2_135m_adam_ticket_vs_embedding_tuning_diff"] == c.iloc[2]["b - a"]
    assert v["tiny_colon_smollm2_135m_lr_full"] == r["lrs"]["full (chosen)"]
    assert all(type(x) in (int, float, str) for x in v.values())
    arms = fair.arm_table(r).set_index("arm")
    assert arms.loc["Adam ticket", "chrF++ whole"] == r["scores"].loc[r["scores"]["arm"] == "Adam ticket",
                                                                      "chrf++ whole"].mean()
    table = answer.answer(c)
    assert list(table.columns) == ["question", *design.models] and len(table) == len(answer.QUESTIONS)
    both = pd.concat([fair.arm_table(x) for x in results.values()], ignore_index=True)
    assert answer.sentence(c, both).startswith("On ")
    from kslottery.report import checks
    s = r["scores"]
    assert checks.arms_at_chosen_lrs(r) and checks.arm_scores_match_outputs(s)
    assert not checks.arms_at_chosen_lrs({**r, "lrs": {**r["lrs"], "rows (chosen)": 123.0}})
    assert not checks.arm_scores_match_outputs(s.assign(**{"chrf++ whole": s["chrf++ whole"] + 0.01}))

    # Poison the devtest sentences earlier designs read (devtest[:test_offset]) and score every arm of one model
    # again from scratch (the trained runs are linked, the eval runs are not): no outcome, difference or interval
    # changes (Holm runs per model, so one model's outcomes do not depend on the other's).
    import os
    poisoned_runs = tmp_path / "poisoned"
    poisoned_runs.mkdir()
    for run in Path(os.environ["KSL_RUNS"]).iterdir():
        if not run.name.startswith("eval-"):
            (poisoned_runs / run.name).symlink_to(run)
    real = data.load_flores

    def poisoned(pair, split="devtest", limit=None, root=None, offset=0):
        b = real(pair, split, limit, root, offset)
        if split != "devtest":
            return b
        bad = lambda side: [("garbage " * 9 if offset + i < design.test_offset else x)   # noqa: E731
                            for i, x in enumerate(side)]
        return dataclasses.replace(b, src=bad(b.src), tgt=bad(b.tgt))

    monkeypatch.setattr(data, "load_flores", poisoned)
    monkeypatch.setenv("KSL_RUNS", str(poisoned_runs))
    one = "tiny:smollm2-135m"
    again = fair.comparisons(_smoke_fair_test([one])[1], design)
    assert not any(p.name.startswith("eval-") and p.is_symlink() for p in poisoned_runs.iterdir())
    assert any(p.name.startswith("eval-") for p in poisoned_runs.iterdir())   # scored again, under the poison
    cols = ["model", "a", "b", "outcome", "b - a", "95 % (union)", "90 % (union)", "p difference (Holm)"]
    assert again[cols].equals(c.loc[c["model"] == one, cols].reset_index(drop=True))


def test_the_exposure_means_name_how_many_seeds_each_averages():
    import pandas as pd

    scores = pd.DataFrame({"arm": ["base"], "seed": [0], "rows": [None], "lr": [None], "chrf++ whole": [20.0],
                           "chrf++ first_line": [25.0], "eos_rate": [0.1]})
    exposure = pd.DataFrame({"seed": [0, 1, 2], "Jaccard with earliest-seen rows": [0.5, 0.3, 0.1],
                             "Jaccard with most frequent rows": [0.2, 0.4, float("nan")]})   # a secondary arm: 2 seeds
    v = fair.headline_values({"model": "m", "selection": {}, "scores": scores},
                             pd.DataFrame(columns=["model", "a", "b"]), exposure)
    assert v["m_jaccard_earliest_seen_rows"] == pytest.approx(0.3) and v["m_jaccard_earliest_seen_rows_seeds"] == 3
    assert v["m_jaccard_most_frequent_rows"] == pytest.approx(0.3) and v["m_jaccard_most_frequent_rows_seeds"] == 2


@pytest.mark.parametrize("embed,said", [
    (25.0, "the margin of 2 chrF++ is 40% of embedding tuning's gain over the base model (+5.0 chrF++)"),
    (19.0, "embedding tuning gains nothing over the base model (-1.0 chrF++), so the margin of 2 chrF++ cannot be "
           "read against its gain")])
def test_the_margin_is_stated_against_embedding_tunings_gain(embed, said):
    import pandas as pd

    scores = pd.DataFrame({"arm": ["base", "embedding tuning", "embedding tuning"], "seed": [None, 0, 1],
                           "rows": [None] * 3, "lr": [None, 1e-3, 1e-3], "chrf++ whole": [20.0, embed - 1, embed + 1],
                           "chrf++ first_line": [20.0] * 3, "eos_rate": [0.0] * 3})
    comps = pd.DataFrame([{"model": "m", "role": "primary", "a": "embedding tuning", "b": "Adam ticket",
                           "kind": "equivalence", "seeds": 2, "b - a": 0.5, "verdict": "inconclusive",
                           "outcome": "inconclusive", "bootstrap 95 %": (-1.0, 2.0), "t 95 %": (-3.0, 4.0),
                           "90 % (union)": (-2.5, 3.5), "95 % (union)": (-3.0, 4.0), "margin": 2.0}])
    result = {"model": "m", "selection": {}, "scores": scores}
    v = fair.headline_values(result, comps, pd.DataFrame())
    assert v["m_margin_in_gain"] == said and v["m_adam_ticket_vs_embedding_tuning_u90_lo"] == -2.5
    assert v["m_adam_ticket_vs_embedding_tuning_said"] == (
        "on m, Adam ticket against embedding tuning: inconclusive (+0.5 chrF++, 95 % [-3.0, 4.0], 90 % [-2.5, 3.5], "
        "margin ±2)")
    assert "m_margin_in_gain" not in fair.headline_values(result, comps.iloc[:0], pd.DataFrame())


@pytest.mark.parametrize("outcome,diff,ci95,said", [
    ("b worse", -2.35, (-3.14, -1.59), "on m, Adam ticket is worse than embedding tuning by 2.4 chrF++ (95 % [1.6, 3.1])"),
    ("b better, beyond the margin", 3.0, (2.2, 3.8),
     "on m, Adam ticket is better than embedding tuning by 3.0 chrF++ (95 % [2.2, 3.8], beyond the margin)"),
    ("equivalent; b slightly worse", -0.6, (-1.0, -0.2),
     "on m, Adam ticket is slightly worse than embedding tuning by 0.6 chrF++ (95 % [0.2, 1.0])"),
    ("equivalent", 0.1, (-0.9, 1.1), "on m, Adam ticket is equivalent to embedding tuning within ±2 chrF++ (+0.1, "
                                     "90 % [-0.7, 0.9])"),
])
def test_an_outcome_is_said_with_its_direction_size_and_interval(outcome, diff, ci95, said):
    row = {"model": "m", "a": "embedding tuning", "b": "Adam ticket", "outcome": outcome, "b - a": diff,
           "95 % (union)": ci95, "90 % (union)": (-0.7, 0.9), "margin": 2.0}
    assert fair.said(row) == said


def test_the_design_table_writes_every_setting_out_with_its_meaning():
    d = Design(seeds=(0, 1, 2), full_seeds=(0,), secondary_seeds=(0,), margin=1.5)
    rows = {r["setting"]: r for r in d.settings()}
    assert rows["seeds"]["value"] == "0\u20132" and rows["margin"]["value"] == "1.5"
    assert rows["sweep snapshots"]["value"] == "1\u201316, 24, 32, 48, 64" and rows["full seeds"]["value"] == "0"
    assert rows["lr grids"]["value"] == "embed: 0.0001, 0.0003, 0.001; rows: 0.003, 0.01, 0.03; full: 3e-06, 1e-05, 3e-05"
    assert rows["test offset"]["value"] == "200" and rows["bootstrap"]["value"] == "crossed"
    assert len(rows) == len(dataclasses.fields(Design)) and all(r["meaning"] for r in rows.values())


@pytest.mark.parametrize("chosen,said", [
    ({"embed": 1e-3, "rows": 1e-2}, "every family's chosen rate lies inside its grid"),
    ({"embed": 3e-3, "rows": 1e-2}, "the chosen rate is at the edge of the grid for embed (0.003, its grid's highest "
                                    "point): a better rate may lie outside it"),
    ({"embed": 3e-4, "rows": 3e-2}, "the chosen rate is at the edge of the grid for embed (0.0003, its grid's lowest "
                                    "point); rows (0.03, its grid's highest point): a better rate may lie outside it"),
])
def test_a_chosen_rate_at_its_grids_edge_is_said(chosen, said):
    import pandas as pd

    grids = {"embed": [3e-4, 1e-3, 3e-3], "rows": [3e-3, 1e-2, 3e-2]}
    selection = {f: {"means": pd.Series([20.0, 21.0, 22.0], index=grids[f]), "chosen": chosen[f]} for f in grids}
    assert fair.grid_edges(selection) == said


def test_the_key_comparisons_are_the_primary_ones_of_every_model_outcome_first():
    import pandas as pd

    from kslottery.study.design import PRIMARY, SECONDARY

    comps = pd.DataFrame([{"model": m, "role": role, "a": a, "b": b, "kind": kind, "b - a": 0.5,
                           "95 % (union)": (-2.0, 3.0), "90 % (union)": (-1.5, 2.5), "p difference (Holm)": 0.5, "seeds": 5,
                           "p equivalence (Holm)": 0.25,
                           "outcome": "inconclusive"}
                          for m in ("g", "s") for role, table in (("primary", PRIMARY), ("secondary", SECONDARY))
                          for a, b, kind in table])
    key = fair.key_comparisons(comps)
    assert len(key) == 2 * len(PRIMARY) and list(key["model"]) == ["g"] * len(PRIMARY) + ["s"] * len(PRIMARY)
    assert list(key["comparison"])[:3] == ["Adam ticket − frequency-matched rows", "Adam ticket − earliest-seen rows",
                                           "Adam ticket − embedding tuning"]
    assert list(key.columns[:4]) == ["model", "comparison", "outcome", "b − a"]   # the finding before its numbers
    assert key["p equivalence (Holm)"].tolist() == [0.25] * len(key)   # both deciding tests' p, as the rule reads
    table = answer.answer(comps)
    assert list(table.columns) == ["question", "g", "s"]
    assert table.iloc[0]["g"] == "inconclusive (+0.5 chrF++; 95 % interval -2.0 to 3.0)"


def test_a_figure_caption_names_the_seeds_each_group_of_arms_ran_on():
    from kslottery.report.figstyle import caption_context

    design = Design(seeds=(0, 1, 2, 3, 4), full_seeds=(0, 1, 2), secondary_seeds=(0, 1))
    line = caption_context({"profile": "default", "seeds": fair.caption_seeds(design), "eval_limit": 200})
    assert "seeds 0, 1, 2, 3, 4 (full fine-tuning 0, 1, 2; secondary arms 0, 1); sentences 200 devtest" in line


class _Dev:
    def __init__(self, score):
        self.score = score

    def chrf(self, rule):
        return self.score


class _MonotoneRecipe:
    """A recipe whose dev score falls as the learning rate rises (for every family): the best point is always the
    grid's lowest, so the extension rule must look below it, twice, and stop."""
    def __init__(self):
        self.trained, self.scored = [], []

    def config(self, mode, lr, seed, ticket=None, mixed_precision="no"):
        return (mode, lr, seed)

    def tune_all(self, configs):
        self.trained += configs
        return [{"path": f"{m}/{lr:g}/{s}", "run": f"{m}/{lr:g}/{s}"} for m, lr, s in configs]

    def eval_config(self, path, split="devtest", offset=0, limit=None):
        assert split == "dev" and offset == 512   # the held-out dev pairs, never devtest
        return path

    def score_all(self, paths):
        import math

        self.scored += paths
        return [_Dev(-math.log10(float(p.split("/")[1]))) for p in paths]


class _Trunk:
    def ticket(self, seed):
        return [1, 2, 3]


def test_a_grid_whose_best_point_is_its_edge_extends_on_dev_at_most_twice():
    design = Design(selection_seeds={"embed": (0, 1), "rows": (0,), "full": (0,)}, selection_ticket="ks")
    proto = _MonotoneRecipe()
    sel = fair.selections(proto, design, _Trunk())
    embed = sel["embed"]
    assert embed["extended"] == 2 and embed["stated"] == (1e-4, 3e-4, 1e-3)
    assert sorted(embed["means"].index) == [1.1e-05, 3.3e-05, 1e-4, 3e-4, 1e-3] and embed["chosen"] == 1.1e-05
    assert sel["full"]["chosen"] == 3.3e-07 and sel["rows"]["extended"] == 2
    # every grid point trained once per selection seed, and scored once
    assert len(proto.trained) == len(set(proto.trained)) == 5 * 2 + 5 + 5 == len(proto.scored)
    table = fair.selection_table({"model": "m", "selection": sel})
    added = table[table["added by the extension rule"]]
    assert sorted(added["lr"].round(12)) == sorted([1.1e-05, 3.3e-05, 3.3e-07, 1e-06, 0.001, 0.00033])
    assert fair.grid_edges(sel).startswith("the chosen rate is at the edge of the grid for embed (1.1e-05, its grid's "
                                           "lowest point after 2 extensions of the stated grid)")


def test_each_family_trains_in_the_precision_the_design_fixes():
    from kslottery.study.arms import Trunk, _job

    proto = Recipe(model=TINY, pair="eng_Latn-cat_Latn", train_limit=8, eval_limit=3, batch_size=4, progress=False)
    trunk = Trunk(proto, {"embed": 0.01}, {"seeds": [0], "full": [0]}, options={"max_steps": 2}, arm_options={},
                  arm_lrs={"embed": 1e-3, "rows": 1e-2, "full": 1e-5},
                  arm_precision={"embed": "no", "rows": "bf16", "full": "bf16"})
    for arm, precision in (("full fine-tuning", "bf16"), ("embedding tuning", "no")):
        _, kind, (_, cfg) = _job(REGISTRY[arm], trunk, 0)
        assert kind == "tune" and cfg.mixed_precision == precision and cfg.lr == trunk.arm_lrs[FAMILY[arm]]
    # the discovery's embedding tuning stays in float32 whatever the arms use: the KS test reads its rows
    assert trunk.embed_config(0).mixed_precision == "no"
    with pytest.raises(KSLError, match="unknown precision"):
        Design(precision={"embed": "fp16", "rows": "no", "full": "no"})


class _Found(dict):
    """A discovery as fair.discovery_budget reads it: the ticket's rows and the rows the tuning changed."""


class _Discoveries:
    """A trunk whose discoveries are given: {seed: (ticket rows, changed rows)}; nothing left to tune."""

    def __init__(self, steps: int, sizes: dict):
        self.options, self.seeds, self._embed = {"max_steps": steps}, {"seeds": list(sizes)}, dict.fromkeys(sizes)
        self.sizes = sizes

    def ticket(self, seed):
        return list(range(self.sizes[seed][0]))

    def discovery(self, seed):
        return _Found(n_changed=self.sizes[seed][1])

    def require_tickets(self):
        if not all(k for k, _ in self.sizes.values()):
            raise KSLError("seed: no row is significant", "take the budget the budget sweep chose")


# SmolLM2 at lr 0.02: the sweep chose 9 steps on seed 0; seeds 3 and 4 fall short there (5 and 0 rows)
SIZES = {9: {0: (14, 1745), 3: (5, 1749), 4: (0, 1851)}, 10: {0: (44, 1894), 3: (13, 1900), 4: (6, 1990)},
         11: {0: (70, 2043), 3: (30, 2050), 4: (12, 2100)}, 12: {0: (1500, 2159), 3: (40, 2100), 4: (20, 2200)}}


@pytest.mark.parametrize("raise_steps, steps, error", [
    (0, 9, "seed: no row is significant"),           # fair-v2.1: the empty ticket stops the test
    (6, 11, None),                                   # fair-v2.2: the fewest steps at which every seed holds 12+
    (1, 9, r"no discovery budget from 9 to 10 steps .* seed 4 6/1990"),
])
def test_the_discovery_steps_rise_for_every_seed_until_each_ticket_obeys_the_size_rule(raise_steps, steps, error):
    design = Design(raise_steps=raise_steps)
    if error:
        with pytest.raises(KSLError, match=error):
            fair.discovery_budget(design, lambda n: _Discoveries(n, SIZES[n]), 9)
    else:
        assert fair.discovery_budget(design, lambda n: _Discoveries(n, SIZES[n]), 9).options["max_steps"] == steps


def test_a_ticket_past_half_the_changed_rows_does_not_hold_either():
    sizes = {9: {0: (14, 1745), 1: (1000, 1800)}, 10: {0: (44, 1894), 1: (1000, 1900)}}
    with pytest.raises(KSLError, match="seed 1 1000/1800; 10 steps: .*seed 1 1000/1900"):
        fair.discovery_budget(Design(raise_steps=1), lambda n: _Discoveries(n, sizes[n]), 9)


def test_the_budgets_used_are_said_with_the_sweeps_choice_where_the_rule_raised_it():
    results = {"gemma3-270m": {"budgets": {"main": (0.01, 5, 5)}},
               "smollm2-135m": {"budgets": {"main": (0.02, 10, 9)}}}
    assert fair.budget_words(results) == ("gemma3-270m lr 0.01 × 5 steps; smollm2-135m lr 0.02 × 10 steps "
                                          "(the sweep chose 9)")
