"""pconv_lib.checks, step 3 (the PConv UNet): right answers pass, stubs say 'not implemented',
typical wrong answers raise ExerciseCheckError with a plain-words explanation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pconv_lib import checks
from pconv_lib.layers import PartialConv2d


def _stub(*args, **kwargs):
    raise NotImplementedError


def _concat(x, mask, skip_x, skip_mask, mode="nearest", order="up-first", expand=True):
    """A configurable concat_skip: the right one by default, typical mistakes on request."""
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    up = F.interpolate(x, scale_factor=2, mode=mode, **kwargs)
    up_mask = F.interpolate(mask, scale_factor=2, mode=mode, **kwargs)
    if expand:
        up_mask = up_mask.expand(-1, up.shape[1], -1, -1)
        skip_mask = skip_mask.expand(-1, skip_x.shape[1], -1, -1)
    pairs = [(up, up_mask), (skip_x, skip_mask)]
    if order == "skip-first":
        pairs.reverse()
    return torch.cat([p[0] for p in pairs], 1), torch.cat([p[1] for p in pairs], 1)


class _Block(nn.Module):
    """A configurable DecoderBlock (layer names differ from the library's on purpose)."""

    def __init__(self, in_channels, out_channels, act=None, conv=PartialConv2d, bias=False, norm=True):
        super().__init__()
        self.pconv = conv(in_channels, out_channels, 3, padding=1, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.activation = nn.LeakyReLU(0.2) if act is None else act

    def forward(self, x, mask, skip_x, skip_mask):
        features, cat_mask = _concat(x, mask, skip_x, skip_mask)
        h, new_mask = self.pconv(features, cat_mask)
        return self.activation(self.norm(h)), new_mask


# ---- concat_skip -----------------------------------------------------------------------------


def test_library_equivalent_concat_skip_passes(capsys):
    assert checks.check_concat_skip(_concat) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


def test_concat_skip_stub_is_not_implemented(capsys):
    assert checks.check_concat_skip(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_concat_skip_bilinear_is_explained():
    with pytest.raises(checks.ExerciseCheckError, match="use nearest, not bilinear: masks must stay binary"):
        checks.check_concat_skip(lambda *a: _concat(*a, mode="bilinear"))


def test_concat_skip_wrong_order_is_explained():
    with pytest.raises(checks.ExerciseCheckError, match="wrong order"):
        checks.check_concat_skip(lambda *a: _concat(*a, order="skip-first"))


def test_concat_skip_single_channel_masks_are_explained():
    with pytest.raises(checks.ExerciseCheckError, match="mask channels must match feature channels"):
        checks.check_concat_skip(lambda *a: _concat(*a, expand=False))


def test_concat_skip_must_return_a_pair():
    with pytest.raises(checks.ExerciseCheckError, match=r"pair \(features, mask\)"):
        checks.check_concat_skip(lambda *a: _concat(*a)[0])


# ---- DecoderBlock ----------------------------------------------------------------------------


def test_library_equivalent_decoder_block_passes(capsys):
    assert checks.check_decoder_block(_Block) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


def test_redundant_conv_bias_is_accepted(capsys):
    assert checks.check_decoder_block(lambda i, o: _Block(i, o, bias=True)) is True


class _StubInit(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        raise NotImplementedError


class _StubForward(_Block):
    def forward(self, x, mask, skip_x, skip_mask):
        raise NotImplementedError


@pytest.mark.parametrize("stub", [_StubInit, _StubForward])
def test_decoder_block_stubs_are_not_implemented(stub, capsys):
    assert checks.check_decoder_block(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"act": nn.ReLU()}, "not ReLU"),
        ({"act": nn.Identity()}, "activation is missing"),
        ({"act": nn.LeakyReLU()}, "slope must be 0.2"),
        ({"norm": False}, "no BatchNorm"),
        ({"conv": nn.Conv2d}, "use PartialConv2d"),
    ],
)
def test_decoder_block_mistakes_are_explained(kwargs, hint):
    with pytest.raises(checks.ExerciseCheckError, match=hint):
        checks.check_decoder_block(lambda i, o: _Block(i, o, **kwargs))


def test_decoder_block_with_bilinear_concat_is_explained():
    class Bilinear(_Block):
        def forward(self, x, mask, skip_x, skip_mask):
            features, cat_mask = _concat(x, mask, skip_x, skip_mask, mode="bilinear")
            h, new_mask = self.pconv(features, cat_mask)
            return self.activation(self.norm(h)), new_mask

    with pytest.raises(checks.ExerciseCheckError, match="use nearest, not bilinear"):
        checks.check_decoder_block(Bilinear)


def test_decoder_block_without_mask_is_explained():
    class NoMask(_Block):
        def forward(self, x, mask, skip_x, skip_mask):
            features, _ = _concat(x, mask, skip_x, skip_mask)
            h, new_mask = self.pconv(features)
            return self.activation(self.norm(h)), new_mask

    with pytest.raises(checks.ExerciseCheckError, match="got no mask"):
        checks.check_decoder_block(NoMask)


def test_checks_leave_the_global_random_state_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.check_concat_skip(_concat)
    checks.check_decoder_block(_Block)
    assert torch.equal(torch.rand(3), expected)
