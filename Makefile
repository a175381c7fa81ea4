# The course's commands. A fresh machine needs only Python 3.9+ and make:
#   make course   set up, then run every notebook in full mode and report time and memory
#   make test     set up, then run the unit tests and every notebook in fast mode under nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup course test lab clean

# The virtual environment, rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	touch $@

setup: $(BIN)/.installed

# Every notebook in full mode (full MNIST, real epochs): outputs/course-report.json.
course: setup
	COURSE_FAST=0 $(BIN)/python scripts/run_course.py

# Unit tests, then every notebook in fast mode with its deterministic cells checked.
test: setup
	COURSE_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# JupyterLab, opened in notebooks/.
lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) outputs checkpoints .pytest_cache
