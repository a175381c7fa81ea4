"""Checks of latent-space tools: check_slerp, check_active_units."""
from __future__ import annotations

from typing import Callable

import torch

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._verdict import Case, Spec, _check, _randint, _uniform


def check_slerp(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """Check fn(z0, z1, steps) -> the spherical interpolation (Shoemake 1985), shape (steps, latent_dim)."""
    def reference(z0, z1, steps):  # sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1
        t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)  # (steps, 1)
        omega = torch.acos((z0 @ z1 / (z0.norm() * z1.norm())).clamp(-1, 1))
        if torch.sin(omega) < 1e-6:  # parallel vectors: the straight line
            return (1 - t) * z0 + t * z1
        return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)

    spec = Spec("check_slerp", ("z0", "z1", "steps"), "the path, a tensor of shape (steps, latent_dim)",
                hint="omega = arccos(z0 . z1 / (|z0| |z1|)); for t = torch.linspace(0, 1, steps) return "
                     "sin((1 - t) omega) / sin(omega) * z0 + sin(t omega) / sin(omega) * z1, one row per t; when "
                     "omega is (nearly) 0, return the straight line (1 - t) z0 + t z1 instead of dividing by 0.")
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(2)
    dim, steps = _randint(g, 3, 30), _randint(g, 3, 9)
    same = torch.tensor([1.0, 2.0, 2.0])  # norm exactly 3: the cosine is exactly 1, so sin(omega) is exactly 0
    cases = [
        Case("z0 = (1, 0), z1 = (0, 1), steps = 3 (a quarter circle)", (torch.tensor([1.0, 0.0]),
                                                                       torch.tensor([0.0, 1.0]), 3)),
        Case("two 20-D vectors of norms about 4.5 and 1.5, steps = 5",
             (torch.randn(20, generator=fixed), 0.3 * torch.randn(20, generator=fixed), 5)),
        Case("z0 = z1 (parallel vectors: sin(omega) = 0), steps = 4", (same, same.clone(), 4)),
        Case(f"two {dim}-D vectors of unequal norms drawn for this call, steps = {steps}",
             (_uniform(g, 0.3, 3) * torch.randn(dim, generator=g), _uniform(g, 0.3, 3) * torch.randn(dim, generator=g),
              steps)),
    ]
    _check(fn, spec, cases, reference, "the spherical interpolation")


def check_active_units(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Check fn(mu, threshold) -> bool mask (latent_dim,) of units whose mean varies over the data by > threshold."""
    spec = Spec("check_active_units", ("mu", "threshold"), "a bool tensor with one entry per unit, shape (latent_dim,)",
                hint="a unit is active when the variance of its mean over the data set, mu[:, u].var(), is above the "
                     "threshold: take the variance over dim=0 (the images), not over the units, compare it with the "
                     "threshold, and return the comparison (a bool tensor with one entry per unit).")
    g = exercises._fresh_generator()
    signs = torch.tensor([1.0, -1.0]).repeat(50).unsqueeze(1)  # (100, 1): +-1, variance exactly 1 over the data
    variances = torch.tensor([0.0, 0.005, 0.02, 1.0, 4.0])
    mu = signs * variances.sqrt() + torch.tensor([5.0, -3.0, 0.0, 1.0, 0.0])  # (100, 5): offsets do not count
    dim, threshold = _randint(g, 3, 8), 10 ** _uniform(g, -3, 0)
    ratios = torch.where(torch.rand(dim, generator=g) < 0.5, _uniform(g, 0.1, 0.6), _uniform(g, 1.6, 10))
    noise = torch.randn(200, dim, generator=g)
    noise = (noise - noise.mean(0)) / noise.std(0, unbiased=False)  # variance exactly 1 over the data
    fresh = noise * (threshold * ratios).sqrt() + 3 * torch.randn(dim, generator=g)
    cases = [
        Case("means with variances 0, 0.005, 0.02, 1, 4 over the data (threshold 0.01)", (mu, 0.01)),
        Case("the same means with threshold 2", (mu, 2.0)),
        Case("a single unit that never moves", (torch.full((10, 1), 7.0), 0.01)),
        Case(f"{dim} units drawn for this call, threshold {threshold:.3g}", (fresh, threshold)),
    ]
    _check(fn, spec, cases, lambda mu, threshold: mu.var(dim=0) > threshold, "the variance of each unit's mean")
