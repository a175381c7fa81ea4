"""The minimum versions CI tests (.ci/minimum-versions.txt, `make test-min`) are the lower bounds that pyproject.toml
and environment.yml declare for torch and torchvision: raising one without the others fails here."""
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
MINIMUMS = ROOT / ".ci" / "minimum-versions.txt"
PINNED = ("torch", "torchvision")


def pyproject_dependencies() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # older Pythons: the quoted strings of the [project] dependencies list
        return re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1))
    return tomllib.loads(text)["project"]["dependencies"]


def environment_yml_dependencies() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))


def lower_bounds(requirements: list[str]) -> dict[str, Version]:
    """{name: version} of each requirement's '>=' bound."""
    bounds = {}
    for line in requirements:
        if line.startswith("-"):  # "-e ." in environment.yml
            continue
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                bounds[requirement.name.lower()] = Version(spec.version)
    return bounds


def pins() -> dict[str, Version]:
    """{name: version} of the constraints file's 'name==version' lines."""
    found = {}
    for line in MINIMUMS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier  # one exact pin per line
            assert spec.operator == "==", f"{line!r}: pin an exact version (==)"
            found[requirement.name.lower()] = Version(spec.version)
    return found


def test_the_minimum_versions_file_pins_torch_and_torchvision():
    assert set(pins()) >= set(PINNED)


@pytest.mark.parametrize("source, requirements", [("pyproject.toml", pyproject_dependencies),
                                                   ("environment.yml", environment_yml_dependencies)])
def test_the_tested_minimums_are_the_declared_lower_bounds(source, requirements):
    """torch==2.4.0 is the lower bound torch>=2.4 (Version('2.4') == Version('2.4.0'))."""
    bounds, pinned = lower_bounds(requirements()), pins()
    for name in PINNED:
        assert name in bounds, f"{source} declares no lower bound (>=) for {name}"
        assert pinned[name] == bounds[name], (
            f"{MINIMUMS.relative_to(ROOT)} tests {name}=={pinned[name]} but {source} says {name}>={bounds[name]}")
