"""The one picture <-> tensor conversion (pconv_lib.images)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pconv_lib.images import image_to_tensor, mask_to_tensor, tensor_to_image


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))))
def test_a_picture_survives_the_round_trip(image):
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, *image.shape[:2]) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1
    np.testing.assert_array_equal(tensor_to_image(tensor), image)
    np.testing.assert_array_equal(tensor_to_image(tensor[0]), image)


def test_tensor_to_image_clamps_and_rounds():
    tensor = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.4 / 255, 1.6 / 255, 1.0, 2.0]).view(1, 1, 1, 7)
    picture = tensor_to_image(tensor.expand(1, 3, 1, 7))
    assert picture[0, :, 0].tolist() == [0, 0, 0, 1, 2, 255, 255]


def test_mask_to_tensor_keeps_the_values_and_adds_two_axes():
    mask = np.array([[1, 0], [0, 1]], np.uint8)
    tensor = mask_to_tensor(mask)
    assert tensor.shape == (1, 1, 2, 2) and tensor.dtype == torch.float32
    assert tensor[0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
