"""Vector quantization (VQ-VAE, van den Oord et al. 2017): the nearest code of a codebook, the straight-through
gradient, the codebook and commitment losses, and how much of the codebook is used (perplexity, dead codes)."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Quantized(NamedTuple):
    """What quantize returns; unpacks like a tuple: z_q, indices = quantize(z_e, codebook)."""
    z_q: torch.Tensor      # (N, D) the nearest codes, with the straight-through gradient to z_e
    indices: torch.Tensor  # (N,) int64, which code of the codebook each vector was replaced by


def _check_codes(z_e: torch.Tensor, codebook: torch.Tensor) -> None:
    if not isinstance(z_e, torch.Tensor) or not isinstance(codebook, torch.Tensor) or z_e.ndim != 2 \
            or codebook.ndim != 2 or z_e.shape[1] != codebook.shape[1]:
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in (z_e, codebook)]
        raise ValueError(f"z_e must be (N, D) vectors and codebook (K, D) codes of the same D; got {shapes[0]} and "
                         f"{shapes[1]}. Flatten the encoder's output first, e.g. z_e.reshape(-1, D).")


def nearest_code(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The index of the code nearest to each vector: argmin_k ||z_e - e_k||^2, (N, D), (K, D) -> (N,) int64.

    ||z - e||^2 = ||z||^2 - 2 z . e + ||e||^2, so all N x K distances come from one matrix product.
    """
    _check_codes(z_e, codebook)
    distances = z_e.pow(2).sum(1, keepdim=True) - 2 * z_e @ codebook.T + codebook.pow(2).sum(1)  # (N, K)
    return distances.argmin(dim=1)


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_q in the forward pass, the identity for z_e's gradient (van den Oord et al. 2017, section 3.2)."""
    return z_e + (z_q - z_e).detach()  # value: z_q; d/dz_e: 1 (the detached part has no gradient)


def quantize(z_e: torch.Tensor, codebook: torch.Tensor) -> Quantized:
    """Replace each vector of z_e (N, D) by its nearest code: z_q (N, D) with the straight-through gradient, indices."""
    indices = nearest_code(z_e, codebook)  # (N,)
    return Quantized(straight_through(z_e, codebook[indices]), indices)


def codebook_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||sg[z_e] - z_q||^2 summed over D, per vector (N,): moves the codes towards the encoder's outputs."""
    return (z_e.detach() - z_q).pow(2).sum(1)


def commitment_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||z_e - sg[z_q]||^2 summed over D, per vector (N,): keeps the encoder's outputs near their codes."""
    return (z_e - z_q.detach()).pow(2).sum(1)


def code_usage(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code is used: counts (K,) of indices (any shape) over 0..num_codes - 1."""
    if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64 or indices.numel() == 0:
        raise ValueError("indices must be a non-empty int64 tensor of code indices, as quantize returns them.")
    if indices.min() < 0 or indices.max() >= num_codes:
        raise ValueError(f"indices must lie in 0..{num_codes - 1} for a codebook of {num_codes} codes; got "
                         f"{indices.min().item()} to {indices.max().item()}.")
    return torch.bincount(indices.flatten().cpu(), minlength=num_codes)


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """exp of the entropy (in nats) of the codes' usage: K when all K codes are used equally often, 1 for one code.

    It reads as "the number of codes in effective use".
    """
    p = code_usage(indices, num_codes).double() / indices.numel()
    p = p[p > 0]  # 0 log 0 = 0: unused codes add nothing
    return math.exp(float(-(p * p.log()).sum()))


def dead_codes(indices: torch.Tensor, num_codes: int) -> int:
    """How many of the num_codes codes no vector was replaced by."""
    return int((code_usage(indices, num_codes) == 0).sum())
