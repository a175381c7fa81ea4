"""Interpolation paths, KL per unit and active units against hand computations and independent references."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Normal, kl_divergence as reference_kl

from course_utils import exercises, plot
from course_utils.latent import active_units, kl_per_dimension, lerp, slerp, unit_activity
from course_utils.losses import kl_divergence
from course_utils.models import VAE, Autoencoder


# --- lerp and slerp ---------------------------------------------------------------------------------------------

def test_lerp_by_hand():
    path = lerp(torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0]), 5)
    expected = torch.tensor([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [3.0, -1.0], [4.0, -2.0]])
    torch.testing.assert_close(path, expected)


def test_slerp_quarter_circle_by_hand():
    path = slerp(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0]), 4)  # 0, 30, 60, 90 degrees, radius 2
    angles = torch.tensor([0.0, 30.0, 60.0, 90.0]) * math.pi / 180
    expected = 2 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    torch.testing.assert_close(path, expected)


def test_slerp_hand_computed_value_in_3d():
    # z0 = (1, 0, 0), z1 = (1, 1, 0) / sqrt(2) * 3: 45 degrees apart, norms 1 and 3. At t = 1/2 Shoemake's weights
    # are sin(pi/8) / sin(pi/4) for both, so the midpoint is w * (1 + 3/sqrt(2), 3/sqrt(2), 0).
    z0, z1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([3 / math.sqrt(2), 3 / math.sqrt(2), 0.0])
    w = math.sin(math.pi / 8) / math.sin(math.pi / 4)
    expected = torch.tensor([w * (1 + 3 / math.sqrt(2)), w * 3 / math.sqrt(2), 0.0])
    torch.testing.assert_close(slerp(z0, z1, 3)[1], expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.floats(0.1, 10.0))
def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_hits_them_exactly(seed, steps, radius):
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(20, generator=g), torch.randn(20, generator=g)
    z0, z1 = radius * z0 / z0.norm(), radius * z1 / z1.norm()
    path = slerp(z0, z1, steps)
    assert path.shape == (steps, 20)
    torch.testing.assert_close(path.norm(dim=1), torch.full((steps,), radius), rtol=1e-5, atol=1e-5)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    # equal angular steps: consecutive points are the same distance apart
    gaps = (path[1:] - path[:-1]).norm(dim=1)
    torch.testing.assert_close(gaps, gaps[:1].expand_as(gaps), rtol=1e-4, atol=1e-5)


def test_lerp_cuts_inside_the_sphere_where_slerp_does_not():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert lerp(z0, z1, 3)[1].norm() == pytest.approx(math.sqrt(0.5))
    assert slerp(z0, z1, 3)[1].norm() == pytest.approx(1.0)


@pytest.mark.parametrize("nudge", [0.0, 1e-7, 1e-5])
def test_slerp_of_nearly_parallel_vectors_is_finite_and_close_to_lerp(nudge):
    z0 = torch.tensor([3.0, -1.0, 2.0])
    z1 = z0 + torch.tensor([0.0, nudge, 0.0])
    path = slerp(z0, z1, 6)
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path, lerp(z0, z1, 6))
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)


def test_slerp_with_a_zero_endpoint_is_the_straight_line():
    z0, z1 = torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(slerp(z0, z1, 5), lerp(z0, z1, 5))


def test_slerp_and_lerp_reject_bad_input():
    z = torch.ones(3)
    with pytest.raises(ValueError, match="opposite"):
        slerp(z, -z, 5)
    with pytest.raises(ValueError, match=r"\(latent_dim,\)"):
        slerp(torch.ones(1, 3), torch.ones(1, 3), 5)
    with pytest.raises(ValueError, match="same latent_dim"):
        lerp(torch.ones(3), torch.ones(4), 5)
    with pytest.raises(ValueError, match="steps"):
        lerp(z, z, 1)
    with pytest.raises(TypeError, match="float"):
        slerp(torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64), 5)


# --- kl_per_dimension, unit_activity, active_units ---------------------------------------------------------------

class KnownEncoder(nn.Module):
    """A hand-built 'VAE' whose posterior is known: mu = x[:, :4] * scale + shift, logvar fixed per unit."""

    def __init__(self, scale, shift, logvar):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale))
        self.register_buffer("shift", torch.tensor(shift))
        self.register_buffer("logvar", torch.tensor(logvar))
        self.dummy = nn.Parameter(torch.zeros(1))  # so the model has a device

    def encode(self, x):
        mu = x.flatten(1)[:, :4] * self.scale + self.shift
        return mu, self.logvar.expand_as(mu)


def signs_data(n=200):
    """Images whose first 4 pixels are +-1 in alternation (mean 0, variance exactly 1 over the set); not real images."""
    signs = torch.tensor([1.0, -1.0]).repeat(n // 2)  # (n,)
    x = torch.zeros(n, 784)
    x[:, :4] = signs.unsqueeze(1)
    return x


def test_active_units_against_known_variances():
    variances = [0.0, 0.004, 0.02, 2.0]  # of mu_u over the data: inactive, inactive, active, active
    model = KnownEncoder([v ** 0.5 for v in variances], [1.0, -2.0, 0.5, 0.0], [0.0, -1.0, -2.0, -3.0])
    x = signs_data()
    torch.testing.assert_close(unit_activity(model, x, batch_size=32), torch.tensor(variances))
    assert active_units(model, x, batch_size=32).tolist() == [False, False, True, True]
    assert active_units(model, x, threshold=0.001).tolist() == [False, True, True, True]
    assert active_units(model, x, threshold=0.001).sum().item() == 3


def test_unit_activity_matches_numpy_on_a_real_vae():
    torch.manual_seed(0)
    model = VAE(latent_dim=5, hidden_dim=32)
    x = torch.rand(250, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mu = model.eval().encode(x)[0].numpy()
    np.testing.assert_allclose(unit_activity(model, x, batch_size=64).numpy(), mu.var(axis=0), rtol=1e-4, atol=1e-9)


def test_kl_per_dimension_by_hand_for_a_known_encoder():
    # unit 3: mu = +-sqrt(2), logvar = -3, so KL = 0.5 * (2 + e^-3 - 1 + 3) for every image
    model = KnownEncoder([0.0, 1.0, 0.0, 2 ** 0.5], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, -3.0])
    expected = torch.tensor([0.0, 0.5, 0.5, 0.5 * (2 + math.exp(-3) - 1 + 3)])
    torch.testing.assert_close(kl_per_dimension(model, signs_data(), batch_size=7), expected)


def test_kl_per_dimension_sums_to_the_mean_kl_and_matches_torch_distributions():
    torch.manual_seed(1)
    model = VAE(latent_dim=6, hidden_dim=32).train()  # the function must switch to eval mode and back
    x = torch.rand(130, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    per_unit = kl_per_dimension(model, x, batch_size=50)
    assert per_unit.shape == (6,) and model.training
    with torch.no_grad():
        mu, logvar = model.encode(x)
    torch.testing.assert_close(per_unit.sum(), kl_divergence(mu, logvar).mean())
    q, p = Normal(mu.double(), torch.exp(0.5 * logvar.double())), Normal(0.0, 1.0)
    torch.testing.assert_close(per_unit.double(), reference_kl(q, p).mean(dim=0), rtol=1e-5, atol=1e-6)


def test_latent_measures_reject_what_they_cannot_measure():
    with pytest.raises(TypeError, match=r"\(mu, logvar\)"):
        kl_per_dimension(Autoencoder(latent_dim=3), torch.rand(4, 784))
    with pytest.raises(TypeError, match="encode"):
        active_units(nn.Linear(784, 2), torch.rand(4, 784))
    with pytest.raises(ValueError, match="no images"):
        kl_per_dimension(VAE(), torch.empty(0, 784))
    with pytest.raises(ValueError, match="threshold"):
        active_units(VAE(), torch.rand(4, 784), threshold=-1)


# --- the plots and the exercise checks ---------------------------------------------------------------------------

def test_interpolation_and_kl_plots_have_titles_and_labels():
    strips = [torch.rand(7, 1, 28, 28), torch.rand(7, 784)]
    fig = plot.show_interpolation(strips, ["linear", "spherical"], title="t")
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "t" and fig.axes[1].get_xlabel()
    assert [a.get_ylabel() for a in fig.axes] == ["linear", "spherical"]
    with pytest.raises(ValueError, match="label"):
        plot.show_interpolation(strips, ["only one"])
    fig = plot.plot_kl_per_dimension(torch.tensor([0.0, 2.0, 0.5]), torch.tensor([False, True, True]))
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    heights = sorted(round(bar.get_height(), 6) for bar in ax.patches)
    assert heights == [0.0, 0.5, 2.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["active (2)", "inactive (1)"]
    plt.close("all")


def test_check_slerp(capsys):
    exercises.check_slerp(slerp)
    assert exercises.last_verdict.passed
    exercises.check_slerp(lambda z0, z1, steps: None)  # the starter cell
    assert not exercises.last_verdict.passed
    exercises.check_slerp(lerp)
    assert not exercises.last_verdict.passed
    def no_parallel_case(z0, z1, steps):  # Shoemake's formula without the fallback: 0 / 0 when z0 = z1
        return torch.full((steps, len(z0)), float("nan")) if torch.equal(z0, z1) else slerp(z0, z1, steps)

    exercises.check_slerp(no_parallel_case)
    assert not exercises.last_verdict.passed
    out = capsys.readouterr().out
    assert out.count("PASS") == 1 and out.count("NOT YET") == 3 and "parallel" in out


def test_check_active_units(capsys):
    exercises.check_active_units(lambda mu, threshold: mu.var(dim=0) > threshold)
    assert exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: mu.var(dim=0, unbiased=False) > threshold)
    assert exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: None)
    assert not exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: mu.var(dim=1) > threshold)  # over the units
    assert not exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: mu.std(dim=0) > threshold)  # std, not variance
    assert not exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: mu.pow(2).mean(dim=0) > threshold)  # not centred
    assert not exercises.last_verdict.passed
    exercises.check_active_units(lambda mu, threshold: (mu.var(dim=0) > threshold).sum())  # a count
    assert not exercises.last_verdict.passed
    out = capsys.readouterr().out
    assert out.count("PASS") == 2 and out.count("NOT YET") == 5
