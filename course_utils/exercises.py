"""Self-checks for the exercises: call check_kl(my_kl) and get a specific, friendly verdict."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.distributions import Independent, Normal, kl_divergence as reference_kl

Case = tuple[str, tuple, torch.Tensor]  # (what the case is, the arguments, the expected result)


def _verdict(ok: bool, message: str) -> bool:
    print(("PASS: " if ok else "NOT YET: ") + message)
    return ok


def run_cases(fn: Callable, cases: Sequence[Case], hint: str, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """Call fn on each case and compare with the expected tensor; print which case failed, with a hint."""
    for name, args, expected in cases:
        try:
            got = fn(*args)
        except Exception as err:  # a learner's code may fail in any way: report it, do not crash
            return _verdict(False, f"on {name}, your function raised {type(err).__name__}: {err}. Hint: {hint}")
        if not isinstance(got, torch.Tensor):
            return _verdict(False, f"on {name}, it returned a {type(got).__name__}, not a torch.Tensor.")
        if got.shape != expected.shape:
            return _verdict(False, f"on {name}, it returned shape {tuple(got.shape)}; expected "
                                   f"{tuple(expected.shape)}. Hint: {hint}")
        if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol):
            return _verdict(False, f"on {name}, expected {_short(expected)} but got {_short(got)}. Hint: {hint}")
    return _verdict(True, f"all {len(cases)} cases agree with the reference.")


def _short(t: torch.Tensor) -> str:
    values = [round(v, 4) for v in t.detach().double().flatten()[:4].tolist()]
    return f"{values}{' ...' if t.numel() > 4 else ''}"


def _gaussian_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        ("mu = 0, logvar = 0 (q is the prior itself)", torch.zeros(2, 3), torch.zeros(2, 3)),
        ("mu = 1, logvar = 0", torch.ones(1, 4), torch.zeros(1, 4)),
        ("mu = 0, logvar = -2", torch.zeros(1, 2), torch.full((1, 2), -2.0)),
        ("a random batch of 5 with latent_dim 8", torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)),
    ]


def check_kl(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(mu, logvar) -> KL(N(mu, sigma^2) || N(0, I)) per example, shape (B,), against torch.distributions."""
    cases = []
    for name, mu, logvar in _gaussian_cases():
        q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
        p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
        cases.append((name, (mu, logvar), reference_kl(q, p)))
    hint = ("KL = -0.5 * sum(1 + logvar - mu**2 - exp(logvar)), summed over dim=1 only (one value per example); "
            "remember that logvar is log(sigma^2), so sigma^2 = exp(logvar).")
    return run_cases(fn, cases, hint)


def check_reconstruction_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(x_hat, x) -> binary cross-entropy summed over pixels, shape (B,)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 28, 28, generator=g)
    x_hat = torch.rand(3, 1, 28, 28, generator=g).clamp(0.05, 0.95)
    half = torch.full((2, 1, 28, 28), 0.5)
    bce = lambda p, t: -(t * p.log() + (1 - t) * (1 - p).log()).flatten(1).sum(1)  # noqa: E731
    cases = [
        ("x_hat = 0.5 everywhere", (half, half.round()), bce(half, half.round())),
        ("a random batch of 3 images", (x_hat, x), bce(x_hat, x)),
    ]
    hint = ("-(x * log(x_hat) + (1 - x) * log(1 - x_hat)), summed over all pixels of each image: flatten to (B, 784) "
            "and sum over dim=1, or use F.binary_cross_entropy(..., reduction='none').")
    return run_cases(fn, cases, hint)


def check_reparameterize(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(mu, logvar) -> z: right mean and spread, and gradients that reach mu and logvar."""
    mu = torch.full((100_000, 2), 3.0, requires_grad=True)
    logvar = torch.full((100_000, 2), 2 * torch.tensor(0.5).log().item(), requires_grad=True)  # sigma = 0.5
    try:
        z = fn(mu, logvar)
    except Exception as err:
        return _verdict(False, f"your function raised {type(err).__name__}: {err}.")
    if not isinstance(z, torch.Tensor) or z.shape != mu.shape:
        return _verdict(False, f"z must be a tensor shaped like mu {tuple(mu.shape)}.")
    if abs(z.mean().item() - 3.0) > 0.02:
        return _verdict(False, f"z should average mu = 3.0 but averages {z.mean().item():.3f}. Hint: z = mu + sigma * eps.")
    if abs(z.std().item() - 0.5) > 0.02:
        return _verdict(False, f"z should spread with sigma = 0.5 but its std is {z.std().item():.3f}. Hint: "
                               f"sigma = exp(0.5 * logvar), not exp(logvar).")
    if not z.requires_grad:
        return _verdict(False, "no gradient flows from z back to mu and logvar. Hint: draw eps = torch.randn_like(mu) "
                               "and compute z from mu and logvar with ordinary tensor operations.")
    z.sum().backward()
    if logvar.grad is None or logvar.grad.abs().sum() == 0:
        return _verdict(False, "the gradient does not reach logvar. Hint: sigma must be computed from logvar.")
    return _verdict(True, "z has the right mean and spread, and gradients reach both mu and logvar.")
