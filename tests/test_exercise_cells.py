"""The exercise cells of the notebooks: committed without outputs that give the answer away, and calling checks that
echo nothing after their verdict."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb"))


def _check_cells(path: Path):
    nb = nbformat.read(path, as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and "exercises import check_" in c.source]


def _output_text(cell) -> str:
    return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_self_checked_exercise_committed_unsolved(path):
    cells = _check_cells(path)
    assert cells, "no self-checked exercise (from course_utils.exercises import check_...)"
    for index, cell in cells:
        text = _output_text(cell)
        assert "PASS" not in text, f"cell {index} is committed solved: its output gives the answer away"
        assert "NOT YET" in text, f"cell {index} was not executed: its verdict on the unfilled answer is missing"
        assert not any(o.get("output_type") == "execute_result" for o in cell.outputs), \
            f"cell {index} echoes a value after the verdict: the check should return None"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_pass_their_checks_and_the_outputs_are_checked_by_nbval(path):
    for index, cell in _check_cells(path):
        first = cell.source.splitlines()[0]
        text = _output_text(cell)
        if "PASS" in text:
            assert first == "# NBVAL_CHECK_OUTPUT", \
                f"cell {index}: a passing solution whose output nbval does not check"
        assert not any(o.get("output_type") == "execute_result" for o in cell.outputs), \
            f"cell {index} echoes a value after the verdict: the check should return None"
