#!/usr/bin/env python
"""Execute notebooks in place (outputs stored), in their own folder, with the ``python3`` kernel.

    PCONV_QUICK=1 python tools/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb

Prints each notebook's run time. Cell execution metadata (timestamps) is dropped so that
re-running a notebook only changes the files where the outputs really changed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3", "language": "python", "name": "python3",
    }
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    elapsed = time.perf_counter() - start
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(notebook, path)
    return elapsed


def main(paths: list[str]) -> int:
    for name in paths:
        elapsed = execute(Path(name))
        print(f"{name}: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
