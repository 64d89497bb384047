import numpy as np
import pytest
import torch
from scipy.stats import binomtest, norm

from kslottery import certify, models


@pytest.mark.parametrize("k,n,alpha", [(0, 10, 0.05), (3, 10, 0.05), (10, 10, 0.01), (480, 500, 0.001), (250, 500, 0.1)])
def test_clopper_pearson_matches_scipy(k, n, alpha):
    low, high = certify.clopper_pearson(k, n, alpha)
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    assert low == pytest.approx(ci.low, abs=1e-12) and high == pytest.approx(ci.high, abs=1e-12)


def test_toy_linear_classifier_radius_is_the_distance_to_the_boundary():
    """f(z) = [w.z + b > 0] smoothed with N(0, s^2 I): pA = Phi(dist / s), so R = s PhiInv(pA) = dist."""
    w, b, sigma = torch.tensor([3.0, -4.0]), 0.5, 1.0
    z0 = torch.tensor([[1.0, -0.5]])                        # one position, two dimensions
    dist = float((w @ z0[0] + b).abs() / w.norm())           # = 1.1

    def classify(noisy):                                     # (batch, 1, 2) -> (batch, 1)
        return (noisy @ w + b > 0).long()

    cert = certify.certify(classify, z0, vocab=2, sigma=sigma, n0=100, n=20000, alpha=0.001, batch=5000)
    assert cert.prediction[0] == 1 and not cert.abstain[0]
    assert cert.radius[0] < dist                             # sound: a lower bound
    assert cert.radius[0] > dist - 0.1                       # and tight with 20,000 samples
    expected_low = certify.lower_confidence_bound(norm.cdf(dist / sigma) * 20000, 20000, 0.001)
    assert cert.radius[0] == pytest.approx(sigma * norm.ppf(expected_low), abs=0.05)


def test_abstains_on_a_coin_flip():
    cert = certify.certify(lambda noisy: (noisy[..., 0] > 0).long(), torch.zeros(1, 1), vocab=2, sigma=1.0,
                           n0=50, n=500, alpha=0.001)
    assert cert.abstain[0] and cert.radius[0] == 0 and cert.prediction[0] == -1


def test_agreement_is_total_when_the_ticket_holds_every_changed_row():
    lm = models.load("tiny:smollm2-135m", untie_head=True, progress=False)
    ids = torch.tensor(lm.tokenizer("English: Good night.\nCatalan: Bona nit.")["input_ids"])
    base = lm.model.get_input_embeddings().weight.detach().clone()
    tuned = base.clone()
    tuned[ids[:5]] += 0.01                                     # the rows "tuning" moved
    partial = base.clone()
    partial[ids[:5]] = tuned[ids[:5]]                          # a ticket with every changed row
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.copy_(tuned)
    cert = certify.certify_sequence(lm.model, ids, sigma=0.01, n0=8, n=64, alpha=0.01, batch=32)
    norms = certify.perturbation_norms(ids, tuned, partial)
    assert np.all(norms == 0)
    agree = certify.certified_agreement(cert, norms)
    assert np.array_equal(agree, ~cert.abstain) and agree.any()
    other = models.load("tiny:smollm2-135m", untie_head=True, progress=False)
    with torch.no_grad():
        other.model.get_input_embeddings().weight.copy_(partial)
    assert certify.empirical_agreement(lm.model, other.model, ids).all()
    # Leaving a changed row out of the ticket opens a gap from its first occurrence on.
    partial[ids[0]] = base[ids[0]]
    gap = certify.perturbation_norms(ids, tuned, partial)
    assert gap[0] > 0 and np.all(np.diff(gap) >= 0)


