"""python -m pconv_lib lr-find and train --pixel-losses, end to end on the sample photos."""

from __future__ import annotations

import pytest
import torch

from pconv_lib import losses
from pconv_lib.app import cli
from pconv_lib.runs.checkpoints import load_checkpoint

TINY = ["--image-size", "32", "--depth", "3", "--width", "0.125", "--batch-size", "2"]


@pytest.fixture
def no_vgg(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("--pixel-losses must not build VGG16")

    monkeypatch.setattr(losses, "vgg16_feature_extractor", refuse)


def test_lr_find_prints_a_suggestion_and_saves_the_plot(tmp_path, capsys, no_vgg):
    plot = tmp_path / "plots" / "lr.png"
    code = cli.main(["lr-find", "--pixel-losses", *TINY, "--steps", "8", "--start-lr", "1e-5",
                     "--end-lr", "1e-1", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "swept lr 1.0e-05 .. 1.0e-01 over 8 steps, the loss ran to the end" in out  # seeded
    assert "suggested lr" in out and "no suggestion" not in out
    assert plot.is_file() and plot.stat().st_size > 1000
    assert f"plot saved to {plot}" in out


def test_lr_find_bad_sweep_is_one_clear_line(capsys, no_vgg):
    code = cli.main(["lr-find", "--pixel-losses", *TINY, "--start-lr", "1", "--end-lr", "0.1"])
    assert code == 2
    assert "0 < start_lr < end_lr" in capsys.readouterr().err


def test_lr_find_checks_the_size_before_any_work(capsys):
    code = cli.main(["lr-find", "--pixel-losses", "--image-size", "100", "--depth", "3"])
    assert code == 2
    assert "multiple of 2**depth = 8" in capsys.readouterr().err


def test_train_with_pixel_losses_needs_no_vgg_and_stores_the_weights(tmp_path, no_vgg):
    code = cli.main(["train", "--name", "offline", "--pixel-losses", *TINY, "--steps", "1",
                     "--steps-per-epoch", "1", "--val-steps", "1", "--log-every", "1",
                     "--sample-every", "1", "--checkpoint-every", "1", "--log-path", str(tmp_path),
                     "--num-workers", "0", "--no-progress"])
    assert code == 0
    state = load_checkpoint(tmp_path / "offline" / "last.pt")
    assert state["config"]["loss_weights"] == losses.LossWeights.pixel_only().as_dict()
    assert torch.is_tensor(next(iter(state["model"].values())))


def test_pixel_losses_and_random_vgg_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--name", "x", "--pixel-losses", "--random-vgg"])
    assert "not allowed with argument" in capsys.readouterr().err
