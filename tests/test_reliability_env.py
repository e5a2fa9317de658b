"""Issue 27, parts 4 and 5: failures of the machine, recognised by what happened (a signal, an
errno, the shapes in a file), never by an error's text; each gives the cause and the next command
and exits 2. And work estimated before it starts."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_runner import run_cli

from pconv_lib.app import cli
from pconv_lib.data import InpaintingDataset, sample_photo_dataset
from pconv_lib.photos import sample_photos
from pconv_lib.runs.checkpoints import load_checkpoint, model_from_checkpoint
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig
from pconv_lib.util import files
from pconv_lib.util.errors import DataWorkerKilled

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32
TINY = ["--image-size", "32", "--depth", "3", "--width", "0.125", "--batch-size", "2"]
QUIET = ["--random-vgg", "--no-progress"]
POSIX = pytest.mark.skipif(os.name != "posix", reason="signals and rlimits of POSIX")



@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index, image in enumerate(list(sample_photos(size=48).values())[:4]):
        cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, loss):
    out = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(name="c", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=1,
                         vgg_weights=None, out_dir=str(out))
    return Trainer(config, sample_photo_dataset(SIZE, repeats=2), loss=loss, progress=False).save("last.pt")


# ---------------------------------------------------------------- a data worker killed


@POSIX
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV], ids=lambda s: s.name)
def test_a_killed_data_worker_is_named_with_the_checkpoint_and_the_next_command(
    photos, tmp_path, capsys, monkeypatch, signum
):
    parent, real = os.getpid(), InpaintingDataset.__getitem__

    def dies_in_the_second_batch(self, index):
        if os.getpid() != parent and self._calls >= 2:  # only in the worker, once step 1 is logged
            deadline = time.time() + 60
            while not (tmp_path / "r" / "metrics.csv").exists() and time.time() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signum)
        self._calls += 1
        return real(self, index)

    monkeypatch.setattr(InpaintingDataset, "_calls", 0, raising=False)
    monkeypatch.setattr(InpaintingDataset, "__getitem__", dies_in_the_second_batch)
    argv = ["train", "--name", "r", "--train", photos, "--log-path", tmp_path, *TINY, *QUIET]
    code, _, err = run_cli(capsys, *argv, "--steps", "4", "--num-workers", "1", "--log-every", "1")
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"killed by {signum.name}" in lines[0], err
    assert ("out-of-memory killer" in lines[0]) == (signum == signal.SIGKILL)
    saved = tmp_path / "r" / "interrupted.pt"
    assert f"--resume {saved}" in lines[0] and "--num-workers 0" in lines[0]
    assert load_checkpoint(saved)["step"] == 1 and "bug" not in err
    monkeypatch.setattr(InpaintingDataset, "__getitem__", real)  # the suggested command works
    code, _, err = run_cli(capsys, *argv, "--steps", "2", "--num-workers", "0", "--resume", saved)
    assert code == 0, err


def test_an_error_in_the_main_process_is_not_taken_for_a_killed_worker(loss, tmp_path):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, index):
            raise KeyError("a bug in a user's dataset")

    config = TrainConfig(name="r", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=2,
                         vgg_weights=None, out_dir=str(tmp_path))
    with pytest.raises(KeyError):
        Trainer(config, Broken(), loss=loss, progress=False).fit()
    assert not issubclass(KeyError, DataWorkerKilled)


# ---------------------------------------------------------------- writes that fail


@pytest.mark.parametrize(
    "code, needle",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only"),
        (errno.ENAMETOOLONG, "shorter name"),
        (errno.EILSEQ, "plain letters"),
        (errno.EFBIG, "ulimit -f"),
    ],
)
def test_write_errors_are_explained_by_their_errno(tmp_path, code, needle):
    error = files.write_error(tmp_path / "x.pt", OSError(code, os.strerror(code)))
    assert needle in str(error) and error.errno == code and str(tmp_path / "x.pt") in str(error)


@POSIX
def test_torch_save_failing_without_an_errno_is_diagnosed_by_its_cause(tmp_path):
    """torch.save reports a write it could not finish as a RuntimeError with no errno; the file
    size limit (RLIMIT_FSIZE, as a full disk would) makes it fail, and the cause is found."""
    script = (
        "import resource, signal, torch\n"
        "from pconv_lib.runs.checkpoints import save_checkpoint\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "try:\n"
        f"    save_checkpoint({str(tmp_path / 'big.pt')!r}, {{'w': torch.zeros(1_000_000)}})\n"
        "except OSError as error:\n"
        "    print(error.errno, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.stdout.startswith(f"{errno.EFBIG} could not write {tmp_path / 'big.pt'}"), result
    assert "ulimit -f" in result.stdout and list(tmp_path.iterdir()) == []


def test_an_output_name_too_long_for_the_file_system(tmp_path, capsys, ckpt):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((40, 40, 3), 120, np.uint8))
    out = tmp_path / ("o" * 300 + ".png")
    code, _, err = run_cli(capsys, "predict", "--checkpoint", ckpt, "--image", photo, "-o", out)
    assert code == 2 and "shorter name" in err and err.count("error:") == 1, err


@POSIX
def test_undecodable_file_names_are_printed_escaped_not_crashed_on(tmp_path, ckpt):
    photo = Path(os.fsdecode(str(tmp_path).encode() + b"/ph\xffoto.png"))
    cv2.imencode(".png", np.full((40, 40, 3), 120, np.uint8))[1].tofile(str(photo))
    out = Path(os.fsdecode(str(tmp_path).encode() + b"/out\xfe.png"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), LC_ALL="C.UTF-8")
    env.pop("PYTHONIOENCODING", None)
    result = subprocess.run(
        [sys.executable, "-m", "pconv_lib", "predict", "--checkpoint", ckpt, "--image", photo, "-o", out],
        capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"out\\udcfe.png" in result.stdout or b"out\\xfe.png" in result.stdout, result.stdout
    assert out.is_file()


# ---------------------------------------------------------------- checkpoints describing another model


@pytest.mark.parametrize("edit", [{"width": 8.0}, {"depth": 4}, {"width": 0.25}])
def test_a_config_that_does_not_fit_the_weights_is_refused_before_building(tmp_path, ckpt, capsys, edit):
    state = load_checkpoint(ckpt)
    state["config"].update(edit)
    edited = tmp_path / "edited.pt"
    torch.save(state, edited)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"its weights \(.* tensors\) do not fit the PConvUNet its config"):
        model_from_checkpoint(edited)
    assert time.perf_counter() - start < 20  # shapes only: nothing of the described model is built
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((40, 40, 3), 120, np.uint8))
    argv = ["predict", "--checkpoint", edited, "--image", photo, "-o", tmp_path / "o.png"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "the file was edited or is damaged" in err, err


# ---------------------------------------------------------------- estimate before work


def test_evaluate_refuses_what_cannot_fit_before_reading_a_photo(tmp_path, capsys, monkeypatch, photos):
    monkeypatch.setattr(files, "available_memory", lambda: 2 * 10**9)
    read = []
    monkeypatch.setattr(
        "pconv_lib.util.image_files.load_image", lambda *a, **k: read.append(a) or np.zeros((8, 8, 3))
    )
    code, _, err = run_cli(capsys, "evaluate", "--images", photos, "--size", "8192", "--no-progress")
    assert code == 2 and "needs about" in err and "GB is free" in err and "--size or --limit" in err, err
    assert read == []


@pytest.mark.parametrize(
    "size, count, expected",
    [(256, 5, None), (2048, 50, "hours"), (1024, 20, "minutes")],
)
def test_evaluate_says_how_long_the_baselines_take_before_starting(capsys, size, count, expected):
    args = argparse.Namespace(size=size, no_baselines=False)
    cli._check_evaluate_cost(args, count, list(range(6)))
    err = capsys.readouterr().err
    if expected is None:
        assert err == ""
    else:
        assert err.startswith("warning:") and expected in err and "--no-baselines" in err
    cli._check_evaluate_cost(argparse.Namespace(size=size, no_baselines=True), count, list(range(6)))
    assert capsys.readouterr().err == ""
