"""Step 4: the loss of the paper (Liu et al., arXiv 1804.07723, section 3.4), term by term.

With ``I_comp = M ⊙ I_in + (1 − M) ⊙ I_out`` (``M``: 1 = valid pixel, 0 = hole)::

    L = 1 L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv

Every L1 norm is averaged over the elements it runs over (the paper's ``1 / N``):

- ``L_hole  = mean |(1 − M) ⊙ (I_out − I_gt)|`` and ``L_valid = mean |M ⊙ (I_out − I_gt)|``,
  both over all ``N·3·H·W`` elements (so ``L_hole + L_valid = mean |I_out − I_gt|``).
- ``L_perceptual = Σ_p mean|Ψ_p(I_out) − Ψ_p(I_gt)| + mean|Ψ_p(I_comp) − Ψ_p(I_gt)|`` over the
  VGG16 pool1, pool2 and pool3 outputs ``Ψ_p``.
- ``L_style_out = Σ_p mean|G(Ψ_p(I_out)) − G(Ψ_p(I_gt))|`` with the Gram matrix
  ``G(F) = F Fᵀ / (C·H·W)`` (``F``: the C×(H·W) feature matrix), ``L_style_comp`` likewise
  with ``I_comp``. The mean runs over the ``N·C·C`` Gram entries (the paper's ``1 / C_p²``).
- ``L_tv``: see :func:`total_variation_loss` (on ``I_comp``, over the 1-pixel dilation of the
  holes only).

Shapes: images are ``float32`` (N, 3, H, W) in [0, 1]; masks are (N, 1, H, W) or (N, 3, H, W)
with values exactly 0.0 / 1.0. Each loss is a scalar tensor.

VGG16 weights are loaded through **one** function, :func:`vgg16_feature_extractor`, which never
downloads anything: it reads torchvision's ImageNet file from the local torch hub cache (or a
path you give) and raises :class:`WeightsNotFoundError`, saying where to put the file, when it
is missing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pconv_lib.runtime import follow_free_cores
from pconv_lib.util.arg_checks import check_feature_lists, check_loss_weights, check_type
from pconv_lib.util.errors import BadType, BadValue, WeightsNotFoundError
from pconv_lib.util.tensor_checks import check_features, check_loss_inputs, check_rgb_batch

#: ImageNet normalisation used by torchvision's VGG16 (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: File name torchvision gives ``VGG16_Weights.IMAGENET1K_V1`` in ``<torch hub dir>/checkpoints``.
VGG16_IMAGENET_FILENAME = "vgg16-397923af.pth"
#: Where torchvision downloads it from (``torchvision.models.VGG16_Weights.IMAGENET1K_V1.url``).
VGG16_IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

#: Number of layers of ``torchvision.models.vgg16().features`` up to and including pool3.
VGG16_POOL3_LAYERS = 17
#: Indices of the pooling layers in ``vgg16().features`` whose outputs the loss uses.
VGG16_POOL_INDICES = (4, 9, 16)

WeightsSpec = str | os.PathLike | None


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; the defaults are the paper's.

    Override some with ``LossWeights(tv=0.0)`` or ``dataclasses.replace(weights, hole=10)``.
    Two presets: :meth:`paper` (the defaults) and :meth:`pixel_only` (no VGG16 needed).
    """

    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style_out: float = 120.0
    style_comp: float = 120.0
    tv: float = 0.1

    def __post_init__(self) -> None:
        check_loss_weights(asdict(self))

    @classmethod
    def paper(cls) -> LossWeights:
        """The paper's weights: valid 1, hole 6, perceptual 0.05, style 120 (out and comp), TV 0.1."""
        return cls()

    @classmethod
    def pixel_only(cls) -> LossWeights:
        """The pixel terms only: valid 1, hole 6, TV 0.1; perceptual and style 0.

        For machines without the VGG16 ImageNet weights (offline): :class:`PConvLoss` then
        builds no VGG16 at all, so nothing is loaded and every logged term is meaningful. The
        results are blurrier in large holes than with the full loss (no texture term), but far
        better than training with random VGG weights, whose perceptual and style values are noise.
        """
        return cls(perceptual=0.0, style_out=0.0, style_comp=0.0)

    @property
    def needs_vgg(self) -> bool:
        """True when a perceptual or style weight is non-zero (then VGG16 features are needed)."""
        return any(value > 0 for value in (self.perceptual, self.style_out, self.style_comp))

    def as_dict(self) -> dict[str, float]:
        """``{term name: weight}`` in the order of the paper's formula."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# VGG16 features
# --------------------------------------------------------------------------------------------


def _vgg16_pool3_layers() -> nn.Sequential:
    """``torchvision.models.vgg16().features[:17]`` (conv1_1 … pool3), randomly initialised,
    built directly so that the 120-million-parameter classifier is never allocated."""
    layers: list[nn.Module] = []
    in_channels = 3
    for channels, convs in ((64, 2), (128, 2), (256, 3)):
        for _ in range(convs):
            layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=False)]
            in_channels = channels
        layers.append(nn.MaxPool2d(2, 2))
    for module in layers:  # torchvision's VGG initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """Frozen VGG16 (conv1_1 … pool3) returning the pool1, pool2 and pool3 outputs.

    Build it with :func:`vgg16_feature_extractor`. It stays in eval mode (``train()`` is a
    no-op) and all its parameters have ``requires_grad=False``; gradients still flow to the
    *input* image, which is what the loss needs.

    Input: ``float`` (N, 3, H, W) RGB in [0, 1]; the ImageNet mean/std normalisation is done
    inside. Output: list of three tensors, (N, 64, H/2, W/2), (N, 128, H/4, W/4),
    (N, 256, H/8, W/8).
    """

    def __init__(self, features: nn.Sequential | None = None) -> None:
        super().__init__()
        self.features = features if features is not None else _vgg16_pool3_layers()
        if len(self.features) != VGG16_POOL3_LAYERS:
            raise BadValue(f"expected the {VGG16_POOL3_LAYERS} VGG16 layers up to pool3")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def freeze(self) -> VGG16Features:
        """Set ``requires_grad=False`` on every parameter and switch to eval mode."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        """Ignored (``mode`` included): the feature extractor always stays in eval mode."""
        del mode
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        check_rgb_batch(images)
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG16_POOL_INDICES:
                outputs.append(x)
        return outputs


def vgg16_weights_path() -> Path:
    """Where the ImageNet VGG16 file is looked for: ``<torch.hub.get_dir()>/checkpoints/``
    ``vgg16-397923af.pth`` (torchvision's own cache, so a file it downloaded is found)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_IMAGENET_FILENAME


def _missing_weights_message(path: Path, explicit: bool) -> str:
    where = (
        f"the file you named, {path}"
        if explicit
        else f"{path} (torch hub cache: torch.hub.get_dir() or $TORCH_HOME/hub)"
    )
    return (
        f"VGG16 ImageNet weights not found: expected {where}. Nothing is downloaded "
        "automatically. On a machine with internet run\n"
        "    python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"\n"
        f"which saves {VGG16_IMAGENET_FILENAME} (528 MB) in its torch hub cache "
        f"(~/.cache/torch/hub/checkpoints/), or download {VGG16_IMAGENET_URL} directly, then "
        f"copy the file to {vgg16_weights_path()} (file name exactly {VGG16_IMAGENET_FILENAME}) "
        "or pass its path as weights=... . For a quick test without the file, "
        "vgg16_feature_extractor(weights=None) gives random weights (not for training)."
    )


def _load_failure(error: BaseException) -> str:
    """Why ``torch.load`` failed, in a few words - never torch's advice to pass
    ``weights_only=False`` (that would run code from the file)."""
    text = str(error)
    low = text.lower()
    if "unsupported global" in low or "weightsunpickler" in low or "weights only load failed" in low:
        return "it holds Python objects other than tensors, refused for safety"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return type(error).__name__ + (f": {first[:120]}" if first and "weights_only" not in first else "")


def load_vgg16_pool3_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a VGG16 weights file and return the state dict of ``features[:17]`` (up to pool3).

    Accepted layouts: a full ``torchvision.models.vgg16`` state dict (keys ``features.0.weight``
    … ``classifier.6.bias``), a ``vgg16().features`` state dict (keys ``0.weight`` …), or
    either of them wrapped as ``{"state_dict": ...}``. Loaded with ``weights_only=True``.

    Returns:
        ``{"0.weight": ..., "0.bias": ..., ..., "14.bias": ...}`` (the keys of ``features[:17]``).

    Raises:
        WeightsNotFoundError: if ``path`` does not exist.
        ValueError: if the file holds no VGG16 convolution weights.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(_missing_weights_message(path, explicit=True))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for files that are not weights
        raise BadValue(
            f"{path} is not a PyTorch weights file ({_load_failure(error)}); give the VGG16 ImageNet "
            f"weights {VGG16_IMAGENET_FILENAME} (see README)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadValue(f"{path}: expected a state dict, got {type(state).__name__}")
    prefix = "features." if any(str(k).startswith("features.") for k in state) else ""
    wanted = {f"{i}.{kind}" for i in range(VGG16_POOL3_LAYERS) for kind in ("weight", "bias")}
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = str(key)
        if prefix and not key.startswith(prefix):
            continue
        short = key[len(prefix) :]
        if short in wanted:
            result[short] = value
    if not result:
        raise BadValue(
            f"{path}: no VGG16 'features.N.weight' or 'N.weight' entries found; is it a VGG16 "
            f"state dict such as torchvision's {VGG16_IMAGENET_FILENAME}?"
        )
    return result


def vgg16_feature_extractor(
    weights: WeightsSpec = "imagenet",
    *,
    device: torch.device | str | None = None,
) -> VGG16Features:
    """The frozen VGG16 feature extractor used by the perceptual and style losses.

    Args:
        weights: where the weights come from.

            - ``"imagenet"`` (default): torchvision's ``VGG16_Weights.IMAGENET1K_V1``, read **only**
              from the local torch hub cache, :func:`vgg16_weights_path`
              (``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``). Never downloaded.
            - a path (``str`` or ``os.PathLike``) to such a file, either a full VGG16 state dict
              or a ``features`` one (see :func:`load_vgg16_pool3_state_dict`).
            - ``None``: random weights, with a ``UserWarning`` (perceptual and style terms are
              then meaningless for training; fine for tests and shape checks).
        device: where to put the module (default: CPU).

    Returns:
        A :class:`VGG16Features`: eval mode, ``requires_grad=False``, input (N, 3, H, W) in
        [0, 1] (normalised inside), output ``[pool1, pool2, pool3]``.

    Raises:
        WeightsNotFoundError: (a ``FileNotFoundError``) when the file is absent; its message
            names the expected path and file name and how to fetch it on a machine with internet.
    """
    model = VGG16Features()
    if weights is None:
        warnings.warn(
            "vgg16_feature_extractor(weights=None): VGG16 has random weights, so the perceptual "
            "and style loss terms are meaningless for training (use weights='imagenet').",
            UserWarning,
            stacklevel=2,
        )
    else:
        if isinstance(weights, str) and weights.lower() in ("imagenet", "imagenet1k_v1"):
            path = vgg16_weights_path()
            if not path.is_file():
                raise WeightsNotFoundError(_missing_weights_message(path, explicit=False))
        elif isinstance(weights, (str, os.PathLike)):
            path = Path(weights)
        else:
            raise BadType(
                "weights must be 'imagenet', a path to a VGG16 state dict file, or None; "
                f"got {type(weights).__name__}"
            )
        state = load_vgg16_pool3_state_dict(path)
        missing, unexpected = model.features.load_state_dict(state, strict=False)
        if missing:
            raise BadValue(f"{path}: VGG16 weights incomplete, missing {', '.join(missing)}")
        model.freeze()
    if device is not None:
        model = model.to(device)
    return model


# --------------------------------------------------------------------------------------------
# Loss terms
# --------------------------------------------------------------------------------------------


def composite(output: torch.Tensor, image_in: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``I_comp = M ⊙ I_in + (1 − M) ⊙ I_out``: the input's valid pixels, the output in holes.

    ``output`` and ``image_in``: (N, C, H, W); ``mask``: (N, 1, H, W) or (N, C, H, W),
    1 = valid, 0 = hole. Returns (N, C, H, W). Unchecked: :class:`PConvLoss` checks its inputs.
    """
    mask = mask.to(output.dtype)
    return mask * image_in + (1 - mask) * output


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, computed in float32 (stable under autocast)."""
    return (a.float() - b.float()).abs().mean()


def hole_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_hole = mean |(1 − M) ⊙ (I_out − I_gt)|`` over all N·C·H·W elements (1 = valid)."""
    mask = mask.to(output.dtype).float()
    return ((1 - mask) * (output.float() - target.float())).abs().mean()


def valid_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_valid = mean |M ⊙ (I_out − I_gt)|`` over all N·C·H·W elements (1 = valid)."""
    mask = mask.to(output.dtype).float()
    return (mask * (output.float() - target.float())).abs().mean()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F Fᵀ / (C·H·W)`` of feature maps, always computed in float32.

    Args:
        features: (N, C, H, W) or (C, H, W), any float dtype. Autocast is switched off inside
            and the features are cast to float32: in float16 the sum over H·W overflows.

    Returns:
        float32 (N, C, C) (or (C, C) for an unbatched input), symmetric positive semi-definite.
        Entry ``[c, d]`` is ``Σ_{y,x} F[c, y, x] F[d, y, x] / (C·H·W)``.
    """
    check_features(features)
    unbatched = features.ndim == 3
    if unbatched:
        features = features.unsqueeze(0)
    n, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.float().reshape(n, c, h * w)
        gram = torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)
    return gram[0] if unbatched else gram


def perceptual_loss(
    output_features: Sequence[torch.Tensor],
    comp_features: Sequence[torch.Tensor],
    target_features: Sequence[torch.Tensor],
) -> torch.Tensor:
    """``Σ_p mean|Ψ_p(I_out) − Ψ_p(I_gt)| + mean|Ψ_p(I_comp) − Ψ_p(I_gt)|``.

    Each argument is the list returned by :class:`VGG16Features` (pool1, pool2, pool3) for
    ``I_out``, ``I_comp`` and ``I_gt``. Returns a float32 scalar.
    """
    check_feature_lists(output_features, comp_features, target_features)
    total = output_features[0].new_zeros((), dtype=torch.float32)
    for out, comp, gt in zip(output_features, comp_features, target_features, strict=True):
        total = total + _l1(out, gt) + _l1(comp, gt)
    return total


def style_loss(
    features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``Σ_p mean|G(Ψ_p(I)) − G(Ψ_p(I_gt))|`` with :func:`gram_matrix` (float32 scalar).

    Call it with the features of ``I_out`` for ``L_style_out`` and of ``I_comp`` for
    ``L_style_comp``.
    """
    check_feature_lists(features, target_features)
    total = features[0].new_zeros((), dtype=torch.float32)
    for feat, gt in zip(features, target_features, strict=True):
        total = total + _l1(gram_matrix(feat), gram_matrix(gt))
    return total


def dilated_hole_region(mask: torch.Tensor) -> torch.Tensor:
    """The region ``P`` of the TV loss: the holes (``mask == 0``) dilated by one pixel.

    A 3×3 max-pool (stride 1, padding 1) of ``1 − mask``; ``mask`` (N, C, H, W) with
    1 = valid, 0 = hole; returns float (N, C, H, W) with 1 inside P, 0 outside.
    """
    hole = 1 - mask.float()
    return F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)


def total_variation_loss(comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Total variation of ``I_comp`` over the 1-pixel dilation ``P`` of the holes (the paper's).

    Exact definition: with ``P = maxpool3x3(1 − M)`` (:func:`dilated_hole_region`, per channel
    when the mask has C channels, broadcast otherwise)::

        L_tv = ( Σ_{i,j: P[i,j]=P[i,j+1]=1} |I[i,j+1] − I[i,j]|
               + Σ_{i,j: P[i,j]=P[i+1,j]=1} |I[i+1,j] − I[i,j]| ) / (N·C·H·W)

    i.e. a horizontal or vertical neighbour difference counts only when *both* of its pixels
    lie in ``P``, and the sum is divided by the number of elements of ``I_comp`` (the paper's
    ``N_{I_comp}``). Pixels outside ``P`` therefore never change the loss.

    Args:
        comp: (N, C, H, W) composite image ``I_comp``.
        mask: (N, 1, H, W) or (N, C, H, W), 1 = valid, 0 = hole.

    Returns:
        float32 scalar ≥ 0; zero when there are no holes.
    """
    region = dilated_hole_region(mask)
    comp = comp.float()
    both_x = region[..., :, 1:] * region[..., :, :-1]
    both_y = region[..., 1:, :] * region[..., :-1, :]
    diff_x = (comp[..., :, 1:] - comp[..., :, :-1]).abs()
    diff_y = (comp[..., 1:, :] - comp[..., :-1, :]).abs()
    return ((diff_x * both_x).sum() + (diff_y * both_y).sum()) / comp.numel()


# --------------------------------------------------------------------------------------------
# The whole loss
# --------------------------------------------------------------------------------------------

#: Names of the loss terms, in the order of :class:`LossWeights` (plus ``"total"`` in results).
LOSS_TERMS = ("valid", "hole", "perceptual", "style_out", "style_comp", "tv")


class PConvLoss(nn.Module):
    """The paper's loss: every term separately plus their weighted sum.

    Args:
        weights: :class:`LossWeights` (default: the paper's 1, 6, 0.05, 120, 120, 0.1).
            With :meth:`LossWeights.pixel_only` (perceptual and style weights 0) no VGG16 is
            built or loaded, ``vgg`` / ``vgg_weights`` are ignored and the perceptual and style
            terms are reported as 0: the loss for offline machines.
        vgg: a feature extractor returning a list of feature maps (default: built with
            :func:`vgg16_feature_extractor` from ``vgg_weights``). It is a submodule, so
            ``loss.to(device)`` moves it; it stays frozen and in eval mode.
        vgg_weights: passed to :func:`vgg16_feature_extractor` when ``vgg`` is None
            (``"imagenet"``, a path, or ``None`` for random weights with a warning).

    ``forward(output, target, mask, image_in=None)``:

    - ``output``: ``I_out`` (N, 3, H, W) float in [0, 1] (the network's prediction);
    - ``target``: ``I_gt`` (N, 3, H, W);
    - ``mask``: (N, 1, H, W) or (N, 3, H, W), 1 = valid, 0 = hole;
    - ``image_in``: ``I_in``, the masked input; default ``target`` (the same on valid pixels,
      which are the only ones the composite takes from it).

    Returns a dict of float32 scalars: the **unweighted** terms ``valid``, ``hole``,
    ``perceptual``, ``style_out``, ``style_comp``, ``tv`` and ``total`` = their weighted sum.
    Only ``total`` needs ``.backward()``; log the others.
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        *,
        vgg: nn.Module | None = None,
        vgg_weights: WeightsSpec = "imagenet",
    ) -> None:
        super().__init__()
        check_type("weights", weights, LossWeights, optional=True)
        self.weights = weights or LossWeights()
        self.vgg: nn.Module | None = None
        if self.weights.needs_vgg:
            self.vgg = vgg if vgg is not None else vgg16_feature_extractor(vgg_weights)

    def forward(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        image_in: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        check_loss_inputs(output, target, mask, image_in)
        follow_free_cores()  # the CPU thread policy, when applied (pconv_lib.runtime)
        mask = mask.to(output.dtype)
        image_in = target if image_in is None else image_in
        comp = composite(output, image_in, mask)

        terms = {
            "valid": valid_loss(output, target, mask),
            "hole": hole_loss(output, target, mask),
        }
        if self.vgg is not None:
            n = output.shape[0]
            # One VGG pass over [out; comp; gt]; the ground truth needs no graph.
            features = self.vgg(torch.cat([output, comp, target.detach()], dim=0))
            out_f = [f[:n] for f in features]
            comp_f = [f[n : 2 * n] for f in features]
            gt_f = [f[2 * n :].detach() for f in features]
            terms["perceptual"] = perceptual_loss(out_f, comp_f, gt_f)
            terms["style_out"] = style_loss(out_f, gt_f)
            terms["style_comp"] = style_loss(comp_f, gt_f)
        else:  # pixel-only weights: no VGG16, the three feature terms are not computed
            zero = output.new_zeros((), dtype=torch.float32)
            terms.update(perceptual=zero, style_out=zero, style_comp=zero)
        terms["tv"] = total_variation_loss(comp, mask)
        terms = {name: terms[name] for name in LOSS_TERMS}
        weights = self.weights.as_dict()
        terms["total"] = sum(weights[name] * terms[name] for name in LOSS_TERMS)
        return terms

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.weights.as_dict().items())
