"""Step 3, the PConv UNet: the skip concatenation and the decoder block (exercise 03)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pconv_lib.checks._common import (
    ExerciseCheckError,
    _call,
    _close,
    _confirmed,
    _describe_array,
    _distinct_values,
    _fail,
    _first_line,
    _full_error,
    _guarded,
    _passed,
    _require_gradients,
    _require_order,
    _require_tensor,
    _require_unchanged,
    _run,
    _same_error,
    _todo,
    _unique_hint,
    _where_in_learner_code,
    _works,
    compare_arrays,
)


def _reference_concat_skip(x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> tuple[Any, Any]:
    """The decoder's upsample-and-concatenate step, exactly as in ``PConvUNet.forward``.

    Features and masks are upsampled by 2 (nearest) and concatenated with the skip features and
    the skip mask; every mask is first expanded to its features' channel count, so the result
    has one mask channel per feature channel (1 = valid, 0 = hole).
    """
    import torch
    import torch.nn.functional as F

    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    up_mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
    features = torch.cat((up, skip_x), dim=1)
    mask_cat = torch.cat(
        (
            up_mask.expand(-1, up.shape[1], -1, -1),
            skip_mask.to(up_mask.dtype).expand(-1, skip_x.shape[1], -1, -1),
        ),
        dim=1,
    )
    return features, mask_cat


def _decoder_inputs(seed: int, n: int, c_x: int, c_skip: int, h: int, w: int, skip_mask_channels: int):
    """Seeded ``(x, mask, skip_x, skip_mask)`` with holes, and a hole that survives the next layer.

    ``x``/``mask`` are at (h, w), the skips at (2h, 2w). The top-left 2x2 of ``mask`` and the
    top-left 4x4 of ``skip_mask`` are holes, so a 3x3 partial convolution after the
    concatenation still has an all-hole window there.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_x, h, w, generator=g)
    skip_x = torch.randn(n, c_skip, 2 * h, 2 * w, generator=g)
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.3).float()
    skip_mask = (torch.rand(n, skip_mask_channels, 2 * h, 2 * w, generator=g) > 0.3).float()
    mask[:, :, :2, :2] = 0
    skip_mask[:, :, :4, :4] = 0
    return x, mask, skip_x, skip_mask


