"""Step 3: the PConv UNet (pconv_lib.model)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pconv_lib.model import (
    PConvUNet,
    architecture,
    count_parameters,
    expected_parameter_count,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rectangles_mask(n: int, h: int, w: int, target: float, seed: int = 0) -> torch.Tensor:
    """(N, 1, H, W) float mask, 1 = valid, with random rectangular holes until ``target``
    of the pixels are holes."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, 1, h, w)
    for i in range(n):
        while (mask[i] == 0).float().mean() < target:
            rh = int(torch.randint(h // 16, h // 3, (1,), generator=gen))
            rw = int(torch.randint(w // 16, w // 3, (1,), generator=gen))
            y = int(torch.randint(0, h - rh, (1,), generator=gen))
            x = int(torch.randint(0, w - rw, (1,), generator=gen))
            mask[i, :, y : y + rh, x : x + rw] = 0
    return mask


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    "n,h,w,depth,width,mask_channels",
    [
        (2, 64, 64, 4, 0.125, 1),
        (1, 128, 128, 7, 0.0625, 3),
        (2, 32, 64, 3, 0.25, 1),
        (1, 64, 96, 5, 0.1, 3),
    ],
)
def test_output_shapes(n, h, w, depth, width, mask_channels):
    # eval mode: with batch 1 the deepest level of 128x128 at depth 7 is 1x1, too little for
    # BatchNorm batch statistics
    model = PConvUNet(depth=depth, width=width).eval()
    image = torch.rand(n, 3, h, w)
    mask = rectangles_mask(n, h, w, 0.2).expand(n, mask_channels, h, w).contiguous()
    with torch.no_grad():
        out, out_mask = model(image, mask)
    assert out.shape == (n, 3, h, w) and out.dtype == torch.float32
    assert out_mask.shape == (n, 1, h, w)
    assert bool(torch.isfinite(out).all())
    assert bool(((out_mask == 0) | (out_mask == 1)).all())


def test_in_out_channels():
    model = PConvUNet(depth=3, width=0.125, in_channels=1, out_channels=2)
    out, out_mask = model(torch.rand(1, 1, 16, 16), torch.ones(1, 1, 16, 16))
    assert out.shape == (1, 2, 16, 16) and out_mask.shape == (1, 1, 16, 16)


def test_architecture_follows_the_table():
    specs = architecture(depth=8)
    assert [s.kernel_size for s in specs[:8]] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert [s.out_channels for s in specs[:8]] == [64, 128, 256] + [512] * 5
    assert all(s.stride == 2 for s in specs[:8]) and all(s.stride == 1 for s in specs[8:])
    assert [s.out_channels for s in specs[8:]] == [512, 512, 512, 512, 256, 128, 64, 3]
    assert [s.batch_norm for s in specs] == [False] + [True] * 14 + [False]
    assert [s.activation for s in specs] == ["relu"] * 8 + ["leaky_relu"] * 7 + ["none"]
    assert specs[-1].in_channels == 64 + 3  # concat with the input image


# --------------------------------------------------------------------------- parameters
def hand_count_512() -> int:
    """Parameters of the paper's 512x512 model, straight from the table (no library code).

    Weights C_in*C_out*k*k; a bias where there is no BN (PConv1 and PConv16); BN gamma+beta.
    """
    enc = [
        3 * 64 * 7 * 7 + 64,  # PConv1, bias, no BN
        64 * 128 * 5 * 5 + 2 * 128,  # PConv2
        128 * 256 * 5 * 5 + 2 * 256,  # PConv3
        256 * 512 * 3 * 3 + 2 * 512,  # PConv4
    ] + [512 * 512 * 3 * 3 + 2 * 512] * 4  # PConv5-8
    dec = [(512 + 512) * 512 * 3 * 3 + 2 * 512] * 4 + [  # PConv9-12
        (512 + 256) * 256 * 3 * 3 + 2 * 256,  # PConv13
        (256 + 128) * 128 * 3 * 3 + 2 * 128,  # PConv14
        (128 + 64) * 64 * 3 * 3 + 2 * 64,  # PConv15
        (64 + 3) * 3 * 3 * 3 + 3,  # PConv16, bias, no BN
    ]
    return sum(enc) + sum(dec)


def test_parameter_count_of_the_512_model():
    model = PConvUNet(depth=8, width=1.0)
    n = count_parameters(model)
    print(f"PConvUNet(depth=8, width=1.0): {n:,} parameters")
    assert n == hand_count_512() == 32_859_796
    assert n == expected_parameter_count(8, 1.0)
    assert count_parameters(model, trainable_only=True) == n


@pytest.mark.parametrize("depth,width", [(3, 0.125), (5, 0.3), (7, 0.0625), (7, 0.5)])
def test_parameter_count_matches_table_arithmetic(depth, width):
    model = PConvUNet(depth=depth, width=width)
    assert count_parameters(model) == expected_parameter_count(depth, width)


# --------------------------------------------------------------------------- holes
def test_output_mask_all_valid_for_the_largest_hole_bucket():
    mask = rectangles_mask(1, 256, 256, 0.55, seed=3)
    hole = float((mask == 0).float().mean())
    assert 0.5 < hole <= 0.6  # the paper's largest bucket (0.5, 0.6]
    model = PConvUNet(depth=7, width=0.0625).eval()
    with torch.no_grad():
        out, out_mask = model(torch.rand(1, 3, 256, 256), mask)
    assert bool((out_mask == 1).all())
    assert bool(torch.isfinite(out).all())


def test_hole_pixels_do_not_influence_the_output():
    """Partial convolutions multiply holes by 0: whatever the image holds there is ignored."""
    model = PConvUNet(depth=4, width=0.125).train()
    mask = rectangles_mask(2, 64, 64, 0.3, seed=1)
    a = torch.rand(2, 3, 64, 64)
    b = torch.where(mask.bool(), a, torch.rand(2, 3, 64, 64) * 100)
    out_a, mask_a = model(a, mask)
    out_b, mask_b = model(b, mask)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-5)
    assert torch.equal(mask_a, mask_b)


def test_all_hole_input():
    model = PConvUNet(depth=3, width=0.125).eval()
    out, out_mask = model(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))
    assert bool((out == 0).all()) and bool((out_mask == 0).all())


# --------------------------------------------------------------------------- BN freezing
def _bn_state(bns):
    return [
        {k: v.detach().clone() for k, v in bn.state_dict().items()} for bn in bns
    ]


def test_frozen_encoder_bn_stays_frozen_after_an_optimizer_step():
    model = PConvUNet(depth=4, width=0.125, freeze_encoder_bn=True)
    assert model.encoder_bn_frozen
    assert model.train() is model
    enc_bns = [m.bn for m in model.encoder if m.bn is not None]
    dec_bns = [m.bn for m in model.decoder if m.bn is not None]
    assert enc_bns and dec_bns
    assert all(not bn.training for bn in enc_bns) and all(bn.training for bn in dec_bns)
    assert all(not p.requires_grad for bn in enc_bns for p in bn.parameters())
    assert all(p.requires_grad for bn in dec_bns for p in bn.parameters())
    # pretend the BN layers were trained before: non-trivial statistics and affine parameters
    with torch.no_grad():
        for bn in enc_bns + dec_bns:
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.1, 0.1)
    enc_before, dec_before = _bn_state(enc_bns), _bn_state(dec_bns)
    conv_before = model.encoder[1].conv.weight.detach().clone()

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # frozen parameters just get no grad
    image = torch.rand(2, 3, 64, 64)
    mask = rectangles_mask(2, 64, 64, 0.2)
    for _ in range(2):
        opt.zero_grad()
        out, _ = model(image, mask)
        out.square().mean().backward()
        opt.step()

    for before, bn in zip(enc_before, enc_bns, strict=True):
        for k, v in bn.state_dict().items():
            assert torch.equal(v, before[k]), f"encoder BN {k} changed"
    changed = [
        not torch.equal(bn.running_mean, before["running_mean"])
        and not torch.equal(bn.weight, before["weight"])
        for before, bn in zip(dec_before, dec_bns, strict=True)
    ]
    assert all(changed), "decoder BN should still train"
    assert not torch.equal(model.encoder[1].conv.weight, conv_before), "encoder convs train"

    # unfreezing gives the encoder BN layers back to training
    assert model.freeze_encoder_bn(False) is model
    assert all(bn.training for bn in enc_bns)
    assert all(p.requires_grad for bn in enc_bns for p in bn.parameters())
    assert model.eval() is model and all(not bn.training for bn in enc_bns + dec_bns)


