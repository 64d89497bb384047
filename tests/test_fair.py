"""The fair test on the tiny model: held-out learning-rate selection never reads devtest, the earliest-seen
rows equal a direct computation from the training batches, and every trained arm of a seed used that seed's
ticket and its family's chosen learning rate."""

import dataclasses

import pytest

from kslottery.method import baselines, data, models, tuning
from kslottery.method.errors import KSLError
from kslottery.study import fair
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


@pytest.mark.slow
def test_every_trained_arm_uses_its_seeds_ticket_and_its_familys_chosen_lr(flores_dir):
    # The smoke profile's fair test, exactly (its design, its budgets, its decoding), in the session's runs folder:
    # the smoke notebook nbval executes after the unit tests then reuses these runs instead of computing them again.
    from kslottery.report.profiles import load_profile

    smoke = load_profile("smoke")
    design = Design.from_profile(smoke)
    r = fair.fair_test(design, TINY, adam=(0.02, 2), sgd=tuple(smoke["notebooks"]["fair_test"]["sgd_budget"]),
                       max_new_tokens=smoke["notebooks"]["fair_test"]["max_new_tokens"], progress=False)
    s = r["scores"]
    for _, row in s[s["arm"] != "base"].iterrows():
        f, arm = FAMILY[row["arm"]], REGISTRY[row["arm"]]
        if f != "transfer":
            assert row["lr"] == r["lrs"][f"{f} (chosen)"], row["arm"]
        if arm.ticket == "ks":
            assert row["ticket"] == r["trunks"][arm.trunk].ticket(row["seed"]), row["arm"]
        if row["arm"] == "earliest-seen rows":
            assert len(row["ticket"]) == len(r["trunks"]["main"].ticket(row["seed"]))
    assert set(s.loc[s["arm"] == "full fine-tuning", "seed"]) == {0}
    c = fair.comparisons(r, design)
    assert set(c["verdict"]) <= {"reproduced", "not reproduced", "inconclusive"}
    for _, row in c.iterrows():   # the outcome says what the rule found, in the comparison's own words
        lo, hi = row["95 % (union)"]
        assert row["outcome"] in fair.OUTCOMES[row["kind"]].values()
        if row["outcome"] == "b better":
            assert lo > 0 and row["p (Holm)"] < 0.05
        if row["outcome"] == "not equivalent":
            assert lo >= design.margin or hi <= -design.margin
    assert c.loc[c["role"] == "secondary", "p (Holm)"].notna().all() and c["protocol"].eq(design.name).all()
    e = fair.exposure(r)
    from kslottery.method.baselines import first_gradient_step
    examples, batches = r["trunks"]["main"].batches(1)
    first_batch = {t for i in batches[0] for t in examples[i]["input_ids"]}   # no accumulation in this design
    assert e.loc[e["seed"] == 1, "rows first seen at step 1"].item() == len(first_batch)
    assert len(first_batch) == sum(v == 1 for v in first_gradient_step(examples, batches).values())
    glued = fair.headline_values(r, fair.comparisons(r, design), e)
    assert glued["first_batch_rows_max"] == e["rows first seen at step 1"].max() >= glued["first_batch_rows_min"] > 0
    assert e["Jaccard with earliest-seen rows"].between(0, 1).all() and list(e["seed"]) == [0, 1]
    # the page's readers: one row per arm, the numbers the prose cites, and self-checks that can fail
    arms = fair.arm_table(r).set_index("arm")
    assert arms.loc["full fine-tuning", "seeds"] == 1 and arms.loc["Adam ticket", "seeds"] == 2
    assert arms.loc["Adam ticket", "chrF++ whole"] == s.loc[s["arm"] == "Adam ticket", "chrf++ whole"].mean()
    v = fair.headline_values(r, c, e)
    assert v["adam_ticket_vs_embedding_tuning_diff"] == c.iloc[0]["b - a"] and v["lr_full"] == r["lrs"]["full (chosen)"]
    assert v["top_18_by_d_vs_embedding_tuning_verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    assert v["adam_rows_min"] == min(len(r["trunks"]["main"].ticket(seed)) for seed in (0, 1))
    assert v["mean_base"] == s.loc[s["arm"] == "base", "chrf++ whole"].mean()
    assert "margin_in_gain" in v
    assert all(type(x) in (int, float, str) for x in v.values())
    from kslottery.report import checks
    assert checks.arms_at_chosen_lrs(r) and checks.arm_scores_match_outputs(s)
    assert not checks.arms_at_chosen_lrs({**r, "lrs": {**r["lrs"], "rows (chosen)": 123.0}})
    assert not checks.arm_scores_match_outputs(s.assign(**{"chrf++ whole": s["chrf++ whole"] + 0.01}))


def test_the_exposure_means_name_how_many_seeds_each_averages():
    import pandas as pd

    scores = pd.DataFrame({"arm": ["base"], "seed": [0], "rows": [None], "lr": [None], "chrf++ whole": [20.0],
                           "chrf++ first_line": [25.0], "eos_rate": [0.1]})
    exposure = pd.DataFrame({"seed": [0, 1, 2], "Jaccard with earliest-seen rows": [0.5, 0.3, 0.1],
                             "Jaccard with most frequent rows": [0.2, 0.4, float("nan")]})   # a secondary arm: 2 seeds
    v = fair.headline_values({"selection": {}, "scores": scores}, pd.DataFrame(columns=["a", "b"]), exposure)
    assert v["jaccard_earliest_seen_rows"] == pytest.approx(0.3) and v["jaccard_earliest_seen_rows_seeds"] == 3
    assert v["jaccard_most_frequent_rows"] == pytest.approx(0.3) and v["jaccard_most_frequent_rows_seeds"] == 2


@pytest.mark.parametrize("embed,said", [
    (25.0, "the margin of 2 chrF++ is 40% of embedding tuning's gain over the base model (+5.0 chrF++)"),
    (19.0, "embedding tuning gains nothing over the base model (-1.0 chrF++), so the margin of 2 chrF++ cannot be "
           "read against its gain")])
def test_the_margin_is_stated_against_embedding_tunings_gain(embed, said):
    import pandas as pd

    scores = pd.DataFrame({"arm": ["base", "embedding tuning", "embedding tuning"], "seed": [None, 0, 1],
                           "rows": [None] * 3, "lr": [None, 1e-3, 1e-3], "chrf++ whole": [20.0, embed - 1, embed + 1],
                           "chrf++ first_line": [20.0] * 3, "eos_rate": [0.0] * 3})
    comps = pd.DataFrame([{"role": "primary", "a": "embedding tuning", "b": "Adam ticket", "kind": "equivalence",
                           "seeds": 2, "b - a": 0.5, "verdict": "inconclusive", "outcome": "inconclusive",
                           "bootstrap 95 %": (-1.0, 2.0), "t 95 %": (-3.0, 4.0), "90 % (union)": (-2.5, 3.5),
                           "margin": 2.0}])
    v = fair.headline_values({"selection": {}, "scores": scores}, comps, pd.DataFrame())
    assert v["margin_in_gain"] == said and v["adam_ticket_vs_embedding_tuning_u90_lo"] == -2.5
    assert "margin_in_gain" not in fair.headline_values({"selection": {}, "scores": scores}, comps.iloc[:0],
                                                        pd.DataFrame())


def test_every_rule_result_has_a_word_of_its_own_for_each_kind_of_comparison():
    for kind, words in fair.OUTCOMES.items():
        assert set(words) == {"reproduced", "not reproduced", "inconclusive"}, kind
        assert len(set(words.values())) == 3 and "reproduced" not in " ".join(words.values()), kind


def test_the_design_table_writes_every_setting_out_with_its_meaning():
    d = Design(seeds=(0, 1, 2), full_seeds=(0,), secondary_seeds=(0,), margin=1.5)
    rows = {r["setting"]: r for r in d.settings()}
    assert rows["seeds"]["value"] == "0\u20132" and rows["margin"]["value"] == "1.5"
    assert rows["sweep snapshots"]["value"] == "1\u201316, 24, 32, 48, 64" and rows["full seeds"]["value"] == "0"
    assert rows["lr grids"]["value"] == "embed: 0.0003, 0.001, 0.003; rows: 0.003, 0.01, 0.03; full: 1e-05, 3e-05, 0.0001"
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


def test_the_key_comparisons_are_the_primary_ones_then_the_exposure_control_then_the_references():
    import pandas as pd

    from kslottery.study.design import PRIMARY, SECONDARY

    comps = pd.DataFrame([{"role": role, "a": a, "b": b, "kind": kind, "b - a": 0.5, "bootstrap 95 %": (-1.0, 2.0),
                           "t 95 %": (-2.0, 3.0), "90 % (union)": (-1.5, 2.5), "seeds": 5, "outcome": "inconclusive"}
                          for role, table in (("primary", PRIMARY), ("secondary", SECONDARY)) for a, b, kind in table])
    key = fair.key_comparisons(comps)
    assert list(key["comparison"]) == [
        "Adam ticket − embedding tuning", "SGD ticket − embedding tuning", "top-18 by D − embedding tuning",
        "earliest-seen rows − embedding tuning", "Adam ticket − earliest-seen rows",
        "Adam ticket − frequency-matched rows", "embedding tuning − full fine-tuning", "Adam ticket − full fine-tuning",
        "SGD ticket − full fine-tuning", "earliest-seen rows − full fine-tuning"]
    assert list(key.columns[:3]) == ["comparison", "outcome", "b − a"]   # the finding before its numbers
    # a superiority test has no 90 % union to read
    assert key.set_index("comparison")["90 % union"].isna().tolist() == [False] * 4 + [True] * 2 + [False] * 4


def test_a_figure_caption_names_the_seeds_each_group_of_arms_ran_on():
    from kslottery.report.figstyle import caption_context

    design = Design(seeds=(0, 1, 2, 3, 4), full_seeds=(0, 1, 2), secondary_seeds=(0, 1))
    line = caption_context({"profile": "default", "seeds": fair.caption_seeds(design), "eval_limit": 200})
    assert "seeds 0, 1, 2, 3, 4 (full fine-tuning 0, 1, 2; secondary arms 0, 1); sentences 200 devtest" in line