def _as_pair(got: Any, call: str) -> tuple[Any, Any]:
    """The learner's ``(features, mask)`` result, or a plain-words failure (NumPy named as such)."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail(f"{call} should return a pair (features, mask), got {_describe_array(got)[:120]}")
    for label, value in zip(("features", "mask"), got):
        _require_tensor(value, f"the {label} of {call}")
    return got[0], got[1]


_NEAREST_HINT = (
    "use nearest, not bilinear: masks must stay binary (F.interpolate(..., scale_factor=2, "
    "mode='nearest'), for the features and for the mask)"
)


_ORDER_HINT = (
    "put the upsampled tensor first and the skip second, for the features and for the mask "
    "alike, so that mask channel i belongs to feature channel i: torch.cat((up, skip_x), dim=1)"
)


_CAT_SIZE_HINT = ("torch.cat of x and skip_x (or of their masks) without upsampling raises exactly this "
                  "error: x and its mask are (h, w), the skip tensors (2h, 2w). Upsample x and its mask "
                  "by 2 first")


def _call_crash_explained(
    function: Callable, call: str, args: tuple, diagnoses: list[tuple[Callable[[Exception], bool], str]]
) -> tuple[bool, Any]:
    """Like :func:`_call`, but a crash becomes an ExerciseCheckError that names the call.

    The whole error message is shown, and where in the learner's code it was raised. A hint is
    added only when exactly one of ``diagnoses`` (confirm, hint) confirms it by redoing the
    suspected mistake on the same inputs and getting the same error (then the library's own
    advice, written for library users, is cut to its first clause).
    """
    try:
        return _call(function, *args)
    except ExerciseCheckError:
        raise
    except Exception as error:
        text = _full_error(error)
        hint = _unique_hint([(_confirmed(confirm, error), h) for confirm, h in diagnoses])
        if hint:  # the library's own advice is for library users; keep its first clause only
            text = _first_line(error).split("; ")[0][:200].rstrip(".")
        _fail(f"{call} crashed: {text}{_where_in_learner_code(error, function)}.{hint}")
    raise AssertionError("unreachable")  # pragma: no cover


def _concat_probes(x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> list[tuple[Callable[..., bool], str]]:
    """Crash diagnoses for concat_skip: concatenating before upsampling, or along the batch axis."""
    import torch
    import torch.nn.functional as F

    def no_upsampling(error: Exception) -> bool:
        return _same_error(error, lambda: torch.cat((x, skip_x), 1)) or _same_error(
            error, lambda: torch.cat((mask, skip_mask), 1))

    def batch_axis(error: Exception) -> bool:
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return _same_error(error, lambda: torch.cat((up, skip_x), 0))

    return [(no_upsampling, _CAT_SIZE_HINT),
            (batch_axis, "torch.cat of the upsampled x and skip_x along dim=0 raises exactly this error: "
                         "concatenate along the channels (dim=1), the batch axis stays as it is")]


def _bilinear_mask(mask: Any, skip_mask: Any, c_x: int, c_skip: int) -> Any:
    """The concatenated mask as a bilinear upsampling would make it (a suspected mistake)."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(mask, scale_factor=2.0, mode="bilinear", align_corners=False)
    return torch.cat((up.expand(-1, c_x, -1, -1), skip_mask.expand(-1, c_skip, -1, -1)), dim=1)


