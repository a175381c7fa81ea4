"""Every number in a notebook's prose is one that the notebook prints (within the prose's rounding).

Decimal numbers (such as 105.6 or 0.95) and percentages in markdown cells are checked; numbers inside code spans and
math ($...$) are code or formulas, not results. A number quoted from a paper, or a constant of the set-up, is listed in
the cell's metadata under "quoted_numbers" and is not checked.
"""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("[0-9]*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})*\.\d+|\d+\.\d+|\d+(?=\s?%))(?![\w.]*\d)")


def prose_numbers(markdown: str) -> list[str]:
    """The decimal numbers and percentages of a markdown text, outside code spans, math and links."""
    text = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)", " ", markdown, flags=re.S)
    return NUMBER.findall(text)


def printed_numbers(nb) -> list[float]:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            texts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*(?:e[-+]?\d+)?", "\n".join(texts))
            if n.replace(",", "").replace(".", "").lstrip("-").isdigit() or "e" in n]


def is_printed(number: str, printed: list[float]) -> bool:
    """number (as written in prose) equals a printed value rounded to its decimals, or a printed fraction as %."""
    value = float(number.replace(",", ""))
    decimals = len(number.split(".")[1]) if "." in number else 0
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(p - value) <= tolerance or abs(100 * p - value) <= tolerance for p in printed)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_printed_by_the_notebook(path):
    nb = nbformat.read(path, as_version=4)
    printed = printed_numbers(nb)
    missing = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        quoted = set(cell.metadata.get("quoted_numbers", []))
        missing += [f"cell {index}: {n}" for n in prose_numbers(cell.source) if n not in quoted
                    and not is_printed(n, printed)]
    assert not missing, f"numbers in the prose that no output prints (fix the prose, or list a quoted number or a " \
                        f"constant in the cell's metadata 'quoted_numbers'): {missing}"


def test_the_check_catches_a_wrong_number():
    printed = [97.104, 0.0375, 0.065]
    assert is_printed("97.1", printed) and is_printed("0.038", printed) and is_printed("6.5", printed)
    assert not is_printed("97.3", printed) and not is_printed("0.05", printed) and not is_printed("9", printed)
    assert prose_numbers("a loss of 105.6 nats, `lr = 1e-3`, $0.5^2$, 95% of the time") == ["105.6", "95"]
