"""Checks that need a CUDA GPU: skipped (never failed) without one. ``bench/gpu_check.sh`` runs them.

AMP training steps (fp16 with loss scaling, bf16), the compiled model on the GPU, a checkpoint
round trip between GPU and CPU, and ``predict`` on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _batch(n=2, size=64, seed=0):
    from pconv_lib.masks import random_irregular_mask

    gen = torch.Generator().manual_seed(seed)
    mask = torch.stack(
        [torch.from_numpy(random_irregular_mask(size, size, seed + i)).float()[None] for i in range(n)]
    )
    return {"image": torch.rand(n, 3, size, size, generator=gen), "mask": mask}


def _trainer(tmp_path, **overrides):
    from pconv_lib.train import Trainer
    from pconv_lib.train_config import TrainConfig

    config = TrainConfig(
        name="cuda", image_size=64, depth=4, width=0.25, batch_size=2, steps=2, log_every=1,
        sample_every=1000, checkpoint_every=1000, vgg_weights=None, out_dir=str(tmp_path), **overrides,
    )
    return Trainer(config, _FakeData(), device="cuda", progress=False)


class _FakeData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        b = _batch(1, seed=i)
        return {"image": b["image"][0], "mask": b["mask"][0]}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_amp_training_step_on_cuda(tmp_path, amp_dtype):
    trainer = _trainer(tmp_path, amp_dtype=amp_dtype)
    assert trainer.use_amp and trainer.scaler.is_enabled() == (amp_dtype == "float16")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    terms = trainer.train_step(_batch())
    assert np.isfinite(terms["total"])
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compiled_channels_last_training_step_on_cuda(tmp_path):
    trainer = _trainer(tmp_path, compile=True, channels_last=True, amp_dtype="bfloat16")
    for _ in range(2):
        terms = trainer.train_step(_batch())
    assert np.isfinite(terms["total"])


def test_compiled_model_equals_eager_on_cuda():
    from pconv_lib.model import PConvUNet

    torch.manual_seed(0)
    model = PConvUNet(depth=4, width=0.25).cuda().eval()
    b = _batch()
    image, mask = b["image"].cuda(), b["mask"].cuda()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        ref, ref_mask = model(image, mask)
        got, got_mask = compiled(image, mask)
        with torch.autocast("cuda", dtype=torch.float16):
            half, _ = compiled(image, mask)
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)
    assert torch.equal(got_mask, ref_mask)
    torch.testing.assert_close(half.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_checkpoint_round_trip_cuda_to_cpu(tmp_path):
    from pconv_lib.runs.checkpoints import model_from_checkpoint

    trainer = _trainer(tmp_path)
    trainer.train_step(_batch())
    path = trainer.save("last.pt")
    model_gpu, _ = model_from_checkpoint(path, "cuda")
    model_cpu, config = model_from_checkpoint(path, "cpu")
    assert config.depth == 4
    b = _batch(seed=5)
    with torch.no_grad():
        out_gpu, _ = model_gpu(b["image"].cuda(), b["mask"].cuda())
        out_cpu, _ = model_cpu(b["image"], b["mask"])
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-3, atol=1e-3)


def test_predict_cli_on_cuda(tmp_path):
    import cv2

    from pconv_lib.app import cli

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    out = tmp_path / "out.png"
    for scale in ("single", "multi"):
        code = cli.main(["predict", "--checkpoint", "demo", "--image", str(tmp_path / "in.png"),
                         "--bucket", "4", "--scale", scale, "--device", "cuda", "-o", str(out)])
        assert code == 0 and cv2.imread(str(out)).shape == image.shape


def test_tiled_prediction_on_cuda_matches_cpu():
    from pconv_lib.model import PConvUNet
    from pconv_lib.tiling import predict_tiled

    torch.manual_seed(0)
    model = PConvUNet(depth=4, width=0.25).eval()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    mask = (rng.random((100, 150)) > 0.3).astype(np.uint8)
    cpu = predict_tiled(model, image, mask, tile_size=64, overlap=16).image
    gpu = predict_tiled(model.cuda(), image, mask, tile_size=64, overlap=16).image
    assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 2
