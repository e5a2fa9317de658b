"""Trainer.fit's hooks: validate_first, validate_last, time_budget_s, on_best and on_validate."""

from __future__ import annotations

import csv

import pytest
import torch

from pconv_lib.data import sample_photo_dataset
from pconv_lib.runs.checkpoints import load_checkpoint
from pconv_lib.train import Trainer
from pconv_lib.train_config import TrainConfig
from pconv_lib.util.errors import BadValue

SIZE = 32


@pytest.fixture(scope="module")
def data():
    return sample_photo_dataset(
        SIZE, names=["astronaut", "coffee", "chelsea"], repeats=2, photo_scale=0.125, seed=0
    )


def _trainer(tmp_path, loss, data, val=True, **overrides):
    values = dict(
        name="run", image_size=SIZE, depth=3, width=0.125, batch_size=2, steps=4, steps_per_epoch=2,
        val_steps=1, log_every=1, sample_every=100, checkpoint_every=100, vgg_weights=None,
        out_dir=str(tmp_path), seed=3,
    )  # fmt: skip
    values.update(overrides)
    config = TrainConfig(**values)
    return Trainer(config, data, data if val else None, loss=loss, device="cpu", progress=False)


def _rows(trainer):
    with (trainer.config.run_dir / "metrics.csv").open(newline="") as handle:
        return [(int(row["step"]), row["kind"]) for row in csv.DictReader(handle)]


def test_validate_first_keeps_the_starting_weights_as_best(tmp_path, loss, data):
    trainer = _trainer(tmp_path, loss, data, steps=3, steps_per_epoch=100)
    calls = []

    def on_best(t, val, path):
        calls.append((t.step, val["total"], path, load_checkpoint(path)["step"]))

    trainer.fit(validate_first=True, on_best=on_best)
    assert [c[0] for c in calls] == [0]
    step, total, path, saved_step = calls[0]
    assert path == trainer.config.run_dir / "best.pt" and saved_step == 0
    assert trainer.best_val == total == trainer.history[0]["total"]
    assert load_checkpoint(path)["best_val"] == total
    assert _rows(trainer)[0] == (0, "val")  # logged like any validation
    assert [kind for _, kind in _rows(trainer)[1:]] == ["train"] * 3  # no epoch ended: no other val


def test_validate_last_and_on_validate_see_every_validation(tmp_path, loss, data):
    trainer = _trainer(tmp_path, loss, data, steps=5, steps_per_epoch=2)
    seen = []
    trainer.fit(validate_last=True, on_validate=lambda t, val: seen.append((t.step, val["total"])))
    assert [step for step, _ in seen] == [2, 4, 5]  # two epochs, then the last (partial) one
    assert [step for step, kind in _rows(trainer) if kind == "val"] == [2, 4, 5]
    assert trainer.best_val == min(total for _, total in seen)
    assert load_checkpoint(trainer.config.run_dir / "best.pt")["best_val"] == trainer.best_val

    again = _trainer(tmp_path / "b", loss, data, steps=4, steps_per_epoch=2)
    seen.clear()
    again.fit(validate_last=True, on_validate=lambda t, val: seen.append(t.step))
    assert seen == [2, 4]  # the last step ended an epoch: validated once


def test_on_best_is_called_each_time_best_pt_is_written(tmp_path, loss, data, monkeypatch):
    trainer = _trainer(tmp_path, loss, data, steps=6, steps_per_epoch=1)
    totals = iter([3.0, 2.0, 2.5, 1.0, 1.5, 1.2])
    monkeypatch.setattr(Trainer, "validate", lambda self, steps=None: {"total": next(totals)})
    best = []

    def on_best(t, val, path):
        best.append((t.step, val["total"], load_checkpoint(path)["step"]))

    trainer.fit(on_best=on_best)
    assert best == [(1, 3.0, 1), (2, 2.0, 2), (4, 1.0, 4)]
    assert trainer.best_val == 1.0


def test_time_budget_stops_cleanly_after_the_step_that_exceeds_it(tmp_path, loss, data):
    trainer = _trainer(tmp_path, loss, data, steps=4, steps_per_epoch=100, log_every=3)
    seen = []
    history = trainer.fit(
        time_budget_s=1e-9, validate_last=True, on_validate=lambda t, val: seen.append(t.step)
    )
    assert trainer.step == 1  # the first step already ends past the budget
    run_dir = trainer.config.run_dir
    assert load_checkpoint(run_dir / "last.pt")["step"] == 1  # saved as at a normal end
    assert not (run_dir / "interrupted.pt").exists()
    # its training loss is logged although log_every=3, then validate_last validates it
    assert [(row["step"], row["kind"]) for row in history] == [(1, "train"), (1, "val")] and seen == [1]

    # the run continues where the budget stopped it
    later = _trainer(tmp_path, loss, data, steps=4, steps_per_epoch=100).resume(run_dir / "last.pt")
    later.fit()
    assert later.step == 4


def test_a_generous_time_budget_changes_nothing(tmp_path, loss, data):
    plain = _trainer(tmp_path / "a", loss, data)
    plain.fit()
    timed = _trainer(tmp_path / "b", loss, data)
    timed.fit(time_budget_s=3600)
    assert timed.step == plain.step == 4
    a, b = plain.model.state_dict(), timed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("budget", [0, -1.0, float("nan"), "10", True])
def test_a_bad_time_budget_is_refused_before_training(tmp_path, loss, data, budget):
    trainer = _trainer(tmp_path, loss, data)
    with pytest.raises(BadValue, match="time_budget_s must be a number of seconds > 0"):
        trainer.fit(time_budget_s=budget)
    assert trainer.step == 0


@pytest.mark.parametrize("option", ["validate_first", "validate_last"])
def test_validation_hooks_need_validation_data(tmp_path, loss, data, option):
    trainer = _trainer(tmp_path, loss, data, val=False)
    with pytest.raises(BadValue, match="need validation data"):
        trainer.fit(**{option: True})
    assert trainer.step == 0
