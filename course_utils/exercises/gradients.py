"""Checks of gradient estimators and posteriors: check_reparameterize, check_score_function,
check_gaussian_posterior."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.distributions import Normal

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._verdict import (Case, Spec, _as_tensor, _call, _check, _check_gradients, _compare,
                                             _NotYet, _randint, _reference_args, _report, _uniform)


def _noise_problem(eps: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> str | None:
    """What is wrong with the noise eps = (z - mu) / sigma, (N, d), if it is not independent N(0, 1) draws.

    Each statistic is compared with its spread under N(0, 1) noise (at least 7 standard errors, or the DKW bound at
    probability 1e-9), so a right answer fails with probability below 1e-8.
    """
    n, d = eps.shape
    mean, var = eps.mean(0), eps.var(0)
    for u in range(d):
        if var[u] < 1e-12:
            return ("z is the same for every example in the batch: draw a separate eps for each entry of mu "
                    "(torch.randn_like(mu)), not one shared eps.")
        if abs(mean[u]) > 7 / math.sqrt(n):
            return (f"z should average mu, but in column {u} it averages {z[:, u].mean():.4g} where mu = "
                    f"{mu[0, u]:.4g}: z = mu + sigma * eps with eps of mean 0.")
        if abs(var[u] - 1) > 7 * math.sqrt(2 / n):
            return (f"z should spread with sigma = exp(0.5 * logvar) = {sigma[0, u]:.4g} in column {u}, but its std "
                    f"is {z[:, u].std():.4g}.")
    kurtosis = ((eps - mean) ** 4).mean() / var.mean() ** 2
    if abs(kurtosis - 3) > 0.5:
        return (f"the noise is not Gaussian: its kurtosis is {kurtosis:.2f}, a Gaussian's is 3 (uniform noise has "
                f"1.8, +-1 noise has 1).")
    pooled = eps.flatten().sort().values
    ecdf = torch.arange(1, len(pooled) + 1, dtype=torch.float64) / len(pooled)
    distance = (ecdf - torch.special.ndtr(pooled)).abs().max()
    if distance > math.sqrt(math.log(2 / 1e-9) / (2 * len(pooled))):
        return f"the noise is not Gaussian: its distribution differs from N(0, 1) by {distance:.3f} (KS distance)."
    for u in range(d):
        if z[:, u].unique().numel() < 0.9 * n:
            return (f"z repeats values across the batch (column {u} has {z[:, u].unique().numel()} distinct values "
                    f"out of {n}): draw a separate eps for each entry of mu.")
    corr = torch.corrcoef(eps.T)
    off = (corr - torch.eye(d, dtype=corr.dtype)).abs()
    if bool(off.max() > 7 / math.sqrt(n)):
        u, v = divmod(int(off.argmax()), d)
        return (f"the noise is shared across the latent dimensions: columns {u} and {v} of eps correlate "
                f"{corr[u, v]:.2f}. Draw eps with the shape of mu, torch.randn_like(mu).")
    return None


def check_reparameterize(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(mu, logvar) -> z = mu + sigma * eps: fresh independent N(0, 1) noise per entry and gradients
    d z / d mu = 1, d z / d logvar = (z - mu) / 2 (the reparameterization trick)."""
    spec = Spec("check_reparameterize", ("mu", "logvar"), "z, a tensor shaped like mu", grad=("mu", "logvar"),
                hint="sigma = exp(0.5 * logvar); eps = torch.randn_like(mu) (a fresh draw on every call, one per "
                     "entry, no seed); return mu + sigma * eps, computed from mu and logvar with tensor operations.")
    g = exercises._fresh_generator()
    n = 20_000  # enough samples to tell a Gaussian from uniform or +-1 noise, and independent from shared noise
    fixed_sigma = torch.tensor([0.5, 2.0, 1.0, 0.1])
    fresh_mu, fresh_sigma = 2 * torch.randn(3, generator=g), torch.exp(0.5 * torch.randn(3, generator=g))
    cases = [
        Case(f"{n} rows of mu = (3, -1, 0, 0.5), sigma = (0.5, 2, 1, 0.1)",
             (torch.tensor([3.0, -1.0, 0.0, 0.5]).repeat(n, 1), (2 * fixed_sigma.log()).repeat(n, 1))),
        Case(f"{n} rows of mu and sigma drawn for this call",
             (fresh_mu.repeat(n, 1), (2 * fresh_sigma.log()).repeat(n, 1))),
    ]

    def body() -> None:
        for case in cases:
            z, args = _call(fn, case, spec)
            mu, logvar = _reference_args(case, spec)
            z = _as_tensor(z, case.args[0], case.name)
            sigma = torch.exp(0.5 * logvar.detach())
            eps = (z.detach().double() - mu.detach()) / sigma
            problem = _noise_problem(eps, z.detach().double(), mu.detach(), sigma)
            if problem:
                raise _NotYet(f"on {case.name}, {problem}")
            _check_gradients(z, args, mu + torch.exp(0.5 * logvar) * eps, (mu, logvar), spec, case.name)
        first, second = _call(fn, cases[0], spec)[0], _call(fn, cases[0], spec)[0]
        if torch.equal(first.detach(), second.detach()):
            raise _NotYet("two calls with the same mu and logvar gave the same z: the noise must be drawn afresh on "
                          "every call (no torch.manual_seed and no fixed eps inside your function).")
    _report(spec, body, f"z has mean mu and std sigma, independent Gaussian noise drawn afresh on every call, in all "
                        f"{len(cases)} cases, and gradients reach mu and logvar as in the reparameterization trick.")