def test_freeze_later_and_train_eval_return_the_model():
    model = PConvUNet(depth=3, width=0.125)
    assert model.train() is model and model.eval() is model
    assert model.train().freeze_encoder_bn() is model
    enc_bns = [m.bn for m in model.encoder if m.bn is not None]
    assert all(not bn.training for bn in enc_bns)
    model.train()
    assert model.training and all(not bn.training for bn in enc_bns)
    assert count_parameters(model, trainable_only=True) < count_parameters(model)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "h,w,match",
    [
        (300, 256, r"height 300 is not a multiple of 2\*\*7 = 128; use 256 or 384.*tiling"),
        (256, 200, r"width 200 is not a multiple of 2\*\*7 = 128; use 128 or 256"),
        (64, 256, r"height 64 is not a multiple of 2\*\*7 = 128; use 128"),
    ],
)
def test_size_not_a_multiple_of_2_to_the_depth(h, w, match):
    model = PConvUNet(depth=7, width=0.0625)
    with pytest.raises(ValueError, match=match):
        model(torch.rand(1, 3, h, w), torch.ones(1, 1, h, w))


def test_bad_inputs():
    model = PConvUNet(depth=3, width=0.125)
    image = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="mask shape"):
        model(image, torch.ones(2, 2, 16, 16))
    with pytest.raises(ValueError, match="mask shape"):
        model(image, torch.ones(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"image must be \(N, 3, H, W\)"):
        model(torch.rand(3, 16, 16), torch.ones(1, 16, 16))
    with pytest.raises(TypeError, match="image.float"):
        model((image * 255).to(torch.uint8), torch.ones(2, 1, 16, 16))
    with pytest.raises(ValueError, match="divide by 255"):
        model(image, torch.ones(2, 1, 16, 16) * 255)
    with pytest.raises(TypeError, match="floating"):
        model(image, torch.ones(2, 1, 16, 16, dtype=torch.bool))
    unchecked = PConvUNet(depth=3, width=0.125, check_mask=False)
    unchecked(image, torch.ones(2, 1, 16, 16) * 0.5)  # value check switched off


@pytest.mark.parametrize("depth,width", [(2, 1.0), (11, 1.0), (7, 0.0), (7, -1.0)])
def test_bad_depth_or_width(depth, width):
    with pytest.raises(ValueError, match="depth|width"):
        PConvUNet(depth=depth, width=width)


def _decoder_with_materialised_masks(model, image, mask):
    """The decoder as the paper writes it: concatenate features and full per-channel masks."""
    feats, masks = model.encode(image, mask)
    h, m = feats[-1], masks[-1]
    for j, block in enumerate(model.decoder):
        skip, skip_mask = feats[model.depth - 1 - j], masks[model.depth - 1 - j]
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        m = F.interpolate(m, scale_factor=2.0, mode="nearest")
        m_cat = torch.cat(
            (m.expand(-1, h.shape[1], -1, -1), skip_mask.expand(-1, skip.shape[1], -1, -1)), dim=1
        )
        h, m = block(torch.cat((h, skip), dim=1), m_cat)
    return h, m


@pytest.mark.parametrize("mask_channels", [1, 3])
def test_decoder_shortcut_equals_the_materialised_per_channel_mask(mask_channels):
    torch.manual_seed(3)
    model = PConvUNet(depth=4, width=0.25).eval()
    image = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, mask_channels, 64, 64) > 0.4).float()
    out, out_mask = model(image, mask)
    ref, ref_mask = _decoder_with_materialised_masks(model, image, mask)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert torch.equal(out_mask, ref_mask)


