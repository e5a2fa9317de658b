"""Issue 27, part 2: a resume never discards newer run state without being asked. Resuming an older
checkpoint of the run folder (``best.pt``, an old ``interrupted.pt``, a ``step_*.pt``) while another
holds a later step is refused, naming that file and its step, on the command line and in the API
(one copy of the resume rules); ``--overwrite`` allows it. Rows of ``metrics.csv`` that cannot be
read (a spreadsheet re-saved it) are kept aside, never deleted."""

from __future__ import annotations

import csv
import shutil
import warnings

import pytest
import torch
from cli_runner import run_cli

from pconv_lib.data import sample_photo_dataset
from pconv_lib.runs.checkpoints import load_checkpoint
from pconv_lib.runs.run_folder import METRICS_ASIDE, METRICS_COLUMNS, truncate_metrics
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig

SIZE = 32
TINY = ["--image-size", "32", "--depth", "3", "--width", "0.125", "--batch-size", "2"]
QUIET = ["--random-vgg", "--num-workers", "0", "--no-progress"]


def _config(out_dir, **overrides) -> TrainConfig:
    values = dict(
        name="r", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=4, steps_per_epoch=100,
        val_steps=1, log_every=1, sample_every=100, checkpoint_every=2, vgg_weights=None,
        out_dir=str(out_dir), seed=3,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def _data():
    return sample_photo_dataset(SIZE, names=["astronaut", "coffee"], repeats=2, photo_scale=0.125, seed=0)


def _photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    import cv2
    from skimage import data as skdata

    for index, name in enumerate(["astronaut", "coffee", "chelsea"]):
        image = cv2.resize(getattr(skdata, name)(), (48, 48))
        cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder



def _step(path) -> int:
    return int(load_checkpoint(path)["step"])


@pytest.fixture
def run(tmp_path, loss):
    """A run folder trained to step 4: ``step_0000002.pt`` and ``interrupted.pt`` (both step 2, as an
    old Ctrl-C would leave), ``best.pt`` (step 2), ``last.pt`` (step 4), ``metrics.csv`` (steps 1-4)."""
    trainer = Trainer(_config(tmp_path, keep_step_checkpoints=True), _data(), loss=loss, progress=False)
    trainer.fit(steps=2)
    shutil.copy(tmp_path / "r" / "step_0000002.pt", tmp_path / "r" / "interrupted.pt")
    shutil.copy(tmp_path / "r" / "step_0000002.pt", tmp_path / "r" / "best.pt")
    trainer.fit()
    trainer.close()
    assert _step(tmp_path / "r" / "last.pt") == 4
    return tmp_path / "r"


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("older", ["best.pt", "interrupted.pt", "step_0000002.pt"])
def test_the_api_refuses_a_resume_that_would_overwrite_a_later_step(run, loss, older):
    before = _files(run)
    trainer = Trainer(_config(run.parent), _data(), loss=loss, progress=False)
    with pytest.raises(ValueError) as info:
        trainer.resume(run / older)
    message = str(info.value)
    assert f"{run / 'last.pt'} holds a later step (4)" in message and "(step 2)" in message
    assert "overwrite=True" in message and "\n" not in message
    assert _files(run) == before  # nothing written, nothing dropped


@pytest.mark.parametrize("older", ["best.pt", "interrupted.pt"])
def test_the_command_line_refuses_it_in_one_line_before_any_work(run, capsys, tmp_path, older):
    before = _files(run)
    argv = ["train", "--name", "r", "--train", _photos(tmp_path), "--log-path", run.parent, *TINY, *QUIET]
    code, out, err = run_cli(capsys, *argv, "--resume", run / older, "--steps", "6")
    assert code == 2 and err.count("error:") == 1, err
    assert f"{run / 'last.pt'} holds a later step (4)" in err and f"resume {run / 'last.pt'} instead" in err
    assert "--overwrite" in err and "API" not in err and "resumed" not in out
    assert _files(run) == before
    # --overwrite: asked for, the later state is discarded and the run continues from step 2
    code, out, err = run_cli(capsys, *argv, "--resume", run / older, "--steps", "3", "--overwrite")
    assert code == 0, err
    assert _step(run / "last.pt") == 3 and not (run / "step_0000004.pt").exists()
    steps = [int(row["step"]) for row in csv.DictReader((run / "metrics.csv").open())]
    assert steps == [1, 2, 3]


def test_resuming_the_newest_checkpoint_is_untouched_by_the_rule(run, loss):
    trainer = Trainer(_config(run.parent, steps=5), _data(), loss=loss, progress=False)
    trainer.resume(run / "last.pt").fit()
    trainer.close()
    assert _step(run / "last.pt") == 5 and _step(run / "best.pt") == 2  # older files are no obstacle


def test_the_hint_after_a_crash_names_the_latest_step_not_the_latest_file(run, capsys, tmp_path):
    """best.pt written at step 6 after last.pt at step 4, then the process was killed: the command
    the refusal suggests continues from step 6, and it is accepted."""
    state = load_checkpoint(run / "last.pt")
    state["step"] = 6
    torch.save(state, run / "best.pt")
    (run / "interrupted.pt").unlink()
    for name in ("best.pt", "last.pt"):  # last.pt touched last: the newest file, not the newest step
        (run / name).touch()
    argv = ["train", "--name", "r", "--train", _photos(tmp_path), "--log-path", run.parent, *TINY, *QUIET]
    code, _, err = run_cli(capsys, *argv, "--steps", "7")
    assert code == 2 and f"--resume {run / 'best.pt'}" in err, err
    code, _, err = run_cli(capsys, *argv, "--steps", "4", "--resume", run / "last.pt")
    assert code == 2 and f"{run / 'best.pt'} holds a later step (6)" in err, err
    code, out, err = run_cli(capsys, *argv, "--steps", "7", "--resume", run / "best.pt")
    assert code == 0 and "at step 6" in out, err


def test_the_rules_are_one_copy_for_the_api_and_the_command_line(run, loss, capsys, tmp_path):
    argv = ["train", "--name", "r", "--train", _photos(tmp_path), "--log-path", run.parent, *QUIET]
    argv += ["--image-size", "32", "--width", "0.125", "--batch-size", "2"]
    code, _, err = run_cli(capsys, *argv, "--depth", "4", "--resume", run / "last.pt")
    assert code == 2 and "cannot resume" in err and "trained with depth=3, this run has --depth 4" in err
    with pytest.raises(ValueError, match="cannot resume .* trained with depth=3, this run has depth=4"):
        Trainer(_config(run.parent, depth=4), _data(), loss=loss, progress=False).resume(run / "last.pt")
    weights = run / "weights.pt"
    state = load_checkpoint(run / "last.pt")
    torch.save({"model": state["model"], "config": state["config"]}, weights)
    code, _, err = run_cli(capsys, *argv, "--depth", "3", "--resume", weights)
    assert code == 2 and "weights only" in err
    with pytest.raises(ValueError, match="weights only"):
        Trainer(_config(run.parent), _data(), loss=loss, progress=False).resume(weights)


def test_a_damaged_later_file_holds_no_step_and_does_not_block(run, loss):
    (run / "last.pt").write_bytes(b"half a checkpoint")
    trainer = Trainer(_config(run.parent, steps=3), _data(), loss=loss, progress=False)
    trainer.resume(run / "step_0000004.pt")  # step 4, the newest readable state
    assert trainer.step == 4


# ---------------------------------------------------------------- metrics.csv re-saved elsewhere

HEADER = ",".join(METRICS_COLUMNS)
ROW = "{},train,1.5,0.1,0.2,0.3,0.4,0.5,0.6"


@pytest.mark.parametrize(
    "text, kept, aside",
    [
        # a spreadsheet's byte-order mark and steps written as decimals: read, normalised
        ("\ufeff" + HEADER + "\r\n" + "".join(ROW.format(f"{s}.0") + "\r\n" for s in (1, 2, 3)), [1, 2], 0),
        # another delimiter (a European locale): nothing readable, everything kept aside
        (HEADER.replace(",", ";") + "\r\n" + ROW.format(1).replace(",", ";") + "\r\n", [], 2),
        # a note typed into the sheet, a total row, a row with a column added
        (HEADER + "\r\n" + ROW.format(1) + "\r\nnotes: lr looked high\r\nTotal,,3.0\r\n"
         + ROW.format(2) + ",extra\r\n" + ROW.format(3) + "\r\n", [1], 3),
    ],
    ids=["bom-decimal-steps", "semicolons", "notes-and-extra-columns"],
)
def test_metrics_rows_that_cannot_be_read_are_kept_aside_not_deleted(tmp_path, text, kept, aside):
    path = tmp_path / "metrics.csv"
    path.write_bytes(text.encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        side = truncate_metrics(path, 2)
    rows = list(csv.reader(path.open(newline="")))
    assert rows[0] == METRICS_COLUMNS and [int(r[0]) for r in rows[1:]] == kept
    if aside:
        assert side == tmp_path / METRICS_ASIDE
        assert len(caught) == 1 and METRICS_ASIDE in str(caught[0].message)
        moved = side.read_bytes().decode().splitlines()
        assert len(moved) == aside and all(line in text for line in moved)  # unchanged lines
    else:
        assert side is None and not (tmp_path / METRICS_ASIDE).exists()


def test_a_resumed_run_keeps_a_spreadsheet_saved_metrics_file(run, loss):
    original = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(original.replace(",", ";"))  # re-saved with semicolons
    trainer = Trainer(_config(run.parent, steps=5), _data(), loss=loss, progress=False)
    with pytest.warns(UserWarning, match="spreadsheet"):
        trainer.resume(run / "last.pt").fit()
    trainer.close()
    assert len((run / METRICS_ASIDE).read_text().splitlines()) == len(original.splitlines())
    assert [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())] == [5]
