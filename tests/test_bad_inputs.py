"""The bad-input catalogue (issue 10): every case gets one clear line and a documented exit code.

Each CLI case runs ``pconv_lib.app.cli.main([...])`` (a few run ``python -m pconv_lib`` in a
subprocess) and asserts the exit code, the words of the message and that no traceback is
printed; API cases assert the exception type and message. Exit codes: 2 bad input, 3 NaN loss,
130 interrupted, 1 unexpected (see ``pconv_lib.app.cli``). Also here: exact resume from
``interrupted.pt`` and ``last.pt`` (weights, optimiser state, BatchNorm buffers) and run-folder
protection. Everything uses tiny models on the CPU.
"""

from __future__ import annotations

import csv
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_runner import run_cli
from torch import nn

from pconv_lib import masks, photos
from pconv_lib.app import cli
from pconv_lib.data import InpaintingDataset, UnreadableImagesError, sample_photo_dataset
from pconv_lib.losses import load_vgg16_pool3_state_dict
from pconv_lib.runs.checkpoints import load_checkpoint, model_from_checkpoint
from pconv_lib.runs.interrupts import TrainingInterrupted
from pconv_lib.runs.run_folder import RunFolderInUseError, RunFolderLocked
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig
from pconv_lib.util.errors import TrainingDiverged

SIZE = 32
TINY = ["--image-size", "32", "--depth", "3", "--width", "0.125", "--batch-size", "2"]
QUIET = ["--random-vgg", "--num-workers", "0", "--no-progress"]
UNWRITABLE = Path("/sys/pconv_test_unwritable")  # sysfs: not writable, even by root
#: The stop signals this platform has (Windows has no SIGHUP), and a mark for POSIX-only tests.
SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
POSIX = pytest.mark.skipif(os.name != "posix", reason="process groups, SIGHUP and symlinks: POSIX")


# --------------------------------------------------------------------------------------------
# Fixtures: tiny photo folders and checkpoints (made with the API: fast)
# --------------------------------------------------------------------------------------------


def _write_photo(path: Path, name: str, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(photos.sample_photo(name, size), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        _write_photo(root / "train" / f"{i}.jpg", name)
    for i, name in enumerate(["camera", "brick"]):
        _write_photo(root / "val" / f"{i}.png", name)
    _write_photo(root / "small_val" / "one.png", "camera")
    (root / "corrupt").mkdir()
    for i in range(3):
        (root / "corrupt" / f"{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _write_photo(root / "mixed" / "a.png", "camera")
    (root / "mixed" / "b.jpg").write_bytes(b"broken")
    _write_photo(root / "image.png", "rocket", 40)
    return root


class _PixelLoss(nn.Module):
    """The paper's pixel terms only: enough to train, much faster than VGG on a shared CPU."""

    def forward(self, output, image, mask, image_in):
        hole = ((1 - mask) * (output - image)).abs().mean()
        valid = (mask * (output - image)).abs().mean()
        return {"total": 6 * hole + valid, "hole": hole, "valid": valid}


@pytest.fixture(scope="module")
def loss():
    return _PixelLoss()


def _config(out_dir, **overrides) -> TrainConfig:
    values = dict(
        name="run", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=4, steps_per_epoch=100,
        val_steps=1, log_every=1, sample_every=100, checkpoint_every=2, vgg_weights=None,
        out_dir=str(out_dir), seed=3,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def _data(seed=0):
    return sample_photo_dataset(
        SIZE, names=["astronaut", "coffee", "chelsea"], repeats=2, photo_scale=0.125, seed=seed
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, loss) -> Path:
    """An untrained depth-3 width-0.125 checkpoint (enough for predict/evaluate/start-from)."""
    out = tmp_path_factory.mktemp("ckpt")
    return Trainer(_config(out), _data(), loss=loss, progress=False).save("last.pt")


@pytest.fixture(scope="module")
def wide_ckpt(tmp_path_factory, loss) -> Path:
    out = tmp_path_factory.mktemp("wide")
    return Trainer(_config(out, width=0.25), _data(), loss=loss, progress=False).save("last.pt")



def assert_error(capsys, argv, *needles: str, code: int = 2) -> str:
    """Run the CLI; assert the exit code, one ``error:`` line naming all ``needles``."""
    got, out, err = run_cli(capsys, *argv)
    assert got == code, (got, out, err)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "weights_only=False" not in err
    return lines[0]


def train_args(root: Path, log: Path, *extra: str, name: str = "r") -> list[str]:
    return ["train", "--name", name, "--train", root / "train", "--log-path", log, *TINY, *QUIET, *extra]


# --------------------------------------------------------------------------------------------
# Lost or mixed-up runs
# --------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_reusing_a_run_name_is_refused_and_leaves_the_first_run_alone(root, tmp_path, capsys):
    args = train_args(root, tmp_path, "--steps", "1", "--validation", root / "val", "--steps-per-epoch", "1")
    assert run_cli(capsys, *args)[0] == 0
    before = _snapshot(tmp_path / "r")
    assert {"last.pt", "best.pt", "metrics.csv"} <= set(before)
    assert_error(capsys, args, "already holds a run", "--resume", "--name", "--overwrite")
    assert _snapshot(tmp_path / "r") == before
    # --overwrite clears the old run first: no stale best.pt from it (this run has no validation)
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "1", "--overwrite"))[0] == 0
    files = _snapshot(tmp_path / "r")
    assert "best.pt" not in files and load_checkpoint(tmp_path / "r" / "last.pt")["step"] == 1
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1"]


def test_a_second_trainer_with_the_same_name_cannot_touch_the_first(tmp_path, loss):
    first = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    first.fit(steps=2)
    before = _snapshot(tmp_path / "run")
    second = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    for action in (second.fit, lambda: second.save("last.pt"), lambda: second._log("train", {"total": 1.0})):
        with pytest.raises(RunFolderInUseError, match="overwrite"):
            action()
    assert _snapshot(tmp_path / "run") == before
    third = Trainer(_config(tmp_path), _data(), loss=loss, progress=False, overwrite=True)
    third.fit(steps=1)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1


def test_validation_smaller_than_a_batch_is_reported_before_training(root, tmp_path, capsys, loss):
    args = train_args(root, tmp_path, "--validation", root / "small_val", "--steps", "2")
    assert_error(capsys, args, "validation data has 1 item", "batch of 2")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(_config(tmp_path), _data(), [_data()[0]], loss=loss, progress=False)


def test_unwritable_log_path_is_reported_before_training(root, tmp_path, capsys):
    assert_error(capsys, train_args(root, UNWRITABLE), "not writable", str(UNWRITABLE))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_error(capsys, train_args(root, afile / "runs"), "is a file", str(afile))


def test_stale_tmp_files_are_removed_and_resume_does_not_repeat_metrics(tmp_path, loss):
    config = _config(tmp_path, keep_step_checkpoints=True)
    first = Trainer(config, _data(), loss=loss, progress=False)
    first.fit(steps=3)  # step_0000002.pt, then metrics up to step 3 ... and the machine dies
    first.close()
    (tmp_path / "run" / "last.pt").unlink()  # it died before last.pt (a later state is never discarded)
    (tmp_path / "run" / "last.pt.tmp").write_bytes(b"half a checkpoint")
    resumed = Trainer(config, _data(), loss=loss, progress=False)
    resumed.resume(tmp_path / "run" / "step_0000002.pt").fit()
    resumed.close()
    assert not list((tmp_path / "run").glob("*.tmp"))
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open())]
    assert steps == [1, 2, 3, 4]
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()  # purge_step: TensorBoard drops the events logged after the checkpoint
    assert [e.step for e in events.Scalars("train/total")] == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Exact resume: interrupted.pt and last.pt (weights, optimiser, BatchNorm buffers)
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _default_sigint():
    """Each test starts with Python's default Ctrl-C, SIGTERM and SIGHUP handling, however pytest
    was started (nohup and background jobs start with SIGINT or SIGHUP ignored), and the original
    handlers are put back afterwards."""
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    others = {s: signal.signal(s, signal.SIG_DFL) for s in SIGNALS if s != signal.SIGINT}
    yield
    signal.signal(signal.SIGINT, original)
    for signum, handler in others.items():
        signal.signal(signum, handler)


