#!/usr/bin/env python
"""Generate exercises/NN_*.ipynb from solutions/NN_*.ipynb (the single source of truth).

In a solution code cell, the lines between ``# BEGIN SOLUTION <hint>`` and ``# END SOLUTION``
become ``# TODO: <hint>`` plus ``raise NotImplementedError(...)`` at the same indentation; the cell
is tagged ``raises-exception`` (nbval then allows, but does not require, an error). Markdown cells
tagged ``solution`` are dropped. All outputs and execution counts are stripped.

A solution region must be indented (inside a function or class): a stub at the top level of a cell
would raise while the cell runs and stop "Run All" there. Inside a function it raises only when
called, and the check cells catch that and print "not implemented yet", so "Run All" goes through
an unfinished exercise. A note inserted after the title (:data:`RUN_ALL_NOTE`) tells learners this,
and how to go on when a check stops "Run All" at a mistake.

    python tools/make_exercises.py           # write exercises/
    python tools/make_exercises.py --check   # exit 1 if exercises/ is out of date or leaks solutions
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION\b\s*(?P<hint>.*)$")
END = re.compile(r"^\s*# END SOLUTION\b")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION")
STUB_TAG = "raises-exception"
NOTE_TAG = "exercise-note"

#: Inserted after the title of every exercise; ``{name}`` is the notebook's file name.
RUN_ALL_NOTE = """\
**How to work through this exercise.** Each part you write is a `# TODO:` line (what to think about)
followed by `raise NotImplementedError(...)`: replace both lines with your code, run the cell, then
run the check cell below it.

*Run All* works at any time: a part you have not written yet makes its check print
"not implemented yet", and the cells after it use the library's version, so they run too. A check
that finds a mistake **stops *Run All* at that cell** with a message that names the first thing
that differs, and its cause when the check could confirm it. Fix your function, re-run its cell
and the check, then go on with **Run ▸ Run Selected Cell and All Below** (or run the remaining
cells one by one with Shift+Enter). If a message does not show you the way, the questions at the
end of the notebook point at the usual trouble spots. The solved notebook is `solutions/{name}`."""


class ExerciseError(ValueError):
    """A solution notebook whose markers are malformed."""


def stub_source(source: str, where: str) -> tuple[str, list[str]]:
    """Replace the fenced solution regions of one cell; return (new source, removed lines)."""
    out: list[str] = []
    removed: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ExerciseError(f"{where}, line {number}: BEGIN SOLUTION inside another one")
            inside = True
            indent = begin.group("indent")
            if not indent:
                raise ExerciseError(
                    f"{where}, line {number}: BEGIN SOLUTION at the top level of a cell; its stub would "
                    "raise when the cell runs and stop Run All there. Put the learner's code inside a "
                    "function (or method) that a check cell calls"
                )
            hint = begin.group("hint").strip() or "write this part."
            out.append(f"{indent}# TODO: {hint}")
            out.append(f'{indent}raise NotImplementedError("Exercise: {_escape(hint)}")')
        elif END.match(line):
            if not inside:
                raise ExerciseError(f"{where}, line {number}: END SOLUTION without BEGIN")
            inside = False
        elif inside:
            removed.append(line)
        else:
            out.append(line)
    if inside:
        raise ExerciseError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out), removed


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def make_exercise(solution: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """Build the exercise notebook for one solution notebook; return it and the removed lines."""
    exercise = nbformat.v4.new_notebook()
    exercise.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    removed_all: list[str] = []
    stubs = 0
    note_added = False
    for index, cell in enumerate(solution.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "markdown":
            if "solution" in tags:
                continue
            exercise.cells.append(nbformat.v4.new_markdown_cell(cell.source, metadata=_meta(tags)))
            if not note_added:  # right after the title cell
                note = RUN_ALL_NOTE.format(name=name)
                exercise.cells.append(nbformat.v4.new_markdown_cell(note, metadata=_meta([NOTE_TAG])))
                note_added = True
        elif cell.cell_type == "code":
            source, removed = stub_source(cell.source, f"{name}, cell {index}")
            if removed:
                stubs += 1
                removed_all.extend(removed)
                if STUB_TAG not in tags:
                    tags.append(STUB_TAG)
            exercise.cells.append(nbformat.v4.new_code_cell(source, metadata=_meta(tags)))
        else:
            exercise.cells.append(nbformat.v4.new_raw_cell(cell.source))
    if stubs == 0:
        raise ExerciseError(f"{name}: no '# BEGIN SOLUTION' region, so the exercise has nothing to do")
    for i, cell in enumerate(exercise.cells):  # stable ids keep the committed files diff-free
        cell["id"] = f"cell-{i:03d}"
    return exercise, removed_all


def _meta(tags: list[str]) -> dict:
    return {"tags": tags} if tags else {}


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def leaks(exercise_text: str, removed: list[str]) -> list[str]:
    """Solution lines or markers that can be found in the exercise text."""
    found = [marker for marker in MARKERS if marker in exercise_text]
    for line in removed:
        code = line.strip()
        if len(code) >= 12 and not code.startswith("#") and code in exercise_text:
            found.append(code)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    args = parser.parse_args(argv)

    problems: list[str] = []
    solutions = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if not solutions:
        problems.append(f"no solution notebooks in {SOLUTIONS}")
    expected = {path.name for path in solutions}
    for path in solutions:
        try:
            exercise, removed = make_exercise(nbformat.read(path, as_version=4), path.name)
        except ExerciseError as error:
            problems.append(str(error))
            continue
        text = render(exercise)
        for leak in leaks(text, removed):
            problems.append(f"exercises/{path.name}: solution text leaks into the exercise: {leak!r}")
        target = EXERCISES / path.name
        if args.check:
            if not target.exists():
                problems.append(f"exercises/{path.name} is missing: run `make exercises`")
            elif target.read_text(encoding="utf-8") != text:
                problems.append(
                    f"exercises/{path.name} differs from what solutions/{path.name} generates: "
                    "run `make exercises` and commit the result"
                )
        else:
            EXERCISES.mkdir(exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote exercises/{path.name}")
    for orphan in sorted(EXERCISES.glob("*.ipynb")):
        if orphan.name not in expected:
            problems.append(f"exercises/{orphan.name} has no solutions/{orphan.name} to come from")
    for problem in problems:
        print(f"make_exercises: {problem}", file=sys.stderr)
    if args.check and not problems:
        print(f"make_exercises: {len(solutions)} exercise notebooks are up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
