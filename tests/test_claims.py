import pandas as pd
import pytest

from kslottery.report import tables
from kslottery.study import claims, results


def test_a_profile_with_no_chapter_measures_no_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    table = claims.claims("nothing-ran").set_index("claim")
    assert len(table) == len(claims.PAPER)
    assert (table["this study"] == "not measured in this profile").all()
    mine = {c: table.loc[claim, "verdict"] for c, (claim, _, _) in claims.PAPER.items()}
    assert mine.pop("certified") == claims.NOT_RETRIEVED
    assert set(mine.values()) == {claims.NOT_RUN}
    assert table.loc[claims.PAPER["eighteen"][0], "paper's number from"] == claims.TRANSCRIBED


def test_the_claims_table_escapes_tokens_that_look_like_html():
    import pandas as pd


    html = tables.claims_table(pd.DataFrame({"claim": ["one row"], "note": ["tuning only '<s>' gains 13.7"]})).to_html()
    assert "&lt;s&gt;" in html and "<s>" not in html and "overflow-wrap" in html


def test_the_certificate_claim_reports_the_papers_object_at_both_noise_levels(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = lambda obj, sigma, cert, low, high, kept, below: {   # noqa: E731
        "object": obj, "sigma": sigma, "certified": cert, "certified ci95 low": low, "certified ci95 high": high,
        "smoothed = model": kept, "below ceiling": below}
    rates = pd.DataFrame([row("Adam ticket", 2.2, 0.41, 0.3, 0.52, 0.02, 0.6), row("Adam ticket", 0.03, 0.0, 0.0, 0.0, 0.97, 0.0),
                          row("random rows", 2.2, 0.9, 0.8, 1.0, 0.02, 0.9)])
    results.save_tables("t", "certification", rates=rates)
    got = claims.claims("t").set_index("claim").loc[claims.PAPER["certified"][0]]
    assert got["verdict"] == claims.NOT_RETRIEVED and got["source"] == "certification"
    assert got["this study"].startswith("partial tuning of the Adam ticket, certified agreement 41% [30%, 52%] at sigma 2.2")
    assert "keeps the model's prediction at 2% of contexts" in got["this study"]
    assert "at sigma 0.03 (97% kept) 0%, with 0% of contexts below the ceiling" in got["this study"]


def test_the_fair_test_judges_its_claims_and_names_its_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = {"role": "primary", "kind": "equivalence", "seeds": 5, "margin": 2.0, "protocol": "fair-v1",
           "bootstrap 95 %": [-0.4, 1.1], "t 95 %": [-0.9, 1.6], "95 % (union)": [-0.9, 1.6], "per seed": [0.1] * 5}
    comps = pd.DataFrame([
        {**row, "a": "embedding tuning", "b": "Adam ticket", "b - a": 0.3, "verdict": "inconclusive"},
        {**row, "a": "embedding tuning", "b": "SGD ticket", "b - a": 0.1, "verdict": "reproduced"},
        {**row, "a": "embedding tuning", "b": "earliest-seen rows", "b - a": 0.2, "verdict": "reproduced"},
        {**row, "role": "secondary", "a": "full fine-tuning", "b": "embedding tuning", "b - a": -4.0,
         "bootstrap 95 %": [-5.0, -3.0], "t 95 %": [-6.0, -2.5], "95 % (union)": [-6.0, -2.5],
         "verdict": "not reproduced"}])
    results.save_tables("t", "fair_test", comparisons=comps)
    t = claims.claims("t").set_index("claim")
    ticket = t.loc["Partial tuning of the KS ticket matches embedding tuning"]
    assert ticket["verdict"] == "inconclusive" and ticket["protocol"] == "fair-v1" and ticket["source"] == "fair_test"
    assert "t 95 % [-0.9, 1.6]" in ticket["this study"] and "SGD ticket: reproduced" in ticket["note"]
    # with the comparisons' own words saved beside the verdicts, the note uses them
    results.save_tables("t", "fair_test", comparisons=comps.assign(outcome=[
        "inconclusive", "equivalent", "equivalent", "not equivalent"]))
    note = claims.claims("t").set_index("claim").loc[ticket.name, "note"]
    assert "SGD ticket: equivalent; earliest-seen rows: equivalent" in note and "reproduced" not in note
    full = t.loc["Embedding tuning matches full fine-tuning"]
    assert full["verdict"] == "not reproduced" and "(secondary)" in full["this study"]
    assert t.loc["Prefix tuning is clearly weaker", "verdict"] == claims.NOT_RUN
    assert ticket["evidence"] == "fair_test/comparisons#row0" and t.loc["Prefix tuning is clearly weaker", "evidence"] == ""


def test_verdicts_are_counted_by_their_first_words():
    t = pd.DataFrame({"verdict": ["reproduced", "not reproduced", "not reproduced: the arms differ (better)",
                                  "inconclusive", claims.NOT_RUN, claims.NOT_RETRIEVED]})
    assert claims.verdict_counts(t) == {"verdicts_reproduced": 1, "verdicts_not_reproduced": 2,
                                        "verdicts_inconclusive": 1, "verdicts_not_testable": 2, "verdicts_total": 6}
    # the paper's own claims counted apart from the replication's and the method's
    t["paper's number from"] = [claims.TRANSCRIBED, claims.TRANSCRIBED, "implied by the method",
                                "the independent replication (introduction, reference 2)", claims.TRANSCRIBED,
                                "the paper (title and abstract)"]
    got = claims.verdict_counts(t)
    assert {k: v for k, v in got.items() if not k.startswith("verdicts_")} == {
        "paper_reproduced": 1, "paper_not_reproduced": 1, "paper_inconclusive": 0, "paper_not_testable": 2,
        "paper_total": 4}
    assert got["verdicts_others"] == 2 and got["verdicts_total"] == 6


def test_a_chapter_the_profile_retired_never_judges_a_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = {"role": "primary", "kind": "equivalence", "seeds": 5, "margin": 2.0, "protocol": "fair-v1",
           "bootstrap 95 %": [-0.4, 1.1], "t 95 %": [-0.9, 1.6], "95 % (union)": [-0.9, 1.6], "per seed": [0.1] * 5}
    results.save_tables("t", "fair_test", comparisons=pd.DataFrame(
        [{**row, "a": "embedding tuning", "b": "Adam ticket", "b - a": 0.3, "verdict": "inconclusive"}]))
    # a chapter this profile no longer runs, its tables still on disk
    results.save_tables("t", "certification", rates=pd.DataFrame([{
        "object": "Adam ticket", "sigma": 0.03, "certified": 0.5, "certified ci95 low": 0.4, "certified ci95 high": 0.6,
        "smoothed = model": 0.9, "below ceiling": 0.1}]))
    claim = claims.PAPER["certified"][0]
    assert claims.claims("t").set_index("claim").loc[claim, "source"] == "certification"
    current = claims.claims("t", notebooks=["fair_test", "paper_vs_study"]).set_index("claim")
    assert current.loc[claim, "this study"] == "not measured in this profile"
    assert set(current["source"]) == {"fair_test", ""}


def test_the_fair_tests_claims_say_which_way_an_equivalence_failed_and_what_the_single_rows_cannot_show(
        tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = {"role": "primary", "kind": "equivalence", "seeds": 5, "margin": 2.0, "protocol": "fair-v1",
           "bootstrap 95 %": [2.5, 4.0], "t 95 %": [2.2, 4.4], "95 % (union)": [2.2, 4.4]}
    comps = pd.DataFrame([
        {**row, "a": "embedding tuning", "b": "Adam ticket", "b - a": 3.3, "verdict": "not reproduced"},
        {**row, "role": "secondary", "kind": "equivalence", "seeds": 2, "a": "embedding tuning",
         "b": "most frequent rows", "b - a": -0.5, "verdict": "inconclusive"},
        {**row, "role": "secondary", "kind": "superiority", "seeds": 2, "a": "<bos> row", "b": "Adam ticket",
         "b - a": 4.0, "verdict": "reproduced"}])
    results.save_tables("t", "fair_test", comparisons=comps)
    t = claims.claims("t").set_index("claim")
    ticket = t.loc[claims.PAPER["ticket_vs_embed"][0]]
    assert ticket["verdict"] == "not reproduced"
    assert "Adam ticket is better than embedding tuning by more than the margin" in ticket["note"]
    assert "on 2 seeds by design" in t.loc[claims.PAPER["frequency"][0], "note"]
    single = t.loc[claims.PAPER["single_row"][0]]
    assert single["verdict"].startswith("not testable: the fair test compares each single row")
    assert single["evidence"] == "fair_test/comparisons#row2" and single["source"] == "fair_test"


@pytest.mark.parametrize("ticket_whole,ticket_first,verdict,brief", [
    (30.0, 21.0, "reproduced", "collapse 0.90"),          # gain 10, first-line gain 1: 90 % of it is stopping
    (30.0, 26.0, "not reproduced", "collapse 0.40"),
    (17.0, 22.0, "not testable: no gain over the base model to decompose", "no gain to decompose (-3.0)"),
])
def test_the_collapse_rule_needs_a_gain_to_decompose(tmp_path, monkeypatch, ticket_whole, ticket_first, verdict, brief):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = {"role": "primary", "kind": "equivalence", "seeds": 5, "margin": 2.0, "protocol": "fair-v1",
           "bootstrap 95 %": [-0.4, 1.1], "t 95 %": [-0.9, 1.6], "95 % (union)": [-0.9, 1.6]}
    comps = pd.DataFrame([{**row, "a": "embedding tuning", "b": "Adam ticket", "b - a": 0.3, "verdict": "inconclusive"}])
    scores = pd.DataFrame([{"arm": "base", "seed": None, "chrf++ whole": 20.0, "chrf++ first_line": 20.0},
                           {"arm": "Adam ticket", "seed": 0, "chrf++ whole": ticket_whole,
                            "chrf++ first_line": ticket_first}])
    results.save_tables("t", "fair_test", comparisons=comps, scores=scores)
    got = claims.claims("t").set_index("claim").loc[claims.PAPER["stopping"][0]]
    assert got["verdict"] == verdict and got["in brief"].startswith(brief)
    if brief.startswith("collapse"):   # the metric's blind spot is said beside the number
        assert "in chrF++ (the replication's is in spBLEU" in got["in brief"]


def test_the_briefs_show_the_interval_each_outcome_reads_and_the_sgd_ticket_beside_the_adam_tickets_verdict(
        tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    row = {"role": "primary", "kind": "equivalence", "seeds": 5, "margin": 2.0, "protocol": "fair-v1",
           "bootstrap 95 %": [-3.14, -1.59], "t 95 %": [-3.01, -1.68], "95 % (union)": [-3.14, -1.59],
           "90 % (union)": [-3.0, -1.73]}
    comps = pd.DataFrame([
        {**row, "a": "embedding tuning", "b": "Adam ticket", "b - a": -2.34524, "verdict": "inconclusive",
         "outcome": "inconclusive"},
        {**row, "a": "embedding tuning", "b": "SGD ticket", "b - a": 0.38, "verdict": "reproduced",
         "outcome": "equivalent"},
        {**row, "role": "secondary", "kind": "superiority", "seeds": 2, "a": "<bos> row", "b": "Adam ticket",
         "b - a": 1.16, "verdict": "inconclusive", "outcome": "inconclusive"}])
    scores = pd.DataFrame([{"arm": arm, "seed": seed, "rows": rows, "chrf++ whole": v, "chrf++ first_line": v}
                           for arm, seed, rows, v in [("base", None, 0, 18.5), ("<bos> row", 0, 1, 31.0),
                                                       ("<bos> row", 1, 1, 31.3), ("top-18 by D", 0, 18, 31.5),
                                                       ("SGD ticket", 0, 6, 34.0), ("SGD ticket", 1, 72, 35.0)]])
    sweep = pd.DataFrame({"optimizer": ["sgd"] * 3 + ["adamw"], "bh_0.05": [7, 12, 17, 53]})
    pairs = pd.DataFrame({"pair": ["eng_Latn-cat_Latn"], "bh 0.05": [53]})
    results.save_tables("t", "fair_test", comparisons=comps, scores=scores)
    results.save_tables("t", "budget_sweep", sweep=sweep)
    results.save_tables("t", "six_pairs", pairs=pairs)
    full = claims.claims("t").set_index("claim").loc[claims.PAPER["ticket_vs_embed"][0]]
    # the claims page's own columns say the same: the 90 % union, the SGD ticket and which interval each side reads
    assert "90 % union [-3.0, -1.7], bootstrap 95 %" in full["this study"]
    assert full["this study"].endswith("; SGD ticket: +0.4, equivalent")
    assert "equivalent needs the 90 % union inside the margin" in full["note"]
    t = claims.claims("t").set_index("claim")["in brief"]
    assert t[claims.PAPER["ticket_vs_embed"][0]] == (
        "Adam ticket − embedding tuning: -2.3, 90 % [-3.0, -1.7], 95 % [-3.1, -1.6], 5 seeds; SGD ticket: +0.4, "
        "equivalent")
    assert t[claims.PAPER["single_row"][0]].endswith(
        "means, not a test: <bos> row 31.1 (2 seeds), top-18 by D 31.5 (1 seed)")
    assert t[claims.PAPER["sizes"][0]] == (
        "Benjamini-Hochberg 0.05 at the chosen budget: cat 53; plain SGD (not judged): 12–18 rows at 2 of 3 sweep "
        "snapshots (en→ca, seed 0), the fair test's SGD tickets 6–72 rows over 2 seeds")
