#!/usr/bin/env python
"""Measure the notebooks' run times: the one source of every run time the docs quote.

    nice -n 5 .venv/bin/python tools/measure_times.py            # all lessons and solutions
    .venv/bin/python tools/measure_times.py notebooks/02_partial_conv.ipynb   # one row, kept the rest
    .venv/bin/python tools/measure_times.py --docs-only           # copy the table into the docs

Each notebook is executed top to bottom in its own folder with the ``python3`` kernel, the way a
learner's laptop runs it: ``CI``, ``PCONV_QUICK`` and ``PCONV_FULL`` are removed from the
environment (quick mode then comes from the missing GPU). The notebook file is not changed. The
kernel time (start excluded) is rounded to whole seconds and written to ``docs/run_times.md``
with the date, the CPU count and the load average before and after; then the numbers quoted in
``README.md`` (course map) and ``INSTRUCTORS.md`` (schedule) are rewritten from that table.
``tests/test_docs_truth.py`` checks that the docs and the table agree.

Run it on an otherwise idle machine: on a busy one every number grows, and the table says so.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "run_times.md"
README = ROOT / "README.md"
INSTRUCTORS = ROOT / "INSTRUCTORS.md"
HEADER = "<!-- written by tools/measure_times.py: do not edit by hand, re-run the script -->"
ROW = re.compile(r"^\| (?P<name>0\d_\w+) \| (?P<lesson>\d+|-) \| (?P<solution>\d+|-) \|$")
DOCTOR = re.compile(r"^`python -m pconv_lib doctor`: (?P<seconds>\d+) s$")


def read_table(path: Path = TABLE) -> tuple[str, dict[str, dict[str, int | None]]]:
    """(the conditions line, {notebook stem: {"lesson": s, "solution": s}}) from ``docs/run_times.md``.

    The doctor's time is the row ``"doctor"`` (its ``"lesson"`` entry).
    """
    if not path.is_file():
        return "", {}
    conditions, rows = "", {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Measured"):
            conditions = line
        doctor = DOCTOR.match(line)
        if doctor:
            rows["doctor"] = {"lesson": int(doctor["seconds"]), "solution": None}
        match = ROW.match(line)
        if match:
            rows[match["name"]] = {
                kind: None if match[kind] == "-" else int(match[kind]) for kind in ("lesson", "solution")
            }
    return conditions, rows


def write_table(conditions: str, rows: dict[str, dict[str, int | None]], path: Path = TABLE) -> None:
    lines = [HEADER, "", "# Notebook run times", "", conditions, "",
             "| notebook | lesson s | solution s |", "|---|---|---|"]
    for name in sorted(n for n in rows if n != "doctor"):
        cells = ["-" if rows[name][kind] is None else str(rows[name][kind])
                 for kind in ("lesson", "solution")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if rows.get("doctor"):
        lines += ["", f"`python -m pconv_lib doctor`: {rows['doctor']['lesson']} s"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def time_doctor() -> float:
    """Seconds ``python -m pconv_lib doctor`` takes (its exit code does not matter here)."""
    import subprocess

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pconv_lib", "doctor"], cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


def execute(path: Path) -> float:
    """Seconds the notebook's cells took (kernel start excluded); the file is left as it was."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        start = time.perf_counter()
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        return time.perf_counter() - start


def update_docs(rows: dict[str, dict[str, int | None]]) -> list[str]:
    """Rewrite the run times quoted in README.md and INSTRUCTORS.md from ``rows``; the files changed."""
    changed = []
    by_step = {int(name[:2]): times for name, times in rows.items() if name != "doctor"}
    readme = README.read_text(encoding="utf-8")

    def readme_row(match: re.Match) -> str:
        times = by_step.get(int(match["step"]))
        if not times or times["lesson"] is None:
            return match[0]
        return f"{match['head']}~{times['lesson']} s |"

    new = re.sub(r"(?m)^(?P<head>\| (?P<step>[1-9]) \| \[0\d_.*\| )~\d+ s \|$", readme_row, readme)
    if new != readme:
        README.write_text(new, encoding="utf-8")
        changed.append(README.name)

    instructors = INSTRUCTORS.read_text(encoding="utf-8")

    def schedule_row(match: re.Match) -> str:
        times = by_step.get(int(match["step"]))
        line = match[0]
        if not times:
            return line
        for kind in ("lesson", "solution"):
            if times[kind] is not None:
                line = re.sub(rf"\b{kind} \d+ s\b", f"{kind} {times[kind]} s", line)
        return line

    new = re.sub(r"(?m)^\| \d\d:\d\d \| .*\*\*step (?P<step>[1-9]),.*$", schedule_row, instructors)
    if rows.get("doctor"):
        new = re.sub(r"doctor: ~\d+ s \|", f"doctor: ~{rows['doctor']['lesson']} s |", new)
    if new != instructors:
        INSTRUCTORS.write_text(new, encoding="utf-8")
        changed.append(INSTRUCTORS.name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks to measure (default: notebooks/0*.ipynb and solutions/0*.ipynb)")
    parser.add_argument("--docs-only", action="store_true",
                        help="measure nothing; copy the table into the docs")
    args = parser.parse_args(argv)
    conditions, rows = read_table()
    if not args.docs_only:
        paths = args.paths or sorted((ROOT / "notebooks").glob("0*.ipynb")) + sorted(
            (ROOT / "solutions").glob("0*.ipynb"))
        bad = [str(p) for p in paths if p.suffix != ".ipynb" or not p.is_file()
               or p.resolve().parent.name not in ("notebooks", "solutions")]
        if bad:
            print(f"error: not a lesson or solution notebook: {', '.join(bad)} "
                  "(give paths like notebooks/01_masks.ipynb)", file=sys.stderr)
            return 2
        for variable in ("CI", "PCONV_QUICK", "PCONV_FULL"):
            os.environ.pop(variable, None)
        load_before = os.getloadavg()[0]
        failed = []
        for path in paths:
            try:
                seconds = execute(path)
            except Exception as error:  # a notebook that fails keeps its old row; the run reports it
                failed.append(path)
                first = f"{type(error).__name__}: {error}".strip().splitlines()[0][:200]
                print(f"{path.parent.name}/{path.name}: FAILED ({first}); its row is left as it was",
                      file=sys.stderr, flush=True)
                continue
            kind = "lesson" if path.resolve().parent.name == "notebooks" else "solution"
            rows.setdefault(path.stem, {"lesson": None, "solution": None})[kind] = round(seconds)
            print(f"{path.parent.name}/{path.name}: {seconds:.1f} s", flush=True)
        if not args.paths:
            rows["doctor"] = {"lesson": round(time_doctor()), "solution": None}
            print(f"python -m pconv_lib doctor: {rows['doctor']['lesson']} s", flush=True)
        load_after = os.getloadavg()[0]
        conditions = (
            f"Measured {datetime.date.today().isoformat()} ({len(paths)} notebooks this run) on "
            f"{os.cpu_count()} CPUs, load average {load_before:.1f} before and {load_after:.1f} after "
            "(an idle machine is near 0; every number grows with it), no environment variable set "
            "(quick mode, as on a laptop without a GPU); kernel time in seconds, a cold kernel start "
            "adds a few."
        )
        write_table(conditions, rows)
        print(f"wrote {TABLE.relative_to(ROOT)}")
    changed = update_docs(rows)
    print("updated " + (", ".join(changed) if changed else "nothing: the docs already quote the table"))
    if not args.docs_only and failed:
        names = ", ".join(map(str, failed))
        print(f"error: {len(failed)} notebook(s) failed to run: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
