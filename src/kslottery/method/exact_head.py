"""Exact greedy choice through a bfloat16 vocabulary pass: the float32 head's argmax, token for token.

The vocabulary head dominates a decoding step of Gemma 3 270M (262,144 x 640, tied), and bfloat16
``F.linear`` is 3.4-4x faster than float32 on the study's CPU, but a bfloat16 argmax differs from the
float32 one on 2-3 % of rows. So the bf16 pass only *proposes* candidates; their float32-exact logits
decide, and a row whose choice the error bound cannot settle takes the full float32 head.

    >>> import torch
    >>> torch.manual_seed(0)                                    # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> head = torch.nn.Linear(64, 1000, bias=False)
    >>> exact = ExactHead(head)
    >>> h = torch.randn(4, 1, 64)                               # (rows, 1, hidden), as a decoder's last position
    >>> bool((exact.argmax(h) == head(h)[:, -1].argmax(-1)).all())
    True
    >>> exact.stats["rows"], exact.stats["fallback_rows"] <= 4
    (4, True)

The bound (stated once, used twice). Let ``u = 2**-8`` (bfloat16 unit roundoff), ``v = 2**-24``
(float32), ``K`` the hidden size, ``g(K) = K v / (1 - K v)``, and for a row ``h`` and vocabulary row
``w_j``: ``S_j = sum_k |h_k w_jk| <= ||h||_2 ||w_j||_2`` (Cauchy-Schwarz). Assumptions: the bf16 product
rounds ``h`` and ``w`` to bfloat16 (we round ``h`` ourselves; ``w`` is rounded once here), multiplies and
accumulates in float32 in any order (a product of two bfloat16 numbers is exact in float32; oneDNN's
AVX512-BF16 kernels accumulate in float32) and rounds the sum to bfloat16 once; the float32 head
accumulates in float32 in any order, with or without FMA (``torch.get_float32_matmul_precision()`` is
``"highest"``, checked). Then, for the exact value ``s_j = h . w_j``,

- bf16 logit ``q_j``:   ``|q_j - s_j| <= (2u + u^2 + g(K)(1+u)^2) S_j + u/(1-u) |q_j|``
  (input rounding, float32 accumulation, one output rounding);
- float32 logit ``r_j`` (the reference head's): ``|r_j - s_j| <= g(K) S_j``.

So ``|q_j - r_j| <= E = c ||h|| max_j ||w_j|| + u/(1-u) max_j |q_j| + tiny`` with
``c = 2u + u^2 + g(K)((1+u)^2 + 1)`` (``tiny`` covers flushed subnormals). The float32 argmax ``j*``
has ``r_j* >= r_m`` for the bf16 argmax ``m``, hence ``q_j* >= q_m - 2E``: the candidates
``{j : q_j >= max q - 2E}`` contain it. The batched pass keeps the top ``max_candidates``; a row with
more is rescored alone with all of them, and falls back beyond ``max_wide``.

Among the candidates, ``s_j`` is recomputed in float64 (error ``<= g64(K) S_j``, about 1e-13 relative),
with ``S_j`` itself, so each reference logit lies in ``[c_j - e_j, c_j + e_j]``,
``e_j = (g(K) + 2 g64(K)) S_j``. If the best candidate's interval lies strictly above every other
candidate's, the reference head's argmax is that candidate (ties included: a tie cannot be separated,
so it falls back, and the full head's first-index rule decides as before). Otherwise the row falls back.

A fallback computes the full float32 head on the whole batch, the same call with the same shapes the
float32 path makes, so its tokens are that path's by construction. Monotone logit transforms are not
handled: a model with ``final_logit_softcapping`` (Gemma 2; Gemma 3's config defaults to none) is
declined, since float32 ``tanh`` can merge distinct logits into a tie that decides by index.

Measured (``benchmarks/decoding.py --sentences 32 --tokens 64``, Gemma 3 270M, one batch of 32 FLORES devtest
prompts, the quiet 2-core CPU, 2 threads, 2026-12-07): 1.55x HF ``generate``'s wall-clock, every continuation
identical, no row fell back. Timed piece by piece, the head step went from 175 to 66 ms, but the float32 decoder
body (123 ms a step) and the prompt prefill (3.8 s) are about half of the float32 job, so a head that cost nothing
would give at most 1.96x there.
"""

from __future__ import annotations

