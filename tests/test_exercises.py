"""The exercise checks pass the right answer and catch the usual wrong ones."""
import torch
import torch.nn.functional as F

from course_utils import exercises
from course_utils.losses import kl_divergence, reconstruction_loss


def test_check_kl_passes_the_right_answer(capsys):
    assert exercises.check_kl(kl_divergence)
    assert "PASS" in capsys.readouterr().out


def test_check_kl_catches_the_usual_mistakes(capsys):
    wrong = {
        "sign": lambda mu, lv: 0.5 * (1 + lv - mu ** 2 - lv.exp()).sum(1),
        "std for var": lambda mu, lv: -0.5 * (1 + lv - mu ** 2 - (0.5 * lv).exp()).sum(1),
        "summed over the batch": lambda mu, lv: -0.5 * (1 + lv - mu ** 2 - lv.exp()).sum(),
        "crashes": lambda mu, lv: mu @ lv,
    }
    for name, fn in wrong.items():
        assert not exercises.check_kl(fn), name
    out = capsys.readouterr().out
    assert out.count("NOT YET") == len(wrong) and "Hint" in out and "shape" in out


def test_check_reconstruction_loss():
    assert exercises.check_reconstruction_loss(reconstruction_loss)
    assert not exercises.check_reconstruction_loss(lambda x_hat, x: F.binary_cross_entropy(x_hat, x))  # a mean
    assert not exercises.check_reconstruction_loss(lambda x_hat, x: F.mse_loss(x_hat, x, reduction="none").flatten(1).sum(1))


def test_check_reparameterize():
    right = lambda mu, lv: mu + torch.exp(0.5 * lv) * torch.randn_like(mu)  # noqa: E731
    assert exercises.check_reparameterize(right)
    assert not exercises.check_reparameterize(lambda mu, lv: mu + torch.exp(lv) * torch.randn_like(mu))
    assert not exercises.check_reparameterize(lambda mu, lv: torch.normal(mu.detach(), torch.exp(0.5 * lv.detach())))
    assert not exercises.check_reparameterize(lambda mu, lv: mu + 0 * lv)
