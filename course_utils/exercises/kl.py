"""Checks of the KL term and the losses built on it: check_kl, check_kl_gaussians, check_vae_loss, check_free_bits."""
from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import Normal, kl_divergence

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._references import _bce, _diagonal_gaussian, _gaussian_batches, _kl_to_prior
from course_utils.exercises._verdict import Case, Spec, _check, _randint


def check_kl(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(mu, logvar) -> KL(N(mu, diag exp(logvar)) || N(0, I)) per example, shape (B,)."""
    spec = Spec("check_kl", ("mu", "logvar"), "the KL of each example, a tensor of shape (B,)", grad=("mu", "logvar"),
                hint="KL = -0.5 * sum(1 + logvar - mu**2 - exp(logvar)), summed over dim=1 only (one value per "
                     "example); logvar is log(sigma^2), so sigma^2 = exp(logvar).",
                mistakes=[(lambda mu, lv: -_kl_to_prior(mu, lv), "your KL has the wrong sign: a KL is never negative."),
                          (lambda mu, lv: -0.5 * (1 + lv - mu ** 2 - (0.5 * lv).exp()).sum(1),
                           "your KL uses sigma = exp(0.5 * logvar) where sigma^2 = exp(logvar) belongs."),
                          (lambda mu, lv: _kl_to_prior(mu, lv) / mu.shape[1],
                           "your KL is the mean over the latent dimensions; it is their sum.")])
    _check(fn, spec, _gaussian_batches(exercises._fresh_generator()), _kl_to_prior, "torch.distributions' KL")


def check_kl_gaussians(fn: Callable[..., torch.Tensor]) -> None:
    """Check fn(mu_q, logvar_q, mu_p, logvar_p) -> KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))),
    per example and summed over latent_dim: shape (B,)."""
    def reference(mu_q, logvar_q, mu_p, logvar_p):
        return kl_divergence(_diagonal_gaussian(mu_q, logvar_q), _diagonal_gaussian(mu_p, logvar_p))

    spec = Spec("check_kl_gaussians", ("mu_q", "logvar_q", "mu_p", "logvar_p"),
                "the KL of each example, a tensor of shape (B,)", grad=("mu_q", "logvar_q", "mu_p", "logvar_p"),
                hint="per latent unit, KL = 0.5 * (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)**2) / "
                     "exp(logvar_p) - 1); then sum over dim=1. With mu_p = 0, logvar_p = 0 it is the KL to N(0, I).",
                mistakes=[(lambda mq, lq, mp, lp: _kl_to_prior(mq, lq),
                          "your KL ignores p: it is the KL to N(0, I), right only when mu_p = 0 and logvar_p = 0."),
                          (lambda mq, lq, mp, lp: reference(mp, lp, mq, lq),
                           "your result is KL(p || q), the other direction: the KL is not symmetric.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(1)
    batch, dim = _randint(g, 2, 6), _randint(g, 2, 8)
    q = (torch.randn(3, 4, generator=fixed), torch.randn(3, 4, generator=fixed))
    cases = [
        Case("p = N(0, I), a random q (the KL of notebook 04)", (*q, torch.zeros(3, 4), torch.zeros(3, 4))),
        Case("q = p, both non-standard (KL = 0)", (*q, q[0].clone(), q[1].clone())),
        Case("a random q and a random p (mu_p != 0, logvar_p != 0)",
             (*q, torch.randn(3, 4, generator=fixed), torch.randn(3, 4, generator=fixed))),
        Case(f"a batch of {batch} with latent_dim {dim} drawn for this call",
             tuple(torch.randn(batch, dim, generator=g) for _ in range(4))),
    ]
    _check(fn, spec, cases, reference, "torch.distributions' KL")


def check_vae_loss(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(x_hat, x, mu, logvar) -> the negative ELBO: per image BCE summed over pixels + KL, then the batch
    mean (a 0-dim tensor)."""
    def reference(x_hat, x, mu, logvar):  # -log p(x | z) + KL(q(z | x) || N(0, I)), per image, then the batch mean
        return (_bce(x_hat, x) + _kl_to_prior(mu, logvar)).mean()

    spec = Spec("check_vae_loss", ("x_hat", "x", "mu", "logvar"), "the loss, one number (a 0-dim tensor)",
                grad=("x_hat", "mu", "logvar"),
                hint="for each image, the binary cross-entropy summed over its 784 pixels plus the KL summed over "
                     "latent_dim; then the mean over the batch, one number (a 0-dim tensor): (bce + kl).mean().",
                mistakes=[(lambda *a: reference(*a) / 784,
                           "your loss is the right one divided by 784: the article's per-pixel scale (BCE mean over "
                           "pixels, KL / 784). Sum the BCE over the 784 pixels and the KL over latent_dim instead, so "
                           "the loss is in nats per image."),
                          (lambda *a: reference(*a) * len(a[0]),
                           "your loss is the batch's sum, B times too large. Take the mean over the batch (dim 0) "
                           "after summing each image's terms."),
                          (lambda x_hat, x, mu, lv: _bce(x_hat, x).mean(), "your loss leaves out the KL term."),
                          (lambda x_hat, x, mu, lv: (_bce(x_hat, x) - _kl_to_prior(mu, lv)).mean(),
                           "your loss subtracts the KL: the negative ELBO adds it.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(2)
    half, zeros = torch.full((2, 1, 28, 28), 0.5), torch.zeros(2, 3)
    batch, dim = _randint(g, 2, 6), _randint(g, 2, 8)
    cases = [
        Case("x_hat = 0.5 everywhere, mu = 0, logvar = 0 (the loss is 784 * log 2)",
             (half, half.round(), zeros, zeros)),
        Case("a random batch of 4 images with latent_dim 3",
             (torch.rand(4, 1, 28, 28, generator=fixed).clamp(0.05, 0.95), torch.rand(4, 1, 28, 28, generator=fixed)
              .round(), torch.randn(4, 3, generator=fixed), torch.randn(4, 3, generator=fixed))),
        Case(f"a batch of {batch} images with latent_dim {dim} drawn for this call",
             (torch.rand(batch, 1, 28, 28, generator=g).clamp(0.05, 0.95),
              torch.rand(batch, 1, 28, 28, generator=g).round(), torch.randn(batch, dim, generator=g),
              torch.randn(batch, dim, generator=g))),
    ]
    _check(fn, spec, cases, reference, "the reference negative ELBO")


def check_free_bits(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Check fn(mu, logvar, free_bits) -> the free-bits KL term (Kingma et al. 2016, appendix C.8), a 0-dim tensor:
    for each latent unit the batch mean of KL(q(z_u | x) || N(0, 1)), clamped from below at free_bits, summed over
    the units. Units under free_bits get no gradient."""
    def reference(mu, logvar, free_bits):
        kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))  # (B, latent_dim), per unit
        return kl.mean(0).clamp(min=free_bits).sum()  # max(free_bits, batch mean) per unit, summed

    def unit_kl(mu, logvar):  # (B, latent_dim) -> (latent_dim,)
        return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).mean(0)

    spec = Spec("check_free_bits", ("mu", "logvar", "free_bits"), "the KL term, one number (a 0-dim tensor)",
                grad=("mu", "logvar"),
                hint="kl = 0.5 * (mu**2 + exp(logvar) - 1 - logvar), shape (B, latent_dim); average it over the batch "
                     "(dim=0) to get one KL per unit, clamp each at free_bits (kl.clamp(min=free_bits)), then sum "
                     "over the units.",
                mistakes=[(lambda mu, lv, lam: kl_divergence(Normal(mu, torch.exp(0.5 * lv)), Normal(0.0, 1.0))
                           .clamp(min=lam).mean(0).sum(), "you clamp each example's KL; free bits clamps each unit's "
                                                          "batch mean."),
                          (lambda mu, lv, lam: unit_kl(mu, lv).sum(), "your result is the KL summed over the units "
                                                                      "without a clamp per unit (a clamp of the total "
                                                                      "gives the same here): each unit whose KL is "
                                                                      "below free_bits must count free_bits."),
                          (lambda mu, lv, lam: unit_kl(mu, lv).sum().clamp(min=lam), "you clamp the total KL; free "
                                                                                     "bits clamps each unit.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(8)
    scales = torch.tensor([2.0, 0.3, 0.05, 1.0])  # per-unit KLs well apart
    mu, logvar = scales * torch.randn(6, 4, generator=fixed), scales * torch.randn(6, 4, generator=fixed)
    batch, dim = _randint(g, 3, 8), _randint(g, 3, 8)
    fresh_mu = (0.1 + torch.rand(dim, generator=g)) * torch.randn(batch, dim, generator=g)
    fresh_logvar = 0.5 * torch.rand(dim, generator=g) * torch.randn(batch, dim, generator=g)
    kls = unit_kl(fresh_mu.double(), fresh_logvar.double()).sort().values
    gap = int((kls[1:] - kls[:-1]).argmax())
    free_bits = float((kls[gap] + kls[gap + 1]) / 2)  # in the widest gap: units on both sides, well apart from it
    cases = [
        Case("free_bits = 0 (the batch-mean KL)", (mu, logvar, 0.0)),
        Case("free_bits = 0.1, some units below it and some above", (mu, logvar, 0.1)),
        Case("free_bits = 10 (every unit below it: the term is 4 * 10)", (mu, logvar, 10.0)),
        Case(f"a batch of {batch} with latent_dim {dim} drawn for this call, free_bits = {free_bits:.3g}",
             (fresh_mu, fresh_logvar, free_bits)),
    ]
    _check(fn, spec, cases, reference, "the free-bits KL of torch.distributions' per-unit KL")
