"""What the sample-quality meter costs: the digit classifier's features and predictions for 10,000 images.

    python benchmarks/meter.py --docs

Times, on the 10,000 MNIST test images, each meter of course_utils: predict_digits (class coverage and label
agreement read it), classifier_features, and frechet_distance between the two halves of the test set (two
feature passes over 5,000 images and the closed form). The classifier is the course's full-mode one, loaded from its
checkpoint (trained once if there is none). Each figure is the best of 3 rounds after a warm-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _report import measured, mnist_folder, publish  # noqa: E402


def best_seconds(fn: Callable[[], object], rounds: int = 3) -> float:
    """The best of `rounds` timed calls of fn, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the MNIST files (default: COURSE_DATA or data/)")
    parser.add_argument("--docs", action="store_true", help="write docs/_generated/meter.md")
    args = parser.parse_args()
    os.environ["COURSE_DATA"] = str(mnist_folder(args.data))
    os.environ["COURSE_FAST"] = "0"  # the full-mode classifier, the one the notebooks measure with

    from course_utils.classifier import class_coverage, digit_classifier, predict_digits, test_accuracy
    from course_utils.data import load_mnist
    from course_utils.frechet import classifier_features, frechet_distance

    classifier = digit_classifier("cpu", progress=False)
    x_test, _ = load_mnist("test")
    rows = [("predict_digits", "the digit read in each image (class coverage, label agreement)",
             lambda: predict_digits(x_test, classifier)),
            ("class_coverage", "counts, entropy and digits covered", lambda: class_coverage(x_test, classifier)),
            ("classifier_features", "128 features per image", lambda: classifier_features(x_test, classifier)),
            ("frechet_distance", "5,000 images against the other 5,000",
             lambda: frechet_distance(x_test[:5000], x_test[5000:], classifier))]
    lines = ["| meter, on the 10,000 test images | what it computes | seconds |", "| --- | --- | ---: |"]
    for name, what, fn in rows:
        lines.append(f"| `{name}` | {what} | {best_seconds(fn):.2f} |")
    accuracy = test_accuracy(classifier)
    halves = frechet_distance(x_test[:5000], x_test[5000:], classifier)
    lines += ["", f"The classifier reads {100 * accuracy:.2f}% of the test digits right; the Frechet distance between "
              f"the two halves of the test set, the meter's floor for two sets of real digits of this size, is "
              f"{halves:.2f}. " + measured("best of 3 rounds, CPU")]
    publish("\n".join(lines) + "\n", "meter.md", args.docs)


if __name__ == "__main__":
    main()
