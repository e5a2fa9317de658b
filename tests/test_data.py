"""Tests for pconv_lib.data: folder datasets, sample-photo dataset, crops, masks, loaders."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib import data
from pconv_lib.data import (
    InpaintingDataset,
    SamplePhotoDataset,
    make_dataloader,
    random_crop_flip,
    sample_photo_dataset,
)
from pconv_lib.masks import save_mask_png
from pconv_lib.util import image_files
from pconv_lib.util.image_files import IMAGE_EXTENSIONS, find_images

SIZE = 32


def write_image(path: Path, height: int, width: int, seed: int) -> Path:
    """Write a random colour image with cv2 (format from the suffix; upper-case suffixes ok)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


@pytest.fixture
def imagenet_tree(tmp_path: Path) -> Path:
    """A tiny ImageNet-like tree: train/<wnid>/*.JPEG|png, val/*.jpeg, plus non-images."""
    root = tmp_path / "imagenet"
    write_image(root / "train" / "n01440764" / "n01440764_1.JPEG", 40, 50, 1)
    write_image(root / "train" / "n01440764" / "n01440764_2.png", 48, 36, 2)
    write_image(root / "train" / "n02102040" / "n02102040_1.jpg", 20, 30, 3)  # smaller than 32
    write_image(root / "train" / "n02102040" / "n02102040_2.BMP", 64, 64, 4)
    write_image(root / "val" / "ILSVRC2012_val_00000001.jpeg", 45, 60, 5)
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")
    write_image(root / "train" / ".hidden" / "x.png", 40, 40, 6)
    return root


def test_find_images_is_recursive_case_insensitive_and_sorted(imagenet_tree):
    files = find_images(imagenet_tree)
    names = [p.relative_to(imagenet_tree).as_posix() for p in files]
    assert names == [
        "train/n01440764/n01440764_1.JPEG",
        "train/n01440764/n01440764_2.png",
        "train/n02102040/n02102040_1.jpg",
        "train/n02102040/n02102040_2.BMP",
        "val/ILSVRC2012_val_00000001.jpeg",
    ]
    assert len(find_images(imagenet_tree / "val")) == 1  # flat val/ layout
    assert ".webp" in IMAGE_EXTENSIONS


def check_item(item: dict, size=(SIZE, SIZE)) -> None:
    image, mask, masked = item["image"], item["mask"], item["masked"]
    assert image.shape == (3, *size) and image.dtype == torch.float32
    assert mask.shape == (1, *size) and mask.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 < mask.mean() < 1  # the generated masks have holes and valid pixels
    torch.testing.assert_close(masked, image * mask)


def test_items_have_the_documented_shapes_dtypes_and_ranges(imagenet_tree):
    dataset = InpaintingDataset(imagenet_tree, SIZE, seed=0)
    assert len(dataset) == 5
    for index in range(len(dataset)):
        item = dataset[index]
        check_item(item)
        assert item["index"] == index
        assert item["path"] == str(dataset.files[index])
    check_item(InpaintingDataset(imagenet_tree, (24, 40))[0], size=(24, 40))


def test_pixels_come_from_the_file(tmp_path):
    # a flat-coloured image: every crop, flip or upscale has that colour exactly
    path = tmp_path / "photos" / "red.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), np.full((10, 12, 3), (0, 0, 255), np.uint8))  # BGR red, smaller
    item = InpaintingDataset(tmp_path / "photos", 16)[0]
    expected = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 16, 16)
    torch.testing.assert_close(item["image"], expected)


def test_same_seed_same_items_and_epochs_differ(imagenet_tree):
    a = InpaintingDataset(imagenet_tree, SIZE, seed=7)
    b = InpaintingDataset(imagenet_tree, SIZE, seed=7)
    for index in (0, 3, 4):
        for key in ("image", "mask"):
            assert torch.equal(a[index][key], b[index][key])
    first = a[0]["mask"]
    a.set_epoch(1)
    assert not torch.equal(a[0]["mask"], first)
    a.set_epoch(0)
    assert torch.equal(a[0]["mask"], first)
    other_seed = InpaintingDataset(imagenet_tree, SIZE, seed=8)
    assert not torch.equal(other_seed[0]["mask"], first)


def test_corrupt_image_is_skipped_with_a_warning_naming_it(imagenet_tree):
    bad = imagenet_tree / "train" / "n01440764" / "n01440764_0.JPEG"
    bad.write_bytes(b"this is not a jpeg at all")
    empty = imagenet_tree / "train" / "n01440764" / "n01440764_00.png"
    empty.write_bytes(b"")
    dataset = InpaintingDataset(imagenet_tree, SIZE)
    bad_index = dataset.files.index(bad)
    with pytest.warns(UserWarning, match="n01440764_0.JPEG"):
        item = dataset[bad_index]
    check_item(item)
    assert item["path"] != str(bad) and item["index"] == bad_index
    with pytest.warns(UserWarning, match="n01440764_00.png"):
        check_item(dataset[dataset.files.index(empty)])


