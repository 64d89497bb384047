import pytest
import torch

from kslottery.method import generate, models


def forced(token_id: int):
    """A tiny model whose output layer always prefers ``token_id`` (an added bias dominates)."""
    lm = models.load("tiny:smollm2-135m", untie_head=True, progress=False)
    old = lm.model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[token_id] = 1e4
    lm.model.lm_head = head
    return lm


def prompts_of(tok, texts):
    return [tok(t)["input_ids"] for t in texts]


TEXTS = ["English: Hello.\nCatalan:", "A much longer prompt that needs left padding in its batch.\nCatalan:"]


def test_newline_ids_cover_plain_and_merged_newlines(tiny):
    ids = generate.newline_token_ids(tiny.tokenizer)
    assert all("\n" in tiny.tokenizer.decode([i]) for i in ids)
    assert tiny.tokenizer("\n", add_special_tokens=False)["input_ids"][0] in ids
    assert len(ids) > 1


def test_eos_flag():
    lm = forced(2)
    out = generate.generate(lm.model, lm.tokenizer, prompts_of(lm.tokenizer, TEXTS), max_new_tokens=5, progress=False)
    assert [(c.stopped_eos, c.stopped_newline, c.hit_cap, c.n_tokens, c.text) for c in out] == [(True, False, False, 1, "")] * 2


def test_newline_flag_only_when_asked():
    nl = forced(generate.newline_token_ids(models.load("tiny:smollm2-135m", progress=False).tokenizer)[0])
    p = prompts_of(nl.tokenizer, TEXTS)
    stop = generate.generate(nl.model, nl.tokenizer, p, max_new_tokens=5, stop_on_newline=True, progress=False)
    assert all(c.stopped_newline and not c.stopped_eos and c.n_tokens == 1 and "\n" in c.text for c in stop)
    free = generate.generate(nl.model, nl.tokenizer, p, max_new_tokens=5, progress=False)
    assert all(c.hit_cap and c.n_tokens == 5 and not c.stopped_newline for c in free)


def test_cap_and_left_padding_give_batch_independent_outputs(tiny):
    p = prompts_of(tiny.tokenizer, TEXTS)
    together = generate.generate(tiny.model, tiny.tokenizer, p, batch_size=2, max_new_tokens=6, progress=False)
    alone = [generate.generate(tiny.model, tiny.tokenizer, [q], max_new_tokens=6, progress=False)[0] for q in p]
    assert [c.text for c in together] == [c.text for c in alone]
    assert all(c.hit_cap and c.n_tokens == 6 for c in together)


def test_beam_search_runs(tiny):
    p = prompts_of(tiny.tokenizer, TEXTS)
    out = generate.generate(tiny.model, tiny.tokenizer, p, num_beams=3, max_new_tokens=4, progress=False)
    assert len(out) == 2 and all(c.n_tokens <= 4 for c in out)


def test_resume_skips_done_and_keeps_order(tiny):
    p = prompts_of(tiny.tokenizer, TEXTS + ["Short.", "Another prompt here."])
    full = generate.generate(tiny.model, tiny.tokenizer, p, batch_size=1, max_new_tokens=3, progress=False)
    seen = []
    resumed = generate.generate(tiny.model, tiny.tokenizer, p, batch_size=1, max_new_tokens=3, progress=False,
                                done={0: full[0], 2: full[2]}, on_batch=lambda idx, _: seen.extend(idx))
    assert sorted(seen) == [1, 3]
    assert [c.text for c in resumed] == [c.text for c in full]


@pytest.mark.parametrize("preset", ["smollm2-135m", "gemma3-270m"])
def test_dropping_finished_rows_gives_generates_tokens(preset, varied_tiny):
    """Rows that stop at different steps leave the batch; every row's tokens equal HF generate's."""
    from transformers import GenerationConfig

    lm = varied_tiny(preset)
    tok = lm.tokenizer
    texts = TEXTS + ["Short.\nCatalan:", "Another sentence of middling length here.\nCatalan:"]
    p = prompts_of(tok, texts)
    width = max(map(len, p))
    ids = torch.tensor([[tok.pad_token_id or 0] * (width - len(q)) + q for q in p])
    mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in p])
    free = lm.model.generate(input_ids=ids, attention_mask=mask, generation_config=GenerationConfig(
        max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id or 0, eos_token_id=None))[:, width:]
    # stop ids that rows meet at different steps, so some rows leave while others continue
    stops = sorted({int(free[0, 2]), int(free[2, 5])} - {int(t) for t in free[3]})
    ref = []             # generate's tokens cut after each row's first stop id
    for row in free.tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
        ref.append(row[:cut + 1])
    ours = generate.greedy_drop_finished(lm.model, ids, mask, stops, max_new_tokens=10)
    assert ours == ref
    lengths = sorted(map(len, ours))
    assert lengths[0] < 10 and lengths[-1] == 10     # some rows stopped early, one ran to the cap


@pytest.mark.parametrize("preset", ["smollm2-135m", "gemma3-270m"])
def test_dropping_finished_rows_decodes_a_prefix_tuned_model_as_it_was_trained(preset):
    """Every greedy token of a prefix-tuned model is the argmax of PEFT's own forward over the whole
    sequence (the forward training used). PEFT rebuilds its prefix cache on every call, so a loop that
    passes its cache through the PEFT model loses the prefix and the history after the first token."""
    import peft

    lm = models.load(f"tiny:{preset}", progress=False, untie_head=True)
    torch.manual_seed(0)
    for w in lm.model.parameters():
        if w.dim() > 1:
            w.data.normal_(0, 0.5)
    pm = peft.get_peft_model(lm.model, peft.PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")).eval()
    p = prompts_of(lm.tokenizer, TEXTS)
    width = max(map(len, p))
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(q)) + q for q in p])
    mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in p])
    ours = generate.greedy_drop_finished(pm, ids, mask, stops=[-1], max_new_tokens=6)
    for q, row in zip(p, ours):
        seq, ref = list(q), []
        with torch.no_grad():
            for _ in range(6):
                ref.append(int(pm(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
                seq.append(ref[-1])
        assert row == ref
    assert len({tuple(r) for r in ours}) == 2 and len(set(ours[0])) > 1   # tokens that could disagree
