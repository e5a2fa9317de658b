"""Tests for pconv_lib.losses: every term of the paper's loss, the Gram matrix, TV, VGG loading."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib import losses
from pconv_lib.losses import (
    VGG16_IMAGENET_FILENAME,
    LossWeights,
    PConvLoss,
    WeightsNotFoundError,
    composite,
    gram_matrix,
    hole_loss,
    perceptual_loss,
    style_loss,
    total_variation_loss,
    valid_loss,
    vgg16_feature_extractor,
    vgg16_weights_path,
)

SETTINGS = settings(max_examples=20, deadline=None)


def random_vgg(seed: int = 0) -> losses.VGG16Features:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return vgg16_feature_extractor(weights=None)


@pytest.fixture(scope="module")
def vgg() -> losses.VGG16Features:
    return random_vgg()


@pytest.fixture(scope="module")
def criterion(vgg) -> PConvLoss:
    return PConvLoss(vgg=vgg)


def make_batch(seed: int = 0, n: int = 2, size: int = 32, channels: int = 1):
    """(output, target, mask) with a random 0/1 mask that has holes and valid pixels."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, size, size, generator=gen)
    output = torch.rand(n, 3, size, size, generator=gen)
    mask = (torch.rand(n, channels, size, size, generator=gen) > 0.3).float()
    mask[:, :, 0, 0] = 0.0
    mask[:, :, -1, -1] = 1.0
    return output, target, mask


def block_mask(n: int = 1, size: int = 32, top: int = 4, left: int = 4, side: int = 6):
    """A (n, 1, size, size) mask, valid everywhere except one square hole."""
    mask = torch.ones(n, 1, size, size)
    mask[:, :, top : top + side, left : left + side] = 0.0
    return mask


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def test_loss_weights_default_to_the_paper_and_can_be_overridden():
    weights = LossWeights()
    assert weights.as_dict() == {
        "valid": 1.0,
        "hole": 6.0,
        "perceptual": 0.05,
        "style_out": 120.0,
        "style_comp": 120.0,
        "tv": 0.1,
    }
    assert dataclasses.replace(weights, hole=10.0).hole == 10.0
    assert LossWeights(tv=0.0).tv == 0.0


def test_presets_paper_and_pixel_only():
    assert LossWeights.paper() == LossWeights()
    assert LossWeights.paper().needs_vgg
    pixel = LossWeights.pixel_only()
    assert pixel.as_dict() == {
        "valid": 1.0, "hole": 6.0, "perceptual": 0.0, "style_out": 0.0, "style_comp": 0.0, "tv": 0.1
    }
    assert not pixel.needs_vgg
    assert LossWeights(perceptual=0.0, style_out=0.0, style_comp=1.0).needs_vgg


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "6"])
def test_bad_loss_weight_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="loss weight hole must be a finite number >= 0"):
        LossWeights(hole=bad)


def test_pixel_only_loss_builds_no_vgg_and_needs_no_weights_file(torch_home, monkeypatch):
    def no_vgg(*args, **kwargs):
        raise AssertionError("pixel_only must not build VGG16")

    monkeypatch.setattr(losses, "vgg16_feature_extractor", no_vgg)
    criterion = PConvLoss(LossWeights.pixel_only())  # "imagenet" default, file absent: no error
    assert criterion.vgg is None and not list(criterion.parameters())
    output, target, mask = make_batch(4, size=32)
    output.requires_grad_(True)
    terms = criterion(output, target, mask, image_in=target * mask)
    assert list(terms) == [*losses.LOSS_TERMS, "total"]
    for name in ("perceptual", "style_out", "style_comp"):
        assert terms[name].item() == 0.0
    expected = terms["valid"] + 6 * terms["hole"] + 0.1 * terms["tv"]
    torch.testing.assert_close(terms["total"], expected)
    terms["total"].backward()
    assert output.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Composite, hole and valid terms
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 10_000), channels=st.sampled_from([1, 3]))
def test_composite_takes_input_on_valid_pixels_and_output_in_holes(seed, channels):
    output, image_in, mask = make_batch(seed, size=8, channels=channels)
    comp = composite(output, image_in, mask)
    full = mask.expand_as(output).bool()
    assert torch.equal(comp[full], image_in[full])
    assert torch.equal(comp[~full], output[~full])


