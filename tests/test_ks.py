import warnings

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from kslottery.method import ks
from kslottery.method.errors import KSLError


def scipy_rows(before, after, method="auto"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = [ks_2samp(b, a, method=method) for b, a in zip(before.double().numpy(), after.double().numpy())]
    return np.array([r.statistic for r in res]), np.array([r.pvalue for r in res])


def with_ties(rows, d, seed):
    g = torch.Generator().manual_seed(seed)
    before = torch.randn(rows, d, generator=g)
    after = before + 0.05 * torch.randn(rows, d, generator=g)
    after[:, : d // 4] = before[:, : d // 4]                       # shared values: ties across samples
    before[:, d // 2: d // 2 + 5] = 0.25                            # ties inside a sample
    after[:, d // 2 + 2: d // 2 + 8] = 0.25
    before[::5, :3], after[::5, :3] = -0.0, 0.0                     # signed zeros are equal values
    after[3] = before[3]                                            # an unchanged row
    after[7] = before[7] + 100.0                                    # a fully shifted row
    return before, after


@pytest.mark.parametrize("rows,d,method", [(60, 64, "auto"), (40, 640, "auto"), (40, 640, "asymp"),
                                           (30, 640, "exact"), (12, 4096, "auto")])
def test_matches_scipy_row_by_row(rows, d, method):
    before, after = with_ties(rows, d, seed=d)
    res = ks.ks_test(before, after, method=method, chunk_rows=7)
    D, p = scipy_rows(before, after, method)
    assert np.abs(res.statistic.numpy() - D).max() <= 1e-12
    assert np.abs(res.pvalue.numpy() - p).max() <= 1e-12
    assert not res.changed[3] and res.changed[7] and res.statistic[7] == 1.0 and res.pvalue[3] == 1.0


def test_matches_scipy_on_real_embedding_rows(tiny):
    from kslottery.method import models
    real = models.load("smollm2-135m", progress=False).model.get_input_embeddings().weight.detach()
    before = real[1000:1100]
    g = torch.Generator().manual_seed(0)
    after = before + 2e-3 * torch.randn(before.shape, generator=g) * (torch.rand(before.shape, generator=g) < 0.3)
    res = ks.ks_test(before, after)
    D, p = scipy_rows(before, after)
    assert np.abs(res.statistic.numpy() - D).max() <= 1e-12 and np.abs(res.pvalue.numpy() - p).max() <= 1e-12
    assert res.d == 576 and 0 < res.statistic.max() < 1


@pytest.mark.parametrize("d", [64, 640])
def test_cpu_merge_and_device_keys_algorithms_agree(d):
    before, after = with_ties(50, d, seed=7)
    merge = ks.ks_counts(before, after, algorithm="merge")
    keys = ks.ks_counts(before, after, algorithm="keys")
    assert torch.equal(merge[0], keys[0].to(merge[0].dtype)) and torch.equal(merge[1], keys[1])


def test_bf16_rows_are_exact_in_float32():
    before, after = with_ties(20, 128, seed=1)
    b16, a16 = before.bfloat16(), after.bfloat16()
    res = ks.ks_test(b16, a16)
    D, _ = scipy_rows(b16.float(), a16.float())
    assert np.abs(res.statistic.numpy() - D).max() <= 1e-12


def test_bad_inputs():
    with pytest.raises(KSLError, match="must be equal 2-D shapes"):
        ks.ks_test(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(KSLError, match="NaN"):
        ks.ks_test(torch.zeros(2, 4), torch.full((2, 4), float("nan")))
    with pytest.raises(KSLError, match="unknown KS p-value method 'fast'"):
        ks.ks_test(torch.zeros(2, 4), torch.ones(2, 4), method="fast")
    with pytest.raises(KSLError, match="cast both matrices to float32"):
        ks.ks_test(torch.zeros(2, 4, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))


INF = float("inf")


@pytest.mark.parametrize("algorithm", ["merge", "keys"])
@pytest.mark.parametrize("x,y", [
    ([0, 1, 2, 3], [0, 1, 2, INF]),          # +inf once collided with the merge's sentinel (D 0.5 instead of 0.25)
    ([0, 1, 2, 3], [-INF, 1, 2, 3]),
    ([INF, 1, 2, 3], [0, INF, 2, INF]),
    ([-INF, INF, 2, 3], [INF, -INF, 2, 3]),
    ([INF, INF, INF, INF], [0, 1, 2, 3]),
])
def test_infinite_values_match_scipy(algorithm, x, y):
    # A finite row beside the infinite one: the merge path must route only the latter elsewhere.
    res = ks.ks_test(torch.tensor([x, [0, 1, 2, 3]], dtype=torch.float32),
                  torch.tensor([y, [1, 2, 3, 4]], dtype=torch.float32), algorithm=algorithm)
    for row, (a, b) in enumerate([(x, y), ([0, 1, 2, 3], [1, 2, 3, 4])]):
        ref = ks_2samp(a, b)
        assert float(res.statistic[row]) == ref.statistic and float(res.pvalue[row]) == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("d,alpha,k", [(640, 0.05, 49), (640, 0.1, 44), (64, 0.05, 16)])
def test_critical_statistic_is_the_first_d_scipy_calls_significant(d, alpha, k):
    from scipy.stats import ks_2samp

    from kslottery.method.ks import critical_statistic

    assert critical_statistic(d, alpha) == k / d
    x = np.arange(d, dtype=float)
    assert ks_2samp(x, x + k).pvalue < alpha <= ks_2samp(x, x + k - 1).pvalue


@pytest.mark.parametrize("saved", ["k_and_changed", "statistic_only"])
def test_a_result_saved_at_its_changed_rows_is_the_whole_test_again(saved):
    # Row 3 moved by a permutation (D = 0 yet changed): only a run that saved `changed` can say so.
    torch.manual_seed(0)
    before = torch.randn(6, 16)
    after = before.clone()
    after[1] += 0.5
    after[4, :8] -= 1.0
    after[3] = before[3].flip(0)
    full = ks.ks_test(before, after)
    ids = torch.nonzero(full.changed).flatten()
    parts = {"statistic": full.statistic[ids], "pvalue": full.pvalue[ids]}
    if saved == "k_and_changed":
        parts |= {"k": full.k[ids], "changed": full.changed[ids]}
    back = ks.KSResult.at_rows(ids, 6, 16, full.method, **parts)
    assert ids.tolist() == [1, 3, 4]
    assert torch.equal(back.statistic, full.statistic) and torch.equal(back.pvalue, full.pvalue)
    assert torch.equal(back.k, full.k.to(torch.int32))
    assert back.changed.tolist() == [False, True, False, saved == "k_and_changed", True, False]
