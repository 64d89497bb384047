import numpy as np
import pytest
import torch
from scipy.stats import binomtest, norm

from kslottery.method import certify, models


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


SMOKE = dict(train_limit=16, batch_size=4, lr=0.02, steps=2, seeds=[0, 1], sentences=2, positions=3, sigmas=[0.01],
             cover=0.5, n0=4, n=16, cert_alpha=0.01, rule="bonferroni", progress=False)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """One certification run, interrupted at its second certificate and then resumed: both tests below read it,
    so the run is computed once."""
    from kslottery.study import certification

    mp, root = pytest.MonkeyPatch(), tmp_path_factory.mktemp("cert-runs")
    mp.setenv("KSL_RUNS", str(root))
    real, calls = certify.certify_sequence, []

    def interrupted_at_the_second_seed(model, ids, sigma, *a, **k):
        calls.append(sigma)
        if len(calls) > 2:          # two sentences of the first (seed, noise level) job, then stop
            raise KeyboardInterrupt
        return real(model, ids, sigma, *a, **k)

    mp.setattr(certify, "certify_sequence", interrupted_at_the_second_seed)
    with pytest.raises(KeyboardInterrupt):
        certification.experiment("tiny:smollm2-135m", "eng_Latn-cat_Latn", **SMOKE)
    partial = next(root.glob("cert-*.partial"))
    left = {"contexts": (partial / "contexts.json").exists(), "first job": (partial / "certs-seed0-sigma0.01.json").exists(),
            "finished": [p.name for p in root.glob("cert-*") if not p.name.endswith(".partial")]}
    calls.clear()
    mp.setattr(certify, "certify_sequence", lambda m, i, s, *a, **k: (calls.append(s), real(m, i, s, *a, **k))[1])
    r = certification.experiment("tiny:smollm2-135m", "eng_Latn-cat_Latn", **SMOKE)
    yield {"left": left, "calls": list(calls), "result": r, "root": root}
    mp.undo()


def test_certification_run_resumes_after_an_interruption(resumed):
    assert resumed["left"] == {"contexts": True, "first job": True, "finished": []}
    # 3 jobs left (seed 0 at the covering level, seed 1 at both), 2 sentences each: the first came from its file
    calls, r = resumed["calls"], resumed["result"]
    assert len(calls) == 6 and calls.count(0.01) == 2
    assert sorted(r["table"]["sigma"].unique()) == r["sigmas"] and len(r["sigmas"]) == 2


def test_partial_tuning_leaves_at_least_the_perturbation_of_partial_transfer(resumed):
    """E' - E_PT covers the rows off the ticket (as transfer's E' - E_T does) plus the ticket rows, trained
    differently: at every context its norm is at least transfer's, for the KS and the random ticket alike."""
    r = resumed["result"]
    c = r["contexts"].pivot_table(index=["seed", "sentence", "position"], columns="object", values="norm")
    for tuned, pasted in (("Adam ticket", "partial transfer, Adam ticket"), ("random rows", "partial transfer, random rows")):
        assert (c[tuned] >= c[pasted] - 1e-6).all()
    # (two Adam steps move a ticket row almost by lr * sign(gradient) alone or with the rest: equality is allowed)
    sizes = r["objects"].groupby("seed")["size"].nunique()
    assert (sizes == 1).all()                      # every control has its seed's ticket size
    t = r["table"]
    assert (t["certified"] <= t["below_ceiling"]).all() and (t["radius"] <= t["ceiling"] + 1e-9).all()
    assert len(list(resumed["root"].glob("tune-*"))) == 2 * 5   # per seed: the embedding run and four rows runs


@pytest.mark.parametrize("norm_q,n,alpha,expected", [(1.0, 64, 0.01, 0.68), (3.133, 64, 0.01, 2.2),
                                                     (0.05, 1000, 0.001, 0.021), (10.0, 16, 0.05, 11.0)])
def test_noise_level_is_the_smallest_two_digit_level_whose_ceiling_covers(norm_q, n, alpha, expected):
    sigma = certification_noise_level(np.array([norm_q]), 0.5, n, alpha)
    assert sigma == pytest.approx(expected)
    assert certify.max_radius(n, alpha, sigma) >= norm_q
    step = 10 ** (np.floor(np.log10(sigma)) - 1)
    assert certify.max_radius(n, alpha, sigma - step) < norm_q


def certification_noise_level(*a):
    from kslottery.study import certification
    return certification.noise_level(*a)


def test_rate_interval_resamples_sentences_not_contexts():
    """Ten sentences of ten contexts, all-or-nothing per sentence: the interval is as wide as ten coin flips,
    not a hundred; independent contexts with the same mean give a narrower one."""
    import pandas as pd

    from kslottery.study.certification import rate_interval

    rng = np.random.default_rng(0)
    fate = np.repeat([1, 0, 1, 1, 0, 0, 1, 0, 1, 0], 10)
    clustered = pd.DataFrame({"seed": 0, "sentence": np.repeat(range(10), 10), "certified": fate})
    loose = clustered.assign(certified=rng.permutation(fate))
    mean, low, high = rate_interval(clustered, "certified")
    assert mean == 0.5 and low <= 0.2 and high >= 0.8
    _, llow, lhigh = rate_interval(loose, "certified")
    assert lhigh - llow < (high - low) / 2
    assert rate_interval(clustered.assign(certified=1), "certified") == (1.0, 1.0, 1.0)


def test_scaled_perturbations_are_certified_less_and_never_past_the_ceiling():
    import pandas as pd

    from kslottery.study.certification import scaled

    t = pd.DataFrame({"object": "x", "sigma": 1.0, "norm": [0.1, 0.5, 1.0, 0.0], "radius": [1.2, 1.2, 0.0, 0.3],
                      "abstain": [False, False, True, False], "ceiling": 1.48})
    s = scaled(t, factors=(0.0, 1.0, 3.0, 20.0)).set_index("factor")
    assert s["certified"].tolist() == [0.75, 0.75, 0.5, 0.25]   # the zero perturbation stays certified
    assert s["past the ceiling"].tolist() == [0.0, 0.0, 0.5, 0.75]
