"""Packaging and the places the course is opened from agree with each other.

environment.yml, binder/environment.yml and pyproject.toml list the same packages; the repository URL
lives in pyproject.toml and pconv_lib/app/project.py and every notebook and README link uses it; binder/
follows repo2docker's documented files; no file points outside the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

from pconv_lib.app import project

ROOT = Path(__file__).resolve().parent.parent

# folders that are not part of the repository's own files
# paths beside the repository that learners do not have (split so this file does not contain them)
OUTSIDE = ("../" + "shared", "/work/" + "shared")
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "runs", "build"}

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


# -- one repository URL ------------------------------------------------------------------------------

NOTEBOOK_DIRS = ("notebooks", "exercises", "solutions")


def _notebooks() -> list[Path]:
    paths = sorted(p for folder in NOTEBOOK_DIRS for p in (ROOT / folder).glob("*.ipynb"))
    assert len(paths) >= 15, "expected the five lessons, exercises and solutions"
    return paths


def test_repository_url_is_configured_once():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == project.REPOSITORY_URL
    assert project.github_slug().count("/") == 1


def test_every_notebook_installs_from_the_configured_url():
    for path in _notebooks():
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        first = "".join(cells[0]["source"])
        assert 'if "google.colab" in sys.modules:' in first, (
            f"{path.name}: first code cell is not the Colab cell"
        )
        assert project.install_command() in first, f"{path.relative_to(ROOT)}: install URL differs"


def test_readme_links_every_notebook_to_colab_and_binder():
    readme = (ROOT / "README.md").read_text()
    for path in _notebooks():
        relative = path.relative_to(ROOT).as_posix()
        assert project.colab_url(relative) in readme, f"README: no Colab link for {relative}"
        assert project.binder_url(relative) in readme, f"README: no Binder link for {relative}"
    assert project.binder_url() in readme  # the Binder badge opens the course map


def test_no_other_copy_of_the_repository_url():
    """Every GitHub/Colab/Binder address of this repository is built from the one URL."""
    slug_pattern = re.compile(
        r"(?:github\.com|colab\.research\.google\.com/github|mybinder\.org/v2/gh)/([\w.-]+/[\w.-]+)"
    )
    files = [ROOT / "README.md", ROOT / "INSTRUCTORS.md", ROOT / "CONTRIBUTING.md", *_notebooks()]
    for path in files:
        for slug in slug_pattern.findall(path.read_text()):
            owner = slug.split("/")[0]
            if owner == project.github_slug().split("/")[0]:
                assert slug.removesuffix(".git") == project.github_slug(), f"{path.name}: {slug}"


def test_no_file_points_outside_the_repository():
    tracked = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        tracked += [Path(folder) / name for name in names]
    for path in tracked:
        if path.suffix in {".md", ".py", ".ipynb", ".toml", ".yml", ".txt", ".cfg"} or path.parent.name in {
            "binder",
            ".ci",
        }:
            text = path.read_text(errors="replace")
            for outside in OUTSIDE:
                assert outside not in text, f"{path.relative_to(ROOT)} mentions {outside}"


# -- Binder (repo2docker's documented files: binder/environment.yml, postBuild, start) -------------


def test_binder_scripts_are_executable_bash():
    for name in ("postBuild", "start"):
        script = ROOT / "binder" / name
        assert script.read_text().startswith("#!/bin/bash\n"), (
            f"binder/{name}: first line must be #!/bin/bash"
        )
        assert os.access(script, os.X_OK), f"binder/{name} must be executable (git update-index --chmod=+x)"
    start_lines = [line for line in (ROOT / "binder" / "start").read_text().splitlines() if line.strip()]
    assert start_lines[-1] == 'exec "$@"'  # repo2docker: the last line must hand over to Jupyter
    assert "export PCONV_QUICK=1" in start_lines


def test_binder_start_sets_quick_mode():
    done = subprocess.run(
        [str(ROOT / "binder" / "start"), sys.executable, "-c", "import os; print(os.environ['PCONV_QUICK'])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "1"


def test_binder_post_build_runs_in_order(tmp_path):
    """Run binder/postBuild with a stand-in ``python`` that records its calls (no network)."""
    shims = tmp_path / "bin"
    shims.mkdir()
    prefix = tmp_path / "prefix"
    log = tmp_path / "calls.txt"
    (shims / "python").write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        f'if [ "$1" = "-c" ]; then echo {prefix}; fi\n'
        'if [ "$*" = "-m pconv_lib doctor" ]; then exit "${DOCTOR_EXIT:-0}"; fi\n'
    )
    (shims / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "-m pip install --no-deps -e ." and calls[-1] == "-m pconv_lib doctor"
    overrides = json.loads((prefix / "share/jupyter/lab/settings/overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Markdown Preview"
    env["DOCTOR_EXIT"] = "1"  # a failing pre-flight check fails the Binder build
    done = subprocess.run(
        [str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1


def test_binder_and_conda_python_versions_agree_with_pyproject():
    def python_pin(path: Path) -> str:
        return re.search(r"^\s+-\s+python=(\S+)", path.read_text(), re.M).group(1)

    pin = python_pin(ROOT / "environment.yml")
    assert python_pin(ROOT / "binder" / "environment.yml") == pin
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert tuple(map(int, pin.split("."))) >= tuple(map(int, minimum.removeprefix(">=").split(".")))
    assert "-e ." not in (ROOT / "binder" / "environment.yml").read_text()  # postBuild installs it


# -- README: the path without make ------------------------------------------------------------------


def _windows_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("### Windows", 1)[1].split("\n### ", 1)[0]


def test_readme_windows_commands_quote_for_cmd_and_powershell():
    section = _windows_section()
    assert '-e ".[test]"' in section and "'" not in "".join(
        line for line in section.splitlines() if line.startswith(".venv")
    ), "single quotes do not work in cmd: use double quotes"
    assert ".venv\\Scripts\\jupyter lab" in section and "py -3.11 -m venv .venv" in section


def test_readme_make_test_by_hand_matches_the_makefile():
    """The Windows section spells out what `make test` runs: same checks, same nbval flags."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    nbval_flags = re.search(r"^PYTEST_NB := (.+)$", makefile, re.M).group(1).split()
    assert re.search(r"^test: lint check-exercises test-lib test-notebooks$", makefile, re.M)
    section = _windows_section()
    for command in ("-m ruff check .", "tools\\make_exercises.py --check", "-m pytest -n 2 tests"):
        assert command in section, command
    notebook_line = next(line for line in section.splitlines() if "--nbval-lax" in line)
    for flag in [*nbval_flags, "--dist", "loadfile", "notebooks", "solutions", "exercises"]:
        assert flag in notebook_line.split(), flag
    assert '$env:PCONV_QUICK = "1"' in section and "set PCONV_QUICK=1" in section


def test_the_demo_model_ships_as_package_data():
    """pip install (not only -e) must carry the demo model and its card (pconv_lib.pretrained)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "pconv_lib.weights" in setuptools["packages"]
    patterns = setuptools["package-data"]["pconv_lib.weights"]
    weights = ROOT / "pconv_lib" / "weights"
    for name in ("demo_model.pt", "MODEL_CARD.md"):
        assert (weights / name).is_file()
        assert any(Path(name).match(p) for p in patterns), name
