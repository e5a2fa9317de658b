"""Sample photos ship with scikit-image: offline, RGB uint8."""

import numpy as np
import pytest

from pconv_lib.photos import sample_photo, sample_photo_names, sample_photos


def test_every_sample_photo_loads_as_rgb_uint8():
    for name, photo in sample_photos().items():
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3, name
        assert photo.min() < photo.max(), name


@pytest.mark.parametrize(
    "size, shape", [(64, (64, 64, 3)), ((48, 80), (48, 80, 3)), ((600, 50), (600, 50, 3))]
)
def test_resize_gives_exact_shape(size, shape):
    assert sample_photo("coffee", size).shape == shape


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="astronaut"):
        sample_photo("nope")


def test_names_are_stable():
    assert sample_photo_names()[:3] == ["astronaut", "coffee", "chelsea"]
