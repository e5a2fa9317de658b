"""Tests for pconv_lib.tiling: any size, exact valid pixels, skipping, seams, parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib.tiling import (
    TiledResult,
    blend_window,
    predict_multiscale,
    predict_naive_chunks,
    predict_tiled,
    predict_whole,
    tile_grid,
)

# ---------------------------------------------------------------------------- stand-in models


def fill_tile_mean(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill holes with the per-tile, per-channel mean of the valid pixels (0.5 if none).

    Its output depends on which tile it sees: the worst case for seams.
    """
    total = (image * mask).sum((2, 3), keepdim=True)
    count = mask.sum((2, 3), keepdim=True)
    mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, 0.5))
    return image * mask + (1 - mask) * mean


class CountingModel:
    """Wraps a model; records the batch sizes and tile shapes it was called with."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, image, mask):
        self.calls.append(tuple(image.shape))
        return self.fn(image, mask), mask


class SmallConvNet(torch.nn.Module):
    """Two 3x3 convolutions (receptive radius 2 px), fully convolutional."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        torch.manual_seed(0)
        pad = kernel // 2
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(4, 8, kernel, padding=pad),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 3, kernel, padding=pad),
            torch.nn.Sigmoid(),
        )

    def forward(self, image, mask):
        return self.net(torch.cat([image, mask], 1)), mask


def random_case(height, width, hole_fraction=0.3, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = (rng.random((height, width)) >= hole_fraction).astype(np.uint8)
    return image, mask


# ---------------------------------------------------------------------------- grid and window


def test_tile_grid_regular_and_flush():
    assert tile_grid(256, 256, 256, 64) == [(0, 0)]
    assert tile_grid(448, 256, 256, 64) == [(0, 0), (192, 0)]
    # not an exact grid: the last tile is flush with the border
    assert tile_grid(300, 256, 256, 64) == [(0, 0), (44, 0)]
    assert tile_grid(10, 20, (10, 8), 2) == [(0, 0), (0, 6), (0, 12)]


def test_tile_grid_errors():
    with pytest.raises(ValueError, match="smaller than the tile"):
        tile_grid(100, 300, 256, 64)
    with pytest.raises(ValueError, match="overlap"):
        tile_grid(600, 600, 256, 256)
    with pytest.raises(ValueError, match="overlap"):
        tile_grid(600, 600, 256, -1)


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 700),
    width=st.integers(1, 700),
    tile=st.integers(1, 128),
    overlap_frac=st.floats(0, 0.9),
)
def test_tile_grid_covers_every_pixel(height, width, tile, overlap_frac):
    overlap = int(overlap_frac * tile)
    height, width = max(height, tile), max(width, tile)
    cover = np.zeros((height, width), np.int32)
    for top, left in tile_grid(height, width, tile, overlap):
        assert 0 <= top <= height - tile and 0 <= left <= width - tile
        cover[top : top + tile, left : left + tile] += 1
    assert cover.min() >= 1


def test_blend_window_shape_positive_and_partition_of_unity():
    w = blend_window(64, 16)
    assert w.shape == (64, 64) and w.dtype == torch.float32
    assert float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0)
    assert torch.allclose(w, w.T) and torch.allclose(w, w.flip(0))
    row = w[32]
    # a rising ramp plus the previous tile's falling ramp sum to 1 (stride 48)
    assert torch.allclose(row[:16] + row[48:], torch.ones(16), atol=1e-6)
    assert blend_window((8, 4), 0).eq(1).all()
    assert float(blend_window(4, 100).min()) > 0  # ramp capped at half a tile


# ---------------------------------------------------------------------------- any size


@pytest.mark.parametrize(
    "height,width",
    [(1, 1), (1, 5), (7, 1), (3, 3), (31, 33), (64, 64), (65, 200), (130, 97)],
)
def test_any_size_uint8_in_uint8_out(height, width):
    image, mask = random_case(height, width, seed=height * 1000 + width)
    res = predict_tiled(fill_tile_mean, image, mask, tile_size=32, overlap=8, multiple=8)
    assert isinstance(res, TiledResult)
    assert res.image.dtype == np.uint8 and res.image.shape == image.shape
    np.testing.assert_array_equal(res.image[mask == 1], image[mask == 1])
    assert 0 <= res.tiles_run <= res.tiles_total
    assert res.tile_shape[0] % 8 == 0 and res.tile_shape[1] % 8 == 0


