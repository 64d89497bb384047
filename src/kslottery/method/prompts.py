"""Prompt templates, language names, and training examples with the prompt masked out of the loss.

A template renders the prompt for one source sentence; the target follows after ``sep`` and ends
with EOS. This study could not retrieve the paper's prompt, so the template is a parameter of every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .context import warn_long_prompts as warn_long_prompts  # evaluate calls it beside the prompts it encodes
from .errors import KSLError

IGNORE_INDEX = -100

LANGUAGE_NAMES = {
    "eng": "English", "cat": "Catalan", "spa": "Spanish", "ron": "Romanian", "dan": "Danish",
    "deu": "German", "por": "Portuguese", "fra": "French", "zho": "Chinese", "arb": "Arabic",
    "hin": "Hindi", "swh": "Swahili", "eus": "Basque", "ita": "Italian", "nld": "Dutch",
    "jpn": "Japanese", "kor": "Korean", "rus": "Russian", "pol": "Polish", "tur": "Turkish",
    "glg": "Galician", "ces": "Czech", "swe": "Swedish", "fin": "Finnish", "ukr": "Ukrainian",
}


def language_name(code: str) -> str:
    """``cat_Latn`` (or ``cat``) -> ``Catalan``."""
    iso = code.split("_")[0]
    if iso not in LANGUAGE_NAMES:
        raise KSLError(f"no language name known for code {code!r}",
                       f"use one of {', '.join(sorted(LANGUAGE_NAMES))} or add it to LANGUAGE_NAMES")
    return LANGUAGE_NAMES[iso]


@dataclass(frozen=True)
class Template:
    name: str
    text: str           # format string with {src}, {src_lang}, {tgt_lang}
    sep: str = " "      # between the prompt and the target
    help: str = ""

    def render(self, src: str, src_lang: str, tgt_lang: str) -> str:
        return self.text.format(src=src, src_lang=language_name(src_lang),
                                tgt_lang=language_name(tgt_lang))


_ALPACA_HEADER = ("Below is an instruction that describes a task, paired with an input that provides "
                  "further context. Write a response that appropriately completes the request.")

TEMPLATES = {t.name: t for t in [
    Template("explicit",
             "Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {src}\n{tgt_lang}:",
             help="instruction plus labelled fields (the study's default)"),
    Template("bare", "{src_lang}: {src}\n{tgt_lang}:", help="labelled fields only"),
    Template("paraphrase",
             "Render this {src_lang} text in {tgt_lang}.\nText: {src}\nIn {tgt_lang}:",
             help="a reworded instruction sharing no field label with `explicit`"),
    Template("alpaca",
             _ALPACA_HEADER + "\n\n### Instruction:\nTranslate the following sentences from {src_lang} "
             "to {tgt_lang}.\n\n### Input:\n{src}\n\n### Response:",
             sep="\n", help="the authors' group format (Alpaca)"),
]}

# Reworded instructions for training with sampled paraphrases (the template-transfer audit).
PARAPHRASES = [
    "Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {src}\n{tgt_lang}:",
    "Render this {src_lang} text in {tgt_lang}.\nText: {src}\nIn {tgt_lang}:",
    "Please give the {tgt_lang} version of this {src_lang} sentence.\n{src}\nAnswer:",
    "{src_lang} sentence: {src}\nThe same sentence in {tgt_lang}:",
    "Convert to {tgt_lang}: {src}\nResult:",
]


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise KSLError(f"unknown prompt template {name!r}", f"use one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def sample_paraphrase(rng: random.Random) -> Template:
    return Template("sampled", rng.choice(PARAPHRASES))


# A training-only "template": every example draws its own instruction from PARAPHRASES.
SAMPLED = "sampled-paraphrases"


def training_templates(name: str, n: int, seed: int = 0) -> list[Template]:
    """The template of each of ``n`` training examples: ``name`` for all, or for ``sampled-paraphrases``
    one paraphrase per example, drawn with ``seed``."""
    if name == SAMPLED:
        rng = random.Random(seed)
        return [sample_paraphrase(rng) for _ in range(n)]
    if name not in TEMPLATES:
        raise KSLError(f"unknown prompt template {name!r}", f"use one of {', '.join(TEMPLATES)} (training also "
                       f"takes {SAMPLED})")
    return [TEMPLATES[name]] * n


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt ids with the tokenizer's own special-token convention (BOS where it adds one)."""
    return list(tokenizer(prompt)["input_ids"])


def encode_example(tokenizer, template: Template, src: str, tgt: str,
                   src_lang: str, tgt_lang: str, max_len: int | None = None) -> dict:
    """``input_ids`` = prompt + sep+target + EOS; ``labels`` masks the prompt with -100.

    Prompt and target are tokenized separately so that the loss boundary is exact."""
    prompt_ids = encode_prompt(tokenizer, template.render(src, src_lang, tgt_lang))
    target_ids = list(tokenizer(template.sep + tgt, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is None:
        raise KSLError("tokenizer has no EOS token", "set tokenizer.eos_token before building examples")
    target_ids.append(tokenizer.eos_token_id)
    ids = prompt_ids + target_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
    cut = max_len is not None and len(ids) > max_len   # the prompt comes first: what is cut is target
    if cut:
        ids, labels = ids[:max_len], labels[:max_len]
    return {"input_ids": ids, "labels": labels, "cut": cut, "prompt_len": len(prompt_ids)}


def n_targets(example: dict) -> int:
    """Target tokens the loss sees (a label predicts the next position, so the first label never counts)."""
    return sum(t != IGNORE_INDEX for t in example["labels"][1:])


def usable_examples(examples: list[dict], max_len: int) -> tuple[list[dict], dict]:
    """The examples with a target token left after truncation to ``max_len``, and what truncation did: an
    example whose target is cut away entirely adds nothing to the loss (and a batch of only such examples
    would divide by zero), so it is left out and counted. None left is an error."""
    kept = [e for e in examples if n_targets(e)]
    fit = {"examples": len(examples), "no_target_left": len(examples) - len(kept),
           "target_truncated": sum(bool(e.get("cut")) for e in kept)}
    if not kept:
        raise KSLError(f"none of the {len(examples)} training examples has a target token within --max-len "
                       f"{max_len} (the prompts alone fill it)",
                       f"raise --max-len (the shortest prompt is {min(e['prompt_len'] for e in examples)} tokens; "
                       "a target needs 2 more), or shorten the sources")
    return kept, fit
