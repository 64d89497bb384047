"""The nbval invariants fail on a wrong number, not only on a wrong count."""

import pandas as pd

from kslottery import checks, evaluate


def test_scores_match_outputs_catches_a_wrong_score(tmp_path, monkeypatch, flores_dir):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    rec = evaluate.evaluate(evaluate.EvalConfig(model="tiny:smollm2-135m", limit=3, max_new_tokens=4), progress=False)
    table = pd.DataFrame([{"run": rec["run"], "rule": rule, "chrf++": s["chrf++"]["score"]}
                          for rule, s in rec["scores"].items()])
    assert checks.scores_match_outputs(table)
    assert not checks.scores_match_outputs(table.assign(**{"chrf++": table["chrf++"] + 0.001}))
    assert not checks.scores_match_outputs(table.iloc[:0])   # nothing checked is not a pass
