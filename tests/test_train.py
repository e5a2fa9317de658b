"""pconv_lib.train: steps, checkpoints, exact resume, the two phases, DDP on CPU (gloo)."""

from __future__ import annotations

import csv
import os
import socket
import warnings

import pytest
import torch
import torch.multiprocessing as mp

from pconv_lib.data import sample_photo_dataset
from pconv_lib.runs.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from pconv_lib.runs.sampling import EpochBatchSampler
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig

SIZE = 32


def _config(tmp_path, **overrides):
    values = dict(
        name="run",
        image_size=SIZE,
        depth=3,
        width=0.125,
        batch_size=2,
        steps=4,
        steps_per_epoch=2,
        val_steps=1,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        vgg_weights=None,
        out_dir=str(tmp_path),
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _data(seed=0):
    return sample_photo_dataset(
        SIZE, names=["astronaut", "coffee", "chelsea"], repeats=2, photo_scale=0.125, seed=seed
    )


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_config_validates_sizes_and_stage():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth = 128"):
        TrainConfig(image_size=200, depth=7)
    with pytest.raises(ValueError, match="'train' or 'finetune'"):
        TrainConfig(stage="warmup")
    assert TrainConfig().learning_rate == 2e-4
    assert TrainConfig(stage="finetune").learning_rate == 5e-5


def test_fit_logs_saves_and_reduces_nothing_silently(tmp_path, loss):
    trainer = Trainer(_config(tmp_path), _data(), _data(seed=9), loss=loss, progress=False)
    before = _weights(trainer)
    history = trainer.fit()
    assert trainer.step == 4
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    run = tmp_path / "run"
    assert {"last.pt", "best.pt", "metrics.csv", "samples", "tensorboard"} <= {p.name for p in run.iterdir()}
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["kind"] for r in rows].count("train") == 4 and [r["kind"] for r in rows].count("val") == 2
    for row in rows:
        for key in ("total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"):
            assert float(row[key]) >= 0
    assert len(list((run / "samples").glob("*.png"))) == 2
    assert any(p.name.startswith("events") for p in (run / "tensorboard").iterdir())
    assert history[-1]["step"] == 4


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, loss):
    straight = Trainer(_config(tmp_path / "a"), _data(), loss=loss, progress=False)
    straight.fit()

    first = Trainer(_config(tmp_path / "b"), _data(), loss=loss, progress=False)
    first.fit(steps=2)
    assert load_checkpoint(tmp_path / "b" / "run" / "last.pt")["step"] == 2
    del first
    resumed = Trainer(_config(tmp_path / "b"), _data(), loss=loss, progress=False)
    resumed.resume(tmp_path / "b" / "run" / "last.pt")
    assert resumed.step == 2
    resumed.fit()
    assert resumed.step == 4
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    for a, b in zip(
        straight.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values()
    ):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"], rtol=0, atol=1e-6)


def test_resume_refuses_a_different_architecture(tmp_path, loss):
    trainer = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    trainer.save("last.pt")
    other = Trainer(_config(tmp_path, width=0.25), _data(), loss=loss, progress=False)
    with pytest.raises(ValueError, match="width=0.125"):
        other.resume(tmp_path / "run" / "last.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.ones(2)}, "config": {}})
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:  # half-written file, then the process dies
            handle.truncate(10)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "config": {}})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="broken.pt"):
        load_checkpoint(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(1)}, foreign)
    with pytest.raises(ValueError, match="not a pconv checkpoint"):
        load_checkpoint(foreign)


def test_checkpoints_load_with_weights_only(tmp_path, loss):
    trainer = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    path = trainer.save("last.pt")
    state = torch.load(path, weights_only=True)
    assert set(state) >= {"model", "optimizer", "scaler", "step", "config"}
    model, config = model_from_checkpoint(path)
    assert config.width == 0.125 and not model.training


def test_finetune_uses_phase_two_settings(tmp_path, loss):
    phase1 = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    phase1.fit(steps=1)
    path = phase1.save("last.pt")
    phase2 = Trainer(
        _config(tmp_path, name="ft", stage="finetune"), _data(), loss=loss, progress=False, init_from=path
    )
    assert phase2.optimizer.param_groups[0]["lr"] == 5e-5
    assert phase2.model.encoder_bn_frozen
    torch.testing.assert_close(phase2.model.state_dict(), phase1.model.state_dict())
    frozen = {
        k: v.clone() for k, v in phase2.model.state_dict().items() if k.startswith("encoder") and "bn" in k
    }
    assert frozen, "the encoder has BatchNorm layers"
    phase2.fit(steps=2)
    for key, value in frozen.items():
        assert torch.equal(phase2.model.state_dict()[key], value), key


def test_nan_loss_stops_with_a_clear_error(tmp_path, loss):
    trainer = Trainer(_config(tmp_path, lr=1e30), _data(), loss=loss, progress=False)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="last.pt"):
        trainer.fit(steps=1)


def test_batch_sampler_is_resumable_and_shards_ranks():
    data = list(range(10))
    full = list(EpochBatchSampler(data, 2, seed=1, num_batches=12))
    tail = list(EpochBatchSampler(data, 2, seed=1, start=5, num_batches=7))
    assert full[5:] == tail
    assert sorted(sum(full[:5], [])) == data  # one pass covers every item once
    rank0 = list(EpochBatchSampler(data, 1, seed=1, num_batches=5, rank=0, world_size=2))
    rank1 = list(EpochBatchSampler(data, 1, seed=1, num_batches=5, rank=1, world_size=2))
    assert [a + b for a, b in zip(rank0, rank1)] == list(EpochBatchSampler(data, 2, seed=1, num_batches=5))
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(list(range(3)), 4, seed=0)


class _EpochRecorder(list):
    def set_epoch(self, epoch):
        self.epochs = getattr(self, "epochs", []) + [epoch]


def test_batch_sampler_follows_the_pass_permutation_and_sets_each_pass_once():
    """Batch b of pass p is slice b of randperm(n, seed * 1_000_003 + p), whatever the start; the
    dataset hears set_epoch once per pass the sampler enters (the permutation is made once too)."""
    data = _EpochRecorder(range(10))
    batches = list(EpochBatchSampler(data, 3, seed=4, start=2, num_batches=7))  # 3 batches a pass
    for batch, got in enumerate(batches, start=2):
        epoch, within = divmod(batch, 3)
        order = torch.randperm(10, generator=torch.Generator().manual_seed(4 * 1_000_003 + epoch))
        assert got == order[within * 3 : (within + 1) * 3].tolist()
    assert data.epochs == [0, 1, 2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    config = TrainConfig(
        name="ddp",
        image_size=SIZE,
        depth=3,
        width=0.125,
        batch_size=2,
        steps=2,
        steps_per_epoch=10,
        log_every=1,
        checkpoint_every=1,
        vgg_weights=None,
        out_dir=out_dir,
        seed=0,
    )
    trainer = Trainer(config, _data(), progress=False, device="cpu")
    trainer.fit()
    torch.save(
        {"world": trainer.world_size, "model": trainer.model.state_dict()},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_distributed_data_parallel_on_cpu_with_gloo(tmp_path):
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    results = {}
    for rank in range(2):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        results[rank] = (saved["world"], saved["model"])
    assert results[0][0] == results[1][0] == 2
    for key, value in results[0][1].items():
        if "running" in key or "num_batches" in key:
            continue  # BatchNorm statistics are per process (no SyncBatchNorm)
        torch.testing.assert_close(results[1][1][key], value, msg=key)
    assert (tmp_path / "ddp" / "last.pt").exists()
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 2
