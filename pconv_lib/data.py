"""Step 4: training data - photos cropped to the training size, each with a random hole mask.

Every item is a dict (the default ``DataLoader`` collate stacks them)::

    {"image":  float32 (3, H, W) in [0, 1]   the ground truth I_gt, RGB
     "mask":   float32 (1, H, W), 0.0 / 1.0  1 = valid pixel, 0 = hole (the paper's convention)
     "masked": float32 (3, H, W) in [0, 1]   I_in = image * mask (holes are black)
     "index":  int, "path": str}             the item asked for, the photo actually used

Item ``i`` is a function of ``(seed, epoch, i)`` (call :meth:`set_epoch` each epoch). Unreadable,
corrupt or oversized photos are skipped with a warning
(:func:`pconv_lib.util.image_files.load_image` reads the header first).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pconv_lib.images import image_to_tensor, mask_to_tensor
from pconv_lib.masks import MaskFolder, random_irregular_mask
from pconv_lib.photos import sample_photo, sample_photo_names
from pconv_lib.util.errors import BadValue, ImageRejected, UnreadableImagesError
from pconv_lib.util.image_files import find_images, load_image, read_image

#: A mask generator: ``fn(rng, height, width) -> uint8 (H, W)``, 1 = valid, 0 = hole.
MaskFn = Callable[[np.random.Generator, int, int], np.ndarray]

SizeLike = int | tuple[int, int]


#: The largest crop side (the command line's --image-size shares it).
MAX_SIZE = 8192


def _as_size(size: SizeLike) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise BadValue(f"size must be a positive int or (height, width), got {size!r}")
    if max(height, width) > MAX_SIZE:
        raise BadValue(f"size must be at most {MAX_SIZE} a side (valid: 1..{MAX_SIZE}), got {size!r}")
    return int(height), int(width)


def random_crop_flip(
    image: np.ndarray,
    size: SizeLike,
    rng: np.random.Generator,
    *,
    flip: bool = True,
    small: str = "resize",
    resize_shorter: int | None = None,
) -> np.ndarray:
    """Random crop of ``size`` from ``image`` (H, W, 3) ``uint8``, then a random horizontal flip.

    Args:
        size: ``int`` or ``(height, width)`` of the crop.
        rng: the generator that draws the crop offset and the flip.
        flip: flip left-right with probability 0.5.
        small: what happens to an image smaller than ``size`` in either dimension:
            ``"resize"`` (default) scales it up, keeping its aspect ratio, just enough for the
            crop to fit (bicubic); ``"reflect"`` pads it by mirroring its border
            (``cv2.BORDER_REFLECT_101``), which keeps the pixel scale but repeats content.
        resize_shorter: if given, first resize the image (aspect ratio kept, area/bicubic) so
            that its shorter side is this many pixels, e.g. 256 before 224 crops.

    Returns:
        ``uint8`` (height, width, 3), contiguous.
    """
    height, width = _as_size(size)
    if small not in ("resize", "reflect"):
        raise BadValue(f"small must be 'resize' or 'reflect', got {small!r}")
    if resize_shorter is not None:
        if not 1 <= resize_shorter <= MAX_SIZE:
            raise BadValue(f"resize_shorter must be in 1..{MAX_SIZE}, got {resize_shorter!r}")
        scale = resize_shorter / min(image.shape[:2])
        image = _rescale(image, scale)
    h, w = image.shape[:2]
    if h < height or w < width:
        if small == "resize":
            image = _rescale(image, max(height / h, width / w))
        else:
            pad_h, pad_w = max(0, height - h), max(0, width - w)
            image = _reflect_pad(image, pad_h, pad_w)
        h, w = image.shape[:2]
    top = int(rng.integers(0, h - height + 1))
    left = int(rng.integers(0, w - width + 1))
    crop = image[top : top + height, left : left + width]
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _rescale(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    # ceil so that a scale-up never falls one pixel short of the crop size
    new_h, new_w = max(1, int(np.ceil(h * scale - 1e-6))), max(1, int(np.ceil(w * scale - 1e-6)))
    if (new_h, new_w) == (h, w):
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def _reflect_pad(image: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    # BORDER_REFLECT_101 needs pad < size; repeat until large enough (tiny images).
    while pad_h > 0 or pad_w > 0:
        step_h = min(pad_h, image.shape[0] - 1)
        step_w = min(pad_w, image.shape[1] - 1)
        if step_h == 0 and step_w == 0:  # a 1-pixel image: replicate
            return cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        top, left = step_h // 2, step_w // 2
        image = cv2.copyMakeBorder(
            image, top, step_h - top, left, step_w - left, cv2.BORDER_REFLECT_101
        )
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return image


def _to_item(image: np.ndarray, mask: np.ndarray, index: int, path: str) -> dict:
    image_t = image_to_tensor(image)[0]
    mask_t = mask_to_tensor(mask)[0]
    return {
        "image": image_t,
        "mask": mask_t,
        "masked": image_t * mask_t,
        "index": index,
        "path": path,
    }


class _CropMaskDataset(Dataset):
    """Shared logic: seeded per-item generator, crop + flip, mask (generated or from a folder)."""

    def __init__(
        self,
        size: SizeLike,
        *,
        masks: str | os.PathLike | MaskFolder | None,
        holes_are: str,
        mask_fn: MaskFn | None,
        seed: int,
        flip: bool,
        small: str,
        resize_shorter: int | None,
    ) -> None:
        self.size = _as_size(size)
        if masks is not None and mask_fn is not None:
            raise BadValue("give either masks (a mask folder) or mask_fn, not both")
        if masks is not None and not isinstance(masks, MaskFolder):
            masks = MaskFolder(masks, holes_are=holes_are)
        self.mask_folder: MaskFolder | None = masks
        self.mask_fn = mask_fn
        self.seed = int(seed)
        self.epoch = 0
        self.flip = flip
        if small not in ("resize", "reflect"):
            raise BadValue(f"small must be 'resize' or 'reflect', got {small!r}")
        self.small = small
        self.resize_shorter = resize_shorter

    def set_epoch(self, epoch: int) -> None:
        """Use the crops and masks of ``epoch`` (call before iterating a DataLoader)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch: seeded by (seed, epoch, index)."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def make_mask(self, rng: np.random.Generator) -> np.ndarray:
        """One (H, W) ``uint8`` mask, 1 = valid, for the training size."""
        height, width = self.size
        if self.mask_folder is not None:
            mask = self.mask_folder.sample(rng, height, width)
        elif self.mask_fn is not None:
            mask = np.asarray(self.mask_fn(rng, height, width))
        else:
            mask = random_irregular_mask(height, width, rng)
        if mask.shape != (height, width):
            raise BadValue(f"mask generator returned shape {mask.shape}, expected {self.size}")
        return mask

    def _build(self, image: np.ndarray, rng: np.random.Generator, index: int, path: str) -> dict:
        crop = random_crop_flip(
            image,
            self.size,
            rng,
            flip=self.flip,
            small=self.small,
            resize_shorter=self.resize_shorter,
        )
        return _to_item(crop, self.make_mask(rng), index, path)


