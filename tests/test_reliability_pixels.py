"""Issue 27, part 3: one value rule at every entry that takes pixels or masks. Training's mask
folders are probed up front (unreadable files skipped by name, the hole convention checked as
predict checks it); evaluation refuses float [0, 1] images where 0..255 is expected (and methods
that return them); the raw model refuses valid pixels outside [0, 1] or NaN; the widget's photo
and its predict function's result follow the same picture rule."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from cli_runner import run_cli

from pconv_lib import evaluate
from pconv_lib.data import InpaintingDataset
from pconv_lib.masks import MaskFolder, save_mask_png
from pconv_lib.model import PConvUNet
from pconv_lib.photos import sample_photos

SIZE = 32
TINY = ["--image-size", "32", "--depth", "3", "--width", "0.125", "--batch-size", "2"]
QUIET = ["--random-vgg", "--num-workers", "0", "--no-progress"]



@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index, image in enumerate(list(sample_photos(size=48).values())[:3]):
        cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def train_args(photos, masks, log) -> list:
    return ["train", "--name", "r", "--train", photos, "--masks", masks, "--log-path", log, *TINY, *QUIET]


def white_hole_masks(folder, count=5, hole=0.2):
    """Masks drawn as white strokes on black (white = hole), ``hole`` of the area white."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        mask = np.zeros((40, 40), np.uint8)
        mask[: int(40 * hole), :] = 255
        cv2.imwrite(str(folder / f"m{index}.png"), np.roll(mask, 5 * index, axis=0))
    return folder


# ---------------------------------------------------------------- training's mask folders


def test_white_hole_masks_read_as_black_hole_ones_are_named_before_training(tmp_path, photos, capsys):
    masks = white_hole_masks(tmp_path / "masks")
    with pytest.warns(UserWarning, match=r"marks 80% of the image as holes .*--holes-are white"):
        MaskFolder(masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaskFolder(masks, holes_are="white")  # read the right way: nothing to say
    argv = train_args(photos, masks, tmp_path)
    code, _, err = run_cli(capsys, *argv, "--steps", "1")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "holes-are white" in line]
    assert len(lines) >= 1 and lines[0].startswith("warning:") and "80%" in lines[0]


@pytest.mark.parametrize("holes_are", ["black", "white"])
def test_a_folder_of_all_hole_masks_is_refused_in_one_line(tmp_path, photos, capsys, holes_are):
    masks = tmp_path / "masks"
    value = 0 if holes_are == "black" else 255
    for index in range(3):
        masks.mkdir(exist_ok=True)
        cv2.imwrite(str(masks / f"ok{index}.png"), np.full((20, 20), value, np.uint8))
    argv = train_args(photos, masks, tmp_path)
    if holes_are == "white":
        argv += ["--holes-are", "white"]
    code, _, err = run_cli(capsys, *argv, "--steps", "1")
    other = "white" if holes_are == "black" else "black"
    assert code == 2 and err.count("error:") == 1 and "every pixel as a hole" in err, err
    assert f"--holes-are {other}" in err and not (tmp_path / "r" / "last.pt").exists()


