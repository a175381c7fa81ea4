"""The likelihood bounds against independent references: brute-force integration over z, and the losses' ELBO."""
import math

import matplotlib
import pytest
import torch
from torch.distributions import Normal

from course_utils import exercises
from course_utils.likelihood import CODES_AT_ONCE, elbo_terms, iwae_bound, log_weights
from course_utils.losses import kl_divergence, reconstruction_loss
from course_utils.models import VAE, Autoencoder, ConditionalVAE, ConvVAE
from course_utils.plot import plot_bounds, plot_rate_distortion

matplotlib.use("Agg")


def tiny(model_cls, latent_dim, seed=0, **kwargs):
    """A small float64 model: its last decoder layer damped, so that p(z | x) is broad and smooth in z, and its
    encoder's mean shifted by 0.5, so that q(z | x) is clearly not that posterior (the bound has a gap to close)."""
    torch.manual_seed(seed)
    model = model_cls(latent_dim=latent_dim, **kwargs).double()
    last, mu_head = (model.decoder[-2], model.fc_mu) if isinstance(model, ConvVAE) else (model.fc4, model.fc21)
    with torch.no_grad():
        last.weight.mul_(0.2)
        mu_head.bias.add_(0.5)
    return model.eval()


def images(n, seed=1):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def brute_force_log_px(model, x, y=None, half_width=8.0, points=801):
    """log p(x) = log of the integral of p(x | z) p(z) over a grid of z (Riemann sum): no sampling, no encoder."""
    d = model.latent_dim
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    grid = torch.cartesian_prod(*[axis] * d).view(-1, d)  # (points ** d, d)
    log_cell = d * math.log(axis[1] - axis[0])
    log_prior = (-0.5 * grid ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)  # N(0, I) density by hand
    result = []
    for b in range(len(x)):
        terms = []
        for chunk, prior in zip(grid.split(20_000), log_prior.split(20_000)):
            args = () if y is None else (y[b].repeat(len(chunk)),)
            with torch.no_grad():
                x_hat = model.decode(chunk, *args).flatten(1)  # (n, 784)
            xb = x[b].flatten()
            log_px_z = (xb * x_hat.log() + (1 - xb) * (1 - x_hat).log()).sum(1)  # Bernoulli by hand
            terms.append(log_px_z + prior)
        terms = torch.cat(terms)
        edge = terms.view(*[points] * d)
        assert max(edge.select(0, 0).max(), edge.select(0, -1).max()) < terms.max() - 30, "the grid is too narrow"
        result.append(torch.logsumexp(terms, 0) + log_cell)
    return torch.stack(result)


def mean_bound(model, x, k, repeats, y=None, seed=0):
    """The mean of L_k over repeats independent runs, per image: the expectation the theory speaks of."""
    g = torch.Generator().manual_seed(seed)
    x_rep, y_rep = x.repeat(repeats, 1, 1, 1), None if y is None else y.repeat(repeats)
    bounds = iwae_bound(model, x_rep, k, batch_size=2000, y=y_rep, generator=g)
    return bounds.view(repeats, len(x)).mean(0), bounds.view(repeats, len(x)).std(0) / math.sqrt(repeats)


CASES = [
    ("VAE, latent_dim 1", lambda: tiny(VAE, 1, hidden_dim=16), None, 801),
    ("ConvVAE, latent_dim 1", lambda: tiny(ConvVAE, 1, channels=2), None, 801),
    ("ConditionalVAE, latent_dim 2", lambda: tiny(ConditionalVAE, 2, hidden_dim=16), torch.tensor([3, 7]), 121),
]


