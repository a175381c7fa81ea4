"""The digit classifier: a small CNN trained once on MNIST, the course's meter for the digits a model generates."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .checkpoints import checkpoint_dir, fit_or_load, read_checkpoint
from .data import load_mnist
from .memory import in_batches
from .models import NUM_CLASSES, DigitClassifier
from .setup import fast_mode, get_device
from .validate import check_images

CHECKPOINT = "digit_classifier.pt"  # in checkpoint_dir(): checkpoints/full or checkpoints/fast
FULL = {"num_train": 60_000, "num_test": 10_000, "num_epochs": 5, "lr": 1e-3, "batch_size": 64}  # 99.1 %
FAST = {"num_train": 5_000, "num_test": 1_000, "num_epochs": 2, "lr": 2e-3, "batch_size": 128}  # ~92 %
COVERED = 0.01  # a digit counts as covered when at least 1 % of the samples are read as it

_loaded: dict[tuple[str, str], DigitClassifier] = {}  # (checkpoint path, device) -> the classifier, once per process


def digit_classifier(device: Optional[torch.device | str] = None, progress: bool = True) -> DigitClassifier:
    """The course's digit classifier in eval mode on device (default get_device()): loaded, or trained once and saved.

    It trains through fit_or_load("digit_classifier.pt") on the MNIST training set and is tested on the test set
    (full mode: 5 epochs, at least 99 % test accuracy). In fast mode (COURSE_FAST=1) it sees 5,000 images for 2
    epochs, so the meter is rough (about 92 %): fast-mode numbers measured with it are previews, not results. Later
    calls in the same process return the same object.
    """
    device = torch.device(device) if device is not None else get_device()
    key = (str(checkpoint_dir() / CHECKPOINT), str(device))
    if key not in _loaded:
        settings = FAST if fast_mode() else FULL
        x_train, y_train = load_mnist("train")
        x_test, y_test = load_mnist("test")
        n, m = settings["num_train"], settings["num_test"]
        with torch.random.fork_rng(devices=[]):  # the same initial weights wherever it is called
            torch.manual_seed(0)
            classifier = DigitClassifier().to(device)
        fit_or_load(CHECKPOINT, classifier, (x_train[:n], y_train[:n]), (x_test[:m], y_test[:m]),
                    num_epochs=settings["num_epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                    progress=progress)
        _loaded[key] = classifier.eval()
    return _loaded[key]


def _classifier(classifier: Optional[nn.Module]) -> nn.Module:
    if classifier is None:
        return digit_classifier()
    if not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be a DigitClassifier (or None for the course's own), got "
                        f"{type(classifier).__name__}.")
    return classifier


@torch.no_grad()
def predict_probabilities(images: torch.Tensor, classifier: Optional[nn.Module] = None,
                          batch_size: int = 100) -> torch.Tensor:
    """The classifier's probabilities of each digit, (N, 10) on the CPU, for images (N, 1, 28, 28) in [0, 1].

    In batches of 100: the first convolution's activations are 5 MB (100 x 16 x 28 x 28 floats), not the 50 MB of a
    batch of 1,000; the results do not depend on the batch size."""
    if isinstance(images, torch.Tensor) and images.ndim >= 2 and len(images) == 0:
        return torch.empty(0, NUM_CLASSES)  # nothing to read (check_images needs one image to check the shape)
    check_images(images, "images")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive whole number, e.g. 100.")
    classifier = _classifier(classifier)
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    try:
        return in_batches(lambda xb: classifier(xb.to(device)).softmax(dim=1), images, batch_size)  # (N, 10)
    finally:
        classifier.train(was_training)


def predict_digits(images: torch.Tensor, classifier: Optional[nn.Module] = None,
                   batch_size: int = 100) -> torch.Tensor:
    """The digit the classifier reads in each image: (N,) int64 on the CPU, for images (N, 1, 28, 28) in [0, 1]."""
    return predict_probabilities(images, classifier, batch_size).argmax(dim=1)  # (N, 10) -> (N,)


def _check_not_empty(images: torch.Tensor) -> None:
    if isinstance(images, torch.Tensor) and images.ndim >= 2 and len(images) == 0:
        raise ValueError("images is empty: pass at least one image, e.g. the samples model.sample(1000).")
    check_images(images, "images")


def class_coverage(images: torch.Tensor, classifier: Optional[nn.Module] = None) -> dict:
    """Which digits the images are read as: 'counts' (10,), 'fractions' (10,), 'entropy_bits', 'classes_covered'.

    entropy_bits is the entropy of the predicted-digit distribution, -sum p log2 p: log2(10) = 3.32 bits when every
    digit is equally frequent, 0 when all images are read as one digit. classes_covered counts the digits read in at
    least 1 % of the images.
    """
    _check_not_empty(images)
    counts = torch.bincount(predict_digits(images, classifier), minlength=NUM_CLASSES)  # (10,) int64
    fractions = counts.double() / len(images)
    seen = fractions[fractions > 0]
    entropy_bits = float(-(seen * seen.log2()).sum())  # 0 log 0 = 0: digits never read add nothing
    return {"counts": counts, "fractions": fractions, "entropy_bits": entropy_bits,
            "classes_covered": int((fractions >= COVERED).sum())}


def label_agreement(images: torch.Tensor, y: torch.Tensor, classifier: Optional[nn.Module] = None) -> float:
    """The fraction of images the classifier reads as their label y (N,), e.g. conditional samples decode(z, y)."""
    _check_not_empty(images)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(images),):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be int64 labels of shape ({len(images)},), one per image; got {shape}"
                         f"{' of dtype ' + str(y.dtype) if isinstance(y, torch.Tensor) else ''}. "
                         f"Build it with torch.arange(10).repeat(...) or torch.full((N,), digit).")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"y must hold digits in 0..{NUM_CLASSES - 1}; got {y.min().item()} to {y.max().item()}.")
    return float((predict_digits(images, classifier) == y.cpu()).double().mean())


def confident_fraction(images: torch.Tensor, threshold: float = 0.9, classifier: Optional[nn.Module] = None) -> float:
    """The fraction of images the classifier reads confidently: largest softmax probability above threshold."""
    _check_not_empty(images)
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold={threshold!r} must be a probability in [0, 1), e.g. 0.9.")
    return float((predict_probabilities(images, classifier).max(dim=1).values > threshold).double().mean())


def test_accuracy(classifier: Optional[nn.Module] = None) -> float:
    """The classifier's accuracy on the 10,000 MNIST test images (the fraction it reads right)."""
    x_test, y_test = load_mnist("test")
    return float((predict_digits(x_test, classifier) == y_test).double().mean())


test_accuracy.__test__ = False  # a library function, not a test for pytest to collect


def recorded_test_accuracy(path: Optional[str | Path] = None) -> Optional[float]:
    """The test accuracy of the saved classifier's last epoch, read from its checkpoint (None if there is none)."""
    path = Path(path) if path is not None else checkpoint_dir() / CHECKPOINT
    if not path.exists():
        return None
    errors = read_checkpoint(path).get("history", {}).get("test_error", [])
    return 1 - errors[-1] if errors and math.isfinite(errors[-1]) else None
