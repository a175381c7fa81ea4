"""The course runner: what it removes from executed notebooks, and the core-path times it reports."""
import importlib.util
import json
import subprocess
import sys
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


def test_optional_sections_are_tagged_down_to_the_next_heading_of_their_level():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md("# 01 · Title\n**Core path:** ..."), md("## Core"), code("a = 1"),
             md("## Checks (optional)\nprose"), code("b = 2"), md("### A detail\nstill optional"), code("c = 3"),
             md("more prose\n## Back on the core path"), code("d = 4"), md("## Extra (optional)"), code("e = 5"),
             md("## Recap")]
    cells[2].metadata["tags"] = ["optional", "hide-input"]  # a stale tag goes, another tag stays
    nb = nbformat.v4.new_notebook(cells=cells)
    run_course.tag_optional_sections(nb)
    tagged = [i for i, cell in enumerate(nb.cells) if "optional" in cell.metadata.get("tags", [])]
    assert tagged == [3, 4, 5, 6, 7, 9, 10]
    assert nb.cells[2].metadata["tags"] == ["hide-input"]


def test_stamped_header_gives_the_measured_run_and_core_path_times():
    header = nbformat.v4.new_markdown_cell(
        "**Run time:** about 45 s on a 2-core CPU (full mode). **Core path:** about 99 min of reading and 99 s of "
        "running; the sections marked *(optional)* can wait.")
    nb = nbformat.v4.new_notebook(cells=[header])
    run_course.stamp_run_time(nb, 61.0, {"core_seconds": 33.0, "core_words": 1500, "core_reading_minutes": 10})
    assert "about 60 s on a 2-core" in header.source and "about 10 min of reading and 35 s of running" in header.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_optional_tags_agree_with_the_headings(path):
    nb = nbformat.read(path, as_version=4)
    before = [cell.metadata.get("tags", []) for cell in nb.cells]
    run_course.tag_optional_sections(nb)
    assert before == [cell.metadata.get("tags", []) for cell in nb.cells], \
        "cell tags differ from the (optional) headings: execute it with scripts/run_course.py --inplace"


def test_a_saved_widget_says_what_it_is_and_no_widget_state_is_kept():
    cell = nbformat.v4.new_code_cell("latent_explorer(model, mu, y)")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={run_course.WIDGET: {"model_id": "a"},
                                                                   "text/plain": "VBox(children=(Tab(..."})]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {"a": {}}}})
    run_course.note_widgets(nb)
    assert "widgets" not in nb.metadata
    assert cell.outputs[0].data["text/plain"] == run_course.WIDGET_NOTE and run_course.WIDGET in cell.outputs[0].data


def _report(rows, **extra):
    notebooks = [{"name": name, "wall_seconds": seconds, "core_seconds": seconds / 2, "core_reading_minutes": 10,
                  "core_words": 1500, "peak_rss_mb": anon + 300, "peak_anon_mb": anon, "passed": True}
                 for name, seconds, anon in rows]
    return {"mode": "full", "total_seconds": sum(r[1] for r in rows), "cpu_count": 2, "notebooks": notebooks,
            "max_peak_rss_mb": max(r[2] for r in rows) + 300, "max_peak_anon_mb": max(r[2] for r in rows), **extra}


def test_the_table_marks_memory_over_the_limit_and_shows_a_second_build_beside():
    report = _report([("01_a.ipynb", 30.0, 450), ("02_b.ipynb", 40.0, 701)], torch="2.14.1", cpus_available=2)
    beside = _report([("01_a.ipynb", 55.0, 310), ("02_b.ipynb", 80.0, 640)], torch="2.13.0+cpu", cpus_available=1)
    beside["command"] = "python scripts/run_course.py --report cpu.json"
    table = run_course.markdown_table(report, beside, "pinned to one CPU with taskset -c 0")
    header, _, first, second, total = table.splitlines()[:5]
    assert "torch 2.13.0+cpu on 1 CPU" in header and header.count("|") == first.count("|") == total.count("|")
    assert "| 450 MB | 55 s | 310 MB | yes |" in first
    assert "| 701 MB (over 700) | 80 s | 640 MB | yes |" in second
    assert "**701 MB (over 700)** (largest) | **135 s** | **640 MB** (largest)" in total
    assert "torch 2.14.1 on 2 CPUs" in table
    report["date"] = "2026-01-02"  # a table written later from a saved report gives the day it was measured
    assert "on 2 CPUs (2026-01-02)" in run_course.markdown_table(report)
    assert "`COURSE_FAST=0 python scripts/run_course.py --report cpu.json` (pinned" in table
    beside["notebooks"][1]["passed"] = False
    assert run_course.markdown_table(report, beside).splitlines()[3].endswith("| no |")


def test_peak_memory_catches_a_peak_of_a_few_milliseconds():
    """100 MB held for 5 ms, beyond the interpreter's own 5 MB: sampled every 50 ms, 4 runs in 6 missed its top (82 to
    99 MB), and the same notebook's figure varied by 180 MB from run to run."""
    spike = "import time; time.sleep(0.3); b = b'x' * (100 * 2**20); time.sleep(0.005); del b; time.sleep(0.3)"
    child = subprocess.Popen([sys.executable, "-c", spike])
    try:
        with run_course.PeakMemory(child.pid) as memory:
            child.wait(timeout=30)
    finally:
        child.kill()
    assert memory.peak_anon_mb > 102
