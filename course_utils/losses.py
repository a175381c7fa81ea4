"""The VAE loss: reconstruction (Bernoulli cross-entropy) plus beta times the KL to the prior, in nats per image."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .validate import check_images, check_same_shape, check_tensor


def _check_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    check_tensor(mu, "mu")
    check_tensor(logvar, "logvar")
    check_same_shape(mu, logvar, "mu and logvar")
    if mu.ndim != 2:
        raise ValueError(f"mu and logvar must be (B, latent_dim); got {tuple(mu.shape)}. "
                         f"For one example add a batch dimension: mu.unsqueeze(0).")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per example, shape (B,), summed over the latent dimensions.

    Kingma & Welling (2014), Appendix B: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).
    Written with expm1 so that it stays accurate when logvar is near 0, where 1 + logvar - exp(logvar)
    would cancel.
    """
    _check_gaussian(mu, logvar)
    return 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar).sum(dim=1)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy -log p(x | z), summed over the 784 pixels, per example: shape (B,)."""
    check_images(x_hat, "x_hat")
    check_images(x, "x")
    check_same_shape(x_hat.flatten(1), x.flatten(1), "x_hat and x")
    bce = F.binary_cross_entropy(x_hat.flatten(1), x.flatten(1), reduction="none")  # (B, 784); logs clamped at -100
    return bce.sum(dim=1)  # (B, 784) -> (B,)


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
    """The negative ELBO (beta = 1): batch mean of reconstruction + beta * KL, in nats per image.

    The loss of pytorch/examples vae/main.py (there summed over the batch, here its mean), as notebook 04 builds it.
    """
    if beta < 0:
        raise ValueError(f"beta={beta} must be >= 0: it weighs the KL term (1 is the plain VAE).")
    return (reconstruction_loss(x_hat, x) + beta * kl_divergence(mu, logvar)).mean()


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term with free bits (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive
    Flow", Appendix C.8): sum over units u of max(free_bits, batch mean of KL(q(z_u | x) || N(0, 1))), in nats.

    A unit whose KL is below free_bits nats costs a constant: the KL gives it no gradient, so the encoder can put
    that much information into it for free, and the units are not pushed to collapse onto the prior.
    """
    _check_gaussian(mu, logvar)
    if free_bits < 0:
        raise ValueError(f"free_bits={free_bits} must be >= 0 nats per latent unit; Kingma et al. use values near 0.5.")
    kl_units = 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar)  # (B, latent_dim): the KL of each unit
    return kl_units.mean(dim=0).clamp(min=free_bits).sum()  # (latent_dim,) floored at free_bits, summed: 0-dim
