"""Shared fixtures: tiny IDX files written byte by byte, independently of course_utils."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """Write a uint8 array as an IDX file: 0x0000, type 0x08, ndim, then big-endian sizes and the bytes."""
    payload = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture
def tiny_mnist():
    """A function that writes a tiny MNIST (7 train, 3 test images) into a folder and returns the arrays."""
    def make(folder: Path, gz: bool = False, layout: str = "flat"):
        rng = np.random.default_rng(1)
        target = folder if layout == "flat" else folder / "MNIST" / "raw"
        arrays = {}
        for split, prefix, n in (("train", "train", 7), ("test", "t10k", 3)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
            write_idx(target / f"{prefix}-images-idx3-ubyte", images, gz)
            write_idx(target / f"{prefix}-labels-idx1-ubyte", labels, gz)
            arrays[split] = (images, labels)
        return arrays
    return make


@pytest.fixture(autouse=True)
def isolated_data(monkeypatch, tmp_path):
    """No test reads or writes the learner's data/ folder or the network unless it asks to."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "checkpoints"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
