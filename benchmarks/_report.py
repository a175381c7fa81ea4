"""What every benchmark does with its table: print it, and with --docs write it where docs/performance.md includes it."""
from __future__ import annotations

from pathlib import Path

GENERATED = Path(__file__).resolve().parents[1] / "docs" / "_generated"


def publish(table: str, name: str, docs: bool) -> None:
    """Print the Markdown table; with docs=True also write it to docs/_generated/<name>."""
    print("\n" + table)
    if docs:
        GENERATED.mkdir(parents=True, exist_ok=True)
        (GENERATED / name).write_text(table)
