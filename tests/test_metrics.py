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