def test_big_image_with_cheap_model():
    height, width = 2100, 3000
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.arange(width) % 256
    image[:, :, 1] = (np.arange(height) % 256)[:, None]
    mask = np.ones((height, width), np.uint8)
    mask[1000:1060, 100:400] = 0  # one small hole
    mask[5:9, 2990:2998] = 0  # one near a corner
    model = CountingModel(fill_tile_mean)
    res = predict_tiled(model, image, mask, tile_size=256, overlap=64, batch_size=8)
    assert res.image.shape == image.shape
    np.testing.assert_array_equal(res.image[mask == 1], image[mask == 1])
    assert 0 < res.tiles_run < res.tiles_total // 10  # almost everything skipped
    assert sum(shape[0] for shape in model.calls) == res.tiles_run
    assert all(shape[2:] == (256, 256) for shape in model.calls)
    assert all(shape[0] <= 8 for shape in model.calls)


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    tile_pow=st.integers(2, 5),
    overlap_frac=st.sampled_from([0.0, 0.125, 0.25, 0.5]),
    batch_size=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_tiles_and_overlaps_keep_valid_pixels(
    height, width, tile_pow, overlap_frac, batch_size, seed
):
    tile = 2 * 2**tile_pow  # 8..64
    overlap = int(tile * overlap_frac)
    image, mask = random_case(height, width, hole_fraction=0.2, seed=seed)
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    res = predict_tiled(
        fill_tile_mean, x, mask, tile_size=tile, overlap=overlap, multiple=2,
        batch_size=batch_size,
    )
    assert res.image.shape == x.shape and res.image.dtype == torch.float32
    valid = torch.from_numpy(mask).bool()
    assert torch.equal(res.image[:, valid], x[:, valid])  # bit-exact
    assert torch.isfinite(res.image).all()
    assert float(res.image.min()) >= 0 and float(res.image.max()) <= 1


# ---------------------------------------------------------------------------- holes and skipping


@pytest.mark.parametrize("kind", ["uint8", "tensor3", "tensor4"])
def test_no_hole_is_identity_and_runs_nothing(kind):
    image, _ = random_case(150, 230)
    mask = np.ones((150, 230), np.uint8)
    model = CountingModel(fill_tile_mean)
    if kind == "uint8":
        inp = image
    else:
        inp = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        inp = inp[None] if kind == "tensor4" else inp
    res = predict_tiled(model, inp, mask, tile_size=64, overlap=16)
    assert res.tiles_run == 0 and res.tiles_skipped == res.tiles_total > 1
    assert model.calls == []
    if kind == "uint8":
        np.testing.assert_array_equal(res.image, image)
    else:
        assert res.image.shape == inp.shape and torch.equal(res.image, inp)


def test_skipping_does_not_change_hole_pixels():
    image, _ = random_case(200, 300)
    mask = np.ones((200, 300), np.uint8)
    mask[90:110, 140:170] = 0
    a = predict_tiled(fill_tile_mean, image, mask, tile_size=64, overlap=16, skip_empty=True)
    b = predict_tiled(fill_tile_mean, image, mask, tile_size=64, overlap=16, skip_empty=False)
    assert a.tiles_run < b.tiles_run == b.tiles_total
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image[mask == 0], image[mask == 0])  # holes were filled


def test_holes_filled_and_valid_kept_tensor4():
    x = torch.rand(1, 3, 90, 120)
    mask = torch.ones(1, 1, 90, 120)
    mask[..., 20:50, 30:90] = 0
    res = predict_tiled(
        SmallConvNet().eval(), x, mask, tile_size=32, overlap=8, return_prediction=True
    )
    assert res.image.shape == (1, 3, 90, 120)
    assert torch.equal(res.image * mask, x * mask)
    assert torch.allclose(res.image * (1 - mask), res.prediction * (1 - mask))
    assert res.prediction.shape == (1, 3, 90, 120)


def test_every_hole_pixel_is_predicted_by_all_covering_tiles():
    # A model returning 1 everywhere: if some covering tile were skipped or a weight missing,
    # holes next to hole-free tiles would not come out exactly 1.
    image = np.zeros((190, 250, 3), np.uint8)
    mask = np.ones((190, 250), np.uint8)
    mask[60:62, 100:200] = 0  # a thin line crossing several tiles' overlaps
    res = predict_tiled(lambda x, m: torch.ones_like(x), image, mask, tile_size=32, overlap=12)
    assert (res.image[mask == 0] == 255).all()
    assert (res.image[mask == 1] == 0).all()


# ---------------------------------------------------------------------------- seams and parity


def _max_step_in_holes(image: torch.Tensor, holes: torch.Tensor) -> float:
    steps = (image[:, :, 1:] - image[:, :, :-1]).abs().amax(0)
    both = holes[:, 1:] & holes[:, :-1]
    return float(steps[both].max())


