"""The gradient estimators against analytic gradients and hand formulas; and the check_vae_loss self-check."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import exercises
from course_utils.estimators import pathwise_gradient, score_function_gradient

N = 200_000

# f, and the analytic d/dmu, d/dsigma of E_{z ~ N(mu, sigma^2)}[f(z)] as functions of (mu, sigma)
CASES = {
    "z^2": (lambda z: z ** 2, lambda m, s: 2 * m, lambda m, s: 2 * s),  # E = mu^2 + sigma^2
    "z": (lambda z: z, lambda m, s: 1.0, lambda m, s: 0.0),             # E = mu
    # E[sin z] = sin(mu) exp(-sigma^2 / 2), the imaginary part of the characteristic function at 1
    "sin": (torch.sin, lambda m, s: math.cos(m) * math.exp(-s * s / 2),
            lambda m, s: -s * math.sin(m) * math.exp(-s * s / 2)),
}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_mean_close(samples, expected, num_se=5.0):
    """The sample mean is within num_se standard errors (plus a float32 floor) of the expected value."""
    se = samples.double().std().item() / math.sqrt(len(samples))
    assert abs(samples.double().mean().item() - expected) <= num_se * se + 1e-4, (samples.mean().item(), expected)


@pytest.mark.parametrize("estimator", [pathwise_gradient, score_function_gradient])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mu, sigma", [(0.7, 1.3), (-2.0, 0.4)])
def test_means_converge_to_the_analytic_gradient(estimator, name, mu, sigma):
    f, d_mu, d_sigma = CASES[name]
    est = estimator(f, mu, sigma, N, generator=gen(1))
    assert est.d_mu.shape == est.d_sigma.shape == (N,)
    assert_mean_close(est.d_mu, d_mu(mu, sigma))
    assert_mean_close(est.d_sigma, d_sigma(mu, sigma))


@pytest.mark.parametrize("name", list(CASES))
def test_score_function_spreads_more(name):
    f = CASES[name][0]
    path = pathwise_gradient(f, 1.0, 0.5, 20_000, generator=gen(2))
    score = score_function_gradient(f, 1.0, 0.5, 20_000, generator=gen(2))
    assert score.d_mu.var() > 2 * path.d_mu.var()
    assert score.d_sigma.var() > 2 * path.d_sigma.var()


def test_per_sample_values_by_hand():
    mu, sigma, n = 0.5, 2.0, 10
    eps = torch.randn(n, generator=gen(3))  # the estimators draw eps exactly like this
    z = mu + sigma * eps
    path = pathwise_gradient(lambda z: z ** 2, mu, sigma, n, generator=gen(3))
    torch.testing.assert_close(path.d_mu, 2 * z)            # f'(z)
    torch.testing.assert_close(path.d_sigma, 2 * z * eps)   # f'(z) * dz/dsigma
    score = score_function_gradient(lambda z: z ** 2, mu, sigma, n, generator=gen(3))
    torch.testing.assert_close(score.d_mu, z ** 2 * (z - mu) / sigma ** 2)                             # f * (z-mu)/s^2
    torch.testing.assert_close(score.d_sigma, z ** 2 * ((z - mu) ** 2 / sigma ** 3 - 1 / sigma))       # f * dlogq/ds


def test_pathwise_of_a_linear_function_has_no_spread():
    est = pathwise_gradient(lambda z: 3 * z, -1.0, 2.0, 1000, generator=gen(4))
    assert torch.all(est.d_mu == 3.0)  # f'(z) = 3 for every sample


def test_score_function_takes_a_black_box():
    step = lambda z: (z > 0).float()  # noqa: E731  E[step] = Phi(mu / sigma): d/dmu = pdf(mu / sigma) / sigma
    mu, sigma = 0.3, 1.5
    est = score_function_gradient(step, mu, sigma, N, generator=gen(5))
    pdf = math.exp(-0.5 * (mu / sigma) ** 2) / math.sqrt(2 * math.pi)
    assert_mean_close(est.d_mu, pdf / sigma)
    with pytest.raises(ValueError, match="score_function_gradient"):
        pathwise_gradient(step, mu, sigma, 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": -1.0}, "sigma"),
    ({"num_samples": 0}, "num_samples"),
    ({"num_samples": 2.5}, "num_samples"),
    ({"f": lambda z: z.sum()}, "same shape"),
    ({"f": lambda z: 1.0}, "same shape"),
    ({"mu": torch.zeros(3), "sigma": torch.ones(2)}, "same length"),
    ({"mu": torch.zeros(2, 2), "sigma": torch.ones(2, 2)}, "1-D"),
    ({"mu": torch.zeros(3), "sigma": torch.tensor([1.0, 0.0, 1.0])}, "sigma"),
    ({"mu": torch.zeros(3), "sigma": torch.ones(3), "f": lambda z: z ** 2}, "one value each"),
])
@pytest.mark.parametrize("estimator", [pathwise_gradient, score_function_gradient])
def test_bad_input_is_explained(estimator, kwargs, match):
    args = {"f": lambda z: z ** 2, "mu": 0.0, "sigma": 1.0, "num_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        estimator(**args)


def test_bad_baseline_is_explained():
    for baseline, match in (("median", "baseline"), (torch.tensor(1.0), "baseline"), (True, "baseline")):
        with pytest.raises(ValueError, match=match):
            score_function_gradient(lambda z: z ** 2, 0.0, 1.0, 10, baseline=baseline)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        score_function_gradient(lambda z: z ** 2, 0.0, 1.0, 1, baseline="mean")


# d dimensions: f(z) = sum of z_k^2 has E = |mu|^2 + |sigma|^2, so the exact gradient is 2 mu and 2 sigma
def sum_of_squares(z):
    return (z ** 2).sum(dim=1)


MU_D = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5])
SIGMA_D = torch.tensor([1.0, 0.3, 0.7, 2.0, 0.5])


@pytest.mark.parametrize("estimator, kwargs", [(pathwise_gradient, {}), (score_function_gradient, {}),
                                               (score_function_gradient, {"baseline": "mean"}),
                                               (score_function_gradient, {"baseline": 12.0})])
def test_d_dimensional_means_converge_to_the_closed_form(estimator, kwargs):
    est = estimator(sum_of_squares, MU_D, SIGMA_D, N, generator=gen(6), **kwargs)
    assert est.d_mu.shape == est.d_sigma.shape == (N, 5)
    for k in range(5):
        assert_mean_close(est.d_mu[:, k], 2 * MU_D[k].item())
        assert_mean_close(est.d_sigma[:, k], 2 * SIGMA_D[k].item())


def test_d_dimensional_per_sample_values_by_hand():
    n, d = 6, 3
    mu, sigma = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 0.5, 2.0])
    eps = torch.randn(n, d, generator=gen(7))  # the estimators draw eps exactly like this
    z = mu + sigma * eps                        # (n, d)
    f_z = (z ** 2).sum(dim=1, keepdim=True)     # (n, 1)
    path = pathwise_gradient(sum_of_squares, mu, sigma, n, generator=gen(7))
    torch.testing.assert_close(path.d_mu, 2 * z)
    torch.testing.assert_close(path.d_sigma, 2 * z * eps)
    b = (f_z.sum() - f_z) / (n - 1)             # leave-one-out mean
    score = score_function_gradient(sum_of_squares, mu, sigma, n, generator=gen(7), baseline="mean")
    torch.testing.assert_close(score.d_mu, (f_z - b) * (z - mu) / sigma ** 2)
    torch.testing.assert_close(score.d_sigma, (f_z - b) * ((z - mu) ** 2 / sigma ** 3 - 1 / sigma))


def test_baseline_keeps_the_mean_and_cuts_the_spread():
    mu, sigma = torch.full((4,), 1.0), torch.full((4,), 0.5)
    plain = score_function_gradient(sum_of_squares, mu, sigma, N, generator=gen(8))
    loo = score_function_gradient(sum_of_squares, mu, sigma, N, generator=gen(8), baseline="mean")
    const = score_function_gradient(sum_of_squares, mu, sigma, N, generator=gen(8), baseline=5.0)  # E f = 5
    for est in (plain, loo, const):
        for k in range(4):
            assert_mean_close(est.d_mu[:, k], 2.0)
            assert_mean_close(est.d_sigma[:, k], 1.0)
    # exact variances of d/dmu_k for mu = 1, sigma = 1/2 in d dimensions (moments of eps up to the sixth):
    # no baseline 6.25 d^2 + 9.5 d + 6 (144 at d = 4); baseline E[f]: 4.5 (d - 1) + 10.5 (24 at d = 4)
    assert plain.d_mu.var(dim=0).mean() > 4 * loo.d_mu.var(dim=0).mean()
    assert const.d_mu.var(dim=0).mean().item() == pytest.approx(24.0, rel=0.05)
    assert loo.d_mu.var(dim=0).mean().item() == pytest.approx(24.0, rel=0.05)
    assert plain.d_mu.var(dim=0).mean().item() == pytest.approx(144.0, rel=0.05)


def test_score_function_spread_grows_with_d_while_pathwise_stays_flat():
    variance = {}
    for d in (1, 5, 20):
        mu, sigma = torch.ones(d), torch.full((d,), 0.5)
        path = pathwise_gradient(sum_of_squares, mu, sigma, 20_000, generator=gen(9))
        plain = score_function_gradient(sum_of_squares, mu, sigma, 20_000, generator=gen(9))
        loo = score_function_gradient(sum_of_squares, mu, sigma, 20_000, generator=gen(9), baseline="mean")
        variance[d] = [est.d_mu.var(dim=0).mean().item() for est in (path, plain, loo)]
    for d in (1, 5, 20):  # pathwise: Var(2 z_k) = 4 sigma^2 = 1 in every dimension
        assert variance[d][0] == pytest.approx(1.0, rel=0.1)
    assert variance[20][1] > 50 * variance[1][1]  # REINFORCE: like d^2 (exactly 21.75 at d = 1, 2,696 at d = 20)
    assert variance[20][2] > 5 * variance[1][2]   # with a baseline: like d (exactly 10.5 at d = 1, 96 at d = 20)
    assert variance[20][1] > 10 * variance[20][2] > 10 * variance[20][0]


# check_vae_loss, against a hand-written right answer and the usual mistakes
def right_vae_loss(x_hat, x, mu, logvar):
    bce = F.binary_cross_entropy(x_hat.flatten(1), x.flatten(1), reduction="none").sum(1)
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    return (bce + kl).mean()


def test_check_vae_loss_passes_the_right_answer(capsys):
    assert exercises.check_vae_loss(right_vae_loss) is None  # a check prints its verdict and returns nothing
    assert exercises.last_verdict.passed
    assert capsys.readouterr().out.startswith("PASS")


def test_check_vae_loss_catches_the_usual_mistakes(capsys):
    def article(x_hat, x, mu, logvar):  # BCE mean over batch and pixels, KLD / (B * 784)
        bce = F.binary_cross_entropy(x_hat.flatten(1), x.flatten(1))
        return bce - 0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / (len(x) * 784)

    wrong = {
        "per-pixel scale": article,
        "summed over the batch": lambda *a: right_vae_loss(*a) * len(a[0]),
        "per image, no mean": lambda x_hat, x, mu, lv: right_vae_loss(x_hat, x, mu, lv).expand(len(x)),
        "KL sign flipped": lambda x_hat, x, mu, lv: 2 * right_vae_loss(x_hat, x, torch.zeros_like(mu),
                                                                      torch.zeros_like(lv)) - right_vae_loss(
            x_hat, x, mu, lv),
        "starter": lambda *a: None,
        "crashes": lambda x_hat, x, mu, lv: mu @ x,
    }
    for name, fn in wrong.items():  # the exact wording of each hint is tested with the checks themselves
        exercises.check_vae_loss(fn)
        out = capsys.readouterr().out
        assert out.startswith("NOT YET") and "PASS" not in out, (name, out)
