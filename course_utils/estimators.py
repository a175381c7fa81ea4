"""Two ways to estimate the gradient of an expectation E_{z ~ N(mu, diag sigma^2)}[f(z)] from samples.

- pathwise (the reparameterization trick, Kingma & Welling 2014, Section 2.4): write z = mu + sigma * eps with
  eps ~ N(0, I) and differentiate f(z) itself, so each sample gives f'(z) and f'(z) * eps;
- score function (REINFORCE, Williams 1992): differentiate the density instead, so each sample gives
  (f(z) - b) * d/dtheta log N(z; mu, sigma^2), with an optional baseline b; f need not be differentiable, but the
  estimates spread much more, and more so as the dimension of z grows.

Both return one estimate per sample (their mean is the Monte Carlo estimate), so that their spread can be compared.
mu and sigma are numbers (one dimension: f maps z of shape (S,) to (S,), elementwise) or 1-D tensors of length d
(d dimensions: f maps z of shape (S, d) to one value per sample, shape (S,)).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence, Union

import torch
from torch.distributions import Normal

Parameter = Union[float, Sequence[float], torch.Tensor]


class GradientSamples(NamedTuple):
    """Per-sample estimates of d/dmu and d/dsigma of E[f(z)], each of shape (S,) or (S, d); average over samples."""
    d_mu: torch.Tensor
    d_sigma: torch.Tensor


def _draw(mu: Parameter, sigma: Parameter, num_samples: int, generator: Optional[torch.Generator]):
    """Leaf tensors mu and sigma repeated num_samples times (one per sample, so each gets its own gradient), and eps."""
    mu = torch.as_tensor(mu, dtype=torch.float32).detach()
    sigma = torch.as_tensor(sigma, dtype=torch.float32).detach()
    if mu.ndim > 1 or mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must be two numbers or two 1-D tensors of the same length d; got shapes "
                         f"{tuple(mu.shape)} and {tuple(sigma.shape)}. For d dimensions use e.g. torch.ones(d) "
                         f"for both.")
    if not bool((sigma > 0).all()):
        raise ValueError(f"sigma={sigma.tolist()} must be > 0: it is a standard deviation "
                         f"(use sigma = exp(0.5 * logvar)).")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be a positive whole number, e.g. 1000.")
    shape = (num_samples, *mu.shape)                                  # (S,) or (S, d)
    mu_t = mu.expand(shape).clone().requires_grad_(True)              # (S,) or (S, d)
    sigma_t = sigma.expand(shape).clone().requires_grad_(True)        # (S,) or (S, d)
    eps = torch.randn(shape, generator=generator)                     # eps ~ N(0, I)
    return mu_t, sigma_t, eps


def _apply(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """f(z), checked to give one value per sample: shape (S,)."""
    out = f(z)
    if not isinstance(out, torch.Tensor) or out.shape != z.shape[:1]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        example = "f = lambda z: z ** 2" if z.ndim == 1 else "f = lambda z: (z ** 2).sum(dim=1)"
        raise ValueError(f"f must map the samples z of shape {tuple(z.shape)} to one value each, the same shape as "
                         f"{tuple(z.shape[:1])}; got {got}. Write f with tensor operations, e.g. {example}.")
    return out


def pathwise_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: Parameter, sigma: Parameter, num_samples: int,
                      generator: Optional[torch.Generator] = None) -> GradientSamples:
    """Reparameterization estimates of d/dmu, d/dsigma E[f(z)]: f'(z) and f'(z) * eps, by autograd; f differentiable."""
    mu_t, sigma_t, eps = _draw(mu, sigma, num_samples, generator)
    z = mu_t + sigma_t * eps  # z = mu + sigma * eps: the randomness sits in eps, which needs no gradient
    f_z = _apply(f, z)
    if not f_z.requires_grad:
        raise ValueError("f(z) carries no gradient back to z (a step, a rounding, a .detach() or a NumPy call?): the "
                         "pathwise estimator needs a differentiable f; use score_function_gradient for a black box.")
    f_z.sum().backward()  # sample i depends only on mu_t[i] and sigma_t[i], so .grad holds each sample's own
    return GradientSamples(mu_t.grad, sigma_t.grad)


def score_function_gradient(f: Callable[[torch.Tensor], torch.Tensor], mu: Parameter, sigma: Parameter,
                            num_samples: int, generator: Optional[torch.Generator] = None,
                            baseline: Union[None, float, str] = None) -> GradientSamples:
    """REINFORCE estimates of d/dmu, d/dsigma E[f(z)]: (f(z) - b) * grad log N(z; mu, sigma^2). f may be a black box.

    baseline b: None (b = 0), a number, or "mean": for sample i the mean of f over the *other* samples (leave-one-out).
    Any b that does not depend on z_i keeps the estimate unbiased, because E[grad log q(z_i)] = 0; the batch mean
    including f(z_i) itself would not (it biases the estimate by a factor (S - 1) / S), hence leave-one-out.
    Uses the same eps as pathwise_gradient for the same generator state, so both see the same samples z.
    """
    mu_t, sigma_t, eps = _draw(mu, sigma, num_samples, generator)
    z = (mu_t + sigma_t * eps).detach()  # a plain sample: no gradient flows through z
    with torch.no_grad():
        f_z = _apply(f, z)                                       # (S,)
    if baseline is None:
        b = torch.zeros_like(f_z)
    elif isinstance(baseline, str) and baseline == "mean":
        if num_samples < 2:
            raise ValueError("baseline='mean' averages f over the other samples: use num_samples >= 2.")
        b = (f_z.sum() - f_z) / (num_samples - 1)                # (S,) leave-one-out mean of f
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        b = torch.full_like(f_z, float(baseline))
    else:
        raise ValueError(f"baseline={baseline!r} must be None, a number, or 'mean' (the leave-one-out mean of f).")
    log_q = Normal(mu_t, sigma_t).log_prob(z)                    # log N(z; mu, sigma^2), per coordinate
    if log_q.ndim == 2:
        log_q = log_q.sum(dim=1)                                 # (S, d) -> (S,): diagonal Gaussian
    # grad E[f(z)] = E[(f(z) - b) * grad log q(z)]  (the log-derivative trick; Williams 1992)
    ((f_z - b) * log_q).sum().backward()
    return GradientSamples(mu_t.grad, sigma_t.grad)