@pytest.mark.parametrize("name, build, y, points", CASES, ids=[c[0] for c in CASES])
def test_bound_tightens_towards_brute_force_log_px(name, build, y, points):
    model = build()
    x = images(2)
    log_px = brute_force_log_px(model, x, y, points=points)
    previous = torch.full_like(log_px, -math.inf)
    for k, repeats in ((1, 3000), (5, 1000), (50, 200)):
        mean, stderr = mean_bound(model, x, k, repeats, y)
        assert (mean > previous).all(), f"{name}: E[L_{k}] should grow with k"
        assert (mean < log_px + 4 * stderr).all(), f"{name}: E[L_{k}] should stay below log p(x)"
        previous = mean
    gap_k1 = log_px - mean_bound(model, x, 1, 3000, y)[0]
    assert (gap_k1 > 0.05).all(), "the test is too easy: q should not already be the exact posterior"
    big_k = iwae_bound(model, x, k=20_000, batch_size=1, y=y, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(big_k, log_px, atol=0.03, rtol=0)  # 1 / sqrt(effective sample size)


def test_k1_expectation_is_minus_the_elbo_of_the_losses():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden_dim=32).eval()
    x = images(3).float()
    mean, stderr = mean_bound(model, x, 1, 4000)
    with torch.no_grad():  # the ELBO from course_utils.losses, its expectation over z by plain Monte Carlo
        mu, logvar = model.encode(x)
        z = Normal(mu, torch.exp(0.5 * logvar)).sample((4000,))  # (S, B, latent_dim)
        recon = reconstruction_loss(model.decode(z.flatten(0, 1)), x.repeat(4000, 1, 1, 1)).view(4000, 3)
        elbo = -(recon.mean(0) + kl_divergence(mu, logvar))
        elbo_stderr = recon.std(0) / math.sqrt(4000)
    assert ((mean - elbo).abs() < 5 * (stderr ** 2 + elbo_stderr ** 2).sqrt()).all()
    assert ((mean - elbo).abs() < 0.5).all()


def test_elbo_terms_agree_with_the_losses():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden_dim=32)
    x = images(2).float()
    terms = elbo_terms(model, x.repeat(3000, 1, 1, 1), batch_size=1000, generator=torch.Generator().manual_seed(0))
    assert model.training, "elbo_terms must give the model back in the mode it found it"
    with torch.no_grad():
        mu, logvar = model.encode(x)
        kl = kl_divergence(mu, logvar)
        z = Normal(mu, torch.exp(0.5 * logvar)).sample((20_000,))
        recon = reconstruction_loss(model.decode(z.flatten(0, 1)), x.repeat(20_000, 1, 1, 1)).view(20_000, 2).mean(0)
    torch.testing.assert_close(terms["kl"].view(3000, 2), kl.expand(3000, 2))
    torch.testing.assert_close(terms["recon"].view(3000, 2).mean(0), recon, atol=0.3, rtol=0)


def test_log_weights_shape_and_gradients():
    model = VAE(latent_dim=3, hidden_dim=8)
    log_w = log_weights(model, images(4).float(), k=6)
    assert log_w.shape == (6, 4)
    log_w.sum().backward()
    assert model.fc21.weight.grad is not None and model.fc4.weight.grad.abs().sum() > 0


