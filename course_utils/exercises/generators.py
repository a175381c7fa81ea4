"""Checks of notebook 09's pieces of modern generators: check_q_sample (diffusion), check_quantize (VQ-VAE)."""
from __future__ import annotations

from typing import Callable

import torch

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._verdict import Case, Spec, _check, _randint


def _alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(1 - betas, dim=0)  # (T + 1,), alpha_bar_0 = 1 since beta_0 = 0


def _q_sample(z0, t, eps, betas):  # sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps
    alpha_bar = _alpha_bars(betas)[t].unsqueeze(1)  # (B,) -> (B, 1)
    return alpha_bar.sqrt() * z0 + (1 - alpha_bar).sqrt() * eps


def _betas(num_steps: int, beta_end: float) -> torch.Tensor:
    return torch.cat([torch.zeros(1), torch.linspace(beta_end / 200, beta_end, num_steps)])  # (T + 1,), beta_0 = 0


def check_q_sample(fn: Callable[..., torch.Tensor]) -> None:
    """Check fn(z0, t, eps, betas) -> z_t = sqrt(alpha_bar_t) z0 + sqrt(1 - alpha_bar_t) eps, shape (B, latent_dim),
    with alpha_bar_t = (1 - beta_1) ... (1 - beta_t), betas (T + 1,) with betas[0] = 0, and t (B,) steps in 1..T."""
    def alpha_bar(betas, t):
        return _alpha_bars(betas)[t].unsqueeze(1)

    spec = Spec("check_q_sample", ("z0", "t", "eps", "betas"), "the noisy codes z_t, a tensor of shape (B, latent_dim)",
                grad=("z0", "eps"),
                hint="alpha_bar = torch.cumprod(1 - betas, dim=0) is the product up to each step; take alpha_bar[t] "
                     "(one value per code, shape (B,)), make it (B, 1) with .unsqueeze(1) so that it multiplies each "
                     "code's row, then return alpha_bar.sqrt() * z0 + (1 - alpha_bar).sqrt() * eps.",
                mistakes=[(lambda z0, t, eps, b: (1 - b)[t].unsqueeze(1).sqrt() * z0 + b[t].unsqueeze(1).sqrt() * eps,
                           "your z_t uses alpha_t = 1 - beta_t, the noise of step t alone; the closed form needs "
                           "alpha_bar_t, the product of alpha_1 ... alpha_t (torch.cumprod)."),
                          (lambda z0, t, eps, b: alpha_bar(b, t) * z0 + (1 - alpha_bar(b, t)) * eps,
                           "your z_t weights z0 and eps by alpha_bar_t and 1 - alpha_bar_t, which are variances: take "
                           "their square roots (.sqrt())."),
                          (lambda z0, t, eps, b: alpha_bar(b, t).sqrt() * z0 + (1 - alpha_bar(b, t)) * eps,
                           "your noise is weighted by 1 - alpha_bar_t, a variance: its standard deviation is "
                           "sqrt(1 - alpha_bar_t)."),
                          (lambda z0, t, eps, b: alpha_bar(b, t - 1).sqrt() * z0
                           + (1 - alpha_bar(b, t - 1)).sqrt() * eps,
                           "your z_t is one step short: it uses alpha_bar_{t-1}. With betas[0] = 0, "
                           "torch.cumprod(1 - betas, 0)[t] is already alpha_bar_t."),
                          (lambda z0, t, eps, b: alpha_bar(b, t + 1).sqrt() * z0 + (1 - alpha_bar(b, t + 1)).sqrt()
                           * eps, "your z_t is one step too far: it uses alpha_bar_{t+1}. With betas[0] = 0, "
                                  "torch.cumprod(1 - betas, 0)[t] is already alpha_bar_t."),
                          (lambda z0, t, eps, b: _alpha_bars(b)[t].sqrt() * z0 + (1 - _alpha_bars(b)[t]).sqrt() * eps,
                           "your alpha_bar[t] has shape (B,) and multiplies the codes (B, latent_dim) along the wrong "
                           "dimension: make it (B, 1) with .unsqueeze(1), one factor per code.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(9)
    betas = _betas(100, 0.05)
    batch, dim, num_steps = _randint(g, 2, 7), _randint(g, 2, 9), _randint(g, 10, 200)
    fresh_betas = _betas(num_steps, 0.02 + 0.2 * float(torch.rand((), generator=g)))
    square = torch.tensor([1, 10, 50, 100])  # B = latent_dim = 4: alpha_bar[t] of shape (B,) broadcasts silently
    cases = [
        Case("t = 1 for every code (one step of noise)", (torch.ones(3, 2), torch.ones(3, dtype=torch.int64),
                                                          torch.zeros(3, 2), betas)),
        Case("four codes at steps 1, 10, 50 and 100 (B = latent_dim = 4)",
             (torch.randn(4, 4, generator=fixed), square, torch.randn(4, 4, generator=fixed), betas)),
        Case("t = T = 100 (almost all noise)", (torch.randn(2, 5, generator=fixed), torch.full((2,), 100),
                                               torch.randn(2, 5, generator=fixed), betas)),
        Case(f"{batch} codes of latent_dim {dim} at random steps of a {num_steps}-step schedule drawn for this call",
             (torch.randn(batch, dim, generator=g), torch.randint(1, num_steps + 1, (batch,), generator=g),
              torch.randn(batch, dim, generator=g), fresh_betas)),
    ]
    _check(fn, spec, cases, _q_sample, "the closed form of the forward process")


def _quantize(z_e, codebook):  # the nearest code by brute force, with the straight-through gradient
    distances = ((z_e.unsqueeze(1) - codebook.unsqueeze(0)) ** 2).sum(-1)  # (N, 1, D) - (1, K, D) -> (N, K)
    z_q = codebook[distances.argmin(dim=1)]  # (N, D)
    return z_e + (z_q - z_e).detach()


def _far_codebook(g: torch.Generator, num_codes: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A codebook (K, D) and vectors (N, D), each vector clearly nearest to one code (no near ties)."""
    codebook = 3 * torch.randn(num_codes, dim, generator=g, dtype=torch.float64)
    pick = torch.randint(0, num_codes, (_randint(g, 3, 8),), generator=g)
    gaps = torch.cdist(codebook, codebook) + 1e9 * torch.eye(num_codes, dtype=torch.float64)
    radius = 0.2 * gaps.min()  # every vector within a fifth of the smallest gap of its code
    noise = torch.randn(len(pick), dim, generator=g, dtype=torch.float64)
    z_e = codebook[pick] + radius * noise / noise.norm(dim=1, keepdim=True) * torch.rand(len(pick), 1, generator=g,
                                                                                        dtype=torch.float64)
    return z_e.float(), codebook.float()


def check_quantize(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(z_e, codebook) -> z_q (N, D): each vector of z_e (N, D) replaced by its nearest code of codebook (K, D),
    with the straight-through gradient (d z_q / d z_e = identity; no gradient to the codebook through z_q)."""
    spec = Spec("check_quantize", ("z_e", "codebook"), "the quantized vectors z_q, a tensor of shape (N, D)",
                grad=("z_e", "codebook"),
                hint="distances = ((z_e.unsqueeze(1) - codebook.unsqueeze(0)) ** 2).sum(-1) is (N, K); "
                     "indices = distances.argmin(dim=1); z_q = codebook[indices]; return "
                     "z_e + (z_q - z_e).detach(): the value of z_q, the gradient of z_e.",
                mistakes=[(lambda z_e, cb: cb[((z_e.unsqueeze(1) - cb.unsqueeze(0)) ** 2).sum(-1).argmax(1)],
                           "your codes are the farthest ones: the nearest code is the argmin of the distances, not "
                           "the argmax."),
                          (lambda z_e, cb: cb[(z_e @ cb.T).argmax(1)],
                           "your codes maximise the dot product z_e . e_k, which is not the nearest code when codes "
                           "have different lengths: use the squared distance ||z_e - e_k||^2 and its argmin.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(11)
    square = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    long_code = torch.tensor([[1.0, 0.0], [10.0, 1.0]])  # (1, 0) is nearer to (1.5, 0.2), (10, 1) has the larger dot
    num_codes, dim = _randint(g, 4, 16), _randint(g, 2, 8)
    cases = [
        Case("4 codes at the corners of a square, 3 vectors near three of them",
             (torch.tensor([[0.3, -0.2], [3.6, 0.4], [4.2, 3.9]]), square)),
        Case("a short code and a long one: nearest is not the largest dot product",
             (torch.tensor([[1.5, 0.2], [9.0, 1.2]]), long_code)),
        Case("8 codes of dim 3", _far_codebook(fixed, 8, 3)),
        Case(f"{num_codes} codes of dim {dim} drawn for this call", _far_codebook(g, num_codes, dim)),
    ]
    _check(fn, spec, cases, _quantize, "the brute-force nearest code with the straight-through gradient")