def test_blending_hides_seams_naive_chunks_show_them():
    height, width = 192, 256
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    image = torch.stack([xx, yy, (xx + yy) / 2])
    mask = torch.ones(height, width)
    mask[40:150, :] = 0  # a wide band of holes crossing every tile column
    holes = mask == 0
    tiled = predict_tiled(fill_tile_mean, image, mask, tile_size=64, overlap=32).image
    naive = predict_naive_chunks(fill_tile_mean, image, mask, chunk=64, overlap=32).image
    # Inside one tile the filled value is constant; between tiles the fill changes by up to
    # jump = |difference of neighbouring tile means|. Naive chunking pastes it as a step
    # (at least jump / 2); the window spreads it over the overlap (slope <= jump * pi / (2 * 32)).
    jump = 64 / 256  # tiles 48 px apart on a 0..1 ramp over 256 px: means differ by ~0.19
    tiled_step = _max_step_in_holes(tiled, holes)
    naive_step = _max_step_in_holes(naive, holes)
    assert naive_step > jump / 2
    assert tiled_step < jump * np.pi / (2 * 32)
    assert tiled_step < naive_step / 10


def test_tile_dependent_offset_is_not_larger_across_borders_than_inside():
    # A model that blurs the textured input and adds its tile's mean. The whole-image output
    # shows how fast the output changes inside one tile (the offset is constant there). Blended
    # tiles may add at most the window's slope times the offset jump between neighbouring tiles
    # (small next to the texture); naive chunking adds half the jump as a step at chunk borders.
    torch.manual_seed(1)
    height, width = 128, 192
    ramp = torch.linspace(0, 1, width).expand(height, width)
    image = (0.3 * torch.rand(3, height, width) + 0.7 * ramp).clamp(0, 1)
    mask = torch.ones(height, width)  # no hole: run every tile and compare raw predictions

    def blur_plus_tile_mean(x, m):
        blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
        return blurred + x.mean((1, 2, 3), keepdim=True)

    def max_step(pred):  # largest horizontal change between neighbours, away from the border
        return float((pred[0, :, 2:-2, 3:-2] - pred[0, :, 2:-2, 2:-3]).abs().max())

    def run(fn, **kwargs):
        return fn(blur_plus_tile_mean, image, mask, return_prediction=True, **kwargs).prediction

    inside = max_step(run(predict_whole, multiple=1))
    tiled = max_step(run(predict_tiled, tile_size=64, overlap=32, skip_empty=False))
    naive = max_step(run(predict_naive_chunks, chunk=64, overlap=32))
    jump = 0.7 * 48 / 192  # tile means 48 px apart on a 0.7 ramp over 192 px
    assert tiled <= inside + jump * np.pi / (2 * 32)
    assert tiled < inside * 1.1
    assert naive > inside + jump / 4


def test_matches_whole_image_prediction_for_small_receptive_field():
    torch.manual_seed(0)
    x = torch.rand(3, 150, 211)
    mask = (torch.rand(150, 211) > 0.4).float()
    net = SmallConvNet().eval()
    tiled = predict_tiled(net, x, mask, tile_size=64, overlap=32, return_prediction=True)
    whole = predict_whole(net, x, mask, 1, return_prediction=True)
    diff = (tiled.prediction - whole.prediction).abs()[..., 2:-2, 2:-2]
    # Away from the image border (where whole-image zero padding and tiled reflect padding
    # legitimately differ) the only difference comes from tile-edge pixels (2 px, affected by
    # the convolutions' zero padding), which get blend weight <= sin^2(pi * 2.5 / 64) ~ 0.015
    # next to a weight-1 neighbour: tolerance 2e-3 on a [0, 1] sigmoid output.
    assert float(diff.max()) < 2e-3
    assert float(diff.mean()) < 1e-4
    # A pointwise model (1x1 convolutions) gives the same result everywhere, to float precision.
    point = SmallConvNet(kernel=1).eval()
    a = predict_tiled(point, x, mask, tile_size=64, overlap=16).image
    b = predict_whole(point, x, mask, 1).image
    assert torch.allclose(a, b, atol=1e-6)


def test_single_tile_equals_whole_prediction_exactly():
    x = torch.rand(3, 40, 50)
    mask = (torch.rand(40, 50) > 0.5).float()
    net = SmallConvNet().eval()
    a = predict_tiled(net, x, mask, tile_size=64, overlap=16, multiple=8)
    b = predict_whole(net, x, mask, 8)
    assert a.tiles_total == 1 and a.tile_shape == (40, 56)
    assert torch.allclose(a.image, b.image, atol=1e-6)


