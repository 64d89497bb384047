"""Two-sample Kolmogorov-Smirnov statistics for every embedding row at once.

Row j of the embedding before tuning and after tuning are two samples of size d. With equal sizes
D_j = k_j / d for an integer k_j = max over the pooled values v of |#before <= v - #after <= v|,
evaluated after each group of equal values (ties counted the way ``scipy.stats.ks_2samp`` counts them).

- CPU: numpy's SIMD sort of each row, then one compiled linear merge per row (numba), chunks of rows
  spread over threads.
- CUDA: one sort per row of 2d integer keys (each float mapped to an order-preserving integer, shifted
  left one bit, the sample label in the freed bit) and a running count at the end of each group.

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

    @classmethod
    def at_rows(cls, ids: torch.Tensor, n_rows: int, d: int, method: str, statistic: torch.Tensor,
                pvalue: torch.Tensor, k: torch.Tensor | None = None, changed: torch.Tensor | None = None) -> "KSResult":
        """The test over the whole vocabulary from its values at ``ids`` (every other row D = 0, p = 1, unchanged):
        runs save only the rows that moved, since the rest of a large vocabulary carries no information."""
        ids = ids.long()
        D, p = torch.zeros(n_rows, dtype=torch.float64), torch.ones(n_rows, dtype=torch.float64)
        D[ids], p[ids] = statistic.double(), pvalue.double()
        full_k, full_changed = torch.zeros(n_rows, dtype=torch.int32), torch.zeros(n_rows, dtype=torch.bool)
        full_k[ids] = torch.round(D[ids] * d).to(torch.int32) if k is None else k.to(torch.int32)
        full_changed[ids] = D[ids] > 0 if changed is None else changed.bool()
        return cls(statistic=D, pvalue=p, k=full_k, changed=full_changed, d=d, method=method)


def _sort_keys(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(r, 2d) int64 keys, order-preserving in the value, label (0 before, 1 after) in bit 0."""
    z = torch.cat([before, after], 1).to(torch.float32) + 0.0  # -0.0 + 0.0 = +0.0: equal values, equal keys
    i = z.view(torch.int32)
    i = i ^ ((i >> 31) & 0x7FFFFFFF)   # negative floats reversed into order
    keys = i.to(torch.int64) << 1
    keys[:, before.shape[1]:] |= 1
    return keys


