"""Make the course's offline MNIST sample, course_utils/sample/mnist_sample.npz, from the four official files.

    python scripts/make_mnist_sample.py --data FOLDER   # FOLDER holds the official .gz files (or set COURSE_DATA)

The sample: 4,000 training images and 1,000 test images, drawn without replacement from the official training and
test sets by numpy's default_rng(2026), 400 and 100 per digit (so every digit is equally present), stored as uint8
(N, 28, 28) images, uint8 labels and the int64 indices they have in the official files, compressed
(np.savez_compressed).
The script checks the source files' MD5 sums against the published ones, writes the sample and prints its SHA-256,
which course_utils/sample/PROVENANCE.md records and the tests check.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from course_utils.data import _load_folder, find_mnist_folder  # noqa: E402
from course_utils.idx import MD5  # noqa: E402

SAMPLE = ROOT / "course_utils" / "sample" / "mnist_sample.npz"
PER_DIGIT = {"train": 400, "test": 100}
SEED = 2026


def pick(labels: np.ndarray, per_digit: int, rng: np.random.Generator) -> np.ndarray:
    """per_digit indices of each digit, drawn without replacement, in increasing order."""
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == d), per_digit, replace=False)
                                   for d in range(10)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("COURSE_DATA"), help="folder with the official MNIST files")
    args = parser.parse_args()
    folder = find_mnist_folder(args.data)
    if folder is None:
        raise SystemExit("Pass --data FOLDER (or set COURSE_DATA) with the four official MNIST .gz files.")
    for path in sorted(folder.glob("*.gz")):
        if path.name in MD5 and hashlib.md5(path.read_bytes()).hexdigest() != MD5[path.name]:
            raise SystemExit(f"{path.name} does not match its published MD5: not the official file.")
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, per_digit in PER_DIGIT.items():
        images, labels = _load_folder(folder, split)
        index = pick(labels, per_digit, rng)
        arrays.update({f"{split}_images": images[index], f"{split}_labels": labels[index], f"{split}_index": index})
    np.savez_compressed(SAMPLE, **arrays)
    print(f"{SAMPLE.relative_to(ROOT)}: {SAMPLE.stat().st_size:,} bytes, "
          f"sha256 {hashlib.sha256(SAMPLE.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
