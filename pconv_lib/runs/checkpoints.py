"""Checkpoints: written atomically (temporary file, then rename), loaded with ``weights_only``,
checked (finite weights, the architecture of their config) and turned back into a model
(:func:`model_from_checkpoint`, through :func:`pconv_lib.model.build_model`).

The one place that knows the word ``"demo"``: :func:`resolve_checkpoint` turns it into the bundled
demo checkpoint (:data:`DEMO_CHECKPOINT`), so every loader and the command line accept it;
:mod:`pconv_lib.pretrained` (above this module) builds the demo model from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pconv_lib.util.errors import BadValue
from pconv_lib.util.files import replace_atomically
from pconv_lib.model import PConvUNet, build_model
from pconv_lib.train_config import TrainConfig

#: The name that stands for the bundled demo model wherever a checkpoint is taken.
DEMO_NAME = "demo"
#: The bundled demo model (``tools/train_demo_model.py`` writes it; its card is next to it).
DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "demo_model.pt"


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``"demo"`` (when no file of that name exists) -> :data:`DEMO_CHECKPOINT`; else ``Path(path)``."""
    candidate = Path(path)
    if str(path) == DEMO_NAME and not candidate.exists():
        return DEMO_CHECKPOINT
    return candidate


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: to ``path.tmp`` first, then rename over ``path``.

    Raises:
        OSError: naming ``path`` when it cannot be written (disk full, read-only, permissions);
            the previous file at ``path`` is then untouched and ``path.tmp`` removed.
    """
    path = Path(path)
    try:
        return replace_atomically(path, lambda tmp: torch.save(state, tmp))
    except OSError as error:
        text = str(error).rstrip(")")
        failure = OSError(f"{text}; the previous {path.name}, if any, is intact)")
        failure.errno = error.errno  # the cause travels with the message
        raise failure from error


def _load_reason(error: BaseException) -> str:
    """A short reason for a failed ``torch.load`` - without torch's advice to set
    ``weights_only=False`` (which would run code from the file)."""
    text = str(error)
    low = text.lower()
    if "unsupported global" in low or "weightsunpickler" in low or "weights only load failed" in low:
        # from "Unsupported ..." on: torch 2.2 puts the weights_only=False advice on the same line
        detail = next((line[line.lower().index("unsupported") :].strip() for line in text.splitlines()
                       if "unsupported" in line.lower()), "")
        return "it holds Python objects other than tensors, which are refused for safety" + (
            f" ({detail.rstrip('.')})" if detail else ""
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if "weights_only" in first:
        first = ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code from the file is run).

    ``"demo"`` names the bundled course demo model (:func:`resolve_checkpoint`).

    Raises:
        FileNotFoundError: naming the file.
        ValueError: for a truncated, corrupt or foreign file, naming it.
    """
    path = resolve_checkpoint(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"checkpoint {path} is a folder; name a .pt file in it (e.g. {path / 'last.pt'})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for broken files
        raise BadValue(
            f"{path}: not a readable pconv checkpoint ({_load_reason(error)}). If a run "
            "was interrupted while saving, use the previous checkpoint (writes are atomic, so "
            "last.pt or best.pt next to it is intact)"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise BadValue(f"{path}: not a pconv checkpoint (no 'model'/'config' entries)")
    return state


def checkpoint_config(state: dict, path: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` stored in a checkpoint (``ValueError`` naming ``path`` when invalid)."""
    try:
        return TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as error:
        raise BadValue(f"{path}: its config is invalid ({error})") from None


def _describe(config: TrainConfig) -> str:
    layer = "" if config.layer == "partial" else f", layer={config.layer}"
    return f"depth={config.depth}, width={config.width}{layer}"


def load_model_weights(
    model: PConvUNet, state: dict, path: str | os.PathLike, *, expected: TrainConfig | None = None
) -> None:
    """Load a checkpoint's ``model`` weights into ``model`` with messages instead of size tracebacks.

    Raises:
        ValueError: the checkpoint was trained with another depth/width than ``expected`` (or
            ``model``), or its weights do not match its own config (a broken or edited file).
    """
    saved = checkpoint_config(state, path)
    mine = f"depth={getattr(model, 'depth', '?')}, width={getattr(model, 'width', '?')}"
    if expected is not None and (saved.depth, saved.width, saved.layer) != (
        expected.depth,
        expected.width,
        expected.layer,
    ):
        raise BadValue(
            f"cannot start from {path}: it was trained with {_describe(saved)}, this run has "
            f"{_describe(expected)}; pass the same --depth/--width as that run (or drop --checkpoint)"
        )
    check_finite_weights(state["model"], path)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else ""
        raise BadValue(
            f"{path}: its weights do not fit a PConvUNet with {mine} (its config says "
            f"{_describe(saved)}): {detail[:200]}; the file is damaged or was edited - use another checkpoint"
        ) from None


def check_finite_weights(weights: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a state dict holding NaN or infinite values, naming the file and the first tensor.

    Raises:
        ValueError: one line: the file, the tensor, and what to do.
    """
    bad = [
        name
        for name, value in weights.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        more = f" and {len(bad) - 1} other tensor(s)" if len(bad) > 1 else ""
        raise BadValue(
            f"{path}: its weights hold NaN or infinite values ({bad[0]}{more})",
            "the run had diverged when it was saved, or the file is damaged; use an earlier checkpoint",
        )


def check_config_fits_weights(state: dict, config: TrainConfig, path: str | os.PathLike) -> None:
    """Compare the model a checkpoint's config describes with its weights *before* building it:
    the model is built on the ``meta`` device (shapes only, no memory), so a config edited to a huge
    depth or width is refused in a moment instead of exhausting memory; then the parameters'
    bytes are compared with the memory available.

    Raises:
        ValueError: naming the file, what the config says and what the weights hold.
    """
    from pconv_lib.util.files import available_memory

    with torch.device("meta"):
        shapes = {key: tuple(value.shape) for key, value in build_model(config).state_dict().items()}
    weights = state["model"]
    held = {key: tuple(value.shape) for key, value in weights.items() if isinstance(value, torch.Tensor)}
    if shapes != held:
        said = sum(int(torch.Size(shape).numel()) for shape in shapes.values())
        has = sum(int(torch.Size(shape).numel()) for shape in held.values())
        raise BadValue(
            f"{path}: its weights ({has:,} numbers in {len(held)} tensors) do not fit the PConvUNet its "
            f"config describes ({_describe(config)}: {said:,} numbers): the file was edited or is damaged; "
            "use another checkpoint (nothing was built)"
        )
    need = sum(value.numel() * 4 for value in weights.values() if isinstance(value, torch.Tensor))
    free = available_memory()
    if free is not None and 2 * need > free:
        raise BadValue(
            f"{path}: its model needs about {2 * need / 1e9:.1f} GB to load and {free / 1e9:.1f} GB is free; "
            "free memory or use a machine with more"
        )


def model_from_checkpoint(
    path: str | os.PathLike, device: torch.device | str | None = None
) -> tuple[PConvUNet, TrainConfig]:
    """Rebuild the model of a checkpoint (architecture from its config, checked against its
    weights first: :func:`check_config_fits_weights`) in eval mode."""
    state = load_checkpoint(path)
    config = checkpoint_config(state, path)
    check_config_fits_weights(state, config, path)
    model = build_model(config)
    load_model_weights(model, state, path)
    return model.to(device or "cpu").eval(), config
