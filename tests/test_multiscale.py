"""Multi-scale prediction (pconv_lib.tiling.predict_multiscale) and its automatic selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pconv_lib import masks as mask_lib
from pconv_lib import tiling
from pconv_lib.model import PConvUNet


def _stroke_mask(height, width, thickness, seed=0):
    """Horizontal bars of the given thickness (1 = valid, 0 = hole)."""
    mask = np.ones((height, width), np.uint8)
    rng = np.random.default_rng(seed)
    for top in range(thickness, height - 2 * thickness, 3 * thickness):
        left = int(rng.integers(0, width // 4))
        mask[top : top + thickness, left : left + width // 2] = 0
    return mask


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PConvUNet(depth=3, width=0.125).eval()


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:120, 0:200]
    base = np.stack([x * 1.2, y * 2.0, (x + y) * 0.7], -1) % 256
    return (base + rng.integers(0, 20, base.shape)).clip(0, 255).astype(np.uint8)


def test_hole_radius_measures_half_the_stroke_width():
    assert tiling.hole_radius(np.ones((50, 60), np.uint8)) == 0.0
    thin, thick = _stroke_mask(200, 300, 4), _stroke_mask(200, 300, 40)
    assert 1 <= tiling.hole_radius(thin) <= 3
    assert 15 <= tiling.hole_radius(thick) <= 21
    assert tiling.hole_radius(torch.from_numpy(thick)[None, None]) == tiling.hole_radius(thick)


def test_choose_scale_follows_hole_width_and_training_size():
    thin, thick = _stroke_mask(512, 768, 6), _stroke_mask(512, 768, 80)
    assert tiling.choose_scale(thin, 256) == 1  # like the training holes: single-scale
    f = tiling.choose_scale(thick, 256)  # radius ~40 px, limit ~10 px -> 4
    assert f == 4
    assert tiling.choose_scale(thick, 512) == 2  # a model trained on larger crops sees further
    assert tiling.choose_scale(thick, 256, max_factor=2) == 2
    assert tiling.choose_scale(thick[:130, :130], 256) == 1  # too small to shrink (min side 64)
    with pytest.raises(ValueError, match="train_size"):
        tiling.choose_scale(thick, 0)


@pytest.mark.parametrize("factor", [2, 3])
def test_multiscale_shape_valid_pixels_and_determinism(model, photo, factor):
    mask = _stroke_mask(120, 200, 14)
    a = tiling.predict_multiscale(model, photo, mask, tile_size=64, overlap=16, factor=factor)
    b = tiling.predict_multiscale(model, photo, mask, tile_size=64, overlap=16, factor=factor)
    assert a.image.shape == photo.shape and a.image.dtype == np.uint8
    assert np.array_equal(a.image[mask == 1], photo[mask == 1])  # valid pixels exactly kept
    assert np.array_equal(a.image, b.image)  # deterministic
    assert a.scale_factor == factor and "multi-scale" in a.summary()
    assert a.tiles_run > 0


def test_multiscale_on_tensors_keeps_layout_and_valid_pixels(model):
    x = torch.rand(3, 70, 90)
    mask = torch.from_numpy(_stroke_mask(70, 90, 10)).float()
    res = tiling.predict_multiscale(model, x, mask, tile_size=32, overlap=8, factor=2, return_prediction=True)
    assert res.image.shape == x.shape and res.image.dtype == x.dtype
    assert torch.equal(res.image * mask, x * mask)
    assert res.prediction is not None and res.prediction.shape == (1, 3, 70, 90)
    assert bool(torch.isfinite(res.image).all())


def test_factor_one_is_plain_tiling(model, photo):
    mask = _stroke_mask(120, 200, 6)
    single = tiling.predict_tiled(model, photo, mask, tile_size=64, overlap=16).image
    forced = tiling.predict_multiscale(model, photo, mask, tile_size=64, overlap=16, factor=1)
    auto = tiling.predict_multiscale(model, photo, mask, tile_size=64, overlap=16)  # thin: auto -> 1
    assert forced.scale_factor == auto.scale_factor == 1
    assert np.array_equal(forced.image, single) and np.array_equal(auto.image, single)


def test_deep_hole_pixels_keep_the_coarse_fill_and_the_band_is_refined(photo):
    """Deep pixels come from the upsampled coarse pass; the band from the full-resolution pass."""
    calls = []

    def constant(x, m):  # fills holes with a value that depends on the pass's resolution
        calls.append(tuple(x.shape[-2:]))
        return torch.full_like(x, 0.25 if x.shape[-1] < 64 else 0.75)

    mask = np.ones((120, 200), np.uint8)
    mask[30:90, 40:160] = 0  # a 60 px thick block: radius ~30
    res = tiling.predict_multiscale(
        constant, photo, mask, tile_size=64, overlap=16, factor=4, band=5, multiple=1
    )
    inner, edge = res.image[60, 100], res.image[31, 100]
    assert np.all(np.abs(inner.astype(int) - 64) <= 1)  # 0.25 * 255, the coarse pass
    assert np.all(np.abs(edge.astype(int) - 191) <= 1)  # 0.75 * 255, the refined band
    assert {c for c in calls if c[-1] < 64} and {c for c in calls if c[-1] == 64}


def test_multiscale_rejects_bad_arguments(model, photo):
    mask = _stroke_mask(120, 200, 14)
    with pytest.raises(ValueError, match="factor"):
        tiling.predict_multiscale(model, photo, mask, tile_size=64, factor=0)
    with pytest.raises(ValueError, match="band"):
        tiling.predict_multiscale(model, photo, mask, tile_size=64, factor=2, band=0)
    with pytest.raises(ValueError, match="binary"):
        tiling.predict_multiscale(model, photo, mask * 3, tile_size=64)


def test_progress_bar_counts_tiles(model, photo, capsys, monkeypatch):
    monkeypatch.setattr(tiling, "PROGRESS_DELAY", 0.0)
    mask = mask_lib.random_irregular_mask(120, 200, 0)
    res = tiling.predict_tiled(model, photo, mask, tile_size=64, overlap=16, progress=True)
    err = capsys.readouterr().err
    assert f"{res.tiles_run}/{res.tiles_run}" in err and "tile" in err
    tiling.predict_tiled(model, photo, mask, tile_size=64, overlap=16)
    assert capsys.readouterr().err == ""


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_predict_cli_scale_option(tmp_path, capsys):
    import cv2

    from pconv_lib.app import cli

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    mask = np.full((200, 300), 255, np.uint8)
    mask[60:140, 20:280] = 0  # one 80 px thick bar: radius ~40 px, much wider than training holes
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    base = ["predict", "--checkpoint", "demo", "--image", str(tmp_path / "in.png"),
            "--mask", str(tmp_path / "mask.png"), "--device", "cpu"]
    assert cli.main([*base, "--scale", "auto", "-o", str(tmp_path / "auto.png")]) == 0
    assert "multi-scale: coarse pass at 1/" in capsys.readouterr().out
    assert cli.main([*base, "--scale", "single", "-o", str(tmp_path / "single.png")]) == 0
    assert "multi-scale" not in capsys.readouterr().out
    out = cv2.imread(str(tmp_path / "auto.png"))
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 255], cv2.imread(str(tmp_path / "in.png"))[mask == 255])
    with pytest.raises(SystemExit):
        cli.main([*base, "--scale", "huge", "-o", str(tmp_path / "x.png")])
