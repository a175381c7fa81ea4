"""Property-based tests (hypothesis): the losses and models keep their promises on any valid input."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.losses import kl_divergence, reconstruction_loss, vae_loss
from course_utils.models import VAE, Autoencoder, ConditionalVAE

MODELS = {"ae": Autoencoder(latent_dim=3, hidden_dim=16), "vae": VAE(latent_dim=3, hidden_dim=16),
          "cvae": ConditionalVAE(latent_dim=3, hidden_dim=16)}


def tensors(shape, low, high):
    n = 1
    for size in shape:
        n *= size
    return st.lists(st.floats(low, high, allow_nan=False, width=32), min_size=n, max_size=n).map(
        lambda values: torch.tensor(values, dtype=torch.float32).view(shape))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4).flatmap(lambda b: st.tuples(tensors((b, 16), 0, 1), tensors((b, 16), 0, 1))))
def test_reconstruction_loss_is_nonnegative_finite_and_smallest_at_the_target(pair):
    x_hat, x = (t.repeat(1, 49) for t in pair)  # a 16-pixel pattern tiled to (B, 784)
    loss = reconstruction_loss(x_hat, x)
    assert loss.shape == (len(x),) and torch.isfinite(loss).all() and (loss >= 0).all()
    binary = x.round()
    assert (reconstruction_loss(binary, binary) <= reconstruction_loss(x_hat, binary) + 1e-3).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5).flatmap(lambda b: st.tuples(tensors((b, 4), -30, 30), tensors((b, 4), -30, 30))))
def test_kl_is_finite_nonnegative_and_adds_over_dimensions(pair):
    mu, logvar = pair
    kl = kl_divergence(mu, logvar)
    assert torch.isfinite(kl).all() and (kl >= -1e-4).all()
    parts = kl_divergence(mu[:, :2], logvar[:, :2]) + kl_divergence(mu[:, 2:], logvar[:, 2:])
    torch.testing.assert_close(kl, parts, rtol=1e-5, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.sampled_from(sorted(MODELS)), st.integers(0, 2**31 - 1))
def test_models_map_any_batch_to_images_in_range(batch, name, seed):
    model = MODELS[name].eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    out = model(x, y) if name == "cvae" else model(x)
    x_hat = out if name == "ae" else out.x_hat
    assert x_hat.shape == (batch, 1, 28, 28)
    assert torch.isfinite(x_hat).all() and x_hat.min() >= 0 and x_hat.max() <= 1
    if name != "ae":
        assert torch.isfinite(vae_loss(out.x_hat, x, out.mu, out.logvar))