class _SigintAt(nn.Module):
    """The loss, but Ctrl-C arrives during forward call ``at`` (BatchNorm already updated)."""

    def __init__(self, inner: nn.Module, at: int, hard: bool = False) -> None:
        super().__init__()
        self.inner, self.at, self.hard, self.calls = inner, at, hard, 0

    def forward(self, *args):
        self.calls += 1
        if self.calls == self.at:
            if self.hard:  # a second Ctrl-C, or no handler: KeyboardInterrupt in mid-step
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
        return self.inner(*args)


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step
    for key, value in a.model.state_dict().items():  # weights and BatchNorm buffers
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sb[key][name], sa[key][name], rtol=0, atol=1e-6)


def test_resume_from_interrupted_and_from_last_equals_an_uninterrupted_run(tmp_path, loss):
    straight = Trainer(_config(tmp_path / "s"), _data(), loss=loss, progress=False)
    straight.fit(steps=3)
    at_three = Trainer(_config(tmp_path / "s3"), _data(), loss=loss, progress=False)
    at_three.resume(tmp_path / "s" / "run" / "last.pt")  # state after exactly 3 steps
    straight.fit()

    trainer = Trainer(_config(tmp_path / "i"), _data(), loss=_SigintAt(loss, at=3), progress=False)
    with pytest.raises(TrainingInterrupted, match=r"interrupted by SIGINT \(Ctrl-C\) at step 3") as caught:
        trainer.fit()
    assert caught.value.path == tmp_path / "i" / "run" / "interrupted.pt"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    saved = Trainer(_config(tmp_path / "i2"), _data(), loss=loss, progress=False)
    saved.resume(caught.value.path)
    _assert_same_state(at_three, saved)
    nbt = [v for k, v in saved.model.state_dict().items() if k.endswith("num_batches_tracked")]
    assert nbt and all(int(v) == 3 for v in nbt)  # BatchNorm saw exactly the 3 finished steps

    for checkpoint in (caught.value.path, tmp_path / "i" / "run" / "last.pt"):
        resumed = Trainer(_config(tmp_path / "i"), _data(), loss=loss, progress=False)
        resumed.resume(checkpoint).fit()
        _assert_same_state(straight, resumed)


def test_ctrl_c_in_mid_step_saves_nothing_inconsistent(tmp_path, loss):
    trainer = Trainer(_config(tmp_path), _data(), loss=_SigintAt(loss, at=3, hard=True), progress=False)
    with pytest.raises(TrainingInterrupted, match="nothing was saved") as caught:
        trainer.fit()
    assert caught.value.path is None and not (tmp_path / "run" / "interrupted.pt").exists()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_through_the_cli_prints_one_line_and_exits_128_plus_it(
    root, tmp_path, capsys, monkeypatch, signum
):
    from pconv_lib import train

    name = {"SIGINT": "SIGINT (Ctrl-C)", "SIGHUP": "SIGHUP (terminal closed)"}.get(signum.name, signum.name)

    real = train.Trainer.train_step

    def step(self, batch):
        if self.step == 1:
            signal.raise_signal(signum)
        return real(self, batch)

    monkeypatch.setattr(train.Trainer, "train_step", step)
    code, out, err = run_cli(capsys, *train_args(root, tmp_path, "--steps", "5"))
    assert code == 128 + signum
    assert [line for line in err.splitlines() if not line.startswith("warning: vgg16")] == [
        f"interrupted by {name} at step 2 of 5: saved {tmp_path / 'r' / 'interrupted.pt'}; "
        f"continue with the same command plus --resume {tmp_path / 'r' / 'interrupted.pt'} "
        "(without --overwrite)"
    ]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN)  # handlers restored


