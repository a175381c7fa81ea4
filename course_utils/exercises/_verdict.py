"""The machinery every check shares: call the learner's function, inspect its result, compare, print the verdict."""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch


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
    """Run ``check(fn, *args)`` without printing and without counting towards the hints; whether it passed."""
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
