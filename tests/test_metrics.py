import pytest
import sacrebleu

from kslottery.method import metrics

CONT = " La casa és blava.\nEnglish: The cat sleeps.\nCatalan: El gat dorm."


@pytest.mark.parametrize("rule,expected", [
    ("whole", "La casa és blava. English: The cat sleeps. Catalan: El gat dorm."),
    ("first_line", "La casa és blava."),
    ("field_restart", "La casa és blava."),
    ("authors", "La casa és blava. English"),
])
def test_extraction_rules(rule, expected):
    assert metrics.RULES[rule](CONT) == expected


@pytest.mark.parametrize("text,expected", [
    ("\nUna frase\nque continua.\n### Input:\nx", "Una frase que continua."),
    ("Hora: les tres.", "Hora: les tres."),          # a colon inside the line is not a new field
    ("Sí.\nTranslate the following sentence: x", "Sí."),
    ("", ""),
])
def test_field_restart_edges(text, expected):
    assert metrics.field_restart(text) == expected


def test_first_line_skips_leading_blank_lines():
    assert metrics.first_line("\n\n  Hola.\nAdeu.") == "Hola."


def test_scores_match_sacrebleu_and_carry_signatures(monkeypatch, tmp_path):
    monkeypatch.setenv("SACREBLEU", str(tmp_path))
    hyps = ["El gat dorm a la catifa.", "Avui fa sol."]
    refs = ["El gat dorm sobre la catifa.", "Avui fa molt de sol."]
    s = metrics.corpus_scores(hyps, refs, "cat_Latn")
    assert s["bleu"]["score"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-4)
    assert s["chrf++"]["score"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score, abs=1e-4)
    assert "tok:13a" in s["bleu"]["signature"] and "nw:2" in s["chrf++"]["signature"]
    assert s["spbleu"] == {"score": None, "available": False,
                           "reason": f"FLORES-200 SentencePiece model not found at {tmp_path}/models/flores200sacrebleuspm"}


def test_chinese_uses_zh_tokenizer():
    s = metrics.corpus_scores(["我们现在有四个月大的老鼠"], ["我们现在有四个月大的小鼠"], "zho_Hans")
    assert "tok:zh" in s["bleu"]["signature"]
    assert s["bleu"]["score"] > 50


def test_wrong_spm_model_is_not_used(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "flores200sacrebleuspm").write_bytes(b"not a model")
    monkeypatch.setenv("SACREBLEU", str(tmp_path))
    ok, reason = metrics.spbleu_status()
    assert not ok and "not the FLORES-200 model" in reason


def test_termination_stats():
    conts = [dict(stopped_eos=True, stopped_newline=False, hit_cap=False, n_tokens=4),
             dict(stopped_eos=False, stopped_newline=False, hit_cap=True, n_tokens=10)]
    assert metrics.termination_stats(conts) == {"eos_rate": 0.5, "newline_rate": 0.0, "cap_rate": 0.5,
                                                "mean_new_tokens": 7.0}


BOOT_REFS = ["El gat dorm a la catifa.", "Avui fa sol.", "La casa és blava.", "M'agrada el cafè.",
        "Són les tres.", "Plou molt.", "Tinc gana.", "On és l'estació?"] * 5


def test_gain_of_identical_systems_is_zero():
    same = {"whole": BOOT_REFS, "first_line": BOOT_REFS}
    r = metrics.gain_decomposition(same, same, BOOT_REFS, "cat_Latn", n=200)
    assert r["whole"] == {"gain": 0, "ci95": [0, 0]}


@pytest.mark.parametrize("metric", ["chrf++", "bleu"])
def test_a_better_system_has_a_positive_gain_interval_around_sacrebleus_difference(metric):
    bad = ["El gos."] * len(BOOT_REFS)
    r = metrics.gain_decomposition({"whole": bad, "first_line": bad}, {"whole": BOOT_REFS, "first_line": bad},
                                   BOOT_REFS, "cat_Latn", metric=metric, n=300, seed=1)
    point = sacrebleu.corpus_chrf(bad, [BOOT_REFS], word_order=2).score if metric == "chrf++" else \
        sacrebleu.corpus_bleu(bad, [BOOT_REFS]).score
    assert point < 30
    assert r["whole"]["gain"] == pytest.approx(100.0 - point, abs=1e-4)
    assert 0 < r["whole"]["ci95"][0] <= r["whole"]["gain"] <= r["whole"]["ci95"][1]
    assert r["collapse"]["value"] == pytest.approx(1.0)     # the first line gains nothing: all of it is lost


REFS = ["El gat dorm al sofà.", "La casa és blava i gran.", "Avui plou molt a Barcelona.",
        "Els nens juguen al parc.", "M'agrada el cafè amb llet."]


def _rules(whole, first):
    return {"whole": whole, "first_line": first, "field_restart": first}


def test_gain_decomposition_separates_stopping_from_translating():
    junk = ["The cat sleeps on the sofa and then more text follows."] * len(REFS)
    base = _rules([r + " English: " + j for r, j in zip(REFS, junk)], REFS)     # right first line, never stops
    stops = _rules(REFS, REFS)                                                  # learned only to stop
    better = _rules(REFS, REFS)
    worse_base = _rules(junk, junk)
    only_stop = metrics.gain_decomposition(base, stops, REFS, "cat_Latn", n=200)
    assert only_stop["first_line"]["gain"] == 0 and only_stop["whole"]["gain"] > 20
    assert only_stop["collapse"]["value"] == 1.0 and only_stop["collapse"]["ci95"] == [1.0, 1.0]
    real = metrics.gain_decomposition(worse_base, better, REFS, "cat_Latn", n=200)
    assert real["whole"]["gain"] == real["first_line"]["gain"] > 50
    assert real["collapse"]["value"] == 0.0
    low, high = real["whole"]["ci95"]
    assert low <= real["whole"]["gain"] <= high