def _default_stop_signals() -> None:
    """In the child: the default SIGHUP/SIGTERM handling (nohup or a CI runner may ignore them, and
    ignored signals are inherited; the library rightly keeps an ignored SIGHUP ignored)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@POSIX
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_signal_in_a_real_process_saves_and_its_suggestion_works(root, tmp_path, capsys, signum):
    """SIGTERM (docker stop, schedulers; SIGINT and SIGHUP go the same way, see above) to
    ``python -m pconv_lib train``: exit 128 + the signal, one line, interrupted.pt loadable, the
    lock released; the command the line suggests continues the run."""
    argv = train_args(root, tmp_path, "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "1")
    argv = [str(a) for a in argv]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pconv_lib", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, preexec_fn=_default_stop_signals,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "r" / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "r" / ".pconv.lock").read_text().split()[0] == str(proc.pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    lines = [line for line in err.splitlines() if not line.startswith("warning: vgg16")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert f"interrupted by {signum.name}" in lines[0] and "--resume" in lines[0]
    saved = tmp_path / "r" / "interrupted.pt"
    step = load_checkpoint(saved)["step"]
    assert step >= 1 and not (tmp_path / "r" / ".pconv.lock").exists()
    # "the same command plus --resume <file>" (here with --steps one more, to end quickly)
    assert str(saved) in lines[0]
    code, out, err = run_cli(capsys, *argv, "--resume", saved, "--steps", str(step + 1))
    assert code == 0, err
    assert f"resumed {saved} at step {step}" in out and "steps 100000 -> " in out
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == step + 1


def test_sigterm_outside_training_is_one_line(tmp_path, capsys, monkeypatch):
    def stopped(args):
        signal.raise_signal(signal.SIGTERM)
        return 0

    monkeypatch.setattr(cli, "run_evaluate", stopped)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli(capsys, "evaluate")
    assert code == 128 + signal.SIGTERM and err.startswith("stopped by SIGTERM before evaluate finished")
    assert len(err.strip().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # main() puts the handlers back


# --------------------------------------------------------------------------------------------
# Clear errors instead of tracebacks: train
# --------------------------------------------------------------------------------------------


def test_checkpoint_from_another_architecture(root, tmp_path, capsys, wide_ckpt):
    assert_error(
        capsys, train_args(root, tmp_path, "--checkpoint", wide_ckpt), "trained with depth=3, width=0.25"
    )
    args = train_args(root, tmp_path, "--stage", "finetune", "--checkpoint", wide_ckpt)
    assert_error(capsys, args, "--depth/--width")


def test_checkpoint_whose_config_disagrees_with_its_weights(tmp_path, capsys, ckpt, root):
    state = load_checkpoint(ckpt)
    state["config"]["width"] = 0.25
    edited = tmp_path / "edited.pt"
    torch.save(state, edited)
    with pytest.raises(ValueError, match="do not fit"):
        model_from_checkpoint(edited)
    argv = ["predict", "--checkpoint", edited, "--image", root / "image.png", "-o", tmp_path / "o.png"]
    assert_error(capsys, argv, "edited.pt", "do not fit", "width=0.25")


@pytest.mark.parametrize("device, needle", [("banana", "unknown device"), ("cuda:0", "CUDA")])
def test_unknown_or_unavailable_device(root, tmp_path, capsys, device, needle, loss):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_error(capsys, train_args(root, tmp_path, "--device", device), needle)
    argv = ["predict", "--checkpoint", "x.pt", "--image", root / "image.png", "-o", tmp_path / "o.png"]
    assert_error(capsys, [*argv, "--device", device], needle)
    with pytest.raises(ValueError, match=needle):
        Trainer(_config(tmp_path), _data(), loss=loss, device=device, progress=False)


def test_every_training_file_corrupt(root, tmp_path, capsys):
    args = ["train", "--name", "r", "--train", root / "corrupt", "--log-path", tmp_path, *TINY, *QUIET]
    assert_error(capsys, args, "none of the image files could be read", "corrupt")
    dataset = InpaintingDataset(root / "corrupt", SIZE, max_retries=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(UnreadableImagesError, match="skipped as corrupt"):
            dataset[0]


def test_nan_loss_stops_with_exit_3_and_keeps_the_last_good_checkpoint(root, tmp_path, capsys, loss):
    args = train_args(root, tmp_path, "--lr", "1e30", "--steps", "6", "--checkpoint-every", "1")
    line = assert_error(capsys, args, "loss is", "last good checkpoint", code=3)
    assert "nan" in line or "inf" in line
    good = load_checkpoint(tmp_path / "r" / "last.pt")
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    trainer = Trainer(_config(tmp_path / "api"), _data(), loss=loss, progress=False)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="no checkpoint"):
        trainer.fit(steps=1)


def test_vgg_path_that_is_not_a_weights_file(root, tmp_path, capsys):
    text = tmp_path / "vgg.pth"
    text.write_text("these are not weights")
    args = ["train", "--name", "r", "--train", root / "train", "--log-path", tmp_path, *TINY]
    assert_error(capsys, [*args, "--vgg-path", text, "--no-progress"], "not a PyTorch weights file")
    assert_error(capsys, [*args, "--vgg-path", tmp_path / "none.pth"], "no such file")
    with pytest.raises(ValueError, match="not a PyTorch weights file"):
        load_vgg16_pool3_state_dict(text)


def test_batchnorm_with_one_value_per_channel_is_explained(root, tmp_path, capsys, loss):
    args = ["train", "--name", "r", "--log-path", tmp_path, "--image-size", "8", "--depth", "3"]
    assert_error(capsys, [*args, "--batch-size", "1", *QUIET], "BatchNorm", "batch size of 2")
    with pytest.raises(ValueError, match="BatchNorm"):
        Trainer(_config(tmp_path, image_size=8, batch_size=1), _data(), loss=loss, progress=False)


def test_other_train_arguments(root, tmp_path, capsys, ckpt):
    assert_error(capsys, train_args(root, tmp_path, "--stage", "finetune"), "needs --checkpoint")
    assert_error(capsys, train_args(root, tmp_path, name="../escape"), "--name")
    assert_error(capsys, train_args(root, tmp_path, "--steps", "0"), "--steps must be at least 1")
    assert_error(capsys, train_args(root, tmp_path, "--resume", tmp_path / "no.pt"), "no.pt")
    args = train_args(root, tmp_path, "--validation", tmp_path / "nope")
    assert_error(capsys, args, "--validation", "no such folder")


def test_malicious_or_broken_checkpoints_never_suggest_weights_only_false(tmp_path, capsys, root):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil(), "config": {}}, evil)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x02 truncated")
    image = root / "image.png"
    for path, needle in ((evil, "refused for safety"), (broken, "not a readable pconv checkpoint")):
        argv = ["predict", "--checkpoint", path, "--image", image, "-o", tmp_path / "o.png"]
        line = assert_error(capsys, argv, path.name, needle)
        assert "weights_only" not in line
        with pytest.raises(ValueError) as caught:
            load_checkpoint(path)
        assert "weights_only" not in str(caught.value)
    argv = ["predict", "--checkpoint", tmp_path, "--image", image, "-o", tmp_path / "o.png"]
    assert_error(capsys, argv, "is a folder")


# --------------------------------------------------------------------------------------------
# predict: outputs checked first, masks, tile size
# --------------------------------------------------------------------------------------------


def _predict(root, ckpt, output, *extra):
    return ["predict", "--checkpoint", ckpt, "--image", root / "image.png", "-o", output, *extra]


@pytest.mark.parametrize(
    "output, needle",
    [
        ("out", "no file extension"),
        ("out.xyz", "unknown image extension"),
        (".", "is a folder"),
        (str(UNWRITABLE / "out.png"), "not writable"),
    ],
)
def test_predict_output_path_is_checked_before_inference(root, tmp_path, capsys, output, needle):
    # the checkpoint does not exist: the output is checked first, so that error never shows
    output = tmp_path / output if not output.startswith("/") else Path(output)
    assert_error(capsys, _predict(root, tmp_path / "missing.pt", output), needle, str(output))


def test_predict_other_arguments(root, tmp_path, capsys, ckpt):
    out = tmp_path / "o.png"
    assert_error(capsys, _predict(root, ckpt, out, "--tile-size", "0"), "--tile-size must be at least 1")
    assert_error(capsys, _predict(root, ckpt, out, "--save-mask", tmp_path / "m.jpg"), "--save-mask")
    assert_error(capsys, _predict(root, ckpt, out, "--bucket", "9"), "--bucket")
    argv = ["predict", "--checkpoint", ckpt, "--image", tmp_path / "none.png", "-o", out]
    assert_error(capsys, argv, "image not found", "none.png")
    assert_error(capsys, ["predict", "--checkpoint", ckpt, "--image", tmp_path, "-o", out], "is a folder")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    assert_error(capsys, ["predict", "--checkpoint", ckpt, "--image", bad, "-o", out], "bad.jpg")
    assert_error(capsys, _predict(root, tmp_path / "none.pt", out), "checkpoint", "none.pt")


def _mask_file(path: Path, mask: np.ndarray) -> Path:
    cv2.imwrite(str(path), mask)
    return path


def test_inverted_and_all_hole_masks(root, tmp_path, capsys, ckpt):
    out = tmp_path / "o.png"
    mostly_holes = np.zeros((40, 40), np.uint8)
    mostly_holes[:8] = 255  # 80 % black = holes: probably drawn as white holes on black
    path = _mask_file(tmp_path / "inv.png", mostly_holes)
    code, _, err = run_cli(capsys, *_predict(root, ckpt, out, "--mask", path))
    assert code == 0 and "80% of the image as holes" in err and "--holes-are white" in err
    all_holes = _mask_file(tmp_path / "all.png", np.zeros((40, 40), np.uint8))
    assert_error(capsys, _predict(root, ckpt, out, "--mask", all_holes), "every pixel", "--holes-are white")
    grey = _mask_file(tmp_path / "grey.png", np.full((40, 40), 128, np.uint8))
    assert_error(capsys, _predict(root, ckpt, out, "--mask", grey), "not binary")


def test_binary_16_bit_mask_is_accepted(root, tmp_path, capsys, ckpt):
    mask16 = np.full((40, 40), 65535, np.uint16)
    mask16[10:20, 10:20] = 0
    path = _mask_file(tmp_path / "m16.png", mask16)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    loaded = masks.load_mask_png(path)
    assert loaded.dtype == np.uint8 and loaded.sum() == 1600 - 100
    code, _, err = run_cli(capsys, *_predict(root, ckpt, tmp_path / "o.png", "--mask", path))
    assert code == 0 and "warning" not in err


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def test_evaluate_buckets_and_unreadable_files(root, tmp_path, capsys):
    base = ["evaluate", "--size", "32", "--limit", "2"]
    assert_error(capsys, [*base, "--buckets", "a,b"], "--buckets", "'a,b'")
    assert_error(capsys, [*base, "--buckets", "0,9"], "--buckets")
    assert_error(capsys, [*base, "--images", root / "corrupt"], "all 3 image file(s) were skipped")
    code, out, err = run_cli(capsys, *base, "--images", root / "mixed", "--buckets", "1")
    assert code == 0 and "skipped 1 unreadable" in err and "b.jpg" in err and "SSIM" in out
    assert_error(capsys, [*base, "--no-baselines"], "nothing to evaluate")


# --------------------------------------------------------------------------------------------
# main(): documented exit codes, unexpected errors, subprocess
# --------------------------------------------------------------------------------------------


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for needle in ("exit codes", "130", "bad input"):
        assert needle in out
    assert "130" in cli.__doc__


def test_an_unexpected_error_is_one_line_with_exit_1(root, tmp_path, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("something broke")

    monkeypatch.setattr(cli, "run_evaluate", boom)
    monkeypatch.delenv("PCONV_TRACEBACK", raising=False)
    assert_error(capsys, ["evaluate"], "unexpected RuntimeError", "PCONV_TRACEBACK=1", code=1)


@pytest.mark.slow
def test_bad_input_in_a_subprocess_has_exit_2_and_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    result = subprocess.run(
        [sys.executable, "-m", "pconv_lib", "evaluate", "--buckets", "x"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: --buckets") and "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Other helpers' fixes (layers.py / model.py belong to h2-gpu): NaN in holes, dtype mismatch
# --------------------------------------------------------------------------------------------


def test_nan_in_hole_pixels_does_not_spread():
    from pconv_lib.layers import PartialConv2d
    from pconv_lib.model import PConvUNet

    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 0
    dirty = image.clone()
    dirty[..., 8:16, 8:16] = float("nan")
    dirty[..., 9, 9] = float("inf")
    layer = PartialConv2d(3, 4, 3, padding=1)
    wide = mask.expand(1, 3, 32, 32)
    torch.testing.assert_close(layer(dirty, wide)[0], layer(image * mask, wide)[0])
    model = PConvUNet(depth=3, width=0.125).eval()
    with torch.no_grad():
        assert torch.isfinite(model(dirty, mask)[0]).all()


def test_partial_conv_dtype_mismatch_is_explained():
    from pconv_lib.layers import PartialConv2d

    layer = PartialConv2d(3, 4, 3, padding=1)
    with pytest.raises((TypeError, ValueError), match="float32|dtype"):
        layer(torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.ones(1, 3, 8, 8, dtype=torch.float64))


# ============================================================================================
# Issue 18 (reliability, round 2): every way a run ends, every file a user really has
# ============================================================================================


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width`` x ``height`` but whose pixel data is a tiny (truncated)
    compressed stream: a few dozen bytes on disk, nothing allocated to make it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def _with_exif_orientation(path: Path, array: np.ndarray, orientation: int) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes())
    return path


# ---------------------------------------------------------------- 2. resources before work


def test_a_huge_photo_is_refused_from_its_header_before_decoding(tmp_path, capsys, monkeypatch, ckpt):
    from pconv_lib.util import files

    huge = _png_header_only(tmp_path / "huge.png", 30000, 30000)
    assert huge.stat().st_size < 200
    argv = ["predict", "--checkpoint", ckpt, "--image", huge, "-o", tmp_path / "o.png"]
    needles = ("huge.png", "30000x30000", "over the limit of 100 megapixels", "PCONV_MAX_PIXELS")
    assert_error(capsys, argv, *needles)
    wider = _png_header_only(tmp_path / "wider.png", 60000, 60000)
    assert_error(capsys, [*argv[:4], wider, *argv[5:]], "60000x60000", "over the limit")
    small = _write_photo(tmp_path / "small.png", "rocket", 40)
    assert_error(capsys, [*argv[:4], small, *argv[5:], "--max-pixels", "1000"], "1600 pixels", "1000 pixels")
    monkeypatch.setenv("PCONV_MAX_PIXELS", "lots")
    assert_error(capsys, argv, "PCONV_MAX_PIXELS='lots'", "positive whole number")
    # a raised limit: the memory estimate refuses it (nothing is decoded either way)
    monkeypatch.setenv("PCONV_MAX_PIXELS", str(4 * 10**9))
    monkeypatch.setattr(files, "available_memory", lambda: 2 * 10**9)
    assert_error(capsys, argv, "30000x30000", "needs about 72.0 GB", "2.0 GB is available")
    with pytest.raises(files.ImageTooLarge, match="wider.png"):
        from pconv_lib.util.image_files import load_image

        load_image(wider)


def test_a_huge_mask_is_refused_from_its_header_before_decoding(tmp_path, capsys, ckpt):
    from pconv_lib.masks import load_mask_png
    from pconv_lib.util import files

    huge = _png_header_only(tmp_path / "huge_mask.png", 30000, 30000)
    with pytest.raises(files.ImageTooLarge, match=r"huge_mask\.png is 30000x30000 .*over the limit"):
        load_mask_png(huge)
    photo = _write_photo(tmp_path / "photo.png", "rocket", 40)
    argv = ["predict", "--checkpoint", ckpt, "--image", photo, "--mask", huge, "-o", tmp_path / "o.png"]
    assert_error(capsys, argv, "huge_mask.png", "30000x30000", "over the limit")


def test_oversized_files_in_training_and_evaluation_folders_are_skipped_by_name(root, tmp_path, capsys):
    folder = tmp_path / "photos"
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        _write_photo(folder / f"{i}.jpg", name)
    huge = _png_header_only(folder / "huge.png", 30000, 30000)
    dataset = InpaintingDataset(folder, SIZE)
    with pytest.warns(UserWarning, match=r"huge\.png is 30000x30000 .*over the limit"):
        item = dataset[dataset.files.index(huge)]
    assert item["path"] != str(huge) and item["image"].shape == (3, SIZE, SIZE)
    argv = train_args(root, tmp_path / "runs", "--steps", "2", "--batch-size", "4")
    argv[argv.index(root / "train")] = folder
    code, _, err = run_cli(capsys, *argv)
    assert code == 0 and "huge.png" in err, err
    assert load_checkpoint(tmp_path / "runs" / "r" / "last.pt")["step"] == 2
    code, out, err = run_cli(capsys, "evaluate", "--images", folder, "--size", "32", "--buckets", "1")
    assert code == 0 and "huge.png" in err and "over the limit" in err and "SSIM" in out
    alone = _png_header_only(tmp_path / "alone" / "huge.png", 30000, 30000)
    assert_error(capsys, ["evaluate", "--images", alone.parent, "--size", "32"], "over the pixel limit")


@POSIX  # symbolic links need privileges on Windows
def test_folder_walks_are_finite_with_link_loops_and_duplicate_links(tmp_path):
    from pconv_lib.util.image_files import find_images

    photos = tmp_path / "photos"
    _write_photo(photos / "a.png", "camera", 16)
    _write_photo(photos / "sub" / "b.png", "brick", 16)
    (photos / "sub" / "loop").symlink_to(photos)  # a loop: walked forever without a guard
    (photos / "sub" / "deeper").symlink_to(photos / "sub")
    (photos / "again").symlink_to(photos / "sub")  # the same folder twice
    (photos / "c.png").symlink_to(photos / "a.png")  # the same file twice
    (photos / "broken.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match="reached a second time through symbolic links"):
        files = find_images(photos)
    assert [p.relative_to(photos).as_posix() for p in files] == ["a.png", "sub/b.png"]
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "x.png").symlink_to(photos / "a.png")  # a folder of links only is fine
    assert [p.name for p in find_images(linked)] == ["x.png"]


def test_exif_orientation_is_applied_to_photos_and_masks_before_comparing_them(tmp_path, capsys, ckpt):
    from PIL import Image, ImageOps

    from pconv_lib.util.image_files import apply_orientation, load_image

    array = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        image = Image.fromarray(array)
        image.info["exif"] = exif.tobytes()
        image.getexif()[0x0112] = orientation
        expected = np.asarray(ImageOps.exif_transpose(image))
        got = apply_orientation(array, orientation)
        np.testing.assert_array_equal(got, expected, err_msg=str(orientation))
    stored = photos.sample_photo("rocket", (40, 60))  # stored 60 wide, 40 high; shown turned: 40x60
    photo = _with_exif_orientation(tmp_path / "photo.jpg", stored, 6)
    assert load_image(photo).shape == (60, 40, 3)
    holes = np.full((40, 60), 255, np.uint8)
    holes[5:15, 5:25] = 0
    plain = _mask_file(tmp_path / "stored.png", holes)  # drawn on the stored, un-rotated photo
    argv = ["predict", "--checkpoint", ckpt, "--image", photo, "-o", tmp_path / "o.png", "--mask"]
    assert_error(capsys, [*argv, plain], "stored.png is 60x40", "photo is 40x60", "turned by 90 degrees")
    turned = _with_exif_orientation(tmp_path / "turned.png", holes, 6)  # the same, tagged like the photo
    code, _, err = run_cli(capsys, *argv, turned)
    assert code == 0, err
    square = _mask_file(tmp_path / "square.png", np.full((50, 50), 255, np.uint8))
    assert_error(capsys, [*argv, square], "another aspect ratio", "square.png is 50x50")
    half = _mask_file(tmp_path / "half.png", np.full((30, 20), 255, np.uint8))  # same ratio, half size
    assert run_cli(capsys, *argv, half)[0] == 0


# ---------------------------------------------------------------- 1. every way a run ends


def test_a_run_folder_is_owned_by_one_process_and_stale_locks_are_cleared(root, tmp_path, capsys, loss):
    """The lock is the operating system's (``filelock``): held, it refuses with the holder's PID;
    its process killed, it is free; a lock file whose PID now names another program (PID reuse)
    or another machine is only text, never an obstacle and never a reason to kill anything."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    lock = run_dir / ".pconv.lock"
    holder = (
        "import filelock, os, socket, sys, time\n"
        f"lock = filelock.FileLock({str(lock)!r}, timeout=0); lock.acquire()\n"
        f"open({str(lock)!r}, 'w').write(f'{{os.getpid()}} {{socket.gethostname()}}\\n')\n"
        "print('held', flush=True); time.sleep(60)"
    )
    helper = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout.readline().strip() == "held"
        line = assert_error(capsys, train_args(root, tmp_path, "--steps", "1"), "in use by process")
        assert f"process {helper.pid}" in line and "even a crash" in line
        with pytest.raises(RunFolderLocked, match=str(helper.pid)):
            Trainer(_config(tmp_path, name="r"), _data(), loss=loss, progress=False).fit(steps=1)
    finally:
        helper.kill()  # SIGKILL: no clean-up ran, the file stays
        helper.wait()
    assert lock.exists()
    # that process has ended: the operating system released its lock
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "1"))[0] == 0
    assert not lock.exists() and load_checkpoint(run_dir / "last.pt")["step"] == 1
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for note in (f"{other.pid} {socket.gethostname()}\n", "4242 another-machine token\n", ""):
            lock.write_text(note)  # left by a crash; the PID now a live, unrelated program
            step = load_checkpoint(run_dir / "last.pt")["step"]
            resume = train_args(root, tmp_path, "--steps", str(step + 1), "--resume", run_dir / "last.pt")
            code, _, err = run_cli(capsys, *resume)
            assert code == 0 and "kill" not in err, err
            assert not lock.exists() and other.poll() is None
    finally:
        other.kill()
        other.wait()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_names_the_path_and_leaves_nothing_half_written(root, tmp_path, capsys, monkeypatch, ckpt):
    real_write = Path.write_bytes

    def full_disk(self, data):
        if self.name.endswith(".tmp"):
            real_write(self, data[: len(data) // 2])  # half of it lands, then the disk is full
            _no_space()
        return real_write(self, data)

    argv = train_args(root, tmp_path, "--steps", "1")
    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", full_disk)
        assert_error(capsys, argv, str(tmp_path / "r" / "metrics.csv"), "No space left on device")
        left = sorted(p.name for p in (tmp_path / "r").rglob("*") if p.is_file())
        assert left == ["interrupted.pt"], left  # no metrics.csv(.tmp), no lock; the step is kept
        assert load_checkpoint(tmp_path / "r" / "interrupted.pt")["step"] == 1
        image = root / "image.png"
        out = tmp_path / "o.png"
        assert_error(capsys, _predict(root, ckpt, out), str(out), "No space left on device")
        assert not out.exists() and not (tmp_path / "o.png.tmp").exists() and image.is_file()
    assert_error(capsys, argv, f"--resume {tmp_path / 'r' / 'interrupted.pt'}")  # what to run next
    assert run_cli(capsys, *argv, "--resume", tmp_path / "r" / "interrupted.pt")[0] == 0  # and it works
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == 1  # the run ends with its last.pt
    assert not (tmp_path / "r" / ".pconv.lock").exists()

    def half_checkpoint(state, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        _no_space()

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", half_checkpoint)
        argv = train_args(root, tmp_path, "--steps", "1", name="c")
        line = assert_error(capsys, argv, str(tmp_path / "c" / "last.pt"), "No space left on device")
        assert "is intact" in line
    assert not list((tmp_path / "c").glob("*.tmp")) and not (tmp_path / "c" / "last.pt").exists()
    # the folder holds metrics but no checkpoint: the message suggests what works (not a last.pt)
    line = assert_error(capsys, argv, "no checkpoint to continue from", "--overwrite")
    assert "--resume" not in line
    assert run_cli(capsys, *argv, "--overwrite")[0] == 0


# ---------------------------------------------------------------- 3. nothing destroyed it did not create


def test_predict_never_writes_over_its_inputs_or_its_other_output(root, tmp_path, capsys, ckpt):
    photo = _write_photo(tmp_path / "photo.png", "rocket", 40)
    mask = _mask_file(tmp_path / "mask.png", np.full((40, 40), 255, np.uint8))
    before = photo.read_bytes(), mask.read_bytes()
    base = ["predict", "--checkpoint", ckpt, "--image", photo]
    assert_error(capsys, [*base, "-o", tmp_path / "." / "photo.png"], "same file as --image")
    assert_error(capsys, [*base, "--mask", mask, "-o", mask], "--output", "same file as --mask")
    out = tmp_path / "out.png"
    assert_error(capsys, [*base, "-o", out, "--save-mask", out], "same file as --save-mask")
    assert_error(capsys, [*base, "--mask", mask, "-o", out, "--save-mask", mask], "--save-mask", "--mask")
    assert (photo.read_bytes(), mask.read_bytes()) == before and not out.exists()


def test_overwrite_removes_only_the_files_training_wrote(root, tmp_path, capsys):
    args = train_args(root, tmp_path, "--steps", "1", "--test", root / "val", "--sample-every", "1")
    assert run_cli(capsys, *args)[0] == 0
    run_dir = tmp_path / "r"
    assert (run_dir / "samples" / "step_0000001.png").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    mine = {
        "notes.txt": b"my notes", "samples/my_drawing.png": b"mine", "tensorboard/README": b"mine",
        "data.tmp": b"mine", "photos/keep.jpg": b"mine",
    }  # fmt: skip
    for name, data in mine.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(data)
    old_events = set((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "2", "--overwrite"))[0] == 0
    for name, data in mine.items():
        assert (run_dir / name).read_bytes() == data, name
    assert not (run_dir / "samples" / "step_0000001.png").exists()  # this run saved no samples
    assert not old_events & set((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2


def test_the_run_folder_may_not_overlap_an_input_folder(root, tmp_path, capsys):
    photos = tmp_path / "photos"
    for i, name in enumerate(["astronaut", "coffee"]):
        _write_photo(photos / f"{i}.jpg", name)
    base = ["train", *TINY, *QUIET]
    assert_error(capsys, [*base, "--train", photos, "--log-path", tmp_path, "--name", "photos"], "overlap")
    assert_error(capsys, [*base, "--train", photos, "--log-path", photos, "--name", "r"], "--train", "overl")
    argv = [*base, "--train", root / "train", "--validation", photos, "--log-path", photos / "x"]
    argv += ["--name", "r"]
    assert_error(capsys, argv, "--validation", "overlap")
    assert sorted(p.name for p in photos.iterdir()) == ["0.jpg", "1.jpg"]


# ---------------------------------------------------------------- 4. nothing silently ignored


def test_resume_applies_and_records_a_changed_learning_rate(tmp_path, loss):
    first = Trainer(_config(tmp_path), _data(), loss=loss, progress=False)
    first.fit(steps=2)
    last = tmp_path / "run" / "last.pt"
    same = Trainer(_config(tmp_path), _data(), loss=loss, progress=False).resume(last)
    assert same.resume_changes == {} and same.optimizer.param_groups[0]["lr"] == 2e-4
    changed = Trainer(_config(tmp_path, lr=1e-3), _data(), loss=loss, progress=False).resume(last)
    assert changed.resume_changes == {"lr": (None, 1e-3)}
    assert all(group["lr"] == 1e-3 for group in changed.optimizer.param_groups)  # applied
    changed.fit(steps=1)
    state = load_checkpoint(last)
    assert state["config"]["lr"] == 1e-3 and state["step"] == 3  # recorded
    assert state["resume_history"] == [{"step": 2, "changed": {"lr": [None, 1e-3]}}]
    with pytest.raises(ValueError, match="depth=3"):
        Trainer(_config(tmp_path, depth=4), _data(), loss=loss, progress=False).resume(last)


def test_cli_resume_keeps_the_runs_settings_and_applies_only_the_flags_given(root, tmp_path, capsys):
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "1", "--seed", "5"))[0] == 0
    last = tmp_path / "r" / "last.pt"
    short = ["train", "--name", "r", "--train", root / "train", "--log-path", tmp_path, *QUIET]
    short += ["--resume", last]
    code, out, err = run_cli(capsys, *short, "--steps", "2", "--lr", "1e-3")  # no --image-size etc.
    assert code == 0, err
    assert "changed on resume" in out and "lr None -> 0.001" in out and "steps 1 -> 2" in out
    state = load_checkpoint(last)
    assert state["step"] == 2 and state["config"]["image_size"] == SIZE and state["config"]["seed"] == 5
    assert state["config"]["lr"] == 1e-3
    assert_error(capsys, [*short, "--depth", "4"], "trained with depth=3", "--depth 4")
    code, _, err = run_cli(capsys, *short, "--overwrite")  # with --resume: discards later state only
    assert code == 0 and load_checkpoint(last)["step"] == 2, err


def test_contradictory_or_ignored_flags_are_refused(root, tmp_path, capsys, ckpt):
    mask = _mask_file(tmp_path / "m.png", np.full((40, 40), 255, np.uint8))
    out = tmp_path / "o.png"
    assert_error(capsys, _predict(root, ckpt, out, "--mask", mask, "--bucket", "3"), "--bucket", "--mask")
    assert_error(capsys, _predict(root, ckpt, out, "--mask", mask, "--seed", "1"), "--seed chooses")
    assert_error(capsys, _predict(root, ckpt, out, "--holes-are", "white"), "--holes-are", "--mask")
    assert_error(capsys, train_args(root, tmp_path, "--holes-are", "white"), "--holes-are", "--masks")


def test_weights_with_nan_or_inf_are_refused_on_load_naming_the_file(root, tmp_path, capsys, ckpt):
    state = load_checkpoint(ckpt)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name].clone().fill_(float("nan"))
    bad = tmp_path / "diverged.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=f"diverged.pt: its weights hold NaN or infinite values \\({name}"):
        model_from_checkpoint(bad)
    argv = ["predict", "--checkpoint", bad, "--image", root / "image.png", "-o", tmp_path / "o.png"]
    line = assert_error(capsys, argv, "diverged.pt", "NaN or infinite", "earlier checkpoint")
    assert "image" not in line.split("diverged.pt")[1]  # the checkpoint is blamed, not the photo
    argv = ["evaluate", "--checkpoint", bad, "--size", "32", "--buckets", "1"]
    assert_error(capsys, argv, "diverged.pt", "NaN")
    assert_error(capsys, train_args(root, tmp_path, "--checkpoint", bad), "diverged.pt", "NaN")


def test_psnr_of_identical_images_is_capped_and_means_stay_finite():
    from pconv_lib import evaluate

    image = photos.sample_photo("astronaut", 32)
    same = evaluate.image_metrics(image, image)
    assert same["PSNR"] == pytest.approx(10 * np.log10(255**2 * image.size)) and same["L1"] == 0
    off_by_one = image.copy()
    off_by_one[0, 0, 0] ^= 1
    assert evaluate.image_metrics(image, off_by_one)["PSNR"] <= same["PSNR"]
    table = evaluate.evaluate_methods({"copy": lambda img, mask: img}, [image], [1])
    assert np.isfinite(table.scores["copy"][1]["PSNR"]) and "inf" not in table.to_text()


# ---------------------------------------------------------------- 6. numbers out of range


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--image-size", "100000"], "--image-size must be at most 8192 (valid: 1..8192)"),
        (["--depth", "40"], "--depth must be at most 10"),
        (["--width", "0"], "--width must be at least 0.01"),
        (["--width", "1e9"], "--width must be at most 8.0"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--steps", "1000000000000"], "--steps must be at most 1000000000"),
        (["--seed", "-1"], "--seed must be at least 0 (valid: 0..4294967295)"),
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--lr", "-1"], "--lr must be a finite number > 0"),
        (["--lr", "inf"], "--lr must be a finite number > 0"),
        (["--num-workers", "100000"], "--num-workers must be at most 256"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
        (["--max-pixels", "0"], "--max-pixels must be at least 1"),
    ],
)
def test_numbers_out_of_range_name_the_flag_and_its_range(root, tmp_path, capsys, extra, needle):
    line = assert_error(capsys, train_args(root, tmp_path, *extra), needle)
    assert "bug" not in line and not (tmp_path / "r").exists()


def test_numbers_out_of_range_in_predict_and_the_api(root, tmp_path, capsys, ckpt):
    out = tmp_path / "o.png"
    assert_error(capsys, _predict(root, ckpt, out, "--tile-size", "10000000"), "--tile-size must be at most")
    assert_error(capsys, _predict(root, ckpt, out, "--seed", "-3"), "--seed must be at least 0")
    assert_error(capsys, _predict(root, ckpt, out, "--max-pixels", "-5"), "--max-pixels must be at least 1")
    cases = [("depth", 40, "depth must be at most 10"), ("lr", float("nan"), "lr must be")]
    for field, value, needle in cases:
        with pytest.raises(ValueError, match=needle):
            _config(tmp_path, **{field: value})


def test_an_error_between_two_steps_keeps_the_progress(root, tmp_path, capsys, monkeypatch):
    from pconv_lib import data

    real = data.InpaintingDataset.__getitem__
    calls = {"n": 0}

    def flaky(self, index):
        calls["n"] += 1
        if calls["n"] > 4:  # the third batch of two: the network drive holding the photos went away
            raise OSError(errno.EIO, "Input/output error", str(self.files[index]))
        return real(self, index)

    argv = train_args(root, tmp_path, "--steps", "5", "--checkpoint-every", "100")
    with monkeypatch.context() as patch:
        patch.setattr(data.InpaintingDataset, "__getitem__", flaky)
        code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    saved = tmp_path / "r" / "interrupted.pt"
    assert f"saved {saved} first" in err and "Input/output error" in err
    assert load_checkpoint(saved)["step"] == 2 and not (tmp_path / "r" / ".pconv.lock").exists()
    code, out, err = run_cli(capsys, *argv, "--resume", saved)
    assert code == 0 and load_checkpoint(tmp_path / "r" / "last.pt")["step"] == 5, err


def test_flags_that_would_do_nothing_or_destroy_an_input_are_reported(root, tmp_path, capsys, ckpt):
    argv = train_args(root, tmp_path, "--steps", "1", "--channels-last", "--test", root / "val")
    argv += ["--device", "cpu"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0 and "--channels-last only change GPU runs" in err
    assert "no sample grid will be saved" in err
    inside = tmp_path / "r" / "start.pt"
    inside.write_bytes(ckpt.read_bytes())
    args = train_args(root, tmp_path, "--steps", "1", "--checkpoint", inside, "--overwrite")
    assert_error(capsys, args, "--overwrite would delete --checkpoint")
    assert inside.read_bytes() == ckpt.read_bytes()


def test_running_out_of_memory_is_one_line_not_a_bug(root, tmp_path, capsys, monkeypatch):
    from pconv_lib import train

    def oom(self, batch):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(train.Trainer, "train_step", oom)
    argv = train_args(root, tmp_path, "--steps", "1")
    line = assert_error(capsys, argv, "ran out of memory", "--image-size")
    assert "bug" not in line


def test_leftovers_of_a_crash_never_block_a_rerun(root, tmp_path, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_bytes(b"")  # what an old version left on a full disk
    (run_dir / "last.pt.tmp").write_bytes(b"half a checkpoint")
    (run_dir / "mine.tmp").write_bytes(b"the user's")
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "1"))[0] == 0
    assert not (run_dir / "last.pt.tmp").exists() and (run_dir / "mine.tmp").read_bytes() == b"the user's"
    assert [r["step"] for r in csv.DictReader((run_dir / "metrics.csv").open())] == ["1"]


def test_a_batch_that_cannot_fit_in_memory_is_refused_first(root, tmp_path, capsys, monkeypatch, loss):
    from pconv_lib.util import files

    monkeypatch.setattr(files, "available_memory", lambda: 4 * 10**9)
    argv = train_args(root, tmp_path, "--image-size", "4096", "--depth", "8", "--batch-size", "16")
    line = assert_error(capsys, argv, "needs at least about", "4.0 GB is free", "--batch-size")
    assert "bug" not in line and not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="needs at least about"):
        config = _config(tmp_path, image_size=4096, depth=8, batch_size=16)
        Trainer(config, _data(), loss=loss, progress=False)


def test_resume_that_cannot_train_is_refused_before_work(root, tmp_path, capsys, ckpt):
    assert run_cli(capsys, *train_args(root, tmp_path, "--steps", "2"))[0] == 0
    last = tmp_path / "r" / "last.pt"
    argv = train_args(root, tmp_path, "--steps", "1", "--resume", last)
    assert_error(capsys, argv, "at step 2, beyond --steps 1", "larger --steps")
    demo_like = tmp_path / "weights.pt"
    state = load_checkpoint(ckpt)
    torch.save({"model": state["model"], "config": state["config"]}, demo_like)
    argv = train_args(root, tmp_path, "--resume", demo_like, name="w")
    assert_error(capsys, argv, "weights only", "--checkpoint")


def test_lr_find_plot_never_lands_on_an_input(root, tmp_path, capsys, ckpt):
    base = ["lr-find", "--train", root / "train", "--pixel-losses", *TINY, "--steps", "5"]
    before = ckpt.read_bytes()
    assert_error(capsys, [*base, "--checkpoint", ckpt, "--plot", ckpt], "--plot", "unknown image extension")
    photo = root / "train" / "0.jpg"
    assert_error(capsys, [*base, "--plot", photo], "--plot", "inside --train")
    assert ckpt.read_bytes() == before and cv2.imread(str(photo)) is not None


@POSIX
@pytest.mark.slow
def test_a_stop_signal_to_the_whole_process_group_with_dataloader_workers(root, tmp_path):
    """A closed terminal (SIGHUP) or a container's init (SIGTERM) signals every process of the
    group, DataLoader workers included: the workers ignore it, the main process finishes its
    step and saves."""
    argv = train_args(root, tmp_path, "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "1")
    argv = [str(a) for a in argv]
    argv[argv.index("--num-workers") + 1] = "2"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pconv_lib", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, preexec_fn=_default_stop_signals, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "r" / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the workers are running
    os.killpg(proc.pid, signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert "interrupted by SIGHUP" in err and "Traceback" not in err and "killed by signal" not in err
    assert load_checkpoint(tmp_path / "r" / "interrupted.pt")["step"] >= 1


def test_lr_find_refuses_a_checkpoint_with_nan_weights_or_another_architecture(root, tmp_path, capsys, ckpt):
    state = load_checkpoint(ckpt)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name].clone().fill_(float("nan"))
    bad = tmp_path / "diverged.pt"
    torch.save(state, bad)
    base = ["lr-find", "--train", root / "train", "--pixel-losses", *TINY, "--steps", "5", "--checkpoint"]
    assert_error(capsys, [*base, bad], "diverged.pt", "NaN or infinite")
    wide = [*base, ckpt]
    wide[wide.index("--width") + 1] = "0.25"
    assert_error(capsys, wide, ckpt.name, "do not fit")


def test_an_internal_value_error_is_reported_as_a_bug_not_as_bad_input(root, tmp_path, capsys, monkeypatch):
    """Only the library's own errors (and the operating system's) exit 2; a plain ValueError
    from inside is a bug (issue 16): exit 1 and a request to report it."""
    from pconv_lib import train

    def broken(self, batch):
        raise ValueError("too many values to unpack (expected 2)")

    monkeypatch.setattr(train.Trainer, "train_step", broken)
    code, _, err = run_cli(capsys, *train_args(root, tmp_path, "--steps", "1"))
    assert code == cli.EXIT_UNEXPECTED == 1
    assert "this is a bug" in err and "PCONV_TRACEBACK=1" in err and "Traceback" not in err


def test_the_librarys_errors_are_typed_and_carry_their_hint():
    import torch

    from pconv_lib.layers import PartialConv2d
    from pconv_lib.util import errors

    with pytest.raises(errors.BadValue) as caught:
        PartialConv2d(3, 4, 3, padding=1)(torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), 255.0))
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, errors.PconvError)
    assert error.hint.startswith("divide by 255 (mask / 255)") and str(error).endswith(error.hint)
    assert "255" in error.problem and error.hint not in error.problem
