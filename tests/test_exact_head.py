"""The exact bf16 head: its bound holds, it settles a near tie that flips bf16's argmax, it falls back
(and counts it) where the bound cannot settle, and greedy decoding through it gives the float32 tokens."""

import pytest
import torch
import torch.nn.functional as F

from kslottery.method import exact_head, generate, models


@pytest.fixture(autouse=True)
def bf16_cpu(monkeypatch):
    """The head's machinery on any CPU: where bf16 is emulated the study declines it (it is slower), but the
    tokens must still be the float32 head's."""
    monkeypatch.setattr(exact_head, "native_bf16", lambda: True)


def linear(weight: torch.Tensor) -> torch.nn.Linear:
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        head.weight.copy_(weight)
    return head


def near_tie(second: float, k: int = 64, vocab: int = 500):
    """Rows 7 and 9 share every component (0.5, exact in bf16) but one, where row 9 adds ``second``; the
    hidden state is all ones, so row 9 wins in float32 by ``second`` and the rest lie far below."""
    torch.manual_seed(0)
    w = torch.randn(vocab, k) * 0.01
    w[7] = 0.5
    w[9] = 0.5
    w[9, 3] += second
    return linear(w), torch.ones(1, 1, k)


def test_a_near_tie_that_flips_bf16_is_decided_exactly():
    # 2**-10 is below half of bf16's spacing at 0.5 (2**-9): bf16 rounds it away and sees rows 7 and 9 tie,
    # so its argmax takes the first; the float32 gap (about 1e-3) exceeds the reordering bound (about 2.5e-4)
    head, h = near_tie(2.0 ** -10)
    bf16 = F.linear(h[:, -1].bfloat16(), head.weight.bfloat16()).argmax(-1)
    fp32 = head(h)[:, -1].argmax(-1)
    assert int(bf16) == 7 and int(fp32) == 9
    exact = exact_head.ExactHead(head)
    assert int(exact.argmax(h)) == 9
    assert exact.stats["fallback_rows"] == 0 and exact.stats["candidates"] == 2


def test_a_tie_within_the_float32_reordering_bound_falls_back_to_the_full_head():
    # 2**-22 is exact in float32 at 0.5 but lost in the sum (float32 spacing at 32 is 2**-19): the float32
    # head sees a tie and takes the first row, which only the full head itself can say
    head, h = near_tie(2.0 ** -22)
    exact = exact_head.ExactHead(head)
    assert int(exact.argmax(h)) == int(head(h)[:, -1].argmax(-1)) == 7
    assert exact.stats["fallback_near_tie"] == 1 and exact.stats["fallback_steps"] == 1


def test_too_many_candidates_fall_back_and_are_counted():
    torch.manual_seed(0)
    head = linear(0.1 + torch.randn(300, 32) * 1e-6)    # a flat row: hundreds of logits within the bound
    h = torch.randn(3, 1, 32)
    exact = exact_head.ExactHead(head, max_candidates=8, max_wide=100)
    assert torch.equal(exact.argmax(h), head(h)[:, -1].argmax(-1))
    assert exact.stats["fallback_too_many"] == 3 and exact.stats["fallback_steps"] == 1
    assert exact.stats["fallback_near_tie"] == 0


def test_rows_with_more_candidates_than_the_batched_pass_keeps_are_rescored_alone():
    torch.manual_seed(3)
    head = linear(torch.randn(2000, 16) * 0.05)
    h = torch.randn(6, 1, 16)
    exact = exact_head.ExactHead(head, max_candidates=1)
    assert torch.equal(exact.argmax(h), head(h)[:, -1].argmax(-1))
    assert exact.stats["wide_rows"] > 0 and exact.stats["fallback_too_many"] == 0


@pytest.mark.parametrize("scale", [0.02, 1.0, 30.0])
def test_the_bound_covers_the_bf16_error_on_every_logit(scale):
    torch.manual_seed(1)
    head = linear(torch.randn(4000, 640) * scale)
    h = torch.randn(16, 640) * 50
    exact = exact_head.ExactHead(head)
    q = F.linear(h.bfloat16(), exact.w16)
    err = (q.double() - F.linear(h, head.weight).double()).abs().amax(-1)
    bound = exact.bound(h, q)
    assert bool((err <= bound).all())
    assert bool((bound < 40 * err).all())        # stated, not vacuous: within a small factor of the error


def test_random_rows_match_the_float32_head():
    torch.manual_seed(2)
    head = linear(torch.randn(20000, 64))
    h = torch.randn(50, 1, 64)
    exact = exact_head.ExactHead(head)
    assert torch.equal(exact.argmax(h), head(h)[:, -1].argmax(-1))


def test_unsupported_models_are_declined_with_a_reason(tiny):
    assert exact_head.unsupported(tiny.model) is None
    lm = models.load("tiny:smollm2-135m", progress=False, untie_head=True)
    lm.model.config.final_logit_softcapping = 30.0
    assert "softcapping" in exact_head.unsupported(lm.model)
    lm.model.config.final_logit_softcapping = None
    lm.model.lm_head = torch.nn.Linear(lm.model.lm_head.in_features, lm.model.lm_head.out_features, bias=True)
    assert "bias" in exact_head.unsupported(lm.model)


def test_a_cpu_without_bf16_instructions_keeps_the_float32_head(tiny, monkeypatch):
    monkeypatch.setattr(exact_head, "native_bf16", lambda: False)
    assert "no bfloat16 instructions" in exact_head.unsupported(tiny.model)
    stats = {}
    p = [[1, 2, 3]]
    out = generate.greedy(tiny.model, torch.tensor(p), torch.ones(1, 3, dtype=torch.long), [], 3, exact_bf16=True,
                          stats=stats)
    assert stats["declined"].startswith("this CPU") and "rows" not in stats and len(out) == 1


