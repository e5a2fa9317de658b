"""Mask kinds (issue 24): object-removal masks, per-kind evaluation columns, the blotch check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib import evaluate, masks, photos
from pconv_lib.app import cli
from pconv_lib.tiling import RADIUS_FRACTION, hole_radius
from pconv_lib.util.errors import BadValue


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(32, 300),
    width=st.integers(32, 300),
    seed=st.integers(0, 2**32 - 1),
    max_objects=st.integers(1, 4),
)
def test_object_masks_are_binary_seeded_and_cover_ten_to_forty_percent(height, width, seed, max_objects):
    mask = masks.random_object_mask(height, width, seed, max_objects=max_objects)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}
    low, high = masks.OBJECT_HOLE_RANGE
    assert low < masks.hole_ratio(mask) <= high
    assert np.array_equal(mask, masks.random_object_mask(height, width, seed, max_objects=max_objects))


def test_object_holes_are_far_wider_than_the_papers_strokes():
    """The point of the kind: at 256 px the deepest hole pixels are far from any valid pixel."""
    objects = [hole_radius(masks.random_object_mask(256, 256, seed)) for seed in range(20)]
    strokes = [hole_radius(masks.random_mask_in_bucket(256, 256, 2, seed)) for seed in range(20)]
    assert np.median(objects) > 3 * np.median(strokes)
    assert np.median(objects) > 2 * RADIUS_FRACTION * 256  # wider than a 256-px model has seen


def test_object_masks_refuse_a_size_they_cannot_draw():
    with pytest.raises(BadValue, match="at least 32x32"):
        masks.random_object_mask(3, 3, 0)
    with pytest.raises(BadValue):
        masks.random_object_mask(64, 64, 0, max_objects=0)


def test_training_mix_draws_both_kinds():
    rng = np.random.default_rng(0)
    ratios = [masks.hole_ratio(masks.random_training_mask(rng, 128, 128)) for _ in range(40)]
    radii = [hole_radius(masks.random_training_mask(np.random.default_rng(s), 128, 128)) for s in range(40)]
    assert min(ratios) > 0 and max(radii) > 3 * min(radii)
    # object_share decides the kind: 0 = strokes only (the dataset's default generator)
    a = masks.random_training_mask(np.random.default_rng(5), 64, 64, object_share=0.0)
    rng = np.random.default_rng(5)
    rng.random()
    assert np.array_equal(a, masks.random_irregular_mask(64, 64, rng))


def test_columns_keep_the_bucket_masks_and_add_objects():
    rng_a, rng_b = np.random.default_rng([0, 2, 1]), np.random.default_rng([0, 2, 1])
    assert np.array_equal(masks.column_mask(2, 64, 64, rng_a), masks.random_mask_in_bucket(64, 64, 2, rng_b))
    assert masks.column_label(2) == masks.bucket_label(2) and masks.column_label("objects") == "objects"
    kinds = masks.MASK_KIND_COLUMNS
    assert kinds["strokes"] == (1, 2) and kinds["scribbles"] == (3, 4, 5) and kinds["objects"] == ("objects",)


# --------------------------------------------------------------------------------------------
# The blotch check
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo():
    return photos.sample_photo("coffee", (128, 128))


@pytest.fixture(scope="module")
def object_mask():
    return masks.random_object_mask(128, 128, 3, max_objects=1)


def test_classical_fills_have_no_blotches(photo, object_mask):
    holed = masks.apply_mask(photo, object_mask, fill=0)
    for name in ("OpenCV Telea", "OpenCV Navier-Stokes"):
        filled = evaluate.BASELINES[name](holed, object_mask)
        assert evaluate.blotch_share(filled, object_mask) <= evaluate.BLOTCH_LIMIT, name


@pytest.mark.parametrize("colour", [(0, 0, 0), (90, 0, 110), (255, 255, 255)])
def test_a_fill_in_a_colour_from_nowhere_is_a_blotch(colour):
    image = np.zeros((96, 96, 3), np.uint8)
    image[:] = (120, 160, 90)  # a green field with some texture
    image += np.random.default_rng(0).integers(0, 20, image.shape, dtype=np.uint8)
    mask = np.ones((96, 96), np.uint8)
    mask[30:70, 25:75] = 0
    filled = image.copy()
    filled[40:60, 40:60] = colour  # a blotch in the middle of the hole: 400 of 2000 hole pixels
    assert evaluate.blotch_share(filled, mask) == pytest.approx(400 / 2000)
    assert evaluate.blotch_share(image, mask) == 0.0
    assert evaluate.blotch_share(image, np.ones((96, 96), np.uint8)) == 0.0  # no hole


def test_evaluation_reports_the_objects_column_and_its_blotches(photo):
    def black(image, mask):
        return masks.apply_mask(image, mask, fill=0)

    methods = {"black": black, "OpenCV Telea": evaluate.inpaint_telea}
    table = evaluate.evaluate_methods(methods, [photo, photo[::-1].copy()], [1, "objects"])
    text = table.to_text()
    assert "objects" in text and "Blotches on objects" in text
    assert table.scores["black"]["objects"][evaluate.BLOTCHES] > 0.5
    assert table.scores["OpenCV Telea"]["objects"][evaluate.BLOTCHES] <= evaluate.BLOTCH_LIMIT
    # bucket columns draw the masks they always drew: the objects column changes nothing there
    alone = evaluate.evaluate_methods(methods, [photo, photo[::-1].copy()], [1])
    assert alone.scores["black"][1] == {k: v for k, v in table.scores["black"][1].items()}
    assert "Blotches" not in alone.to_text()


def test_the_default_path_differs_from_raw_only_for_wide_holes():
    from pconv_lib.pretrained import demo_model

    model = demo_model()
    image = photos.sample_photo("astronaut", (256, 256))
    raw = evaluate.model_inpainter(model, 128)
    default = evaluate.model_inpainter(model, 128, train_size=256)
    thin = masks.random_mask_in_bucket(256, 256, 1, 0)
    wide = masks.random_object_mask(256, 256, 0, max_objects=1)

    def hole_difference(mask):  # mean |raw - default| over the hole pixels, in 0-255 levels
        raw_fill = evaluate.composite_images(image, raw(image, mask), mask)  # raw: the model's every pixel
        return np.abs(raw_fill.astype(int) - default(image, mask))[mask == 0].mean()

    # thin strokes: one scale, only the tile borders differ; object holes: a coarse pass first
    assert hole_difference(thin) < 3 < 10 < hole_difference(wide)


def test_cli_evaluate_takes_mask_kinds_and_refuses_unknown_ones(capsys):
    assert cli.main(["evaluate", "--masks", "strokes,blobs", "--limit", "1", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert "--masks" in err and "strokes, scribbles, objects" in err and "Traceback" not in err
    assert cli.main(["evaluate", "--masks", "objects", "--limit", "1", "--size", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "objects" in out and "Blotches on objects" in out and "(0.1, 0.2]" not in out


# --------------------------------------------------------------------------------------------
# Saying when a hole is wider than the model knows
# --------------------------------------------------------------------------------------------


def _copy_model(image, mask):  # a stand-in model: returns its input, all valid
    return image, torch.ones_like(mask)


def test_predict_tiled_says_in_one_line_when_holes_are_wider_than_the_training_holes():
    from pconv_lib.tiling import predict_tiled, wide_hole_notice

    photo = photos.sample_photo("coffee", (256, 256))
    wide = masks.random_object_mask(256, 256, 0, max_objects=1)
    thin = masks.random_mask_in_bucket(256, 256, 1, 0)
    assert wide_hole_notice(thin, 256) is None
    notice = wide_hole_notice(wide, 256)
    assert notice is not None and "\n" not in notice and "256-px crops" in notice
    with pytest.warns(UserWarning, match="predict_multiscale"):
        predict_tiled(_copy_model, photo, wide, tile_size=256, overlap=64, multiple=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_tiled(_copy_model, photo, thin, tile_size=256, overlap=64, multiple=1)


def test_predict_with_scale_single_warns_about_wide_holes(tmp_path, photo, capsys):
    import cv2

    image_path, mask_path = tmp_path / "photo.png", tmp_path / "mask.png"
    big = photos.sample_photo("coffee", (256, 256))
    cv2.imwrite(str(image_path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    masks.save_mask_png(masks.random_object_mask(256, 256, 1, max_objects=1), mask_path)
    args = ["predict", "--checkpoint", "demo", "--image", str(image_path), "--mask", str(mask_path)]
    assert cli.main([*args, "--output", str(tmp_path / "single.png"), "--scale", "single"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "blotch" in line] == [
        line for line in err.splitlines() if "--scale single may paint blotches" in line
    ] != []
    assert cli.main([*args, "--output", str(tmp_path / "auto.png")]) == 0
    assert "blotches" not in capsys.readouterr().err


def test_the_demo_model_through_the_predict_path_leaves_no_blotches_in_object_holes():
    """Issue 24's measurable check on the path every entry point takes (predict, widget, web app):
    on object-removal holes the fill has the surroundings' colours (one pass would not: the notice
    says so for every such mask)."""
    from pconv_lib.pretrained import demo_model
    from pconv_lib.tiling import wide_hole_notice

    model = demo_model()
    default = evaluate.model_inpainter(model, 128, train_size=256)
    shares = []
    for index, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        image = photos.sample_photo(name, (256, 256))
        mask = masks.random_object_mask(256, 256, np.random.default_rng([0, 100, index]))
        assert wide_hole_notice(mask, 256) is not None
        shares.append(evaluate.blotch_share(default(masks.apply_mask(image, mask, fill=0), mask), mask))
    assert np.mean(shares) <= evaluate.BLOTCH_LIMIT, shares
