"""Run every notebook of the course headless, and report each one's wall time and peak memory.

    python scripts/run_course.py                 # full mode unless COURSE_FAST=1; executed copies in outputs/notebooks/
    python scripts/run_course.py --inplace       # write the outputs back into notebooks/ (to commit them), with
                                                 # each notebook's measured time in its "Run time" line
    python scripts/run_course.py 06 07           # only the notebooks whose names start with these prefixes
    COURSE_CHECKPOINTS=/tmp/empty python scripts/run_course.py --report first.json   # a first run: trains everything
    python scripts/run_course.py --inplace --stamp-from first.json   # outputs from the saved models, times of the first

Writes outputs/course-report.json: per notebook its name, wall seconds, peak resident MB of its kernel
(children included, sampled every 5 ms) and whether it passed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import nbformat
import psutil
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils.checkpoints import checkpoint_dir
from course_utils.classifier import recorded_test_accuracy

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Samples the memory of a process and its children every 5 ms, in a thread: the largest resident set (RSS)
    and the largest anonymous memory (RSS less file-backed pages such as shared libraries, which the operating
    system can drop and reload: what a memory limit like Binder's really has to hold).

    A peak can last a few milliseconds (the classifier's activations for one batch); sampled every 50 ms, the same
    notebook's peak varied by 180 MB from run to run. A sample reads one small file per process; the list of children,
    which needs a scan of all processes, is refreshed every 0.5 s.
    """

    def __init__(self, pid: int, interval: float = 0.005, children_every: float = 0.5):
        self.process, self.interval, self.peak_mb, self.peak_anon_mb = psutil.Process(pid), interval, 0.0, 0.0
        self.children_every = children_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        processes, listed = [self.process], -math.inf
        while not self._stop.is_set():
            if time.monotonic() - listed >= self.children_every:
                try:
                    processes = [self.process, *self.process.children(recursive=True)]
                except psutil.Error:
                    pass
                listed = time.monotonic()
            infos = []
            for process in processes:
                try:
                    infos.append(process.memory_info())
                except psutil.Error:  # a child that has ended
                    pass
            self.peak_mb = max(self.peak_mb, sum(i.rss for i in infos) / 2**20)
            self.peak_anon_mb = max(self.peak_anon_mb, sum(i.rss - i.shared for i in infos) / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


PROGRESS_BAR = re.compile(r"^\s*\d+%\|")  # tqdm's text: "  0%|          | 0/469 [00:00<?, ?it/s]"
WIDGET = "application/vnd.jupyter.widget-view+json"
OPTIONAL = "optional"  # the cell tag of an optional section; every other cell is on the notebook's core path
WORDS_PER_MINUTE = 150  # a careful reading of technical prose with formulas: the reading-time estimate
MEMORY_LIMIT_MB = 700   # peak anonymous memory a notebook may use: Binder has 2 GB for the kernel, JupyterLab and all


def drop_closed_progress_bars(nb: nbformat.NotebookNode) -> None:
    """Remove the progress bars of training (tqdm widgets with leave=False) from the outputs: in JupyterLab they vanish
    when their loop ends, but a saved notebook keeps their first frame, a "0%" line; the per-epoch lines stay."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "display_data" and WIDGET in o.data
                                    and PROGRESS_BAR.match(o.data.get("text/plain", "")))]


WIDGET_NOTE = "An interactive widget: run this notebook in JupyterLab or Colab to use it (a still view follows)."


def note_widgets(nb: nbformat.NotebookNode) -> None:
    """Saved without its state, a widget cannot be drawn outside a live kernel: its text stand-in (what GitHub's viewer
    shows) says so, instead of the widget's repr; the notebook keeps no widget state (its figures would bloat it)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if WIDGET in output.get("data", {}):
                output.data["text/plain"] = WIDGET_NOTE


def core_path(nb: nbformat.NotebookNode) -> dict:
    """The core path (cells not tagged "optional"): its measured run time, from nbclient's per-cell timestamps, and
    its reading time, estimated from its word count at WORDS_PER_MINUTE."""
    seconds, words = 0.0, 0
    for cell in nb.cells:
        if OPTIONAL in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "markdown":
            words += len(cell.source.split())
        timing = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            seconds += (end - start).total_seconds()
    return {"core_seconds": round(seconds, 1), "core_words": words,
            "core_reading_minutes": round(words / WORDS_PER_MINUTE)}


RUN_TIME = re.compile(r"(\*\*Run time:\*\* about )\d+( s on a 2-core CPU \(full mode)")


CORE_PATH = re.compile(r"(\*\*Core path:\*\* about )\d+( min of reading and )\d+( s of running)")
HEADING = re.compile(r"^(#{1,6}) (.*)$", re.MULTILINE)


def stamp_run_time(nb: nbformat.NotebookNode, seconds: float, core: dict) -> None:
    """Write the measured full-mode times into the notebook's "Run time: about N s" line (rounded to 5 s) and its
    "Core path: about M min of reading and N s of running" line."""
    rounded = str(max(5, 5 * round(seconds / 5)))
    core_run = str(max(5, 5 * round(core["core_seconds"] / 5)))
    for cell in nb.cells:
        if cell.cell_type == "markdown" and RUN_TIME.search(cell.source):
            cell.source = RUN_TIME.sub(lambda m: m.group(1) + rounded + m.group(2), cell.source)
            cell.source = CORE_PATH.sub(lambda m: m.group(1) + str(core["core_reading_minutes"]) + m.group(2)
                                        + core_run + m.group(3), cell.source)
            return


def tag_optional_sections(nb: nbformat.NotebookNode) -> None:
    """Tag "optional" every cell of a section whose heading ends in "(optional)", down to the next heading of the
    same or a higher level, and untag all others: the visible mark and the cell metadata always agree. A cell belongs
    to the section its first line is in."""
    optional_level = None  # the level of the optional heading we are under, or None on the core path

    def enter(level: int, title: str) -> None:
        nonlocal optional_level
        if optional_level is not None and level <= optional_level:
            optional_level = None
        if optional_level is None and title.rstrip().endswith("(optional)"):
            optional_level = level

    for cell in nb.cells:
        headings = HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        opens_cell = bool(headings) and cell.source.lstrip().startswith("#")
        if opens_cell:
            enter(len(headings[0][0]), headings[0][1])
        is_optional = optional_level is not None
        for hashes, title in headings[1 if opens_cell else 0:]:
            enter(len(hashes), title)
        tags = [t for t in cell.metadata.get("tags", []) if t != OPTIONAL] + ([OPTIONAL] if is_optional else [])
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)


