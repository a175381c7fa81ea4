"""How good is a reconstruction: per-image error (MSE, PSNR, cross-entropy) of images and of trained models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses import reconstruction_loss
from .memory import in_batches
from .models import ConditionalVAE, VAEOutput
from .validate import check_same_shape, check_tensor


def _check_pair(x_hat: torch.Tensor, x: torch.Tensor) -> None:
    check_tensor(x_hat, "x_hat")
    check_tensor(x, "x")
    check_same_shape(x_hat, x, "x_hat and x")
    if x.ndim < 2:
        raise ValueError(f"x_hat and x must be batches of images, (B, 1, 28, 28) or (B, 784); got {tuple(x.shape)}. "
                         f"For a single image add a batch dimension: x.unsqueeze(0).")


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, averaged over its pixels: shape (B,)."""
    _check_pair(x_hat, x)
    return F.mse_loss(x_hat, x, reduction="none").flatten(1).mean(dim=1)  # (B, 1, 28, 28) -> (B, 784) -> (B,)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, for pixels in [0, 1]: shape (B,); inf where x_hat == x.

    PSNR = 10 * log10(MAX^2 / MSE) with MAX = 1, the data range. Higher is better: +10 dB is 10x less squared error.
    """
    return 10 * torch.log10(1.0 / mse(x_hat, x))  # MAX^2 = 1 for pixels in [0, 1]


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive whole number, e.g. 1000.")


def _x_hat(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x)'s reconstruction of a batch (in eval mode a VAE decodes z = mu)."""
    if isinstance(model, ConditionalVAE):
        raise ValueError("a ConditionalVAE also needs the labels y, which this function does not take: score it with "
                         "losses.reconstruction_loss(model(x, y).x_hat, x) instead.")
    out = model(x)
    return out.x_hat if isinstance(out, VAEOutput) else out


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """model's reconstructions x_hat of all of x, (N, 1, 28, 28), in eval mode and batches, without gradients."""
    _check_batch_size(batch_size)
    if len(x) == 0:
        return x.new_empty(0, 1, 28, 28)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return in_batches(lambda xb: _x_hat(model, xb.to(device)), x, batch_size)  # (N, 1, 28, 28)
    finally:
        model.train(was_training)


@torch.no_grad()
def reconstruction_errors(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Each image's reconstruction error, -log p(x | z) in nats (BCE summed over pixels): shape (N,), on the CPU.

    The same per-image number that train.evaluate averages, in eval mode.
    """
    _check_batch_size(batch_size)
    if len(x) == 0:
        return torch.empty(0)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def errors(xb: torch.Tensor) -> torch.Tensor:
        xb = xb.to(device)
        return reconstruction_loss(_x_hat(model, xb), xb)  # (B,): BCE(x_hat, x) per image

    try:
        return in_batches(errors, x, batch_size)  # (N,)
    finally:
        model.train(was_training)