def test_repeatable_with_a_generator_and_restores_the_mode():
    model = VAE(latent_dim=3, hidden_dim=8).train()
    x = images(5).float()
    a = iwae_bound(model, x, k=7, batch_size=2, generator=torch.Generator().manual_seed(1))
    b = iwae_bound(model, x, k=7, batch_size=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5,) and model.training
    assert torch.equal(a, iwae_bound(model, x, k=7, batch_size=2, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, iwae_bound(model, x, k=7, batch_size=2, generator=torch.Generator().manual_seed(2)))
    assert not torch.equal(a, b)  # another batch size draws the noise in another order: a different estimate


@pytest.mark.parametrize("k, most_codes", [(50, CODES_AT_ONCE), (7, 7 * (CODES_AT_ONCE // 7)), (5000, 5000)])
def test_default_batch_decodes_a_bounded_number_of_codes(k, most_codes):
    """By default the decoder sees at most CODES_AT_ONCE codes at once (k of them when k alone is more)."""
    model = VAE(latent_dim=3, hidden_dim=8)
    x = images(300).float()
    seen = []
    decode = model.decode
    model.decode = lambda z: seen.append(len(z)) or decode(z)
    bounds = iwae_bound(model, x[:max(1, 6000 // k)], k=k, generator=torch.Generator().manual_seed(0))
    assert max(seen) == most_codes and sum(seen) == k * len(bounds)


def test_clear_errors():
    x = images(2).float()
    with pytest.raises(ValueError, match="no distribution q"):
        iwae_bound(Autoencoder(latent_dim=2, hidden_dim=8), x, k=5)
    with pytest.raises(ValueError, match="pass the digits' labels"):
        iwae_bound(ConditionalVAE(latent_dim=2, hidden_dim=8), x, k=5)
    with pytest.raises(ValueError, match="one label per image"):
        iwae_bound(ConditionalVAE(latent_dim=2, hidden_dim=8), x, k=5, y=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="takes no labels"):
        iwae_bound(VAE(latent_dim=2, hidden_dim=8), x, k=5, y=torch.tensor([1, 2]))
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="k="):
            iwae_bound(VAE(latent_dim=2, hidden_dim=8), x, k=bad)
    with pytest.raises(ValueError, match="batch_size="):
        elbo_terms(VAE(latent_dim=2, hidden_dim=8), x, batch_size=0)


def test_check_logmeanexp(capsys):
    right = lambda log_w: torch.logsumexp(log_w, 0) - math.log(len(log_w))  # noqa: E731
    by_hand = lambda a: a.max(0).values + (a - a.max(0).values).exp().mean(0).log()  # noqa: E731
    exercises.check_logmeanexp(right)
    assert exercises.last_verdict.passed
    exercises.check_logmeanexp(by_hand)
    assert exercises.last_verdict.passed
    wrong = {
        "naive": lambda a: a.exp().mean(0).log(),
        "no 1/k": lambda a: torch.logsumexp(a, 0),
        "wrong dim": lambda a: torch.logsumexp(a, 1) - math.log(a.shape[1]),
        "mean of logs (the ELBO)": lambda a: a.mean(0),
        "the starter": lambda a: None,
        "crashes": lambda a: a @ a,
    }
    for name, fn in wrong.items():
        exercises.check_logmeanexp(fn)
        assert not exercises.last_verdict.passed, name
    out = capsys.readouterr().out
    assert out.count("NOT YET") == len(wrong) and out.count("PASS") == 2


def test_plot_rate_distortion_draws_the_points():
    fig = plot_rate_distortion([5.0, 10.0, 20.0], [150.0, 120.0, 105.0], ["beta = 4", "beta = 2", "beta = 1"])
    ax = fig.axes[0]
    points = [line for line in ax.lines if line.get_marker() == "o"][0]
    assert list(points.get_xdata()) == [5.0, 10.0, 20.0] and list(points.get_ydata()) == [150.0, 120.0, 105.0]
    assert [t.get_text() for t in ax.texts] == ["beta = 4", "beta = 2", "beta = 1"]
    assert ax.get_title() and "rate" in ax.get_xlabel() and "distortion" in ax.get_ylabel()
    with pytest.raises(ValueError, match="one label per model"):
        plot_rate_distortion([1.0], [2.0, 3.0], ["a"])


def test_plot_bounds():
    fig = plot_bounds([1, 5, 50], {"VAE": [-110.0, -107.0, -105.0], "ConvVAE": [-100.0, -98.0, -97.0]})
    ax = fig.axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[-110.0, -107.0, -105.0], [-100.0, -98.0, -97.0]]
    assert ax.get_xscale() == "log" and ax.get_title() and ax.get_xlabel()
    with pytest.raises(ValueError, match="one mean bound per k"):
        plot_bounds([1, 5], {"VAE": [1.0]})
