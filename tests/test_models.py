"""Shapes, ranges and the reparameterization trick of every model."""
import pytest
import torch

from course_utils.losses import vae_loss
from course_utils.models import VAE, Autoencoder, ConditionalVAE, ConvAutoencoder, ConvVAE, VAEOutput
from course_utils.train import loss_terms

X = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 3, 9, 1, 7])


@pytest.mark.parametrize("model", [Autoencoder(latent_dim=8), ConvAutoencoder(latent_dim=8)])
def test_autoencoder_shapes_and_range(model):
    z = model.encode(X)
    assert z.shape == (5, 8)
    x_hat = model(X)
    assert x_hat.shape == (5, 1, 28, 28)
    assert 0 <= x_hat.min() and x_hat.max() <= 1


@pytest.mark.parametrize("model", [VAE(latent_dim=6), ConvVAE(latent_dim=6)])
def test_vae_shapes_and_range(model):
    out = model(X)
    assert isinstance(out, VAEOutput)
    x_hat, mu, logvar = out  # unpacks like a tuple
    assert x_hat.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, 6)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert model.sample(4).shape == (4, 1, 28, 28)


def test_article_vae_architecture():
    model = VAE()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(400, 784), (400,), (20, 400), (20,), (20, 400), (20,), (400, 20), (400,), (784, 400), (784,)]
    assert VAE(latent_dim=2, hidden_dim=64).fc21.out_features == 2


def test_vae_accepts_flat_images():
    model = VAE().eval()
    torch.testing.assert_close(model(X.view(5, 784)).x_hat, model(X).x_hat)


def test_reparameterize_passes_gradients_to_mu_and_logvar():
    model = VAE().train()
    mu = torch.zeros(3, 20, requires_grad=True)
    logvar = torch.zeros(3, 20, requires_grad=True)
    model.reparameterize(mu, logvar).pow(2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert logvar.grad.abs().sum() > 0


def test_reparameterize_samples_have_the_right_moments():
    model = VAE().train()
    torch.manual_seed(0)
    mu = torch.tensor([1.5, -2.0]).expand(200_000, 2)
    logvar = torch.tensor([0.0, 2 * torch.log(torch.tensor(0.5)).item()]).expand(200_000, 2)
    z = model.reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.5, -2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)


def test_eval_mode_returns_mu():
    model = VAE().eval()
    mu, logvar = torch.randn(4, 20), torch.randn(4, 20)
    assert torch.equal(model.reparameterize(mu, logvar), mu)


def test_conditional_vae_draws_the_digits_asked_for():
    model = ConditionalVAE(latent_dim=4)
    out = model(X, Y)
    assert out.x_hat.shape == (5, 1, 28, 28) and out.mu.shape == (5, 4)
    assert model.sample(torch.tensor([2, 2, 5])).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="labels"):
        model(X, Y.float())
    with pytest.raises(ValueError, match="0..9"):
        model.sample(torch.tensor([0, 1, 2, 3, 10]))


@pytest.mark.parametrize("model", [VAE(), ConvVAE(), ConditionalVAE()])
def test_training_loss_terms_equal_vae_loss_of_forward(model):
    model.eval()  # z = mu: both paths are deterministic
    out = model(X, Y) if isinstance(model, ConditionalVAE) else model(X)
    terms = loss_terms(model, X, Y)
    torch.testing.assert_close(terms["loss"], vae_loss(out.x_hat, X, out.mu, out.logvar), rtol=1e-4, atol=1e-3)


def test_models_reject_bad_input():
    """The forward pass checks what reads no values (shape, dtype); the loss checks the values."""
    model = VAE()
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.rand(28, 28))
    with pytest.raises(TypeError, match="floats"):
        model((X * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss_terms(model, X * 255)
    with pytest.raises(ValueError, match="NaN"):
        loss_terms(model, torch.full((2, 784), float("nan")))


def test_the_forward_pass_reads_no_pixel_values(monkeypatch):
    """No scan of the data inside forward: aminmax (the value check) is never called by a model."""
    calls = []
    aminmax = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: calls.append(1) or aminmax(*a, **k))
    for model in (Autoencoder(), VAE(), ConvVAE()):
        model(X)
    ConditionalVAE()(X, Y)
    assert calls == []


def test_models_reject_a_tensor_on_another_device():
    with pytest.raises(ValueError, match="device"):
        VAE()(torch.empty(2, 784, device="meta"))


def test_plots_say_what_shape_they_expect():
    from course_utils.plot import show_grid, show_reconstructions

    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        show_grid(torch.rand(28, 28))
    with pytest.raises(ValueError, match="unsqueeze"):
        show_reconstructions(torch.rand(4, 1, 28, 28), torch.rand(4, 100))
    assert show_grid(torch.rand(3, 784), nrow=3) is not None
