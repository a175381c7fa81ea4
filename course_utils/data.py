"""MNIST wherever you are: a local folder, a checked download, or an offline sample; and batches in memory."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from .setup import project_dir, temp_path
from .idx import MD5, MNISTFileError, md5sum, read_idx

DATA_ENV = "COURSE_DATA"        # a folder holding the four MNIST files
CACHE_ENV = "COURSE_CACHE"      # where decoded tensors are cached (default: the course's data/cache/)
OFFLINE_ENV = "COURSE_OFFLINE"  # COURSE_OFFLINE=1: never try to download
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DOWNLOAD_TIMEOUT = 5.0  # seconds a mirror may stay silent before it is given up
_network_error: Optional[str] = None  # why the last download failed: not tried again in this session (process)


def default_data_dir() -> Path:
    """Where MNIST is looked for and downloaded to: $COURSE_DATA, else the repo's data/ folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return project_dir() / "data"


ALL_STEMS = [stem for pair in FILES.values() for stem in pair]


def _names(stem: str) -> tuple[str, ...]:
    """The names a file goes by: the official one, and the one some mirrors use (train-images.idx3-ubyte)."""
    other = stem.replace("-idx", ".idx")
    return stem, f"{stem}.gz", other, f"{other}.gz"


def _find_file(folder: Path, stem: str) -> Optional[Path]:
    for name in _names(stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _official_name(path: Path) -> str:
    """The official (gzipped) name of a data file that may go by another name."""
    return next(f"{stem}.gz" for stem in ALL_STEMS if path.name in _names(stem))


def find_mnist_folder(root: str | Path | None = None, split: Optional[str] = None) -> Optional[Path]:
    """The folder holding the MNIST files of split (all four if None), flat or in torchvision's MNIST/raw/; or None."""
    base = Path(root).expanduser() if root is not None else default_data_dir()
    for folder in (base, base / "MNIST" / "raw"):
        if all(_find_file(folder, stem) for stem in (FILES[split] if split else ALL_STEMS)):
            return folder
    return None


def _describe_folder(base: Path, from_env: bool) -> str:
    """What a data folder holds and lacks, in one sentence for the learner."""
    if not base.is_dir():
        if from_env:
            return (f"{DATA_ENV} is set to {base}, but that folder does not exist: check it for a typo "
                    f"(echo ${DATA_ENV}), or create it and copy the four MNIST files there.")
        return f"no MNIST folder at {base}."
    folder = max((base, base / "MNIST" / "raw"), key=lambda f: sum(bool(_find_file(f, s)) for s in ALL_STEMS))
    found = [path.name for stem in ALL_STEMS if (path := _find_file(folder, stem))]
    missing = [stem for stem in ALL_STEMS if not _find_file(folder, stem)]
    if not found:
        return f"{folder} holds none of the MNIST files ({', '.join(ALL_STEMS)}, gzipped or not)."
    return f"{folder}: found {', '.join(found)}; missing {', '.join(missing)} (gzipped or not)."


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


def _download(name: str, folder: Path) -> Path:
    """Download name through torchvision's mirrors to a temporary name in folder, md5-checked; return that path.

    A failure is remembered for the rest of the session (process), so a dead network costs one wait, not one per call.
    """
    global _network_error
    from torchvision.datasets import MNIST  # its list of mirrors

    if _network_error:
        raise ConnectionError(f"{_network_error} (this failed earlier in this session and is not tried again; "
                              f"restart the kernel to try again)")
    errors = []
    for mirror in MNIST.mirrors:
        print(f"trying {mirror}{name} (given up after {DOWNLOAD_TIMEOUT:g} s of silence) ...", flush=True)
        tmp = temp_path(folder / name)
        try:
            with open(tmp, "xb") as out, urllib.request.urlopen(mirror + name, timeout=DOWNLOAD_TIMEOUT) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            if md5sum(tmp) != MD5[name]:
                raise OSError(f"md5 mismatch for {mirror + name}")
            return tmp
        except OSError as err:  # includes urllib's URLError and socket timeouts
            errors.append(f"{mirror}{name}: {err}")
            tmp.unlink(missing_ok=True)
    _network_error = f"could not download {name}: " + "; ".join(errors)
    raise ConnectionError(_network_error)


def download_mnist(folder: Path) -> Path:
    """Download the four gzipped files into folder, through torchvision's mirrors, md5-checked.

    Each file goes to a temporary name and takes its own name only once its md5 matches, so an
    interrupted download never leaves a half-written file behind. Returns the folder used.
    """
    folder = _writable_dir(folder)
    for name, expected in MD5.items():
        target = folder / name
        if target.is_file() and md5sum(target) == expected:
            continue
        fresh = _download(name, folder)
        if target.exists():
            target.replace(target.with_name(target.name + ".damaged"))  # not the official file: kept, not lost
        os.replace(fresh, target)  # atomic: the file appears whole or not at all
    return folder


def _load_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (_find_file(folder, stem) for stem in FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        # The official md5s tell which file of the pair is wrong; a good file is never blamed.
        wrong = [p for p in (images_path, labels_path) if md5sum(p) != MD5.get(_official_name(p))]
        blamed = wrong[0] if len(wrong) == 1 else None
        fix = (f"{blamed.name} is the one that is not the official file (its md5 checksum differs): replace it "
               f"with the original." if blamed else "Replace both with the original files.")
        raise MNISTFileError(f"{images_path} and {labels_path} do not hold matching 28x28 images and labels "
                             f"(shapes {images.shape} and {labels.shape}). {fix}", blamed)
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
    return _writable_dir(cache_dir) / f"mnist-{split}-{key}-float32.pt"


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]: the x that load_mnist returns."""
    return torch.from_numpy(np.require(images, requirements="W")).unsqueeze(1).float().div_(255)


def _read_cache(cache: Path) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) memory-mapped from a whole, valid cache file; None if it is missing, half-written, stale or unreadable."""
    try:
        saved = torch.load(cache, weights_only=True, mmap=True)
        x, y = saved["x"], saved["y"]
        if x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.shape == x.shape[:1]:
            return x, y
    except PermissionError:
        print(f"note: your account may not read the cache file {cache}, so the MNIST files are decoded again")
    except Exception:  # missing, half-written or stale: decode the IDX files again
        pass
    return None


def _load_cached(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(x, y, from_cache): mapped from the cache file, or decoded, cached and then mapped from it.

    The cache holds x already as float32, and x is memory-mapped from it (copy-on-write): its pages belong to the
    file, which the operating system may drop and read again, so the 188 MB of the training images are not the
    kernel's own (anonymous) memory, the kind a limit like Binder's 2 GB cannot reclaim. When the cache cannot be
    written (a full disk), x is held in memory.
    """
    cache = _cache_path(folder, split)
    found = _read_cache(cache)
    if found is not None:
        return (*found, True)
    images, labels = _load_folder(folder, split)
    x, y = _to_float(images), torch.from_numpy(labels.astype(np.int64))
    if _save_cache(cache, x, y):
        found = _read_cache(cache)  # the copy in the file replaces the one in memory
    return (*(found or (x, y)), False)


def _save_cache(cache: Path, x: torch.Tensor, y: torch.Tensor) -> bool:
    """Write x and y to cache, whole or not at all; a full disk only warns (the data is loaded). True if written."""
    tmp = temp_path(cache)
    try:
        with open(tmp, "xb") as f:  # a full disk shows up as the plain OSError of a write
            torch.save({"x": x, "y": y}, f)
        os.replace(tmp, cache)  # atomic: a half-written cache file never has the cache's name
        return True
    except (OSError, RuntimeError) as err:  # torch.save's writer reports a short write (a full disk) as RuntimeError
        needed = (x.nbytes + y.nbytes) / 1e6
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        if isinstance(err, RuntimeError) and shutil.disk_usage(cache.parent).free < needed * 1e6:
            reason = "No space left on device"
        warnings.warn(f"MNIST is loaded but not cached: writing {cache} failed ({reason}); the cache "
                      f"needs about {needed:.1f} MB. Every load decodes the files again (a few seconds) and holds "
                      f"the images in memory until you free some space or set {CACHE_ENV} to a folder with room.",
                      stacklevel=4)
        return False
    finally:
        tmp.unlink(missing_ok=True)


SAMPLE_FILE = Path(__file__).resolve().parent / "sample" / "mnist_sample.npz"  # package data: PROVENANCE.md beside it


def load_sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The course's offline sample of real MNIST digits: 4,000 train or 1,000 test images, uint8, and their labels.

    Made from the official files by scripts/make_mnist_sample.py (400 and 100 of each digit); sample/PROVENANCE.md
    records how, its checksum and MNIST's licence.
    """
    with np.load(SAMPLE_FILE) as sample:
        return sample[f"{split}_images"], sample[f"{split}_labels"]


def _replace_damaged(err: MNISTFileError) -> Path:
    """Download a checked copy of the file err blames; only then move the bad one aside (name.damaged).

    Re-raises err when no file is blamed or the download fails: then nothing has been moved.
    """
    damaged = err.path
    if damaged is None:
        raise err
    print(f"{err}\nDownloading a fresh copy of {damaged.name} ...")
    name = _official_name(damaged)
    folder = _writable_dir(damaged.parent)
    try:
        fresh = _download(name, folder)
    except ConnectionError as download_error:
        raise err from download_error
    if folder != damaged.parent:  # a read-only data folder: the fresh copy and its partners go to one of our own
        os.replace(fresh, folder / name)
        return download_mnist(folder)
    damaged.replace(damaged.with_name(damaged.name + ".damaged"))  # kept, not deleted: nothing is lost
    os.replace(fresh, folder / name)
    return folder


def _in_words(folder: Path, root: str | Path | None) -> str:
    """Where the files were found, said the same way on every machine (no absolute path of this one)."""
    if root is not None:
        return "the folder passed as root"
    if os.environ.get(DATA_ENV):
        base = Path(os.environ[DATA_ENV]).expanduser().resolve()
        if folder.resolve() in (base, base / "MNIST" / "raw"):
            return f"the folder in {DATA_ENV}"
    try:
        return f"the course's {folder.resolve().relative_to(project_dir())}/ folder"
    except ValueError:
        return str(folder).replace(str(Path.home()), "~")


def load_mnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as (x, y): x float32 (N, 1, 28, 28) in [0, 1], y int64 (N,).

    Looks in root (or $COURSE_DATA, or the repo's data/ folder), then downloads, then falls back to
    the offline sample with a warning. Prints one line naming the source it used. x is memory-mapped from the cache
    (data/cache/, or $COURSE_CACHE) when it could be written: an ordinary tensor, whose pages the system reads from
    that file; changing x in place changes this copy only, never the file.
    """
    if split not in FILES:
        raise ValueError(f"split={split!r} is not known: use split='train' or split='test'.")
    folder = find_mnist_folder(root, split)
    offline = os.environ.get(OFFLINE_ENV, "0") not in ("", "0")
    if folder is None:
        target = Path(root).expanduser() if root is not None else default_data_dir()
        print(_describe_folder(target, from_env=root is None and bool(os.environ.get(DATA_ENV))))
        if not offline:
            try:
                folder = download_mnist(target)
                print(f"downloaded MNIST into {folder}")
            except ConnectionError as err:
                print(f"no MNIST files and no download: {err}")
    if folder is not None:
        try:
            x, y, cached = _load_cached(folder, split)
        except MNISTFileError as err:
            if offline:
                raise
            folder = _replace_damaged(err)
            x, y, cached = _load_cached(folder, split)
        print(f"MNIST {split}: {len(y):,} images from {_in_words(folder, root)}{' (cache)' if cached else ''}")
        return x, y
    images, labels = load_sample(split)
    message = (f"MNIST {split}: using the offline SAMPLE of {len(labels):,} images (the course's own), not the "
               f"full set. For all 70,000 images connect to the internet once, or set {DATA_ENV} to a folder "
               f"holding the four MNIST files.")
    print(message)
    warnings.warn(message, stacklevel=2)
    return _to_float(images), torch.from_numpy(labels.astype(np.int64))  # (N, 1, 28, 28), (N,)


def batches(x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 128, shuffle: bool = True,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (x, y) mini-batches from in-memory tensors: one shuffled index per epoch, no per-image work."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive whole number, e.g. 128.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels: pass labels that match the images.")
    n = len(x)
    order = torch.randperm(n, generator=generator, device="cpu").to(x.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start:start + batch_size], (y[start:start + batch_size] if y is not None else None)
        else:
            index = order[start:start + batch_size]  # index_select copies whole rows: faster than x[index] (docs)
            yield x.index_select(0, index), (y.index_select(0, index) if y is not None else None)


def binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed black-and-white draw of grey images: each pixel 1 with probability x, else 0 (same seed, same draw).

    Binarized MNIST is what papers report likelihoods on: a Bernoulli p(x | z) is a true distribution over 0/1
    pixels, not over grey levels. Training uses a fresh draw per batch (fit's binarize=True); the test set is drawn
    once, with this function, so that every model is scored on the same images.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or len(x) and (x.min() < 0 or x.max() > 1):
        raise ValueError("binarize takes float images with pixel values in [0, 1], as load_mnist returns them.")
    return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
