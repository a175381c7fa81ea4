"""The exercise checks' machinery: verdicts, hints, the fresh case, the messages. tests/test_exercise_adversarial.py
runs every check against ~250 right and wrong answers."""
import math

import torch
import torch.nn.functional as F

from course_utils import exercises
from course_utils.losses import kl_divergence, reconstruction_loss


def reparameterize(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def test_a_check_prints_one_verdict_and_returns_none(capsys):
    assert exercises.check_kl(kl_divergence) is None
    assert capsys.readouterr().out == ("PASS: all 5 cases agree with torch.distributions' KL, and gradients reach mu "
                                       "and logvar as in the reference.\n")
    assert exercises.last_verdict == exercises.Verdict(True, "PASS: all 5 cases agree with torch.distributions' KL, "
                                                             "and gradients reach mu and logvar as in the reference.")


def test_passes_runs_silently(capsys):
    assert exercises.passes(exercises.check_kl, kl_divergence) is True
    assert exercises.passes(exercises.check_kl, lambda mu, logvar: mu.sum(1)) is False
    assert exercises.passes(exercises.check_threshold, lambda scores, max_fpr: torch.quantile(scores, 1 - max_fpr))
    assert capsys.readouterr().out == ""


def test_none_gets_a_useful_message_and_the_second_failure_a_hint(capsys):
    exercises.check_kl(kl_divergence)
    exercises.check_kl(lambda mu, logvar: None)
    exercises.check_kl(lambda mu, logvar: None)
    first, second = capsys.readouterr().out.splitlines()[1:]
    assert first.startswith("NOT YET: your function returns None") and "return line" in first and "Hint" not in first
    assert second.startswith(first) and "Hint: KL = -0.5 * sum(1 + logvar - mu**2 - exp(logvar))" in second


def test_first_differing_values_are_shown_not_a_prefix(capsys):
    def wrong_at_one_entry(mu, logvar):  # right except for the fourth example of a batch of 5
        kl = kl_divergence(mu, logvar)
        return kl + (torch.arange(len(kl)) == 3) * (len(kl) == 5) * 1.0

    exercises.check_kl(wrong_at_one_entry)
    out = capsys.readouterr().out
    assert "1 of 5 values differ, first at [3] got" in out and "expected" in out


def test_vae_loss_names_the_article_scale(capsys):
    def article_loss(x_hat, x, mu, logvar):
        bce = F.binary_cross_entropy(x_hat.flatten(1), x.flatten(1))  # mean over batch and pixels
        return bce - 0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp()) / (len(x) * 784)

    exercises._failures.clear()  # no earlier NOT YET of this check: the first failure shows no hint
    exercises.check_vae_loss(article_loss)
    out = capsys.readouterr().out.splitlines()[-1]
    assert "divided by 784" in out and "Hint" not in out


def test_the_fresh_case_differs_between_calls():
    seen = []

    def recording(mu, logvar):
        seen.append(mu.detach().clone())
        return kl_divergence(mu, logvar)

    exercises.passes(exercises.check_kl, recording)
    exercises.passes(exercises.check_kl, recording)
    first, second = seen[:len(seen) // 2], seen[len(seen) // 2:]
    assert all(torch.equal(a, b) for a, b in zip(first[:-1], second[:-1]))  # the fixed cases
    assert first[-1].shape != second[-1].shape or not torch.equal(first[-1], second[-1])  # the fresh one


def test_a_check_leaves_the_notebooks_random_numbers_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    exercises.passes(exercises.check_reparameterize, reparameterize)
    exercises.passes(exercises.check_training_step, lambda model, optimizer, x: None)
    assert torch.equal(torch.rand(3), expected)


def test_reparameterize_right_answer_passes_every_time():
    # the noise statistics are compared at 7 standard errors: a right answer fails with probability < 1e-8
    assert all(exercises.passes(exercises.check_reparameterize, reparameterize) for _ in range(10))


def test_gaussian_posterior_reference_agrees_with_monte_carlo():
    # importance sampling from the prior, independent of both the grid and the closed form
    g = torch.Generator().manual_seed(0)
    z = 1.0 + 2.0 * torch.randn(2_000_000, generator=g, dtype=torch.float64)  # prior N(1, 2^2)
    w = torch.softmax(torch.distributions.Normal(z, 0.5).log_prob(torch.tensor(2.0, dtype=torch.float64)), 0)
    mean, std = (w * z).sum().item(), (w * (z - (w * z).sum()) ** 2).sum().sqrt().item()

    def closed_form(x, noise, prior_mean, prior_std):
        var = 1 / (1 / prior_std ** 2 + 1 / noise ** 2)
        return var * (prior_mean / prior_std ** 2 + x / noise ** 2), var ** 0.5

    closed = closed_form(2.0, 0.5, 1.0, 2.0)
    assert math.isclose(mean, closed[0], abs_tol=3e-3) and math.isclose(std, closed[1], abs_tol=3e-3)
    assert exercises.passes(exercises.check_gaussian_posterior, closed_form)


def test_training_step_official_solution_passes_and_no_zero_grad_is_named(capsys):
    def step(model, optimizer, x):
        loss = reconstruction_loss(model(x), x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_zero_grad(model, optimizer, x):
        loss = reconstruction_loss(model(x), x).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    exercises.check_training_step(step)
    exercises.check_training_step(no_zero_grad)
    passed, failed = capsys.readouterr().out.splitlines()
    assert passed.startswith("PASS: ") and "gradients left over" in failed and "zero_grad" in failed