def test_the_head_is_rebuilt_after_its_weight_changes(tiny):
    lm = models.load("tiny:smollm2-135m", progress=False, untie_head=True)
    first = exact_head.for_head(lm.model.lm_head)
    assert exact_head.for_head(lm.model.lm_head) is first
    with torch.no_grad():
        lm.model.lm_head.weight[5] += 1
    assert exact_head.for_head(lm.model.lm_head) is not first


def test_a_dropped_model_takes_its_cached_head_with_it(tiny):
    # the cache once held each evaluated model's head for the whole process (its value referred to its own key):
    # Gemma's fair test grew by about 1 GB an evaluation, past 14 GiB
    import gc
    import weakref

    lm = models.load("tiny:smollm2-135m", progress=False, untie_head=True)
    exact_head.for_head(lm.model.lm_head)
    weight = weakref.ref(lm.model.lm_head.weight)
    assert lm.model.lm_head in exact_head._CACHE
    del lm
    gc.collect()
    assert weight() is None


TEXTS = ["English: Hello.\nCatalan:", "A much longer prompt that needs left padding in its batch.\nCatalan:",
         "Short.\nCatalan:", "Another sentence of middling length here.\nCatalan:"]


@pytest.mark.parametrize("preset", ["smollm2-135m", "gemma3-270m"])
@pytest.mark.parametrize("drop", [False, True])
def test_greedy_through_the_exact_head_gives_the_float32_tokens(preset, drop, varied_tiny):
    """Against HF generate (without dropping) or the own float32 loop (dropping rows, the same shapes)."""
    lm = varied_tiny(preset)
    tok = lm.tokenizer
    p = [tok(t)["input_ids"] for t in TEXTS]
    stats = {}
    ref = generate.generate(lm.model, tok, p, batch_size=4, max_new_tokens=12, progress=False, drop_finished=drop,
                            stop_on_newline=True)
    ours = generate.generate(lm.model, tok, p, batch_size=4, max_new_tokens=12, progress=False, drop_finished=drop,
                             stop_on_newline=True, exact_bf16=True, stats=stats)
    assert [c.to_dict() for c in ours] == [c.to_dict() for c in ref]
    assert stats["rows"] >= sum(c.n_tokens for c in ref) and "declined" not in stats
    assert len({c.text for c in ref}) > 1


def test_beam_search_and_peft_models_keep_the_float32_path(tiny):
    import peft

    p = [tiny.tokenizer(t)["input_ids"] for t in TEXTS[:2]]
    stats = {}
    generate.generate(tiny.model, tiny.tokenizer, p, num_beams=2, max_new_tokens=3, progress=False,
                      exact_bf16=True, stats=stats)
    assert stats == {}
    lm = models.load("tiny:smollm2-135m", progress=False)
    pm = peft.get_peft_model(lm.model, peft.LoraConfig(r=2, target_modules=["q_proj"])).eval()
    generate.generate(pm, lm.tokenizer, p, max_new_tokens=3, progress=False, exact_bf16=True, stats=stats)
    assert "is not a plain causal LM" in stats["declined"] and "rows" not in stats


def test_evaluate_uses_the_exact_head_by_default_without_renaming_runs(tmp_path):
    import argparse

    from kslottery.cli import add_config_args
    from kslottery.method.evaluate import EvalConfig
    from kslottery.method.runs import named_params

    assert EvalConfig().exact_bf16 is True
    assert named_params(EvalConfig(exact_bf16=False)) == named_params(EvalConfig())
    ap = argparse.ArgumentParser()
    add_config_args(ap, EvalConfig)
    assert ap.parse_args(["--no-exact-bf16"]).exact_bf16 is False


def test_evaluate_records_the_decoding_path(runs_dir, flores_dir):
    from kslottery.method.evaluate import EvalConfig, evaluate

    cfg = dict(model="tiny:smollm2-135m", limit=3, max_new_tokens=4, batch_size=3)
    on = evaluate(EvalConfig(**cfg), runs_dir=runs_dir / "a", progress=False)
    off = evaluate(EvalConfig(**cfg, exact_bf16=False), runs_dir=runs_dir / "b", progress=False)
    assert on["run"] == off["run"]
    assert on["decoding"]["exact_bf16"] and on["decoding"]["rows"] >= 3
    assert off["decoding"] == {"exact_bf16": False}
    assert on.hypotheses() == off.hypotheses()


@pytest.mark.slow   # two real model loads and 20 sentences each
@pytest.mark.parametrize("preset", ["gemma3-270m", "smollm2-135m"])
def test_real_models_decode_twenty_devtest_sentences_identically(preset, flores_dir):
    from kslottery.method import data, prompts

    lm = models.load(preset, progress=False)
    bitext = data.load_flores("eng_Latn-cat_Latn", "devtest", limit=20)
    tpl = prompts.get_template("explicit")
    p = [prompts.encode_prompt(lm.tokenizer, tpl.render(s, bitext.src_lang, bitext.tgt_lang)) for s in bitext.src]
    stats = {}
    ref = generate.generate(lm.model, lm.tokenizer, p, batch_size=10, max_new_tokens=32, progress=False)
    ours = generate.generate(lm.model, lm.tokenizer, p, batch_size=10, max_new_tokens=32, progress=False,
                             exact_bf16=True, stats=stats)
    assert [c.to_dict() for c in ours] == [c.to_dict() for c in ref]
    assert stats["rows"] == 20 * 32 and "declined" not in stats
