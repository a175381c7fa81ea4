"""Two ways to estimate the gradient of an expectation E_{z ~ N(mu, sigma^2)}[f(z)] from samples.

- pathwise (the reparameterization trick, Kingma & Welling 2014, Section 2.4): write z = mu + sigma * eps with
  eps ~ N(0, 1) and differentiate f(z) itself, so each sample gives f'(z) and f'(z) * eps;
- score function (REINFORCE, Williams 1992): differentiate the density instead, so each sample gives
  f(z) * d/dtheta log N(z; mu, sigma^2); f need not be differentiable, but the estimates spread much more.

Both return one estimate per sample (their mean is the Monte Carlo estimate), so that their spread can be compared.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch.distributions import Normal


class GradientSamples(NamedTuple):
    """Per-sample estimates of d/dmu and d/dsigma of E[f(z)], each of shape (num_samples,); average them."""
    d_mu: torch.Tensor
    d_sigma: torch.Tensor


def _draw(mu: float, sigma: float, num_samples: int, generator: Optional[torch.Generator]):
    """Leaf tensors mu and sigma repeated num_samples times (one per sample, so each gets its own gradient), and eps."""
    if not sigma > 0:
        raise ValueError(f"sigma={sigma} must be > 0: it is a standard deviation (use sigma = exp(0.5 * logvar)).")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be a positive whole number, e.g. 1000.")
    mu_t = torch.full((num_samples,), float(mu), requires_grad=True)        # (S,)
    sigma_t = torch.full((num_samples,), float(sigma), requires_grad=True)  # (S,)
    eps = torch.randn(num_samples, generator=generator)                     # (S,) eps ~ N(0, 1)
    return mu_t, sigma_t, eps


def _apply(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """f(z), checked to be an elementwise function: one value per sample."""
    out = f(z)
    if not isinstance(out, torch.Tensor) or out.shape != z.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"f must map the samples z of shape {tuple(z.shape)} to one value each, the same shape; "
                         f"got {got}. Write f with elementwise tensor operations, e.g. f = lambda z: z ** 2.")
    return out


def pathwise_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: float, sigma: float, num_samples: int,
                      generator: Optional[torch.Generator] = None) -> GradientSamples:
    """Reparameterization estimates of d/dmu, d/dsigma E[f(z)]: f'(z) and f'(z) * eps, by autograd. f must be differentiable."""
    mu_t, sigma_t, eps = _draw(mu, sigma, num_samples, generator)
    z = mu_t + sigma_t * eps  # z = mu + sigma * eps: the randomness sits in eps, which needs no gradient
    f_z = _apply(f, z)
    if not f_z.requires_grad:
        raise ValueError("f(z) carries no gradient back to z (a step, a rounding, a .detach() or a NumPy call?): the "
                         "pathwise estimator needs a differentiable f; use score_function_gradient for a black box.")
    f_z.sum().backward()  # sample i depends only on mu_t[i] and sigma_t[i], so .grad holds each sample's own
    return GradientSamples(mu_t.grad, sigma_t.grad)


def score_function_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: float, sigma: float, num_samples: int,
                            generator: Optional[torch.Generator] = None) -> GradientSamples:
    """REINFORCE estimates of d/dmu, d/dsigma E[f(z)]: f(z) * grad log N(z; mu, sigma^2). f may be a black box.

    Uses the same eps as pathwise_gradient for the same generator state, so both see the same samples z.
    """
    mu_t, sigma_t, eps = _draw(mu, sigma, num_samples, generator)
    z = (mu_t + sigma_t * eps).detach()  # a plain sample: no gradient flows through z
    with torch.no_grad():
        f_z = _apply(f, z)
    log_q = Normal(mu_t, sigma_t).log_prob(z)  # log N(z; mu, sigma^2)
    # grad E[f(z)] = E[f(z) * grad log q(z)]  (the log-derivative trick; Williams 1992)
    (f_z * log_q).sum().backward()
    return GradientSamples(mu_t.grad, sigma_t.grad)
