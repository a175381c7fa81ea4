"""The single operations behind the training loop's choices, timed on one batch (or on the training set).

    python benchmarks/operations.py --docs

Each pair times what course_utils does against the obvious alternative, on the shapes of the article's VAE: a batch
of 128 images of 784 pixels, the 60,000 training images. Variants take turns, and each figure is the
best of several rounds of many calls (the machine is shared: the best round is the least disturbed one).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _report import measured, publish  # noqa: E402
from course_utils.losses import reconstruction_loss  # noqa: E402
from course_utils.validate import check_images  # noqa: E402


def best_time(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of fn: the best of 5 rounds of `calls` calls, after a warm-up."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def with_backward(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
                  x: torch.Tensor) -> Callable[[], None]:
    """loss(logits, x) summed, and its backward pass to the logits."""
    def run() -> None:
        loss(logits, x).sum().backward()
    return run


def sigmoid_then_bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """What the course does: the decoder's sigmoid, then losses.reconstruction_loss (with its input checks)."""
    return reconstruction_loss(torch.sigmoid(logits), x)


def bce_with_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true", help="also write the table to docs/_generated/operations.md")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(60_000, 1, 28, 28, generator=g)  # the training set's size (values do not matter here)
    index = torch.randperm(60_000, generator=g)[:128]
    logits = (torch.randn(128, 784, generator=g) * 5).requires_grad_()
    x = torch.rand(128, 784, generator=g)

    pairs = [  # (what, course_utils's way, the alternative, calls per round)
        ("the reconstruction loss, forward and backward, one batch",
         ("sigmoid, then `losses.reconstruction_loss`", with_backward(sigmoid_then_bce, logits, x)),
         ("`F.binary_cross_entropy_with_logits`", with_backward(bce_with_logits, logits, x)), 200),
        ("a batch of 128 images from the training set",
         ("`x.index_select(0, index)`", lambda: images.index_select(0, index)),
         ("`x[index]`", lambda: images[index]), 2000),
        ("checking the 60,000 training images (NaN, inf, values in [0, 1])",
         ("`validate.check_images`: one `torch.aminmax` pass", lambda: check_images(images)),
         ("`isfinite().all()`, `min()`, `max()`: three passes",
          lambda: (torch.isfinite(images).all(), images.min(), images.max())), 5),
    ]
    lines = ["| operation | course_utils | time | alternative | time |", "| --- | --- | ---: | --- | ---: |"]
    for what, (ours_name, ours), (other_name, other), calls in pairs:
        ours_s, other_s = best_time(ours, calls), best_time(other, calls)
        lines.append(f"| {what} | {ours_name} | {ours_s * 1e6:,.0f} µs | {other_name} | {other_s * 1e6:,.0f} µs |")
        print(lines[-1], flush=True)
    lines += ["", measured("best of 5 rounds")]
    publish("\n".join(lines) + "\n", "operations.md", args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
