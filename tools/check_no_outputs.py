"""Fail when a notebook carries outputs or execution counts (exercises/ must be handed out clean).

    python tools/check_no_outputs.py exercises/*.ipynb

One line per offending cell: ``exercises/01_masks.ipynb: cell 4 has outputs``; exit code 1 if any.
Standard library only, so the pre-commit hook needs no packages. ``make exercises`` writes clean
exercises from solutions/ (tools/make_exercises.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def stray_outputs(path: Path) -> list[str]:
    """One message per code cell of ``path`` with outputs or an execution count."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"{path}: cell {number} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"{path}: cell {number} has an execution count")
    return found


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    problems = [line for path in paths for line in stray_outputs(path)]
    for line in problems:
        print(line)
    if problems:
        print("exercises must have no outputs: run make exercises (never edit exercises/ by hand)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
