"""A denoising diffusion model (DDPM, Ho et al. 2020) over a VAE's codes: the noise schedule, the forward process,
the noise predictor, its loss and the reverse process that samples new codes.

Steps are numbered as in the paper, t = 1, ..., T; index 0 of every schedule tensor stands for the data itself
(no noise: beta_0 = 0, alpha_bar_0 = 1), so schedule.alpha_bars[t] is alpha_bar_t. DDPM calls the noise variance of
step t "beta_t"; it is not the KL weight beta of the VAE loss, so the schedule names it `betas`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


class Schedule(NamedTuple):
    """The noise schedule, each tensor (T + 1,) indexed by the step t = 0, ..., T (entry 0: no noise)."""
    betas: torch.Tensor       # beta_t, the variance of the noise added at step t
    alphas: torch.Tensor      # alpha_t = 1 - beta_t
    alpha_bars: torch.Tensor  # alpha_bar_t = alpha_1 alpha_2 ... alpha_t, the signal that is left after t steps


def linear_schedule(num_steps: int, beta_start: float = 2.5e-4, beta_end: float = 0.05) -> Schedule:
    """betas rising linearly from beta_start to beta_end over num_steps steps (Ho et al. 2020, section 4).

    The paper uses 1e-4 to 0.02 over T = 1000 steps. The defaults suit notebook 09's 100 steps on 20-D codes: they
    leave alpha_bar_T near 0.08, and gave better samples there than larger betas that leave less of the code.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps={num_steps!r} must be a positive whole number of steps, e.g. 100.")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1 (variances of one step); got {beta_start}, "
                         f"{beta_end}. Try beta_start=2.5e-4, beta_end=0.05 for 100 steps.")
    betas = torch.cat([torch.zeros(1), torch.linspace(beta_start, beta_end, num_steps)])  # (T + 1,), beta_0 = 0
    alphas = 1 - betas
    return Schedule(betas, alphas, torch.cumprod(alphas, dim=0))  # alpha_bar_0 = 1


def _check_steps(t: torch.Tensor, schedule: Schedule, batch: int) -> None:
    num_steps = len(schedule.betas) - 1
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.shape != (batch,):
        raise ValueError(f"t must be int64 steps of shape ({batch},), one per code; got "
                         f"{getattr(t, 'dtype', type(t).__name__)} of shape {tuple(getattr(t, 'shape', ()))}. "
                         f"Use torch.full((B,), step) or torch.randint(1, T + 1, (B,)).")
    if len(t) and (t.min() < 1 or t.max() > num_steps):
        raise ValueError(f"t must hold steps in 1..{num_steps} (step 0 is the data itself); got {t.min().item()} "
                         f"to {t.max().item()}.")


