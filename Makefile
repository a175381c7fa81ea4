# The course's commands. A fresh machine needs only Python 3.9+ and make:
#   make lab      the learner's path: set up .venv with what the notebooks need (no test or docs tools), then open
#                 the notebooks in JupyterLab. CPU-only PyTorch on Linux (about 0.4 GB to download instead of 3.2 GB):
#                 PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make lab
#   make course   set up, then run every notebook in full mode and report time and memory
#   make test     set up, build the website, then run the unit tests, the browser tests (the site; the latent
#                 explorer in JupyterLab) and every notebook in fast mode under nbval
#   make test-min the unit tests again with the oldest torch and torchvision the course supports
#                 (.ci/minimum-versions.txt), in a second environment .venv-min (a 2.7 GB download on first use)
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
MIN_VENV ?= .venv-min
MIN_BIN  := $(MIN_VENV)/bin
MINIMUMS := .ci/minimum-versions.txt

.PHONY: setup course test test-min lint lab docs docs-test clean

# The learner's environment: course_utils, its packages and JupyterLab; rebuilt when pyproject.toml changes.
$(BIN)/.lab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	touch $@

# The developer's: the same and the test and docs tools (make course, make test, make docs).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test,docs]"
	touch $(BIN)/.lab-installed $@

setup: $(BIN)/.installed

# Every notebook in full mode (full MNIST, real epochs): outputs/course-report.json.
course: setup
	COURSE_FAST=0 $(BIN)/python scripts/run_course.py

# Lint (ruff, configured in pyproject.toml) the package, tests, scripts, benchmarks and notebooks.
lint: setup
	$(BIN)/ruff check .

# Lint, unit tests, the website in a browser (when chromium is there), then every notebook in fast mode under nbval.
test: docs lint
	COURSE_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# The environment with the minimum versions: only the package and its test extra, torch and torchvision pinned
# by $(MINIMUMS) (pip constraints); rebuilt when pyproject.toml or that file changes.
$(MIN_BIN)/.installed: pyproject.toml $(MINIMUMS)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_BIN)/python -m pip install --quiet --upgrade pip
	$(MIN_BIN)/python -m pip install --quiet --constraint $(MINIMUMS) -e ".[test]"
	touch $@

# The unit tests under the minimum versions. tests/test_site.py and tests/test_lab.py are left out: they drive a
# browser (the built website; JupyterLab), which needs the docs and lab toolchains, and test no torch code of their own.
test-min: $(MIN_BIN)/.installed
	$(MIN_BIN)/python -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
	COURSE_FAST=1 $(MIN_BIN)/python -m pytest tests --ignore=tests/test_site.py --ignore=tests/test_lab.py -p no:cacheprovider

# The website (Sphinx + myst-nb): renders the committed notebooks, never executes them; warnings are errors.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# JupyterLab, opened in notebooks/ (only what the notebooks need is installed).
lab: $(BIN)/.lab-installed
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) $(MIN_VENV) outputs checkpoints .pytest_cache
