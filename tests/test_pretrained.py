"""The bundled demo model loads offline, works, and fails with one clear line when missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pconv_lib import masks, pretrained
from pconv_lib.runs.checkpoints import (
    DEMO_CHECKPOINT,
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint,
)


def test_demo_file_is_small_and_has_a_model_card():
    assert DEMO_CHECKPOINT.is_file()
    assert DEMO_CHECKPOINT.stat().st_size <= 15 * 2**20
    assert pretrained.MODEL_CARD.is_file()


def test_demo_model_is_eval_float32_and_fills_holes():
    model = pretrained.demo_model()
    assert not model.training and model.depth == 7
    assert all(p.dtype == torch.float32 for p in model.parameters())
    image = torch.linspace(0, 1, 128 * 128 * 3).reshape(1, 3, 128, 128)
    mask = torch.from_numpy(masks.random_irregular_mask(128, 128, 0).astype(np.float32))[None, None]
    with torch.no_grad():
        out, out_mask = model(image * mask, mask)
    assert out.shape == image.shape and torch.isfinite(out).all()
    # a trained model predicts something close to a smooth gradient in the holes
    holes = mask.expand_as(image) == 0
    assert (out - image).abs()[holes].mean() < 0.1


def test_demo_name_resolves_for_checkpoint_loaders():
    assert resolve_checkpoint("demo") == DEMO_CHECKPOINT
    state = load_checkpoint("demo")
    assert state["config"]["depth"] == 7
    model, config = model_from_checkpoint("demo")
    assert config.width == 0.5 and not model.training


def test_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(pretrained.DemoModelUnavailable, match="not found.*train_demo_model"):
        pretrained.demo_model(path=tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(pretrained.DemoModelUnavailable, match="unreadable"):
        pretrained.demo_model(path=broken)


def test_bundled_file_has_the_documented_layout_and_provenance():
    state = pretrained.load_demo_state()
    assert set(state) == {"model", "config", "step", "provenance"}
    assert state["config"]["name"] == "demo" and state["config"]["image_size"] == pretrained.demo_image_size()
    assert all(
        v.dtype == torch.float16 and v.device.type == "cpu"
        for v in state["model"].values()
        if v.is_floating_point()
    )
    # pixel losses only: the card and the provenance say so
    assert state["config"]["loss_weights"]["perceptual"] == 0 and state["config"]["vgg_weights"] is None
    assert pretrained.demo_provenance() == state["provenance"] and "Debian wallpaper" in state["provenance"]


def test_model_card_is_complete_for_the_bundled_file():
    card = pretrained.MODEL_CARD.read_text(encoding="utf-8")
    step = pretrained.load_demo_state()["step"]
    assert "placeholder" not in card.lower()
    assert f"Checkpoint step: {step}" in card
    for text in (
        "## Data",
        "## Loss",
        "## Evaluation",
        "## Reproduce",
        "OpenCV Telea",
        "biharmonic",
        "commit:",
    ):
        assert text in card


def test_demo_weights_with_nan_are_refused_naming_the_file(tmp_path):
    state = pretrained.load_demo_state()
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name].clone().fill_(float("inf"))
    broken = tmp_path / "demo_model.pt"
    torch.save(state, broken)
    refused = f"{broken}.*NaN or infinite values.*{name}.*train_demo_model"
    with pytest.raises(pretrained.DemoModelUnavailable, match=refused):
        pretrained.demo_model(path=broken)


def test_the_demo_model_computes_what_it_computed_before_the_redesign():
    """Issue 16: refactoring the model code must not move the demo model's output by more than
    1e-5 on the fixed input of ``tools/make_demo_reference.py``, in its fast form (what
    ``demo_model`` builds) and its readable one (``fast=False``)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
    from make_demo_reference import OUT, reference_input

    from pconv_lib.model import build_model

    expected = torch.load(OUT, weights_only=True)["output"]
    image, mask = reference_input()
    fast = pretrained.demo_model()
    readable = build_model(pretrained.load_demo_state()["config"], fast=False)
    readable.load_state_dict(fast.state_dict())
    with torch.no_grad():
        for model in (fast, readable.eval()):
            torch.testing.assert_close(model(image * mask, mask), expected, atol=1e-5, rtol=0)
