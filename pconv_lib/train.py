"""Step 4: training, the paper's two phases, with checkpoints you can resume exactly.

- Phase 1 ``stage="train"``: Adam, lr 2e-4, BatchNorm everywhere.
- Phase 2 ``stage="finetune"``: Adam, lr 5e-5, encoder BatchNorm frozen, from phase 1 (``init_from``).

An *epoch* is ``steps_per_epoch`` batches (ImageNet is too large for "one pass" to be a useful
unit); after each one the loss on ``val_steps`` validation batches decides whether ``best.pt`` is
replaced. Checkpoints (``last.pt``, ``best.pt``, ``step_<N>.pt``: model, optimiser, grad scaler,
step, best validation loss, config) are written atomically; data order and masks depend only on
(seed, pass, index), so a resumed run sees exactly the batches it would have seen. Ctrl-C, SIGTERM
and SIGHUP save ``interrupted.pt`` after the current step; a lock file (``.pconv.lock``) keeps a
second run out of the folder. Under ``torchrun --nproc_per_node=N -m pconv_lib train ...`` each
rank trains on its share of every batch (``DistributedDataParallel``); only rank 0 writes files.

Built from ``train_config``, ``train_checks``, ``sampling``, ``checkpoints``, ``run_folder`` and
``interrupts``; import their names from them (this module defines :class:`Trainer` only).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pconv_lib.layers import check_mask_values
from pconv_lib.losses import LossWeights, PConvLoss
from pconv_lib.model import build_model
from pconv_lib.runs.checkpoints import (
    checkpoint_config,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from pconv_lib.runs.interrupts import (
    DeferredInterrupt,
    TrainingInterrupted,
    worker_ignores_stop_signals,
)
from pconv_lib.runs.run_folder import (
    RunFolder,
    check_run_folder,
    is_inside,
    write_sample_grid,
)
from pconv_lib.runs.sampling import EpochBatchSampler, first_batch, past_deadline, rank_and_world_size
from pconv_lib.runtime import resolve_device
from pconv_lib.train_checks import (
    batchnorm_hint,
    check_before_training,
    check_data_workers,
    check_finite_loss,
    check_fit_options,
    check_resumable,
)
from pconv_lib.train_config import (
    CHECKPOINT_FORMAT,
    TrainConfig,
    changed_settings,
)
from pconv_lib.util.errors import BadValue
from pconv_lib.util.files import check_writable_folder
from pconv_lib.util.torch_compat import grad_scaler

#: ``on_best(trainer, val_metrics, path)`` and ``on_validate(trainer, val_metrics)`` of :meth:`Trainer.fit`.
OnBest = Callable[["Trainer", dict[str, float], Path], object]
OnValidate = Callable[["Trainer", dict[str, float]], object]


class Trainer:
    """Train a :class:`PConvUNet` on an inpainting dataset.

    Args:
        config: a :class:`TrainConfig`.
        train_data: items are dicts with ``image`` (3, H, W) in [0, 1] and ``mask`` (1, H, W),
            1 = valid (e.g. :class:`pconv_lib.data.InpaintingDataset`).
        val_data: the same for validation (optional; without it ``best.pt`` is not written).
        loss: default a :class:`PConvLoss` from ``config.vgg_weights`` and ``config.loss_weights``.
        device: default :func:`pick_device` (cuda → mps → cpu); with torchrun, ``cuda:LOCAL_RANK``.
        init_from: a checkpoint whose model weights start this run (phase 2 from phase 1).
        progress: a tqdm progress bar (rank 0 only).
        sample_data: photos for the sample grids saved every ``sample_every`` steps (default the
            validation data).
        overwrite: delete an earlier run's files in the run folder at the first write (without it
            such a folder is refused unless :meth:`resume` continues a checkpoint from it).

    Sizes, free memory, the data and the run folder are checked here, before any training.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        loss: nn.Module | None = None,
        device: torch.device | str | None = None,
        init_from: str | os.PathLike | None = None,
        progress: bool = True,
        sample_data: Dataset | None = None,
        overwrite: bool = False,
    ) -> None:
        self.config = config
        self.rank, self.world_size = rank_and_world_size()
        if device is None and self.world_size > 1 and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = resolve_device(device)
        check_before_training(
            config, self.device, self.world_size, {"training": train_data, "validation": val_data}
        )
        if self.rank == 0:
            check_writable_folder(config.run_dir, "run folder")
        self.overwrite = overwrite
        #: checkpoints, metrics, TensorBoard and sample grids, written under the folder's lock (rank 0)
        self.run = RunFolder(config.run_dir, overwrite=overwrite, enabled=self.rank == 0)
        #: settings changed by :meth:`resume` (``{name: (old, new)}``), applied and recorded
        self.resume_changes: dict[str, tuple[Any, Any]] = {}
        self.resume_history: list[dict[str, Any]] = []
        self.train_data, self.val_data = train_data, val_data
        self.sample_data = sample_data if sample_data is not None else val_data
        self.progress = progress and self.rank == 0

        torch.manual_seed(config.seed)
        self.model = build_model(config, freeze_encoder_bn=config.stage == "finetune").to(self.device)
        if init_from is not None:
            load_model_weights(self.model, load_checkpoint(init_from), init_from, expected=config)
        self.model.check_mask = False  # masks are checked once per batch on the CPU (no GPU sync)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        if self.world_size > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if config.compile:
            self.net = torch.compile(self.net)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trained, lr=config.learning_rate)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.amp_dtype = getattr(torch, config.amp_dtype)
        scaled = self.use_amp and self.amp_dtype == torch.float16  # bfloat16 has float32's range
        self.scaler = grad_scaler(scaled)
        loss = loss or PConvLoss(LossWeights(**config.loss_weights), vgg_weights=config.vgg_weights)
        self.loss = loss.to(self.device)
        self.step = 0
        self.best_val = math.inf  # the validation loss of best.pt
        self.history: list[dict[str, float]] = []  # every logged row: step, kind, loss terms

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best_val": self.best_val,
            "config": asdict(self.config),
            "resume_history": self.resume_history,
            "torch_rng": torch.get_rng_state(),
        }

    def save(self, name: str = "last.pt") -> Path | None:
        """Write a checkpoint into the run folder (rank 0 only); return its path."""
        return self.run.write(name, lambda path: save_checkpoint(path, self.state_dict()))

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Continue a run from a checkpoint: model, optimiser, scaler, step and best loss.

        The settings that define the model must match the checkpoint's (``ValueError``
        otherwise); every other changed setting (learning rate, steps, batch size, loss
        weights...) is applied and recorded in :attr:`resume_changes` and in the
        ``resume_history`` of every later checkpoint.
        """
        state = load_checkpoint(path, map_location=self.device)
        saved = checkpoint_config(state, path)
        check_resumable(path, state, saved, self.config, self.overwrite)
        outside = not is_inside(path, self.config.run_dir)
        if self.rank == 0 and outside and not self.overwrite:  # continuing elsewhere must not mix two runs
            check_run_folder(self.config.run_dir, token=self.run.token)
        load_model_weights(self.model, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best_val = int(state["step"]), float(state["best_val"])
        torch.set_rng_state(state["torch_rng"])
        self.resume_changes = changed_settings(saved, self.config)
        for group in self.optimizer.param_groups:  # a changed lr is applied, not only recorded
            group["lr"] = self.config.learning_rate
        self.resume_history = list(state.get("resume_history", []))
        if self.resume_changes:
            changed = {key: list(pair) for key, pair in self.resume_changes.items()}
            self.resume_history.append({"step": self.step, "changed": changed})
        self.run.resumed(self.step, outside)
        return self

    # ---------------------------------------------------------------- one step
    def _batch_to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        check_mask_values(batch["mask"])  # once per batch, on the CPU copy: no GPU sync
        fmt = self.memory_format
        image = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        mask = batch["mask"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        return image, mask

    def _losses(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[dict, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            output, _ = self.net(image * mask, mask)
        terms = self.loss(output.float(), image, mask, image * mask)
        return terms, output

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimiser step on one batch; returns the loss terms as floats."""
        self.net.train()
        image, mask = self._batch_to_device(batch)
        with batchnorm_hint(image, self.config.depth):
            terms, _ = self._losses(image, mask)
        check_finite_loss(terms["total"], self.step, self.config.run_dir)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def _loader(self, data: Dataset, sampler: Sampler) -> DataLoader:
        return DataLoader(data, batch_sampler=sampler, num_workers=self.config.num_workers,
                          worker_init_fn=worker_ignores_stop_signals, pin_memory=self.device.type == "cuda")

    @torch.no_grad()
    def validate(self, steps: int | None = None) -> dict[str, float]:
        """Mean loss terms over ``steps`` validation batches (the same batches every time)."""
        if self.val_data is None:
            raise BadValue("no validation data was given to the Trainer")
        steps = steps or self.config.val_steps
        count = min(steps, len(self.val_data) // self.config.batch_size)  # type: ignore[arg-type]
        sampler = EpochBatchSampler(self.val_data, self.config.batch_size, seed=self.config.seed + 1,
                                    num_batches=count)
        self.model.eval()
        sums: dict[str, float] = {}
        for batch in self._loader(self.val_data, sampler):
            terms, _ = self._losses(*self._batch_to_device(batch))
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        return {key: value / count for key, value in sums.items()}

    def _validate_and_keep_best(self, on_best: OnBest | None, on_validate: OnValidate | None) -> None:
        """Validate, log, and save ``best.pt`` when the loss beats :attr:`best_val`."""
        val = self.validate()
        self._log("val", val)
        if val["total"] < self.best_val:
            self.best_val = val["total"]
            path = self.save("best.pt")
            if on_best is not None and path is not None:
                on_best(self, val, path)
        if on_validate is not None and self.rank == 0:
            on_validate(self, val)

    # ---------------------------------------------------------------- logging
    def _log(self, kind: str, values: dict[str, float]) -> None:
        """A row in :attr:`history`, ``metrics.csv`` and TensorBoard."""
        self.history.append({"step": self.step, "kind": kind, **values})
        self.run.log(self.step, kind, values)

    @torch.no_grad()
    def save_samples(self, batch: dict, name: str | None = None) -> Path | None:
        """Save a grid: rows input (holes white), mask, output, composite, ground truth."""

        def write(path: Path) -> Path:
            self.model.eval()
            image, mask = self._batch_to_device(batch)
            return write_sample_grid(path, image, mask, self.model(image * mask, mask)[0])

        return self.run.write(f"samples/{name or f'step_{self.step:07d}.png'}", write)

    # ---------------------------------------------------------------- the loop
    def fit(
        self,
        steps: int | None = None,
        *,
        validate_first: bool = False,
        validate_last: bool = False,
        time_budget_s: float | None = None,
        on_best: OnBest | None = None,
        on_validate: OnValidate | None = None,
    ) -> list[dict[str, float]]:
        """Train until ``config.steps`` (or ``steps`` more); return the logged rows (:attr:`history`).

        Every ``log_every`` steps the mean training loss is logged, every ``steps_per_epoch`` the
        validation loss (``best.pt`` when it beats :attr:`best_val`), every ``sample_every`` a
        sample grid and every ``checkpoint_every`` ``last.pt``; ``last.pt`` also at the end.

        Hooks:
            validate_first: validate before the first step; a new run keeps the starting weights
                as ``best.pt`` and their loss as :attr:`best_val`, which later epochs must beat.
            validate_last: validate after the last step too when it did not end an epoch.
            time_budget_s: stop after the first step that ends this many seconds after the call
                (logged, validated, saved as usual), then end as at the last step (``last.pt``).
            on_best: ``on_best(trainer, val_metrics, path)`` after ``best.pt`` is written (rank 0).
            on_validate: ``on_validate(trainer, val_metrics)`` after every validation (rank 0).

        Ctrl-C, SIGTERM or SIGHUP finish the current step, save ``interrupted.pt`` (resuming from
        it is exact) and raise :class:`TrainingInterrupted`; a second signal stops at once, saving
        nothing. A NaN/inf loss raises :class:`TrainingDiverged`. While it runs, the run folder's
        lock refuses a second trainer (:class:`RunFolderLocked`).
        """
        check_fit_options(self.val_data, validate_first or validate_last, time_budget_s)
        deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        config = self.config
        target = config.steps if steps is None else self.step + steps
        if self.step >= target:
            if self.run.resumed_at is not None and self.rank == 0 and steps is None:
                self.save("last.pt")  # a run resumed at its last step: it ends with its last.pt
            return self.history
        sampler = EpochBatchSampler(
            self.train_data, config.batch_size, seed=config.seed, start=self.step,
            num_batches=target - self.step, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip
        from tqdm.auto import tqdm
        running: dict[str, float] = {}
        in_step, consistent, start = False, True, self.step  # consistent: weights, BN, optimiser agree
        with self.run.lock, DeferredInterrupt(enabled=self.world_size == 1) as interrupt:
            self.run.claim()
            if validate_first:
                self._validate_and_keep_best(on_best, on_validate)
            batches = iter(self._loader(self.train_data, sampler))
            samples = first_batch(self.sample_data, 4) if self.rank == 0 else None  # for the sample grids
            bar = tqdm(total=target, initial=self.step, desc=config.name, unit="step",
                       disable=not self.progress)  # fmt: skip
            try:
                for batch in interrupt.until_requested(batches):
                    in_step, consistent = True, False  # until the checkpoint the state is half-updated
                    terms = self.train_step(batch)
                    consistent = True
                    late = deadline is not None and past_deadline(deadline, self.device, self.world_size)
                    bar.update(1)
                    bar.set_postfix(loss=f"{terms['total']:.3f}")
                    self._log_train(terms, running, last=late or self.step == target)
                    if self.step % config.steps_per_epoch == 0 and self.val_data is not None:
                        self._validate_and_keep_best(on_best, on_validate)
                    if samples is not None and self.step % config.sample_every == 0:
                        self.save_samples(samples)
                    if self.step % config.checkpoint_every == 0:
                        self.save("last.pt")
                        if config.keep_step_checkpoints:
                            self.save(f"step_{self.step:07d}.pt")
                    in_step = False
                    if late:
                        break
                if validate_last and self.step % config.steps_per_epoch and not interrupt.requested:
                    self._validate_and_keep_best(on_best, on_validate)
            except KeyboardInterrupt:  # a second signal (or one no handler caught)
                if in_step:  # the state is half-updated: save nothing
                    last = config.run_dir / "last.pt"
                    raise TrainingInterrupted.mid_step(self.step, last, interrupt.signum) from None
                interrupt.requested = True
            except Exception as error:  # between two steps (data, validation, a sample): keep the progress
                saved = self._save_before_error(consistent and self.step > start)
                check_data_workers(batches, saved, self.step, config.num_workers, error)  # killed (OOM)?
                raise
            finally:
                bar.close()
                self.run.flush()
        if interrupt.requested and self.step < target:
            path = self.save("interrupted.pt")  # a state between two steps: resuming is exact
            raise TrainingInterrupted.between_steps(self.step, target, path, interrupt.signum)
        self.save("last.pt")
        return self.history

    def _log_train(self, terms: dict[str, float], running: dict[str, float], last: bool) -> None:
        """Add a step's loss terms to ``running``; log their mean every ``log_every`` steps and last."""
        for key, value in terms.items():
            running[key] = running.get(key, 0.0) + value
        if self.step % self.config.log_every == 0 or last:
            count = (self.step - 1) % self.config.log_every + 1
            self._log("train", {k: v / count for k, v in running.items()})
            running.clear()

    def _save_before_error(self, progressed: bool) -> Path | None:
        """Save ``interrupted.pt`` after progress while an error propagates; a failed save is left to it."""
        if not progressed or self.rank != 0:
            return None
        try:
            path = self.save("interrupted.pt")
        except Exception:
            return None
        warnings.warn(f"training stopped by an error at step {self.step}; saved {path} first: once the "
                      f"cause is fixed, continue with the same command plus --resume {path}", stacklevel=3)
        return path

    def close(self) -> None:
        self.run.close()
