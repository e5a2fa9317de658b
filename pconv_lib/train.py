"""Step 4: training, the paper's two phases, with checkpoints you can resume exactly.

- Phase 1 ``stage="train"``: Adam, lr 2e-4, BatchNorm everywhere.
- Phase 2 ``stage="finetune"``: Adam, lr 5e-5, encoder BatchNorm frozen (running statistics and
  affine parameters), starting from phase 1's weights (``init_from``).

As in the original course, an *epoch* is a fixed number of batches (``steps_per_epoch``), not a
pass over the data: ImageNet is too large for "one pass" to be a useful unit. After each epoch the
validation loss is computed on ``val_steps`` batches and the best checkpoint is kept.

Checkpoints (``last.pt``, ``best.pt`` and ``step_<N>.pt``) hold the model, the optimiser, the AMP
grad scaler, the step, the best validation loss and the config; they are written to a temporary
file and renamed, so an interrupted write never destroys the previous checkpoint, and loaded with
``torch.load(weights_only=True)``. Data order and masks are a function of (seed, pass, index), so
``fit`` resumed from a checkpoint continues with exactly the batches it would have seen.

Every way a run ends keeps its progress: Ctrl-C, SIGTERM and SIGHUP (and an error between two
steps) save ``interrupted.pt`` after the current step; while a run trains, its folder holds a
lock file (``.pconv.lock``, with the PID) that refuses a second run there and is removed when it
ends (a lock left by a killed process is detected as stale). Settings changed on resume (e.g. the
learning rate) are applied and recorded (``resume_history`` in the checkpoints). Numeric settings
are checked against :data:`LIMITS` and the batch against the free memory before anything is built.

Multi-GPU / multi-node: start with ``torchrun --nproc_per_node=N -m pconv_lib train ...``; the
trainer sees ``WORLD_SIZE`` > 1, joins the process group (NCCL on CUDA, gloo on CPU), wraps the
model in ``DistributedDataParallel`` and gives each rank its own share of every batch of indices.
Only rank 0 logs, saves samples and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import secrets
import signal
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pconv_lib import files as files_lib
from pconv_lib.checkpoints import (
    check_finite_weights,
    load_checkpoint,
    load_model_weights,
    model_from_checkpoint,
    save_checkpoint,
)
from pconv_lib.errors import BadValue, TrainingDiverged
from pconv_lib.files import check_writable_folder, replace_atomically, write_atomically, write_error
from pconv_lib.interrupts import STOP_SIGNALS, DeferredInterrupt, signal_name, worker_ignores_stop_signals
from pconv_lib.layers import check_mask_values
from pconv_lib.losses import LossWeights, PConvLoss
from pconv_lib.model import build_model
from pconv_lib.run_folder import (
    LOCK_NAME,
    RUN_FILES,
    RunFolderInUseError,
    RunFolderLocked,
    acquire_lock,
    check_run_folder,
    check_run_lock,
    clear_run_folder,
    is_inside,
    release_lock,
    run_files,
)
from pconv_lib.runtime import resolve_device
from pconv_lib.train_config import CHECKPOINT_FORMAT, LIMITS, STAGE_LR, TrainConfig, lr_error, range_error

#: The trainer, and the names of the modules it is built from (checkpoints, run folders,
#: interrupts, its config), still importable from here.
__all__ = [
    "check_batchnorm_batch",
    "check_finite_weights",
    "check_lr_sweep",
    "check_run_folder",
    "check_run_lock",
    "check_training_memory",
    "clear_run_folder",
    "EpochBatchSampler",
    "LIMITS",
    "load_checkpoint",
    "load_model_weights",
    "LOCK_NAME",
    "lr_error",
    "lr_find",
    "LRFindResult",
    "model_from_checkpoint",
    "range_error",
    "RUN_FILES",
    "run_files",
    "RunFolderInUseError",
    "RunFolderLocked",
    "save_checkpoint",
    "signal_name",
    "STAGE_LR",
    "STOP_SIGNALS",
    "TrainConfig",
    "Trainer",
    "training_memory_estimate",
    "TrainingDiverged",
    "TrainingInterrupted",
]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's interrupt), SIGTERM or SIGHUP stopped :meth:`Trainer.fit` between
    two steps.

    ``str(error)`` is one line: the signal, the step reached and the consistent checkpoint saved.
    Attributes: ``step``, ``path`` (the checkpoint to resume from, or None) and ``signum`` (the
    signal: ``signal.SIGINT``, ``SIGTERM`` or ``SIGHUP``; the command line exits with 128 + it).
    """

    def __init__(self, message: str, step: int, path: Path | None, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.step, self.path, self.signum = step, path, int(signum)


def check_batchnorm_batch(batch_size: int, image_size: int, depth: int) -> None:
    """Refuse sizes where training BatchNorm sees one value per channel (it then fails with
    "Expected more than 1 value per channel"): ``batch_size * (image_size / 2**depth)**2 < 2``."""
    side = image_size // 2**depth
    if batch_size * side * side < 2:
        raise BadValue(
            f"batch size {batch_size} with {image_size}x{image_size} images at depth {depth} leaves "
            f"the innermost layer {side}x{side} with one value per channel, and BatchNorm cannot "
            "train on that; use a batch size of 2 or more, a larger image size or a smaller depth"
        )


def training_memory_estimate(batch_size: int, image_size: int, width: float) -> int:
    """A lower bound (bytes) of the memory one training step of a PConvUNet needs for its
    activations: measured on the CPU at about 580 + 2200 * width bytes per image pixel (forward
    and backward, without the VGG16 loss); 400 + 1500 * width is used so that a refusal is
    certain to be right."""
    return int(batch_size * image_size * image_size * (400 + 1500 * width))


def check_training_memory(
    batch_size: int, image_size: int, width: float, device: torch.device | str = "cpu"
) -> None:
    """Refuse, before anything is allocated, a batch that cannot fit in the free memory of
    ``device`` (CPU: available RAM; CUDA: free GPU memory; others are not checked).

    Raises:
        ValueError: one line with the estimate, what is free, and the flags to lower.
    """
    device = torch.device(device)
    free: int | None = None
    if device.type == "cpu":
        free = files_lib.available_memory()
    elif device.type == "cuda" and torch.cuda.is_available():
        try:
            free = int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            free = None
    need = training_memory_estimate(batch_size, image_size, width)
    if free is not None and need > free:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise BadValue(
            f"a batch of {batch_size} images of {image_size}x{image_size} at width {width} needs at least "
            f"about {need / 1e9:.1f} GB of {where} per training step, and {free / 1e9:.1f} GB is free: "
            "lower --batch-size, --image-size or --width"
        )


# --------------------------------------------------------------------------------------------
# Data order
# --------------------------------------------------------------------------------------------


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices, reshuffled every pass over the data, resumable at any batch.

    Pass ``p`` uses the permutation ``randperm(n, seed=(seed, p))``; its batches are consecutive
    slices of ``batch_size * world_size`` indices, of which rank ``r`` takes every
    ``world_size``-th one. The sampler yields ``num_batches`` batches from global batch
    ``start`` on, crossing passes as needed, and calls ``dataset.set_epoch(p)`` when a pass
    begins so that crops and masks change between passes.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int,
        start: int = 0,
        num_batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.global_batch = batch_size * world_size
        if self.n < self.global_batch:
            raise BadValue(
                f"the dataset has {self.n} items, fewer than one batch of {self.global_batch} "
                f"(batch size {batch_size} x {world_size} processes); add images or lower the batch size"
            )
        self.batches_per_pass = self.n // self.global_batch
        self.seed, self.start, self.rank, self.world_size = seed, start, rank, world_size
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.num_batches if self.num_batches is not None else self.batches_per_pass

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        for _ in range(len(self)):
            epoch, within = divmod(batch, self.batches_per_pass)
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=generator)
            chunk = order[within * self.global_batch : (within + 1) * self.global_batch]
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            yield chunk[self.rank :: self.world_size].tolist()
            batch += 1


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


