"""Checks of the autoencoder's training and its image metrics: check_reconstruction_loss, check_training_step,
check_psnr, check_threshold."""
from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils import exercises  # exercises._fresh_generator is looked up at call time: tests replace it
from course_utils.exercises._references import _bce
from course_utils.exercises._verdict import (Case, Spec, _as_number, _call, _check, _differences, _NotYet, _randint,
                                             _report, _uniform)


def check_reconstruction_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(x_hat, x) -> binary cross-entropy summed over pixels, shape (B,)."""
    spec = Spec("check_reconstruction_loss", ("x_hat", "x"), "the loss of each image, a tensor of shape (B,)",
                grad=("x_hat",),
                hint="-(x * log(x_hat) + (1 - x) * log(1 - x_hat)), summed over all pixels of each image: flatten to "
                     "(B, 784) and sum over dim=1, or use F.binary_cross_entropy(..., reduction='none').",
                mistakes=[(lambda x_hat, x: _bce(x_hat, x) / x[0].numel(),
                           "your loss is the mean over the pixels, 784 times too small: sum over them instead."),
                          (lambda x_hat, x: _bce(x, x_hat), "x_hat and x are swapped in your formula: the log "
                                                            "applies to the reconstruction x_hat.")])
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(1)
    half = torch.full((2, 1, 28, 28), 0.5)
    batch = _randint(g, 2, 6)
    cases = [
        Case("x_hat = 0.5 everywhere, x = 0 or 1", (half, torch.rand(2, 1, 28, 28, generator=fixed).round())),
        Case("a random batch of 3 grey images", (torch.rand(3, 1, 28, 28, generator=fixed).clamp(0.05, 0.95),
                                                 torch.rand(3, 1, 28, 28, generator=fixed))),
        Case(f"a batch of {batch} images drawn for this call",
             (torch.rand(batch, 1, 28, 28, generator=g).clamp(0.02, 0.98), torch.rand(batch, 1, 28, 28, generator=g))),
    ]
    _check(fn, spec, cases, _bce, "the binary cross-entropy summed over pixels")


def check_psnr(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(x_hat, x) -> PSNR in dB per image, shape (B,), for pixels in [0, 1], against a NumPy computation."""
    def reference(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # 10 log10(MAX^2 / MSE), MAX = 1
        err = ((x_hat.detach().numpy() - x.detach().numpy()) ** 2).reshape(len(x), -1).mean(axis=1)  # (B,)
        return torch.from_numpy(10 * np.log10(1.0 / err))

    spec = Spec("check_psnr", ("x_hat", "x"), "the PSNR of each image in dB, a tensor of shape (B,)",
                hint="for each image, the mean over its pixels of (x_hat - x)**2 (flatten(1).mean(dim=1)), then "
                     "10 * torch.log10(1 / mse): log base 10, one value per image.")
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(4)
    zeros = torch.zeros(2, 1, 28, 28)
    offset = torch.stack([torch.full((1, 28, 28), 0.1), torch.full((1, 28, 28), 0.5)])  # MSE 0.01 and 0.25
    flat_x = torch.rand(4, 784, generator=fixed)
    batch, noise = _randint(g, 2, 6), _uniform(g, 0.02, 0.5)
    fresh_x = torch.rand(batch, 1, 28, 28, generator=g)
    cases = [
        Case("x = 0, x_hat = 0.1 and 0.5 everywhere (20 dB and 6.02 dB)", (offset, zeros)),
        Case("a random batch of 3 images (B, 1, 28, 28)", (torch.rand(3, 1, 28, 28, generator=fixed),
                                                           torch.rand(3, 1, 28, 28, generator=fixed))),
        Case("4 flattened images (B, 784) with a little noise",
             ((flat_x + 0.2 * torch.randn(4, 784, generator=fixed)).clamp(0, 1), flat_x)),
        Case(f"a batch of {batch} images with noise {noise:.2g} drawn for this call",
             ((fresh_x + noise * torch.randn(batch, 1, 28, 28, generator=g)).clamp(0, 1), fresh_x)),
    ]
    _check(fn, spec, cases, reference, "the PSNR computed with NumPy")


def check_threshold(fn: Callable[[torch.Tensor, float], float]) -> None:
    """Check fn(normal_scores, max_fpr) -> a threshold that flags (score > threshold) a fraction max_fpr of the
    normal scores.

    On continuous scores that is achievable to within one image, so the check asks for exactly that.
    """
    spec = Spec("check_threshold", ("normal_scores", "max_fpr"), "one number, the threshold",
                hint="flag a fraction max_fpr of the normal scores: the threshold is their (1 - max_fpr) quantile, "
                     "e.g. torch.quantile(normal_scores, 1 - max_fpr); the scores above it are the false positives.")
    g, fixed = exercises._fresh_generator(), torch.Generator().manual_seed(5)
    n, max_fpr = _randint(g, 30, 3000), round(_uniform(g, 0.01, 0.3), 3)
    cases = [
        Case("the scores 1, 2, ..., 100 shuffled, max_fpr = 0.05", (torch.randperm(100, generator=fixed).float() + 1,
                                                                    0.05)),
        Case("1000 random scores, max_fpr = 0.01", (100 + 20 * torch.randn(1000, generator=fixed), 0.01)),
        Case("37 random scores, max_fpr = 0.1 (3.7 images: 3 or 4 flagged)", (torch.rand(37, generator=fixed), 0.1)),
        Case("50 random scores, max_fpr = 0.2", (torch.rand(50, generator=fixed).exp(), 0.2)),
        Case(f"{n} scores drawn for this call, max_fpr = {max_fpr}",  # distinct scores: ranks k + u, k = 0..n-1
             ((torch.randperm(n, generator=g) + torch.rand(n, generator=g)) ** 2 / n, max_fpr)),
    ]

    def body() -> None:
        for case in cases:
            got, (scores, max_fpr) = _call(fn, case, spec)
            threshold = _as_number(got, case.name)
            flagged, target = int((scores > threshold).sum()), len(scores) * max_fpr
            if abs(flagged - target) >= 1:
                raise _NotYet(f"on {case.name}, your threshold {threshold:.4g} flags {flagged} of {len(scores)} "
                              f"normal scores (FPR {flagged / len(scores):.3f}); it should flag {target:g}, FPR "
                              f"{max_fpr}.")
    _report(spec, body, f"all {len(cases)} thresholds flag the requested fraction of normal scores.")

# ---- one training step ---------------------------------------------------------------------------------------

def _tiny_autoencoder(seed: int) -> torch.nn.Module:
    from ..models import Autoencoder
    with torch.random.fork_rng(devices=[]):  # leaves the learner's random state as it was
        torch.manual_seed(seed)
        return Autoencoder(latent_dim=2, hidden_dim=16)


def _fill_grads(model: torch.nn.Module, seed: int) -> None:
    """Leftover gradients, as after an earlier backward: a step that does not zero them first uses them."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = 10 * torch.randn(p.shape, generator=g)


def _right_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from ..losses import reconstruction_loss
    return reconstruction_loss(model(x), x).mean()


def _variant_step(model, make_optimizer, x, seed, loss_fn=_right_loss, order="zero, backward, step"):
    """Parameters and loss of one step on a copy of model, taken in the given order."""
    model = copy.deepcopy(model)
    _fill_grads(model, seed)
    optimizer = make_optimizer(model.parameters())
    loss = loss_fn(model, x)
    try:
        for action in order.split(", "):
            {"zero": optimizer.zero_grad, "backward": loss.backward, "step": optimizer.step}[action]()
    except RuntimeError:  # an order autograd refuses (a step between the loss and its backward)
        return None, math.nan
    return [p.detach().clone() for p in model.parameters()], loss.item()


def check_training_step(fn: Callable) -> None:
    """Check fn(model, optimizer, x): ONE optimizer step of a plain autoencoder on the loss
    reconstruction_loss(model(x), x).mean(), returning that loss (its value before the step) as a float or a 0-dim
    tensor. The model's parameters after the step must match a reference step on an identical copy."""
    spec = Spec("check_training_step", ("model", "optimizer", "x"), "the loss before the step (loss.item() or loss)",
                hint="optimizer.zero_grad(); loss = reconstruction_loss(model(x), x).mean(); loss.backward(); "
                     "optimizer.step(); return loss.item(). Zero the gradients before backward, so that no gradient "
                     "left over from an earlier step adds to this one.")
    g = exercises._fresh_generator()
    sgd = lambda lr, momentum=0.0: lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum)  # noqa: E731
    adam = lambda lr: lambda p: torch.optim.Adam(p, lr=lr)  # noqa: E731
    lr, batch, seed = round(_uniform(g, 0.01, 0.5), 3), _randint(g, 2, 8), _randint(g, 0, 2 ** 30)
    use_adam = _uniform(g, 0, 1) < 0.5
    # (name, model seed, batch size, optimizer, tolerance on the parameters), the model's gradients filled with
    # garbage first. Adam's first step is about lr * sign(gradient): a gradient that rounding alone sets near 0 can
    # move a weight by a few percent of lr, so Adam's tolerance is lr / 10 (a wrong step moves weights by ~2 lr).
    cases = [
        ("SGD with lr = 0.1 on a batch of 4 images", 0, 4, sgd(0.1), 1e-5),
        ("Adam with lr = 0.01 on a batch of 3 images", 1, 3, adam(0.01), 1e-3),
        (f"Adam with lr = {lr / 10:.4g} on a batch of {batch} images drawn for this call" if use_adam else
         f"SGD with momentum 0.9 and lr = {lr} on a batch of {batch} images drawn for this call", seed, batch,
         adam(lr / 10) if use_adam else sgd(lr, 0.9), lr / 100 if use_adam else 1e-5),
    ]
    from ..losses import reconstruction_loss
    variants = [  # what the parameters look like after classic mistakes, and what to say
        ({"order": "backward, step"}, "your step used gradients left over from before: call optimizer.zero_grad() "
                                      "before loss.backward()."),
        ({"order": "step, backward"}, "your step ran before loss.backward(), on gradients not yet computed."),
        ({"order": "step, zero, backward"}, "your step ran before loss.backward(), on gradients not yet computed."),
        ({"loss_fn": lambda m, x: F.binary_cross_entropy(m(x), x)},
         "your step used the BCE averaged over the pixels too, 784 times too small: sum over the pixels "
         "(reconstruction_loss), then take the batch mean."),
        ({"loss_fn": lambda m, x: reconstruction_loss(m(x), x).sum()},
         "your step used the batch's sum of the losses: take their mean."),
        ({"loss_fn": lambda m, x: F.mse_loss(m(x), x, reduction="none").flatten(1).sum(1).mean()},
         "your step used the squared error: the loss here is reconstruction_loss (binary cross-entropy)."),
        ({"loss_fn": lambda m, x: F.mse_loss(m(x), x)},
         "your step used the mean squared error: the loss here is reconstruction_loss (binary cross-entropy)."),
    ]

    def body() -> None:
        for name, model_seed, batch, make_optimizer, atol in cases:
            gen = torch.Generator().manual_seed(model_seed)
            x = torch.rand(batch, 1, 28, 28, generator=gen)
            model = _tiny_autoencoder(model_seed)
            learner = copy.deepcopy(model)
            _fill_grads(learner, model_seed)
            start = [p.detach().clone() for p in learner.parameters()]
            got, _ = _call(fn, Case(name, (learner, make_optimizer(learner.parameters()), x)), spec, copy_args=False)
            expected, expected_loss = _variant_step(model, make_optimizer, x, model_seed)
            params = [p.detach() for p in learner.parameters()]
            if any(p.device != e.device for p, e in zip(params, expected)):
                raise _NotYet(f"on {name}, your step moved the model to another device: leave it where it is.")
            if all(torch.equal(p, s) for p, s in zip(params, start)):
                raise _NotYet(f"on {name}, the model's parameters did not change: call optimizer.step() after "
                              f"loss.backward().")
            if not all(torch.allclose(p, e, rtol=1e-4, atol=atol) for p, e in zip(params, expected)):
                for kwargs, message in variants:
                    wrong, _ = _variant_step(model, make_optimizer, x, model_seed, **kwargs)
                    if wrong is not None and all(torch.allclose(p, w, rtol=1e-4, atol=atol)
                                                 for p, w in zip(params, wrong)):
                        raise _NotYet(f"on {name}, {message}")
                worst = max(range(len(params)), key=lambda j: float((params[j] - expected[j]).abs().max()))
                raise _NotYet(f"on {name}, the parameters after your step differ from the reference step's: in "
                              f"parameter {worst} ({tuple(params[worst].shape)}), "
                              f"{_differences(params[worst], expected[worst], atol, 1e-4)}.")
            if isinstance(got, torch.Tensor) and got.ndim != 0:
                raise _NotYet(f"on {name}, your function returns a tensor of shape {tuple(got.shape)}: return the "
                              f"batch mean of the loss, one number (loss.item() or the 0-dim loss).")
            value = _as_number(got, name)
            if not math.isclose(value, expected_loss, rel_tol=1e-4):
                with torch.no_grad():
                    after = _right_loss(learner, x).item()
                if math.isclose(value, after, rel_tol=1e-4):
                    raise _NotYet(f"on {name}, you returned the loss after the step ({value:.6g}); return the loss "
                                  f"the step was computed from, before it ({expected_loss:.6g}).")
                raise _NotYet(f"on {name}, your function returned {value:.6g}; the loss before the step is "
                              f"{expected_loss:.6g}.")
    _report(spec, body, f"in all {len(cases)} cases (SGD, Adam, and one drawn for this call) the parameters after "
                        f"your step match the reference step, and the returned loss is the loss before it.")
