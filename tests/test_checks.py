"""pconv_lib.checks: right answers pass, stubs say 'not implemented', wrong answers explain."""

from __future__ import annotations

import numpy as np
import pytest

from pconv_lib import checks, masks


def _stub(*args, **kwargs):
    raise NotImplementedError


def test_library_functions_pass(capsys):
    assert checks.check_hole_ratio(masks.hole_ratio)
    assert checks.check_hole_ratio_bucket(masks.hole_ratio_bucket)
    assert checks.check_stroke_drawer(masks.draw_random_circle)
    assert capsys.readouterr().out.count(checks.PASS) == 3


@pytest.mark.parametrize(
    "check", [checks.check_hole_ratio, checks.check_hole_ratio_bucket, checks.check_stroke_drawer]
)
def test_stubs_report_not_implemented(check, capsys):
    assert check(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_inverted_convention_is_explained():
    with pytest.raises(checks.ExerciseCheckError, match="1 = valid, 0 = hole"):
        checks.check_hole_ratio(lambda m: float(np.mean(m == 1)))


def test_closed_left_edge_is_explained():
    def wrong(ratio):
        for i, (low, high) in enumerate(masks.HOLE_RATIO_BUCKETS):
            if low <= ratio < high:
                return i
        return None

    with pytest.raises(checks.ExerciseCheckError, match=r"half-open intervals \(low, high\]"):
        checks.check_hole_ratio_bucket(wrong)


def test_stroke_with_255_is_explained():
    def draw_255(canvas, rng, max_size):
        import cv2

        cv2.circle(canvas, (int(rng.integers(0, 50)), 20), 5, 255, -1)

    with pytest.raises(checks.ExerciseCheckError, match="colour 1, not 255"):
        checks.check_stroke_drawer(draw_255)


def test_unseeded_stroke_is_explained():
    generator = np.random.default_rng()

    def unseeded(canvas, rng, max_size):
        import cv2

        cv2.circle(canvas, (int(generator.integers(0, 100)), 30), 5, 1, -1)

    with pytest.raises(checks.ExerciseCheckError, match="same seed"):
        checks.check_stroke_drawer(unseeded)


def test_compare_arrays_names_the_first_mismatch():
    expected = np.zeros((2, 3))
    got = expected.copy()
    got[1, 2] = 5
    with pytest.raises(checks.ExerciseCheckError, match=r"index \[1, 2\].*1 of 6"):
        checks.compare_arrays("out", got, expected)
    with pytest.raises(checks.ExerciseCheckError, match="shape"):
        checks.compare_arrays("out", np.zeros(3), expected)


def test_the_checks_package_is_declared_for_wheels():
    """pip install (not only -e) must carry pconv_lib.checks: every package folder is listed."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "pconv_lib.checks" in declared
    for init in (root / "pconv_lib").rglob("__init__.py"):
        package = ".".join(init.parent.relative_to(root).parts)
        assert package in declared, f"{package} is missing from [tool.setuptools] packages in pyproject.toml"


def test_checks_are_one_module_per_step_in_course_order():
    import pconv_lib.checks as package

    steps = ["step1_masks", "step2_partial_conv", "step3_unet", "step4_losses", "step5_tiling"]
    for step in steps:
        module = __import__(f"pconv_lib.checks.{step}", fromlist=["_"])
        names = [n for n in dir(module) if n.startswith("check_")]
        assert names and all(getattr(package, n) is getattr(module, n) for n in names), step