@_guarded
def check_concat_skip(concat_skip: Callable) -> bool:
    """Check a learner's ``concat_skip(x, mask, skip_x, skip_mask) -> (features, mask)``.

    ``x`` (N, C, h, w) and ``mask`` (N, 1, h, w) come from the level below; ``skip_x``
    (N, S, 2h, 2w) and ``skip_mask`` (N, 1 or S, 2h, 2w) from the encoder. Expected: both
    upsampled by 2 with nearest neighbour, then ``features = cat(up_x, skip_x)`` (N, C + S,
    2h, 2w) and a per-channel ``mask`` of the same shape (the library's convention). Finally
    a depth-4 :class:`~pconv_lib.model.PConvUNet` is decoded with the learner's function and
    compared with the model's own forward pass.
    """
    import torch
    import torch.nn.functional as F

    from pconv_lib.model import PConvUNet

    cases = [  # (seed, n, c_x, c_skip, h, w, skip mask channels)
        (0, 2, 4, 3, 3, 4, 1),
        (1, 1, 2, 5, 4, 4, 5),  # a per-channel skip mask, like a 3-channel image mask
        (2, 3, 6, 2, 2, 3, 1),
    ]
    for seed, n, c_x, c_skip, h, w, skip_channels in cases:
        x, mask, skip_x, skip_mask = _decoder_inputs(seed, n, c_x, c_skip, h, w, skip_channels)
        inputs = (x.clone(), mask.clone(), skip_x.clone(), skip_mask.clone())
        call = (
            f"concat_skip(x {tuple(x.shape)}, mask {tuple(mask.shape)}, skip_x {tuple(skip_x.shape)}, "
            f"skip_mask {tuple(skip_mask.shape)})"
        )
        ok, got = _call_crash_explained(concat_skip, call, inputs, _concat_probes(x, mask, skip_x, skip_mask))
        if not ok:
            return _todo("concat_skip")
        _require_unchanged(call, list(zip(("x", "mask", "skip_x", "skip_mask"), (x, mask, skip_x, skip_mask),
                                          inputs)))
        features, got_mask = _as_pair(got, call)
        exp_features, exp_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
        _require_order(features, got_mask, (exp_features, exp_mask), call, "(features, mask)", "these inputs")
        _require_tensor(features, f"the features of {call}", like=x)
        _require_tensor(got_mask, f"the mask of {call}", like=mask)
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if tuple(features.shape) != tuple(exp_features.shape):
            hint = ""
            batch_cat = torch.cat((up, skip_x), dim=0) if up.shape[1] == skip_x.shape[1] else features[:0]
            if _close(features, batch_cat):
                hint = " You concatenated along the batch axis: concatenate along the channels (dim=1)."
            _fail(f"{call}: features have shape {tuple(features.shape)}, expected "
                  f"{tuple(exp_features.shape)}.{hint}")
        if not bool(((got_mask == 0) | (got_mask == 1)).all()):
            hint = "the mask must hold only 0 and 1 (1 = valid, 0 = hole)"
            if _close(got_mask, _bilinear_mask(mask, skip_mask, c_x, c_skip)):
                hint = "it is the mask upsampled with bilinear interpolation; " + _NEAREST_HINT
            _fail(f"{call}: the mask holds values {_distinct_values(got_mask)}; {hint}")
        bilinear = torch.cat((F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False),
                              skip_x), dim=1)
        if _close(features, bilinear) and not _close(features, exp_features):
            _fail(f"{call}: the features were upsampled with bilinear interpolation; {_NEAREST_HINT}")
        if not _close(features, exp_features) and _close(features, torch.cat((skip_x, up), dim=1)):
            _fail(f"{call}: features and masks concatenated in the wrong order (skip first); {_ORDER_HINT}")
        compare_arrays(f"features of {call}", features, exp_features, atol=1e-6)
        if tuple(got_mask.shape) != tuple(exp_mask.shape):
            unexpanded = (n, 1 + skip_channels, 2 * h, 2 * w)
            hint = ""
            if tuple(got_mask.shape) == unexpanded:
                hint = (f": it is the two masks concatenated as they are, {1 + skip_channels} channels, "
                        "but mask channels must match feature channels one to one: expand the upsampled "
                        f"mask to x's {c_x} channels and skip_mask to skip_x's {c_skip} channels "
                        "(m.expand(-1, C, -1, -1)) before concatenating them")
            _fail(f"{call}: the mask has shape {tuple(got_mask.shape)}, expected {tuple(exp_mask.shape)} "
                  f"(one mask channel per feature channel){hint}")
        up_mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
        swapped = torch.cat((skip_mask.expand(-1, c_skip, -1, -1), up_mask.expand(-1, c_x, -1, -1)), dim=1)
        if not _close(got_mask, exp_mask) and _close(got_mask, swapped):
            _fail(f"{call}: the masks are concatenated in the wrong order (skip mask first); {_ORDER_HINT}")
        if not _close(got_mask[:, :c_x], exp_mask[:, :c_x]):
            _fail(f"{call}: mask channels 0..{c_x - 1} belong to the {c_x} upsampled feature channels of x, "
                  "so they must all be x's own mask, upsampled by 2 (1 = valid, 0 = hole), not the skip "
                  "mask or a combination of both")
        if not _close(got_mask[:, c_x:], exp_mask[:, c_x:]):
            _fail(f"{call}: mask channels {c_x}..{c_x + c_skip - 1} belong to the {c_skip} skip feature "
                  "channels, so they must be skip_mask (the same single channel repeated, or its own "
                  f"{c_skip} channels when it has them)")
        compare_arrays(f"mask of {call}", got_mask, exp_mask, atol=0)
        # the features carry the gradient from the decoder back to both inputs
        mine = (x.clone().requires_grad_(True), skip_x.clone().requires_grad_(True))
        theirs = (x.clone().requires_grad_(True), skip_x.clone().requires_grad_(True))
        _, again = _run(concat_skip, (mine[0], mask.clone(), mine[1], skip_mask.clone()))
        _require_gradients(f"the features of {call}", _as_pair(again, call)[0],
                           _reference_concat_skip(theirs[0], mask, theirs[1], skip_mask)[0],
                           [("x", mine[0], theirs[0]), ("skip_x", mine[1], theirs[1])], seed=seed)

    # the whole UNet, decoded with the learner's function, against the library's forward pass
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = PConvUNet(depth=4, width=0.25).eval()
        image = torch.rand(2, 3, 32, 48)
    image_mask = torch.ones(2, 1, 32, 48)
    image_mask[0, :, 4:20, 8:30] = 0
    image_mask[1, :, 12:32, 30:48] = 0
    with torch.no_grad():
        expected, _ = model(image, image_mask)
        feats, masks_ = model.encode(image, image_mask)  # the library's encoder; the decoder is yours
        h, m = feats[-1], masks_[-1]
        for j, block in enumerate(model.decoder):
            level = model.depth - 1 - j
            _, pair = _run(concat_skip, (h, m, feats[level], masks_[level]), where="a PConvUNet's decoder")
            h, m = block(*_as_pair(pair, "concat_skip"))
    compare_arrays("the output of a PConvUNet(depth=4) decoded with your concat_skip", h, expected, atol=1e-5)
    return _passed(
        f"concat_skip matches the library on {len(cases)} cases, and a whole PConvUNet decoded "
        "with it gives the same output as PConvUNet.forward"
    )


