"""Independent references shared by several checks: torch.distributions' Gaussians and KL, the binary cross-entropy."""
from __future__ import annotations

import torch
from torch.distributions import Independent, Normal, kl_divergence

from course_utils.exercises._verdict import Case, _randint


def _diagonal_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)  # sigma = exp(logvar / 2)


def _kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return kl_divergence(_diagonal_gaussian(mu, logvar), _diagonal_gaussian(torch.zeros_like(mu),
                                                                            torch.zeros_like(mu)))


def _bce(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # -log p(x | z) per image, (B, ...) -> (B,)
    return -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)


def _gaussian_batches(g: torch.Generator) -> list[Case]:
    """mu and logvar cases shared by the KL checks: q = p, a shift, a narrow q, a random batch and a fresh one."""
    batch, dim = _randint(g, 2, 6), _randint(g, 2, 9)
    fixed = torch.Generator().manual_seed(0)
    return [
        Case("mu = 0, logvar = 0 (q is the prior itself)", (torch.zeros(2, 3), torch.zeros(2, 3))),
        Case("mu = 1, logvar = 0", (torch.ones(1, 4), torch.zeros(1, 4))),
        Case("mu = 0, logvar = -2", (torch.zeros(1, 2), torch.full((1, 2), -2.0))),
        Case("a random batch of 5 with latent_dim 8", (torch.randn(5, 8, generator=fixed),
                                                       torch.randn(5, 8, generator=fixed))),
        Case(f"a batch of {batch} with latent_dim {dim} drawn for this call",
             (1.5 * torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g))),
    ]
