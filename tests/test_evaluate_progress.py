"""evaluate's progress bars (issue 17.4): the library's opt-in bar and the command line's."""

from __future__ import annotations

import numpy as np

from pconv_lib import evaluate
from pconv_lib.app import cli


def test_evaluate_methods_progress_bar_counts_images_times_buckets(capsys):
    images = [np.full((32, 32, 3), 100 + 20 * i, np.uint8) for i in range(3)]
    methods = {"Telea": evaluate.inpaint_telea}
    quiet = evaluate.evaluate_methods(methods, images, buckets=[1, 2])
    assert capsys.readouterr().err == ""
    shown = evaluate.evaluate_methods(methods, images, buckets=[1, 2], progress=True)
    err = capsys.readouterr().err
    assert "evaluate" in err and "6/6" in err
    assert shown.scores == quiet.scores  # the bar changes nothing else


def test_cli_evaluate_shows_reading_and_evaluating_progress(tmp_path, capsys):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), np.full((40, 40, 3), 60 * i + 30, np.uint8))
    code = cli.main(["evaluate", "--images", str(tmp_path), "--size", "32", "--buckets", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "L1 (lower is better)" in captured.out
    assert "reading photos" in captured.err and "3/3" in captured.err and "evaluate" in captured.err
    assert cli.main(["evaluate", "--images", str(tmp_path), "--size", "32", "--buckets", "1",
                     "--no-progress"]) == 0
    assert "reading photos" not in capsys.readouterr().err
