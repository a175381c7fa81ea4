"""Walking through a VAE's latent space: interpolation paths, and how much each latent unit is used."""
from __future__ import annotations

import torch
from torch import nn

from .data import batches

PARALLEL_ANGLE = 1e-4  # radians: below this angle slerp and lerp differ by less than float32 can show


def _check_endpoints(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> None:
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"{name} must be a float torch.Tensor of shape (latent_dim,); got {type(z).__name__}"
                            f"{'' if not isinstance(z, torch.Tensor) else ' of dtype ' + str(z.dtype)}.")
        if z.ndim != 1:
            raise ValueError(f"{name} must be one latent vector of shape (latent_dim,); got {tuple(z.shape)}. "
                             f"For a batch of one, pass {name}[0] (or {name}.squeeze(0)).")
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same latent_dim; got {tuple(z0.shape)} and {tuple(z1.shape)}.")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps={steps!r} must be a whole number >= 2: the path includes both endpoints.")


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """The straight line from z0 to z1 (each (latent_dim,)) in steps points, endpoints included: (steps, latent_dim)."""
    _check_endpoints(z0, z1, steps)
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)  # (steps,) -> (steps, 1)
    return (1 - t) * z0 + t * z1  # z(t) = (1 - t) z0 + t z1, written so that t = 0 and t = 1 give z0 and z1 exactly


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) from z0 to z1 in steps points, endpoints included: (steps, latent_dim).

    It follows the great circle between the two directions, so for endpoints of equal norm every point keeps that
    norm (a straight line cuts inside the sphere). Nearly parallel endpoints (angle below 1e-4 rad) fall back to
    lerp, where the formula's sin(omega) would divide zero by zero; opposite endpoints have no single great circle
    and raise a ValueError.
    """
    _check_endpoints(z0, z1, steps)
    a, b = z0.double(), z1.double()
    norm_a, norm_b = a.norm(), b.norm()
    if norm_a == 0 or norm_b == 0:
        return lerp(z0, z1, steps)  # a zero vector has no direction: the straight line is the only path
    u, v = a / norm_a, b / norm_b
    omega = 2 * torch.atan2((u - v).norm(), (u + v).norm())  # the angle between z0 and z1, accurate near 0 and pi
    if omega < PARALLEL_ANGLE:
        return lerp(z0, z1, steps)
    if torch.pi - omega < PARALLEL_ANGLE:
        raise ValueError("z0 and z1 point in opposite directions, so no single great circle joins them and slerp is "
                         "undefined. Use lerp, or nudge one endpoint.")
    t = torch.linspace(0, 1, steps, dtype=torch.float64, device=a.device).unsqueeze(1)  # (steps,) -> (steps, 1)
    # Shoemake (1985): slerp(z0, z1; t) = sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1
    path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return path.to(z0.dtype)


@torch.no_grad()
def _posterior_means(model: nn.Module, x: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """mu and logvar of q(z | x) for every image of x, each (N, latent_dim), on the CPU; the model's mode is kept."""
    if not hasattr(model, "encode"):
        raise TypeError(f"model must be a VAE with encode(x) -> (mu, logvar); a {type(model).__name__} has no encode.")
    if len(x) == 0:
        raise ValueError("x holds no images: pass a data set such as x_test of shape (N, 1, 28, 28).")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        encoded = [model.encode(xb.to(device)) for xb, _ in batches(x, batch_size=batch_size, shuffle=False)]
    finally:
        model.train(was_training)
    if not isinstance(encoded[0], tuple) or len(encoded[0]) != 2:
        raise TypeError(f"model.encode(x) must return (mu, logvar); {type(model).__name__}.encode returned a "
                        f"{type(encoded[0]).__name__}. A plain Autoencoder has no posterior to measure.")
    mu = torch.cat([m for m, _ in encoded]).cpu()       # (N, latent_dim)
    logvar = torch.cat([lv for _, lv in encoded]).cpu()  # (N, latent_dim)
    return mu, logvar


def kl_per_dimension(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The mean over x of KL(q(z_u | x) || N(0, 1)) for each latent unit u, in nats: shape (latent_dim,).

    The KL of a diagonal Gaussian is a sum over units, so these values add up to the mean KL per image.
    """
    mu, logvar = _posterior_means(model, x, batch_size)
    # Kingma & Welling (2014), Appendix B, one term per unit: -0.5 (1 + logvar - mu^2 - exp(logvar)); expm1 as losses.py
    kl = 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar)  # (N, latent_dim)
    return kl.mean(dim=0)  # (N, latent_dim) -> (latent_dim,)


def unit_activity(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Burda et al. (2016)'s activity of each latent unit, A_u = Cov_x(E_q[z_u]): the variance of mu_u over x."""
    mu, _ = _posterior_means(model, x, batch_size)
    return mu.double().var(dim=0, unbiased=False).to(mu.dtype)  # (N, latent_dim) -> (latent_dim,)


def active_units(model: nn.Module, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000) -> torch.Tensor:
    """Which latent units are active (Burda et al. 2016: A_u > threshold = 0.01): a bool mask (latent_dim,).

    A unit whose mean hardly moves with the input carries no information about it: its posterior is the prior,
    and the decoder learns to ignore it. `active_units(model, x).sum()` counts the active ones.
    """
    if threshold < 0:
        raise ValueError(f"threshold={threshold} must be >= 0; Burda et al. (2016) use 0.01.")
    return unit_activity(model, x, batch_size) > threshold
