"""Batched generation with left padding, greedy or beam search, and explicit stop ids.

Each continuation says why it ended: EOS, a newline-bearing token (when newline stopping is on), or
the ``max_new_tokens`` cap. Those flags are what the termination audit measures.

Greedy decoding can drop rows that have stopped (``drop_finished``): HF ``generate`` keeps every row of
a batch until the last one stops, so a tuned model whose continuations stop after ~40 tokens costs as
much as one that runs to the cap. Dropping them gives the same tokens up to float noise (a smaller
batch may take other matmul kernels); on the 2-core CPU it was 1.21x faster for a tuned Gemma that
stops after ~48 tokens of 96 (``benchmarks/generation.py``): a decoding step there costs nearly as
much for 4 rows as for 32.

Greedy decoding can also choose each token through a bfloat16 vocabulary pass (``exact_bf16``,
``exact_head.ExactHead``): the bf16 head proposes candidates, float64 recomputation and a stated error
bound choose the float32 head's argmax, and rows the bound cannot settle take the float32 head itself,
so the tokens are the float32 path's. It runs in this module's own loop (keeping every row unless
``drop_finished``), on models ``exact_head.unsupported`` accepts; others keep HF ``generate``.
Beam search keeps the float32 path.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import asdict, dataclass

import torch

from . import exact_head
from .errors import KSLError

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
             on_batch=None, done: dict[int, Continuation] | None = None,
             drop_finished: bool = False, exact_bf16: bool = False, own_loop: bool = False,
             stats: dict | None = None) -> list[Continuation]:
    """Continue each tokenized prompt. Prompts are batched by length (less padding) and results come
    back in input order. ``on_batch(indices, continuations)`` is called after each batch, so callers can
    checkpoint; prompts whose index is in ``done`` are not recomputed (resume). ``exact_bf16``: greedy
    tokens through the exact bf16 head (see the module docstring); ``stats`` (a dict) receives its
    counters, or the reason it was declined. ``own_loop``: greedy decoding in this module's loop even
    with neither option (the float32 head; for comparisons)."""
    from tqdm import tqdm
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    newline = set(newline_token_ids(tokenizer)) if stop_on_newline else set()
    stops = stop_ids(tokenizer, stop_on_newline)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                              eos_token_id=stops, pad_token_id=pad, early_stopping=num_beams > 1)
    device = next(model.parameters()).device
    # a PEFT-wrapped model is declined and keeps HF generate, unless drop_finished asks for the own loop
    # (which decodes the base model of a prefix-tuned one, and may use the exact head there)
    why = exact_head.unsupported(model) if exact_bf16 and num_beams == 1 else None
    if why is not None and stats is not None and not drop_finished:
        stats["declined"] = why
    done = done or {}
    order = sorted((i for i in range(len(prompts)) if i not in done), key=lambda i: -len(prompts[i]))
    out: list[Continuation | None] = [done.get(i) for i in range(len(prompts))]
    bar = tqdm(total=len(prompts), initial=len(prompts) - len(order), desc="generating", unit="sent",
               disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = left_padded([prompts[i] for i in idx], pad)
        width = ids.shape[1]
        if num_beams == 1 and (drop_finished or own_loop or (exact_bf16 and why is None)):
            new = greedy(model, ids.to(device), mask.to(device), stops, max_new_tokens,
                         drop_finished=drop_finished, exact_bf16=exact_bf16, stats=stats)
        else:
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 generation_config=config)
            new = gen[:, width:].tolist()
        batch = []
        for row, i in enumerate(idx):
            out[i] = _continuation(new[row], tokenizer, eos, newline, max_new_tokens)
            batch.append(out[i])
        if on_batch is not None:
            on_batch(idx, batch)
        bar.update(len(idx))
    bar.close()
    return out


def left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of token ids padded on the left with ``pad``, and its attention mask (1 on the prompts' tokens)."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids, mask


def greedy_drop_finished(model, ids: torch.Tensor, mask: torch.Tensor, stops: list[int],
                         max_new_tokens: int, **kw) -> list[list[int]]:
    """Greedy continuation of a left-padded batch; a row leaves the batch (and the KV cache) as soon as it
    emits a stop id. Returns each row's new tokens, its stop token included."""
    return greedy(model, ids, mask, stops, max_new_tokens, drop_finished=True, **kw)


