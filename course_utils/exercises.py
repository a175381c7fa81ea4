"""Self-checks for the exercises: check_kl(my_kl) prints a verdict, "PASS: ..." or "NOT YET: ...", and returns None.

Each check runs the learner's function on several cases, one of them drawn fresh on every call (so an answer
hard-coded to the fixed cases fails), and compares it with an independent reference: torch.distributions, autograd,
brute force. A check never raises: a crash, None, a wrong type, device, dtype or shape, an input changed in place, a
result that cannot train (where the answer must be differentiable) is a NOT YET that says so. The first NOT YET says
what is wrong; a second NOT YET in a row from the same check adds a hint on how to fix it; a PASS starts over.

For tests: passes(check_kl, my_kl) runs a check silently and returns whether it passed; last_verdict holds the
verdict the last check printed (a Verdict: passed, message).
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence


class Verdict(NamedTuple):
    """What a check printed: whether it passed, and the whole line."""
    passed: bool
    message: str


last_verdict: Verdict | None = None  # the verdict of the last check that ran
_failures: dict[str, int] = {}  # consecutive NOT YETs of each check: the second one adds the hint


class _NotYet(Exception):
    """Raised inside a check with what is wrong; the check prints it as its NOT YET."""


@dataclass
class Spec:
    """What a check expects: the argument names, which of them must get gradients, and its messages."""
    check: str                 # the check's name, for its failure count and for messages
    names: tuple[str, ...]     # names of fn's arguments, in order
    returns: str               # what fn must return, in words (for the "returns None" message)
    hint: str                  # how to fix it: added from the second NOT YET in a row
    grad: tuple[str, ...] = ()  # arguments the result must pass gradients to
    atol: float = 1e-4
    rtol: float = 1e-4
    mistakes: Sequence[tuple[Callable, str]] = ()  # (a classic wrong formula, what to say when the result matches it)


@dataclass
class Case:
    name: str    # what the case is, in words
    args: tuple  # fn's arguments (tensors on the CPU, float32, or numbers)


def _fresh_generator() -> torch.Generator:
    """A generator seeded with random bits: the case drawn from it differs on every call."""
    g = torch.Generator()
    g.seed()
    return g


def _randint(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


# ---- the shared machinery: call, inspect the result, compare, verdict -------------------------------------------

def _report(spec: Spec, body: Callable[[], None], passed: str) -> None:
    """Run body (which raises _NotYet with what is wrong), print the verdict and remember it."""
    global last_verdict
    try:
        with torch.random.fork_rng(devices=[]):  # the notebook's random numbers stay as if the check had not run
            body()
        problem = None
    except _NotYet as err:
        problem = str(err)
    except Exception as err:  # a result so unusual that inspecting it failed: still a verdict, never a crash
        problem = f"your answer could not be checked ({type(err).__name__}: {_first_line(err)})."
    if problem is None:
        _failures[spec.check] = 0
        last_verdict = Verdict(True, "PASS: " + passed)
    else:
        _failures[spec.check] = _failures.get(spec.check, 0) + 1
        hint = f" Hint: {spec.hint}" if _failures[spec.check] > 1 else ""
        last_verdict = Verdict(False, "NOT YET: " + problem + hint)
    print(last_verdict.message)


def passes(check: Callable, fn: object, *args) -> bool:
    """Run check(fn, *args) without printing and without counting towards the hints; whether it passed."""
    saved = dict(_failures)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(fn, *args)
    finally:
        _failures.clear()
        _failures.update(saved)
    return last_verdict is not None and last_verdict.passed


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0][:200] if text else "") or type(err).__name__


def _explain_error(err: Exception) -> str:
    text = str(err)
    if "in-place" in text or "leaf Variable" in text:
        return ("your function changes an input in place (a method ending in _, +=, or x[...] = ...), which "
                "autograd forbids for inputs that need gradients: compute a new tensor instead (x = x * 2, not x *= 2)")
    if "modified by an inplace operation" in text:
        return ("a tensor that the gradients need was changed before loss.backward() ran (for example by "
                "optimizer.step() before loss.backward()): compute the loss, call loss.backward(), then "
                "optimizer.step()")
    if "numpy" in text.lower() and "grad" in text.lower():
        return ("your function converts a tensor that needs gradients to NumPy: NumPy cannot carry gradients, so "
                "compute with torch operations instead")
    return f"your function raised {type(err).__name__}: {_first_line(err)}"


def _call(fn: object, case: Case, spec: Spec, copy_args: bool = True) -> tuple[object, tuple]:
    """fn's result on copies of the case's arguments (those in spec.grad require gradients), and those copies."""
    if fn is None:
        raise _NotYet(f"you passed None instead of a function: define your function with def, then pass it by its "
                      f"name, {spec.check}(my_function).")
    if not callable(fn):
        raise _NotYet(f"you passed a {type(fn).__name__}, not a function: pass the function itself, "
                      f"{spec.check}(my_function), without parentheses after its name.")
    args = tuple(a.detach().clone().requires_grad_(name in spec.grad) if isinstance(a, torch.Tensor) and copy_args
                 else a for name, a in zip(spec.names, case.args))
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    try:
        with torch.enable_grad():
            got = fn(*args)
    except Exception as err:  # a learner's code may fail in any way: report it, do not crash
        raise _NotYet(f"on {case.name}, {_explain_error(err)}.") from None
    for name, a, saved in zip(spec.names, args, before):
        if saved is not None and not (a.shape == saved.shape and torch.equal(a.detach(), saved)):
            raise _NotYet(f"your function changed its input {name} in place (a method ending in _, +=, or "
                          f"{name}[...] = ...): leave the inputs as they are and compute new tensors "
                          f"({name} = {name} * 2, not {name} *= 2).")
    if got is None:
        raise _NotYet(f"your function returns None, as an unfinished answer (... or pass) does: finish it with "
                      f"a return line that gives {spec.returns}.")
    return got, args


def _as_tensor(got: object, expected: torch.Tensor, where: str, numbers_ok: bool = False) -> torch.Tensor:
    """got as a tensor comparable with expected, or a _NotYet that names the problem (type, device, dtype, shape)."""
    if isinstance(got, (np.ndarray, np.generic)) and not (numbers_ok and np.ndim(got) == 0):
        raise _NotYet(f"on {where}, your function returns a NumPy {type(got).__name__}, not a torch.Tensor: compute "
                      f"with torch operations from start to end (a NumPy round trip also cuts the gradients).")
    if isinstance(got, (bool, np.bool_)):
        raise _NotYet(f"on {where}, your function returns the Python bool {got}, not a tensor.")
    if isinstance(got, (int, float, np.generic)):
        if numbers_ok:
            return torch.tensor(float(got), dtype=torch.float64)
        raise _NotYet(f"on {where}, your function returns the Python number {float(got):.6g}, not a tensor: "
                      f".item() and float() turn a tensor into a number that cannot be trained or batched; return "
                      f"the tensor itself.")
    if isinstance(got, (list, tuple)):
        raise _NotYet(f"on {where}, your function returns a {type(got).__name__} of {len(got)} items, not one tensor: "
                      f"compute the whole result with tensor operations (or torch.stack a list of tensors).")
    if not isinstance(got, torch.Tensor):
        raise _NotYet(f"on {where}, your function returns a {type(got).__name__}, not a torch.Tensor.")
    if got.device != expected.device:
        raise _NotYet(f"on {where}, your result is on device '{got.device}' but the inputs are on "
                      f"'{expected.device}': create new tensors on the inputs' device (torch.zeros_like(x), or "
                      f"device=x.device), never on a fixed device.")
    if expected.dtype == torch.bool and got.dtype != torch.bool:
        raise _NotYet(f"on {where}, your result has dtype {got.dtype}; it must be a bool mask (True/False), not "
                      f"a {'0/1 float' if got.is_floating_point() else str(got.dtype)} tensor: return the comparison "
                      f"itself (values > threshold), without .float() or .int(), so that it can index a tensor.")
    if expected.dtype != torch.bool and not got.is_floating_point():
        raise _NotYet(f"on {where}, your result has dtype {got.dtype}; it must hold floats (float32): an integer "
                      f"or bool result has lost the values.")
    if got.dtype in (torch.float16, torch.bfloat16):
        raise _NotYet(f"on {where}, your result has dtype {got.dtype}: half precision keeps only 3 significant "
                      f"digits; keep float32 (no .half() or .bfloat16()).")
    if got.shape != expected.shape:
        raise _NotYet(f"on {where}, your result has shape {tuple(got.shape)}; expected {tuple(expected.shape)}.")
    return got


def _differences(got: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> str | None:
    """None if got and expected agree; else how many values differ and the first three, got against expected."""
    got, expected = got.detach().double(), expected.detach().double()
    close = torch.isclose(got, expected, rtol=rtol, atol=atol)
    if bool(close.all()):
        return None
    if expected.ndim == 0:
        return f"got {got.item():.6g}, expected {expected.item():.6g}"
    bad = (~close).nonzero()
    shown = "; ".join(f"at [{', '.join(str(int(i)) for i in index)}] got {got[tuple(index)].item():.6g}, expected "
                      f"{expected[tuple(index)].item():.6g}" for index in bad[:3])
    return f"{len(bad)} of {expected.numel()} values differ, first {shown}"


def _reference_args(case: Case, spec: Spec) -> tuple:
    """The case's arguments in float64 for the reference (those in spec.grad require gradients)."""
    return tuple(a.detach().double().requires_grad_(name in spec.grad) if isinstance(a, torch.Tensor)
                 and a.is_floating_point() else a for name, a in zip(spec.names, case.args))