def test_only_corrupt_images_is_a_runtime_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"junk")
    dataset = InpaintingDataset(tmp_path, SIZE, max_retries=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="could not read any image"):
            dataset[0]


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images found") as info:
        InpaintingDataset(tmp_path / "empty", SIZE)
    assert str(tmp_path / "empty") in str(info.value)
    assert all(ext in str(info.value) for ext in IMAGE_EXTENSIONS)
    with pytest.raises(FileNotFoundError, match="missing"):
        InpaintingDataset(tmp_path / "missing", SIZE)


def test_masks_from_a_mask_folder(imagenet_tree, tmp_path):
    from pconv_lib.masks import random_mask_transform

    folder = tmp_path / "masks"
    half = np.ones((40, 40), np.uint8)
    half[:, :12] = 0  # 30 % holes
    save_mask_png(half, folder / "some_holes.png")
    dataset = InpaintingDataset(imagenet_tree, SIZE, masks=folder)
    item = dataset[1]
    assert item["mask"].shape == (1, SIZE, SIZE)
    assert 0 < item["mask"].sum() < SIZE * SIZE
    assert torch.equal(item["masked"], item["image"] * item["mask"])
    # rotated ×1.5 and cropped, an all-hole mask stays all hole (no valid corner appears)
    assert random_mask_transform(np.zeros((40, 40), np.uint8), 0, SIZE, SIZE).sum() == 0
    # a folder of all-hole masks is refused up front (nothing to inpaint from), as predict does
    save_mask_png(np.zeros((40, 40), np.uint8), tmp_path / "all" / "all_hole.png")
    with pytest.raises(ValueError, match="every pixel as a hole"):
        InpaintingDataset(imagenet_tree, SIZE, masks=tmp_path / "all")

    white = tmp_path / "white_holes"
    white.mkdir()
    stroke = np.zeros((40, 40), np.uint8)
    stroke[10:20] = 255  # white = hole: 25 %
    cv2.imwrite(str(white / "m.png"), stroke)
    item = InpaintingDataset(imagenet_tree, SIZE, masks=white, holes_are="white")[0]
    assert 0 < item["mask"].sum() < SIZE * SIZE


def test_custom_mask_function(imagenet_tree):
    def left_half_hole(rng, height, width):
        mask = np.ones((height, width), np.uint8)
        mask[:, : width // 2] = 0
        return mask

    item = InpaintingDataset(imagenet_tree, SIZE, mask_fn=left_half_hole)[2]
    assert item["mask"][0, :, : SIZE // 2].sum() == 0
    assert item["mask"][0, :, SIZE // 2 :].min() == 1
    with pytest.raises(ValueError, match="not both"):
        InpaintingDataset(imagenet_tree, SIZE, mask_fn=left_half_hole, masks=imagenet_tree)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    out_h=st.integers(1, 40),
    out_w=st.integers(1, 40),
    small=st.sampled_from(["resize", "reflect"]),
    seed=st.integers(0, 1000),
)
def test_random_crop_flip_always_gives_the_training_size(h, w, out_h, out_w, small, seed):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    crop = random_crop_flip(image, (out_h, out_w), np.random.default_rng(seed), small=small)
    assert crop.shape == (out_h, out_w, 3) and crop.dtype == np.uint8
    assert crop.flags["C_CONTIGUOUS"]
    if h >= out_h and w >= out_w:  # a plain crop (maybe flipped): pixels taken from the image
        assert set(map(tuple, crop.reshape(-1, 3))) <= set(map(tuple, image.reshape(-1, 3)))


def test_resize_shorter_and_bad_arguments(imagenet_tree):
    dataset = InpaintingDataset(imagenet_tree, 16, resize_shorter=20, flip=False)
    check_item(dataset[0], size=(16, 16))
    with pytest.raises(ValueError, match="small"):
        InpaintingDataset(imagenet_tree, 16, small="stretch")
    with pytest.raises(ValueError, match="size"):
        InpaintingDataset(imagenet_tree, 0)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_sample_photo_dataset():
    dataset = sample_photo_dataset(SIZE, names=["astronaut", "coffee"], repeats=3, seed=1)
    assert isinstance(dataset, SamplePhotoDataset)
    assert len(dataset) == 6
    assert [dataset[i]["path"] for i in range(3)] == ["astronaut", "coffee", "astronaut"]
    for i in range(len(dataset)):
        check_item(dataset[i])
    again = SamplePhotoDataset(SIZE, names=["astronaut", "coffee"], repeats=3, seed=1)
    assert torch.equal(dataset[4]["image"], again[4]["image"])
    assert not torch.equal(dataset[0]["image"], dataset[2]["image"])  # different random crops
    scaled = SamplePhotoDataset(SIZE, names=["chelsea"], photo_scale=0.05)  # 15×23: scaled up
    check_item(scaled[0])
    with pytest.raises(ValueError, match="unknown sample photo"):
        SamplePhotoDataset(SIZE, names=["nope"])


def test_make_dataloader_batches_and_is_reproducible(imagenet_tree):
    dataset = InpaintingDataset(imagenet_tree, SIZE)

    def epoch(loader):
        return [(batch["index"].tolist(), batch["mask"]) for batch in loader]

    loader = make_dataloader(dataset, batch_size=2, seed=3)
    batches = epoch(loader)
    assert len(batches) == 2  # 5 items, drop_last
    first = next(iter(make_dataloader(dataset, batch_size=2, seed=3)))
    assert first["image"].shape == (2, 3, SIZE, SIZE) and first["mask"].shape == (2, 1, SIZE, SIZE)
    assert len(first["path"]) == 2
    again = epoch(make_dataloader(dataset, batch_size=2, seed=3))
    assert [b[0] for b in again] == [b[0] for b in batches]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(again, batches, strict=True))
    with_worker = epoch(make_dataloader(dataset, batch_size=2, seed=3, num_workers=1))
    assert [b[0] for b in with_worker] == [b[0] for b in batches]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(with_worker, batches, strict=True))