def run_notebook(path: Path, out_path: Path, timeout: int, stamp: bool = False,
                 stamp_row: Optional[dict] = None) -> dict:
    """Execute one notebook in a fresh kernel, in its own folder; return its report row. With stamp, write its
    measured times into its header, or those of stamp_row (a row of an earlier report) when given."""
    nb = nbformat.read(path, as_version=4)
    tag_optional_sections(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start, passed, error = time.perf_counter(), True, ""
    with client.setup_kernel():
        info = client.wait_for_reply(client.kc.kernel_info())
        nb.metadata["language_info"] = info["content"]["language_info"]  # the site highlights code with it
        with PeakMemory(client.km.provisioner.process.pid) as memory:
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                passed, error = False, str(err).splitlines()[-1] if str(err) else "cell failed"
    seconds = time.perf_counter() - start
    drop_closed_progress_bars(nb)
    note_widgets(nb)
    core = core_path(nb)
    for cell in nb.cells:  # the timestamps have served: committed notebooks keep no noise (as the nbstripout hook)
        cell.metadata.pop("execution", None)
    if stamp and passed:
        if stamp_row is not None:  # the times of a first run, which trained every model, measured before
            stamp_run_time(nb, stamp_row["wall_seconds"], stamp_row)
        else:
            stamp_run_time(nb, seconds, core)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return {"name": path.name, "wall_seconds": round(seconds, 1), "peak_rss_mb": round(memory.peak_mb),
            "peak_anon_mb": round(memory.peak_anon_mb), **core,
            "passed": passed, **({"error": error} if error else {})}


def _memory(mb: int) -> str:
    """A peak anonymous memory for the table, marked when it is over the course's limit."""
    return f"{mb:,} MB" + (f" (over {MEMORY_LIMIT_MB})" if mb > MEMORY_LIMIT_MB else "")


def _build(report: dict) -> str:
    """How a report's kernels ran: the torch build and the CPUs they could use."""
    cpus = report.get("cpus_available", report["cpu_count"])
    return f"torch {report.get('torch', '(version not recorded)')} on {cpus} CPU{'s' if cpus != 1 else ''}"


def _first(report: dict) -> str:
    """What the report's times include: training every model, or loading the saved ones."""
    if report.get("first_run"):
        return (", a first run that trains every model (`COURSE_CHECKPOINTS` pointed at an empty folder; the saved "
                "models of a second run load in seconds)")
    return ", with the models saved by an earlier run"


def markdown_table(report: dict, beside: Optional[dict] = None, beside_command: str = "") -> str:
    """The report as a Markdown table, with the command and machine that produced it; with beside (a report of the
    same notebooks run another way, e.g. with the CPU-only torch on 1 CPU as on Binder), its time and memory too."""
    other = {r["name"]: r for r in beside["notebooks"]} if beside else {}
    extra = " | ".join(["", f"wall time ({_build(beside)})", f"peak anonymous memory ({_build(beside)})"]) \
        if beside else ""
    lines = ["| notebook | wall time | core path: run time | core path: reading time (est.) | peak resident memory "
             f"(RSS) | peak anonymous memory{extra} | passed |",
             "| --- | ---: | ---: | ---: | ---: | ---:" + (" | ---: | ---:" if beside else "") + " | --- |"]
    for row in report["notebooks"]:
        twin = other.get(row["name"])
        cells = (f" | {twin['wall_seconds']:.0f} s | {_memory(twin['peak_anon_mb'])}" if twin else " | not run | ") \
            if beside else ""
        passed = row["passed"] and (twin is None or twin["passed"])
        lines.append(f"| `{row['name']}` | {row['wall_seconds']:.0f} s | {row['core_seconds']:.0f} s | "
                     f"{row['core_reading_minutes']} min ({row['core_words']:,} words) | {row['peak_rss_mb']:,} MB | "
                     f"{_memory(row['peak_anon_mb'])}{cells} | {'yes' if passed else 'no'} |")
    core = sum(r["core_seconds"] for r in report["notebooks"])
    reading = sum(r["core_reading_minutes"] for r in report["notebooks"])
    totals = (f" | **{beside['total_seconds']:.0f} s** | **{_memory(beside['max_peak_anon_mb'])}** (largest)"
              if beside else "")
    lines.append(f"| **all {len(report['notebooks'])}** | **{report['total_seconds']:.0f} s** | **{core:.0f} s** | "
                 f"**{reading} min** | **{report['max_peak_rss_mb']:,} MB** (largest) | "
                 f"**{_memory(report['max_peak_anon_mb'])}** (largest){totals} | |")
    mode = "COURSE_FAST=1" if report["mode"] == "fast" else "COURSE_FAST=0"
    command = report.get("command", "python scripts/run_course.py")
    accuracy = report.get("digit_classifier_test_accuracy")
    if accuracy is not None:
        lines += ["", f"The digit classifier that measures generated digits (`course_utils.classifier`) reads "
                      f"{100 * accuracy:.2f} % of the MNIST test digits correctly (its last epoch, read from its "
                      f"checkpoint)."]
    date = report.get("date", time.strftime("%Y-%m-%d"))  # the day it was measured (older reports: today)
    lines += ["", f"Measured with `{mode} {command}`{_first(report)}, {_build(report)} "
              f"({date}). The core path is every cell outside the sections marked optional: its "
              f"run time is the sum of its cells' execution times, its reading time the word count of its prose at "
              f"{WORDS_PER_MINUTE} words a minute (an estimate). Memory is the kernel's, sampled every 5 ms while it "
              f"runs: RSS counts the file-backed pages of libraries and of the memory-mapped MNIST cache too, "
              f"anonymous memory only what the kernel allocated itself, the memory a limit cannot take back. The "
              f"course's limit is {MEMORY_LIMIT_MB} MB of it per notebook, so that one notebook, JupyterLab and the "
              f"system fit in Binder's 2 GB."]
    if beside:
        how = f" ({beside_command})" if beside_command else ""
        lines += ["", f"The last two measured columns come from `{mode} {beside.get('command', command)}`{how}"
                      f"{_first(beside)}: "
                      f"{_build(beside)}, the kind of build and machine Binder gives (PyTorch's CPU-only wheels, "
                      f"1 CPU)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="run only notebooks whose names start with these")
    parser.add_argument("--inplace", action="store_true", help="write the executed notebooks back into notebooks/")
    parser.add_argument("--solutions", action="store_true", help="run the solutions notebooks instead")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    parser.add_argument("--report", default=str(ROOT / "outputs" / "course-report.json"))
    parser.add_argument("--stamp-from", metavar="REPORT",
                        help="with --inplace, stamp the run times of this earlier report (e.g. a first run into an "
                             "empty COURSE_CHECKPOINTS folder) instead of this run's")
    parser.add_argument("--docs", action="store_true",
                        help="also write the table into docs/_generated/course-report-MODE.md for the website")
    parser.add_argument("--beside", metavar="REPORT",
                        help="with --docs, add the time and memory columns of this report of the same notebooks run "
                             "another way (e.g. with the CPU-only torch on 1 CPU, as on Binder)")
    parser.add_argument("--beside-command", default="", help="how the --beside report was made, for the table's note")
    parser.add_argument("--docs-from", metavar="REPORT",
                        help="run nothing: write the docs table of this earlier report (with --beside)")
    args = parser.parse_args()
    if args.docs_from:
        report = json.loads(Path(args.docs_from).read_text())
        write_docs_table(report, args.beside, args.beside_command)
        return 0

    paths = sorted((ROOT / "notebooks" / ("solutions" if args.solutions else "")).glob("[0-9]*.ipynb"))
    paths = [p for p in paths if not args.prefixes or any(p.name.startswith(x) for x in args.prefixes)]
    if not paths:
        print("No notebooks matched; names look like 01_autoencoder.ipynb.", file=sys.stderr)
        return 2
    mode = "fast" if os.environ.get("COURSE_FAST", "0") not in ("", "0") else "full"
    os.environ.pop("MPLBACKEND", None)  # the kernels inherit it: with MPLBACKEND=Agg no figure reaches the outputs
    earlier = ({r["name"]: r for r in json.loads(Path(args.stamp_from).read_text())["notebooks"]}
               if args.stamp_from else {})  # the rows of a first run, to stamp
    rows = []
    first_run = not any(checkpoint_dir().glob("*.pt"))  # no saved model: this run trains every one
    print(f"Running {len(paths)} notebooks in {mode} mode{' (a first run: no saved models)' if first_run else ''}")
    for path in paths:
        out = path if args.inplace else ROOT / "outputs" / "notebooks" / path.relative_to(ROOT / "notebooks")
        row = run_notebook(path, out, args.timeout, stamp=args.inplace and mode == "full",
                           stamp_row=earlier.get(path.name))
        rows.append(row)
        print(f"{row['name']:<45} {row['wall_seconds']:>7.1f} s {row['peak_rss_mb']:>6} MB RSS "
              f"{row['peak_anon_mb']:>6} MB anon  "
              f"{'passed' if row['passed'] else 'FAILED: ' + row['error']}", flush=True)
    total = sum(r["wall_seconds"] for r in rows)
    command = " ".join(["python", "scripts/run_course.py", *(a for a in sys.argv[1:] if a != "--docs")])
    report = {"mode": mode, "command": command, "date": time.strftime("%Y-%m-%d"), "first_run": first_run,
              "total_seconds": round(total, 1),
              "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
              "max_peak_anon_mb": max(r["peak_anon_mb"] for r in rows),
              "cpu_count": os.cpu_count(), "cpus_available": len(os.sched_getaffinity(0))
              if hasattr(os, "sched_getaffinity") else os.cpu_count(), "torch": torch.__version__, "notebooks": rows,
              "digit_classifier_test_accuracy": recorded_test_accuracy()}  # None until a notebook has trained it
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'total':<45} {total:>7.1f} s {report['max_peak_rss_mb']:>6} MB  -> {args.report}")
    if report["digit_classifier_test_accuracy"] is not None:
        print(f"digit classifier: {100 * report['digit_classifier_test_accuracy']:.2f} % test accuracy")
    if args.docs:
        write_docs_table(report, args.beside, args.beside_command)
    return 0 if all(r["passed"] for r in rows) else 1


def write_docs_table(report: dict, beside_path: Optional[str], beside_command: str) -> None:
    """docs/_generated/course-report-MODE.md: the report's table, with the report at beside_path beside it."""
    out = ROOT / "docs" / "_generated" / f"course-report-{report['mode']}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    beside = json.loads(Path(beside_path).read_text()) if beside_path else None
    out.write_text(markdown_table(report, beside, beside_command))


if __name__ == "__main__":
    sys.exit(main())