@torch.no_grad()
def greedy(model, ids: torch.Tensor, mask: torch.Tensor, stops: list[int], max_new_tokens: int, *,
           drop_finished: bool = True, exact_bf16: bool = False, stats: dict | None = None) -> list[list[int]]:
    """Greedy continuation of a left-padded batch. ``drop_finished``: a row leaves the batch (and the KV
    cache) as soon as it emits a stop id; otherwise every row stays, as in HF ``generate``, so each step's
    shapes (and float32 kernels) are generate's. ``exact_bf16``: tokens through ``exact_head.ExactHead``.
    Returns each row's new tokens, its stop token included."""

    model, cache, virtual = _start(model, ids.shape[0])
    head = None
    if exact_bf16:
        why = exact_head.unsupported(model)
        if why is None:
            head = exact_head.for_head(model.lm_head)
            head.stats = Counter()       # this call's counters (the head is reused across calls)
        elif stats is not None:
            stats["declined"] = why
    if virtual:   # every row attends to the prefix, and positions count it, as they did in training
        mask = torch.cat([mask.new_ones(mask.shape[0], virtual), mask], 1)
    # transformers renamed past_key_values to cache (the old name warns from 5.2x); accept both
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    stop = torch.tensor(sorted(set(stops)), device=ids.device)
    alive = list(range(ids.shape[0]))
    new: list[list[int]] = [[] for _ in alive]
    # positions count real tokens only (after the prefix, if any), as generate's and training's do
    pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, virtual:]

    def choose(**inputs) -> torch.Tensor:
        if head is None:
            return model(**inputs, **{key: cache}, use_cache=True, logits_to_keep=1).logits[:, -1].argmax(-1)
        # the decoder's last position, sliced as the model's forward slices it before its head
        hidden = model.model(**inputs, **{key: cache}, use_cache=True).last_hidden_state[:, -1:]
        return head.argmax(hidden)

    tok = choose(input_ids=ids, attention_mask=mask, position_ids=pos)
    nxt = pos[:, -1] + 1
    stopped = torch.zeros(len(alive), dtype=torch.bool, device=ids.device)   # rows kept after stopping
    for step in range(max_new_tokens):
        for row, t, s in zip(alive, tok.tolist(), stopped.tolist()):
            if not s:
                new[row].append(t)
        finished = torch.isin(tok, stop) | stopped
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        if not drop_finished:
            stopped = finished
        elif bool(finished.any()):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive = [alive[i] for i in keep.tolist()]
            tok, mask, nxt, stopped = tok[keep], mask[keep], nxt[keep], stopped[keep]
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], 1)
        tok = choose(input_ids=tok[:, None], attention_mask=mask, position_ids=nxt[:, None])
        nxt = nxt + 1
    if head is not None and stats is not None:
        for name, n in head.stats.items():
            stats[name] = stats.get(name, 0) + n
    return new


def _start(model, rows: int):
    """The model to call step by step, its starting KV cache and the number of virtual tokens in it.

    A PEFT prefix-tuned model rebuilds its prefix cache on every forward call, which would throw away the
    cache this loop grows; so the prefix goes into the cache once and the base model does the steps."""
    from transformers import DynamicCache

    cfg = getattr(model, "active_peft_config", None)
    if cfg is None or not cfg.is_prompt_learning:
        return model, DynamicCache(config=model.config), 0
    if cfg.peft_type != "PREFIX_TUNING":
        raise KSLError(f"drop_finished cannot decode a {cfg.peft_type} model", "leave drop_finished off")
    return model.get_base_model(), model.get_prompt(rows), cfg.num_virtual_tokens


def _continuation(new: list[int], tokenizer, eos: int, newline: set[int], cap: int) -> Continuation:
    stop_at = next((k for k, t in enumerate(new) if t == eos or t in newline), None)
    if stop_at is None:
        return Continuation(tokenizer.decode(new, skip_special_tokens=True), len(new), False, False,
                            len(new) >= cap)
    is_eos = new[stop_at] == eos
    kept = new[:stop_at] if is_eos else new[:stop_at + 1]
    return Continuation(tokenizer.decode(kept, skip_special_tokens=True), stop_at + 1, is_eos, not is_eos, False)
