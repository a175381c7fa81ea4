"""plot_posteriors: one ellipse per posterior with half-widths 2 sigma, the prior's circles, clear errors."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.patches import Ellipse

from course_utils.plot import plot_posteriors


def codes(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) - 1.0, torch.arange(n) % 10


def ellipses(fig):
    return [p for p in fig.axes[0].patches if isinstance(p, Ellipse)]


def test_one_ellipse_per_posterior_with_widths_from_logvar():
    mu, logvar, y = codes()
    fig = plot_posteriors(mu, logvar, y, n=7, title="t")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert not matplotlib.pyplot.fignum_exists(fig.number)  # closed: a notebook shows it once
    found = ellipses(fig)
    assert len(found) == 7
    sigma = np.exp(0.5 * logvar[:7].double().numpy())  # independent of the function: sigma = exp(logvar / 2)
    np.testing.assert_allclose([e.width for e in found], 2 * 2 * sigma[:, 0], rtol=1e-6)   # mu +- 2 sigma
    np.testing.assert_allclose([e.height for e in found], 2 * 2 * sigma[:, 1], rtol=1e-6)
    np.testing.assert_allclose([e.center for e in found], mu[:7].double().numpy(), rtol=1e-6)
    assert fig.axes[0].get_title() == "t"


def test_prior_circles_and_num_sigma():
    mu, logvar, y = codes()
    fig = plot_posteriors(mu, logvar, y, num_sigma=1.0)
    assert len(ellipses(fig)) == 12  # n=None: all of them
    np.testing.assert_allclose([e.width for e in ellipses(fig)], 2 * np.exp(0.5 * logvar[:, 0].double().numpy()),
                               rtol=1e-6)
    radii = sorted(round(float(np.hypot(*line.get_xydata().T).mean()), 6) for line in fig.axes[0].lines)
    assert radii == [1.0, 2.0, 3.0]  # the prior N(0, I): 1, 2 and 3 sigma


def test_points_without_logvar_and_limits_that_hold_far_codes():
    mu, _, y = codes()
    mu = mu * 10  # an autoencoder's codes reach far beyond the prior
    fig = plot_posteriors(mu, None, y)
    assert ellipses(fig) == []
    assert len(fig.axes[0].collections[0].get_offsets()) == 12
    assert fig.axes[0].get_xlim()[1] >= mu.abs().max().item()


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(5, 3), torch.zeros(5, 3), torch.zeros(5)), "shape \\(B, 2\\)"),
    ((torch.zeros(5), None, torch.zeros(5)), "shape \\(B, 2\\)"),
    ((np.zeros((5, 2)), None, torch.zeros(5)), "shape \\(B, 2\\)"),
    ((torch.zeros(5, 2), torch.zeros(4, 2), torch.zeros(5)), "logvar must have the shape of mu"),
    ((torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(3)), "one label per code"),
])
def test_bad_shapes_are_explained(args, match):
    with pytest.raises(ValueError, match=match):
        plot_posteriors(*args)
