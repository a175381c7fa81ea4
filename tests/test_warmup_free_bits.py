"""KL warm-up, free bits and dynamic binarization, against references written independently of course_utils."""
import copy

import pytest
import torch
from torch.distributions import Normal, kl_divergence as torch_kl

from course_utils.data import binarize
from course_utils.losses import free_bits_kl, kl_divergence
from course_utils.models import VAE
from course_utils.train import TrainConfig, fit, warmup_beta


def blobs(n=256, seed=0):
    """Grey images of a few fixed prototypes with a little noise (pixel values strictly between 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(4, 1, 28, 28, generator=g).round()
    y = torch.randint(0, 4, (n,), generator=g)
    x = (prototypes[y] * 0.8 + 0.1 + 0.1 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    return x, y


def gaussian(batch=32, latent_dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, latent_dim, generator=g) * torch.linspace(0.05, 2.0, latent_dim)  # small to large KLs
    logvar = torch.randn(batch, latent_dim, generator=g) * 0.5
    return mu, logvar


def brute_force_free_bits(mu, logvar, free_bits):
    """sum_u max(free_bits, mean_b KL(N(mu_bu, sigma_bu^2) || N(0, 1))), the KL per unit from torch.distributions."""
    kl = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))  # (B, latent_dim), elementwise
    total = 0.0
    for u in range(mu.shape[1]):
        unit = kl[:, u].mean().item()
        total += free_bits if free_bits > unit else unit
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("free_bits", [0.0, 0.05, 0.5, 2.0, 50.0])
def test_free_bits_kl_matches_a_brute_force_max_over_units(seed, free_bits):
    mu, logvar = gaussian(seed=seed)
    assert free_bits_kl(mu, logvar, free_bits).item() == pytest.approx(brute_force_free_bits(mu, logvar, free_bits),
                                                                        rel=1e-5, abs=1e-6)


def test_the_cases_above_clamp_some_units_and_not_others():
    mu, logvar = gaussian()
    per_unit = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).mean(dim=0)
    assert (per_unit < 0.5).any() and (per_unit > 0.5).any()  # free_bits = 0.5 floors some units, not all


def test_free_bits_zero_is_the_batch_mean_kl():
    mu, logvar = gaussian(seed=3)
    reference = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(dim=1).mean()
    assert torch.allclose(free_bits_kl(mu, logvar, 0.0), reference, rtol=1e-5)
    assert torch.allclose(free_bits_kl(mu, logvar, 0.0), kl_divergence(mu, logvar).mean(), rtol=1e-6)


def test_units_under_the_floor_get_no_gradient_and_the_others_the_kl_gradient():
    mu, logvar = gaussian(seed=4)
    per_unit = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).mean(dim=0)  # (latent_dim,)
    middle = per_unit.sort().values[2:4]  # the 3rd and 4th smallest of 6 units
    free_bits = float(middle.mean())      # strictly between them: three units below the floor, three above
    below = per_unit < free_bits
    assert below.any() and (~below).any()
    mu.requires_grad_(True), logvar.requires_grad_(True)
    free_bits_kl(mu, logvar, free_bits).backward()
    assert torch.all(mu.grad[:, below] == 0) and torch.all(logvar.grad[:, below] == 0)
    # above the floor the gradient is that of the plain batch-mean KL of the unit
    mu_ref, logvar_ref = mu.detach().clone().requires_grad_(True), logvar.detach().clone().requires_grad_(True)
    torch_kl(Normal(mu_ref, torch.exp(0.5 * logvar_ref)), Normal(0.0, 1.0)).mean(dim=0)[~below].sum().backward()
    assert torch.allclose(mu.grad[:, ~below], mu_ref.grad[:, ~below], atol=1e-6)
    assert torch.allclose(logvar.grad[:, ~below], logvar_ref.grad[:, ~below], atol=1e-6)
    assert (mu.grad[:, ~below] != 0).any()


def test_free_bits_rejects_a_negative_floor_with_a_usual_value():
    mu, logvar = gaussian()
    with pytest.raises(ValueError, match="0.5"):
        free_bits_kl(mu, logvar, -0.1)
    with pytest.raises(ValueError, match="free_bits"):
        TrainConfig(free_bits=-1.0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=-1)
    with pytest.raises(TypeError, match="whole number"):
        TrainConfig(warmup_epochs=2.5)


def test_warmup_beta_by_hand():
    config = TrainConfig(beta=2.0, warmup_epochs=4)
    assert [warmup_beta(config, epoch) for epoch in range(1, 8)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert [warmup_beta(TrainConfig(beta=20.0, warmup_epochs=1), e) for e in (1, 2, 3)] == [0.0, 20.0, 20.0]
    assert [warmup_beta(TrainConfig(beta=3.0), e) for e in (1, 2, 10)] == [3.0, 3.0, 3.0]  # no warm-up


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_the_first_warmup_epoch_trains_without_kl_bit_for_bit():
    data = blobs()
    start = VAE(latent_dim=4, hidden_dim=32)
    runs = {}
    for name, settings in {"warmup": dict(beta=4.0, warmup_epochs=3), "beta0": dict(beta=0.0),
                           "beta4": dict(beta=4.0)}.items():
        model = copy.deepcopy(start)
        fit(model, data, num_epochs=1, batch_size=64, lr=3e-3, progress=False, **settings)
        runs[name] = weights(model)
    assert all(torch.equal(a, b) for a, b in zip(runs["warmup"], runs["beta0"]))
    assert not all(torch.equal(a, b) for a, b in zip(runs["warmup"], runs["beta4"]))  # the test can fail


def test_the_history_records_the_warmup_weight_of_each_epoch():
    data = blobs()
    history = fit(VAE(latent_dim=4, hidden_dim=32), data, data, num_epochs=4, beta=3.0, warmup_epochs=2,
                  batch_size=64, progress=False)
    used = [(loss - recon) / kl for loss, recon, kl in
            zip(history["train_loss"], history["train_recon"], history["train_kl"])]
    assert used == pytest.approx([0.0, 1.5, 3.0, 3.0], abs=1e-3)
    # the test loss is always scored with the full beta
    for loss, recon, kl in zip(history["test_loss"], history["test_recon"], history["test_kl"]):
        assert loss == pytest.approx(recon + 3.0 * kl, rel=1e-5)


def test_a_free_bits_floor_above_every_unit_trains_like_beta_zero():
    data = blobs()
    start = VAE(latent_dim=4, hidden_dim=32)
    floor, plain, with_kl = copy.deepcopy(start), copy.deepcopy(start), copy.deepcopy(start)
    fit(floor, data, num_epochs=1, batch_size=64, beta=1.0, free_bits=100.0, progress=False)
    fit(plain, data, num_epochs=1, batch_size=64, beta=0.0, progress=False)
    fit(with_kl, data, num_epochs=1, batch_size=64, beta=1.0, free_bits=0.01, progress=False)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights(floor), weights(plain)))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights(with_kl), weights(plain)))


def test_binarize_draws_zeros_and_ones_with_the_pixel_as_probability():
    x, _ = blobs(n=512)
    b = binarize(x, seed=0)
    assert b.shape == x.shape and b.dtype == x.dtype
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(b, binarize(x, seed=0)) and not torch.equal(b, binarize(x, seed=1))
    n = x.numel()
    std = (x * (1 - x)).sum().sqrt() / n  # the standard deviation of the mean of n independent Bernoullis
    assert abs(b.mean() - x.mean()) < 5 * std
    assert torch.equal(binarize(torch.tensor([0.0, 1.0, 1.0, 0.0])), torch.tensor([0.0, 1.0, 1.0, 0.0]))


@pytest.mark.parametrize("bad", [torch.tensor([0.5, 1.5]), torch.tensor([-0.1, 0.5]), torch.tensor([0, 1])])
def test_binarize_rejects_what_is_not_an_image_in_0_1(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(bad)


class SpyVAE(VAE):
    """A VAE that records the distinct pixel values of every batch it sees in training mode."""

    def __init__(self):
        super().__init__(latent_dim=4, hidden_dim=32)
        self.seen = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.unique())
        return super().forward(x)


@pytest.mark.parametrize("binarize_batches", [True, False])
def test_fit_binarize_feeds_black_and_white_batches(binarize_batches):
    x, y = blobs()
    model = SpyVAE()
    fit(model, (x, y), (x, y), num_epochs=2, batch_size=64, binarize=binarize_batches, progress=False)
    assert len(model.seen) == 2 * 4
    values = torch.cat(model.seen).unique()
    if binarize_batches:
        assert set(values.tolist()) == {0.0, 1.0}
    else:
        assert len(values) > 2  # the grey images themselves: the spy can tell the difference
