"""The nbval invariants fail on a wrong number, not only on a wrong count."""

import pandas as pd

from kslottery.method import evaluate
from kslottery.report import checks
from kslottery.study import results


def test_scores_match_outputs_catches_a_wrong_score(tmp_path, monkeypatch, flores_dir):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    rec = evaluate.evaluate(evaluate.EvalConfig(model="tiny:smollm2-135m", limit=3, max_new_tokens=4), progress=False)
    table = pd.DataFrame([{"run": rec["run"], "rule": rule, "chrf++": s["chrf++"]["score"]}
                          for rule, s in rec["scores"].items()])
    assert checks.scores_match_outputs(table)
    assert not checks.scores_match_outputs(table.assign(**{"chrf++": table["chrf++"] + 0.001}))
    assert not checks.scores_match_outputs(table.iloc[:0])   # nothing checked is not a pass


def test_the_claims_invariant_recomputes_the_paired_difference_it_shows(tmp_path, monkeypatch, flores_dir):
    from kslottery.study import claims

    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    embed, full = (evaluate.evaluate(evaluate.EvalConfig(model="tiny:smollm2-135m", limit=n, max_new_tokens=4),
                                     progress=False)["run"] for n in (3, 4))
    diff = checks.rescore_chrf(full) - checks.rescore_chrf(embed)
    results.save_tables("t", "fair_test", scores=pd.DataFrame(   # one full run paired with two seeds
        [{"model": "m", "arm": "embedding tuning", "seed": 0, "run": embed},
         {"model": "m", "arm": "embedding tuning", "seed": 1, "run": embed},
         {"model": "m", "arm": "full fine-tuning", "seed": 0, "run": full},
         {"model": "other", "arm": "embedding tuning", "seed": 0, "run": full},   # another model's runs: not read
         {"model": "other", "arm": "full fine-tuning", "seed": 0, "run": embed}]))

    def row(shown, source="fair_test"):
        return pd.DataFrame([{"claim": claims.PAPER["embed_vs_full"][0], "source": source, "model": "m",
                              "this study": f"embedding tuning − full fine-tuning = {shown:+.1f} chrF++: on m, ..."}])

    assert checks.claim_matches_outputs(row(-diff), "t") is True
    assert checks.claim_matches_outputs(row(-diff + 0.3), "t") is False
    assert checks.claim_matches_outputs(row(-diff, source=""), "t") is None