def test_unreadable_mask_files_are_skipped_by_name(tmp_path, photos):
    masks = tmp_path / "masks"
    mask = np.ones((40, 40), np.uint8)
    mask[10:20, 10:30] = 0
    for index in range(4):
        save_mask_png(mask, masks / f"good{index}.png")
    (masks / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    grey = np.full((40, 40), 128, np.uint8)  # not binary (a JPEG-like grey edge everywhere)
    cv2.imwrite(str(masks / "grey.png"), grey)
    with pytest.warns(UserWarning, match="skipping unreadable mask file") as caught:
        data = InpaintingDataset(photos, SIZE, masks=masks)
    text = " ".join(str(w.message) for w in caught)
    assert "broken.png" in text and "grey.png" in text
    for index in range(len(data)):  # no item ever uses them
        assert 0 < float(data[index]["mask"].mean()) < 1


def test_a_folder_without_any_readable_mask_is_refused(tmp_path, photos, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    for index in range(3):
        (masks / f"m{index}.png").write_bytes(b"not a png")
    argv = train_args(photos, masks, tmp_path)
    code, _, err = run_cli(capsys, *argv, "--steps", "1")
    assert code == 2 and "none of the 3 checked mask file(s) could be read" in err, err


def test_a_mask_that_breaks_during_training_is_skipped_not_fatal(tmp_path):
    masks = tmp_path / "masks"
    mask = np.ones((40, 40), np.uint8)
    mask[5:15] = 0
    for index in range(3):
        save_mask_png(mask, masks / f"m{index}.png")
    folder = MaskFolder(masks)
    (masks / "m1.png").write_bytes(b"")  # emptied after the check (a sync client, a full disk)
    with pytest.warns(UserWarning, match="m1.png"):
        drawn = [folder.sample(seed, 20, 20) for seed in range(12)]
    assert all(m.shape == (20, 20) and 0 < m.mean() < 1 for m in drawn)


# ---------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def pair():
    images = list(sample_photos(size=48).values())
    return images[0], images[1]


@pytest.mark.parametrize(
    "convert, needle",
    [
        (lambda x: x.astype(np.float64) / 255, "floats in [0, 1]"),
        (lambda x: x.astype(np.float32), "np.clip(np.rint(truth), 0, 255)"),
        (lambda x: x[:, :, 0], "grey image"),
        (lambda x: x.tolist(), "got list"),
    ],
    ids=["unit-floats", "0-255-floats", "grey", "list"],
)
def test_image_metrics_refuses_what_it_would_score_wrong(pair, convert, needle):
    truth, other = pair
    with pytest.raises(ValueError) as info:
        evaluate.image_metrics(convert(truth), convert(other))
    assert needle in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="same shape"):
        evaluate.image_metrics(truth, other[:40])
    assert evaluate.image_metrics(truth, truth)["SSIM"] == pytest.approx(1.0)


def test_evaluate_methods_checks_every_image_before_any_work(pair):
    calls = []

    def method(image, mask):
        calls.append(1)
        return image

    images = [pair[0], pair[1].astype(np.float32) / 255]
    with pytest.raises(ValueError, match=r"images\[1\] must be a uint8 .*floats in \[0, 1\]"):
        evaluate.evaluate_methods({"copy": method}, images, buckets=[0])
    assert calls == []


@pytest.mark.parametrize(
    "method, needle",
    [
        (lambda image, mask: image.astype(np.float32) / 255, "the result of method 'unit' must be a uint8"),
        (lambda image, mask: image[:-1], "returned (47, 48, 3) for an image of (48, 48, 3)"),
    ],
)
def test_a_method_returning_the_wrong_picture_is_named(pair, method, needle):
    with pytest.raises(ValueError) as info:
        evaluate.evaluate_methods({"unit": method}, [pair[0]], buckets=[1])
    assert needle in str(info.value)


# ---------------------------------------------------------------- the raw model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PConvUNet(depth=3, width=0.125).eval()


def _inputs():
    image = torch.rand(1, 3, 32, 32)
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:20, 8:20] = 0
    return image, mask


@pytest.mark.parametrize(
    "spoil, needle",
    [
        (lambda image: image * 255, "in the valid pixels (mask 1) must be finite and in [0, 1]"),
        (lambda image: image.index_put_((torch.tensor(0), torch.tensor(0), torch.tensor(0), torch.tensor(0)),
                                        torch.tensor(float("nan"))), "nan"),
        (lambda image: image - 0.5, "got -0.49"),
        (lambda image: image.index_fill_(3, torch.tensor([31]), float("inf")), "inf"),
    ],
    ids=["0-255", "nan", "negative", "inf"],
)
def test_the_model_refuses_valid_pixels_it_cannot_inpaint_from(model, spoil, needle):
    image, mask = _inputs()
    with pytest.raises(ValueError) as info, torch.no_grad():
        model(spoil(image), mask)
    assert needle in str(info.value)


def test_holes_may_hold_anything_and_the_check_has_the_mask_switch(model):
    image, mask = _inputs()
    image[..., 10, 10] = float("nan")  # in a hole: replaced by 0, as documented
    image[..., 12, 12] = 300.0
    with torch.no_grad():
        output, _ = model(image, mask)
        assert torch.isfinite(output).all()
        model.check_mask = False  # the Trainer's setting: checks on the data side, no host sync
        try:
            model(torch.rand(1, 3, 32, 32) * 255, mask)
        finally:
            model.check_mask = True


# ---------------------------------------------------------------- the widget and tiling


def test_the_widget_and_tiling_use_the_same_picture_rule(pair):
    from pconv_lib.tiling import predict_tiled
    from pconv_lib.widgets import MaskPainter

    unit = pair[0].astype(np.float32) / 255
    with pytest.raises(TypeError, match=r"floats in \[0, 1\]"):
        MaskPainter(unit, predict_fn=lambda image, mask: image)
    painter = MaskPainter.from_strokes(pair[0], [[(20, 20)]], brush=4, predict_fn=lambda i, m: i / 255.0)
    with pytest.raises(ValueError, match="the result of predict_fn must be a uint8"):
        painter.run()
    with pytest.raises(ValueError, match=r"a NumPy image must be a uint8 .*floats in \[0, 1\]"):
        model = PConvUNet(depth=3, width=0.125)
        predict_tiled(model, unit, np.ones((48, 48), np.uint8), tile_size=32, overlap=8)