def test_module_documents_the_mask_convention():
    assert "1 = valid" in data.__doc__


# ---------------------------------------------------------------- headers, limits, atomic writes


def test_pixel_limit_from_argument_environment_or_default(monkeypatch):
    from pconv_lib.util import files

    monkeypatch.delenv(files.MAX_PIXELS_ENV, raising=False)
    assert files.max_pixels() == files.DEFAULT_MAX_PIXELS == 100_000_000
    assert files.max_pixels(5) == 5
    for text, value in (("2e8", 200_000_000), ("1_000", 1000), (" 77 ", 77)):
        monkeypatch.setenv(files.MAX_PIXELS_ENV, text)
        assert files.max_pixels() == value
    for text in ("0", "-3", "1.5", "many"):
        monkeypatch.setenv(files.MAX_PIXELS_ENV, text)
        with pytest.raises(ValueError, match=files.MAX_PIXELS_ENV):
            files.max_pixels()
    with pytest.raises(ValueError, match="--max-pixels"):
        files.max_pixels(0)
    free = files.available_memory()
    assert free is None or (isinstance(free, int) and free > 0)


def test_headers_are_read_without_decoding_and_images_come_back_upright(tmp_path):
    from pconv_lib.util import files

    path = write_image(tmp_path / "a.png", 30, 50, 0)
    header = files.read_image_header(path)
    assert (header.width, header.height, header.orientation, header.size) == (50, 30, 1, (30, 50))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(files.ImageRejected, match="notes.png is not a readable image"):
        files.read_image_header(text)
    with pytest.raises(files.ImageRejected, match="notes.png"):
        image_files.load_image(text)
    assert image_files.read_image(text) is None and image_files.read_image(tmp_path / "missing.png") is None
    grey16 = tmp_path / "g16.png"
    cv2.imwrite(str(grey16), np.full((12, 9), 40000, np.uint16))
    image = image_files.load_image(grey16)
    assert image.shape == (12, 9, 3) and image.dtype == np.uint8
    with pytest.raises(files.ImageTooLarge, match=r"a.png is 50x30 = 1500 pixels, over the limit of 1000"):
        image_files.load_image(path, max_pixels=1000)


def test_atomic_writes_keep_the_previous_file_and_leave_no_temporary_file(tmp_path):
    from pconv_lib.util import files

    target = tmp_path / "out.bin"
    files.write_atomically(target, b"first")

    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=r"could not write .*out.bin: No space left on device; free disk space"):
        files.replace_atomically(target, fails)
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_sizes_and_scales_out_of_range_are_refused_before_allocation(imagenet_tree):
    from pconv_lib import photos

    with pytest.raises(ValueError, match="size must be at most 8192"):
        InpaintingDataset(imagenet_tree, 100_000)
    with pytest.raises(ValueError, match="photo_scale must be in"):
        SamplePhotoDataset(SIZE, names=["camera"], photo_scale=1e6)
    with pytest.raises(ValueError, match="resize_shorter must be in"):
        random_crop_flip(np.zeros((8, 8, 3), np.uint8), 4, np.random.default_rng(0), resize_shorter=10**7)
    with pytest.raises(ValueError, match="1..8192"):
        photos.sample_photo("camera", 10**6)