def test_certification_run_resumes_after_an_interruption(tmp_path, monkeypatch):
    from kslottery import certification, study

    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    tuned = study.tune_embed("tiny:smollm2-135m", "eng_Latn-cat_Latn", 16, 0.01, 1.0, 4, progress=False)
    real, calls = certify.certify_sequence, []

    def interrupted_at_the_second_noise_level(*a, **k):
        calls.append(a[2])
        if a[2] == 0.1:
            raise KeyboardInterrupt
        return real(*a, **k)

    kw = dict(sizes=[1], random_draws=1, sigmas=[0.01, 0.1], n0=4, n=8, alpha=0.01, sentences=2, progress=False)
    monkeypatch.setattr(certify, "certify_sequence", interrupted_at_the_second_noise_level)
    with pytest.raises(KeyboardInterrupt):
        certification.measure(tuned["path"], **kw)
    partial = next(tmp_path.glob("cert-*.partial"))
    assert (partial / "certs-sigma0.01.pt").exists() and not list(tmp_path.glob("cert-*[!l]"))
    calls.clear()
    monkeypatch.setattr(certify, "certify_sequence", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    table = certification.measure(tuned["path"], **kw)
    assert set(calls) == {0.1}                       # the first noise level came from the checkpoint
    assert sorted(table["sigma"].unique()) == [0.01, 0.1]
    assert (table["certified_agreement"] <= table["below_ceiling"]).all()   # never more than the ceiling allows


@pytest.mark.parametrize("n,alpha,sigma", [(64, 0.01, 1.0), (64, 0.01, 0.1), (200, 0.001, 0.5), (1000, 0.01, 0.03)])
def test_max_radius_is_what_certify_returns_when_every_sample_agrees(n, alpha, sigma):
    """A linear classifier 100 sigma from its boundary: every noisy prediction agrees, and CERTIFY's radius
    is the ceiling that max_radius computed before any sampling."""
    w = torch.tensor([1.0, 0.0])
    z0 = torch.tensor([[100.0 * sigma, 0.0]])
    cert = certify.certify(lambda noisy: (noisy @ w > 0).long(), z0, vocab=2, sigma=sigma, n0=16, n=n, alpha=alpha)
    assert not cert.abstain[0] and cert.radius[0] == pytest.approx(certify.max_radius(n, alpha, sigma), rel=1e-9)
    assert certify.max_radius(64, 0.01) == pytest.approx(1.4801, abs=1e-4)   # the first chapter's ceiling


@pytest.mark.parametrize("radius,alpha,sigma", [(1.0, 0.01, 0.5), (1.2, 0.01, 0.3), (0.15, 0.001, 0.1),
                                                (0.01, 0.01, 0.003), (2.0, 0.05, 1.0)])
def test_min_samples_agrees_with_a_brute_force_search(radius, alpha, sigma):
    def certifiable(n):   # CERTIFY's own formula with all n samples agreeing
        p_low = certify.lower_confidence_bound(n, n, alpha)
        return sigma * norm.ppf(p_low) > radius

    n = certify.min_samples(radius, alpha, sigma)
    assert certifiable(n) and not certifiable(n - 1)


def test_no_perturbation_at_the_ceiling_is_ever_certified():
    """Whatever the model does, norms >= max_radius(n) are never certified; just below it they can be."""
    n, alpha, sigma = 64, 0.01, 0.1
    z0 = torch.zeros(5, 2) + torch.tensor([10.0, 0.0])
    cert = certify.certify(lambda noisy: (noisy[..., 0] > 0).long(), z0, vocab=2, sigma=sigma, n=n, alpha=alpha)
    ceiling = certify.max_radius(n, alpha, sigma)
    norms = ceiling * np.array([0.5, 0.999, 1.0, 1.001, 2.0])
    assert certify.certified_agreement(cert, norms).tolist() == [True, True, False, False, False]


def test_partial_tuning_is_certified_as_the_papers_object(tmp_path, monkeypatch):
    """With partial_lr each ticket is also trained alone; its perturbation covers the ticket rows too, so it
    is never smaller than partial transfer's on the same contexts, and never certified past the ceiling."""
    from kslottery import certification, study

    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    tuned = study.tune_embed("tiny:smollm2-135m", "eng_Latn-cat_Latn", 16, 0.01, 1.0, 4, progress=False)
    table = certification.measure(tuned["path"], sizes=[4], random_draws=1, sigmas=[0.01], n0=4, n=8, alpha=0.01,
                                  sentences=2, partial_lr=0.01, progress=False)
    assert {"KS tuned", "random tuned"} <= set(table["kind"])
    by = table.set_index("ticket")
    assert by.loc["KS top-4 tuned", "median_perturbation"] >= by.loc["KS top-4", "median_perturbation"]
    assert (table["certified_agreement"] <= table["below_ceiling"]).all()
    assert len(list(tmp_path.glob("tune-*"))) == 3   # the embedding run and one rows run per ticket
