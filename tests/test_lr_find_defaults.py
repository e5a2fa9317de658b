"""lr-find's sizes on the command line: paper size on a GPU, a one-minute network on a CPU (issue 17.4),
and a progress bar with the time left."""

from __future__ import annotations

import argparse

import pytest
import torch

from pconv_lib.app import cli

FLAGS = dict(image_size=None, depth=None, width=None, steps=None, checkpoint=None)


def _args(**given):
    return argparse.Namespace(**{**FLAGS, **given})


def test_cpu_without_size_flags_sweeps_the_one_minute_network_and_says_so(capsys):
    args = _args()
    cli._lr_find_sizes(args, torch.device("cpu"))
    assert (args.image_size, args.depth, args.width, args.steps) == (256, 7, 0.25, 100)
    out = capsys.readouterr().out
    assert "on the CPU: a small network (--image-size 256 --depth 7 --width 0.25, 100 steps" in out
    assert "about a minute" in out and "--width 1 --steps 200" in out


@pytest.mark.parametrize("given", [dict(width=1.0), dict(image_size=512), dict(steps=50),
                                   dict(checkpoint="best.pt")])
def test_any_size_flag_or_a_checkpoint_keeps_the_paper_defaults(given, capsys):
    args = _args(**given)
    cli._lr_find_sizes(args, torch.device("cpu"))
    for flag, value in cli.LR_FIND_GPU_DEFAULTS.items():
        assert getattr(args, flag) == given.get(flag, value)
    assert args.depth is None  # 7 for 256, 8 for 512, as before
    assert capsys.readouterr().out == ""


def test_gpu_defaults_are_the_paper_size(capsys):
    args = _args()
    cli._lr_find_sizes(args, torch.device("cuda"))
    assert (args.image_size, args.width, args.steps) == (256, 1.0, 200) and args.depth is None
    assert capsys.readouterr().out == ""


def test_lr_find_shows_progress_with_the_time_left(capsys):
    code = cli.main(["lr-find", "--pixel-losses", "--image-size", "32", "--depth", "3", "--width", "0.125",
                     "--batch-size", "2", "--steps", "6", "--start-lr", "1e-5", "--end-lr", "1e-2"])
    captured = capsys.readouterr()
    assert code == 0
    assert "suggested lr" in captured.out and "no suggestion" not in captured.out  # seeded: it finds one
    assert "lr-find" in captured.err and "6/6" in captured.err and "step" in captured.err
    quiet = cli.main(["lr-find", "--pixel-losses", "--image-size", "32", "--depth", "3", "--width", "0.125",
                      "--batch-size", "2", "--steps", "6", "--no-progress"])
    assert quiet == 0 and "lr-find:" not in capsys.readouterr().err
