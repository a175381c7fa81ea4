"""Set-up for every notebook: seeds, the device, the fast-mode switch and an environment check."""
from __future__ import annotations

import os
import platform
import random
import secrets
import time
from pathlib import Path

import numpy as np
import torch

FAST_ENV = "COURSE_FAST"  # COURSE_FAST=1: a small subset and few epochs (CI and quick previews)


def project_dir() -> Path:
    """The course's folder: the checkout that holds this package, else a cache folder (a pip-installed package)."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.home() / ".cache" / "course_utils"


def temp_path(target: Path) -> Path:
    """A unique hidden name beside target, to write to and then rename: opened there, a file gets the umask's
    permissions (other accounts may read it, as any new file). Leftovers of target older than an hour, from a
    process that was killed while writing, are removed (a recent one may be another process's, still writing)."""
    for stale in target.parent.glob(f".{target.name}.*.part"):
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and all GPUs) so a run repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS


def get_device() -> torch.device:
    """The fastest device there is: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fast_mode() -> bool:
    """True when the environment asks for the quick version of the course (COURSE_FAST=1)."""
    value = os.environ.get(FAST_ENV, "0").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{FAST_ENV}={value!r} is not understood: set it to 1 (fast) or 0 (full), or unset it.")


def on_colab() -> bool:
    """True inside Google Colab."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def check_env() -> list[str]:
    """Print versions, the device and the data source, with a hint for each problem; return the hints."""
    from . import data  # imported here: data imports torchvision, which is slow to import

    hints = []
    print(f"python       {platform.python_version()}")
    print(f"torch        {torch.__version__}")
    try:
        import torchvision
        print(f"torchvision  {torchvision.__version__}")
    except ImportError:
        hints.append("torchvision is missing: run `pip install -e .` in the course folder.")
    device = get_device()
    print(f"device       {device}  (threads: {torch.get_num_threads()})")
    if device.type == "cpu" and on_colab():
        hints.append("Colab gives you a CPU: choose Runtime > Change runtime type > GPU for faster training.")
    print(f"fast mode    {fast_mode()}  (set {FAST_ENV}=1 for a quick run, 0 for the full course)")
    source = data.find_mnist_folder()
    if source is None:
        print("data         no MNIST folder yet: load_mnist() downloads it, or uses the offline sample")
        hints.append(f"No MNIST files in {data.default_data_dir()}: connect to the internet once, or set "
                     f"{data.DATA_ENV} to a folder holding the four MNIST files.")
    else:
        print(f"data         {source}")
    for hint in hints:
        print(f"hint: {hint}")
    return hints
