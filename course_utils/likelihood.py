"""How well does a VAE model the data? The ELBO's two terms, and the importance-weighted bound on log p(x).

A VAE is trained on the ELBO, a lower bound on log p(x). Burda, Grosse & Salakhutdinov (2016), "Importance
Weighted Autoencoders", tighten it with k samples z_i ~ q(z | x):

    log p(x) >= L_k = log (1/k) sum_i p(x, z_i) / q(z_i | x),

where L_1 is the ELBO, E[L_k] grows with k, and L_k tends to log p(x) as k grows. Everything is in nats per image,
with the course's Bernoulli likelihood p(x | z) (losses.reconstruction_loss, the binary cross-entropy).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .losses import kl_divergence, reconstruction_loss
from .models import ConditionalVAE, GaussianVAE


def _labels(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor]) -> tuple:
    """The extra decoder arguments: (y,) for a ConditionalVAE, () for the others; a ValueError if they do not fit."""
    if not isinstance(model, GaussianVAE):
        raise ValueError(f"{type(model).__name__} has no distribution q(z | x), so it has no ELBO or likelihood "
                         f"bound: pass a VAE, ConvVAE or ConditionalVAE from course_utils.models.")
    if isinstance(model, ConditionalVAE):
        if y is None:
            raise ValueError("A ConditionalVAE models p(x | y): pass the digits' labels too, e.g. "
                             "iwae_bound(model, x, k, y=y).")
        if len(y) != len(x):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels: pass one label per image.")
        return (y,)
    if y is not None:
        raise ValueError(f"A {type(model).__name__} takes no labels: call it without y (only a ConditionalVAE uses y).")
    return ()


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a whole number >= 1, e.g. {name}=50.")


def _sample_q(model: nn.Module, x: torch.Tensor, k: int, labels: tuple,
              generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mu, logvar (B, latent_dim), k codes z ~ q(z | x) (k, B, latent_dim) and log p(x | z) (k, B)."""
    mu, logvar = model.encode(x, *labels)
    eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)  # drawn on the CPU: repeatable
    z = mu + torch.exp(0.5 * logvar) * eps  # z = mu + sigma * eps, broadcast over the k samples: (k, B, latent_dim)
    x_hat = model.decode(z.flatten(0, 1), *(t.repeat(k) for t in labels))  # (k, B, d) -> (k * B, d) -> images
    targets = x.flatten(1).repeat(k, 1)  # (B, 1, 28, 28) -> (k * B, 784): row i * B + b is image b, like z
    log_px_z = -reconstruction_loss(x_hat, targets)  # (k * B,)
    return mu, logvar, z, log_px_z.view(k, len(x))  # (k * B,) -> (k, B)


def log_weights(model: nn.Module, x: torch.Tensor, k: int, y: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Log importance weights log p(x, z_i) - log q(z_i | x) of k codes z_i ~ q(z | x), shape (k, B).

    With gradients, in the model's current mode; iwae_bound wraps it for evaluation.
    """
    _check_counts(k=k)
    labels = _labels(model, x, y)
    mu, logvar, z, log_px_z = _sample_q(model, x, k, labels, generator)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)  # q(z | x) = N(mu, diag(sigma^2)), batch shape (B,)
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)  # p(z) = N(0, I)
    return log_px_z + prior.log_prob(z) - q.log_prob(z)  # log p(x | z) + log p(z) - log q(z | x): (k, B)


def _in_batches(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor], batch_size: int, fn) -> list:
    """fn(xb, yb) on successive batches moved to the model's device, in eval mode and without gradients."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            return [fn(x[i:i + batch_size].to(device), None if y is None else y[i:i + batch_size].to(device))
                    for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)


CODES_AT_ONCE = 1000  # iwae_bound's default: decode at most this many codes at a time (ConvVAE: about 100 MB)


def iwae_bound(model: nn.Module, x: torch.Tensor, k: int = 50, batch_size: Optional[int] = None,
               y: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The k-sample importance-weighted lower bound on log p(x) per image, shape (B,), in nats; k=1 gives the ELBO.

    batch_size images are scored at a time, so the decoder sees k * batch_size codes at once; by default as many
    images as keep that within CODES_AT_ONCE. A ConditionalVAE needs the labels y and then bounds log p(x | y).
    generator makes it repeatable.
    """
    _check_counts(k=k)
    batch_size = max(1, CODES_AT_ONCE // k) if batch_size is None else batch_size
    _check_counts(batch_size=batch_size)
    _labels(model, x, y)

    def bound(xb: torch.Tensor, yb: Optional[torch.Tensor]) -> torch.Tensor:
        log_w = log_weights(model, xb, k, yb, generator)  # (k, b)
        return (torch.logsumexp(log_w, dim=0) - math.log(k)).cpu()  # L_k = log mean_i w_i (Burda et al., eq. 8)

    return torch.cat(_in_batches(model, x, y, batch_size, bound))


def elbo_terms(model: nn.Module, x: torch.Tensor, batch_size: int = 500, y: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Per image, shape (B,) each: 'recon', one-sample estimate of E_q[-log p(x | z)], and 'kl', exact; ELBO = -(sum).

    Unlike train.evaluate, which decodes z = mu, the reconstruction here is scored at a sampled z: these are the
    distortion and rate of Alemi et al. (2018), "Fixing a Broken ELBO".
    """
    _check_counts(batch_size=batch_size)
    _labels(model, x, y)

    def terms(xb: torch.Tensor, yb: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar, _, log_px_z = _sample_q(model, xb, 1, () if yb is None else (yb,), generator)
        return -log_px_z[0].cpu(), kl_divergence(mu, logvar).cpu()  # (1, b) -> (b,)

    recon, kl = zip(*_in_batches(model, x, y, batch_size, terms))
    return {"recon": torch.cat(recon), "kl": torch.cat(kl)}
