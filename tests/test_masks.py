"""Step 1: random irregular masks (pconv_lib.masks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib import masks
from pconv_lib.masks import (
    HOLE_RATIO_BUCKETS,
    MaskFolder,
    bucket_counts,
    from_nonzero_hole,
    hole_ratio,
    hole_ratio_bucket,
    hole_stats,
    load_mask_png,
    random_irregular_mask,
    random_mask_in_bucket,
    random_mask_in_ratio,
    random_mask_transform,
    resize_mask,
    save_mask_png,
    to_nonzero_hole,
    validate_mask,
)

sizes = st.integers(min_value=1, max_value=160)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=30, deadline=None)


@FAST
@given(height=sizes, width=sizes, seed=seeds)
def test_generator_is_deterministic_binary_and_shaped(height, width, seed):
    first = random_irregular_mask(height, width, seed)
    second = random_irregular_mask(height, width, np.random.default_rng(seed))
    assert first.shape == (height, width)
    assert first.dtype == np.uint8
    assert set(np.unique(first)) <= {0, 1}
    np.testing.assert_array_equal(first, second)


def test_different_seeds_give_different_masks():
    assert not np.array_equal(random_irregular_mask(128, 128, 1), random_irregular_mask(128, 128, 2))


@pytest.mark.parametrize("dtype", [np.uint8, bool, np.float32, np.float64])
def test_output_dtypes(dtype):
    mask = random_irregular_mask(64, 80, 3, dtype=dtype)
    assert mask.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(mask.astype(np.uint8), random_irregular_mask(64, 80, 3))


def test_holes_are_zeros_and_typical_ratio():
    ratios = [hole_ratio(random_irregular_mask(256, 256, seed)) for seed in range(40)]
    assert 0.02 < float(np.median(ratios)) < 0.6
    assert all(0 < r < 1 for r in ratios)


@settings(max_examples=40, deadline=None)
@given(
    bucket=st.integers(0, len(HOLE_RATIO_BUCKETS) - 1),
    seed=seeds,
    height=st.integers(16, 256),
    width=st.integers(16, 256),
)
def test_masks_in_bucket_honour_the_bucket(bucket, seed, height, width):
    mask = random_mask_in_bucket(height, width, bucket, seed)
    low, high = HOLE_RATIO_BUCKETS[bucket]
    assert mask.shape == (height, width)
    assert low < hole_ratio(mask) <= high
    assert hole_stats(mask).bucket == bucket
    np.testing.assert_array_equal(mask, random_mask_in_bucket(height, width, bucket, seed))


@pytest.mark.parametrize("size, count", [(128, 200), (256, 40)])
def test_masks_in_bucket_spread_over_the_whole_bucket(size, count):
    # Stopping as soon as the ratio enters the bucket piles every mask up at the lower edge
    # (medians 0.104, 0.204, ...): the median must lie in the middle half of each bucket.
    for bucket, (low, high) in enumerate(HOLE_RATIO_BUCKETS):
        ratios = np.array([hole_ratio(random_mask_in_bucket(size, size, bucket, s)) for s in range(count)])
        width = high - low
        assert np.all((ratios > low) & (ratios <= high))
        assert low + width / 4 <= np.median(ratios) <= high - width / 4, (bucket, np.median(ratios))
        # Both halves of the bucket are used.
        assert ratios.min() < low + width / 4 and ratios.max() > high - width / 4, (bucket, ratios)


def test_ratio_range_over_many_seeds():
    for seed in range(100):
        ratio = hole_ratio(random_mask_in_ratio(128, 128, 0.25, 0.35, seed))
        assert 0.25 < ratio <= 0.35


def test_impossible_ratio_range_is_a_clear_error():
    with pytest.raises(ValueError, match="min_ratio < max_ratio"):
        random_mask_in_ratio(64, 64, 0.5, 0.4)
    with pytest.raises(ValueError, match="too small"):
        random_mask_in_ratio(4, 4, 0.01, 0.02, 0, max_tries=5)


@pytest.mark.parametrize(
    "ratio, bucket",
    [(0.0, None), (0.01, None), (0.0100001, 0), (0.1, 0), (0.1000001, 1), (0.2, 1),
     (0.3, 2), (0.4, 3), (0.5, 4), (0.5000001, 5), (0.6, 5), (0.6000001, None), (1.0, None)],
)
def test_bucket_edges_are_half_open(ratio, bucket):
    assert hole_ratio_bucket(ratio) == bucket


@FAST
@given(ratio=st.floats(0.0, 1.0))
def test_bucket_contains_ratio(ratio):
    index = hole_ratio_bucket(ratio)
    if index is None:
        assert ratio <= 0.01 or ratio > 0.6
    else:
        low, high = HOLE_RATIO_BUCKETS[index]
        assert low < ratio <= high


def test_bucket_rejects_out_of_range_ratio():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hole_ratio_bucket(1.5)


def test_hole_stats_and_counts():
    mask = np.ones((10, 10), np.uint8)
    mask[:3] = 0
    stats = hole_stats(mask)
    assert stats.ratio == pytest.approx(0.3) and stats.bucket == 2
    assert "30.0% holes" in str(stats) and "(0.2, 0.3]" in str(stats)
    assert bucket_counts([mask, mask, np.ones((4, 4), np.uint8)]) == [0, 0, 2, 0, 0, 0]


@FAST
@given(seed=seeds)
def test_opencv_conversion_round_trip(seed):
    mask = random_irregular_mask(48, 64, seed)
    holes = to_nonzero_hole(mask)
    assert holes.dtype == np.uint8 and set(np.unique(holes)) <= {0, 255}
    assert np.array_equal(holes > 0, mask == 0)
    np.testing.assert_array_equal(from_nonzero_hole(holes), mask)
    np.testing.assert_array_equal(from_nonzero_hole(holes.astype(bool)), mask)


def test_conversion_is_what_cv2_inpaint_expects():
    image = np.full((32, 32, 3), 100, np.uint8)
    mask = np.ones((32, 32), np.uint8)
    mask[10:20, 10:20] = 0
    image[mask == 0] = 0  # hole content is garbage
    filled = cv2.inpaint(image, to_nonzero_hole(mask), 3, cv2.INPAINT_TELEA)
    assert np.abs(filled[12:18, 12:18].astype(int) - 100).max() <= 2


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((4, 4), 255, np.uint8), "0/255"),
        (np.full((4, 4), 0.5), "binary"),
        (np.ones((2, 4, 4)), "2-D"),
    ],
)
def test_validate_mask_explains_bad_masks(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_mask(bad)


def test_validate_mask_rejects_non_arrays():
    with pytest.raises(TypeError, match="numpy array"):
        validate_mask([[0, 1]])


@FAST
@given(seed=seeds, height=st.integers(1, 80), width=st.integers(1, 80))
def test_png_round_trip_stays_binary(tmp_path_factory, seed, height, width):
    mask = random_irregular_mask(height, width, seed)
    path = save_mask_png(mask, tmp_path_factory.mktemp("m") / "mask.png")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(raw)) <= {0, 255}
    np.testing.assert_array_equal(load_mask_png(path), mask)


def test_png_holes_are_white_option(tmp_path):
    mask = random_irregular_mask(32, 32, 5)
    path = tmp_path / "white_holes.png"
    cv2.imwrite(str(path), (1 - mask) * 255)
    np.testing.assert_array_equal(load_mask_png(path, holes_are="white"), mask)


def test_save_refuses_lossy_format(tmp_path):
    with pytest.raises(ValueError, match="PNG"):
        save_mask_png(np.ones((4, 4), np.uint8), tmp_path / "mask.jpg")


def test_non_binary_file_is_rejected_with_its_name(tmp_path):
    path = tmp_path / "blurry_mask.png"
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    cv2.imwrite(str(path), grey)
    with pytest.raises(ValueError, match="blurry_mask.png.*not binary"):
        load_mask_png(path)


def test_corrupt_and_missing_files_are_rejected_with_their_name(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="corrupt.png"):
        load_mask_png(corrupt)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_mask_png(tmp_path / "missing.png")


def test_colour_mask_with_different_channels_is_rejected(tmp_path):
    path = tmp_path / "colour.png"
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :, 1] = 255
    cv2.imwrite(str(path), image)
    with pytest.raises(ValueError, match="colour.png.*grey"):
        load_mask_png(path)


@FAST
@given(seed=seeds, height=st.integers(1, 100), width=st.integers(1, 100))
def test_resize_is_nearest_and_binary(seed, height, width):
    mask = random_irregular_mask(64, 64, seed)
    resized = resize_mask(mask, (height, width))
    assert resized.shape == (height, width)
    assert set(np.unique(resized)) <= {0, 1}


def test_mask_folder_samples_binary_masks_of_any_size(tmp_path):
    for i in range(3):
        save_mask_png(random_irregular_mask(100, 120, i), tmp_path / "sub" / f"m{i}.png")
    folder = MaskFolder(tmp_path)
    assert len(folder) == 3
    a = folder.sample(7, 64, 96)
    b = folder.sample(7, 64, 96)
    assert a.shape == (64, 96) and set(np.unique(a)) <= {0, 1}
    np.testing.assert_array_equal(a, b)
    assert 0 < hole_ratio(a) < 1


def test_mask_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        MaskFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MaskFolder(tmp_path / "nowhere")


def test_mask_folder_rejects_bad_file_by_name(tmp_path):
    cv2.imwrite(str(tmp_path / "bad.png"), np.full((8, 8), 128, np.uint8))
    with pytest.raises(ValueError, match="bad.png"):
        MaskFolder(tmp_path).sample(0, 8, 8)


def test_random_transform_keeps_binary():
    mask = random_irregular_mask(80, 80, 1)
    out = random_mask_transform(mask, 3, 40, 60)
    assert out.shape == (40, 60) and set(np.unique(out)) <= {0, 1}


def test_apply_mask_fills_holes_only():
    image = np.full((8, 8, 3), 10, np.uint8)
    mask = np.ones((8, 8), np.uint8)
    mask[0, 0] = 0
    out = masks.apply_mask(image, mask)
    assert (out[0, 0] == 255).all() and (out[1:, :] == 10).all() and (image == 10).all()
