"""The ordinary-convolution twin of the PConv UNet (the paper's ablation, Fig. 2 e-f)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from torch import nn

from pconv_lib.data import mean_pixel
from pconv_lib.layers import PartialConv2d
from pconv_lib.model import PConvUNet, build_model, count_parameters, expected_parameter_count
from pconv_lib.runs.checkpoints import model_from_checkpoint, save_checkpoint
from pconv_lib.train_config import TrainConfig


def _batch(size: int = 32, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, size, size, generator=g)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.4).float()
    return image, mask


@pytest.mark.parametrize("depth,width", [(3, 0.125), (5, 0.25), (7, 0.5)])
def test_same_architecture_and_parameter_count(depth: int, width: float) -> None:
    partial = PConvUNet(depth, width)
    ordinary = PConvUNet(depth, width, layer="ordinary")
    assert count_parameters(ordinary) == count_parameters(partial) == expected_parameter_count(depth, width)
    shapes_p = {k: v.shape for k, v in partial.state_dict().items()}
    shapes_o = {k: v.shape for k, v in ordinary.state_dict().items() if k != "hole_fill"}
    assert shapes_o == shapes_p  # same layers, same names: identical depth, widths, BatchNorm, skips
    convs = [m for m in ordinary.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * depth and not any(isinstance(m, PartialConv2d) for m in convs)


def test_shapes_and_output_mask() -> None:
    image, mask = _batch()
    output, output_mask = PConvUNet(4, 0.25, layer="ordinary").eval()(image, mask)
    assert output.shape == image.shape
    assert output_mask.shape == (2, 1, 32, 32) and bool((output_mask == 1).all())


def test_holes_are_filled_with_the_constant_and_their_content_ignored() -> None:
    image, mask = _batch()
    model = PConvUNet(4, 0.25, layer="ordinary", hole_fill=0.5).eval()
    garbage = torch.where(mask == 0, torch.full_like(image, float("nan")), image)
    gray = torch.where(mask == 0, torch.full_like(image, 0.5), image)
    with torch.no_grad():
        a, _ = model(garbage, mask)
        b, _ = model(gray, mask)
        # with the holes filled the network sees a plain image: the mask is used nowhere else
        c, _ = model(gray, torch.ones_like(mask))
    assert torch.isfinite(a).all()
    assert torch.equal(a, b) and torch.equal(b, c)


def test_hole_fill_per_channel_mean_pixel(tmp_path) -> None:
    import cv2
    import numpy as np

    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 255, 0, 51  # BGR on disk
    cv2.imwrite(str(tmp_path / "a.png"), colour)
    fill = mean_pixel(tmp_path)
    assert fill == pytest.approx([0.2, 0.0, 1.0], abs=1e-3)  # RGB
    model = PConvUNet(3, 0.125, layer="ordinary", hole_fill=fill)
    assert model.hole_fill.flatten().tolist() == pytest.approx(fill)
    with pytest.raises(ValueError, match="hole_fill must be one value or 3"):
        PConvUNet(3, 0.125, layer="ordinary", hole_fill=[0.1, 0.2])
    with pytest.raises(ValueError, match="layer must be one of"):
        PConvUNet(3, 0.125, layer="gated")


def test_ordinary_trains_and_is_reproducible() -> None:
    def run() -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(0)
        model = PConvUNet(4, 0.25, layer="ordinary")
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        image, mask = _batch(n=4, seed=1)
        losses = []
        for _ in range(25):
            output, _ = model(image, mask)
            loss = (output - image).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, model.decoder[-1].conv.weight.detach().clone()

    losses, weight = run()
    assert losses[-1] < 0.5 * losses[0]
    losses2, weight2 = run()
    assert losses == losses2 and torch.equal(weight, weight2)


def test_checkpoint_round_trip_keeps_layer_and_fill(tmp_path) -> None:
    config = TrainConfig(image_size=32, depth=4, width=0.25, layer="ordinary", hole_fill=[0.3, 0.4, 0.5])
    model = build_model(config)
    path = tmp_path / "twin.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": asdict(config), "step": 3})
    loaded, loaded_config = model_from_checkpoint(path)
    assert loaded.layer == "ordinary" and loaded_config.layer == "ordinary"
    assert loaded.hole_fill.flatten().tolist() == pytest.approx([0.3, 0.4, 0.5])
    image, mask = _batch()
    with torch.no_grad():
        assert torch.equal(model.eval()(image, mask)[0], loaded(image, mask)[0])


def test_old_configs_build_partial_networks() -> None:
    model = build_model({"depth": 4, "width": 0.25})
    assert model.layer == "partial" and isinstance(model.encoder[0].conv, PartialConv2d)
    with pytest.raises(ValueError, match="layer must be one of"):
        TrainConfig(image_size=32, depth=4, layer="Ordinary")


def test_best_baseline_ratios_divides_by_the_best_classical_method_per_bucket() -> None:
    from pconv_lib.evaluate import BASELINES, EvaluationTable, best_baseline_ratios

    names = ["mine", *BASELINES]
    table = EvaluationTable(names, [1, 2])
    l1 = {"mine": (0.010, 0.030), "OpenCV Telea": (0.020, 0.024), "OpenCV Navier-Stokes": (0.012, 0.025),
          "scikit-image biharmonic": (0.015, 0.020)}
    table.scores = {m: {b: {"L1": l1[m][i], "PSNR": 30.0, "SSIM": 0.9} for i, b in enumerate([1, 2])}
                    for m in names}
    text = best_baseline_ratios(table, ["mine"])
    row = next(line for line in text.splitlines() if line.startswith("mine"))
    assert row.split()[1:] == [f"{0.010 / 0.012:.3f}", f"{0.030 / 0.020:.3f}"]
    assert text.splitlines()[-1].split()[-2:] == ["NS", "biharm."]


def test_the_shipped_ablation_pair_is_a_matched_pair() -> None:
    """Same architecture and recipe, only the layer differs; both inpaint a held-out photo."""
    from pconv_lib import masks, photos
    from pconv_lib.pretrained import ABLATION_CHECKPOINTS, ablation_pair, load_demo_state

    configs = {layer: load_demo_state(path)["config"] for layer, path in ABLATION_CHECKPOINTS.items()}
    differing = {k for k in configs["partial"] if configs["partial"][k] != configs["ordinary"].get(k)}
    assert differing <= {"layer", "name"}, differing
    assert configs["partial"]["layer"] == "partial" and configs["ordinary"]["layer"] == "ordinary"
    pair = ablation_pair()
    assert isinstance(pair["partial"].encoder[0].conv, PartialConv2d)
    assert type(pair["ordinary"].encoder[0].conv) is nn.Conv2d
    counts = {count_parameters(model) for model in pair.values()}
    assert counts == {expected_parameter_count(6, 0.25)}
    assert pair["ordinary"].hole_fill.flatten().tolist() == [0.5, 0.5, 0.5]
    photo = torch.from_numpy(photos.sample_photo("coffee", size=128)).permute(2, 0, 1).float().div(255)[None]
    mask = torch.from_numpy(masks.random_mask_in_bucket(128, 128, bucket=2, rng=0)).float()[None, None]
    errors = {}
    with torch.no_grad():
        for layer, model in pair.items():
            output, _ = model(photo * mask, mask)
            errors[layer] = ((output - photo).abs() * (1 - mask)).sum().item() / (3 * (1 - mask).sum().item())
    assert all(0 < e < 0.2 for e in errors.values()), errors  # both fill the holes with photo-like values