def _distributed() -> tuple[int, int]:
    """(rank, world_size); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    """Train a :class:`PConvUNet` on an inpainting dataset (items with ``image`` and ``mask``).

    Args:
        config: a :class:`TrainConfig`.
        train_data: a dataset whose items are dicts with ``image`` (3, H, W) in [0, 1] and
            ``mask`` (1, H, W), 1 = valid (e.g. :class:`pconv_lib.data.InpaintingDataset`).
        val_data: the same for validation (optional; without it ``best.pt`` is not written).
        loss: a :class:`PConvLoss`; default built from ``config.vgg_weights`` and
            ``config.loss_weights``.
        device: default :func:`pick_device` (cuda → mps → cpu); with torchrun, ``cuda:LOCAL_RANK``.
        init_from: a checkpoint whose model weights start this run (phase 2 from phase 1).
        progress: show a tqdm progress bar (rank 0 only).
        sample_data: photos for the sample grids saved every ``sample_every`` steps (the
            original course's ``--test`` folder); default the validation data.
        overwrite: delete the files of an earlier run in the run folder when this run first
            writes. Without it a run folder that already holds a run is refused
            (:class:`RunFolderInUseError`) unless :meth:`resume` continues a checkpoint from it.

    Checked here, before any training: the devices, the sizes (BatchNorm needs more than one
    value per channel), that the training and validation data hold at least one batch, and
    that the run folder is writable. Ctrl-C during :meth:`fit` stops between two steps and
    saves ``interrupted.pt`` (see :meth:`fit`).
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
        self.rank, self.world_size = _distributed()
        if device is None and self.world_size > 1 and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = resolve_device(device)
        check_batchnorm_batch(config.batch_size, config.image_size, config.depth)
        check_training_memory(config.batch_size, config.image_size, config.width, self.device)
        for what, data in (("training", train_data), ("validation", val_data)):
            if data is None:
                continue
            count, batch = len(data), config.batch_size * self.world_size  # type: ignore[arg-type]
            if count < batch:
                raise BadValue(
                    f"the {what} data has {count} item(s), fewer than one batch of {batch}: "
                    f"add {what} images or lower the batch size"
                )
        if self.rank == 0:
            check_writable_folder(config.run_dir, "run folder")
        self.overwrite = overwrite
        self._claimed = False  # True once this trainer may write into the run folder
        self._resumed_at: int | None = None
        self._clear_on_claim = False
        self._token = secrets.token_hex(8)  # names this trainer in the run folder's lock file
        self._lock_held = False
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
        # masks are validated once per batch on the CPU (_batch_to_device), not inside the model,
        # so that the GPU never waits for the check (and torch.compile sees one graph)
        self.model.check_mask = False
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
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad], lr=config.learning_rate
        )
        self.use_amp = config.amp and self.device.type == "cuda"
        self.amp_dtype = getattr(torch, config.amp_dtype)
        # bfloat16 has float32's range: no loss scaling
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.loss = loss or PConvLoss(LossWeights(**config.loss_weights), vgg_weights=config.vgg_weights)
        self.loss = self.loss.to(self.device)
        self.step = 0
        self.best_val = math.inf
        self.history: list[dict[str, float]] = []
        self._writer = None

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
        if self.rank != 0:
            return None
        with self._holding_lock():
            self._claim_run_folder()
            return save_checkpoint(self.config.run_dir / name, self.state_dict())

    @contextlib.contextmanager
    def _holding_lock(self) -> Iterator[None]:
        """Hold the run folder's lock (``.pconv.lock``: PID, host) while writing into it; a
        folder locked by another live trainer is refused (:class:`RunFolderLocked`)."""
        if self.rank != 0 or self._lock_held:
            yield
            return
        run_dir = self.config.run_dir
        acquire_lock(run_dir, self._token)
        self._lock_held = True
        try:
            yield
        finally:
            self._lock_held = False
            release_lock(run_dir, self._token)

    def _claim_run_folder(self) -> None:
        """Before this trainer first writes: refuse (or, with ``overwrite``, clear) a folder that
        holds another run; remove stale ``*.tmp`` files; after a resume, drop the metrics rows
        logged after the checkpoint (they are logged again)."""
        if self._claimed or self.rank != 0:
            return
        run_dir = self.config.run_dir
        if self.overwrite and (self._resumed_at is None or self._clear_on_claim):
            clear_run_folder(run_dir)
        elif self._resumed_at is None:
            check_run_folder(run_dir, token=self._token)
            clear_run_folder(run_dir)  # only leftovers remain (temporary or empty files)
        for stale in run_files(run_dir):  # only the temporary files this library writes
            if stale.suffix == ".tmp":
                stale.unlink(missing_ok=True)
        if self._resumed_at is not None:
            self._truncate_metrics(self._resumed_at)
        self._claimed = True

    def _truncate_metrics(self, step: int) -> None:
        path = self.config.run_dir / "metrics.csv"
        if not path.is_file():
            return
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
        if len(kept) != len(rows):
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)
            os.replace(tmp, path)

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Continue a run from a checkpoint: model, optimiser, scaler, step and best loss.

        Settings that define the model (depth, width, layer, hole fill, image size, stage) must
        match the checkpoint's (``ValueError`` otherwise). Every other setting of this trainer's
        config that differs from the checkpoint's - the learning rate, steps, batch size, loss
        weights, ... - is applied (the optimiser takes the new learning rate) and recorded: in
        :attr:`resume_changes` and in the ``resume_history`` of every later checkpoint.
        """
        state = load_checkpoint(path, map_location=self.device)
        try:
            saved = TrainConfig.from_dict(state["config"])
        except (TypeError, ValueError) as error:
            raise BadValue(f"{path}: its config is invalid ({error})") from None
        for key in ("depth", "width", "layer", "hole_fill", "image_size", "stage"):
            if getattr(saved, key) != getattr(self.config, key):
                raise BadValue(
                    f"cannot resume {path}: it was trained with {key}={getattr(saved, key)!r}, "
                    f"this run has {key}={getattr(self.config, key)!r}"
                )
        if self.overwrite and is_inside(path, self.config.run_dir):
            raise BadValue(
                f"cannot resume {path} with overwrite: it would delete the run being resumed; "
                "drop --overwrite (API: overwrite=False) to continue it"
            )
        if "optimizer" not in state or "step" not in state:
            raise BadValue(
                f"cannot resume {path}: it holds model weights only (no optimiser state or step); "
                "start from it with --checkpoint instead"
            )
        outside = not is_inside(path, self.config.run_dir)
        if self.rank == 0 and outside and not self.overwrite:
            # continuing elsewhere must not mix two runs
            check_run_folder(self.config.run_dir, token=self._token)
        load_model_weights(self.model, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        torch.set_rng_state(state["torch_rng"])
        mine = asdict(self.config)
        self.resume_changes = {
            key: (old, mine[key])
            for key, old in asdict(saved).items()
            if key not in ("name", "out_dir") and old != mine[key]
        }
        for group in self.optimizer.param_groups:  # a changed lr is applied, not only recorded
            group["lr"] = self.config.learning_rate
        self.resume_history = list(state.get("resume_history", []))
        if self.resume_changes:
            changed = {key: list(pair) for key, pair in self.resume_changes.items()}
            self.resume_history.append({"step": self.step, "changed": changed})
        self._resumed_at = self.step
        self._clear_on_claim = self.overwrite and outside
        self._claimed = False
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
        try:
            terms, _ = self._losses(image, mask)
        except ValueError as error:
            if "Expected more than 1 value per channel" not in str(error):
                raise
            raise BadValue(
                f"BatchNorm got one value per channel (batch of {image.shape[0]} at "
                f"{image.shape[-2]}x{image.shape[-1]}, depth {self.config.depth}): use a batch "
                "size of 2 or more, larger images or a smaller depth"
            ) from None
        if not torch.isfinite(terms["total"]):
            last = self.config.run_dir / "last.pt"
            kept = (
                f"{last} still holds the last good checkpoint"
                if last.is_file()
                else "no checkpoint (last.pt) had been written yet"
            )
            raise TrainingDiverged(
                f"training stopped: the loss is {terms['total'].item()} at step {self.step}; {kept}. "
                "Lower the learning rate or check the data (e.g. images or masks with NaN)."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def validate(self, steps: int | None = None) -> dict[str, float]:
        """Mean loss terms over ``steps`` validation batches (the same batches every time)."""
        if self.val_data is None:
            raise BadValue("no validation data was given to the Trainer")
        steps = steps or self.config.val_steps
        sampler = EpochBatchSampler(
            self.val_data,
            self.config.batch_size,
            seed=self.config.seed + 1,
            num_batches=min(steps, len(self.val_data) // self.config.batch_size),
        )
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        loader = DataLoader(
            self.val_data,
            batch_sampler=sampler,
            num_workers=self.config.num_workers,
            worker_init_fn=worker_ignores_stop_signals,
        )
        for batch in loader:
            image, mask = self._batch_to_device(batch)
            terms, _ = self._losses(image, mask)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        return {key: value / count for key, value in sums.items()}

    # ---------------------------------------------------------------- logging
    def _log(self, kind: str, values: dict[str, float]) -> None:
        row = {"step": self.step, "kind": kind, **values}
        self.history.append(row)
        if self.rank != 0:
            return
        with self._holding_lock():
            self._claim_run_folder()
            self._write_metrics_row(row)
        run_dir = self.config.run_dir
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # after a resume, purge the events logged after the checkpoint (they are logged again)
            purge = None if self._resumed_at is None else self._resumed_at + 1
            self._writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
        for key, value in values.items():
            self._writer.add_scalar(f"{kind}/{key}", value, self.step)

    def _write_metrics_row(self, row: dict[str, Any]) -> None:
        """Append ``row`` to ``metrics.csv``: the file is created whole (temporary file + rename)
        and a failed append is cut back, so a full disk never leaves a broken or empty file."""
        path = self.config.run_dir / "metrics.csv"
        columns = ["step", "kind", "total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
        if not path.is_file() or path.stat().st_size == 0:
            writer.writeheader()
            writer.writerow(row)
            write_atomically(path, text.getvalue().encode())
            return
        writer.writerow(row)
        size = path.stat().st_size
        try:
            with path.open("a", newline="") as handle:
                handle.write(text.getvalue())
        except OSError as error:
            try:
                os.truncate(path, size)
            except OSError:
                pass
            raise write_error(path, error) from None

    @torch.no_grad()
    def save_samples(self, batch: dict, name: str | None = None) -> Path | None:
        """Save a grid: rows input (holes white), mask, output, composite, ground truth."""
        if self.rank != 0:
            return None
        with self._holding_lock():
            self._claim_run_folder()
        from torchvision.utils import save_image

        self.model.eval()
        image, mask = self._batch_to_device(batch)
        output, _ = self.model(image * mask, mask)
        output = output.float().clamp(0, 1)
        comp = mask * image + (1 - mask) * output
        shown = image * mask + (1 - mask)
        rows = torch.cat([shown, mask.expand_as(image), output, comp, image], dim=0)
        path = self.config.run_dir / "samples" / (name or f"step_{self.step:07d}.png")
        with self._holding_lock():
            grid = dict(format="png", nrow=image.shape[0], padding=2, pad_value=1.0)
            replace_atomically(path, lambda tmp: save_image(rows.cpu(), tmp, **grid))
        return path

    # ---------------------------------------------------------------- the loop
    def fit(self, steps: int | None = None) -> list[dict[str, float]]:
        """Train until ``config.steps`` (or ``steps`` more); return the logged rows.

        Checkpoints go to ``<out_dir>/<name>/``: ``last.pt`` every ``checkpoint_every`` steps
        and at the end, ``best.pt`` when the validation loss improves (every epoch).

        Ctrl-C (a notebook's interrupt button), SIGTERM (schedulers, ``docker stop``, Colab) or
        SIGHUP (a closed terminal) finishes the current step, saves ``interrupted.pt`` - a
        consistent state between two steps, so resuming from it is exact - and raises
        :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) with a one-line message. A second
        signal stops at once and saves nothing. A NaN/inf loss raises :class:`TrainingDiverged`.
        While it runs, the run folder holds a lock file (``.pconv.lock``, with this process's
        PID): a second trainer there is refused (:class:`RunFolderLocked`) until it ends.
        """
        if self.rank != 0:
            return self._fit(steps)
        with self._holding_lock():
            return self._fit(steps)

    def _fit(self, steps: int | None) -> list[dict[str, float]]:
        config = self.config
        target = config.steps if steps is None else self.step + steps
        if self.step >= target:
            if self._resumed_at is not None and self.rank == 0 and steps is None:
                self.save("last.pt")  # a run resumed at its last step: it ends with its last.pt
            return self.history
        sampler = EpochBatchSampler(
            self.train_data,
            config.batch_size,
            seed=config.seed,
            start=self.step,
            num_batches=target - self.step,
            rank=self.rank,
            world_size=self.world_size,
        )
        loader = DataLoader(
            self.train_data,
            batch_sampler=sampler,
            num_workers=config.num_workers,
            worker_init_fn=worker_ignores_stop_signals,
            pin_memory=self.device.type == "cuda",
        )
        sample_batch = None
        if self.rank == 0 and self.sample_data is not None:
            count = min(4, len(self.sample_data))  # type: ignore[arg-type]
            sample_batch = next(iter(DataLoader(self.sample_data, batch_size=count)))
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=target, initial=self.step, desc=config.name, unit="step")
        running: dict[str, float] = {}
        self._claim_run_folder()
        batches = iter(loader)
        in_step = False
        consistent, start = True, self.step  # consistent: between two steps (weights, BN, optimiser agree)
        with DeferredInterrupt(enabled=self.world_size == 1) as interrupt:
            try:
                while not interrupt.requested:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except RuntimeError:  # DataLoader workers die on Ctrl-C in a terminal
                        if interrupt.requested:
                            break
                        raise
                    if interrupt.requested:
                        break
                    in_step = True  # from here until the checkpoint the state is half-updated
                    consistent = False
                    terms = self.train_step(batch)
                    consistent = True
                    for key, value in terms.items():
                        running[key] = running.get(key, 0.0) + value
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{terms['total']:.3f}")
                    if self.step % config.log_every == 0 or self.step == target:
                        count = (self.step - 1) % config.log_every + 1
                        self._log("train", {k: v / count for k, v in running.items()})
                        running = {}
                    if self.step % config.steps_per_epoch == 0 and self.val_data is not None:
                        val = self.validate()
                        self._log("val", val)
                        if val["total"] < self.best_val:
                            self.best_val = val["total"]
                            self.save("best.pt")
                    if sample_batch is not None and self.step % config.sample_every == 0:
                        self.save_samples(sample_batch)
                    if self.step % config.checkpoint_every == 0:
                        self.save("last.pt")
                        if config.keep_step_checkpoints:
                            self.save(f"step_{self.step:07d}.pt")
                    in_step = False
            except KeyboardInterrupt:
                # A second Ctrl-C (or one where no handler could be installed): if it came in the
                # middle of a step, the model, BatchNorm buffers and optimiser disagree - save nothing.
                if in_step:
                    last = self.config.run_dir / "last.pt"
                    raise TrainingInterrupted(
                        f"interrupted in the middle of step {self.step + 1}: that state is half-updated, "
                        "so nothing was saved; "
                        + (
                            f"continue with the same command plus --resume {last}"
                            if last.is_file()
                            else "no checkpoint had been written yet: rerun with --overwrite"
                        ),
                        self.step,
                        None,
                        interrupt.signum,
                    ) from None
                interrupt.requested = True
            except Exception:
                # An error between two steps (reading data, validating, writing a sample): keep
                # the progress since the last checkpoint before it propagates.
                if consistent and self.rank == 0 and self.step > start:
                    self._save_before_error()
                raise
            finally:
                if bar is not None:
                    bar.close()
                if self._writer is not None:
                    self._writer.flush()
        if interrupt.requested and self.step < target:
            # Only a state between two steps is saved: weights, optimiser, BatchNorm statistics
            # and step agree, so resuming from it equals an uninterrupted run.
            path = self.save("interrupted.pt")
            where = (
                f"saved {path}; continue with the same command plus --resume {path} (without --overwrite)"
                if path is not None
                else "rank > 0"
            )
            raise TrainingInterrupted(
                f"interrupted by {signal_name(interrupt.signum)} at step {self.step} of {target}: {where}",
                self.step,
                path,
                interrupt.signum,
            )
        self.save("last.pt")
        return self.history

    def _save_before_error(self) -> None:
        """Save ``interrupted.pt`` while an error propagates, and say so (a warning); a failed
        save (e.g. the disk is full - often the error itself) is left to the original error."""
        try:
            path = self.save("interrupted.pt")
        except Exception:
            return
        warnings.warn(
            f"training stopped by an error at step {self.step}; saved {path} first: once the cause is "
            f"fixed, continue with the same command plus --resume {path}",
            UserWarning,
            stacklevel=3,
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# --------------------------------------------------------------------------------------------
# Learning-rate finder
# --------------------------------------------------------------------------------------------


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured.

    ``lrs[i]`` is the learning rate of step ``i``; ``losses[i]`` the bias-corrected exponential
    moving average of the total loss up to that step (``raw_losses[i]``: the loss itself).
    ``suggestion`` is the lr where the smoothed loss falls fastest against log(lr), or ``None``
    when too few steps ran to tell. ``stopped_early`` is True when the loss diverged.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    stopped_early: bool

    def summary(self) -> str:
        """One line: the suggestion, the range swept, and whether the loss diverged."""
        where = (
            f"suggested lr {self.suggestion:.2g} (steepest descent of the smoothed loss)"
            if self.suggestion is not None
            else "no suggestion (too few steps before the loss diverged: lower --start-lr or add steps)"
        )
        end = "diverged and stopped" if self.stopped_early else "ran to the end"
        return (
            f"{where}; swept lr {self.lrs[0]:.1e} .. {self.lrs[-1]:.1e} over {len(self.lrs)} steps, "
            f"the loss {end}"
        )

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Smoothed loss against lr (log axis), the suggestion marked; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(self.lrs, self.raw_losses, color="0.8", lw=1, label="loss at each step")
        ax.plot(self.lrs, self.losses, lw=2, label="smoothed")
        if self.suggestion is not None:
            index = self.lrs.index(self.suggestion)
            ax.plot([self.suggestion], [self.losses[index]], "o", color="C3",
                    label=f"steepest descent: lr {self.suggestion:.1e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("total loss")
        ax.set_title(title or "learning-rate finder")
        ax.legend(fontsize=8)
        return ax


def _steepest_descent(lrs: list[float], smoothed: list[float]) -> float | None:
    """The lr where ``d smoothed / d log(lr)`` is most negative (edges skipped), else None."""
    if len(lrs) < 5:
        return None
    slopes = torch.tensor(smoothed, dtype=torch.float64)
    log_lrs = torch.tensor(lrs, dtype=torch.float64).log()
    gradient = (slopes[2:] - slopes[:-2]) / (log_lrs[2:] - log_lrs[:-2])  # central differences
    skip = max(1, len(lrs) // 10)  # the first steps are noise around the starting loss
    gradient = gradient[skip - 1 :]
    return float(lrs[int(torch.argmin(gradient)) + skip]) if len(gradient) else None


def check_lr_sweep(
    start_lr: float, end_lr: float, steps: int, *, beta: float = 0.9, diverge_factor: float = 4.0
) -> None:
    """Raise ``ValueError`` (one line saying what to change) for arguments :func:`lr_find` rejects."""
    if not 0 < start_lr < end_lr or not math.isfinite(end_lr):
        raise BadValue(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if steps < 5:
        raise BadValue(f"steps must be >= 5 to see a trend, got {steps}")
    if not 0 <= beta < 1:
        raise BadValue(f"beta must be in [0, 1), got {beta}")
    if diverge_factor <= 1:
        raise BadValue(f"diverge_factor must be > 1, got {diverge_factor}")


def lr_find(
    model: nn.Module,
    data: Dataset,
    loss: nn.Module,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 4,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LRFindResult:
    """The learning-rate range test of the original course (Smith 2015; fastai's ``lr_find``).

    Trains a **copy** of ``model`` with Adam for ``steps`` steps while the learning rate grows
    exponentially from ``start_lr`` to ``end_lr`` (step ``i`` uses
    ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``), recording the total loss. At tiny
    learning rates the loss barely moves, then it falls, then it explodes; a good learning rate
    lies where it falls fastest (``suggestion``), usually a little below the minimum. The sweep
    stops early when the smoothed loss exceeds ``diverge_factor`` times its lowest value or
    becomes inf/NaN. ``model`` (weights, BatchNorm statistics, train/eval mode) is unchanged.

    Args:
        model: a :class:`~pconv_lib.model.PConvUNet` (anything called as ``model(image, mask)``
            returning the output or ``(output, mask)``).
        data: a dataset of dicts with ``image`` (3, H, W) in [0, 1] and ``mask`` (1, H, W),
            1 = valid (e.g. :func:`pconv_lib.data.sample_photo_dataset`); cycled as needed.
        loss: a :class:`~pconv_lib.losses.PConvLoss` (or anything returning ``{"total": ...}``
            or a scalar tensor) called as ``loss(output, image, mask, image * mask)``.
        start_lr, end_lr: the sweep, ``0 < start_lr < end_lr``.
        steps: number of optimiser steps (>= 5); a few hundred for a real run, a few dozen for
            a look on a CPU.
        batch_size: images per step.
        beta: smoothing of the loss curve (exponential moving average, bias-corrected).
        diverge_factor: stop once the smoothed loss is this many times its best value.
        device: default :func:`pick_device`.
        seed: seeds the batch order (and nothing else: the global RNG state is restored).
        progress: a tqdm bar on stderr (steps done, time left, current lr and smoothed loss).

    Returns:
        :class:`LRFindResult` (``lrs``, smoothed ``losses``, ``raw_losses``, ``suggestion``,
        ``stopped_early``; ``.plot()`` and ``.summary()``).
    """
    import copy

    check_lr_sweep(start_lr, end_lr, steps, beta=beta, diverge_factor=diverge_factor)
    if len(data) < batch_size:  # type: ignore[arg-type]
        raise BadValue(
            f"the dataset has {len(data)} items, fewer than one batch of {batch_size}: "  # type: ignore[arg-type]
            "lower batch_size or add images"
        )
    device = resolve_device(device)
    trial = copy.deepcopy(model).to(device).train()
    loss = loss.to(device)
    optimizer = torch.optim.Adam([p for p in trial.parameters() if p.requires_grad], lr=start_lr)
    factor = (end_lr / start_lr) ** (1 / (steps - 1))

    def batches() -> Iterator[dict]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield from DataLoader(
                data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator
            )

    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best, stopped = 0.0, math.inf, False
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="lr-find", unit="step", disable=not progress)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for step, batch in zip(range(steps), batches()):
            lr = start_lr * factor**step
            for group in optimizer.param_groups:
                group["lr"] = lr
            image = batch["image"].to(device)
            mask = batch["mask"].to(device)
            output = trial(image * mask, mask)
            output = output[0] if isinstance(output, tuple) else output
            terms = loss(output.float(), image, mask, image * mask)
            total = terms["total"] if isinstance(terms, dict) else terms
            value = float(total.detach())
            if not math.isfinite(value):
                stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            average = beta * average + (1 - beta) * value
            current = average / (1 - beta ** (step + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(current)
            best = min(best, current)
            bar.update(1)
            bar.set_postfix(lr=f"{lr:.1e}", loss=f"{current:.4g}", refresh=False)
            if current > diverge_factor * best:
                stopped = True
                break
    bar.close()
    if not lrs:
        raise FloatingPointError(
            f"the loss was not finite at the first step (lr {start_lr:g}): check the data and the model"
        )
    # Beyond the divergence point the curve only says "too large": look for the descent before it.
    cut = len(lrs)
    if stopped:
        cut = next((i for i, v in enumerate(smoothed) if v > 2 * best and i > smoothed.index(best)), cut)
    return LRFindResult(lrs, smoothed, raw, _steepest_descent(lrs[:cut], smoothed[:cut]), stopped)
