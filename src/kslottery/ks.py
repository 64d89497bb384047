"""Two-sample Kolmogorov-Smirnov statistics for every embedding row at once.

Row j of the embedding before tuning and after tuning are two samples of size d. With equal sizes
D_j = k_j / d for an integer k_j = max over the pooled values v of |#before <= v - #after <= v|, so
the whole computation is one sort per row of 2d integer keys: each float32 value is mapped to an
order-preserving integer, shifted left one bit, and the sample label goes in the freed bit. A running
count at the end of each group of equal values gives k exactly, ties included, the way
``scipy.stats.ks_2samp`` counts them.

Because k takes only d + 1 values, p-values are tabulated once per d (by asking scipy itself, so the
exact-versus-asymptotic behaviour, fallbacks included, is scipy's) and looked up per row.

    >>> import torch
    >>> before = torch.randn(1000, 64); after = before + 0.3 * torch.randn(1000, 64)
    >>> res = ks_test(before, after)
    >>> res.statistic.shape, res.pvalue.shape
    (torch.Size([1000]), torch.Size([1000]))
"""

from __future__ import annotations

import functools
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .errors import KSLError

METHODS = ("auto", "exact", "asymp")


@dataclass
class KSResult:
    statistic: torch.Tensor   # D per row, float64
    pvalue: torch.Tensor      # p per row, float64 (1.0 for unchanged rows)
    k: torch.Tensor           # D * d as an integer
    changed: torch.Tensor     # bool: the row differs anywhere
    d: int
    method: str


def _sort_keys(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(r, 2d) int64 keys, order-preserving in the value, label (0 before, 1 after) in bit 0."""
    z = torch.cat([before, after], 1).to(torch.float32) + 0.0  # -0.0 + 0.0 = +0.0: equal values, equal keys
    i = z.view(torch.int32)
    i = i ^ ((i >> 31) & 0x7FFFFFFF)   # negative floats reversed into order
    keys = i.to(torch.int64) << 1
    keys[:, before.shape[1]:] |= 1
    return keys


def _k_chunk(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    d = before.shape[1]
    keys = _sort_keys(before, after)
    if keys.is_cuda:
        keys = torch.sort(keys, dim=1).values
    else:  # numpy's SIMD sort is several times faster than torch's on the CPU
        keys = torch.from_numpy(np.sort(keys.numpy(), axis=1))
    n_after = torch.cumsum(keys & 1, dim=1, dtype=torch.int32)
    position = torch.arange(1, 2 * d + 1, device=keys.device, dtype=torch.int32)
    diff = (position - 2 * n_after).abs()      # #before<=v - #after<=v, up to sign
    end = torch.ones_like(keys, dtype=torch.bool)
    end[:, :-1] = ((keys[:, 1:] ^ keys[:, :-1]) >> 1) != 0   # last of a group of equal values
    return torch.where(end, diff, 0).amax(1)


def ks_counts(before: torch.Tensor, after: torch.Tensor, chunk_rows: int = 2048,
              threads: int | None = None) -> torch.Tensor:
    """k_j = d * D_j for every row; chunked to bound memory (about 40 bytes x 2d per row in flight)."""
    if before.shape != after.shape or before.dim() != 2:
        raise KSLError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must be equal 2-D shapes",
                       "pass the embedding matrix before and after tuning")
    if before.dtype not in (torch.float32, torch.bfloat16, torch.float16) or after.dtype != before.dtype:
        raise KSLError(f"KS keys need float32/bf16/fp16 rows, got {before.dtype} and {after.dtype}",
                       "cast both matrices to float32 (embedding master weights are float32)")
    if torch.isnan(before).any() or torch.isnan(after).any():
        raise KSLError("embedding rows contain NaN", "check the tuning run that produced them")
    before, after = before.detach(), after.detach()
    if before.is_cuda:
        return torch.cat([_k_chunk(before[s:s + chunk_rows], after[s:s + chunk_rows])
                          for s in range(0, len(before), chunk_rows)])
    out = torch.empty(len(before), dtype=torch.int32)

    def work(s):
        out[s:s + chunk_rows] = _k_chunk(before[s:s + chunk_rows].contiguous(), after[s:s + chunk_rows].contiguous())

    # numpy's sort releases the GIL: one chunk per core keeps both busy.
    with ThreadPoolExecutor(threads or torch.get_num_threads()) as pool:
        list(pool.map(work, range(0, len(before), chunk_rows)))
    return out


@functools.lru_cache(maxsize=None)
def _pvalue(d: int, k: int, method: str) -> float:
    from scipy.stats import ks_2samp

    # Two samples of size d whose KS statistic is exactly k/d; scipy's p depends only on (d, d, D).
    x = np.arange(d, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ks_2samp(x, x + k, method=method).pvalue)


def pvalue_table(d: int, ks: np.ndarray, method: str = "auto") -> dict[int, float]:
    """p for each distinct k, each computed once per (d, method) per process."""
    if method not in METHODS:
        raise KSLError(f"unknown KS p-value method {method!r}", f"use one of {', '.join(METHODS)}")
    return {int(k): _pvalue(d, int(k), method) for k in np.unique(ks)}


def ks_test(before: torch.Tensor, after: torch.Tensor, method: str = "auto", chunk_rows: int = 2048) -> KSResult:
    """D and p for every row, identical to ``scipy.stats.ks_2samp(before[j], after[j], method=method)``."""
    d = before.shape[1] if before.dim() == 2 else 0
    k = ks_counts(before, after, chunk_rows).cpu()
    changed = (before != after).any(1).cpu()
    table = pvalue_table(d, k.numpy(), method)
    lookup = np.ones(d + 1)
    for kk, p in table.items():
        lookup[kk] = p
    p = torch.from_numpy(lookup[k.numpy()])
    return KSResult(statistic=k.double() / d, pvalue=p, k=k, changed=changed, d=d, method=method)
