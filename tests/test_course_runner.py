"""The course runner: what it removes from executed notebooks, and the core-path times it reports."""
import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_course", ROOT / "scripts" / "run_course.py")
run_course = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_course)

NOTEBOOKS = sorted(ROOT.glob("notebooks/**/[0-9]*.ipynb"))


def _bar(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={run_course.WIDGET: {"model_id": "x"}, "text/plain": text})


def test_closed_progress_bars_are_dropped_and_everything_else_is_kept():
    epoch_line = nbformat.v4.new_output("stream", name="stdout", text="epoch  1/10  train loss  164.20\n")
    other_widget = nbformat.v4.new_output("display_data", data={run_course.WIDGET: {"model_id": "y"},
                                                                "text/plain": "IntSlider(value=3)"})
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"})
    cell = nbformat.v4.new_code_cell("fit(model, data)")
    cell.outputs = [_bar("  0%|          | 0/469 [00:00<?, ?it/s]"), epoch_line, _bar(" 35%|###5 | 14/40"),
                    other_widget, figure]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("0%| is not an output")])
    run_course.drop_closed_progress_bars(nb)
    assert cell.outputs == [epoch_line, other_widget, figure]


def test_core_path_sums_the_timed_cells_outside_optional_sections():
    def timed(start: str, end: str, tags=()):
        cell = nbformat.v4.new_code_cell("x = 1")
        cell.metadata = {"execution": {"iopub.execute_input": f"2026-11-30T10:00:{start}Z",
                                       "shell.execute_reply": f"2026-11-30T10:00:{end}Z"}, "tags": list(tags)}
        return cell
    optional_prose = nbformat.v4.new_markdown_cell("three more words")
    optional_prose.metadata["tags"] = ["optional"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("one two " * 150), timed("01.000", "03.500"),
                                         timed("04.000", "44.000", tags=["optional"]), optional_prose,
                                         timed("45.000", "45.250"), nbformat.v4.new_code_cell("never run")])
    assert run_course.core_path(nb) == {"core_seconds": 2.8, "core_words": 300, "core_reading_minutes": 2}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_show_no_unfinished_progress_bars(path):
    nb = json.loads(path.read_text())
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert not any(run_course.PROGRESS_BAR.match(line) for line in text.splitlines()), \
                f"cell {index} keeps a progress bar's frame: execute it with scripts/run_course.py --inplace"