def _ReferenceDecoderLevel(in_channels: int, out_channels: int) -> Any:  # noqa: N802 - builds a module
    """The decoder level the exercise describes, built from library layers only: a 3x3
    ``PartialConv2d`` (stride 1, padding 1, no bias: BatchNorm follows), ``BatchNorm2d`` and
    ``LeakyReLU(0.2)``; ``forward(features, mask) -> (output, new_mask)`` on the concatenation."""
    import torch.nn.functional as F
    from torch import nn

    from pconv_lib.layers import PartialConv2d

    class ReferenceDecoderLevel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(out_channels)

        def forward(self, features: Any, mask: Any) -> tuple[Any, Any]:
            out, new_mask = self.conv(features, mask)
            return F.leaky_relu(self.bn(out), 0.2), new_mask

    return ReferenceDecoderLevel()


def _leaky(t: Any, slope: float) -> Any:
    return t.clamp_min(0) + slope * t.clamp_max(0)


def _decoder_pieces(ref: Any, mode: str, x: Any, mask: Any, skip_x: Any, skip_mask: Any, features: Any,
                    cat_mask: Any) -> dict[str, Any]:
    """What the decoder mistakes are recomputed from, with the reference block ``ref`` (no grad).

    ``pre``: the partial convolution of the concatenation; ``pre_nomask``: the same without a mask;
    ``bn``: BatchNorm with the running statistics (a function); ``normed``: ``pre`` normalised the
    way ``mode`` does (running statistics in eval, batch statistics in train); ``swapped``: the
    reference block on the skip-first concatenation (eval mode only, else None).
    """
    import torch
    import torch.nn.functional as F

    bn = ref.bn

    def with_running_stats(t: Any) -> Any:
        return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    pre = ref.conv(features, cat_mask)[0]
    batch = F.batch_norm(pre, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    swapped = None
    if mode == "eval":
        c_x, c_skip = x.shape[1], skip_x.shape[1]
        up_x, up_m = F.interpolate(x, scale_factor=2.0), F.interpolate(mask, scale_factor=2.0)
        skip_first = torch.cat((skip_mask.expand(-1, c_skip, -1, -1), up_m.expand(-1, c_x, -1, -1)), dim=1)
        swapped = ref(torch.cat((skip_x, up_x), dim=1), skip_first)[0]
    return {"pre": pre, "pre_nomask": ref.conv(features)[0], "bn": with_running_stats,
            "normed": with_running_stats(pre) if mode == "eval" else batch, "swapped": swapped}


#: Wrong decoder blocks: (the modes where the mistake is recognisable, recomputed from
#: :func:`_decoder_pieces`, what to change).
DECODER_MISTAKES: list[tuple[tuple[str, ...], Callable[[dict[str, Any]], Any], str]] = [
    (("eval", "train"), lambda p: p["normed"],
     "the activation is missing: apply nn.LeakyReLU(0.2) after BatchNorm"),
    (("eval", "train"), lambda p: p["normed"].clamp_min(0),
     "the decoder uses LeakyReLU(0.2), not ReLU (the paper: ReLU in the encoder, LeakyReLU with slope 0.2 "
     "in the decoder)"),
    (("eval", "train"), lambda p: _leaky(p["normed"], 0.01),
     "LeakyReLU's negative slope must be 0.2: nn.LeakyReLU(0.2), not the default 0.01"),
    (("eval", "train"), lambda p: _leaky(p["pre"], 0.2),
     "BatchNorm is skipped in forward: conv -> BN -> LeakyReLU(0.2)"),
    (("eval",), lambda p: p["bn"](_leaky(p["pre"], 0.2)),
     "BatchNorm must come before the activation: conv -> BN -> LeakyReLU(0.2)"),
    (("eval",), lambda p: _leaky(p["bn"](p["pre_nomask"]), 0.2),
     "the partial convolution got no mask: call it with the concatenated mask, conv(features, mask), and "
     "return the new mask it gives"),
    (("eval",), lambda p: p["swapped"],
     "features and masks concatenated in the wrong order; " + _ORDER_HINT),
]


def _find_layers(block: Any) -> tuple[Any, Any]:
    """The learner block's one PartialConv2d and one BatchNorm2d, or a plain-words failure."""
    from torch import nn

    from pconv_lib.layers import PartialConv2d

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    pconvs = [m for m in convs if isinstance(m, PartialConv2d)]
    if not pconvs:
        if convs:
            _fail("DecoderBlock uses nn.Conv2d: use PartialConv2d, which renormalises by the "
                  "valid pixels and returns the updated mask")
        _fail("DecoderBlock has no PartialConv2d layer: create one in __init__ (self.conv = ...)")
    if len(convs) > 1:
        _fail(f"DecoderBlock has {len(convs)} convolutions, expected one 3x3 PartialConv2d")
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        _fail("DecoderBlock has no BatchNorm: add nn.BatchNorm2d(out_channels) after the partial "
              "convolution (conv -> BN -> LeakyReLU(0.2))")
    if len(bns) > 1:
        _fail(f"DecoderBlock has {len(bns)} BatchNorm layers, expected one")
    return pconvs[0], bns[0]


def _block_probes(conv: Any, x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> list[tuple[Callable, str]]:
    """Crash diagnoses for DecoderBlock.forward: the learner's own convolution, given what a suspected
    mistake would give it, fails with the same error."""
    import torch
    import torch.nn.functional as F

    up, up_mask = F.interpolate(x, scale_factor=2.0), F.interpolate(mask, scale_factor=2.0)
    features, cat_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
    c_x, c_skip = x.shape[1], skip_x.shape[1]

    def run(*args: Any) -> Callable[[], Any]:
        def call() -> Any:
            with torch.no_grad():
                return conv(*args)
        return call

    return [
        (lambda e: _same_error(e, run(up, up_mask)) or _same_error(e, run(x, mask)),
         "Your PartialConv2d, given the upsampled x alone, raises exactly this error. It takes the upsampled "
         "features and the skip features together: give it the features that concat_skip(x, mask, skip_x, "
         "skip_mask) returns"),
        (lambda e: _same_error(e, run(features, torch.cat((up_mask, skip_mask), 1))),
         "Your PartialConv2d, given the two masks concatenated without expanding them, raises exactly this "
         "error. It needs one mask channel per feature channel (or a single one): give it the mask that "
         "concat_skip returns, with its features"),
        (lambda e: _same_error(e, run(features, _bilinear_mask(mask, skip_mask, c_x, c_skip))),
         "Your PartialConv2d, given a bilinearly upsampled mask, raises exactly this error; "
         + _NEAREST_HINT),
    ]


@_guarded
def check_decoder_block(decoder_block: type) -> bool:
    """Check a learner's ``DecoderBlock(in_channels, out_channels)`` class.

    ``forward(x, mask, skip_x, skip_mask) -> (features, new_mask)`` must be concat_skip ->
    ``PartialConv2d(in_channels, out_channels, 3, stride=1, padding=1)`` -> ``BatchNorm2d`` ->
    ``LeakyReLU(0.2)``, where ``in_channels`` counts the upsampled and the skip features
    together. A reference decoder level built from library layers gets random weights and
    BatchNorm statistics; they are copied into the learner's block (the layers are found by
    type, so their names are free; a convolution bias, redundant before BatchNorm, is set to
    0) and both are compared in eval and in train mode, running statistics included. A stub
    that raises
    ``NotImplementedError`` in ``__init__`` or in ``forward`` counts as not implemented yet.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn


    cases = [  # (seed, n, c_x, c_skip, c_out, h, w, skip mask channels)
        (10, 2, 6, 4, 5, 3, 4, 1),
        (11, 3, 8, 8, 8, 2, 2, 1),
    ]
    for seed, n, c_x, c_skip, c_out, h, w, skip_channels in cases:
        c_in = c_x + c_skip
        made = f"DecoderBlock({c_in}, {c_out})"
        try:
            with torch.random.fork_rng(devices=[]):  # the learner's weight init must not move the seed
                ok, block = _call(decoder_block, c_in, c_out)
        except Exception as error:
            hint = ""
            two_arguments = _works(lambda: inspect.signature(decoder_block).bind(1, 1))
            if isinstance(error, TypeError) and not two_arguments:
                hint = ("; its constructor cannot be called with two arguments: it takes (in_channels, "
                        "out_channels), in_channels counting the upsampled and the skip features together")
            _fail(f"{made} failed: {_full_error(error)}{_where_in_learner_code(error, decoder_block)}{hint}")
        if not ok:
            return _todo("DecoderBlock")
        if not isinstance(block, nn.Module):
            _fail(f"{made} gave {_describe_array(block)}: DecoderBlock must be an nn.Module subclass")
        conv, bn = _find_layers(block)
        if (conv.in_channels, conv.out_channels) != (c_in, c_out):
            _fail(f"{made}: its PartialConv2d maps {conv.in_channels} -> {conv.out_channels} "
                  f"channels, expected {c_in} -> {c_out}")
        if tuple(conv.kernel_size) != (3, 3) or tuple(conv.stride) != (1, 1) or conv.padding != (1, 1):
            _fail(f"{made}: the PartialConv2d has kernel {tuple(conv.kernel_size)}, stride "
                  f"{tuple(conv.stride)}, padding {conv.padding}; the decoder uses kernel 3, "
                  "stride 1, padding 1 (the upsampling already doubled the size)")
        if bn.num_features != c_out:
            _fail(f"{made}: BatchNorm2d has {bn.num_features} features, expected {c_out}")

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ref = _ReferenceDecoderLevel(c_in, c_out)
            with torch.no_grad():
                ref.bn.weight.uniform_(0.5, 1.5)
                ref.bn.bias.uniform_(-0.5, 0.5)
                ref.bn.running_mean.uniform_(-0.5, 0.5)
                ref.bn.running_var.uniform_(0.5, 2.0)
        with torch.no_grad():
            conv.weight.copy_(ref.conv.weight)
            if conv.bias is not None:
                conv.bias.zero_()
        bn.load_state_dict(ref.bn.state_dict())

        x, mask, skip_x, skip_mask = _decoder_inputs(seed, n, c_x, c_skip, h, w, skip_channels)
        features, cat_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
        call = f"{made}(x {tuple(x.shape)}, mask, skip_x {tuple(skip_x.shape)}, skip_mask)"
        for mode in ("eval", "train"):
            block.train(mode == "train")
            ref.train(mode == "train")
            inputs = (x.clone(), mask.clone(), skip_x.clone(), skip_mask.clone())
            ok, got = _call_crash_explained(block, f"{call} in {mode} mode", inputs,
                                            _block_probes(conv, x, mask, skip_x, skip_mask))
            if not ok:
                return _todo("DecoderBlock")
            _require_unchanged(call, list(zip(("x", "mask", "skip_x", "skip_mask"),
                                              (x, mask, skip_x, skip_mask), inputs)))
            out, new_mask = _as_pair(got, call)
            with torch.no_grad():
                expected, expected_mask = ref(features, cat_mask)
            _require_order(out, new_mask, (expected, expected_mask), call, "(features, new_mask)",
                           f"{mode} mode")
            _require_tensor(out, f"the features of {call}", like=x)
            _require_tensor(new_mask, f"the mask of {call}", like=mask)
            if tuple(out.shape) != tuple(expected.shape):
                _fail(f"{call} in {mode} mode: features have shape {tuple(out.shape)}, expected "
                      f"{tuple(expected.shape)}")
            if not _close(out, expected):
                with torch.no_grad():
                    pieces = _decoder_pieces(ref, mode, x, mask, skip_x, skip_mask, features, cat_mask)
                    hint = _unique_hint([(mode in modes and _close(out, mistake(pieces))
                                          and not _close(mistake(pieces), expected), text)
                                         for modes, mistake, text in DECODER_MISTAKES])
                    if hint:
                        _fail(f"{call} in {mode} mode: {hint.strip()}")
            compare_arrays(f"features of {call} in {mode} mode", out, expected, atol=1e-5)
            if not _close(new_mask, expected_mask) and (_close(new_mask, cat_mask) or _close(
                    new_mask, torch.cat((F.interpolate(mask, scale_factor=2.0), skip_mask), 1))):
                _fail(f"{call}: the returned mask is the mask the partial convolution received: return "
                      "the new mask it gives back (conv(features, mask) returns (output, new_mask))")
            if tuple(new_mask.shape) != tuple(expected_mask.shape):
                _fail(f"{call}: the returned mask has shape {tuple(new_mask.shape)}, expected "
                      f"{tuple(expected_mask.shape)}")
            compare_arrays(f"new mask of {call}", new_mask, expected_mask, atol=0)
        for name in ("running_mean", "running_var"):
            compare_arrays(f"BatchNorm {name} after a train-mode call of {made}", getattr(bn, name),
                           getattr(ref.bn, name), atol=1e-5)
        # gradients (eval mode): training follows them back to the inputs and the convolution's weight
        block.eval()
        ref.eval()
        mine = (x.clone().requires_grad_(True), skip_x.clone().requires_grad_(True))
        theirs = (x.clone().requires_grad_(True), skip_x.clone().requires_grad_(True))
        _, got = _call_crash_explained(block, f"{call} in eval mode", (mine[0], mask.clone(), mine[1],
                                                                       skip_mask.clone()), [])
        features_g, cat_mask_g = _reference_concat_skip(theirs[0], mask, theirs[1], skip_mask)
        _require_gradients(f"{call} in eval mode", _as_pair(got, call)[0], ref(features_g, cat_mask_g)[0],
                           [("x", mine[0], theirs[0]), ("skip_x", mine[1], theirs[1]),
                            ("the PartialConv2d's weight", conv.weight, ref.conv.weight)],
                           rtol=1e-4, atol=1e-6, seed=seed)
    return _passed(
        "DecoderBlock matches the library's decoder level (nearest x2, concat, 3x3 PartialConv2d, "
        "BatchNorm, LeakyReLU 0.2) in eval and train mode, gradients included"
    )