def _k_keys(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """The sort-keys algorithm (any device; the CUDA path)."""
    d = before.shape[1]
    keys = torch.sort(_sort_keys(before, after), dim=1).values
    n_after = torch.cumsum(keys & 1, dim=1, dtype=torch.int32)
    position = torch.arange(1, 2 * d + 1, device=keys.device, dtype=torch.int32)
    diff = (position - 2 * n_after).abs()      # #before<=v - #after<=v, up to sign
    end = torch.ones_like(keys, dtype=torch.bool)
    end[:, :-1] = ((keys[:, 1:] ^ keys[:, :-1]) >> 1) != 0   # last of a group of equal values
    return torch.where(end, diff, 0).amax(1)


@functools.lru_cache(maxsize=None)
def _merge_kernel():
    import numba

    @numba.njit(nogil=True, cache=True)
    def merge_counts(xs, ys, out):
        # Rows are sorted, with a +inf sentinel in the last column so the merge needs no bounds checks;
        # the head of each row stays in a register and the step is branch-free.
        rows, d = xs.shape[0], xs.shape[1] - 1
        for r in range(rows):
            x, y = xs[r], ys[r]
            i = j = best = 0
            xi, yj = x[0], y[0]
            for _ in range(2 * d):
                take = xi <= yj
                v = min(xi, yj)
                i += take
                j += 1 - take
                xi, yj = x[i], y[j]
                # Count only after the last of a group of equal values (== groups -0.0 with 0.0, as scipy).
                if min(xi, yj) != v and abs(i - j) > best:
                    best = abs(i - j)
            out[r] = best

    return merge_counts


def _sorted_with_sentinel(rows: np.ndarray) -> np.ndarray:
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = rows
    out[:, -1] = np.inf
    out[:, :-1].sort(axis=1)
    return out


def _k_merge(before: np.ndarray, after: np.ndarray, out: np.ndarray) -> None:
    """The CPU algorithm: sort both samples (numpy's SIMD sort), merge once (compiled)."""
    _merge_kernel()(_sorted_with_sentinel(before), _sorted_with_sentinel(after), out)


def ks_counts(before: torch.Tensor, after: torch.Tensor, chunk_rows: int | None = None,
              threads: int | None = None, algorithm: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """(k, changed): k_j = d * D_j and whether row j differs at all, in chunks of rows (bounded memory).

    ``algorithm``: ``merge`` (CPU), ``keys`` (any device), ``auto`` (merge on CPU, keys on CUDA)."""
    if before.shape != after.shape or before.dim() != 2:
        raise KSLError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must be equal 2-D shapes",
                       "pass the embedding matrix before and after tuning")
    if before.dtype not in (torch.float32, torch.bfloat16, torch.float16) or after.dtype != before.dtype:
        raise KSLError(f"KS keys need float32/bf16/fp16 rows, got {before.dtype} and {after.dtype}",
                       "cast both matrices to float32 (embedding master weights are float32)")
    if torch.isnan(before).any() or torch.isnan(after).any():
        raise KSLError("embedding rows contain NaN", "check the tuning run that produced them")
    before, after = before.detach(), after.detach()
    if algorithm == "auto":
        algorithm = "keys" if before.is_cuda else "merge"
    chunk_rows = chunk_rows or max(1, (1 << 19) // before.shape[1])   # ~2 MB of float32 per sample
    if algorithm == "keys":
        k = torch.cat([_k_keys(before[s:s + chunk_rows], after[s:s + chunk_rows])
                       for s in range(0, len(before), chunk_rows)])
        return k, (before != after).any(1)
    b = before.float().cpu().numpy()
    a = after.float().cpu().numpy()
    out = np.empty(len(b), dtype=np.int32)
    changed = np.empty(len(b), dtype=bool)

    def work(s):
        _k_merge(b[s:s + chunk_rows], a[s:s + chunk_rows], out[s:s + chunk_rows])
        np.any(b[s:s + chunk_rows] != a[s:s + chunk_rows], axis=1, out=changed[s:s + chunk_rows])

    # numpy's sort and the compiled merge release the GIL: one chunk per core keeps every core busy.
    with ThreadPoolExecutor(threads or torch.get_num_threads()) as pool:
        list(pool.map(work, range(0, len(b), chunk_rows)))
    # A real +inf is indistinguishable from the merge's +inf sentinel: such rows take the keys path.
    inf_rows = np.flatnonzero(np.isposinf(b).any(1) | np.isposinf(a).any(1))
    if len(inf_rows):
        rows = torch.from_numpy(inf_rows)
        out[inf_rows] = _k_keys(before[rows].float().cpu(), after[rows].float().cpu()).numpy()
    return torch.from_numpy(out), torch.from_numpy(changed)


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


def critical_statistic(d: int, alpha: float, method: str = "auto") -> float:
    """The smallest D = k/d whose two-sample p-value (two rows of d coordinates) is below ``alpha``: a row
    whose D stays under it is not significant at ``alpha`` even before any multiple-testing correction."""
    for k in range(1, d + 1):   # p falls with k: the first k below alpha is the critical one
        if _pvalue(d, k, method) < alpha:
            return k / d
    return float("inf")


def ks_test(before: torch.Tensor, after: torch.Tensor, method: str = "auto", chunk_rows: int | None = None,
            algorithm: str = "auto") -> KSResult:
    """D and p for every row, identical to ``scipy.stats.ks_2samp(before[j], after[j], method=method)``."""
    d = before.shape[1] if before.dim() == 2 else 0
    k, changed = ks_counts(before, after, chunk_rows, algorithm=algorithm)
    k, changed = k.cpu(), changed.cpu()
    table = pvalue_table(d, k.numpy(), method)
    lookup = np.ones(d + 1)
    for kk, p in table.items():
        lookup[kk] = p
    p = torch.from_numpy(lookup[k.numpy()])
    return KSResult(statistic=k.double() / d, pvalue=p, k=k, changed=changed, d=d, method=method)