def test_decoder_blocks_are_called_through_hooks_with_their_masks():
    """Notebook 03 listens to the decoder with forward hooks: every block goes through ``__call__``.
    The readable UNet gives each block the per-channel mask of exercise 03 (``concat_skip``); the
    fast one its channel sum as ``mask_sum``, and the two agree."""
    seen = {}
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:20, 8:20] = 0
    image = torch.rand(1, 3, 32, 32) * mask
    for fast in (False, True):
        model = PConvUNet(depth=4, width=0.125, fast=fast).eval()
        calls = seen[fast] = []
        handles = [
            block.register_forward_hook(
                lambda module, args, kwargs, out, calls=calls: calls.append((args, kwargs)), with_kwargs=True
            )
            for block in model.decoder
        ]
        with torch.no_grad():
            model(image, mask)
        for handle in handles:
            handle.remove()
        assert len(calls) == model.depth
    (x, cat_mask), _ = seen[False][-1]  # last level: upsampled features + the input image
    assert cat_mask.shape == x.shape == (1, x.shape[1], 32, 32)
    assert torch.equal(cat_mask[:, -3:], mask.expand(-1, 3, -1, -1))  # the input image's own mask
    (_,), kwargs = seen[True][-1]
    assert torch.equal(kwargs["mask_sum"], cat_mask.sum(1, keepdim=True))


@pytest.mark.parametrize("fill", [float("nan"), float("inf")])
def test_nan_or_inf_in_image_holes_do_not_matter(fill):
    torch.manual_seed(0)
    model = PConvUNet(depth=3, width=0.125).eval()
    image = torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 3:9, 4:12] = 0
    with torch.no_grad():
        ref, ref_mask = model(image * mask, mask)
        out, out_mask = model(torch.where(mask.bool(), image, fill), mask)
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out, ref) and torch.equal(out_mask, ref_mask)


def test_double_image_into_float_model_is_one_clear_message():
    model = PConvUNet(depth=3, width=0.125)
    with pytest.raises(TypeError, match="weights are torch.float32.*torch.autocast"):
        model(torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.ones(1, 1, 8, 8))