def _check_gradients(got: torch.Tensor, args: tuple, expected: torch.Tensor, ref_args: tuple, spec: Spec,
                     where: str) -> None:
    """Gradients of a random weighting of got must reach each argument in spec.grad and equal the reference's."""
    if not got.requires_grad:
        raise _NotYet(f"on {where}, your result cannot train: no gradient flows back to "
                      f"{' and '.join(spec.grad)} (.detach(), .item(), NumPy, torch.no_grad() or torch.tensor(...) "
                      f"cut the graph). Compute it from the inputs with torch operations only.")
    weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    positions = [spec.names.index(name) for name in spec.grad]
    try:
        grads = torch.autograd.grad((got * weights.to(got.dtype)).sum(), [args[i] for i in positions],
                                    allow_unused=True)
    except Exception as err:
        raise _NotYet(f"on {where}, backpropagating through your result failed ({type(err).__name__}: "
                      f"{_first_line(err)}).") from None
    ref_grads = torch.autograd.grad((expected * weights).sum(), [ref_args[i] for i in positions], allow_unused=True)
    for name, grad, ref in zip(spec.grad, grads, ref_grads):
        ref = torch.zeros_like(ref_args[spec.names.index(name)]) if ref is None else ref
        if grad is None:
            if bool(ref.abs().max() > 0):
                raise _NotYet(f"on {where}, no gradient reaches {name}: the part of your result that depends on "
                              f"{name} is cut from the graph (detached, or computed with .item() or NumPy).")
            continue
        diff = _differences(grad, ref, atol=1e-5 * (1 + ref.abs().max().item()), rtol=1e-3)
        if diff is not None:
            raise _NotYet(f"on {where}, your values agree with the reference but the gradient with respect to {name} "
                          f"does not: {diff}. Part of the computation is detached, or your formula differs from the "
                          f"reference in a way these values cannot show.")