def _per_code(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values.to(t.device)[t].unsqueeze(1)  # (T + 1,) -> (B,) -> (B, 1), broadcasts over latent_dim


def forward_step(z_prev: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """One step of the forward process q(z_t | z_{t-1}): z_t = sqrt(1 - beta_t) z_{t-1} + sqrt(beta_t) eps."""
    _check_steps(t, schedule, len(z_prev))
    beta = _per_code(schedule.betas, t)  # (B, 1)
    return (1 - beta).sqrt() * z_prev + beta.sqrt() * eps  # (B, latent_dim)


def q_sample(z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """t steps at once, in closed form (Ho et al. 2020, eq. 4):
    z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps."""
    _check_steps(t, schedule, len(z0))
    alpha_bar = _per_code(schedule.alpha_bars, t)  # (B, 1)
    return alpha_bar.sqrt() * z0 + (1 - alpha_bar).sqrt() * eps  # (B, latent_dim)


class NoisePredictor(nn.Module):
    """eps_theta(z_t, t, y): an MLP that predicts the noise in a noisy code z_t, told the step t (a learned embedding)
    and, when num_classes > 0, the digit y; label num_classes is the null label of classifier-free guidance.

    It keeps its schedule (num_steps, beta_start, beta_end) so that fit can train it with diffusion_loss, and drops
    the label with probability p_uncond while training (Ho & Salimans 2022), so one network learns both eps(z_t, t, y)
    and eps(z_t, t).
    """

    def __init__(self, latent_dim: int = 20, num_steps: int = 100, hidden_dim: int = 256, num_classes: int = 0,
                 beta_start: float = 2.5e-4, beta_end: float = 0.05, p_uncond: float = 0.1):
        super().__init__()
        self.latent_dim, self.num_steps, self.hidden_dim, self.num_classes = latent_dim, num_steps, hidden_dim, \
            num_classes
        self.beta_start, self.beta_end, self.p_uncond = beta_start, beta_end, p_uncond
        self.schedule = linear_schedule(num_steps, beta_start, beta_end)
        self.step_embedding = nn.Embedding(num_steps + 1, hidden_dim)  # one learned vector per step t
        self.label_embedding = nn.Embedding(num_classes + 1, hidden_dim) if num_classes else None  # + the null label
        self.fc1 = nn.Linear(latent_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, latent_dim)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Noisy codes z_t (B, latent_dim), steps t (B,), labels y (B,) or None -> predicted noise (B, latent_dim)."""
        h = self.fc1(z_t) + self.step_embedding(t)  # (B, hidden_dim)
        if self.label_embedding is None and y is not None:
            raise ValueError("This NoisePredictor has no labels (num_classes=0): call it without y, or build it "
                             "with num_classes=10 to condition on the digit.")
        if self.label_embedding is not None:
            y = torch.full_like(t, self.num_classes) if y is None else y  # no label given: the null label
            h = h + self.label_embedding(y)
        h = F.silu(self.fc2(F.silu(h)))
        h = F.silu(self.fc3(h))
        return self.fc4(h)  # (B, hidden_dim) -> (B, latent_dim)


def diffusion_loss(model: NoisePredictor, z0: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The DDPM loss (Ho et al. 2020, eq. 14, "L_simple"): for a random step t and noise eps, the mean squared error
    between eps and the noise the model predicts in z_t = q_sample(z0, t, eps). One number, the batch mean."""
    t = torch.randint(1, model.num_steps + 1, (len(z0),), device=z0.device)  # (B,) a step for each code
    eps = torch.randn_like(z0)  # (B, latent_dim)
    z_t = q_sample(z0, t, eps, model.schedule)
    if y is not None and model.label_embedding is not None and model.training:  # classifier-free guidance
        dropped = torch.rand(len(y), device=y.device) < model.p_uncond
        y = torch.where(dropped, torch.full_like(y, model.num_classes), y)  # some labels become the null label
    return F.mse_loss(model(z_t, t, y if model.label_embedding is not None else None), eps)


def reverse_mean(z_t: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The mean of p(z_{t-1} | z_t) (Ho et al. 2020, eq. 11): (z_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) /
    sqrt(alpha_t). With the true noise as eps_hat it is the mean of q(z_{t-1} | z_t, z_0)."""
    _check_steps(t, schedule, len(z_t))
    beta, alpha, alpha_bar = (_per_code(s, t) for s in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    return (z_t - beta / (1 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()  # (B, latent_dim)


def reverse_step(z_t: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor, noise: torch.Tensor,
                 schedule: Schedule) -> torch.Tensor:
    """One step of the reverse process: z_{t-1} = reverse_mean + sigma_t noise, with sigma_t^2 = beta_t (Ho et al.
    2020, Algorithm 2); the last step (t = 1) adds no noise."""
    sigma = _per_code(schedule.betas, t).sqrt() * (t > 1).unsqueeze(1)  # (B, 1), 0 at t = 1
    return reverse_mean(z_t, t, eps_hat, schedule) + sigma * noise


def guided_noise(model: NoisePredictor, z_t: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                 guidance: float = 0.0) -> torch.Tensor:
    """The predicted noise; with labels y, (1 + w) eps(z_t, t, y) - w eps(z_t, t) for guidance w (Ho & Salimans 2022,
    eq. 6): w = 0 is the plain conditional model, larger w pushes samples towards what the label asks for."""
    if y is None:
        return model(z_t, t)
    eps_y = model(z_t, t, y)
    return eps_y if guidance == 0 else (1 + guidance) * eps_y - guidance * model(z_t, t)


@torch.no_grad()
def sample(model: NoisePredictor, num_samples: int, generator: Optional[torch.Generator] = None,
           y: Optional[torch.Tensor] = None, guidance: float = 0.0) -> torch.Tensor:
    """New codes (num_samples, latent_dim): start from z_T ~ N(0, I) and take the T reverse steps down to z_0."""
    if y is not None and (model.label_embedding is None or y.shape != (num_samples,)):
        raise ValueError(f"labels y need a NoisePredictor trained with num_classes > 0 and one label per sample, "
                         f"shape ({num_samples},); got {None if y is None else tuple(y.shape)} for a model with "
                         f"num_classes={model.num_classes}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    z = torch.randn(num_samples, model.latent_dim, generator=generator).to(device)  # z_T: (N, latent_dim)
    y = None if y is None else y.to(device)
    for step in range(model.num_steps, 0, -1):  # t = T, ..., 1
        t = torch.full((num_samples,), step, dtype=torch.int64, device=device)
        noise = torch.randn(num_samples, model.latent_dim, generator=generator).to(device)
        z = reverse_step(z, t, guided_noise(model, z, t, y, guidance), noise, model.schedule)
    model.train(was_training)
    return z
