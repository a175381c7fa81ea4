"""Checks of the importance-sampled likelihood: check_logmeanexp, check_log_weights."""
from __future__ import annotations

import math
from typing import Callable

import torch

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._references import _diagonal_gaussian
from course_utils.exercises._verdict import Case, Spec, _check, _randint


def check_logmeanexp(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check fn(log_w) -> log (1/k) sum_i exp(log_w[i]), shape (B,), for log weights (k, B) of any size."""
    spec = Spec("check_logmeanexp", ("log_w",), "one value per image, a tensor of shape (B,)", grad=("log_w",),
                hint="average over dim=0, the k samples, to get one value per image; exp() of -1000 is 0 and of 800 "
                     "is inf in floating point, so subtract each image's largest log weight m first (m = "
                     "log_w.max(dim=0).values, one per image): log mean exp(a) = m + log mean exp(a - m) (or use "
                     "torch.logsumexp(log_w, dim=0) - math.log(k)).",
                mistakes=[(lambda log_w: log_w.mean(0), "your result is the mean of the log weights (the ELBO "
                                                        "for k = 1), not the log of the mean of the weights."),
                          (lambda log_w: torch.logsumexp(log_w, 0), "your result is the log of the sum of the "
                                                                    "weights; the mean divides by k.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(3)
    k, batch = _randint(g, 2, 30), _randint(g, 2, 5)
    fresh = 5 * torch.randn(k, batch, generator=g) + torch.empty(batch).uniform_(-1500, 500, generator=g)
    cases = [
        Case("k = 1 (the ELBO: a single log weight per image)", (torch.tensor([[-90.5, -120.0]]),)),
        Case("a random (50, 4) batch of moderate log weights", (3 * torch.randn(50, 4, generator=fixed),)),
        Case("k = 5 equal log weights of -1000: the answer is -1000", (torch.full((5, 3), -1000.0),)),
        Case("log weights near -1000 nats, as for real images (k = 20, B = 3)",
             (-100 * torch.rand(20, 3, generator=fixed) - 1000,)),
        Case("large positive log weights near +800 (k = 10, B = 2)", (50 * torch.randn(10, 2, generator=fixed) + 800,)),
        Case("two images whose log weights differ by 1000 nats (k = 6): each needs its own maximum",
             (torch.randn(6, 2, generator=fixed) + torch.tensor([-1000.0, 0.0]),)),
        Case(f"k = {k}, B = {batch}, log weights between -1500 and 500 drawn for this call", (fresh,)),
    ]
    _check(fn, spec, cases, lambda log_w: torch.logsumexp(log_w, dim=0) - math.log(len(log_w)), "logsumexp - log k")


def check_log_weights(fn: Callable[..., torch.Tensor]) -> None:
    """Check fn(log_px_z, z, mu, logvar) -> the log importance weights log p(x | z) + log N(z; 0, I)
    - log N(z; mu, diag exp(logvar)), shape (k, B); log_px_z (k, B), z (k, B, latent_dim), mu and logvar
    (B, latent_dim)."""
    def reference(log_px_z, z, mu, logvar):
        prior = _diagonal_gaussian(torch.zeros_like(mu), torch.zeros_like(mu))
        return log_px_z + prior.log_prob(z) - _diagonal_gaussian(mu, logvar).log_prob(z)  # (k, B)

    def log_normal(z, mu, logvar):  # without the 0.5 log(2 pi) constants
        return (-0.5 * logvar - 0.5 * (z - mu) ** 2 / logvar.exp()).sum(-1)

    spec = Spec("check_log_weights", ("log_px_z", "z", "mu", "logvar"), "the log weights, a tensor of shape (k, B)",
                grad=("log_px_z", "z", "mu", "logvar"),
                hint="log N(z; mu, diag sigma^2) = sum over latent_dim (dim=-1) of -0.5 * (log(2 pi) + logvar + "
                     "(z - mu)**2 / exp(logvar)); the prior is the same with mu = 0, logvar = 0; mu (B, latent_dim) "
                     "broadcasts against z (k, B, latent_dim). Return log_px_z + log prior - log q.",
                mistakes=[(lambda lp, z, mu, lv: lp + log_normal(z, 0 * mu, 0 * lv) - _diagonal_gaussian(mu, lv)
                           .log_prob(z), "your log prior has no log(2 pi) constant but your log q has it (or the "
                                         "other way round): they cancel only if both have it or neither does."),
                          (lambda lp, z, mu, lv: lp + log_normal(z, 0 * mu, 0 * lv) - log_normal(z, mu, 2 * lv),
                           "your log q uses sigma where sigma^2 = exp(logvar) belongs (std and variance confused)."),
                          (lambda lp, z, mu, lv: lp - log_normal(z, 0 * mu, 0 * lv) + log_normal(z, mu, lv),
                           "the signs of your log prior and log q are swapped: the weight is p(x, z) / q(z | x).")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(9)
    k, batch, dim = _randint(g, 1, 6), _randint(g, 2, 5), _randint(g, 2, 6)

    def draw(k: int, batch: int, dim: int, gen: torch.Generator) -> tuple:
        mu, logvar = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, batch, dim, generator=gen)  # (k, B, latent_dim)
        return -100 - 20 * torch.rand(k, batch, generator=gen), z, mu, logvar

    cases = [
        Case("k = 3, B = 2, latent_dim = 2, logvar = 0", (torch.tensor([[-90.0, -100.0]] * 3),
                                                           torch.randn(3, 2, 2, generator=fixed),
                                                           torch.randn(2, 2, generator=fixed), torch.zeros(2, 2))),
        Case("k = 5, B = 4, latent_dim = 3", draw(5, 4, 3, fixed)),
        Case(f"k = {k}, B = {batch}, latent_dim = {dim} drawn for this call", draw(k, batch, dim, g)),
    ]
    _check(fn, spec, cases, reference, "torch.distributions' log densities")