def _match_mistake(got: torch.Tensor, ref_args: tuple, spec: Spec) -> str | None:
    """The message of the first classic mistake whose formula gives got, if any."""
    for wrong, message in spec.mistakes:
        try:
            with torch.no_grad():
                value = torch.as_tensor(wrong(*ref_args), dtype=torch.float64)
            if value.shape == got.shape and bool(torch.allclose(got.detach().double(), value, rtol=1e-3, atol=1e-4)):
                return message
        except Exception:  # a mistake's formula that does not apply to this case
            continue
    return None


def _compare(got: torch.Tensor, expected: torch.Tensor, ref_args: tuple, spec: Spec, where: str,
             what: str = "your result") -> None:
    """A _NotYet naming the mistake (or the first differing values) unless got agrees with expected."""
    diff = _differences(got, expected, spec.atol, spec.rtol)
    if diff is not None:
        mistake = _match_mistake(got, ref_args, spec)
        raise _NotYet(f"on {where}, {mistake or f'{what} differs from the reference: {diff}.'}")


def _check(fn: object, spec: Spec, cases: Sequence[Case], reference: Callable, passed: str) -> None:
    """The whole check of a function with a tensor result: call, inspect, compare values, then gradients."""
    def body() -> None:
        results = []
        for case in cases:  # values first: a wrong formula shows as wrong values, where there are any
            got, args = _call(fn, case, spec)
            ref_args = _reference_args(case, spec)
            expected = reference(*ref_args)
            got = _as_tensor(got, expected, case.name)
            _compare(got, expected, ref_args, spec, case.name)
            results.append((case, got, args, expected, ref_args))
        for case, got, args, expected, ref_args in results if spec.grad else ():
            _check_gradients(got, args, expected, ref_args, spec, case.name)
    grads = f", and gradients reach {' and '.join(spec.grad)} as in the reference" if spec.grad else ""
    _report(spec, body, f"all {len(cases)} cases agree with {passed}{grads}.")


# ---- references ---------------------------------------------------------------------------------------------

def _diagonal_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)  # sigma = exp(logvar / 2)


def _kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return kl_divergence(_diagonal_gaussian(mu, logvar), _diagonal_gaussian(torch.zeros_like(mu),
                                                                            torch.zeros_like(mu)))


def _bce(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # -log p(x | z) per image, (B, ...) -> (B,)
    return -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)


