import pandas as pd
import pytest

from kslottery.report import tables
from kslottery.study import claims, results, verdicts


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
    assert got["this study"].startswith("partial tuning of the Adam ticket, certified agreement 41% [30%, 52%] at σ = 2.2")
    assert "keeps the model's prediction at 2% of contexts" in got["this study"]
    assert "at sigma 0.03 (97% kept) 0%, with 0% of contexts below the ceiling" in got["this study"]


def _comp(model, a, b, diff, ci95, ci90, outcome, kind="equivalence", role="primary", p=0.001, p_eq=0.5):
    from kslottery.study.verdicts import claim_verdict

    return {"model": model, "role": role, "kind": kind, "seeds": 5, "margin": 2.0, "protocol": "fair-v2",
            "a": a, "b": b, "b - a": diff, "95 % (union)": ci95, "90 % (union)": ci90, "p difference (Holm)": p,
            "p equivalence (Holm)": p_eq, "outcome": outcome, "verdict": claim_verdict(outcome, kind)}


def test_the_fair_test_judges_each_claim_on_each_model_and_says_which_way(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    comps = pd.DataFrame([
        # fair-v1's Adam-ticket row as fair-v2 reads it: worse, not "inconclusive"
        _comp("gemma3-270m", "embedding tuning", "Adam ticket", -2.345, (-3.14, -1.59), (-3.0, -1.73), "b worse"),
        _comp("smollm2-135m", "embedding tuning", "Adam ticket", 0.2, (-0.6, 1.0), (-0.5, 0.9), "equivalent", p=0.6,
              p_eq=0.004),
        _comp("gemma3-270m", "frequency-matched rows", "Adam ticket", 1.5, (0.6, 2.4), (0.7, 2.3),
              "equivalent; b slightly better", kind="superiority"),
        _comp("gemma3-270m", "full fine-tuning", "embedding tuning", -3.6, (-4.9, -2.4), (-4.7, -2.5),
              "b worse, beyond the margin")])
    results.save_tables("t", "fair_test", comparisons=comps)
    t = claims.claims("t", model="gemma3-270m")
    ticket = t[t["claim"] == claims.PAPER["ticket_vs_embed"][0]].set_index("model")
    assert list(ticket.index) == ["gemma3-270m", "smollm2-135m"]
    g = ticket.loc["gemma3-270m"]
    assert g["verdict"] == "not reproduced: b worse, perhaps by less than the margin"
    assert g["protocol"] == "fair-v2" and g["source"] == "fair_test"
    assert g["this study"].startswith("Adam ticket − embedding tuning = -2.3 chrF++: on gemma3-270m, Adam ticket is "
                                      "worse than embedding tuning by 2.3 chrF++ (95 % [1.6, 3.1])")
    assert g["evidence"] == "fair_test/comparisons#row0" and ticket.loc["smollm2-135m", "verdict"] == "reproduced"
    assert ticket.loc["smollm2-135m", "evidence"] == "fair_test/comparisons#row1"
    # the note states the rule apart from the values: a difference p of 0.6 is never printed as "< 0.05"
    note = ticket.loc["smollm2-135m", "note"]
    assert "difference p 0.6, equivalence p 0.004" in note and "0.6 <" not in note
    random = t[t["claim"] == claims.PAPER["random"][0]].iloc[0]
    assert random["verdict"] == "reproduced" and random["model"] == "gemma3-270m"
    full = t[t["claim"] == claims.PAPER["embed_vs_full"][0]].iloc[0]
    assert full["verdict"] == "not reproduced: b worse, beyond the margin"
    # claims no chapter measured, and a claim of the single-row arm the design cut: one row, "not measured"
    prefix = t[t["claim"] == claims.PAPER["prefix"][0]].iloc[0]
    assert prefix["verdict"] == claims.NOT_RUN and prefix["evidence"] == "" and prefix["model"] == ""
    assert (t["claim"] == claims.PAPER["single_row"][0]).sum() == 1


def test_verdicts_are_counted_by_their_first_words():
    t = pd.DataFrame({"verdict": ["reproduced", "not reproduced", "not reproduced: b worse" + verdicts.PERHAPS,
                                  "inconclusive", claims.NOT_RUN, claims.NOT_RETRIEVED]})
    assert claims.verdict_counts(t) == {"verdicts_reproduced": 1, "verdicts_not_reproduced": 2,
                                        "verdicts_inconclusive": 1, "verdicts_not_testable": 2, "verdicts_total": 6,
                                        "verdicts_reproduced_weakly": 0, "verdicts_not_reproduced_weakly": 0,
                                        "verdicts_not_reproduced_perhaps": 1}
    # the paper's own claims counted apart from the replication's and the method's
    t["paper's number from"] = [claims.TRANSCRIBED, claims.TRANSCRIBED, "implied by the method",
                                "the independent replication (introduction, reference 2)", claims.TRANSCRIBED,
                                "the paper (title and abstract)"]
    got = claims.verdict_counts(t)
    assert {k: v for k, v in got.items() if not k.startswith("verdicts_")} == {
        "paper_reproduced": 1, "paper_not_reproduced": 1, "paper_inconclusive": 0, "paper_not_testable": 2,
        "paper_total": 4, "paper_reproduced_weakly": 0, "paper_not_reproduced_weakly": 0,
        "paper_not_reproduced_perhaps": 0}
    assert got["verdicts_others"] == 2 and got["verdicts_total"] == 6


def test_a_chapter_the_profile_retired_never_judges_a_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    results.save_tables("t", "fair_test", comparisons=pd.DataFrame(
        [_comp("m", "embedding tuning", "Adam ticket", 0.3, (-0.9, 1.6), (-0.7, 1.4), "equivalent")]))
    # a chapter this profile no longer runs, its tables still on disk
    results.save_tables("t", "certification", rates=pd.DataFrame([{
        "object": "Adam ticket", "sigma": 0.03, "certified": 0.5, "certified ci95 low": 0.4, "certified ci95 high": 0.6,
        "smoothed = model": 0.9, "below ceiling": 0.1}]))
    claim = claims.PAPER["certified"][0]
    assert claims.claims("t").set_index("claim").loc[claim, "source"] == "certification"
    current = claims.claims("t", notebooks=["fair_test", "paper_vs_study"]).set_index("claim")
    assert current.loc[claim, "this study"] == "not measured in this profile"
    assert set(current["source"]) == {"fair_test", ""}


@pytest.mark.parametrize("whole,first,bleu_whole,bleu_first,verdict", [
    (30.0, 21.0, 12.0, 2.5, "reproduced"),          # chrF++ gain 10, first-line gain 1: 90 % of it is stopping
    (30.0, 21.0, 12.0, 9.0, "not reproduced"),      # ... but in BLEU only 30 %: both must agree
    (17.0, 22.0, 1.0, 2.0, "not testable: no gain over the base model to decompose"),
])
def test_the_collapse_is_measured_in_chrf_and_bleu_and_needs_a_gain(tmp_path, monkeypatch, whole, first, bleu_whole,
                                                                     bleu_first, verdict):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    comps = pd.DataFrame([_comp("m", "embedding tuning", "Adam ticket", 0.3, (-0.9, 1.6), (-0.7, 1.4), "equivalent")])
    scores = pd.DataFrame([{"model": "m", "arm": "base", "seed": None, "chrf++ whole": 20.0, "chrf++ first_line": 20.0,
                            "bleu whole": 2.0, "bleu first_line": 2.0},
                           {"model": "m", "arm": "Adam ticket", "seed": 0, "chrf++ whole": whole,
                            "chrf++ first_line": first, "bleu whole": bleu_whole, "bleu first_line": bleu_first}])
    results.save_tables("t", "fair_test", comparisons=comps, scores=scores)
    t = claims.claims("t")
    got = t[t["claim"] == claims.PAPER["stopping"][0]].iloc[0]
    assert got["verdict"] == verdict and got["model"] == "m"
    if verdict != "not testable: no gain over the base model to decompose":
        assert got["in brief"].startswith("chrF++: collapse 0.90 (gain +10.0); BLEU: collapse ")


def test_the_ticket_size_is_judged_against_its_budget_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    sweep = pd.DataFrame({"model": ["g"] * 4 + ["s"] * 2, "optimizer": ["adamw"] * 6,
                          "bh_0.05": [1, 12, 17, 53, 3, 40]})
    results.save_tables("t", "budget_sweep", sweep=sweep)
    results.save_tables("t", "six_pairs", pairs=pd.DataFrame({"pair": ["eng_Latn-cat_Latn"], "bh 0.05": [12]}))
    t = claims.claims("t").set_index("claim")["in brief"]
    assert t[claims.PAPER["sizes"][0]] == (
        "Benjamini-Hochberg 0.05 at the chosen budget: cat 12; budget sweep (en→ca, seed 0), g: 12–18 rows at 2 of "
        "4 Adam snapshots (sizes 1–53); s: 12–18 rows at 0 of 2 Adam snapshots (sizes 3–40)")


def test_an_equivalence_inside_embedding_tunings_own_gain_keeps_its_verdict_and_says_it_is_weak(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    comps = pd.DataFrame([
        _comp("s", "embedding tuning", "Adam ticket", -0.6, (-1.2, 0.0), (-1.1, -0.1), "equivalent", p=0.3),
        _comp("s", "frequency-matched rows", "Adam ticket", 0.4, (-0.5, 1.3), (-0.3, 1.1), "equivalent",
              kind="superiority", p=1.0),
        _comp("s", "full fine-tuning", "embedding tuning", -8.0, (-9.3, -6.8), (-9.0, -7.1),
              "b worse, beyond the margin")])
    # SmolLM2's shape: embedding tuning gains 0.9 chrF++ over the base model, inside the ±2 margin
    scores = pd.DataFrame([{"model": "s", "arm": arm, "seed": 0, "chrf++ whole": v, "chrf++ first_line": v}
                           for arm, v in (("base", 14.2), ("embedding tuning", 15.1), ("Adam ticket", 14.5))])
    results.save_tables("t", "fair_test", comparisons=comps, scores=scores)
    t = claims.claims("t").set_index("claim")
    weak = (", weakly: embedding tuning itself moves chrF++ by only +0.9 over the base model, inside the ±2 margin, "
            "so this equivalence may also hold for an arm that learned nothing")
    assert t.loc[claims.PAPER["ticket_vs_embed"][0], "verdict"] == "reproduced" + weak
    assert t.loc[claims.PAPER["random"][0], "verdict"] == "not reproduced: equivalent" + weak
    assert t.loc[claims.PAPER["embed_vs_full"][0], "verdict"] == "not reproduced: b worse, beyond the margin"
    # counted by their first words as before (the third "not reproduced": the stopping claim), the weak apart
    counts = claims.verdict_counts(t.reset_index())
    assert (counts["verdicts_reproduced"], counts["verdicts_not_reproduced"]) == (1, 3)
    assert counts["verdicts_reproduced_weakly"] == counts["paper_reproduced_weakly"] == 1
    # "KS beats rows chosen without it" (the method's claim, not the paper's): as good, not better, weakly so
    assert (counts["verdicts_not_reproduced_weakly"], counts["paper_not_reproduced_weakly"]) == (1, 0)