def test_naive_chunks_runs_every_chunk_one_at_a_time():
    image, mask = random_case(100, 150)
    mask[:] = 1
    model = CountingModel(fill_tile_mean)
    res = predict_naive_chunks(model, image, mask, chunk=64, overlap=30)
    assert res.tiles_run == res.tiles_total == len(model.calls) == 2 * 3
    assert all(shape == (1, 3, 64, 64) for shape in model.calls)
    np.testing.assert_array_equal(res.image, image)
    small, small_mask = random_case(20, 30)
    out = predict_naive_chunks(model, small, small_mask, chunk=64).image  # padded with ones
    np.testing.assert_array_equal(out[small_mask == 1], small[small_mask == 1])


def test_with_pconv_unet():
    from pconv_lib.model import PConvUNet

    model = PConvUNet(depth=3, width=1 / 32).eval()
    image, mask = random_case(70, 90)
    res = predict_tiled(model, image, mask, tile_size=32, overlap=8)  # multiple = 2**3 inferred
    assert res.tile_shape == (32, 32)
    np.testing.assert_array_equal(res.image[mask == 1], image[mask == 1])
    assert model.training is False
    with pytest.raises(ValueError, match="multiple of 8"):
        predict_tiled(model, image, mask, tile_size=36, overlap=8)


# ---------------------------------------------------------------------------- modes and errors


@pytest.mark.parametrize("predict", ["tiled", "whole", "naive", "multiscale"])
def test_prediction_runs_in_eval_mode_and_restores_the_mode(predict):
    """One rule (predict.eval_mode): batch norm uses running statistics, so a training-mode model
    gives the same result as an eval-mode one, and comes back in training mode."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    model_module = _ModelModule(net)
    image, mask = random_case(40, 40)
    run = {
        "tiled": lambda m: predict_tiled(m, image, mask, tile_size=32, overlap=8, multiple=1),
        "whole": lambda m: predict_whole(m, image, mask, multiple=1),
        "naive": lambda m: predict_naive_chunks(m, image, mask, chunk=32, overlap=8),
        "multiscale": lambda m: predict_multiscale(m, image, mask, tile_size=32, overlap=8, multiple=1),
    }[predict]
    expected = run(model_module.eval()).image
    model_module.train()
    got = run(model_module).image
    assert model_module.training is True and net.training is True
    np.testing.assert_array_equal(got, expected)


class _ModelModule(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image, mask):
        return self.net(image)


def test_bad_masks_and_images_raise_clear_errors():
    image, mask = random_case(20, 30)
    with pytest.raises(ValueError, match="binary"):
        predict_tiled(fill_tile_mean, image, mask * 255)
    with pytest.raises(ValueError, match=r"shape \(20, 30\)"):
        predict_tiled(fill_tile_mean, image, mask[:10])
    with pytest.raises(ValueError, match=r"shape \(20, 30\)"):
        predict_tiled(fill_tile_mean, image, np.ones((20, 30, 3)))
    with pytest.raises(TypeError, match="mask"):
        predict_tiled(fill_tile_mean, image, mask.tolist())
    with pytest.raises(TypeError, match="uint8"):
        predict_tiled(fill_tile_mean, image.astype(np.float32), mask)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        predict_tiled(fill_tile_mean, torch.full((3, 20, 30), 2.0), mask)
    with pytest.raises(ValueError, match="one image at a time"):
        predict_tiled(fill_tile_mean, torch.rand(2, 3, 20, 30), mask)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(fill_tile_mean, image, mask, tile_size=32, overlap=32)
    with pytest.raises(ValueError, match="input's shape"):
        predict_tiled(lambda x, m: x[:, :1], image, mask)
    assert predict_tiled(fill_tile_mean, image, mask.astype(bool)).image.shape == image.shape


def test_sizes_out_of_range_are_refused_before_allocation():
    from pconv_lib import predict, tiling

    with pytest.raises(ValueError, match="tile_size must be at most 8192"):
        tiling.blend_window(100_000, 16)
    with pytest.raises(ValueError, match="tile_size must be at most 8192"):
        tiling.tile_grid(200_000, 200_000, (64, 100_000), 16)
    image, mask = torch.rand(1, 3, 10, 10), torch.ones(1, 1, 10, 10)
    for multiple in (0, -8, 2.5, 2**20):
        with pytest.raises(ValueError, match="multiple must be an int in 1..65536"):
            predict.pad_to_multiple(image, mask, multiple)