def _gaussian_batches(g: torch.Generator) -> list[Case]:
    """mu and logvar cases shared by the KL checks: q = p, a shift, a narrow q, a random batch and a fresh one."""
    batch, dim = _randint(g, 2, 6), _randint(g, 2, 9)
    fixed = torch.Generator().manual_seed(0)
    return [
        Case("mu = 0, logvar = 0 (q is the prior itself)", (torch.zeros(2, 3), torch.zeros(2, 3))),
        Case("mu = 1, logvar = 0", (torch.ones(1, 4), torch.zeros(1, 4))),
        Case("mu = 0, logvar = -2", (torch.zeros(1, 2), torch.full((1, 2), -2.0))),
        Case("a random batch of 5 with latent_dim 8", (torch.randn(5, 8, generator=fixed),
                                                       torch.randn(5, 8, generator=fixed))),
        Case(f"a batch of {batch} with latent_dim {dim} drawn for this call",
             (1.5 * torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g))),
    ]


# ---- the checks ---------------------------------------------------------------------------------------------

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
    _check(fn, spec, _gaussian_batches(_fresh_generator()), _kl_to_prior, "torch.distributions' KL")


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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(1)
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(1)
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(2)
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
    g = _fresh_generator()
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(2)
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
    g = _fresh_generator()
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(3)
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


def check_psnr(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check fn(x_hat, x) -> PSNR in dB per image, shape (B,), for pixels in [0, 1], against a NumPy computation."""
    def reference(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # 10 log10(MAX^2 / MSE), MAX = 1
        err = ((x_hat.detach().numpy() - x.detach().numpy()) ** 2).reshape(len(x), -1).mean(axis=1)  # (B,)
        return torch.from_numpy(10 * np.log10(1.0 / err))

    spec = Spec("check_psnr", ("x_hat", "x"), "the PSNR of each image in dB, a tensor of shape (B,)",
                hint="for each image, the mean over its pixels of (x_hat - x)**2 (flatten(1).mean(dim=1)), then "
                     "10 * torch.log10(1 / mse): log base 10, one value per image.")
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(4)
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


def _as_number(got: object, where: str) -> float:
    """got as one finite Python float (a number, a NumPy scalar or a one-element tensor), or a _NotYet."""
    if isinstance(got, torch.Tensor):
        if got.device.type != "cpu":
            raise _NotYet(f"on {where}, your result is on device '{got.device}' but the inputs are on 'cpu': "
                          f"compute it from the inputs, on their device.")
        if got.numel() != 1:
            raise _NotYet(f"on {where}, your function returns a tensor of shape {tuple(got.shape)}; it must give "
                          f"one number.")
    elif isinstance(got, (list, tuple, str, dict)) or got is None:
        raise _NotYet(f"on {where}, your function returns a {type(got).__name__}; it must give one number.")
    try:
        value = float(got.detach() if isinstance(got, torch.Tensor) else got)
    except Exception:
        raise _NotYet(f"on {where}, your function returns a {type(got).__name__}; it must give one number.") from None
    if not math.isfinite(value):
        raise _NotYet(f"on {where}, your function returns {value}; it must give a finite number.")
    return value


def check_threshold(fn: Callable[[torch.Tensor, float], float]) -> None:
    """Check fn(normal_scores, max_fpr) -> a threshold that flags (score > threshold) a fraction max_fpr of the
    normal scores.

    On continuous scores that is achievable to within one image, so the check asks for exactly that.
    """
    spec = Spec("check_threshold", ("normal_scores", "max_fpr"), "one number, the threshold",
                hint="flag a fraction max_fpr of the normal scores: the threshold is their (1 - max_fpr) quantile, "
                     "e.g. torch.quantile(normal_scores, 1 - max_fpr); the scores above it are the false positives.")
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(5)
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
    g = _fresh_generator()
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(6)
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(8)
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
    g, fixed = _fresh_generator(), torch.Generator().manual_seed(9)
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


# ---- one training step ---------------------------------------------------------------------------------------

def _tiny_autoencoder(seed: int) -> torch.nn.Module:
    from .models import Autoencoder
    with torch.random.fork_rng(devices=[]):  # leaves the learner's random state as it was
        torch.manual_seed(seed)
        return Autoencoder(latent_dim=2, hidden_dim=16)


def _fill_grads(model: torch.nn.Module, seed: int) -> None:
    """Leftover gradients, as after an earlier backward: a step that does not zero them first uses them."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = 10 * torch.randn(p.shape, generator=g)


def _right_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from .losses import reconstruction_loss
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
    g = _fresh_generator()
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
    from .losses import reconstruction_loss
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
