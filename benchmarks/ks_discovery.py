"""KS discovery over a whole embedding matrix: kslottery.method.ks against scipy.stats.ks_2samp row by row.

    python benchmarks/ks_discovery.py [--scipy-rows 1000]

Both run in this process on the same matrices (every row changed: the worst case). scipy is timed on
a random sample of rows and its per-row time scaled to the matrix (a full loop at Gemma size takes
~15 minutes); D and p of our result are compared with scipy's on that sample.
"""

import argparse
import time
import warnings

import numpy as np
import torch
from common import machine, peak_gib, reset_peak, save
from scipy.stats import ks_2samp

from kslottery.method.ks import ks_test

SHAPES = {"gemma3-270m": (262144, 640), "llama-7b": (32000, 4096)}


def matrices(rows, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    before = 0.02 * torch.randn(rows, d, generator=g)
    step = 1e-4 * torch.randn(rows, d, generator=g)
    step[torch.rand(rows, d, generator=g) < 0.3] = 0   # many coordinates unchanged: ties across samples
    return before, before + step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scipy-rows", type=int, default=1000, help="rows in the scipy sample")
    ap.add_argument("--only", choices=list(SHAPES), help="one shape only")
    args = ap.parse_args()
    out = {"machine": machine(), "results": {}}
    ks_test(*matrices(64, 64))   # compile the merge kernel (numba) once, outside the timings
    for name, (rows, d) in SHAPES.items():
        if args.only and name != args.only:
            continue
        before, after = matrices(rows, d)
        reset_peak()
        t = time.perf_counter()
        res = ks_test(before, after)
        ours = time.perf_counter() - t
        mem = peak_gib()
        sample = np.random.default_rng(0).choice(rows, size=min(args.scipy_rows, rows), replace=False)
        b, a = before.double().numpy(), after.double().numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t = time.perf_counter()
            ref = [ks_2samp(b[i], a[i]) for i in sample]
            per_row = (time.perf_counter() - t) / len(sample)
        dD = float(np.abs(np.array([r.statistic for r in ref]) - res.statistic.numpy()[sample]).max())
        dp = float(np.abs(np.array([r.pvalue for r in ref]) - res.pvalue.numpy()[sample]).max())
        out["results"][name] = {"rows": rows, "d": d, "kslottery_s": round(ours, 3), **mem,
                                "scipy_per_row_ms": round(per_row * 1e3, 4),
                                "scipy_full_s_estimated": round(per_row * rows, 1),
                                "speedup": round(per_row * rows / ours, 1), "scipy_rows_checked": len(sample),
                                "max_abs_diff_D": dD, "max_abs_diff_p": dp}
        print(name, out["results"][name], flush=True)
    print("saved", save("ks_discovery", out))


if __name__ == "__main__":
    main()
