"""The files a public course repository needs, checked: the GitHub workflow against GitHub's schema, the citation
file against the Citation File Format, the pre-commit hooks by running them, and the licences."""
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"
BIN = Path(sys.executable).parent


def _validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    """check-jsonschema with one of its vendored schemas (no network): returncode 0 when path is valid."""
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)


def test_the_github_workflow_is_valid_and_runs_the_readmes_test_command(tmp_path):
    result = _validate(WORKFLOW, "vendor.github-workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [step.get("run") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "make test" in steps and "make test" in (ROOT / "README.md").read_text()
    broken = tmp_path / "broken.yml"  # the check has teeth: a job without runs-on, a step with neither uses nor run
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "run-on: ubuntu-24.04"))
    assert _validate(broken, "vendor.github-workflows").returncode != 0


def test_the_citation_file_is_valid_and_names_the_repository_the_notebooks_install_from():
    result = _validate(ROOT / "CITATION.cff", "vendor.citation-file-format")
    assert result.returncode == 0, result.stdout + result.stderr
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    setup_cell = nbformat.read(ROOT / "notebooks" / "01_autoencoder.ipynb", as_version=4).cells[2].source
    assert f'COURSE_REPO, COURSE_REF = "{citation["repository-code"]}"' in setup_cell


def test_the_licences_are_where_pyproject_says():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in text and 'license-files = ["LICENSE", "LICENSE-CONTENT.md"]' in text
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()


def test_the_nbstripout_hook_keeps_outputs_and_drops_execution_timestamps(tmp_path):
    hooks = {hook["id"]: hook for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
             for hook in repo["hooks"]}
    assert set(hooks) == {"ruff", "nbstripout"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    nb.cells[0].metadata = {"execution": {"iopub.execute_input": "2026-11-30T10:00:00Z"}, "tags": ["optional"]}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    entry = hooks["nbstripout"]["entry"].replace(".venv/bin/nbstripout", str(BIN / "nbstripout"))
    subprocess.run(f"{entry} {path}", shell=True, check=True)
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs[0].data == {"text/plain": "2"} and cell.execution_count == 1
    assert cell["metadata"] == {"tags": ["optional"]}
