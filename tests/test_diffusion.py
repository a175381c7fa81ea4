"""The diffusion model of notebook 09 against independent references: the closed form of the forward process
against iterating its single steps (Monte Carlo), the reverse step with the true noise against the posterior mean of
q(z_{t-1} | z_t, z_0) written from Bayes' rule, and the schedule's alpha_bar."""
import pytest
import torch

from course_utils.checkpoints import model_config
from course_utils.diffusion import (NoisePredictor, diffusion_loss, forward_step, guided_noise, linear_schedule,
                                    q_sample, reverse_mean, reverse_step, sample)
from course_utils.train import fit


def test_alpha_bar_is_the_product_of_the_alphas_monotone_in_0_1():
    schedule = linear_schedule(100, 1e-3, 0.2)
    alpha_bars = schedule.alpha_bars[1:]  # steps 1..T
    assert schedule.betas[0] == 0 and schedule.alpha_bars[0] == 1  # step 0 is the data itself
    assert bool((alpha_bars > 0).all() and (alpha_bars < 1).all())
    assert bool((alpha_bars[1:] < alpha_bars[:-1]).all())  # strictly decreasing: every step adds noise
    by_hand = torch.tensor([float(torch.prod(1 - schedule.betas[1:t + 1].double())) for t in range(1, 101)],
                           dtype=torch.float64)
    assert torch.allclose(alpha_bars.double(), by_hand, rtol=1e-5)
    assert alpha_bars[-1] < 1e-3  # the last step is almost pure noise


def test_closed_form_matches_iterated_single_steps_by_monte_carlo():
    schedule, n, t = linear_schedule(50), 200_000, 30
    g = torch.Generator().manual_seed(0)
    z0 = torch.tensor([[2.0, -1.0, 0.5]]).repeat(n, 1)  # (n, 3), one fixed code
    z = z0
    for step in range(1, t + 1):
        z = forward_step(z, torch.full((n,), step), torch.randn(n, 3, generator=g), schedule)
    closed = q_sample(z0, torch.full((n,), t), torch.randn(n, 3, generator=g), schedule)
    alpha_bar = schedule.alpha_bars[t]
    for draws in (z, closed):  # both have mean sqrt(alpha_bar) z0 and variance 1 - alpha_bar
        assert torch.allclose(draws.mean(0), alpha_bar.sqrt() * z0[0], atol=0.01)
        assert torch.allclose(draws.var(0), (1 - alpha_bar).expand(3), atol=0.01)
    assert torch.allclose(z.mean(0), closed.mean(0), atol=0.01) and torch.allclose(z.var(0), closed.var(0), atol=0.01)


def test_reverse_step_with_the_true_noise_is_the_posterior_mean():
    schedule = linear_schedule(100)
    g = torch.Generator().manual_seed(1)
    z0, eps = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    schedule = type(schedule)(*(s.double() for s in schedule))
    for step in (2, 17, 100):
        t = torch.full((6,), step)
        z_t = q_sample(z0, t, eps, schedule)
        b, a, ab_prev = schedule.betas[step], schedule.alphas[step], schedule.alpha_bars[step - 1]
        # the Gaussian q(z_{t-1} | z_t, z_0) by Bayes' rule, the product of q(z_t | z_{t-1}) and q(z_{t-1} | z_0)
        precision = a / b + 1 / (1 - ab_prev)
        posterior_mean = (a.sqrt() / b * z_t + ab_prev.sqrt() / (1 - ab_prev) * z0) / precision
        assert torch.allclose(reverse_mean(z_t, t, eps, schedule), posterior_mean, atol=1e-9)
        assert torch.allclose(reverse_step(z_t, t, eps, torch.zeros_like(z0), schedule), posterior_mean, atol=1e-9)


def test_reverse_step_adds_noise_of_variance_beta_except_at_the_last_step():
    schedule = linear_schedule(10)
    z, eps, noise = torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3)
    t = torch.tensor([5, 1])
    out = reverse_step(z, t, eps, noise, schedule)
    assert torch.allclose(out[0], schedule.betas[5].sqrt().expand(3)) and torch.equal(out[1], torch.zeros(3))


def test_noise_predictor_trains_through_fit_and_its_loss_falls():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(512, 2, generator=g) * 0.1 + torch.tensor([1.0, -1.0])  # a tight cluster
    torch.manual_seed(0)
    model = NoisePredictor(latent_dim=2, num_steps=20, hidden_dim=32)
    history = fit(model, (z0, None), num_epochs=8, lr=3e-3, batch_size=64, progress=False)
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    codes = sample(model, 500, generator=torch.Generator().manual_seed(1))
    assert codes.shape == (500, 2) and torch.allclose(codes.mean(0), torch.tensor([1.0, -1.0]), atol=0.3)
    assert model_config(model)["class"] == "NoisePredictor"


def test_guidance_zero_is_the_conditional_prediction_and_null_label_the_unconditional():
    torch.manual_seed(0)
    model = NoisePredictor(latent_dim=3, num_steps=5, hidden_dim=8, num_classes=10).eval()
    z, t, y = torch.randn(4, 3), torch.tensor([1, 2, 3, 5]), torch.tensor([0, 3, 9, 9])
    assert torch.equal(guided_noise(model, z, t, y, 0.0), model(z, t, y))
    assert torch.equal(model(z, t), model(z, t, torch.full((4,), 10)))
    w = 2.0
    assert torch.allclose(guided_noise(model, z, t, y, w), (1 + w) * model(z, t, y) - w * model(z, t))
    assert diffusion_loss(model, z, y).ndim == 0


@pytest.mark.parametrize("call, message", [
    (lambda s: q_sample(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3), s), "1..10"),
    (lambda s: q_sample(torch.zeros(2, 3), torch.tensor([11, 1]), torch.zeros(2, 3), s), "1..10"),
    (lambda s: q_sample(torch.zeros(2, 3), torch.tensor([1.0, 2.0]), torch.zeros(2, 3), s), "int64"),
    (lambda s: q_sample(torch.zeros(2, 3), torch.tensor([1, 2, 3]), torch.zeros(2, 3), s), "shape (2,)"),
    (lambda s: linear_schedule(0), "positive whole number"),
    (lambda s: linear_schedule(10, 0.5, 0.1), "beta_start <= beta_end"),
    (lambda s: NoisePredictor(num_classes=0)(torch.zeros(1, 20), torch.ones(1, dtype=torch.int64),
                                             torch.zeros(1, dtype=torch.int64)), "num_classes=0"),
    (lambda s: sample(NoisePredictor(), 3, y=torch.zeros(3, dtype=torch.int64)), "num_classes > 0"),
])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(linear_schedule(10))
