"""What importing course_utils saves: memory a notebook's kernel keeps after the classifier reads 10,000 images.

    python benchmarks/memory.py --docs

Starts a Jupyter kernel as the course runner does, loads MNIST and the digit classifier, then asks for the
classifier's predictions on the 10,000 test images three times (as notebook 07 measures its sets of samples), and
reads the kernel's anonymous memory after each call. Once with glibc's malloc as it is (COURSE_GLIBC_MALLOC=1), once
with the mmap threshold that importing course_utils fixes (course_utils/memory.py). Memory only: no time is measured.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _report import measured, mnist_folder, publish  # noqa: E402

CELLS = ['''import re
import torch
from course_utils.data import load_mnist
from course_utils.classifier import digit_classifier, predict_probabilities

def anonymous_mb():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024''',
         '''x_test, y_test = load_mnist("test")
classifier = digit_classifier(progress=False)
print("before", anonymous_mb())''',
         '''for call in (1, 2, 3):
    predict_probabilities(x_test, classifier, batch_size=1000)
    print(f"call {call}", anonymous_mb())''']


def measure(glibc_as_it_is: bool) -> dict[str, int]:
    """The kernel's anonymous memory (MB) before and after each of three calls."""
    os.environ["COURSE_GLIBC_MALLOC"] = "1" if glibc_as_it_is else "0"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    NotebookClient(nb, kernel_name="python3", timeout=600).execute()
    lines = "".join(o.get("text", "") for c in nb.cells for o in c.outputs if o.get("name") == "stdout").splitlines()
    return {name: int(mb) for name, mb in (line.rsplit(" ", 1) for line in lines
                                           if line.startswith(("before", "call")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the MNIST files (default: COURSE_DATA or data/)")
    parser.add_argument("--docs", action="store_true", help="write docs/_generated/memory.md")
    args = parser.parse_args()
    os.environ["COURSE_DATA"] = str(mnist_folder(args.data))
    os.environ["COURSE_FAST"] = "0"
    os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
    rows = {"glibc as it is": measure(True), "after importing course_utils": measure(False)}
    lines = ["| malloc | before | after call 1 | after call 2 | after call 3 | kept after call 3 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, mb in rows.items():
        lines.append(f"| {name} | {mb['before']} MB | {mb['call 1']} MB | {mb['call 2']} MB | {mb['call 3']} MB | "
                     f"{mb['call 3'] - mb['before']} MB |")
    lines += ["", measured("the kernel's anonymous memory, predictions on 10,000 images in batches of 1,000")]
    publish("\n".join(lines) + "\n", "memory.md", args.docs)


if __name__ == "__main__":
    main()