def check_score_function(fn: Callable) -> None:
    """Check fn(f_z, z, mu, sigma, baseline) -> per-sample REINFORCE estimates of d/dmu E_{z ~ N(mu, sigma^2)}[f(z)],
    (f_z - baseline) * d log N(z; mu, sigma^2) / d mu, shape (S,) like z; mu, sigma and baseline are floats or 0-dim
    tensors. The reference differentiates torch.distributions' log_prob with autograd."""
    def reference(f_z, z, mu, sigma, baseline):
        mu = torch.as_tensor(mu, dtype=torch.float64)
        score = torch.autograd.functional.jacobian(lambda m: Normal(m, torch.as_tensor(sigma, dtype=torch.float64))
                                                   .log_prob(z), mu)  # (S,): d log N(z_s; mu, sigma^2) / d mu
        return (f_z - baseline) * score

    spec = Spec("check_score_function", ("f_z", "z", "mu", "sigma", "baseline"),
                "one estimate per sample, a tensor shaped like z",
                hint="the score of a Gaussian is d log N(z; mu, sigma^2) / d mu = (z - mu) / sigma**2; each sample's "
                     "estimate is (f_z - baseline) * (z - mu) / sigma**2, one per sample (no mean).",
                mistakes=[(lambda f, z, m, s, b: (f - b) * (z - m) / s, "you divide by sigma; the score of a "
                                                                        "Gaussian divides by sigma**2."),
                          (lambda f, z, m, s, b: f * (z - m) / s ** 2, "your estimate ignores the baseline: "
                                                                       "subtract it from f_z."),
                          (lambda f, z, m, s, b: -reference(f, z, m, s, b), "your estimate has the wrong sign: the "
                                                                            "score is (z - mu) / sigma**2.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(6)
    z = 1.5 + 2 * torch.randn(8, generator=fixed)
    size = _randint(g, 5, 50)
    fresh_z = torch.randn(size, generator=g)
    fresh_mu, fresh_sigma, fresh_b = _uniform(g, -2, 2), _uniform(g, 0.3, 3), _uniform(g, -2, 2)
    cases = [
        Case("f(z) = z^2, mu = 0, sigma = 1, baseline = 0 (floats)", (z ** 2, z, 0.0, 1.0, 0.0)),
        Case("f(z) = z^2, mu = 1.5, sigma = 2, baseline = 4 (floats)", (z ** 2, z, 1.5, 2.0, 4.0)),
        Case("f(z) = sin(z), mu = -0.5, sigma = 0.5, baseline = 0.3 (0-dim tensors)",
             (torch.sin(z), z, torch.tensor(-0.5), torch.tensor(0.5), torch.tensor(0.3))),
        Case(f"{size} samples with mu, sigma and baseline drawn for this call",
             ((fresh_mu + fresh_sigma * fresh_z) ** 3, fresh_mu + fresh_sigma * fresh_z, torch.tensor(fresh_mu),
              fresh_sigma, torch.tensor(fresh_b))),
    ]
    _check(fn, spec, cases, reference, "autograd's score times (f_z - baseline)")


def check_gaussian_posterior(fn: Callable) -> None:
    """Check fn(x, noise, prior_mean, prior_std) -> (mean, std) of p(z | x) for the prior N(prior_mean, prior_std^2)
    and the likelihood p(x | z) = N(x; z, noise^2); x is a float or a 1-D tensor of observations (one posterior each).

    The reference is Bayes' rule by brute force on a fine grid of z, independent of the closed form.
    """
    def reference(x, noise, prior_mean, prior_std):  # posterior ∝ prior * likelihood, normalized on a grid of z
        x = torch.as_tensor(x, dtype=torch.float64)
        half_width = 12 * prior_std + abs(prior_mean) + x.abs().max() + 12 * noise
        z = torch.linspace(-half_width, half_width, 20_001, dtype=torch.float64).unsqueeze(1)  # (Z, 1)
        log_post = Normal(prior_mean, prior_std).log_prob(z) + Normal(z, noise).log_prob(x.reshape(1, -1))  # (Z, n)
        weights = torch.softmax(log_post, dim=0)  # normalized over the grid
        mean = (weights * z).sum(0)
        std = (weights * (z - mean) ** 2).sum(0).sqrt()
        return mean.reshape(x.shape), std.reshape(x.shape)

    def closed(x, noise, prior_mean, prior_std):  # precisions add; the mean weighs each source by its precision
        var = 1 / (1 / prior_std ** 2 + 1 / noise ** 2)
        return var * (prior_mean / prior_std ** 2 + x / noise ** 2), var

    spec = Spec("check_gaussian_posterior", ("x", "noise", "prior_mean", "prior_std"),
                "the pair (mean, std) of the posterior", rtol=1e-4, atol=1e-4,
                hint="precisions add: 1 / var = 1 / prior_std**2 + 1 / noise**2; the mean weighs each source by its "
                     "precision: mean = var * (prior_mean / prior_std**2 + x / noise**2); return (mean, var ** 0.5).",
                mistakes=[(lambda *a: closed(*a)[1] + 0 * torch.as_tensor(a[0]),
                           "you returned the posterior's variance where its std belongs (take the square root)."),
                          (lambda x, n, m, s: closed(x, n, 0.0, s)[0], "your mean ignores prior_mean: the prior "
                                                                       "pulls x towards prior_mean, not towards 0."),
                          (lambda x, n, m, s: closed(x, s, m, n)[0], "your mean weighs x and prior_mean the wrong way "
                                                                     "round: the more precise source (smaller "
                                                                     "variance) gets the larger weight.")])
    g = exercises._fresh_generator()
    n = _randint(g, 2, 6)
    fresh = (5 * torch.randn(n, generator=g), round(_uniform(g, 0.2, 3), 3), round(_uniform(g, -3, 3), 3),
             round(_uniform(g, 0.2, 3), 3))
    cases = [
        Case("x = (-1, 0, 2, 5), noise = 0.5, prior N(1, 2^2)", (torch.tensor([-1.0, 0.0, 2.0, 5.0]), 0.5, 1.0, 2.0)),
        Case("x = 3.0, noise = 2, prior N(-1, 0.5^2)", (3.0, 2.0, -1.0, 0.5)),
        Case("x = 1.0, noise = 1, prior N(0, 1)", (1.0, 1.0, 0.0, 1.0)),
        Case(f"{n} observations, noise = {fresh[1]}, prior N({fresh[2]}, {fresh[3]}^2) drawn for this call", fresh),
    ]

    def body() -> None:
        for case in cases:
            got, args = _call(fn, case, spec)
            if not (isinstance(got, (tuple, list)) and len(got) == 2):
                raise _NotYet(f"on {case.name}, your function must return two values, mean, std (a tuple); it "
                              f"returns a {type(got).__name__}.")
            ref_args = _reference_args(case, spec)
            for what, value, expected in zip(("mean", "std"), got, reference(*ref_args)):
                if what == "std" and isinstance(value, (int, float, np.generic)):  # the same std for every x
                    value = torch.full_like(expected, float(value))
                value = _as_tensor(value, expected, case.name, numbers_ok=not isinstance(case.args[0], torch.Tensor))
                _compare(value, expected, ref_args, spec, case.name, what=f"your {what}")
    _report(spec, body, f"the mean and std agree with Bayes' rule computed on a grid in all {len(cases)} cases.")
