"""pconv_lib.lr_finder.lr_find (the learning-rate range test; also importable from pconv_lib.train)
and training with the pixel-only loss."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from pconv_lib import losses
from pconv_lib.data import sample_photo_dataset
from pconv_lib.losses import LossWeights, PConvLoss
from pconv_lib.lr_finder import LRFindResult, lr_find
from pconv_lib.model import PConvUNet
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig

SIZE = 32


@pytest.fixture(scope="module")
def data():
    return sample_photo_dataset(
        SIZE, names=["astronaut", "coffee", "chelsea"], repeats=2, photo_scale=0.125, seed=0
    )


@pytest.fixture(scope="module")
def criterion():
    return PConvLoss(LossWeights.pixel_only())


def _model():
    torch.manual_seed(0)
    return PConvUNet(depth=3, width=0.125)


def test_sweep_is_exponential_and_leaves_the_model_alone(data, criterion):
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, data, criterion, start_lr=1e-5, end_lr=1e-1, steps=12, batch_size=2)
    assert isinstance(result, LRFindResult)
    for key, value in model.state_dict().items():  # weights and BatchNorm statistics untouched
        assert torch.equal(value, before[key]), key
    assert not model.training
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert not result.stopped_early  # seeded: this sweep runs to the end (divergence: the test below)
    assert len(result.lrs) == 12 and result.lrs[-1] == pytest.approx(1e-1)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert all(r == pytest.approx(10 ** (4 / 11)) for r in ratios)
    assert all(math.isfinite(v) and v > 0 for v in result.losses)
    assert result.suggestion in result.lrs[1:-1]  # seeded: the loss falls somewhere inside the sweep
    assert "swept lr 1.0e-05" in result.summary()


def test_same_seed_same_curve(data, criterion):
    a = lr_find(_model(), data, criterion, start_lr=1e-4, end_lr=1e-2, steps=6, batch_size=2, seed=3)
    b = lr_find(_model(), data, criterion, start_lr=1e-4, end_lr=1e-2, steps=6, batch_size=2, seed=3)
    assert a.raw_losses == pytest.approx(b.raw_losses, rel=1e-5)


def test_divergence_stops_the_sweep_early(data, criterion):
    result = lr_find(_model(), data, criterion, start_lr=1e-2, end_lr=1e6, steps=40, batch_size=2)
    assert result.stopped_early
    assert len(result.lrs) < 40
    assert "diverged" in result.summary()


def test_suggestion_is_where_the_loss_falls_fastest():
    from pconv_lib.lr_finder import _steepest_descent

    lrs = [10.0**e for e in range(-6, 1)]  # 1e-6 .. 1
    curve = [1.0, 1.0, 0.99, 0.6, 0.3, 0.28, 5.0]  # falls fastest around 1e-3
    assert _steepest_descent(lrs, curve) == pytest.approx(1e-3)
    assert _steepest_descent(lrs[:3], curve[:3]) is None


def test_plot_marks_the_suggestion(data, criterion):
    result = lr_find(_model(), data, criterion, start_lr=1e-5, end_lr=1e-1, steps=8, batch_size=2)
    ax = result.plot()
    assert ax.get_xscale() == "log"
    assert len(ax.get_lines()) == (3 if result.suggestion is not None else 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(start_lr=1e-2, end_lr=1e-3), "0 < start_lr < end_lr"),
        (dict(start_lr=0.0), "0 < start_lr < end_lr"),
        (dict(steps=3), "steps must be >= 5"),
        (dict(batch_size=100), "fewer than one batch of 100"),
        (dict(beta=1.0), "beta must be in"),
    ],
)
def test_bad_arguments_are_clear_errors(data, criterion, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lr_find(_model(), data, criterion, **kwargs)


def test_trainer_with_pixel_only_weights_needs_no_vgg(tmp_path, data, monkeypatch):
    def no_vgg(*args, **kwargs):
        raise AssertionError("pixel_only must not build VGG16")

    monkeypatch.setattr(losses, "vgg16_feature_extractor", no_vgg)
    config = TrainConfig(
        name="pixel", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=2, steps_per_epoch=2,
        val_steps=1, log_every=1, sample_every=2, checkpoint_every=2, out_dir=str(tmp_path),
        loss_weights=LossWeights.pixel_only().as_dict(),  # vgg_weights stays "imagenet": ignored
    )
    trainer = Trainer(config, data, data, progress=False)
    history = trainer.fit()
    assert trainer.loss.vgg is None
    assert all(row["perceptual"] == 0 and row["style_out"] == 0 for row in history)
    assert all(row["hole"] > 0 for row in history)
    assert (tmp_path / "pixel" / "last.pt").is_file()
