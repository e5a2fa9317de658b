"""tools/make_exercises.py: stubs, leaks and drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools" / "make_exercises.py")
make_exercises = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_exercises)

SOLVED = '''def f(x):
    """doc"""
    # BEGIN SOLUTION Return twice x.
    y = x * 2
    return y
    # END SOLUTION'''


def test_stub_replaces_region_at_same_indent():
    source, removed = make_exercises.stub_source(SOLVED, "cell")
    assert removed == ["    y = x * 2", "    return y"]
    assert source.splitlines()[-2:] == [
        "    # TODO: Return twice x.",
        '    raise NotImplementedError("Exercise: Return twice x.")',
    ]
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


@pytest.mark.parametrize(
    "bad, message",
    [("    # BEGIN SOLUTION\n    x = 1", "never closed"), ("    # END SOLUTION", "without BEGIN"),
     ("    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION", "inside another")],
)
def test_malformed_markers_are_errors(bad, message):
    with pytest.raises(make_exercises.ExerciseError, match=message):
        make_exercises.stub_source(bad, "cell")


def _solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("solved version", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(SOLVED),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    return nb


def test_exercise_strips_outputs_drops_solution_markdown_and_tags_stubs():
    exercise, removed = make_exercises.make_exercise(_solution_notebook(), "x.ipynb")
    assert [c.cell_type for c in exercise.cells] == ["markdown", "markdown", "code", "code"]
    assert exercise.cells[2].metadata["tags"] == ["raises-exception"]
    assert all(c.get("outputs", []) == [] for c in exercise.cells)
    assert exercise.metadata["kernelspec"]["name"] == "python3"
    assert make_exercises.leaks(make_exercises.render(exercise), removed) == []


def test_run_all_note_follows_the_title():
    exercise, _ = make_exercises.make_exercise(_solution_notebook(), "07_x.ipynb")
    assert exercise.cells[0].source == "# Title"
    note = exercise.cells[1]
    assert note.cell_type == "markdown" and note.metadata["tags"] == [make_exercises.NOTE_TAG]
    for words in ("Run All", "not implemented yet", "stops *Run All* at that cell",
                  "Run Selected Cell and All Below", "one by one", "solutions/07_x.ipynb"):
        assert words in " ".join(note.source.split())
    assert sum(make_exercises.NOTE_TAG in c.metadata.get("tags", []) for c in exercise.cells) == 1


def test_top_level_solution_region_is_rejected():
    # A stub outside a function raises while its cell runs, which would stop Run All there.
    with pytest.raises(make_exercises.ExerciseError, match="top level.*stop Run All"):
        make_exercises.stub_source("# BEGIN SOLUTION Compute y.\ny = 2\n# END SOLUTION", "cell")


SOLUTION_PATHS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", SOLUTION_PATHS, ids=lambda p: p.name)
def test_generated_stub_cells_run_without_raising(path):
    """Defining the stubbed functions must not raise: only calling them does (so Run All goes on)."""
    exercise, _ = make_exercises.make_exercise(nbformat.read(path, as_version=4), path.name)
    assert make_exercises.NOTE_TAG in exercise.cells[1].metadata.get("tags", [])
    for cell in exercise.cells:
        if make_exercises.STUB_TAG in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                assert not line.startswith("raise NotImplementedError"), (path.name, cell.source[:80])


def test_hints_do_not_give_the_code_away():
    """TODO lines say what to think about: no library call of the solution appears in a hint."""
    for path in sorted((ROOT / "solutions").glob("0[1235]_*.ipynb")):
        exercise, removed = make_exercises.make_exercise(nbformat.read(path, as_version=4), path.name)
        hints = [line for cell in exercise.cells for line in cell.source.splitlines() if "# TODO:" in line]
        assert hints, path.name
        for hint in hints:
            for call in ("F.conv2d", "F.interpolate", "torch.cat", "cv2.circle(", "np.count_nonzero",
                         "clamp_min", "torch.outer", "enumerate(", "range(", ".view("):
                assert call not in hint, (path.name, hint)


def test_leak_detection_finds_solution_lines():
    assert make_exercises.leaks("y = x * 2 appears here", ["    y = x * 2  # long enough"]) == []
    assert make_exercises.leaks("z = compute(x) * 2", ["    z = compute(x) * 2"]) == ["z = compute(x) * 2"]
    assert make_exercises.leaks("# BEGIN SOLUTION", []) == ["BEGIN SOLUTION"]


def test_notebook_without_exercise_is_rejected():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(make_exercises.ExerciseError, match="nothing to do"):
        make_exercises.make_exercise(nb, "empty.ipynb")


def test_committed_exercises_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_lesson_has_a_solution_and_an_exercise():
    lessons = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    solutions = sorted(p.name[:2] for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    exercises = sorted(p.name[:2] for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
    assert lessons == solutions == exercises


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_committed_notebooks_have_outputs_and_python3_kernel(folder):
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), f"{path.name} is not executed"
        assert not any(
            o.get("output_type") == "error" for c in code for o in c.outputs
        ), f"{path.name} has an error output"


def test_exercises_have_no_outputs():
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_no_answer_key_before_or_after_the_exercise(folder):
    """Issue 19: no mistake -> message table (a key to the fixes); questions come after the last check."""
    for path in sorted((ROOT / folder).glob("0*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cells = notebook.cells
        for cell in cells:
            if cell.cell_type == "markdown":
                assert "| mistake |" not in cell.source, f"{path.name}: a mistakes table gives the fixes away"
        checks = [i for i, c in enumerate(cells) if c.cell_type == "code" and "checks.check_" in c.source]
        questions = [i for i, c in enumerate(cells)
                     if c.cell_type == "markdown" and "questions to ask" in c.source]
        assert checks and questions == [len(cells) - 1], f"{path.name}: the questions close the notebook"
        assert questions[0] > checks[-1]
