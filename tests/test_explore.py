"""The latent explorer's plain functions, and widgets whose controls call them."""
import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import explore
from course_utils.losses import kl_divergence, reconstruction_loss
from course_utils.models import VAE


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return VAE(latent_dim=2, hidden_dim=16).eval()


def _codes(n=50):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_decode_codes_is_the_models_decoder_in_eval_mode(model):
    z = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    model.train()
    images = explore.decode_codes(model, z)
    assert model.training and images.shape == (2, 1, 28, 28)
    assert torch.equal(images, model.decode(z).detach())
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        explore.decode_codes(model, torch.zeros(3))


def test_walk_runs_from_one_code_to_the_other_by_lerp_or_slerp():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path, start = explore.walk(z0, z1, 0.0, "slerp")
    assert torch.allclose(start, z0) and torch.allclose(path[-1], z1)
    _, middle = explore.walk(z0, z1, 0.5, "lerp")
    assert torch.allclose(middle, (z0 + z1) / 2)
    _, arc = explore.walk(z0, z1, 0.5, "slerp")  # on the circle of radius 3, at 45 degrees
    assert torch.allclose(arc, torch.tensor([3.0, 3.0]) / 2 ** 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        explore.walk(z0, z1, 0.5, "straight")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        explore.walk(z0, z1, 1.5)


def test_explorer_figure_marks_z_and_shows_the_digit_decoded_there(model):
    mu, y = _codes()
    fig = explore.explorer_figure(model, mu, y, (1.0, -0.5))
    assert not plt.fignum_exists(fig.number)  # closed: a notebook shows it once
    shown = fig.axes[1].images[0].get_array()
    assert torch.allclose(torch.as_tensor(shown), explore.decode_codes(model, torch.tensor([[1.0, -0.5]]))[0, 0])
    assert "(1.00, -0.50)" in fig.axes[1].get_title()


def test_moving_a_slider_redraws_at_the_new_code(model, monkeypatch):
    mu, y = _codes()
    drawn = []
    monkeypatch.setattr(explore, "explorer_figure",
                        lambda model, mu, y, z, **kw: drawn.append(tuple(z)) or plt.figure())
    box = explore.latent_explorer(model, mu, y)
    tabs = box.children[0]
    z1, z2 = tabs.children[0].children
    assert drawn == [(0.0, 0.0)]
    z1.value = 1.5
    z2.value = -2.0
    assert drawn[1:] == [(1.5, 0.0), (1.5, -2.0)]
    first_second, kind, t = tabs.children[1].children
    tabs.selected_index = 1  # the path tab: from image 0 to image 1, at t = 0.5 along a slerp
    assert torch.allclose(torch.tensor(drawn[-1]), explore.walk(mu[0], mu[1], 0.5, "slerp")[1])
    t.value = 1.0
    assert torch.allclose(torch.tensor(drawn[-1]), mu[1])


def test_beta_result_measures_rate_and_distortion_and_the_explorer_switches_beta(model, monkeypatch):
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.arange(40) % 10
    result = explore.beta_result(model, 4.0, x, y, num_codes=10, num_samples=8)
    mu, logvar = model.encode(x)
    assert torch.allclose(result["mu"], mu[:10].detach()) and result["samples"].shape == (8, 1, 28, 28)
    assert result["rate"] == pytest.approx(kl_divergence(mu, logvar).mean().item(), rel=1e-5)
    eps = torch.randn((1, 40, 2), generator=torch.Generator().manual_seed(0))[0]  # one z per image, seed 0
    z = mu + torch.exp(0.5 * logvar) * eps
    assert result["distortion"] == pytest.approx(reconstruction_loss(model.decode(z), x).mean().item(), rel=1e-5)
    fig = explore.beta_figure(result)
    assert len(fig.axes[0].patches) == 10 and "beta = 4" in fig.axes[0].get_title()
    shown = []
    monkeypatch.setattr(explore, "beta_figure", lambda r, **kw: shown.append(r["beta"]) or plt.figure())
    box = explore.beta_explorer([{**result, "beta": 0.1}, result])
    box.children[0].value = "4"
    assert shown == [0.1, 4.0]
