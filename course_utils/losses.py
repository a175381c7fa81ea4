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
    bce = F.binary_cross_entropy(x_hat.flatten(1), x.flatten(1), reduction="none")  # logs clamped at -100
    return bce.sum(dim=1)  # (B, 784) -> (B,)


def reconstruction_loss_with_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """reconstruction_loss(torch.sigmoid(logits), x), per example (B,), computed from the decoder's logits.

    Taking logits skips the sigmoid's round trip: exact for saturated pixels, where x_hat rounds to 0 or 1, and faster.
    """
    check_tensor(logits, "logits")
    check_images(x, "x")
    check_same_shape(logits.flatten(1), x.flatten(1), "logits and x")
    return _BernoulliNLL.apply(logits.flatten(1), x.flatten(1))  # (B, 784) -> (B,)


class _BernoulliNLL(torch.autograd.Function):
    """-log Bernoulli(x | sigmoid(l)) = softplus(l) - x * l, summed over pixels, with its gradient sigmoid(l) - x.

    F.binary_cross_entropy_with_logits computes the same numbers, but its log1p is not vectorized on CPU: on a
    (128, 784) batch it takes twice as long, forward and backward (docs: performance page). log(1 + e) with
    e = exp(-|l|) <= 1 is within 6e-8 of log1p(e) per pixel.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, x)
        softplus = logits.relu() + torch.log(1 + torch.exp(-logits.abs()))  # log(1 + e^l), stable for any l
        return (softplus - x * logits).sum(dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, x = ctx.saved_tensors
        return (torch.sigmoid(logits) - x) * grad[:, None], None  # d/dl (softplus(l) - x l) = sigmoid(l) - x


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
    """The negative ELBO (beta = 1): batch mean of reconstruction + beta * KL, in nats per image."""
    if beta < 0:
        raise ValueError(f"beta={beta} must be >= 0: it weighs the KL term (1 is the plain VAE).")
    return (reconstruction_loss(x_hat, x) + beta * kl_divergence(mu, logvar)).mean()