@SETTINGS
@given(seed=st.integers(0, 10_000), channels=st.sampled_from([1, 3]))
def test_hole_and_valid_split_the_l1_and_are_nonnegative(seed, channels):
    output, target, mask = make_batch(seed, size=8, channels=channels)
    hole, valid = hole_loss(output, target, mask), valid_loss(output, target, mask)
    assert hole >= 0 and valid >= 0
    torch.testing.assert_close(hole + valid, (output - target).abs().mean())


def test_hole_and_valid_terms_by_hand():
    target = torch.zeros(1, 3, 2, 2)
    output = torch.zeros(1, 3, 2, 2)
    output[0, :, 0, 0] = 1.0  # error 1 on a hole pixel (3 elements)
    output[0, :, 1, 1] = 0.5  # error 0.5 on a valid pixel
    mask = torch.ones(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 0.0
    assert hole_loss(output, target, mask).item() == pytest.approx(3 * 1.0 / 12)
    assert valid_loss(output, target, mask).item() == pytest.approx(3 * 0.5 / 12)


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_hole_term_sees_only_holes_and_valid_term_only_valid_pixels(seed):
    output, target, mask = make_batch(seed, size=8, channels=3)
    noise = torch.rand(output.shape, generator=torch.Generator().manual_seed(seed + 1))
    in_holes = output + noise * (1 - mask)
    in_valid = output + noise * mask
    assert valid_loss(in_holes, target, mask) == valid_loss(output, target, mask)
    assert hole_loss(in_valid, target, mask) == hole_loss(output, target, mask)
    assert hole_loss(in_holes, target, mask) != hole_loss(output, target, mask)
    assert valid_loss(in_valid, target, mask) != valid_loss(output, target, mask)


def test_bad_mask_shape_is_a_clear_error():
    """The loss checks its inputs once, at its entry (the term functions are unchecked math)."""
    output, target, _ = make_batch(size=8)
    loss = PConvLoss(LossWeights.pixel_only())
    with pytest.raises(ValueError, match="mask must be"):
        loss(output, target, torch.ones(2, 2, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        loss(output, target[:, :, :4], torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        loss(output, target, torch.ones(2, 1, 8, 8), image_in=target[:, :, :4])
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        loss(output, target, np.ones((2, 1, 8, 8)))


# ---------------------------------------------------------------------------------------------
# Gram matrix, style and perceptual terms
# ---------------------------------------------------------------------------------------------


def test_gram_matrix_of_a_known_small_matrix():
    # C = 2 channels, H = 1, W = 2: F = [[1, 2], [3, 4]], F Fᵀ = [[5, 11], [11, 25]], / (2·1·2)
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram_matrix(features), expected)
    torch.testing.assert_close(gram_matrix(features[0]), expected[0])  # unbatched (C, H, W)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3),
    c=st.integers(1, 6),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
)
def test_gram_matrix_is_symmetric_positive_semidefinite(seed, n, c, h, w):
    features = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    gram = gram_matrix(features)
    assert gram.shape == (n, c, c) and gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    eigenvalues = torch.linalg.eigvalsh(gram.double())
    assert eigenvalues.min() >= -1e-5 * max(1.0, eigenvalues.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gram_matrix_is_float32_and_does_not_overflow(dtype):
    # Σ over 64·64 positions of 100·100 = 4.1e7 overflows float16 (max 65504).
    features = torch.full((1, 2, 64, 64), 100.0, dtype=dtype)
    with torch.autocast("cpu", dtype=dtype):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, torch.full((1, 2, 2), 100.0 * 100.0 / 2))


def test_style_and_perceptual_by_hand():
    a = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)]
    b = [torch.zeros(1, 2, 1, 2)]
    # Gram(a) = [[5, 11], [11, 25]] / 4, Gram(b) = 0: mean |.| = 52 / 4 / 4
    assert style_loss(a, b).item() == pytest.approx(52 / 16)
    # perceptual: mean|a − b| (out) + mean|b − b| (comp) = 2.5
    assert perceptual_loss(a, b, b).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="equal length"):
        style_loss(a, a + a)


