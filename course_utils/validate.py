"""Checks of what a learner passes in, with errors that say what was expected and how to fix it.

They run where values enter: data loading, the losses and the public functions a learner calls. Models check only
what reads no values (shape and device), so a forward pass never scans its input.
"""
from __future__ import annotations

import torch


class NotFiniteError(ValueError):
    """A tensor holds NaN or inf: in training, the sign of a model whose weights blew up."""


def check_tensor(t: object, name: str) -> torch.Tensor:
    """t itself if it is a floating-point tensor with no NaN or inf; else a ValueError/TypeError."""
    _check_float(t, name)
    if t.numel() and not _finite(*torch.aminmax(t)):
        _raise_not_finite(name)
    return t


def _check_float(t: object, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}. Convert it with torch.as_tensor(...).")
    if not t.is_floating_point():
        fix = f"{name}.float() / 255 (raw 0-255 pixels)" if t.dtype == torch.uint8 else f"{name}.float()"
        raise TypeError(f"{name} must hold floats, got dtype {t.dtype}. Convert it with {fix}.")


def _finite(lo: torch.Tensor, hi: torch.Tensor) -> bool:
    # min and max propagate NaN and show an inf, so one pass over t (aminmax) tells whether all of it is finite
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def _raise_not_finite(name: str) -> None:
    raise NotFiniteError(f"{name} contains NaN or inf. Check the step that produced it (a too-large learning rate "
                     f"makes a model's outputs blow up).")


def check_image_shape(x: object, name: str = "x", image_size: int = 784) -> torch.Tensor:
    """x as a float tensor shaped like a batch of images, (B, 1, 28, 28) or (B, 784); reads no pixel values."""
    _check_float(x, name)
    if x.ndim < 2 or x[0].numel() != image_size:
        raise ValueError(f"{name} must be a batch of images, shape (B, 1, 28, 28) or (B, {image_size}); got "
                         f"{tuple(x.shape)}. For a single image add a batch dimension: {name}.unsqueeze(0).")
    return x


def check_images(x: object, name: str = "x", image_size: int = 784) -> torch.Tensor:
    """x as a float tensor of images (B, 1, 28, 28) or (B, 784) with finite values in [0, 1]."""
    check_image_shape(x, name, image_size)
    if len(x):
        lo, hi = torch.aminmax(x)  # one pass over the images for both finiteness and range
        if bool((lo >= 0) & (hi <= 1)):  # one test: NaN fails every comparison, and inf fails the range
            return x
        if not _finite(lo, hi):
            _raise_not_finite(name)
        fix = ("End the decoder with a sigmoid (nn.Sigmoid() or torch.sigmoid) so that it outputs probabilities."
               if name == "x_hat" else f"Scale raw 0-255 pixels with {name} / 255.")
        raise ValueError(f"{name} must have pixel values in [0, 1]; got [{lo.item():.3g}, {hi.item():.3g}]. {fix}")
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """A ValueError unless a and b have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}. "
                         f"Reshape one of them, e.g. with .view_as(...).")


def check_device(model: torch.nn.Module, x: torch.Tensor, name: str = "x") -> None:
    """A ValueError unless x is on the device of the model's parameters and of their dtype (reads no values)."""
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        raise ValueError(f"{name} is on {x.device} but the model is on {param.device}: move one of them, "
                         f"e.g. {name} = {name}.to(device) and model.to(device).")
    if param is not None and param.dtype != x.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's weights are {param.dtype}: convert {name}, "
                        f"e.g. {name} = {name}.to({param.dtype}).")
