"""Self-checks for the exercises: call check_kl(my_kl) and get a specific, friendly verdict."""
from __future__ import annotations

import math
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


def check_slerp(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> bool:
    """Check fn(z0, z1, steps) -> the spherical interpolation (Shoemake 1985), shape (steps, latent_dim)."""
    g = torch.Generator().manual_seed(2)
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    quarter = torch.tensor([[1.0, 0.0], [0.5 ** 0.5, 0.5 ** 0.5], [0.0, 1.0]])  # 0, 45 and 90 degrees on the circle
    z0, z1 = torch.randn(20, generator=g), torch.randn(20, generator=g)
    z1 = z1 * (z0.norm() / z1.norm())  # equal norms: the path stays on the sphere of that radius
    omega = torch.acos(torch.dot(z0, z1) / (z0.norm() * z1.norm())).double()
    t = torch.linspace(0, 1, 5, dtype=torch.float64).unsqueeze(1)
    by_hand = (torch.sin((1 - t) * omega) * z0.double() + torch.sin(t * omega) * z1.double()) / torch.sin(omega)
    same = torch.tensor([1.0, 2.0, 2.0])  # norm exactly 3: the cosine is exactly 1, so sin(omega) is exactly 0
    cases = [
        ("z0 = (1, 0), z1 = (0, 1), steps = 3 (a quarter circle)", (e1, e2, 3), quarter),
        ("two 20-D vectors of equal norm, steps = 5", (z0, z1, 5), by_hand),
        ("z0 = z1 (parallel vectors: sin(omega) = 0)", (same, same.clone(), 4), same.expand(4, 3)),
    ]
    hint = ("omega = arccos(z0 . z1 / (|z0| |z1|)); for t = torch.linspace(0, 1, steps) return "
            "sin((1 - t) omega) / sin(omega) * z0 + sin(t omega) / sin(omega) * z1, one row per t; when omega is "
            "(nearly) 0, return the straight line (1 - t) z0 + t z1 instead of dividing by sin(0) = 0.")
    return run_cases(fn, cases, hint)


def check_active_units(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """Check fn(mu, threshold) -> bool mask (latent_dim,) of units whose mean varies over the data by > threshold."""
    signs = torch.tensor([1.0, -1.0]).repeat(50).unsqueeze(1)  # (100, 1): +-1, variance exactly 1 over the data
    variances = torch.tensor([0.0, 0.005, 0.02, 1.0, 4.0])
    mu = signs * variances.sqrt() + torch.tensor([5.0, -3.0, 0.0, 1.0, 0.0])  # (100, 5): offsets do not count
    cases = [
        ("means with variances 0, 0.005, 0.02, 1, 4 over the data (threshold 0.01)", (mu, 0.01),
         variances > 0.01),
        ("the same means with threshold 2", (mu, 2.0), variances > 2.0),
        ("a single unit that never moves", (torch.full((10, 1), 7.0), 0.01), torch.tensor([False])),
    ]
    hint = ("a unit is active when the variance of its mean over the data set, mu[:, u].var(), is above the "
            "threshold: take the variance over dim=0 (the images), not over the units, compare it with the "
            "threshold, and return the comparison (a bool tensor with one entry per unit).")
    return run_cases(fn, cases, hint)


def check_logmeanexp(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(log_w) -> log (1/k) sum_i exp(log_w[i]), shape (B,), for log weights (k, B) of any size."""
    g = torch.Generator().manual_seed(3)
    moderate = torch.randn(50, 4, generator=g) * 3  # (k, B) = (50, 4): exp() is still safe here
    image_like = -100 * torch.rand(20, 3, generator=g) - 1000  # log weights of real images: exp() underflows to 0
    huge = 50 * torch.randn(10, 2, generator=g) + 800  # exp(800) overflows to inf
    inputs = [
        ("k = 1 (the ELBO: a single log weight per image)", torch.tensor([[-90.5, -120.0]])),
        ("a random (50, 4) batch of moderate log weights", moderate),
        ("k = 5 equal log weights of -1000: the answer is -1000", torch.full((5, 3), -1000.0)),
        ("log weights near -1000 nats, as for real images (k = 20, B = 3)", image_like),
        ("large positive log weights near +800 (k = 10, B = 2)", huge),
    ]
    cases = [(name, (log_w,), torch.logsumexp(log_w.double(), dim=0) - math.log(len(log_w))) for name, log_w in inputs]
    hint = ("average over dim=0, the k samples, to get one value per image; exp() of -1000 is 0 and of 800 is inf in "
            "floating point, so subtract the largest log weight m first: log mean exp(a) = m + log mean exp(a - m) "
            "(or use torch.logsumexp(log_w, dim=0) - math.log(k)).")
    return run_cases(fn, cases, hint)


def check_vae_loss(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(x_hat, x, mu, logvar) -> the negative ELBO: per image BCE summed over pixels + KL, then the batch mean."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 28, 28, generator=g).round()
    x_hat = torch.rand(4, 1, 28, 28, generator=g).clamp(0.05, 0.95)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    half, zeros = torch.full((2, 1, 28, 28), 0.5), torch.zeros(2, 3)

    def reference(x_hat, x, mu, logvar):  # -log p(x | z) + KL(q(z | x) || N(0, I)), per image, then the batch mean
        bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)  # (B, 784) -> (B,)
        q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
        p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
        return (bce + reference_kl(q, p)).mean()

    expected = reference(x_hat, x, mu, logvar)
    try:  # two reductions worth a hint of their own
        got = fn(x_hat, x, mu, logvar)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            if torch.allclose(got.double(), expected.double() / 784, rtol=1e-3):
                return _verdict(False, "your loss is the right one divided by 784: the article's per-pixel scale (BCE "
                                       "mean over pixels, KL / 784). Sum the BCE over the 784 pixels and the KL over "
                                       "latent_dim instead, so the loss is in nats per image.")
            if torch.allclose(got.double(), expected.double() * len(x), rtol=1e-3):
                return _verdict(False, f"your loss is the batch's sum, {len(x)} times too large. Take the mean over the "
                                       f"batch (dim 0) after summing each image's terms.")
    except Exception:  # run_cases reports the error with its case
        pass
    cases = [
        ("x_hat = 0.5 everywhere, mu = 0, logvar = 0 (the loss is 784 * log 2)", (half, half.round(), zeros, zeros),
         reference(half, half.round(), zeros, zeros)),
        ("a random batch of 4 images with latent_dim 3", (x_hat, x, mu, logvar), expected),
    ]
    hint = ("for each image, the binary cross-entropy summed over its 784 pixels plus the KL summed over latent_dim; "
            "then the mean over the batch, one number (a 0-dim tensor): (bce + kl).mean().")
    return run_cases(fn, cases, hint)


def check_psnr(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check fn(x_hat, x) -> PSNR in dB per image, shape (B,), for pixels in [0, 1], against a NumPy computation."""
    import numpy as np

    def reference(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # 10 log10(MAX^2 / MSE), MAX = 1
        err = ((x_hat.double().numpy() - x.double().numpy()) ** 2).reshape(len(x), -1).mean(axis=1)  # (B,)
        return torch.from_numpy(10 * np.log10(1.0 / err))

    g = torch.Generator().manual_seed(4)
    zeros = torch.zeros(2, 1, 28, 28)
    offset = torch.stack([torch.full((1, 28, 28), 0.1), torch.full((1, 28, 28), 0.5)])  # MSE 0.01 and 0.25
    x, x_hat = torch.rand(3, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g)
    flat_x = torch.rand(4, 784, generator=g)
    flat_hat = (flat_x + 0.2 * torch.randn(4, 784, generator=g)).clamp(0, 1)
    cases = [
        ("x = 0, x_hat = 0.1 and 0.5 everywhere (20 dB and 6.02 dB)", (offset, zeros), reference(offset, zeros)),
        ("a random batch of 3 images (B, 1, 28, 28)", (x_hat, x), reference(x_hat, x)),
        ("4 flattened images (B, 784) with a little noise", (flat_hat, flat_x), reference(flat_hat, flat_x)),
    ]
    hint = ("for each image, the mean over its pixels of (x_hat - x)**2 (flatten(1).mean(dim=1)), then "
            "10 * torch.log10(1 / mse): log base 10, one value per image.")
    return run_cases(fn, cases, hint)


def check_threshold(fn: Callable[[torch.Tensor, float], float]) -> bool:
    """Check fn(normal_scores, max_fpr) -> a threshold that flags (score > threshold) a fraction max_fpr of normal scores.

    On continuous scores that is achievable to within one image, so the check asks for exactly that.
    """
    g = torch.Generator().manual_seed(5)
    cases = [
        ("the scores 1, 2, ..., 100 shuffled, max_fpr = 0.05", torch.randperm(100, generator=g).float() + 1, 0.05),
        ("1000 random scores, max_fpr = 0.01", 100 + 20 * torch.randn(1000, generator=g), 0.01),
        ("37 random scores, max_fpr = 0.1 (3.7 images: 3 or 4 flagged)", torch.rand(37, generator=g), 0.1),
        ("50 random scores, max_fpr = 0.2", torch.rand(50, generator=g).exp(), 0.2),
    ]
    hint = ("flag a fraction max_fpr of the normal scores: the threshold is their (1 - max_fpr) quantile, e.g. "
            "torch.quantile(normal_scores, 1 - max_fpr); the scores above it are the false positives.")
    for name, scores, max_fpr in cases:
        try:
            threshold = float(fn(scores.clone(), max_fpr))
        except Exception as err:  # None, a whole tensor, a crash: all reported, never raised
            return _verdict(False, f"on {name}, it did not give one number ({type(err).__name__}: {err}). Hint: {hint}")
        flagged = int((scores > threshold).sum())
        target = len(scores) * max_fpr
        if abs(flagged - target) >= 1:
            return _verdict(False, f"on {name}, your threshold {threshold:.4g} flags {flagged} of {len(scores)} normal "
                                   f"scores (FPR {flagged / len(scores):.3f}); it should flag {target:g}, FPR "
                                   f"{max_fpr}. Hint: {hint}")
    return _verdict(True, f"all {len(cases)} thresholds flag the requested fraction of normal scores.")
