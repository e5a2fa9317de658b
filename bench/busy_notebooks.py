#!/usr/bin/env python
"""The lesson notebooks' run times, idle and with one core kept busy (issue 17's "done when").

    nice -n 0 .venv/bin/python bench/busy_notebooks.py              # all five lessons, 2 rounds
    .venv/bin/python bench/busy_notebooks.py --rounds 3 notebooks/04_training.ipynb

Each notebook runs top to bottom the way a learner's laptop runs it (``CI``, ``PCONV_QUICK``,
``PCONV_FULL`` and ``PCONV_THREADS`` removed from the environment: the library's thread policy
decides), with ``tools/measure_times.py``'s timer (kernel time, start excluded; the file is not
changed). "busy" = a second process spinning at normal priority (``while True: pass``) for the
whole run, as a browser or a video call would. Idle and busy runs are interleaved notebook by
notebook (the order flips every round), and the table prints the median (min-max) seconds of the
rounds and busy/idle. Each notebook first runs once untimed (a warm-up: cold files and caches
would otherwise flatter whichever case runs second). ``--quick``: the first lesson, one round.
The load average before and after and the other programs' CPU use during
the idle runs are printed too: on a shared machine they explain the spread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from measure_times import execute  # noqa: E402

LESSONS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def _busy_cores() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of the whole machine from /proc/stat (Linux)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run_once(path: Path, busy: bool) -> tuple[float, float]:
    """(kernel seconds, cores used by everything on the machine meanwhile)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.2 if busy else 0.0)
        before = _busy_cores()
        seconds = execute(path)
        after = _busy_cores()
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    cores = (after[0] - before[0]) / max(1, after[1] - before[1]) * (os.cpu_count() or 1)
    return seconds, cores


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: the five lessons)")
    parser.add_argument("--rounds", type=int, default=None, help="idle/busy pairs per notebook (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="the first lesson only, one round (a smoke run: the ratio means little)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    paths = [p.resolve() for p in args.paths] or (LESSONS[:1] if args.quick else LESSONS)
    for name in ("CI", "PCONV_QUICK", "PCONV_FULL", "PCONV_THREADS"):
        os.environ.pop(name, None)

    print(f"{os.cpu_count()} CPUs; loadavg before: {os.getloadavg()}", flush=True)
    times: dict[str, dict[str, list[float]]] = {}
    idle_cores: list[float] = []
    for path in paths:  # warm-up: the first run of a notebook reads cold files and caches; not timed
        seconds, _ = run_once(path, False)
        print(f"  warm-up {path.stem:22s} idle {seconds:6.1f} s (not counted)", flush=True)
    for round_index in range(rounds):
        for path in paths:
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for busy in order:
                seconds, cores = run_once(path, busy)
                runs = times.setdefault(path.stem, {"idle": [], "busy": []})
                runs["busy" if busy else "idle"].append(seconds)
                if not busy:
                    idle_cores.append(cores)
                print(f"  round {round_index + 1} {path.stem:22s} {'busy' if busy else 'idle'} "
                      f"{seconds:6.1f} s (machine: {cores:.2f} cores in use)", flush=True)
    print(f"loadavg after: {os.getloadavg()}")
    print(f"machine cores in use during the idle runs (the notebook included): median "
          f"{statistics.median(idle_cores):.2f} ({min(idle_cores):.2f}-{max(idle_cores):.2f})")
    print(f"{rounds} round(s) after a warm-up run of each notebook; kernel seconds, median (min-max)\n")
    print(f"{'notebook':22s} {'idle s':>18s} {'busy s':>18s} {'busy/idle':>10s}")
    totals = {"idle": 0.0, "busy": 0.0}
    for name, runs in times.items():
        ratio = statistics.median(runs["busy"]) / statistics.median(runs["idle"])
        totals["idle"] += statistics.median(runs["idle"])
        totals["busy"] += statistics.median(runs["busy"])
        print(f"{name:22s} {fmt(runs['idle']):>18s} {fmt(runs['busy']):>18s} {ratio:9.2f}x")
    print(f"{'all (sum of medians)':22s} {totals['idle']:18.1f} {totals['busy']:18.1f} "
          f"{totals['busy'] / totals['idle']:9.2f}x   (target: each <= 1.2x, issue 25)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