import functools
import weakref
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

U16 = 2.0 ** -8    # bfloat16: 8 significant bits
U32 = 2.0 ** -24
U64 = 2.0 ** -53


def _gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


# Causal LMs whose forward (transformers 5.24, read) computes ``lm_head(model(...).last_hidden_state)`` and
# nothing after it but Gemma 3's optional soft-capping. Others are declined: Granite divides its logits by
# ``logits_scaling``, Cohere multiplies them by ``logit_scale``, and a float32 rescaling can merge two
# logits into a tie that the index decides.
CHECKED = ("LlamaForCausalLM", "Gemma3ForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16, Arm's BF16), as the bound's
    float32 accumulation was read for and as makes the pass pay. Without it torch emulates the product: slower
    than float32 (32 rows of Gemma's head: 1,018 ms against 432 ms on an AVX2-only AMD EPYC, 2 threads,
    2026-12-07), and how it accumulates is unchecked."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:   # not Linux: no way to tell here, so the plain float32 head
        return False
    flags = {f for line in lines if line.startswith(("flags", "Features")) for f in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def unsupported(model) -> str | None:
    """Why ``model``'s greedy step cannot use the exact bf16 head (None: it can). The step needs a CPU with
    bf16 instructions and one of the ``CHECKED`` causal LMs: logits ``lm_head(model.model(...).last_hidden_state)``,
    a bias-free float32 ``nn.Linear`` head on the CPU, no soft-capping, float32 matmuls at full precision."""
    if not native_bf16():
        return "this CPU has no bfloat16 instructions (AVX512-BF16, AMX or Arm BF16): the float32 head is faster"
    if type(model).__name__ not in CHECKED:
        return f"{type(model).__name__} is not a plain causal LM whose head was checked ({', '.join(CHECKED)})"
    head = model.get_output_embeddings()
    if head is None or getattr(model, "lm_head", None) is not head \
            or not isinstance(getattr(model, "model", None), torch.nn.Module):
        return "no model.model and model.lm_head"
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return f"the head is a {type(head).__name__}{' with a bias' if head.bias is not None else ''}"
    if head.weight.dtype != torch.float32 or head.weight.device.type != "cpu":
        # CUDA may reduce bf16 products in reduced precision (allow_bf16_reduced_precision_reduction)
        return f"the head is {head.weight.dtype} on {head.weight.device.type}, not float32 on the CPU"
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        if getattr(cfg, "final_logit_softcapping", None) is not None:
            return "final_logit_softcapping is set (float32 tanh can turn an order into a tie)"
    if torch.get_float32_matmul_precision() != "highest":
        return "float32 matmul precision is not 'highest' (the reference head is not float32)"
    return None


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def for_head(head: torch.nn.Linear, max_candidates: int = 64) -> ExactHead:
    """The ExactHead of ``head``, reused across batches while its weight is unchanged (the bf16 copy of
    Gemma's head takes about a second to make)."""
    cached = _CACHE.get(head)
    w = head.weight
    if cached is None or cached.version != (w.data_ptr(), w._version) or cached.k != max_candidates:
        cached = _CACHE[head] = ExactHead(head, max_candidates)
    return cached


class ExactHead:
    """``argmax(hidden)`` equals ``head(hidden)[:, -1].argmax(-1)`` for a bias-free float32 ``nn.Linear``.

    ``stats`` counts rows, candidates, rows rescored alone (``wide_rows``), fallback rows (and why: too
    many candidates, a near tie, non-finite values) and fallback steps (each one full float32 head pass)."""

    def __init__(self, head: torch.nn.Linear, max_candidates: int = 64, max_wide: int = 4096):
        # weakly: _CACHE holds its keys weakly, and a value that held its key would keep every evaluated
        # model's head (Gemma's: the tied embedding, 671 MB, plus this bf16 copy) alive for the process
        self._head = weakref.ref(head)
        w = head.weight.detach()
        self.version = (w.data_ptr(), w._version)   # an in-place change of the weight makes a new ExactHead
        self.w16 = w.to(torch.bfloat16)     # rounded once; the float32 weight stays the reference
        self.k = max_candidates      # candidates per row in the batched pass (topk)
        self.max_wide = max_wide     # a row with more is rescored alone, up to this many; beyond, it falls back
        n = w.shape[1]
        g32 = _gamma(n, U32)
        # float32 norms (a float64 copy of Gemma's head would take seconds and 1.3 GB), rounded up by
        # their own error bound: a sum of n squares loses at most g(n) relative, the square root half
        self.max_norm = float(torch.linalg.vector_norm(w, dim=1).max()) * (1 + g32 + 4 * U32)
        self.c_norm = (2 * U16 + U16 ** 2 + g32 * ((1 + U16) ** 2 + 1)) * (1 + 1e-6)
        self.c_out = U16 / (1 - U16) * (1 + 1e-6)
        self.c_exact = (g32 + 2 * _gamma(n, U64)) * (1 + 1e-6)
        # flushed subnormals: each term loses at most 2**-126 times a factor's size
        lo, hi = w.aminmax()
        self.tiny = 4 * n * 2.0 ** -126 * (max(-float(lo), float(hi)) + 1)
        self.stats = Counter()

    @property
    def head(self) -> torch.nn.Linear:
        return self._head()

    def bound(self, h: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Per row, an upper bound E on |bf16 logit - float32 logit| over the whole vocabulary."""
        hn = h.double().norm(dim=-1)
        qabs = q.abs().amax(-1).double()
        return self.c_norm * hn * self.max_norm + self.c_out * qabs + self.tiny

    @torch.no_grad()
    def argmax(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden``: (rows, 1, hidden size), the decoder's last position as the model's forward slices
        it. Returns the float32 head's argmax per row."""
        h = hidden[:, -1]
        q = F.linear(h.to(torch.bfloat16), self.w16)                    # (rows, vocab), bf16
        e = self.bound(h, q)
        k = min(self.k + 1, q.shape[-1])
        vals, idx = q.topk(k, dim=-1)                                   # sorted, largest first
        vals = vals.double()
        thr = vals[:, 0] - 2 * e
        inside = vals >= thr[:, None]
        finite = torch.isfinite(vals[:, 0]) & torch.isfinite(e)
        tok, separated = self._decide(h, idx, inside)
        n_cand = inside.sum(-1)
        too_many = torch.zeros_like(separated)
        # a flat row has more candidates than topk kept: rescore all of them (up to max_wide), one row at a time
        for r in (inside[:, -1] & finite & (k > self.k)).nonzero().flatten().tolist():
            wide = (q[r].double() >= thr[r]).nonzero().flatten()
            n_cand[r] = len(wide)
            if len(wide) <= self.max_wide:
                t, sep = self._decide(h[r:r + 1], wide[None], torch.ones(1, len(wide), dtype=torch.bool))
                tok[r], separated[r] = t[0], sep[0]
            else:
                too_many[r], separated[r] = True, False
        ok = finite & separated
        n_fall = int((~ok).sum())
        self.stats["rows"] += len(h)
        self.stats["candidates"] += int(n_cand[finite].sum())
        self.stats["fallback_rows"] += n_fall
        self.stats["fallback_too_many"] += int(too_many.sum())
        self.stats["fallback_near_tie"] += int((finite & ~separated & ~too_many).sum())
        self.stats["wide_rows"] += int((n_cand > self.k).sum())
        self.stats["fallback_nonfinite"] += int((~finite).sum())
        if n_fall:
            # the float32 path's own call, same shapes: its tokens by construction
            self.stats["fallback_steps"] += 1
            full = self.head(hidden)[:, -1].argmax(-1)
            tok = torch.where(ok, tok, full)
        return tok

    def _decide(self, h: torch.Tensor, idx: torch.Tensor, inside: torch.Tensor):
        """The best candidate per row by float64 logits, and whether its interval for the float32 logit
        lies strictly above every other candidate's (only then is it the float32 head's argmax)."""
        wc = self.head.weight.detach()[idx].double()                    # (rows, candidates, hidden)
        hd = h.double()
        c = torch.einsum("rkd,rd->rk", wc, hd)
        err = self.c_exact * torch.einsum("rkd,rd->rk", wc.abs(), hd.abs())
        c = torch.where(inside, c, torch.full_like(c, -torch.inf))
        best = c.argmax(-1)
        rows = torch.arange(len(h))
        low = c[rows, best] - err[rows, best]
        others = torch.where(inside, c + err, torch.full_like(c, -torch.inf))
        others[rows, best] = -torch.inf
        return idx[rows, best].clone(), low > others.amax(-1)
