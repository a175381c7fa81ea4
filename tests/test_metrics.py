"""The metrics against hand computation and NumPy; the new plots and exercise checks on known inputs."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import exercises, plot
from course_utils.losses import reconstruction_loss
from course_utils.metrics import mse, psnr, reconstruct, reconstruction_errors
from course_utils.models import VAE, Autoencoder, ConditionalVAE, ConvAutoencoder
from course_utils.train import evaluate


def numpy_psnr(x_hat, x):
    """PSNR by the textbook, in NumPy float64: 10 log10(1 / mean squared error) per image."""
    a, b = np.asarray(x_hat, dtype=np.float64), np.asarray(x, dtype=np.float64)
    err = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(1.0 / err)


def images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


def test_psnr_by_hand():
    x = torch.zeros(2, 1, 28, 28)
    x_hat = torch.full((2, 1, 28, 28), 0.1)  # MSE = 0.01, so PSNR = 10 log10(100) = 20 dB
    x_hat[1] = 0.5  # MSE = 0.25, so PSNR = 10 log10(4) = 6.02 dB
    assert psnr(x_hat, x).tolist() == pytest.approx([20.0, 10 * math.log10(4)], rel=1e-6)


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 784), (3, 10)])
def test_psnr_and_mse_match_numpy(shape):
    g = torch.Generator().manual_seed(2)
    x, x_hat = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    np.testing.assert_allclose(psnr(x_hat, x).numpy(), numpy_psnr(x_hat, x), rtol=1e-5)
    expected_mse = ((x_hat.numpy().astype(np.float64) - x.numpy()) ** 2).reshape(shape[0], -1).mean(1)
    np.testing.assert_allclose(mse(x_hat, x).numpy(), expected_mse, rtol=1e-5)


def test_psnr_of_a_perfect_copy_is_infinite_and_order_does_not_matter():
    x = images(3)
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(psnr(x, x.flip(0)), psnr(x.flip(0), x))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.rand(2, 784), torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="batch"):
        mse(torch.rand(784), torch.rand(784))
    with pytest.raises(TypeError, match="floats"):
        psnr(torch.ones(2, 784, dtype=torch.uint8), torch.ones(2, 784, dtype=torch.uint8))


@pytest.mark.parametrize("make", [lambda: Autoencoder(latent_dim=4, hidden_dim=32),
                                  lambda: ConvAutoencoder(latent_dim=4, channels=4),
                                  lambda: VAE(latent_dim=4, hidden_dim=32)])
def test_reconstruction_errors_match_the_loss_of_the_forward_pass(make):
    torch.manual_seed(0)
    model, x = make(), images(7)
    model.train()  # it must switch to eval mode (a VAE then decodes mu) and switch back
    expected = reconstruction_loss(model.eval()(x)[0] if isinstance(model, VAE) else model.eval()(x), x)
    model.train()
    for batch_size in (1, 3, 1000):  # the batching must not change the answer
        errors = reconstruction_errors(model, x, batch_size=batch_size)
        assert errors.shape == (7,) and not errors.requires_grad
        torch.testing.assert_close(errors, expected, rtol=1e-5, atol=1e-4)
    assert model.training


def test_reconstruction_errors_average_to_evaluate():
    torch.manual_seed(0)
    model, x = Autoencoder(latent_dim=3, hidden_dim=16), images(9)
    errors = reconstruction_errors(model, x, batch_size=4)
    assert errors.mean().item() == pytest.approx(evaluate(model, (x, torch.zeros(9).long()))["loss"], rel=1e-5)


def test_reconstruction_errors_stay_finite_when_the_decoder_saturates():
    model = Autoencoder(latent_dim=2, hidden_dim=8)
    with torch.no_grad():
        model.decoder[-2].bias.fill_(-200.0)  # x_hat rounds to 0 in float32: log(x_hat) would be -inf
    x = torch.ones(2, 1, 28, 28)
    errors = reconstruction_errors(model, x)
    torch.testing.assert_close(errors, torch.full((2,), 784 * 100.0))  # binary_cross_entropy clamps each log at -100


def test_reconstruct_matches_the_model_and_keeps_its_mode():
    torch.manual_seed(0)
    for model in (Autoencoder(latent_dim=4, hidden_dim=32), VAE(latent_dim=4, hidden_dim=32)):
        x = images(5)
        x_hat = reconstruct(model.train(), x, batch_size=2)
        expected = model.eval()(x)
        expected = expected.x_hat if isinstance(model, VAE) else expected
        torch.testing.assert_close(x_hat, expected.detach())
        assert x_hat.shape == (5, 1, 28, 28) and not x_hat.requires_grad


def test_model_metrics_reject_what_they_cannot_score():
    with pytest.raises(ValueError, match="labels"):
        reconstruction_errors(ConditionalVAE(latent_dim=2, hidden_dim=8), images(2))
    with pytest.raises(ValueError, match="batch_size"):
        reconstruct(Autoencoder(latent_dim=2, hidden_dim=8), images(2), batch_size=0)


# The exercise checks: PASS for the right answers, NOT YET (without raising) for the usual wrong ones.

def test_check_psnr(capsys):
    exercises.check_psnr(psnr)
    assert exercises.last_verdict.passed
    exercises.check_psnr(lambda x_hat, x: torch.from_numpy(numpy_psnr(x_hat, x)))
    assert exercises.last_verdict.passed
    wrong = {
        "starter": lambda x_hat, x: None,
        "one value for the batch": lambda x_hat, x: 10 * torch.log10(1 / ((x_hat - x) ** 2).mean()),
        "natural log": lambda x_hat, x: 10 * torch.log(1 / ((x_hat - x) ** 2).flatten(1).mean(1)),
        "sum, not mean": lambda x_hat, x: 10 * torch.log10(1 / ((x_hat - x) ** 2).flatten(1).sum(1)),
        "20 log10 of the MSE": lambda x_hat, x: 20 * torch.log10(1 / ((x_hat - x) ** 2).flatten(1).mean(1)),
        "crashes": lambda x_hat, x: x_hat @ x,
    }
    for name, fn in wrong.items():
        exercises.check_psnr(fn)
        assert not exercises.last_verdict.passed, name
    out = capsys.readouterr().out
    assert out.count("NOT YET") == len(wrong) and out.count("PASS") == 2


def test_check_threshold(capsys):
    exercises.check_threshold(lambda scores, max_fpr: np.quantile(scores.numpy(), 1 - max_fpr))
    assert exercises.last_verdict.passed
    exercises.check_threshold(lambda scores, max_fpr: torch.quantile(scores, 1 - max_fpr))
    assert exercises.last_verdict.passed
    wrong = {
        "starter": lambda scores, max_fpr: None,
        "quantile max_fpr, not 1 - max_fpr": lambda scores, max_fpr: np.quantile(scores.numpy(), max_fpr),
        "the largest score (FPR 0, too strict)": lambda scores, max_fpr: scores.max(),
        "one too low": lambda scores, max_fpr: scores.sort().values[-int(len(scores) * max_fpr) - 2],
        "not a number": lambda scores, max_fpr: scores,
    }
    for name, fn in wrong.items():
        exercises.check_threshold(fn)
        assert not exercises.last_verdict.passed, name
    out = capsys.readouterr().out
    assert out.count("NOT YET") == len(wrong) and out.count("PASS") == 2


# The plot helpers: titled, labelled, and drawing what they were given.

def test_plot_score_histograms():
    normal, anomaly = torch.tensor([1.0, 2.0, 2.5, 3.0]), torch.tensor([5.0, 6.0, 9.0])
    fig = plot.plot_score_histograms(normal, anomaly, threshold=4.0, title="Scores")
    ax = fig.axes[0]
    assert ax.get_title() == "Scores" and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["normal", "anomaly"]
    heights = [sum(p.get_height() * p.get_width() for p in c) for c in ax.containers]  # density: area 1 each
    assert heights == pytest.approx([1.0, 1.0])
    lines = [line for line in ax.get_lines() if set(line.get_xdata()) == {4.0}]
    assert len(lines) == 1  # the threshold, drawn where it was asked
    assert not plt.fignum_exists(fig.number)  # closed, so a notebook shows it once


def test_plot_roc():
    fpr, tpr = np.array([0.0, 0.1, 0.5, 1.0]), np.array([0.0, 0.6, 0.9, 1.0])
    fig = plot.plot_roc(fpr, tpr, auc=0.83, point=(0.1, 0.6), title="ROC")
    ax = fig.axes[0]
    assert ax.get_title() == "ROC" and "false positive" in ax.get_xlabel() and "true positive" in ax.get_ylabel()
    curve = ax.get_lines()[0]
    np.testing.assert_array_equal(curve.get_xdata(), fpr)
    np.testing.assert_array_equal(curve.get_ydata(), tpr)
    assert "0.83" in curve.get_label()
    assert any(list(line.get_xdata()) == [0.1] and list(line.get_ydata()) == [0.6] for line in ax.get_lines())


def test_show_image_rows():
    rows = [torch.zeros(3, 1, 28, 28), torch.ones(3, 784), torch.full((3, 1, 28, 28), 0.5)]
    fig = plot.show_image_rows(rows, ["noisy", "denoised", "clean"], n=2, title="Denoising")
    assert [ax.get_ylabel() for ax in fig.axes] == ["noisy", "denoised", "clean"]
    assert fig.axes[0].get_title() == "Denoising"
    shown = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert shown[0].shape[1] == 2 + 2 * 30  # n=2 images of 28 px with padding 2 on each side
    assert shown[1].min() == pytest.approx(1.0) and shown[0][5:25, 5:25].max() == 0.0  # each row is its own images
    with pytest.raises(ValueError, match="label"):
        plot.show_image_rows(rows, ["only one"])