# ---------------------------------------------------------------------------------------------
# Total variation
# ---------------------------------------------------------------------------------------------


def test_tv_by_hand_on_a_ramp():
    comp = torch.arange(4.0).repeat(4, 1).reshape(1, 1, 4, 4)  # comp[i, j] = j
    mask = torch.ones(1, 1, 4, 4)
    mask[0, 0, 1, 1] = 0.0  # one hole pixel: P = rows 0-2 × cols 0-2
    # horizontal pairs with both pixels in P: 3 rows × 2 pairs × |1|; vertical: all 0
    assert total_variation_loss(comp, mask).item() == pytest.approx(6 / 16)


def test_tv_is_zero_without_holes_and_for_a_constant_image():
    comp = torch.rand(2, 3, 16, 16)
    assert total_variation_loss(comp, torch.ones(2, 1, 16, 16)).item() == 0.0
    assert total_variation_loss(torch.full((2, 3, 16, 16), 0.3), block_mask(2, 16)).item() == 0


@SETTINGS
@given(seed=st.integers(0, 10_000), channels=st.sampled_from([1, 3]))
def test_tv_ignores_pixels_outside_the_dilated_holes(seed, channels):
    gen = torch.Generator().manual_seed(seed)
    comp = torch.rand(1, 3, 24, 24, generator=gen)
    mask = torch.ones(1, channels, 24, 24)
    top, left = (int(v) for v in torch.randint(1, 10, (2,), generator=gen))
    mask[:, :, top : top + 4, left : left + 4] = 0.0
    region = losses.dilated_hole_region(mask).expand_as(comp).bool()
    changed = comp.clone()
    changed[~region] = torch.rand(int((~region).sum()), generator=gen)
    before = total_variation_loss(comp, mask)
    assert before > 0
    assert total_variation_loss(changed, mask) == before
    inside = comp.clone()
    inside[region] = 1 - inside[region]
    inside[:, :, top + 1, left + 1] += 0.5  # break any accidental symmetry
    assert total_variation_loss(inside, mask) != before


# ---------------------------------------------------------------------------------------------
# The whole loss
# ---------------------------------------------------------------------------------------------


def test_every_term_is_zero_when_output_equals_target(criterion):
    _, target, mask = make_batch(3, size=32)
    terms = criterion(target.clone(), target, mask)
    for name in ("valid", "hole", "perceptual", "style_out", "style_comp"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6), name
    # TV does not compare with the target: it is zero for a flat image.
    flat = torch.full_like(target, 0.5)
    assert criterion(flat, flat, mask)["tv"].item() == 0.0


def test_total_is_the_weighted_sum_of_the_terms(vgg):
    output, target, mask = make_batch(5, size=32, channels=3)
    weights = LossWeights(valid=2.0, hole=3.0, perceptual=0.5, style_out=7.0, style_comp=11.0)
    terms = PConvLoss(weights, vgg=vgg)(output, target, mask, image_in=target * mask)
    assert set(terms) == set(losses.LOSS_TERMS) | {"total"}
    expected = sum(getattr(weights, name) * terms[name] for name in losses.LOSS_TERMS)
    torch.testing.assert_close(terms["total"], expected)
    for name in losses.LOSS_TERMS:
        assert terms[name].ndim == 0 and terms[name].dtype == torch.float32
        assert terms[name].item() > 0, name


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_all_terms_are_nonnegative(criterion, seed):
    output, target, mask = make_batch(seed, n=1, size=32)
    terms = criterion(output, target, mask)
    assert all(value.item() >= 0 for value in terms.values())


