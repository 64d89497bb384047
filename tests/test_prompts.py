import pytest

from kslottery.method import prompts
from kslottery.method.errors import KSLError


@pytest.mark.parametrize("name,expected", [
    ("explicit", "Translate the following sentence from English to Catalan.\nEnglish: Hi.\nCatalan:"),
    ("bare", "English: Hi.\nCatalan:"),
    ("paraphrase", "Render this English text in Catalan.\nText: Hi.\nIn Catalan:"),
])
def test_templates_render(name, expected):
    assert prompts.get_template(name).render("Hi.", "eng_Latn", "cat_Latn") == expected


def test_alpaca_is_the_groups_format():
    t = prompts.get_template("alpaca").render("Hi.", "eng_Latn", "deu_Latn")
    assert t.startswith("Below is an instruction that describes a task")
    assert "### Instruction:\nTranslate the following sentences from English to German.\n\n### Input:\nHi." in t
    assert t.endswith("### Response:")


def test_unknown_template_and_language():
    with pytest.raises(KSLError, match="unknown prompt template 'fancy'; use one of explicit"):
        prompts.get_template("fancy")
    with pytest.raises(KSLError, match="no language name known for code 'qqq_Latn'"):
        prompts.language_name("qqq_Latn")
    assert prompts.language_name("zho_Hans") == "Chinese"


def test_example_masks_prompt_and_appends_eos(tiny):
    tok = tiny.tokenizer
    t = prompts.get_template("explicit")
    ex = prompts.encode_example(tok, t, "Good night.", "Bona nit.", "eng_Latn", "cat_Latn")
    prompt_ids = prompts.encode_prompt(tok, t.render("Good night.", "eng_Latn", "cat_Latn"))
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids
    assert ex["labels"][:n] == [prompts.IGNORE_INDEX] * n
    assert ex["labels"][n:] == ex["input_ids"][n:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n:-1]) == " Bona nit."


def test_paraphrases_all_render():
    import random
    rng = random.Random(0)
    seen = {prompts.sample_paraphrase(rng).render("Hi.", "eng_Latn", "cat_Latn") for _ in range(50)}
    assert len(seen) == len(prompts.PARAPHRASES)
    assert all("Hi." in s and "Catalan" in s for s in seen)


def test_sampled_paraphrases_are_seeded_and_varied():
    a = prompts.training_templates(prompts.SAMPLED, 40, seed=0)
    assert [t.text for t in a] == [t.text for t in prompts.training_templates(prompts.SAMPLED, 40, seed=0)]
    assert [t.text for t in a] != [t.text for t in prompts.training_templates(prompts.SAMPLED, 40, seed=1)]
    assert {t.text for t in a} == set(prompts.PARAPHRASES)
    assert prompts.training_templates("bare", 2) == [prompts.TEMPLATES["bare"]] * 2
    with pytest.raises(KSLError, match="training also takes sampled-paraphrases"):
        prompts.training_templates("chat", 1)