class InpaintingDataset(_CropMaskDataset):
    """Photos from a folder tree, randomly cropped and flipped, each with a random hole mask.

    Works with ImageNet's ``train/`` (class sub-folders) and ``val/`` (flat) layouts, Places2,
    Imagenette, or any tree of photos: files are found recursively by extension
    (:data:`IMAGE_EXTENSIONS`, case-insensitive) and sorted for determinism. Class labels are
    ignored.

    Args:
        root: the folder.
        size: training size, ``int`` or ``(height, width)``.
        masks: optional folder of binary mask images (or a :class:`~pconv_lib.masks.MaskFolder`);
            by default masks are drawn on the fly with
            :func:`~pconv_lib.masks.random_irregular_mask`.
        holes_are: for ``masks`` given as a path: ``"black"`` or ``"white"`` holes in the files.
        mask_fn: a custom generator ``fn(rng, height, width) -> (H, W)`` 1 = valid (e.g. masks
            in one hole-ratio bucket); not together with ``masks``.
        seed: base seed; item ``i`` of epoch ``e`` uses ``default_rng([seed, e, i])``.
        flip: random horizontal flip (on by default; switch off for validation).
        small: images smaller than ``size`` are scaled up (``"resize"``, default) or
            mirror-padded (``"reflect"``); see :func:`random_crop_flip`.
        resize_shorter: resize every photo so its shorter side has this length before cropping
            (None: crop at the photo's own resolution).
        max_retries: how many other photos to try when one cannot be read.
        max_pixels: photos with more pixels are skipped before decoding (default:
            ``$PCONV_MAX_PIXELS`` or 100 megapixels, see :func:`pconv_lib.util.files.max_pixels`).

    An unreadable, corrupt or oversized file (more pixels than ``max_pixels``, or more than the
    available memory can decode) is skipped with a ``UserWarning`` naming it and the reason, and
    another photo (chosen by the item's generator) is used instead; after ``max_retries``
    failures in a row a ``RuntimeError`` is raised. Items: see the module docstring.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: SizeLike = 256,
        *,
        masks: str | os.PathLike | MaskFolder | None = None,
        holes_are: str = "black",
        mask_fn: MaskFn | None = None,
        seed: int = 0,
        flip: bool = True,
        small: str = "resize",
        resize_shorter: int | None = None,
        max_retries: int = 10,
        max_pixels: int | None = None,
    ) -> None:
        super().__init__(
            size,
            masks=masks,
            holes_are=holes_are,
            mask_fn=mask_fn,
            seed=seed,
            flip=flip,
            small=small,
            resize_shorter=resize_shorter,
        )
        self.root = Path(root)
        self.files = find_images(self.root)
        self.max_retries = int(max_retries)
        self.max_pixels = max_pixels
        self._bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = int(index) % len(self)
        rng = self.rng_for(index)
        candidate = index
        for _ in range(self.max_retries + 1):
            path = self.files[candidate]
            if path not in self._bad:
                try:
                    image = load_image(path, max_pixels=self.max_pixels)
                except (OSError, ValueError) as error:  # corrupt, vanished or too large
                    self._bad.add(path)
                    reason = str(error) if isinstance(error, ImageRejected) else f"{path}: {error}"
                    warnings.warn(f"skipping {reason}; using another photo", UserWarning, stacklevel=2)
                else:
                    return self._build(image, rng, index, str(path))
            candidate = int(rng.integers(len(self)))
        raise UnreadableImagesError(
            f"could not read any image after {self.max_retries + 1} tries starting at "
            f"{self.files[index]} (each was skipped as corrupt or not an image, or too large); "
            f"are the files in {self.root} valid images?"
        )


class SamplePhotoDataset(_CropMaskDataset):
    """The scikit-image sample photos (:mod:`pconv_lib.photos`) as a tiny offline dataset.

    Item ``i`` is a random crop (and flip) of photo ``names[i % len(names)]`` with a random
    mask; ``repeats`` sets how many items per photo. Useful for CPU runs, notebooks and tests.

    Args:
        size: crop size, ``int`` or ``(height, width)``.
        names: photo names (default: all of :func:`~pconv_lib.photos.sample_photo_names`).
        repeats: items per photo (``len = repeats * len(names)``).
        photo_scale: rescale the photos by this factor once, when loading (e.g. 0.25 so that
            a 64-pixel crop shows a whole object rather than a patch of texture).
        Other arguments: as for :class:`InpaintingDataset`.
    """

    def __init__(
        self,
        size: SizeLike = 64,
        *,
        names: Sequence[str] | None = None,
        repeats: int = 1,
        photo_scale: float = 1.0,
        masks: str | os.PathLike | MaskFolder | None = None,
        holes_are: str = "black",
        mask_fn: MaskFn | None = None,
        seed: int = 0,
        flip: bool = True,
        small: str = "resize",
    ) -> None:
        super().__init__(
            size,
            masks=masks,
            holes_are=holes_are,
            mask_fn=mask_fn,
            seed=seed,
            flip=flip,
            small=small,
            resize_shorter=None,
        )
        if repeats < 1:
            raise BadValue(f"repeats must be >= 1, got {repeats}")
        if not 0 < photo_scale <= 8:
            raise BadValue(f"photo_scale must be in (0, 8] (1 = the photos' own size), got {photo_scale}")
        self.names = list(names) if names is not None else sample_photo_names()
        if not self.names:
            raise BadValue("names is empty; give at least one sample photo name")
        self.repeats = int(repeats)
        self.photos = [_rescale(sample_photo(name), photo_scale) for name in self.names]

    def __len__(self) -> int:
        return self.repeats * len(self.names)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = int(index) % len(self)
        photo = index % len(self.names)
        return self._build(self.photos[photo], self.rng_for(index), index, self.names[photo])


def sample_photo_dataset(size: SizeLike = 64, **kwargs) -> SamplePhotoDataset:
    """``SamplePhotoDataset(size, **kwargs)``: the sample photos as a tiny default dataset."""
    return SamplePhotoDataset(size, **kwargs)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader: seed Python/NumPy from torch's per-worker seed.

    Items do not need it (they use their own seeded generator), but user transforms that call
    ``random`` or ``np.random`` then differ between workers and repeat between runs.
    (It deliberately does not call ``cv2.setNumThreads``: reconfiguring OpenCV's thread pool
    in a forked worker can deadlock on the pool state copied from the parent.)
    """
    del worker_id
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_dataloader(
    dataset: Dataset,
    batch_size: int = 4,
    *,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = True,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` with a seeded shuffle order and seeded workers.

    The shuffle order comes from a ``torch.Generator`` seeded with ``seed`` (the n-th iteration
    of the loader gives the same order in every run). With a dataset from this module, call
    ``dataset.set_epoch(epoch)`` before each epoch for new crops and masks
    (``persistent_workers`` is off so that workers see the new epoch).
    ``drop_last`` defaults to True: BatchNorm dislikes a last batch of one.
    """
    if batch_size < 1:
        raise BadValue(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
    )


def mean_pixel(root: str | os.PathLike) -> list[float]:
    """The mean RGB colour of the photos under ``root``, each photo weighted equally.

    Returns three floats in [0, 1]: the "mean pixel" that the paper's ordinary-convolution
    ablation fills holes with (``PConvUNet(layer="ordinary", hole_fill=mean_pixel(folder))``).
    Unreadable files are skipped; a folder with no readable photo raises ``ValueError``.
    """
    sums, count = np.zeros(3), 0
    for path in find_images(root):
        image = read_image(path)
        if image is not None:
            sums += image.reshape(-1, 3).mean(0) / 255.0
            count += 1
    if count == 0:
        raise BadValue(f"{root}: no readable photo to take the mean pixel of")
    return [round(float(v), 4) for v in sums / count]