def test_gradient_reaches_the_output_but_not_vgg(criterion):
    output, target, mask = make_batch(7, size=32)
    output.requires_grad_(True)
    criterion.train()
    criterion(output, target, mask)["total"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert not criterion.vgg.training
    assert all(p.grad is None for p in criterion.vgg.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_on_cpu_stays_finite(criterion, dtype):
    output, target, mask = make_batch(11, n=1, size=32)
    output.requires_grad_(True)
    reference = criterion(output, target, mask)
    with torch.autocast("cpu", dtype=dtype):
        terms = criterion(output, target, mask)
    for name, value in terms.items():
        assert torch.isfinite(value), name
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, reference[name], rtol=0.1, atol=1e-3)
    terms["total"].backward()
    assert torch.isfinite(output.grad).all()


# ---------------------------------------------------------------------------------------------
# VGG16 feature extractor and its weights
# ---------------------------------------------------------------------------------------------


def test_vgg_is_frozen_in_eval_mode_and_returns_three_pools(vgg):
    assert all(not p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    vgg.train()
    assert not vgg.training
    features = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]
    with pytest.raises(ValueError, match="RGB"):
        vgg(torch.rand(1, 1, 32, 32))


def test_normalisation_is_inside_the_module(vgg):
    mean = torch.tensor(losses.IMAGENET_MEAN).view(1, 3, 1, 1)
    grey = mean.expand(1, 3, 8, 8).clone()
    first_conv = vgg.features[0]
    # the normalised ImageNet-mean image is all zeros: conv1_1 outputs just its bias
    x = vgg.features[1](first_conv((grey - vgg.mean) / vgg.std))
    torch.testing.assert_close(x, torch.relu(first_conv.bias).view(1, -1, 1, 1).expand_as(x))


def test_weights_none_warns_that_perceptual_and_style_are_meaningless():
    with pytest.warns(UserWarning, match="meaningless"):
        vgg16_feature_extractor(weights=None)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; torch.hub.get_dir() follows it (restored after the test)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path / "torch"


def test_missing_weights_raise_a_clear_error(torch_home):
    expected = torch_home / "hub" / "checkpoints" / VGG16_IMAGENET_FILENAME
    assert vgg16_weights_path() == expected
    with pytest.raises(WeightsNotFoundError) as info:
        vgg16_feature_extractor("imagenet")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert VGG16_IMAGENET_FILENAME in message and str(expected) in message
    assert "IMAGENET1K_V1" in message and losses.VGG16_IMAGENET_URL in message
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        vgg16_feature_extractor(torch_home / "nowhere.pth")


def test_url_and_filename_match_torchvision():
    from torchvision.models import VGG16_Weights

    url = VGG16_Weights.IMAGENET1K_V1.url
    assert url == losses.VGG16_IMAGENET_URL
    assert url.rsplit("/", 1)[1] == VGG16_IMAGENET_FILENAME


def test_full_vgg16_state_dict_loads_from_the_torch_hub_cache(tmp_path, monkeypatch):
    import torchvision

    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    torch.hub.set_dir(str(hub))  # undone by monkeypatch
    torch.manual_seed(1)
    reference = torchvision.models.vgg16(weights=None).state_dict()
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(reference, hub / "checkpoints" / VGG16_IMAGENET_FILENAME)
    del reference["classifier.0.weight"]  # free memory; the extractor never reads it

    model = vgg16_feature_extractor("imagenet")
    loaded = model.features.state_dict()
    assert len(loaded) == 14  # 7 convolutions up to pool3
    for key, value in loaded.items():
        assert torch.equal(value, reference[f"features.{key}"]), key
    assert all(not p.requires_grad for p in model.parameters()) and not model.training


def test_features_only_state_dict_file_loads_by_path(tmp_path):
    source = random_vgg(seed=2)
    path = tmp_path / "vgg16_features.pth"
    torch.save(source.features.state_dict(), path)  # keys "0.weight", ...
    model = vgg16_feature_extractor(str(path))
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, source.features.state_dict()[key]), key
    x = torch.rand(1, 3, 16, 16)
    for a, b in zip(model(x), source(x), strict=True):
        torch.testing.assert_close(a, b)


def test_a_file_that_is_not_vgg_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"linear.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="VGG16"):
        vgg16_feature_extractor(path)
    with pytest.raises(TypeError, match="weights must be"):
        vgg16_feature_extractor(123)  # type: ignore[arg-type]


def test_loss_repr_shows_its_weights_and_vgg_moves_with_it(criterion):
    assert "hole=6" in repr(criterion)
    assert np.isclose(criterion.weights.style_out, 120.0)
    assert any(name.startswith("vgg.") for name, _ in criterion.named_parameters())
