"""The certificate, stated and measured: randomized smoothing of next-token prediction.

For a context x and embedding matrix E, g_E(x) = argmax_c P[f(E[x] + eps) = c], eps ~ N(0, s^2 I) on
the context's input-embedding rows. If the top class has probability at least pA (and the rest at most
1 - pA), g is constant for every perturbation delta of the context embeddings with
||delta||_2 < R = s * PhiInv(pA) (Cohen, Rosenfeld, Kolter 2019; their CERTIFY procedure with n0
selection samples, n estimation samples and a one-sided Clopper-Pearson bound at level alpha,
abstaining when pA's lower bound is not above 1/2).

Partial transfer changes the tuned model's context embeddings only on non-ticket rows, by
delta(x) = E'[x] - E_T[x]; where ||delta(x)|| < R(x), the smoothed predictions of the partial model and
of the embedding-tuned model provably agree at x. One forward pass per noise sample certifies every
position of a sequence at once: with causal attention the prediction at position t sees the noise of
positions <= t only, which is exactly the smoothed classifier of the prefix x[:t+1].

Before any sampling, ``max_radius`` says what a setting can certify at all: with n = 64 and alpha = 0.01
no radius reaches 1.5 sigma, so a perturbation of norm 1 needs sigma above about 0.68;
``min_samples`` gives the n a perturbation norm needs at a given sigma.

    >>> round(max_radius(64, 0.01), 3), min_samples(1.0, 0.01, 0.5)
    (1.48, 201)
    >>> res = certify_sequence(model, ids, sigma=0.05, n0=16, n=128, alpha=0.001)   # doctest: +SKIP
    >>> certified = certified_agreement(res, perturbation_norms(ids, tuned_rows, partial_rows))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, norm


def clopper_pearson(k, n, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided (1 - alpha) exact binomial interval for k successes in n trials."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    low = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
    high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return low, high


def lower_confidence_bound(k, n, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) lower Clopper-Pearson bound (Cohen et al.'s LowerConfBound)."""
    return clopper_pearson(k, n, 2 * alpha)[0]


def max_radius(n: int, alpha: float, sigma: float = 1.0) -> float:
    """The largest radius CERTIFY can ever return with n estimation samples at level alpha: all n noisy
    predictions agree, so pA's one-sided lower bound is alpha ** (1 / n) (n0 only selects the class).
    No perturbation at least this large can be certified, whatever the model."""
    return float(sigma * norm.ppf(alpha ** (1.0 / n)))


def min_samples(radius: float, alpha: float, sigma: float) -> int:
    """The smallest n for which a perturbation of L2 norm ``radius`` could be certified at noise ``sigma``
    (needs max_radius(n) > radius, i.e. alpha ** (1/n) > Phi(radius / sigma))."""
    log_phi = norm.logcdf(radius / sigma)    # log Phi, accurate where Phi is within 1e-16 of 1
    if log_phi == 0.0:
        raise ValueError(f"radius / sigma = {radius / sigma:.3g} is beyond float64 precision")
    return int(np.floor(np.log(alpha) / log_phi)) + 1


def limits(sigmas: list[float], n: int, alpha: float, norms=(0.01, 0.1, 0.5, 1.0)):
    """Per noise level: the ceiling on the certified radius with n samples at level alpha, and the n a
    perturbation of each norm in ``norms`` would need (computed, not sampled)."""
    import pandas as pd

    rows = []
    for s in sigmas:
        row = {"sigma": s, f"ceiling radius (n={n})": max_radius(n, alpha, s)}
        for r in norms:
            try:
                row[f"n to certify {r:g}"] = float(min_samples(r, alpha, s))   # may exceed any budget by far
            except ValueError:
                row[f"n to certify {r:g}"] = float("inf")
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Certificate:
    prediction: np.ndarray   # smoothed top class per position (-1 where abstained)
    radius: np.ndarray       # certified L2 radius (0 where abstained)
    p_lower: np.ndarray      # lower confidence bound of the top class probability
    abstain: np.ndarray      # bool
    sigma: float
    n0: int
    n: int
    alpha: float


