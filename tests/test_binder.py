"""The Binder image (binder/): the course's runtime packages only, PyTorch's CPU-only wheels, and a postBuild that
installs course_utils without touching them and puts MNIST into the image."""
import os
import re
import stat
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    return next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))


def test_binder_installs_the_runtime_and_lab_packages_with_the_same_bounds_as_pyproject():
    requirements = [r for r in _pip_section() if not r.startswith("--")]
    wanted = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["lab"]
    assert sorted(requirements) == sorted(wanted), "binder/environment.yml must list exactly the runtime and lab " \
                                                   "requirements of pyproject.toml, with the same bounds"


def test_binder_takes_torch_from_the_cpu_wheel_index_and_no_test_or_docs_tools():
    pip = _pip_section()
    assert CPU_INDEX in pip and pip.index(CPU_INDEX) < pip.index(next(r for r in pip if r.startswith("torch")))
    extras = PYPROJECT["project"]["optional-dependencies"]
    tools = {re.split(r"[<>=]", r)[0] for extra in ("test", "docs") for r in extras[extra]}
    runtime = {re.split(r"[<>=]", r)[0] for r in _pip_section()}
    assert not (tools - {"ipykernel", "ipywidgets"}) & runtime
    assert "-e ." not in pip  # postBuild installs the package, so this layer is not rebuilt on every push


def test_postbuild_installs_course_utils_without_dependencies_and_downloads_checked_mnist():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & stat.S_IXUSR, "postBuild must be executable"
    text = post_build.read_text()
    assert text.startswith("#!") and "set -euo pipefail" in text
    assert re.search(r"pip install --no-deps -e \.", text)
    assert "download_mnist(default_data_dir())" in text  # md5-checked (tests/test_data.py, tests/test_faults.py)


def test_the_readme_binder_badge_opens_the_first_notebook():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"https://mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/(\w+)\?urlpath=([^)\s]+)", readme)
    assert badge and badge.group(3) == "lab/tree/notebooks/01_autoencoder.ipynb"
    assert os.path.exists(ROOT / "notebooks" / "01_autoencoder.ipynb")


def test_postbuild_fills_the_cache_that_sessions_map(tmp_path, tiny_mnist):
    """The image holds MNIST decoded into the float32 cache: postBuild's last command writes it for both splits."""
    import subprocess
    import sys

    text = (ROOT / "binder" / "postBuild").read_text()
    (command,) = re.findall(r"""^python -c "(.*\bload_mnist\(.*)"$""", text, re.M)
    tiny_mnist(tmp_path / "data")
    env = {**os.environ, "COURSE_DATA": str(tmp_path / "data"), "COURSE_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", command], env=env, check=True, capture_output=True)
    cached = sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("mnist-*-float32.pt"))
    assert cached == ["test", "train"]
