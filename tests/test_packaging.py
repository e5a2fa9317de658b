"""environment.yml, binder/environment.yml and pyproject.toml list the same packages."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names for PyPI packages, where they differ
CONDA_NAME = {"torch": "pytorch-cpu", "opencv-python-headless": "py-opencv"}


def _pyproject_requirements(with_test: bool) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    if with_test:
        requirements += project["optional-dependencies"]["test"]
    parsed = {}
    for requirement in requirements:
        name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
        parsed[CONDA_NAME.get(name.lower(), name.lower())] = spec.replace(" ", "")
    return parsed


def _conda_requirements(path: Path) -> dict[str, str]:
    parsed = {}
    text = path.read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        match = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)\s*([<>=!~][^#]*)?$", line)
        if match and match.group(1) not in ("python", "pip"):
            parsed[match.group(1).lower()] = (match.group(2) or "").replace(" ", "")
    return parsed


def test_environment_yml_matches_pyproject():
    assert _conda_requirements(ROOT / "environment.yml") == _pyproject_requirements(with_test=True)


def test_binder_environment_matches_pyproject():
    assert _conda_requirements(ROOT / "binder" / "environment.yml") == _pyproject_requirements(
        with_test=False
    )


def test_torch_ranges_admit_the_course_versions():
    reqs = _pyproject_requirements(with_test=False)
    assert "2.14.1" in reqs["pytorch-cpu"] and "0.29.1" in reqs["torchvision"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1] == "make test"