def _counts(classify, base: torch.Tensor, sigma: float, samples: int, batch: int, vocab: int,
            generator: torch.Generator) -> np.ndarray:
    """(positions, vocab) counts of ``classify(base + noise)`` over ``samples`` noise draws."""
    counts = None
    done = 0
    while done < samples:
        b = min(batch, samples - done)
        noise = torch.randn((b, *base.shape), generator=generator, dtype=torch.float32).to(base.device, base.dtype)
        labels = classify(base.unsqueeze(0) + sigma * noise).cpu()           # (b, positions)
        if counts is None:
            counts = torch.zeros(labels.shape[1], vocab, dtype=torch.long)
        counts.scatter_add_(1, labels.T.contiguous(), torch.ones_like(labels.T))
        done += b
    return counts.numpy()


def certify(classify, base: torch.Tensor, vocab: int, sigma: float, n0: int = 16, n: int = 128,
            alpha: float = 0.001, batch: int = 32, seed: int = 0) -> Certificate:
    """Cohen et al.'s CERTIFY for every position at once.

    ``classify`` maps noisy inputs of shape (batch, *base.shape) to labels (batch, positions)."""
    g = torch.Generator().manual_seed(seed)
    top = _counts(classify, base, sigma, n0, batch, vocab, g).argmax(1)                  # selection
    counts = _counts(classify, base, sigma, n, batch, vocab, g)                          # estimation
    k = counts[np.arange(len(top)), top]
    p_low = lower_confidence_bound(k, n, alpha)
    abstain = p_low <= 0.5
    radius = np.where(abstain, 0.0, sigma * norm.ppf(np.clip(p_low, 0.5, 1 - 1e-16)))
    return Certificate(prediction=np.where(abstain, -1, top), radius=radius, p_lower=p_low, abstain=abstain,
                       sigma=sigma, n0=n0, n=n, alpha=alpha)


def _embed_scale(model) -> float | torch.Tensor:
    return getattr(model.get_input_embeddings(), "embed_scale", 1.0)


@torch.no_grad()
def certify_sequence(model, input_ids: torch.Tensor, sigma: float, n0: int = 16, n: int = 128,
                     alpha: float = 0.001, batch: int = 32, seed: int = 0, last: int | None = None) -> Certificate:
    """Certify the next-token prediction at every position of one sequence (noise on raw embedding rows).

    ``last``: certify only the last N positions (the target side of a prompt + reference); the noise
    still covers the whole context, but the 262k-way output layer runs only where it is needed."""
    emb = model.get_input_embeddings()
    base = emb.weight[input_ids.to(emb.weight.device)].float()               # raw rows, (T, H)
    scale = _embed_scale(model)
    keep = last or len(input_ids)

    def classify(noisy):                                                     # (b, T, H) -> (b, last)
        embeds = (noisy * scale).to(emb.weight.dtype)
        return model(inputs_embeds=embeds, logits_to_keep=keep).logits.argmax(-1)

    vocab = model.get_output_embeddings().weight.shape[0]
    return certify(classify, base, vocab, sigma, n0, n, alpha, batch, seed)


def perturbation_norms(input_ids: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor) -> np.ndarray:
    """||E_a[x[:t+1]] - E_b[x[:t+1]]||_2 for every prefix length t (rows_* are full embedding matrices)."""
    d = (rows_a[input_ids].float() - rows_b[input_ids].float()).pow(2).sum(1)
    return d.cumsum(0).sqrt().numpy()


def certified_agreement(cert: Certificate, norms: np.ndarray) -> np.ndarray:
    """Positions where the partial model's smoothed prediction provably equals the tuned model's."""
    return (~cert.abstain) & (norms < cert.radius)


@torch.no_grad()
def empirical_agreement(model_a, model_b, input_ids: torch.Tensor) -> np.ndarray:
    """Whether the unsmoothed next-token argmax of two models agrees at every position."""
    ids = input_ids.unsqueeze(0)
    a = model_a(ids.to(model_a.device)).logits.argmax(-1).cpu()
    b = model_b(ids.to(model_b.device)).logits.argmax(-1).cpu()
    return (a == b)[0].numpy()
