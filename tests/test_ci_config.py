"""The public-repository files agree with the README and the Makefile: the CI workflow runs the
README's test commands (Linux, macOS, Windows, the oldest torch), pre-commit runs the same checks as
make test, no exercise carries outputs, and CITATION.cff cites the course and the paper.

actionlint, pre-commit validate-config and cffconvert --validate check the files' syntax (see
CONTRIBUTING.md); these tests check what they say.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import yaml

from pconv_lib.app import project

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_no_outputs", ROOT / "tools" / "check_no_outputs.py")
check_no_outputs = importlib.util.module_from_spec(spec)
sys.modules["check_no_outputs"] = check_no_outputs
spec.loader.exec_module(check_no_outputs)


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _windows_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("### Windows", 1)[1].split("\n### ", 1)[0]


def test_workflow_runs_ci_run_on_linux_and_macos():
    job = _workflow()["jobs"]["make-test"]
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest"}
    assert "bash .ci/run" in _runs(job)


def test_workflow_runs_the_readme_windows_commands_verbatim():
    job = _workflow()["jobs"]["windows"]
    assert job["runs-on"].startswith("windows")
    runs = _runs(job).splitlines()
    readme_lines = [
        line.strip()
        for line in _windows_section().splitlines()
        if line.startswith((".venv\\Scripts\\python", "$env:PCONV_QUICK"))
    ]
    assert len(readme_lines) >= 8
    for line in readme_lines:
        assert line in [r.strip() for r in runs], f"the Windows job does not run: {line}"


def test_workflow_runs_the_oldest_torch_on_linux_and_an_intel_mac():
    job = _workflow()["jobs"]["oldest-torch"]
    assert "make test-oldest" in _runs(job)
    assert "macos-15-intel" in job["strategy"]["matrix"]["os"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test-oldest:", makefile, re.M) and "-c requirements/oldest.txt" in makefile


def test_every_workflow_job_has_a_time_limit_and_read_only_permissions():
    workflow = _workflow()
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 90, name


def test_pre_commit_runs_ruff_and_the_exercise_checks():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["ruff"]["entry"].startswith("ruff check")
    assert hooks["exercises-in-sync"]["entry"] == "python tools/make_exercises.py --check"
    assert hooks["exercises-without-outputs"]["entry"] == "python tools/check_no_outputs.py"
    assert re.match(hooks["exercises-without-outputs"]["files"], "exercises/01_masks.ipynb")


def _notebook(path: Path, outputs: list, count: int | None) -> Path:
    cell = {
        "cell_type": "code",
        "metadata": {},
        "source": "1 + 1",
        "outputs": outputs,
        "execution_count": count,
    }
    markdown = {"cell_type": "markdown", "metadata": {}, "source": "# title"}
    path.write_text(
        json.dumps({"cells": [markdown, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return path


def test_check_no_outputs_names_the_cell(tmp_path, capsys):
    clean = _notebook(tmp_path / "clean.ipynb", [], None)
    dirty = _notebook(tmp_path / "dirty.ipynb", [{"output_type": "stream", "name": "stdout", "text": "2"}], 3)
    assert check_no_outputs.main([str(clean)]) == 0
    assert check_no_outputs.main([str(clean), str(dirty)]) == 1
    out = capsys.readouterr().out
    assert f"{dirty}: cell 2 has outputs" in out and f"{dirty}: cell 2 has an execution count" in out
    assert "make exercises" in out


def test_the_exercises_have_no_outputs():
    exercises = sorted((ROOT / "exercises").glob("*.ipynb"))
    assert len(exercises) == 5
    assert [line for path in exercises for line in check_no_outputs.stray_outputs(path)] == []


def test_citation_cites_the_course_and_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["repository-code"] == project.REPOSITORY_URL
    (paper,) = citation["references"]
    assert [a["family-names"] for a in paper["authors"]] == [
        "Liu",
        "Reda",
        "Shih",
        "Wang",
        "Tao",
        "Catanzaro",
    ]
    assert paper["year"] == 2018 and "ECCV" in paper["collection-title"]
    assert paper["url"] == "https://arxiv.org/abs/1804.07723"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "arxiv.org/abs/1804.07723" in readme and "Partial Convolutions" in paper["title"]
