"""Issue 16's limits on the library a learner reads, measured by tools/code_shape.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from code_shape import measure  # noqa: E402


@pytest.mark.parametrize("module", ["masks", "layers", "model", "losses", "tiling"])
def test_defensive_code_is_at_most_a_tenth_of_a_step_module(module):
    shape = measure(ROOT / "pconv_lib" / f"{module}.py")
    assert shape.defensive_share <= 0.10, (
        f"{module}.py: {shape.defensive_lines} of {shape.code_lines} code lines are checks "
        f"({shape.defensive_share:.1%}); move input checks to the boundary (tensor_checks, arg_checks)"
    )


def test_the_classes_a_learner_reads_stay_short():
    assert measure(ROOT / "pconv_lib" / "layers.py").classes["PartialConv2d"] <= 120
    for module in ("masks", "layers", "model"):
        longest = max(measure(ROOT / "pconv_lib" / f"{module}.py").classes.items(), key=lambda kv: kv[1])
        assert longest[1] <= 150, f"{module}.{longest[0]} is {longest[1]} lines (limit 150)"


def test_the_train_module_is_the_loop():
    assert measure(ROOT / "pconv_lib" / "train.py").lines <= 400
