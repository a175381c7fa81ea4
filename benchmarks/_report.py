"""What the benchmarks share: the MNIST folder, the command that ran, and their tables, printed and written for the
docs."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

GENERATED = Path(__file__).resolve().parents[1] / "docs" / "_generated"


def mnist_folder(data: str | None) -> Path:
    """The folder holding the four full MNIST files (--data, else COURSE_DATA or data/); exits with a hint if none."""
    from course_utils.data import find_mnist_folder

    folder = find_mnist_folder(data)
    if folder is None:
        print(f"{Path(sys.argv[0]).name} needs the full MNIST files: pass --data FOLDER or set COURSE_DATA.",
              file=sys.stderr)
        raise SystemExit(2)
    return folder


def command() -> str:
    """The command line that ran this benchmark, as the docs quote it: python benchmarks/NAME.py ARGS."""
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def measured(details: str) -> str:
    """The table's last line: the command, the given details, threads, torch version and date."""
    import torch

    threads = torch.get_num_threads()
    return (f"Measured with `{command()}` ({details}, {threads} thread{'s' if threads != 1 else ''}, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}).")


def publish(table: str, name: str, docs: bool) -> None:
    """Print the Markdown table; with docs=True also write it to docs/_generated/<name>."""
    print("\n" + table)
    if docs:
        GENERATED.mkdir(parents=True, exist_ok=True)
        (GENERATED / name).write_text(table)


_compile_cache = None  # kept alive, so the folder lasts as long as the benchmark


def cold_compile_cache() -> None:
    """Make torch.compile start from an empty cache, as on a learner's first run; call it before importing torch.

    A TORCHINDUCTOR_CACHE_DIR set by the caller is left alone (to time a warm cache, point it at an existing one).
    """
    global _compile_cache
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        _compile_cache = tempfile.TemporaryDirectory(prefix="inductor-cache-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = _compile_cache.name
