"""Batched generation with left padding, greedy or beam search, and explicit stop ids.

Each continuation says why it ended: EOS, a newline-bearing token (when newline stopping is on), or
the ``max_new_tokens`` cap. Those flags are what the termination audit measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

_NEWLINE_IDS: dict[tuple, tuple[int, ...]] = {}


@dataclass
class Continuation:
    text: str                 # raw decoded continuation, stop token excluded for EOS
    n_tokens: int
    stopped_eos: bool
    stopped_newline: bool
    hit_cap: bool

    def to_dict(self) -> dict:
        return asdict(self)


def newline_token_ids(tokenizer) -> tuple[int, ...]:
    """Every id whose decoded text contains a newline (Gemma writes ``\\n\\n`` as one token)."""
    key = (tokenizer.name_or_path, len(tokenizer))
    if key not in _NEWLINE_IDS:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _NEWLINE_IDS[key] = tuple(i for i, t in enumerate(texts) if "\n" in t)
    return _NEWLINE_IDS[key]


def stop_ids(tokenizer, stop_on_newline: bool) -> list[int]:
    ids = [tokenizer.eos_token_id]
    if stop_on_newline:
        ids += [i for i in newline_token_ids(tokenizer) if i != tokenizer.eos_token_id]
    return ids


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], *, batch_size: int = 8, max_new_tokens: int = 128,
             num_beams: int = 1, stop_on_newline: bool = False, progress: bool = True,
             on_batch=None, done: dict[int, Continuation] | None = None) -> list[Continuation]:
    """Continue each tokenized prompt. Prompts are batched by length (less padding) and results come
    back in input order. ``on_batch(indices, continuations)`` is called after each batch, so callers can
    checkpoint; prompts whose index is in ``done`` are not recomputed (resume)."""
    from tqdm import tqdm
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    newline = set(newline_token_ids(tokenizer)) if stop_on_newline else set()
    stops = stop_ids(tokenizer, stop_on_newline)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                              eos_token_id=stops, pad_token_id=pad, early_stopping=num_beams > 1)
    device = next(model.parameters()).device
    done = done or {}
    order = sorted((i for i in range(len(prompts)) if i not in done), key=lambda i: -len(prompts[i]))
    out: list[Continuation | None] = [done.get(i) for i in range(len(prompts))]
    bar = tqdm(total=len(prompts), initial=len(prompts) - len(order), desc="generating", unit="sent",
               disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             generation_config=config)
        batch = []
        for row, i in enumerate(idx):
            out[i] = _continuation(gen[row, width:].tolist(), tokenizer, eos, newline, max_new_tokens)
            batch.append(out[i])
        if on_batch is not None:
            on_batch(idx, batch)
        bar.update(len(idx))
    bar.close()
    return out


def _continuation(new: list[int], tokenizer, eos: int, newline: set[int], cap: int) -> Continuation:
    stop_at = next((k for k, t in enumerate(new) if t == eos or t in newline), None)
    if stop_at is None:
        return Continuation(tokenizer.decode(new, skip_special_tokens=True), len(new), False, False,
                            len(new) >= cap)
    is_eos = new[stop_at] == eos
    kept = new[:stop_at] if is_eos else new[:stop_at + 1]
    return Continuation(tokenizer.decode(kept, skip_special_tokens=True), stop_at + 1, is_eos, not is_eos, False)
