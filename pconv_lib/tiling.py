"""Step 5: inpaint images of any size by running the model on overlapping tiles.

:func:`predict_tiled` pads the image (reflect, or replicate when too small), cuts a regular grid
of ``tile_size`` tiles with stride ``tile_size - overlap`` (:func:`tile_grid`), runs the tiles
that contain a hole in batches, blends overlapping predictions with a smooth positive window
(:func:`blend_window`), crops, and composites: ``mask * input + (1 - mask) * blended``, so valid
input pixels come back exactly. :func:`predict_multiscale` adds a coarse pass for large holes;
:func:`predict_whole` (one pass) and :func:`predict_naive_chunks` (the original course's seamy
chunking) are the baselines.

Conventions: masks ``1 = valid, 0 = hole``, (H, W), (1, H, W) or (1, 1, H, W). Images: NumPy
``uint8`` (H, W, 3) RGB or float tensor (3, H, W) / (1, 3, H, W) in [0, 1]; the result has the
input's type and layout. The model is any ``model(image, mask) -> output`` (or ``(output,
output_mask)``) on float32 (N, 3, h, w) images with holes zeroed and (N, 1, h, w) masks. It runs
in eval mode (:func:`pconv_lib.predict.eval_mode`); its own train/eval mode is restored after.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pconv_lib.images import image_to_tensor, mask_to_tensor, tensor_to_image
from pconv_lib.predict import eval_mode, model_device, pad_to, predict_padded, round_up, run_model
from pconv_lib.util import arg_checks as check
from pconv_lib.util.tensor_checks import check_picture, check_tiling_mask, check_unit_range

__all__ = [
    "TiledResult",
    "blend_window",
    "RADIUS_FRACTION",
    "choose_scale",
    "hole_radius",
    "naive_spans",
    "predict_multiscale",
    "predict_naive_chunks",
    "predict_tiled",
    "predict_whole",
    "tile_grid",
]

Model = Callable[..., object]
#: Memory :func:`predict_multiscale` (the CLI's ``predict``, the web app) needs per image pixel
#: (decoded photo, float copies, padding, blending accumulators, hole distances), used to refuse a
#: photo before decoding it. Measured: peak RSS
#: grows by about 82 bytes per pixel between 1500x1500 and 3000x3000 photos (demo model,
#: multi-scale, CPU), on top of about 200 MB for the model and one tile.
PREDICT_BYTES_PER_PIXEL = 80

MAX_TILE_SIZE = check.MAX_TILE_SIZE  # the largest tile side accepted (the CLI's too)
Size2 = int | tuple[int, int]

#: Seconds a tiled run must last before its progress bar appears (``progress=True``).
PROGRESS_DELAY = 3.0


@dataclass
class TiledResult:
    """What :func:`predict_tiled` (and the baselines) return.

    Attributes:
        image: the inpainted image, same type, dtype and layout as the input image (``uint8``
            (H, W, 3) NumPy in → ``uint8`` (H, W, 3) out; float tensor (3, H, W) or
            (1, 3, H, W) in → the same out, on the input's device). Valid input pixels are kept
            exactly.
        tiles_total: number of tiles in the grid.
        tiles_run: number of tiles the model actually ran on (``tiles_total - tiles_skipped``).
        tile_shape: (height, width) of one tile as fed to the model.
        padded_shape: (height, width) of the padded image the grid covers.
        scale_factor: :func:`predict_multiscale`'s downscaling factor for the coarse pass (1:
            single-scale, no coarse pass).
        prediction: with ``return_prediction=True``, the blended model output before compositing,
            float32 tensor (1, 3, H, W) on the CPU, in [0, 1] if the model's output is; pixels that
            no running tile covered hold the input there. ``None`` otherwise.
    """

    image: np.ndarray | torch.Tensor
    tiles_total: int
    tiles_run: int
    tile_shape: tuple[int, int] = (0, 0)
    padded_shape: tuple[int, int] = (0, 0)
    prediction: torch.Tensor | None = None
    scale_factor: int = 1

    @property
    def tiles_skipped(self) -> int:
        """Tiles copied through without running the model (they contain no hole)."""
        return self.tiles_total - self.tiles_run

    def summary(self) -> str:
        """One line, e.g. ``"12 tiles of 256x256 (ran 5, skipped 7), padded to 640x832"``."""
        th, tw = self.tile_shape
        ph, pw = self.padded_shape
        text = (
            f"{self.tiles_total} tiles of {th}x{tw} (ran {self.tiles_run}, skipped "
            f"{self.tiles_skipped}), padded to {ph}x{pw}"
        )
        if self.scale_factor > 1:
            text += f"; multi-scale: coarse pass at 1/{self.scale_factor}, then refined"
        return text


# --------------------------------------------------------------------------------------------
# Grid and window
# --------------------------------------------------------------------------------------------


def _pair(size: Size2) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride ``tile - overlap``, the last tile flush with the end."""
    if length == tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def tile_grid(height: int, width: int, tile_size: Size2, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners (top, left) of the tiles that cover a (padded) ``height``×``width`` image.

    Tiles are ``tile_size`` (an int, or (tile_height, tile_width)); consecutive tiles start
    ``tile - overlap`` pixels apart, row by row. When the size is not exactly ``tile + k * stride``
    the last row/column is moved so that it ends flush with the border (it then overlaps its
    neighbour by more than ``overlap``). :func:`predict_tiled` pads images so that the grid is
    exactly regular.

    Raises:
        ValueError: if the image is smaller than one tile, or ``overlap`` is not in
            [0, tile size).
    """
    check.check_tile_size(tile_size)
    check.check_tile_grid(height, width, _pair(tile_size), overlap)
    return _grid(height, width, _pair(tile_size), overlap)


def _grid(height: int, width: int, tile: tuple[int, int], overlap: int) -> list[tuple[int, int]]:
    th, tw = tile
    tops = _axis_starts(int(height), th, int(overlap))
    lefts = _axis_starts(int(width), tw, int(overlap))
    return [(top, left) for top in tops for left in lefts]


def _ramp(length: int, overlap: int) -> torch.Tensor:
    ramp_len = min(overlap, length // 2)
    w = torch.ones(length, dtype=torch.float64)
    if ramp_len > 0:
        i = torch.arange(ramp_len, dtype=torch.float64)
        rise = torch.sin(math.pi * (i + 0.5) / (2 * ramp_len)) ** 2  # in (0, 1), never 0
        w[:ramp_len] = rise
        w[length - ramp_len :] = torch.minimum(w[length - ramp_len :], rise.flip(0))
    return w


def blend_window(tile_size: Size2, overlap: int) -> torch.Tensor:
    """Blending weights for one tile: float32 (tile_height, tile_width), values in (0, 1].

    Separable: the outer product of two 1-D ramps that rise as ``sin²`` over the first
    ``overlap`` pixels, stay at 1 in the middle and fall symmetrically over the last ``overlap``
    pixels (ramps are capped at half the tile). Sampled at pixel centres, so every weight is
    strictly positive, and a rising ramp plus the falling ramp of the neighbouring tile sum to 1
    (``sin² + cos² = 1``) when tiles overlap by exactly ``overlap``.
    """
    check.check_tile_size(tile_size)
    check.check_overlap(overlap)
    return _window(*_pair(tile_size), int(overlap))


def _window(th: int, tw: int, overlap: int) -> torch.Tensor:
    return torch.outer(_ramp(th, overlap), _ramp(tw, overlap)).to(torch.float32)


# --------------------------------------------------------------------------------------------
# Input checking and conversion
# --------------------------------------------------------------------------------------------


@dataclass
class _Input:
    image: torch.Tensor  # float32 (1, 3, H, W), CPU, [0, 1]
    mask: torch.Tensor  # float32 (1, 1, H, W), CPU, exactly 0/1
    original: np.ndarray | torch.Tensor
    kind: str  # "numpy" | "tensor3" | "tensor4"


def _prepare(image: object, mask: object) -> _Input:
    """Check ``image`` and ``mask`` (:func:`~pconv_lib.util.tensor_checks.check_picture`,
    :func:`~pconv_lib.util.tensor_checks.check_tiling_mask`) and convert them to CPU float32 tensors."""
    check_picture(image)
    if isinstance(image, np.ndarray):
        tensor, kind = image_to_tensor(image), "numpy"
    else:
        kind = "tensor3" if image.ndim == 3 else "tensor4"
        tensor = image.detach().to("cpu", torch.float32).reshape((1,) + tuple(image.shape[-3:]))
        check_unit_range(tensor)
    height, width = tensor.shape[-2:]
    check_tiling_mask(mask, height, width)
    if isinstance(mask, np.ndarray):
        m = mask_to_tensor(mask.reshape(height, width))
    else:
        m = mask.detach().to("cpu", torch.float32).reshape(1, 1, height, width)
    return _Input(tensor, m, image, kind)


def _finish(
    inp: _Input, blended: torch.Tensor, covered: torch.Tensor | None = None
) -> np.ndarray | torch.Tensor:
    """Composite ``blended`` (1, 3, H, W) float32 with the input; return it in the input's form."""
    valid = inp.mask.bool()
    if covered is not None:
        valid = valid | ~covered
    if inp.kind == "numpy":
        pred = tensor_to_image(blended)
        keep = valid[0, 0].numpy()[:, :, None]
        return np.where(keep, inp.original, pred)
    original = inp.original
    out = torch.where(
        valid.to(original.device).reshape((1, 1) + tuple(original.shape[-2:])),
        original if original.ndim == 4 else original[None],
        blended.to(original.device, original.dtype),
    )
    return out[0] if inp.kind == "tensor3" else out


# --------------------------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------------------------


def _infer_multiple(model: Model, multiple: int | None) -> int:
    if multiple is None:
        multiple = getattr(model, "size_multiple", None)
        if multiple is None and isinstance(getattr(model, "depth", None), int):
            multiple = 2 ** model.depth
        multiple = 1 if multiple is None else multiple
    check.check_positive_int("multiple", multiple, " (e.g. 2**depth)")
    return int(multiple)


def _plan_axis(length: int, tile_size: int, overlap: int, multiple: int) -> tuple[int, int, int]:
    """(tile, padded length, pad before) for one axis."""
    tile = min(tile_size, round_up(length, multiple))
    if length <= tile:
        padded = tile
    else:
        stride = tile - overlap
        needed = length + 2 * (overlap // 2)  # reflected context around the image border
        padded = tile + math.ceil((needed - tile) / stride) * stride
    return tile, padded, (padded - length) // 2


def _pad_both(inp: _Input, padded_shape, pad_top: int, pad_left: int):
    return pad_to(inp.image, inp.mask, padded_shape, pad_top, pad_left)


# --------------------------------------------------------------------------------------------
# Public predictors
# --------------------------------------------------------------------------------------------


def predict_tiled(
    model: Model,
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    *,
    tile_size: int = 256,
    overlap: int = 64,
    batch_size: int = 4,
    multiple: int | None = None,
    device: str | torch.device | None = None,
    skip_empty: bool = True,
    return_prediction: bool = False,
    progress: bool = False,
    progress_label: str = "tiles",
) -> TiledResult:
    """Inpaint an image of any size (1×1 to many megapixels) tile by tile, without seams.

    Args:
        model: callable ``model(image, mask) -> output`` or ``-> (output, output_mask)``;
            image float32 (N, 3, h, w) in [0, 1] with holes zeroed, mask float32 (N, 1, h, w),
            1 = valid, 0 = hole. It runs in eval mode; its train/eval mode is restored after.
        image: NumPy ``uint8`` (H, W, 3) RGB, or float tensor (3, H, W) / (1, 3, H, W) in [0, 1].
        mask: (H, W), (1, H, W) or (1, 1, H, W), NumPy or tensor, values exactly 0/1 (or bool),
            1 = valid, 0 = hole.
        tile_size: side of a square tile fed to the model; must be a multiple of ``multiple``.
            Images smaller than a tile use one tile of their size rounded up to ``multiple``.
        overlap: pixels shared by neighbouring tiles and cross-faded; ``0 <= overlap <
            tile_size``. Larger overlaps hide tile-dependent differences better but cost more
            tiles (tile_size // 4 is a good start).
        batch_size: tiles per model call.
        multiple: the model's size multiple (``2**depth`` for a PConv UNet). ``None``: the
            model's ``size_multiple`` attribute, else ``2**model.depth``, else 1.
        device: where to run the model; ``None``: the device of the model's parameters (CPU
            for a plain function). Blending happens on the CPU.
        skip_empty: do not run tiles without hole pixels (their pixels are copied through).
        return_prediction: also return the blended raw model output (see :class:`TiledResult`).
        progress: show a tqdm bar (tiles done / total, on stderr) once the run has taken more
            than :data:`PROGRESS_DELAY` seconds; ``progress_label`` is its description.

    Returns:
        :class:`TiledResult` whose ``image`` has the input's type and layout; valid pixels equal
        the input exactly; ``tiles_total`` / ``tiles_run`` count the tiles.

    Warns:
        UserWarning: one line, when the holes are wider than a model trained on ``tile_size``-px
            crops has seen (:func:`wide_hole_notice`): use :func:`predict_multiscale` for them.

    Raises:
        TypeError / ValueError: for a badly typed or shaped image, a non-binary or mis-sized mask,
            or inconsistent tile parameters (the message says how to fix it).
    """
    multiple = _infer_multiple(model, multiple)
    check.check_tiling(tile_size, overlap, batch_size, multiple)
    inp = _prepare(image, mask)
    notice = wide_hole_notice(inp.mask[0, 0].numpy(), int(tile_size))
    if notice:
        warnings.warn(f"{notice}; predict_multiscale fills them in two passes", stacklevel=2)
    with eval_mode(model):
        return _tiled(model, inp, int(tile_size), int(overlap), int(batch_size), multiple,
                      model_device(model, device), skip_empty, return_prediction, progress, progress_label)


def _tiled(model: Model, inp: _Input, tile_size: int, overlap: int, batch_size: int, multiple: int,
           dev: torch.device, skip_empty: bool = True, return_prediction: bool = False,
           progress: bool = False, progress_label: str = "tiles") -> TiledResult:
    """:func:`predict_tiled` for checked arguments and a prepared input."""
    height, width = inp.image.shape[-2:]
    th, ph, pad_top = _plan_axis(height, tile_size, overlap, multiple)
    tw, pw, pad_left = _plan_axis(width, tile_size, overlap, multiple)
    padded_image, padded_mask = _pad_both(inp, (ph, pw), pad_top, pad_left)
    grid = _grid(ph, pw, (th, tw), overlap)

    # Holes that matter: those of the original image (reflected holes in the padding do not).
    holes = torch.zeros((ph, pw), dtype=torch.bool)
    holes[pad_top : pad_top + height, pad_left : pad_left + width] = inp.mask[0, 0] == 0
    if skip_empty:  # hole count per tile in O(1) from a summed-area table
        sat = F.pad(holes.to(torch.int32).cumsum(0).cumsum(1), (1, 0, 1, 0))
        to_run = [
            (t, l)
            for t, l in grid
            if int(sat[t + th, l + tw] - sat[t, l + tw] - sat[t + th, l] + sat[t, l]) > 0
        ]
        del sat
    else:
        to_run = list(grid)

    window = _window(th, tw, overlap)
    acc = torch.zeros((3, ph, pw), dtype=torch.float32)
    weight = torch.zeros((ph, pw), dtype=torch.float32)
    bar = tqdm(
        total=len(to_run), desc=progress_label, unit="tile", delay=PROGRESS_DELAY, disable=not progress
    )
    with torch.no_grad(), bar:
        for start in range(0, len(to_run), batch_size):
            batch = to_run[start : start + batch_size]
            tiles = torch.cat([padded_image[:, :, t : t + th, l : l + tw] for t, l in batch])
            masks = torch.cat([padded_mask[:, :, t : t + th, l : l + tw] for t, l in batch])
            out = run_model(model, tiles, masks, dev)
            for (t, l), pred in zip(batch, out, strict=True):
                acc[:, t : t + th, l : l + tw] += pred * window
                weight[t : t + th, l : l + tw] += window
            bar.update(len(batch))

    del padded_image, padded_mask, holes  # free memory before compositing
    crop = (slice(pad_top, pad_top + height), slice(pad_left, pad_left + width))
    weight = weight[crop]
    covered = weight > 0
    blended = acc[(slice(None),) + crop]
    blended.div_(weight.clamp_min_(1e-12))  # in place: no second full-size float copy
    blended = torch.where(covered, blended, inp.image[0])[None]
    del acc, weight
    return TiledResult(
        image=_finish(inp, blended, covered[None, None]),
        tiles_total=len(grid),
        tiles_run=len(to_run),
        tile_shape=(th, tw),
        padded_shape=(ph, pw),
        prediction=blended if return_prediction else None,
    )


def predict_whole(
    model: Model,
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    multiple: int | None = None,
    *,
    device: str | torch.device | None = None,
    return_prediction: bool = False,
) -> TiledResult:
    """Inpaint in one pass: pad (centred, reflect/replicate) to a multiple of ``multiple``, run
    the model once on the whole image, crop, composite. The reference for :func:`predict_tiled`;
    memory grows with the image area.

    Arguments, types and the returned :class:`TiledResult` (with one tile) are as in
    :func:`predict_tiled`; the model always runs, even without holes.
    """
    multiple = _infer_multiple(model, multiple)
    inp = _prepare(image, mask)
    with eval_mode(model):
        height, width = inp.image.shape[-2:]
        ph, pw = round_up(height, multiple), round_up(width, multiple)
        blended = predict_padded(model, inp.image, inp.mask, multiple, model_device(model, device))
        return TiledResult(
            image=_finish(inp, blended),
            tiles_total=1,
            tiles_run=1,
            tile_shape=(ph, pw),
            padded_shape=(ph, pw),
            prediction=blended if return_prediction else None,
        )


def naive_spans(length: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """The original course's chunk spans: step ``chunk - overlap / 2`` (so neighbours share only
    ``overlap / 2`` pixels), last chunk moved back to end at ``length``."""
    if length <= chunk:
        return [(0, length)]
    step = chunk - overlap / 2
    starts = []
    i = 0
    while True:
        starts.append(i * step)
        i += 1
        if starts[-1] + chunk > length:
            break
    starts[-1] = length - chunk
    return [(int(s), int(s) + chunk) for s in starts]


def predict_naive_chunks(
    model: Model,
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    chunk: int = 512,
    overlap: int = 30,
    *,
    device: str | torch.device | None = None,
    return_prediction: bool = False,
) -> TiledResult:
    """The original Keras course's chunking, re-implemented as the baseline that shows seams.

    Images smaller than ``chunk`` are padded at the bottom/right with ones (white, valid);
    ``chunk``×``chunk`` pieces are cut with a step of ``chunk - overlap / 2`` (the last one flush
    with the border); every chunk runs, one at a time (no batching, no skipping); predictions are
    pasted in row-major order and, where a pixel was already filled, averaged pairwise with it
    (``(old + new) / 2``, so a pixel covered by four chunks weighs them 1/8, 1/8, 1/4, 1/2).
    Unlike the original (which tested ``!= 0`` to find filled pixels) an explicit coverage map is
    used. The result is composited with the input like :func:`predict_tiled`'s, so only the holes
    differ.
    """
    check.check_chunks(chunk, overlap)
    inp = _prepare(image, mask)
    with eval_mode(model):
        dev = model_device(model, device)
        height, width = inp.image.shape[-2:]
        ph, pw = max(height, chunk), max(width, chunk)
        padded_image = F.pad(inp.image, (0, pw - width, 0, ph - height), value=1.0)
        padded_mask = F.pad(inp.mask, (0, pw - width, 0, ph - height), value=1.0)
        padded_image = padded_image * padded_mask
        rows, cols = naive_spans(ph, chunk, overlap), naive_spans(pw, chunk, overlap)

        recon = torch.zeros((3, ph, pw), dtype=torch.float32)
        filled = torch.zeros((ph, pw), dtype=torch.bool)
        with torch.no_grad():
            for r0, r1 in rows:
                for c0, c1 in cols:
                    region = (slice(None), slice(None), slice(r0, r1), slice(c0, c1))
                    pred = run_model(model, padded_image[region], padded_mask[region], dev)[0]
                    old = filled[r0:r1, c0:c1]
                    recon[:, r0:r1, c0:c1] = torch.where(
                        old, (recon[:, r0:r1, c0:c1] + pred) / 2, pred
                    )
                    filled[r0:r1, c0:c1] = True
        blended = recon[None, :, :height, :width]
        return TiledResult(
            image=_finish(inp, blended),
            tiles_total=len(rows) * len(cols),
            tiles_run=len(rows) * len(cols),
            tile_shape=(chunk, chunk),
            padded_shape=(ph, pw),
            prediction=blended if return_prediction else None,
        )


# --------------------------------------------------------------------------------------------
# Multi-scale prediction: large holes in large photos
# --------------------------------------------------------------------------------------------

#: A model trained on ``T``×``T`` crops fills holes up to a *radius* (the distance from a hole
#: pixel to the nearest valid pixel) of about ``RADIUS_FRACTION * T``: the 99th percentile of
#: that radius over the holes of the training masks (:func:`pconv_lib.masks.random_irregular_mask`
#: at 256×256, 20-30 % holes) is 9.5 px on average and at most 11.5 px, i.e. 0.037-0.045 × 256.
#: Wider holes leave the deepest hole pixels with no valid pixel in the tile's view, and the model
#: paints dark blotches there.
RADIUS_FRACTION = 0.04


def _valid_array(mask: object) -> np.ndarray:
    """Check a mask as :func:`hole_radius` and :func:`choose_scale` take it (NumPy or tensor, (H, W),
    (1, H, W) or (1, 1, H, W), 0/1); return it as (H, W) uint8, 1 = valid."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    check.check_mask_2d(m)
    return m.reshape(m.shape[-2:]).astype(np.uint8)


def _hole_distance(valid: np.ndarray) -> np.ndarray:
    """Euclidean distance (float32 px) from every pixel to the nearest valid pixel (0 on valid)."""
    return cv2.distanceTransform((valid == 0).astype(np.uint8), cv2.DIST_L2, 5)


def hole_radius(mask: np.ndarray | torch.Tensor, percentile: float = 99.0) -> float:
    """How wide the holes are: the ``percentile`` of the distance from hole pixels to the nearest
    valid pixel, in pixels (half the width of a stroke; 0 when there is no hole).

    ``mask``: (H, W) (or (1, H, W), (1, 1, H, W)), 1 = valid, 0 = hole. The 99th percentile
    ignores a few isolated deep pixels (stroke crossings) but sees every thick stroke.
    """
    return _hole_radius(_valid_array(mask), percentile)


def _hole_radius(valid: np.ndarray, percentile: float = 99.0) -> float:
    if valid.all():
        return 0.0
    if not valid.any():
        return float(max(valid.shape))  # no valid pixel at all: as wide as the image
    dist = _hole_distance(valid)
    return float(np.percentile(dist[valid == 0], percentile))


def choose_scale(
    mask: np.ndarray | torch.Tensor, train_size: int, *, max_factor: int = 16, min_side: int = 64
) -> int:
    """The downscaling factor for :func:`predict_multiscale`'s coarse pass: 1 (single-scale: the
    holes already look like the training holes) or a power of two.

    The smallest power of two ``f`` with ``hole_radius(mask) / f <= RADIUS_FRACTION *
    train_size``, capped at ``max_factor`` and so that the coarse image keeps at least
    ``min_side`` pixels on its shorter side.
    """
    check.check_positive_int("train_size", train_size, " (the model's crop size)")
    return _choose_scale(_valid_array(mask), int(train_size), max_factor, min_side)


def _choose_scale(valid: np.ndarray, train_size: int, max_factor: int = 16, min_side: int = 64) -> int:
    radius, limit = _hole_radius(valid), RADIUS_FRACTION * train_size
    factor = 1
    while radius / factor > limit and factor < max_factor and min(valid.shape) / (2 * factor) >= min_side:
        factor *= 2
    return factor


def wide_hole_notice(mask: np.ndarray | torch.Tensor, train_size: int) -> str | None:
    """One line saying that the holes of ``mask`` (1 = valid) are far wider than a model trained
    on ``train_size``-px crops has seen, or ``None``.

    "Far": :func:`hole_radius` over twice ``RADIUS_FRACTION * train_size`` (the widest training
    strokes reach about 1.1 times it, so paper-like masks never trigger it). Deep inside such
    holes a single pass paints blotches in colours from nowhere (see
    :func:`pconv_lib.evaluate.blotch_share`); :func:`predict_multiscale` avoids them.
    """
    valid = _valid_array(mask)
    radius, seen = _hole_radius(valid), RADIUS_FRACTION * int(train_size)
    if radius <= 2 * seen:
        return None
    return (
        f"holes reach {radius:.0f} px from the nearest valid pixel, far more than the ~{seen:.0f} px "
        f"a model trained on {int(train_size)}-px crops has seen"
    )


def _downscale(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]):
    """Area-average ``image`` (1, 3, H, W) over valid pixels only; a coarse pixel is valid only if
    all the fine pixels it covers are (so no hole colour leaks into the coarse input)."""
    h, w = size
    img = torch.where(mask != 0, image, 0.0)[0].permute(1, 2, 0).numpy()
    m = mask[0, 0].numpy()
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    cover = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)
    small = small / np.maximum(cover, 1e-6)[:, :, None]
    small_mask = (cover > 1 - 1e-4).astype(np.float32)
    small = np.clip(np.where(small_mask[:, :, None] > 0, small, 0.0), 0, 1).astype(np.float32)
    return torch.from_numpy(small).permute(2, 0, 1)[None], torch.from_numpy(small_mask)[None, None]


def predict_multiscale(
    model: Model,
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    *,
    tile_size: int = 256,
    overlap: int = 64,
    factor: int | None = None,
    band: float | None = None,
    batch_size: int = 4,
    multiple: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    return_prediction: bool = False,
) -> TiledResult:
    """Inpaint large holes in large photos: a coarse pass for the structure, a tiled pass for detail.

    A tile at the training size cannot see around a hole wider than about twice
    ``RADIUS_FRACTION * tile_size``: deep inside such a hole :func:`predict_tiled` paints dark
    blotches. This function:

    1. **Coarse pass**: shrinks the image and mask by ``factor`` (area averaging; a coarse pixel is
       valid only if all its fine pixels are), so the holes shrink to the training widths, and
       inpaints the small image with :func:`predict_tiled`.
    2. **Start**: upsamples the coarse result (bicubic) to full size and puts it into the holes.
    3. **Refine** at full resolution with :func:`predict_tiled`: only the *band* of hole pixels
       within ``band`` pixels of the valid region is treated as hole; deeper hole pixels keep the
       coarse fill and are shown to the model as known context. Every refined pixel is then
       within the training radius of known pixels (real or coarse), so the blotches cannot come
       back, and the band, where detail matters most (it continues the real texture), gets
       full-resolution detail that matches both sides.
    4. **Composite**: valid input pixels are returned exactly.

    Args:
        model, image, mask, tile_size, overlap, batch_size, multiple, device: as in
            :func:`predict_tiled` (``tile_size`` should be the model's training size).
        factor: the coarse pass's downscaling (a power of two is usual); ``None`` chooses it
            from the hole widths with :func:`choose_scale` (1 = holes already fit: plain
            :func:`predict_tiled`); ``1`` forces single-scale.
        band: width in pixels of the refined band; default ``RADIUS_FRACTION * tile_size``.
        progress: tqdm bars for both passes (shown after :data:`PROGRESS_DELAY` seconds).
        return_prediction: also return the filled image before compositing (float32 (1, 3, H, W)).

    Returns:
        :class:`TiledResult`; ``scale_factor`` is the factor used; tile counts add up both passes;
        ``tile_shape`` / ``padded_shape`` describe the full-resolution pass.
    """
    multiple = _infer_multiple(model, multiple)
    check.check_positive_int("tile_size", tile_size)
    inp = _prepare(image, mask)
    valid = inp.mask[0, 0].numpy().astype(np.uint8)
    factor = _choose_scale(valid, int(tile_size)) if factor is None else factor
    band = RADIUS_FRACTION * tile_size if band is None else float(band)
    check.check_multiscale(factor, band)
    check.check_tiling(tile_size, overlap, batch_size, multiple)
    with eval_mode(model):
        common = dict(tile_size=int(tile_size), overlap=int(overlap), batch_size=int(batch_size),
                      multiple=multiple, dev=model_device(model, device), progress=progress)
        if factor == 1:
            return _tiled(model, inp, return_prediction=return_prediction, **common)

        height, width = inp.image.shape[-2:]
        small_size = (max(1, round(height / factor)), max(1, round(width / factor)))
        small_image, small_mask = _downscale(inp.image, inp.mask, small_size)
        coarse = _tiled(model, _Input(small_image, small_mask, small_image, "tensor4"),
                        progress_label="coarse tiles", **common)
        start = F.interpolate(coarse.image, size=(height, width), mode="bicubic", align_corners=False)
        start = torch.where(inp.mask != 0, inp.image, start.clamp_(0, 1))

        deep = torch.from_numpy(_hole_distance(valid) > band)[None, None]
        refine_mask = ((inp.mask != 0) | deep).to(torch.float32)
        fine = _tiled(model, _Input(start, refine_mask, start, "tensor4"),
                      progress_label="refine tiles", **common)
        filled = fine.image
        return TiledResult(
            image=_finish(inp, filled),
            tiles_total=coarse.tiles_total + fine.tiles_total,
            tiles_run=coarse.tiles_run + fine.tiles_run,
            tile_shape=fine.tile_shape,
            padded_shape=fine.padded_shape,
            prediction=filled if return_prediction else None,
            scale_factor=int(factor),
        )
