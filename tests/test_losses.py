"""The losses against independent references: torch.distributions, Monte Carlo and hand computation."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence as reference_kl

from course_utils.losses import kl_divergence, reconstruction_loss, vae_loss


def reference(mu, logvar):
    q = Independent(Normal(mu.double(), torch.exp(0.5 * logvar.double())), 1)
    p = Independent(Normal(torch.zeros_like(mu).double(), torch.ones_like(mu).double()), 1)
    return reference_kl(q, p)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 20, generator=g) * 2, torch.randn(64, 20, generator=g) * 3
    kl = kl_divergence(mu, logvar)
    assert kl.shape == (64,)
    torch.testing.assert_close(kl.double(), reference(mu, logvar), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value", [-60.0, -20.0, -1e-6, 0.0, 1e-6, 20.0, 60.0])
def test_kl_extreme_logvar(value):
    mu = torch.tensor([[0.5, -3.0]])
    logvar = torch.full((1, 2), value)
    kl = kl_divergence(mu, logvar)
    assert torch.isfinite(kl).all()
    torch.testing.assert_close(kl.double(), reference(mu, logvar), rtol=1e-4, atol=1e-9)


def test_kl_matches_monte_carlo():
    mu, logvar = torch.tensor([[0.3, -1.2, 2.0]]), torch.tensor([[-0.5, 0.4, -2.0]])
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.sample((200_000,), ).squeeze(1)  # (S, 3)
    estimate = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    assert abs(estimate.item() - kl_divergence(mu, logvar).item()) < 0.03


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=2), st.lists(st.floats(-8, 8), min_size=2, max_size=2))
def test_kl_is_nonnegative_and_zero_only_at_the_prior(mu, logvar):
    kl = kl_divergence(torch.tensor([mu]), torch.tensor([logvar])).item()
    assert kl >= -1e-6
    if max(map(abs, mu + logvar)) < 1e-4:
        assert kl < 1e-6


def test_reconstruction_loss_by_hand():
    x = torch.tensor([[1.0, 0.0, 0.25] + [0.0] * 781])
    x_hat = torch.tensor([[0.9, 0.2, 0.5] + [0.5] * 781])
    expected = -math.log(0.9) - math.log(0.8) - (0.25 * math.log(0.5) + 0.75 * math.log(0.5)) - 781 * math.log(0.5)
    assert reconstruction_loss(x_hat, x).item() == pytest.approx(expected, rel=1e-5)


def test_reconstruction_loss_is_finite_when_saturated():
    x = torch.zeros(2, 1, 28, 28)
    x[0] = 1.0
    x_hat = 1.0 - x  # every pixel maximally wrong
    assert torch.isfinite(reconstruction_loss(x_hat, x)).all()


def test_vae_loss_by_hand():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 28, 28, generator=g)
    x_hat = torch.rand(4, 1, 28, 28, generator=g).clamp(0.01, 0.99)
    mu, logvar = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    for beta in (0.0, 1.0, 4.0):
        expected = (bce + beta * kl).mean().item()
        assert vae_loss(x_hat, x, mu, logvar, beta=beta).item() == pytest.approx(expected, rel=1e-5)


def test_reconstruction_loss_is_the_bernoulli_log_likelihood():
    """Against torch.distributions.Bernoulli for black-and-white pixels, and the cross-entropy by hand for grey ones."""
    g = torch.Generator().manual_seed(3)
    x_hat = torch.rand(8, 1, 28, 28, generator=g, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    binary = (torch.rand(8, 1, 28, 28, generator=g, dtype=torch.float64) > 0.5).double()
    reference = -Independent(Bernoulli(probs=x_hat.flatten(1)), 1).log_prob(binary.flatten(1))
    torch.testing.assert_close(reconstruction_loss(x_hat, binary), reference)
    grey = torch.rand(8, 784, generator=g, dtype=torch.float64)
    by_hand = -(grey * x_hat.flatten(1).log() + (1 - grey) * (1 - x_hat.flatten(1)).log()).sum(1)
    torch.testing.assert_close(reconstruction_loss(x_hat, grey), by_hand)


def test_checks_find_nan_and_inf_anywhere():
    """The one-pass check (aminmax) finds a single bad value at either end of x, mu or x_hat."""
    for bad in (float("nan"), float("inf"), -float("inf")):
        for where in (0, -1):
            x = torch.rand(3, 784)
            x.view(-1)[where] = bad
            with pytest.raises(ValueError, match="NaN or inf"):
                reconstruction_loss(torch.rand(3, 784), x)
            with pytest.raises(ValueError, match="NaN or inf"):
                kl_divergence(x, torch.zeros(3, 784))
            with pytest.raises(ValueError, match="x_hat contains NaN or inf"):
                reconstruction_loss(x, torch.rand(3, 784))  # x as x_hat


@pytest.mark.parametrize("bad, match", [
    (torch.full((2, 784), 2.0), r"\[0, 1\]"),
    (torch.full((2, 784), float("nan")), "NaN"),
    (torch.rand(2, 100), "shape"),
    (torch.ones(2, 784, dtype=torch.int64), "floats"),
])
def test_reconstruction_loss_rejects_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        reconstruction_loss(torch.rand(2, 784), bad)


def test_a_decoder_without_its_sigmoid_is_named():
    """Logits passed as x_hat (a decoder missing its sigmoid): the error says to add the sigmoid, not to divide by
    255."""
    with pytest.raises(ValueError, match="End the decoder with a sigmoid"):
        reconstruction_loss(torch.randn(2, 784), torch.rand(2, 784))


def test_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        kl_divergence(torch.tensor([[float("nan")]]), torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"\(B, latent_dim\)"):
        kl_divergence(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        vae_loss(torch.rand(1, 784), torch.rand(1, 784), torch.zeros(1, 2), torch.zeros(1, 2), beta=-1)
