"""The course demo model: a small trained PConv UNet that ships with the library.

Learners on a laptop cannot train a useful inpainting model in a lesson, so the course ships one:
``pconv_lib/weights/demo_model.pt`` (``PConvUNet(depth=7, width=0.5)``, 6.45 M parameters, fp16
weights, about 13 MB), trained on 256x256 crops of real photographs with the pixel losses (valid,
hole, total variation). Its model card, ``pconv_lib/weights/MODEL_CARD.md``, gives the data, the
recipe, the hardware and its evaluation table; ``tools/train_demo_model.py`` reproduces it.

The file has the layout of a :class:`pconv_lib.train.Trainer` checkpoint (``model`` state dict,
``config`` dict, ``step``, plus a ``provenance`` string) and loads through
:mod:`pconv_lib.runs.checkpoints` (which also resolves ``--checkpoint demo`` wherever the command line
takes a checkpoint). This module stands on :mod:`pconv_lib.runs.checkpoints` and :mod:`pconv_lib.model`
(step 3); any later step may use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pconv_lib.model import PConvUNet, build_model
from pconv_lib.runs.checkpoints import DEMO_CHECKPOINT, load_checkpoint, load_model_weights
from pconv_lib.util.errors import BadValue, DemoModelUnavailable

MODEL_CARD = DEMO_CHECKPOINT.with_name("MODEL_CARD.md")
#: The paper's ablation at course scale: the same small UNet trained identically with partial and
#: with ordinary convolutions (``PConvUNet(depth=6, width=0.25, layer=...)``; see the model card).
ABLATION_CHECKPOINTS = {
    layer: DEMO_CHECKPOINT.with_name(f"ablation_{layer}.pt") for layer in ("partial", "ordinary")
}


_FIX = (
    "reinstall the course (pip install -e . from a full clone of the repository) or rebuild it "
    "with tools/train_demo_model.py"
)


def load_demo_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The demo checkpoint as a dict (``model``, ``config``, ``step``), loaded with ``weights_only``.

    Raises:
        DemoModelUnavailable: the file is missing or is not a readable checkpoint; the message
            says how to get it back.
    """
    path = Path(path) if path is not None else DEMO_CHECKPOINT
    if not path.is_file():
        raise DemoModelUnavailable(f"demo model not found at {path}: {_FIX}")
    try:
        return load_checkpoint(path)
    except BadValue as error:  # truncated, corrupt, a Git LFS pointer, or not a checkpoint
        raise DemoModelUnavailable(f"demo model {path} is unreadable ({error.problem}): {_FIX}") from None


def demo_model(device: str | torch.device | None = None, path: str | os.PathLike | None = None) -> PConvUNet:
    """The bundled demo model as a float32 :class:`PConvUNet` in eval mode on ``device`` (default cpu).

    Input: image float ``(N, 3, H, W)`` in [0, 1], mask ``(N, 1, H, W)`` with 1 = valid, 0 = hole,
    H and W multiples of ``2**model.depth`` = 128 (use :mod:`pconv_lib.tiling` for any size).
    It was trained on 256x256 crops with the paper's strokes and fills holes of that size best.
    Called directly it is one pass: for holes far wider than it has seen (an object painted out;
    :func:`pconv_lib.tiling.wide_hole_notice`) use :func:`pconv_lib.tiling.predict_multiscale`.

    Raises:
        DemoModelUnavailable: the file is missing or unreadable, or its weights are not finite or
            do not fit its config.
    """
    where = Path(path) if path is not None else DEMO_CHECKPOINT
    state = load_demo_state(where)
    model = build_model(state["config"])
    try:
        load_model_weights(model, state, where)  # the checks every checkpoint gets
    except BadValue as error:
        raise DemoModelUnavailable(f"demo model {error.problem}", _FIX) from None
    return model.to(device or "cpu").eval()


def demo_image_size() -> int:
    """The crop size the demo model was trained on (256)."""
    return int(load_demo_state()["config"]["image_size"])


def demo_provenance() -> str:
    """One line on where the demo model comes from (data, recipe, hardware); details in the model card."""
    state = load_demo_state()
    return str(state.get("provenance") or f"step {state.get('step', '?')}; see {MODEL_CARD.name}")


def ablation_pair(device: str | torch.device | None = None) -> dict[str, PConvUNet]:
    """The matched ablation pair, ``{"partial": model, "ordinary": model}``, float32, eval mode.

    Both are ``PConvUNet(depth=6, width=0.25)`` trained with exactly the same recipe, one with
    partial convolutions, one with ordinary ones (holes filled with 0.5); inputs as for
    :func:`demo_model`, with H and W multiples of 64.

    Raises:
        DemoModelUnavailable: a file is missing or unreadable.
    """
    return {layer: demo_model(device, path) for layer, path in ABLATION_CHECKPOINTS.items()}
