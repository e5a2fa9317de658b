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

Multi-GPU / multi-node: start with ``torchrun --nproc_per_node=N -m pconv_lib train ...``; the
trainer sees ``WORLD_SIZE`` > 1, joins the process group (NCCL on CUDA, gloo on CPU), wraps the
model in ``DistributedDataParallel`` and gives each rank its own share of every batch of indices.
Only rank 0 logs, saves samples and writes checkpoints.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pconv_lib.layers import check_mask_values
from pconv_lib.losses import LossWeights, PConvLoss
from pconv_lib.model import PConvUNet
from pconv_lib.pretrained import resolve_checkpoint
from pconv_lib.runtime import pick_device

STAGE_LR = {"train": 2e-4, "finetune": 5e-5}
CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint.

    Sizes: ``image_size`` must be a multiple of ``2**depth`` (256 with depth 7 and 512 with
    depth 8 are the paper's). ``lr=None`` takes the stage's learning rate (2e-4 / 5e-5).
    GPU speed options (ignored on the CPU except ``compile``): ``amp`` with ``amp_dtype``
    ``"float16"`` (with loss scaling) or ``"bfloat16"`` (no scaling needed; Ampere or newer),
    ``compile`` (``torch.compile`` the model; the first steps are slow while it compiles),
    ``channels_last`` (NHWC memory format, usually faster convolutions with AMP).
    """

    name: str = "pconv"
    stage: str = "train"
    image_size: int = 256
    depth: int = 7
    width: float = 1.0
    batch_size: int = 4
    lr: float | None = None
    steps: int = 100_000
    steps_per_epoch: int = 10_000
    val_steps: int = 1_000
    log_every: int = 100
    sample_every: int = 1_000
    checkpoint_every: int = 1_000
    keep_step_checkpoints: bool = False
    amp: bool = True
    amp_dtype: str = "float16"
    compile: bool = False
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 0
    vgg_weights: str | None = "imagenet"
    out_dir: str = "runs"
    loss_weights: dict[str, float] = field(default_factory=lambda: LossWeights().as_dict())

    def __post_init__(self) -> None:
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"amp_dtype must be 'float16' or 'bfloat16', got {self.amp_dtype!r}")
        if self.stage not in STAGE_LR:
            raise ValueError(f"stage must be 'train' or 'finetune', got {self.stage!r}")
        multiple = 2**self.depth
        if self.image_size % multiple:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of 2**depth = {multiple}; "
                f"use {max(multiple, self.image_size // multiple * multiple)} or a smaller depth"
            )
        for name in (
            "batch_size",
            "steps",
            "steps_per_epoch",
            "val_steps",
            "log_every",
            "sample_every",
            "checkpoint_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else STAGE_LR[self.stage]

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: to ``path.tmp`` first, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code from the file is run).

    ``"demo"`` names the bundled course demo model (:mod:`pconv_lib.pretrained`).

    Raises:
        FileNotFoundError: naming the file.
        ValueError: for a truncated, corrupt or foreign file, naming it.
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for broken files
        raise ValueError(
            f"{path}: not a readable pconv checkpoint ({type(error).__name__}: {error}). If a run "
            "was interrupted while saving, use the previous checkpoint (writes are atomic, so "
            "last.pt or best.pt next to it is intact)"
        ) from error
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not a pconv checkpoint (no 'model'/'config' entries)")
    return state


def model_from_checkpoint(
    path: str | os.PathLike, device: torch.device | str | None = None
) -> tuple[PConvUNet, TrainConfig]:
    """Rebuild the model of a checkpoint (architecture from its config) in eval mode."""
    state = load_checkpoint(path)
    config = TrainConfig.from_dict(state["config"])
    model = PConvUNet(depth=config.depth, width=config.width)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    return model.to(device or "cpu").eval(), config


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
            raise ValueError(
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
    ) -> None:
        self.config = config
        self.rank, self.world_size = _distributed()
        if device is None and self.world_size > 1 and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = pick_device(None if device is None else str(device))
        self.train_data, self.val_data = train_data, val_data
        self.sample_data = sample_data if sample_data is not None else val_data
        self.progress = progress and self.rank == 0

        torch.manual_seed(config.seed)
        self.model = PConvUNet(
            depth=config.depth, width=config.width, freeze_encoder_bn=config.stage == "finetune"
        ).to(self.device)
        if init_from is not None:
            self.model.load_state_dict(load_checkpoint(init_from)["model"])
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
            "torch_rng": torch.get_rng_state(),
        }

    def save(self, name: str = "last.pt") -> Path | None:
        """Write a checkpoint into the run folder (rank 0 only); return its path."""
        if self.rank != 0:
            return None
        return save_checkpoint(self.config.run_dir / name, self.state_dict())

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Continue a run from a checkpoint: model, optimiser, scaler, step and best loss."""
        state = load_checkpoint(path, map_location=self.device)
        saved = TrainConfig.from_dict(state["config"])
        for key in ("depth", "width", "image_size", "stage"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ValueError(
                    f"cannot resume {path}: it was trained with {key}={getattr(saved, key)!r}, "
                    f"this run has {key}={getattr(self.config, key)!r}"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        torch.set_rng_state(state["torch_rng"])
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
        terms, _ = self._losses(image, mask)
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(
                f"loss is {terms['total'].item()} at step {self.step}; last.pt still holds the "
                "previous checkpoint. Lower the learning rate or check the data."
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
            raise ValueError("no validation data was given to the Trainer")
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
        for batch in DataLoader(self.val_data, batch_sampler=sampler, num_workers=self.config.num_workers):
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
        run_dir = self.config.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "metrics.csv"
        columns = ["step", "kind", "total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"]
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir / "tensorboard"))
        for key, value in values.items():
            self._writer.add_scalar(f"{kind}/{key}", value, self.step)

    @torch.no_grad()
    def save_samples(self, batch: dict, name: str | None = None) -> Path | None:
        """Save a grid: rows input (holes white), mask, output, composite, ground truth."""
        if self.rank != 0:
            return None
        from torchvision.utils import save_image

        self.model.eval()
        image, mask = self._batch_to_device(batch)
        output, _ = self.model(image * mask, mask)
        output = output.float().clamp(0, 1)
        comp = mask * image + (1 - mask) * output
        shown = image * mask + (1 - mask)
        rows = torch.cat([shown, mask.expand_as(image), output, comp, image], dim=0)
        path = self.config.run_dir / "samples" / (name or f"step_{self.step:07d}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(rows.cpu(), path, nrow=image.shape[0], padding=2, pad_value=1.0)
        return path

    # ---------------------------------------------------------------- the loop
    def fit(self, steps: int | None = None) -> list[dict[str, float]]:
        """Train until ``config.steps`` (or ``steps`` more); return the logged rows.

        Checkpoints go to ``<out_dir>/<name>/``: ``last.pt`` every ``checkpoint_every`` steps
        and at the end, ``best.pt`` when the validation loss improves (every epoch).
        """
        config = self.config
        target = config.steps if steps is None else self.step + steps
        if self.step >= target:
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
        try:
            for batch in loader:
                terms = self.train_step(batch)
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
        except KeyboardInterrupt:
            # Keep the progress, but never overwrite last.pt with a step that may be half-done.
            path = self.save("interrupted.pt")
            if path is not None:
                print(f"interrupted at step {self.step}: saved {path}; resume from it or from last.pt")
            raise
        finally:
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.flush()
        self.save("last.pt")
        return self.history

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
