# The course's commands. A fresh machine needs only Python 3.9+ and make:
#   make course   set up, then run every notebook in full mode and report time and memory
#   make test     set up, build the website, then run the unit tests, the browser test of the site and every
#                 notebook in fast mode under nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup course test lab docs docs-test clean

# The virtual environment, rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test,docs]"
	touch $@

setup: $(BIN)/.installed

# Every notebook in full mode (full MNIST, real epochs): outputs/course-report.json.
course: setup
	COURSE_FAST=0 $(BIN)/python scripts/run_course.py

# Unit tests, the website in a browser (when chromium is there), then every notebook in fast mode under nbval.
test: docs
	COURSE_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# The website (Sphinx + myst-nb): renders the committed notebooks, never executes them; warnings are errors.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# JupyterLab, opened in notebooks/.
lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) outputs checkpoints .pytest_cache
