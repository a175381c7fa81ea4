"""The ways in: environment.yml (conda, Binder), the Colab badge and install guard of every notebook, the README."""
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("[0-9]*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_installs_the_package_and_names_the_same_packages():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert "-e ." in pip  # repo2docker installs course_utils itself
    conda_names = {name_of(dep) for dep in env["dependencies"] if isinstance(dep, str)}
    assert "python" in conda_names and "pip" in conda_names
    wanted = {name_of(r) for r in PYPROJECT["project"]["dependencies"]}
    for extra in ("lab", "test"):
        wanted |= {name_of(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]}
    listed = {name_of(r) for r in pip if r != "-e ."}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject.toml: {wanted - listed}"


def test_there_is_one_notebook_per_chapter_in_order():
    names = [p.name for p in NOTEBOOKS if p.parent.name == "notebooks"]
    numbers = [int(name[:2]) for name in names]
    assert numbers == list(range(1, len(names) + 1)) and len(names) >= 8


BADGE = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w./-]+?)/"
                   r"(notebooks/[\w/.-]+\.ipynb)")
SETUP = re.compile(r'COURSE_REPO, COURSE_REF = "https://github\.com/([\w.-]+/[\w.-]+)", "([\w./-]+)"')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_opens_in_colab_and_installs_the_same_branch_there(path):
    """The badge, COURSE_REPO and COURSE_REF name one repository and one branch, and the install keeps Colab's torch."""
    nb = nbformat.read(path, as_version=4)
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    assert 'if "google.colab" in sys.modules:' in setup
    repo, ref = SETUP.search(setup).groups()
    assert re.search(r'^\s+!pip install --quiet "git\+\{COURSE_REPO\}@\{COURSE_REF\}"', setup, re.M), \
        "the install line must install COURSE_REPO at COURSE_REF (and not be commented out)"
    install = re.search(r"!pip install ([^#\n]*)", setup).group(1)  # the command, without its comment
    assert not any(word in install for word in ("--upgrade", "-U ", "--force", "torch")), \
        f"the install must keep Colab's own torch: {install}"
    if path.parent.name == "notebooks":
        first_markdown = next(c.source for c in nb.cells if c.cell_type == "markdown")
        badge = BADGE.search(first_markdown)
        assert badge, "no Colab badge in the first markdown cell"
        assert badge.groups() == (repo, ref, path.relative_to(ROOT).as_posix()), \
            f"the badge opens {badge.groups()}, the setup cell installs {repo}@{ref}"
    assert "get_device()" in setup  # the same code then runs on Colab's GPU
    assert nb.metadata.kernelspec.name == "python3"


def test_the_colab_check_catches_a_badge_on_another_branch():
    cell = 'https://colab.research.google.com/github/a/b/blob/dev/notebooks/01_x.ipynb'
    setup = 'COURSE_REPO, COURSE_REF = "https://github.com/a/b", "main"'
    assert BADGE.search(cell).groups()[:2] != SETUP.search(setup).groups()


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "notebooks"], ids=lambda p: p.name)
def test_every_notebook_has_more_prose_than_code_and_ends_with_exercises(path):
    nb = nbformat.read(path, as_version=4)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") > kinds.count("code")
    assert any("## Exercises" in c.source or "## Recap" in c.source for c in nb.cells if c.cell_type == "markdown")
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")]
    assert executed, "commit the notebook executed (full mode) with its outputs"


def test_readme_opens_with_the_two_commands_and_binder_opens_lab_in_notebooks():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make lab") < readme.index("make course") < readme.index("make test") < readme.index("Binder")
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make lab" in readme  # the CPU-only path
    assert "COURSE_DATA=" in readme[:readme.index("make course")]
    assert "mybinder.org/v2/gh/autoencoder-course/generating-images/main?urlpath=lab/tree/notebooks" in readme


MODEL_CLASSES = ("Autoencoder", "VAE", "ConvAutoencoder", "ConvVAE", "ConditionalVAE")


def _constructor_calls(source: str, names: set[str]):
    """Each call `Name(...)` of a model class in source, with the text that follows it (one level of nested parens)."""
    pattern = r"(?<!class )\b(%s)\((?:[^()]|\([^()]*\))*\)(.{0,12})" % "|".join(sorted(names))
    return re.findall(pattern, source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_builds_its_models_on_device(path):
    """fit and fit_or_load never move a model, so a notebook builds each one with .to(device): then it runs on
    Colab's GPU whether it was trained or loaded from a checkpoint."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    names = set(MODEL_CLASSES) | set(re.findall(r"^class (\w+)\(nn\.Module\)", code, re.M))  # and the notebook's own
    off_device = [f"{name}(...){after}" for name, after in _constructor_calls(code, names)
                  if not after.startswith(".to(device)")]
    assert not off_device, f"build these with .to(device): {off_device}"


def test_the_device_check_finds_a_model_left_on_the_cpu():
    source = "class VAE(nn.Module):\na = VAE(latent_dim=2).to(device)\nb = VAE(latent_dim=f(2))\n"
    calls = _constructor_calls(source, set(MODEL_CLASSES))
    assert calls == [("VAE", ".to(device)"), ("VAE", "")]


# What a notebook imports -> the distribution that provides it (names that differ from their import name).
PROVIDED_BY = {"sklearn": "scikit-learn", "IPython": "ipykernel", "course_utils": "course_utils"}


def test_every_package_a_notebook_imports_is_a_declared_dependency():
    """A package that arrives only as another package's dependency can vanish with it (pandas did with mlxtend)."""
    import sys

    declared = {name_of(r) for r in PYPROJECT["project"]["dependencies"]}
    declared |= {name_of(r) for r in PYPROJECT["project"]["optional-dependencies"]["lab"]} | {name_of("course_utils")}
    missing = set()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for module in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.M):
                if module in sys.stdlib_module_names:
                    continue
                if name_of(PROVIDED_BY.get(module, module)) not in declared:
                    missing.add(f"{module} ({path.name})")
    assert not missing, f"imported by notebooks but not declared in pyproject.toml: {sorted(missing)}"


def test_make_lab_installs_only_what_the_notebooks_need(tmp_path):
    """The learner's path: `make lab` installs the lab extra alone (no test or docs tools), then opens JupyterLab."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}  # as if typed
    commands = subprocess.run(["make", "--no-print-directory", "-n", "lab", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                              check=True, capture_output=True, text=True, env=env).stdout
    installs = [line for line in commands.splitlines() if "pip install" in line and "-e " in line]
    assert installs and all('-e ".[lab]"' in line for line in installs), installs
    assert commands.rstrip().endswith("jupyter lab notebooks/")
