"""Sample photos that ship with installed packages (scikit-image), so the course runs offline.

Every photo is returned as NumPy ``uint8`` RGB, shape (H, W, 3), values in [0, 255]. Grey-scale
photos are repeated over the three channels.
"""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

from pconv_lib.util.errors import BadValue

#: Photos used by the course, in a fixed order: name -> (scikit-image loader name, description).
SAMPLE_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut", "Eileen Collins, NASA portrait, 512x512"),
    "coffee": ("coffee", "a cup of coffee on a table, 400x600"),
    "chelsea": ("chelsea", "Chelsea the cat, 300x451"),
    "rocket": ("rocket", "a rocket on its launch pad, 427x640"),
    "immunohistochemistry": ("immunohistochemistry", "stained tissue under a microscope, 512x512"),
    "hubble": ("hubble_deep_field", "the Hubble deep field, 872x1000"),
    "retina": ("retina", "a human retina, 1411x1411"),
    "brick": ("brick", "a brick wall texture (grey), 512x512"),
    "grass": ("grass", "a grass texture (grey), 512x512"),
    "gravel": ("gravel", "a gravel texture (grey), 512x512"),
    "camera": ("camera", "the cameraman (grey), 512x512"),
}


def sample_photo_names() -> list[str]:
    """Names accepted by :func:`sample_photo`, in a fixed order."""
    return list(SAMPLE_PHOTOS)


def sample_photo(name: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Load one sample photo by name, offline.

    Args:
        name: one of :func:`sample_photo_names`.
        size: ``None`` for the original size, an int for a centred square crop resized to
            ``size``×``size``, or ``(height, width)`` for a centred crop with that aspect ratio
            resized to exactly that size (area interpolation).

    Returns:
        ``uint8`` array (H, W, 3), RGB, values in [0, 255].
    """
    if name not in SAMPLE_PHOTOS:
        raise BadValue(
            f"unknown sample photo {name!r}; choose one of {', '.join(sample_photo_names())}"
        )
    image = getattr(skimage.data, SAMPLE_PHOTOS[name][0])()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)
    if size is None:
        return image
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1 or max(height, width) > 8192:
        raise BadValue(f"size must be in 1..8192 pixels a side, got {size!r}")
    return center_crop_resize(image, height, width)


def sample_photos(
    names: list[str] | None = None, size: int | tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Several sample photos as ``{name: uint8 (H, W, 3)}``; all of them when ``names`` is None."""
    return {name: sample_photo(name, size) for name in (names or sample_photo_names())}


def center_crop_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop ``image`` (H, W[, C]) to the aspect ratio height:width, then resize to it."""
    h, w = image.shape[:2]
    target_ratio = width / height
    if w / h > target_ratio:  # too wide: crop width
        new_w = max(1, round(h * target_ratio))
        left = (w - new_w) // 2
        image = image[:, left : left + new_w]
    else:
        new_h = max(1, round(w / target_ratio))
        top = (h - new_h) // 2
        image = image[top : top + new_h]
    shrinking = image.shape[0] >= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)
