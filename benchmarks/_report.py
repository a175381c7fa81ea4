"""What every benchmark does with its table: print it, and with --docs write it where docs/performance.md includes it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

GENERATED = Path(__file__).resolve().parents[1] / "docs" / "_generated"


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
