"""Every bench script runs to the end in its ``--quick`` form (issue 25: ``make bench`` used to stop
at the first broken script). Numbers are not checked here: a smoke run on a shared CPU means little;
``bench/RESULTS.md`` holds the measured ones. Each run is a real subprocess of 20-90 s on a loaded
2-core CPU (7 min in all), so they are marked ``bench`` and left out of the default run:
``make bench-smoke`` (or ``pytest -m bench``) runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: script: (the smallest --quick arguments, a line its end prints)
QUICK = {
    "busy_cpu.py": (["--quick", "--loads", "idle"], "policy idle / best fixed count idle"),
    "busy_notebooks.py": (["--quick"], "all (sum of medians)"),
    "large_holes.py": (["--quick", "--repeats", "1", "--long-side", "512"], "mean"),
    "layer_overhead.py": (["--quick", "--repeats", "1", "--size", "128"], "target pconv faster than"),
    "tiled_prediction.py": (["--quick", "--repeats", "1"], "time ratio = tiled / whole"),
    "train_throughput.py": (["--quick", "--steps", "1"], "notebook model, 64x64"),
    "unet_step.py": (["--quick", "--repeats", "1", "--width", "0.25"], "forward+backward pconv"),
}


def test_every_bench_script_has_a_smoke_run():
    assert sorted(QUICK) == sorted(p.name for p in (ROOT / "bench").glob("*.py"))


@pytest.mark.slow
@pytest.mark.bench
@pytest.mark.parametrize("script", sorted(QUICK))
def test_bench_script_runs_to_the_end_in_quick_form(script):
    args, last_words = QUICK[script]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert last_words in done.stdout and "Traceback" not in done.stderr
