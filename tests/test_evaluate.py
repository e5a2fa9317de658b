"""pconv_lib.evaluate: baselines, metrics and the per-bucket table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pconv_lib import evaluate, masks, photos


@pytest.fixture(scope="module")
def photo():
    return photos.sample_photo("coffee", (64, 96))


@pytest.mark.parametrize("name", list(evaluate.BASELINES))
def test_baselines_fill_holes_and_keep_valid_pixels(photo, name):
    mask = masks.random_mask_in_bucket(64, 96, 2, rng=1)
    holed = masks.apply_mask(photo, mask, fill=0)
    filled = evaluate.BASELINES[name](holed, mask)
    assert filled.shape == photo.shape and filled.dtype == np.uint8
    valid = mask == 1
    assert np.abs(filled[valid].astype(int) - photo[valid].astype(int)).max() <= 1
    # the holes are filled with something closer to the truth than black
    holes = mask == 0
    assert (
        np.abs(filled[holes].astype(int) - photo[holes]).mean()
        < np.abs(holed[holes].astype(int) - photo[holes]).mean()
    )


def test_baselines_use_the_valid_is_one_convention():
    image = np.full((32, 32, 3), 200, np.uint8)
    mask = np.ones((32, 32), np.uint8)
    mask[12:20, 12:20] = 0
    holed = masks.apply_mask(image, mask, fill=0)
    for inpaint in evaluate.BASELINES.values():
        filled = inpaint(holed, mask)
        assert np.abs(filled.astype(int) - 200).max() <= 3


def test_bad_inputs_are_explained(photo):
    with pytest.raises(ValueError, match="uint8 RGB"):
        evaluate.inpaint_telea(photo.astype(np.float32), np.ones((64, 96), np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        evaluate.inpaint_telea(photo, np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError, match="binary"):
        evaluate.inpaint_telea(photo, np.full((64, 96), 255, np.uint8))


def test_metrics_identity_and_order(photo):
    same = evaluate.image_metrics(photo, photo)
    assert same["L1"] == 0 and same["SSIM"] == pytest.approx(1.0)
    # identical images: PSNR capped at the value of a one-level difference in one value (finite means)
    assert same["PSNR"] == pytest.approx(10 * np.log10(255**2 * photo.size))
    noisy = np.clip(photo.astype(int) + np.random.default_rng(0).integers(-20, 21, photo.shape), 0, 255)
    worse = np.clip(photo.astype(int) + np.random.default_rng(0).integers(-60, 61, photo.shape), 0, 255)
    a = evaluate.image_metrics(photo, noisy.astype(np.uint8))
    b = evaluate.image_metrics(photo, worse.astype(np.uint8))
    assert a["L1"] < b["L1"] and a["PSNR"] > b["PSNR"] and a["SSIM"] > b["SSIM"]


def test_composite_keeps_valid_pixels(photo):
    mask = masks.random_irregular_mask(64, 96, 0)
    out = evaluate.composite_images(photo, np.zeros_like(photo), mask)
    assert (out[mask == 1] == photo[mask == 1]).all() and (out[mask == 0] == 0).all()


def test_table_has_every_method_and_bucket(photo):
    def mean_fill(image, mask):
        out = image.copy()
        out[mask == 0] = image[mask == 1].mean(axis=0).astype(np.uint8)
        return out

    table = evaluate.evaluate_methods(
        {"mean colour": mean_fill, "OpenCV Telea": evaluate.inpaint_telea},
        [photo, photo[::-1].copy()],
        buckets=[0, 5],
    )
    assert table.counts == {0: 2, 5: 2}
    for method in ("mean colour", "OpenCV Telea"):
        # bigger holes, bigger error
        assert table.scores[method][5]["L1"] > table.scores[method][0]["L1"]
    text = table.to_text()
    for needle in ("L1 (lower is better)", "PSNR", "SSIM", "(0.01, 0.1]", "(0.5, 0.6]", "mean colour"):
        assert needle in text
    again = evaluate.evaluate_methods({"mean colour": mean_fill}, [photo, photo[::-1].copy()], [0, 5])
    assert again.scores["mean colour"] == table.scores["mean colour"]  # same masks every run


def test_model_inpainter_pads_crops_and_restores_mode(photo):
    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.seen = None

        def forward(self, x, m):
            self.seen = tuple(x.shape)
            return x * self.scale + (1 - m) * 0.5, m

    model = Echo().train()
    inpaint = evaluate.model_inpainter(model, multiple=32)
    mask = masks.random_irregular_mask(64, 96, 3)
    out = inpaint(photo, mask)
    assert model.seen == (1, 3, 64, 96) and model.training
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert (out[mask == 0] == 128).all()
    inpaint(photo[:50, :70].copy(), mask[:50, :70].copy())
    assert model.seen == (1, 3, 64, 96)


def test_prediction_runs_in_eval_mode_and_restores_the_callers_mode():
    """One rule for train/eval mode during prediction (issue 16): eval inside, caller's mode after."""
    import torch

    from pconv_lib.predict import eval_mode

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, mask):
            seen.append(self.training)
            return x

    model = Probe().train()
    inpaint = evaluate.model_inpainter(model, multiple=8)
    image = np.zeros((16, 16, 3), np.uint8)
    inpaint(image, np.ones((16, 16), np.uint8))
    assert seen == [False] and model.training
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training
        raise RuntimeError("boom")
    assert model.training
