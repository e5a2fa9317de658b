#!/usr/bin/env python
"""Reproduce the course demo model (``pconv_lib/weights/demo_model.pt``) end to end, offline after fetch.

    python tools/train_demo_model.py --stage all                   # fetch, extract, ..., card
    python tools/train_demo_model.py --stage all --debs DIR        # .deb files already downloaded
    python tools/train_demo_model.py --stage finetune --steps 600  # phase 2 from the bundled model

Stages (``--stage``; ``all`` runs fetch, extract, prepare, train, export, card in that order):

- ``fetch``: ``apt-get download`` the four Debian wallpaper packages (:data:`PACKAGES`) into
  ``<work>/debs`` (skipped with ``--debs DIR``, a folder that already holds the ``.deb`` files).
- ``extract``: pull exactly the photos listed in ``tools/demo_photos/{train,val}.txt`` out of the
  ``.deb`` files into ``<work>/extracted`` (the layout ``dpkg -x`` gives), in pure Python (``ar`` +
  ``tar``; no dpkg needed), or with ``--extractor dpkg``. ``--extracted DIR`` uses a folder
  where ``dpkg -x`` already ran. A listed photo that is missing is one clear error naming it.
- ``prepare``: ``<work>/photos/train``: each train photo resized (``INTER_AREA``) so that its
  shorter side is 384, 640 and 1024 px (JPEG quality 92); ``<work>/photos/val``: each val photo
  at 512 px, copied 12 times (validation needs at least one batch of 32).
- ``train``: phase 1 with :class:`pconv_lib.train.Trainer`, the reference recipe
  (:func:`reference_config`): stage ``"train"`` (lr 2e-4), pixel losses only (valid 1, hole 6,
  TV 0.1) with a stand-in feature extractor since VGG16 ImageNet weights cannot be had offline;
  the checkpoint with the best validation loss is kept (``<work>/runs/<name>/best.pt``).
- ``finetune``: the paper's phase 2 (stage ``"finetune"``: lr 5e-5, encoder BatchNorm frozen),
  starting from ``--init`` (default: the bundled demo model); the starting point counts as the
  first "best", so the result is never worse on validation than where it started.
- ``export``: write ``--output`` (default the bundled ``demo_model.pt``) from ``--checkpoint``
  (default: the best checkpoint of the stage's run): fp16 weights, CPU tensors,
  ``{"model", "config", "step", "provenance"}``.
- ``heldout``: extract the photos of ``tools/demo_photos/heldout.txt`` (other photographs of the
  same packages, never trained on) into ``<work>/photos/heldout`` at 320 px (shorter side), the
  held-out set for ``python -m pconv_lib evaluate --images <work>/photos/heldout``.
- ``card``: evaluate that file exactly as ``python -m pconv_lib evaluate --checkpoint <file>
  --size 256 --buckets 1,2,3,4`` does and write ``MODEL_CARD.md`` next to it.

The photos are Debian wallpaper package photographs (see the packages' ``copyright`` files for
each photo's licence); the other photos of those packages and the scikit-image photos are never
used for training, so they stay available for independent evaluation.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from pconv_lib.data import InpaintingDataset, mean_pixel  # noqa: E402
from pconv_lib.losses import LossWeights, PConvLoss  # noqa: E402
from pconv_lib.masks import random_training_mask  # noqa: E402
from pconv_lib.pretrained import MODEL_CARD  # noqa: E402
from pconv_lib.runs.checkpoints import (  # noqa: E402
    DEMO_CHECKPOINT,  # noqa: E402
    load_checkpoint,
    save_checkpoint,
)
from pconv_lib.runtime import apply_thread_policy  # noqa: E402
from pconv_lib.train import Trainer  # noqa: E402
from pconv_lib.train_config import TrainConfig  # noqa: E402
from pconv_lib.util.image_files import read_image  # noqa: E402

#: The Debian packages whose photographs train the demo model.
PACKAGES = (
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
)
LIST_DIR = ROOT / "tools" / "demo_photos"
TRAIN_LIST = LIST_DIR / "train.txt"
VAL_LIST = LIST_DIR / "val.txt"
#: Photographs of the same packages that are never trained on: the held-out evaluation set.
HELDOUT_LIST = LIST_DIR / "heldout.txt"
HELDOUT_SIZE = 320
#: Shorter side (px) of the three copies of every train photo, and of the validation photos.
TRAIN_SIZES = (384, 640, 1024)
VAL_SIZE = 512
VAL_COPIES = 12
JPEG_QUALITY = 92
#: Pixel terms only: VGG16 ImageNet weights cannot be obtained offline.
PIXEL_LOSS = LossWeights(perceptual=0.0, style_out=0.0, style_comp=0.0)
#: Evaluation of the model card: ``python -m pconv_lib evaluate --size 256 --buckets 1,2,3,4``.
CARD_SIZE = 256
CARD_BUCKETS = (1, 2, 3, 4, 5, "objects")  # = evaluate --masks all
REFERENCE_COMMIT = "ba21ebf"


class DemoBuildError(RuntimeError):
    """A step of the build cannot go on; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------
# Photo lists
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedPhoto:
    """One line of a photo list: the Debian package and the file's path inside it."""

    package: str
    path: str

    @property
    def name(self) -> str:
        """A short unique-ish name: the wallpaper folder for KDE's ``<Name>/contents/images/x.jpg``."""
        parts = PurePosixPath(self.path).parts
        if len(parts) >= 4 and parts[-2] == "images" and parts[-3] == "contents":
            return parts[-4]
        return PurePosixPath(self.path).stem


def read_photo_list(path: str | os.PathLike) -> list[ListedPhoto]:
    """Parse a list file: ``package<TAB>path`` per line; ``#`` comments and blank lines skipped.

    Raises:
        DemoBuildError: a malformed line (named by its number) or an unsafe path.
    """
    path = Path(path)
    if not path.is_file():
        raise DemoBuildError(f"photo list not found: {path}")
    photos = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise DemoBuildError(f"{path}:{number}: expected 'package<TAB>path', got {line!r}")
        package, member = (f.strip() for f in fields)
        pure = PurePosixPath(member)
        if pure.is_absolute() or ".." in pure.parts:
            raise DemoBuildError(f"{path}:{number}: the path must be relative inside the package: {member!r}")
        photos.append(ListedPhoto(package, member))
    if not photos:
        raise DemoBuildError(f"{path}: lists no photos")
    names = [p.name for p in photos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DemoBuildError(f"{path}: several photos would get the same name: {', '.join(duplicates)}")
    return photos


# --------------------------------------------------------------------------------------------
# Fetch: apt-get download
# --------------------------------------------------------------------------------------------


def find_debs(folder: str | os.PathLike, packages: Sequence[str]) -> dict[str, Path]:
    """``{package: <package>_*.deb in folder}`` (the last in name order if there are several);
    a missing package is one clear error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DemoBuildError(f"folder of .deb files not found: {folder}")
    found, missing = {}, []
    for package in packages:
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if debs:
            found[package] = debs[-1]
        else:
            missing.append(package)
    if missing:
        raise DemoBuildError(
            f"no .deb for {', '.join(missing)} in {folder}; download them there with "
            f"'apt-get download {' '.join(missing)}' (or run this script's fetch stage)"
        )
    return found


def fetch_debs(
    folder: str | os.PathLike,
    packages: Sequence[str] = PACKAGES,
    command: Sequence[str] = ("apt-get", "download"),
) -> dict[str, Path]:
    """Download the packages not yet in ``folder`` with ``command + packages`` run inside it.

    ``command`` is a parameter so that tests (or another package tool) can stand in for apt-get.
    Returns :func:`find_debs` of the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in packages if not any(folder.glob(f"{p}_*.deb"))]
    if wanted:
        print(f"fetch: {' '.join(command)} {' '.join(wanted)} (in {folder})")
        try:
            result = subprocess.run([*command, *wanted], cwd=folder, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise DemoBuildError(
                f"cannot run {command[0]!r} ({error.strerror}); on a system without apt, download the "
                f".deb files of {', '.join(wanted)} by hand and pass their folder with --debs"
            ) from error
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DemoBuildError(
                f"'{' '.join(command)} {' '.join(wanted)}' failed (exit {result.returncode}): {last[0]}; "
                "check the network and apt sources, or pass already downloaded files with --debs"
            )
    return find_debs(folder, packages)


# --------------------------------------------------------------------------------------------
# Extract: ar + tar in pure Python (or dpkg-deb)
# --------------------------------------------------------------------------------------------


def ar_members(path: str | os.PathLike) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (a ``.deb``) as ``{name: bytes}``.

    Raises:
        DemoBuildError: not an ar archive, or truncated.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise DemoBuildError(f"{path} is not a .deb (ar) archive; delete it and download it again")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        if header[58:60] != b"`\n":
            raise DemoBuildError(f"{path}: corrupt ar header at byte {offset}; download it again")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = offset + 60
        if start + size > len(data):
            raise DemoBuildError(f"{path} is truncated (member {name}); download it again")
        members[name] = data[start : start + size]
        offset = start + size + (size % 2)
    return members


def deb_data_tar(path: str | os.PathLike) -> tarfile.TarFile:
    """The ``data.tar.*`` of a ``.deb`` as an open :class:`tarfile.TarFile` (gz, xz, bz2 or plain).

    Raises:
        DemoBuildError: no data member, or a compression Python cannot read (zstd: use
            ``--extractor dpkg``).
    """
    members = ar_members(path)
    data_names = [n for n in members if n.startswith("data.tar")]
    if not data_names:
        raise DemoBuildError(f"{path}: no data.tar member; is it a Debian package?")
    name = data_names[0]
    if name.endswith(".zst"):
        raise DemoBuildError(
            f"{path}: {name} is zstd-compressed, which Python's tarfile cannot read; "
            "use --extractor dpkg (needs dpkg-deb)"
        )
    try:
        return tarfile.open(fileobj=io.BytesIO(members[name]), mode="r:*")
    except tarfile.TarError as error:
        raise DemoBuildError(f"{path}: cannot read {name} ({error}); download it again") from error


def extract_from_deb(deb: str | os.PathLike, paths: Sequence[str], dest: str | os.PathLike) -> list[Path]:
    """Extract the files ``paths`` (relative, as in the photo lists) of one ``.deb`` into ``dest``.

    Symbolic links inside the package are followed. Files land at ``dest/<path>``, the layout of
    ``dpkg -x``. Paths the package does not hold are skipped (selection reports them).
    """
    dest = Path(dest)
    wanted = {str(PurePosixPath(p)) for p in paths}
    written = []
    with deb_data_tar(deb) as archive:
        for member in archive.getmembers():
            relative = str(PurePosixPath(member.name.removeprefix("./")))
            if relative not in wanted or not (member.isfile() or member.issym() or member.islnk()):
                continue
            source = archive.extractfile(member)
            if source is None:
                continue
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, target.open("wb") as handle:
                shutil.copyfileobj(source, handle)
            written.append(target)
    return written


def extract_with_dpkg(deb: str | os.PathLike, dest: str | os.PathLike) -> None:
    """``dpkg-deb -x deb dest`` (the whole package)."""
    if shutil.which("dpkg-deb") is None:
        raise DemoBuildError("dpkg-deb is not installed; use --extractor python (the default)")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)


def extract_photos(
    debs: dict[str, Path], photos: Sequence[ListedPhoto], dest: str | os.PathLike, extractor: str = "python"
) -> None:
    """Extract every listed photo from its package's ``.deb`` into ``dest`` (``dpkg -x`` layout)."""
    dest = Path(dest)
    by_package: dict[str, list[str]] = {}
    for photo in photos:
        by_package.setdefault(photo.package, []).append(photo.path)
    for package, paths in by_package.items():
        if package not in debs:
            raise DemoBuildError(f"no .deb for package {package!r} (listed for {paths[0]})")
        print(f"extract: {len(paths)} photos from {debs[package].name} ({extractor})")
        if extractor == "dpkg":
            extract_with_dpkg(debs[package], dest)
        elif extractor == "python":
            extract_from_deb(debs[package], paths, dest)
        else:
            raise DemoBuildError(f"extractor must be 'python' or 'dpkg', got {extractor!r}")


def select_photos(root: str | os.PathLike, photos: Sequence[ListedPhoto]) -> list[Path]:
    """The files of ``photos`` under ``root`` (a ``dpkg -x`` folder), in list order.

    Raises:
        DemoBuildError: naming every listed photo that is missing (and its package).
    """
    root = Path(root)
    files, missing = [], []
    for photo in photos:
        file = root / photo.path
        if file.is_file():
            files.append(file)
        else:
            missing.append(photo)
    if missing:
        names = "; ".join(f"{p.path} (package {p.package})" for p in missing)
        raise DemoBuildError(
            f"{len(missing)} listed photo(s) not found under {root}: {names}. Extract the packages "
            "there (extract stage, or dpkg -x), or check that the package version still ships them"
        )
    return files


# --------------------------------------------------------------------------------------------
# Prepare: resized JPEGs
# --------------------------------------------------------------------------------------------


def resize_shorter(image: np.ndarray, shorter: int) -> np.ndarray:
    """Resize ``image`` (H, W, 3) with ``INTER_AREA`` so that its shorter side is ``shorter`` px."""
    h, w = image.shape[:2]
    scale = shorter / min(h, w)
    size = (shorter, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), shorter)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def write_jpeg(image: np.ndarray, path: Path, quality: int = JPEG_QUALITY) -> None:
    """Write a uint8 RGB image as JPEG (works with non-ASCII paths)."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise DemoBuildError(f"could not encode {path} as JPEG")
    path.write_bytes(encoded.tobytes())


def _read(path: Path) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise DemoBuildError(f"{path} is not a readable image; extract it again")
    return image


def _fresh_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()
    return folder


def prepare_photos(
    train: Sequence[tuple[ListedPhoto, Path]],
    val: Sequence[tuple[ListedPhoto, Path]],
    out_dir: str | os.PathLike,
    train_sizes: Sequence[int] = TRAIN_SIZES,
    val_size: int = VAL_SIZE,
    val_copies: int = VAL_COPIES,
) -> tuple[Path, Path]:
    """Write ``out_dir/train`` (every photo at every size) and ``out_dir/val`` (copies at one size).

    Names: ``<photo name>_<size>.jpg`` and ``<photo name>_<size>_<copy>.jpg``. Existing JPEGs in
    the two folders are removed first. Returns the two folders.
    """
    out_dir = Path(out_dir)
    train_dir, val_dir = _fresh_folder(out_dir / "train"), _fresh_folder(out_dir / "val")
    for photo, file in train:
        image = _read(file)
        for size in train_sizes:
            write_jpeg(resize_shorter(image, size), train_dir / f"{photo.name}_{size}.jpg")
    for photo, file in val:
        first = val_dir / f"{photo.name}_{val_size}_00.jpg"
        write_jpeg(resize_shorter(_read(file), val_size), first)
        for copy in range(1, val_copies):
            shutil.copyfile(first, val_dir / f"{photo.name}_{val_size}_{copy:02d}.jpg")
    print(
        f"prepare: {len(train) * len(train_sizes)} train JPEGs in {train_dir}, "
        f"{len(val) * val_copies} val JPEGs in {val_dir}"
    )
    return train_dir, val_dir


# --------------------------------------------------------------------------------------------
# Train / fine-tune
# --------------------------------------------------------------------------------------------


#: Training masks by ``--masks`` name: ``None`` = the dataset's default (the paper's strokes).
MASK_MIXES = {"strokes": None, "mix": random_training_mask}


class _EvalBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that stays in eval mode (running statistics, never updated) under ``train()``."""

    def train(self, mode: bool = True) -> _EvalBatchNorm2d:
        del mode
        return super().train(False)


def freeze_all_batchnorm(model: nn.Module) -> int:
    """Keep every BatchNorm2d of ``model`` in eval mode from now on; return how many there are.

    Their affine weight and bias still train. Why: the demo model's innermost feature maps are
    2x2 at 256 px, so batch statistics of a CPU-sized batch (8) are far from the running ones
    (a batch-8 forward in train mode has 2-3x the loss of the same images in eval mode, while at
    batch 32 they agree within 10 %); with running statistics the network trains exactly the
    function it computes at inference, whatever the batch size. The state dict is unchanged.
    """
    count = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = _EvalBatchNorm2d
            module.eval()
            count += 1
    return count


def pixel_loss() -> PConvLoss:
    """The demo model's loss: valid 1, hole 6, TV 0.1 (perceptual/style weighted 0, so no VGG16)."""
    return PConvLoss(PIXEL_LOSS)


def reference_config(**overrides) -> TrainConfig:
    """The reference recipe (H200, commit ba21ebf), with ``overrides`` for a smaller try."""
    values = dict(
        name="demo-train",
        stage="train",
        image_size=256,
        depth=7,
        width=0.5,
        batch_size=32,
        amp=True,
        num_workers=6,
        steps=4200,
        steps_per_epoch=1000,
        val_steps=4,
        log_every=50,
        sample_every=1000,
        checkpoint_every=1000,
        seed=0,
        vgg_weights=None,
        loss_weights=PIXEL_LOSS.as_dict(),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def train_model(
    config: TrainConfig,
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike,
    *,
    init_from: str | os.PathLike | None = None,
    device: str | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    freeze_bn: str = "stage",
    masks: str = "strokes",
) -> Path:
    """Train with :class:`Trainer`, validating every ``steps_per_epoch`` steps; return ``best.pt``.

    With ``init_from`` the starting weights are validated first and saved as ``best.pt`` at
    step 0 (``fit(validate_first=True)``), so the result is never worse on validation than the
    start. ``max_minutes`` stops after the step that passes it (``fit(time_budget_s=...)``; the
    run is then shorter than ``config.steps``); the last steps are validated too
    (``validate_last``). ``freeze_bn="all"`` keeps every BatchNorm layer on its running statistics
    (:func:`freeze_all_batchnorm`, for small batches); ``"stage"`` does what the stage does
    (phase 2 freezes the encoder's). ``masks``: ``"strokes"`` (the paper's generator, v1/v2) or
    ``"mix"`` (half object-removal masks, :func:`pconv_lib.masks.random_training_mask`, v3), for
    training and validation alike.
    """
    if masks not in MASK_MIXES:
        raise DemoBuildError(f"masks must be one of {', '.join(MASK_MIXES)}, got {masks!r}")
    mask_fn = MASK_MIXES[masks]
    train_data = InpaintingDataset(train_dir, config.image_size, seed=config.seed, mask_fn=mask_fn)
    val_data = InpaintingDataset(val_dir, config.image_size, seed=config.seed, mask_fn=mask_fn)
    trainer = Trainer(
        config, train_data, val_data, loss=pixel_loss(), device=device, init_from=init_from, progress=progress
    )
    if freeze_bn == "all":
        print(f"train: {freeze_all_batchnorm(trainer.model)} BatchNorm layers kept on running statistics")
    elif freeze_bn != "stage":
        raise DemoBuildError(f"freeze_bn must be 'stage' or 'all', got {freeze_bn!r}")
    start = time.monotonic()
    print(
        f"train: {config.name} stage={config.stage} lr={config.learning_rate:g} batch={config.batch_size} "
        f"size={config.image_size} width={config.width} on {trainer.device}, {len(train_data)} train / "
        f"{len(val_data)} val photos, up to {config.steps} steps -> {config.run_dir}",
        flush=True,
    )
    best: dict[str, Any] = {}  # the step and validation loss of best.pt (on_best keeps it)

    def keep_best(trainer: Trainer, val: dict[str, float], path: Path) -> None:
        best.update(step=trainer.step, total=val["total"], path=path)

    def report(trainer: Trainer, val: dict[str, float]) -> None:
        origin = f" (from {init_from})" if trainer.step == 0 else ""
        print(
            f"step {trainer.step}{origin}: val {val['total']:.5f} (best {best.get('total', math.nan):.5f}), "
            f"{time.monotonic() - start:.0f} s",
            flush=True,
        )

    trainer.fit(
        validate_first=init_from is not None,
        validate_last=True,
        time_budget_s=60 * max_minutes if max_minutes else None,
        on_best=keep_best,
        on_validate=report,
    )
    trainer.close()
    if max_minutes and trainer.step < config.steps:
        print(f"stopped at step {trainer.step}: --max-minutes ({max_minutes:g}) had passed")
    if not best:
        raise DemoBuildError(f"no validation loss was finite: {config.run_dir / 'best.pt'} was not written")
    print(
        f"train: best validation loss {best['total']:.5f} at step {best['step']}: {best['path']} "
        f"({time.monotonic() - start:.0f} s)",
        flush=True,
    )
    return best["path"]


# --------------------------------------------------------------------------------------------
# Export and model card
# --------------------------------------------------------------------------------------------


def export_checkpoint(
    source: str | os.PathLike, dest: str | os.PathLike = DEMO_CHECKPOINT, provenance: str = ""
) -> Path:
    """Write the bundled-model format: fp16 CPU weights, config (name "demo"), step, provenance."""
    state = load_checkpoint(source)
    model = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
        for k, v in state["model"].items()
    }
    config = dict(state["config"])
    config["name"] = "demo"
    config["out_dir"] = "runs"  # the training machine's folder means nothing to users
    return save_checkpoint(
        dest, {"model": model, "config": config, "step": int(state["step"]), "provenance": provenance}
    )


def evaluation_table(
    checkpoint: str | os.PathLike,
    size: int = CARD_SIZE,
    buckets: Sequence[int | str] = CARD_BUCKETS,
    seed: int = 0,
    device: str | None = None,
    limit: int | None = None,
):
    """The table of ``python -m pconv_lib evaluate --checkpoint <file> --size <size> --masks all
    --raw``: the model through the default ``predict`` path and in one pass, and the three
    classical baselines, on the held-out scikit-image photos (centre crops of ``size`` px; the
    first ``limit`` of them when given). Returns an ``EvaluationTable``."""
    from pconv_lib import evaluate
    from pconv_lib.photos import sample_photos
    from pconv_lib.runs.checkpoints import model_from_checkpoint
    from pconv_lib.runtime import pick_device

    images = list(sample_photos(size=size).values())[:limit]
    torch_device = pick_device(device)
    model, config = model_from_checkpoint(checkpoint, torch_device)
    methods = {
        MODEL_ROW: evaluate.model_inpainter(
            model, 2**config.depth, torch_device, train_size=config.image_size
        ),
        f"{MODEL_ROW} (raw)": evaluate.model_inpainter(model, 2**config.depth, torch_device),
    }
    methods.update(evaluate.BASELINES)
    return evaluate.evaluate_methods(methods, images, list(buckets), seed=seed)


#: The model's row in the card's table (the default ``predict`` path; "(raw)": one forward pass).
MODEL_ROW = "PConv (this model)"


def _markdown_table(table) -> str:
    from pconv_lib.masks import column_label as bucket_label

    methods = table.methods
    lines = ["| hole ratio | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for bucket in table.buckets:
        cells = []
        for method in methods:
            s = table.scores[method][bucket]
            cells.append(f"{s['L1']:.4f} / {s['PSNR']:.2f} / {s['SSIM']:.3f}")
        lines.append(f"| {bucket_label(bucket)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def where_it_loses(table, model: str = MODEL_ROW) -> list[str]:
    """One line per column comparing the model with the best classical method on L1 and SSIM."""
    from pconv_lib.evaluate import BASELINES
    from pconv_lib.masks import column_label as bucket_label

    lines = []
    others = [m for m in table.methods if m in BASELINES]
    for bucket in table.buckets:
        scores = table.scores
        ours = scores[model][bucket]
        best_l1 = min(others, key=lambda m: scores[m][bucket]["L1"])
        best_ssim = max(others, key=lambda m: scores[m][bucket]["SSIM"])
        l1_gap = ours["L1"] / scores[best_l1][bucket]["L1"] - 1
        ssim_gap = ours["SSIM"] - scores[best_ssim][bucket]["SSIM"]
        beaten_l1 = sum(scores[m][bucket]["L1"] < ours["L1"] for m in others)
        beaten_ssim = sum(scores[m][bucket]["SSIM"] > ours["SSIM"] for m in others)
        verdict = (
            "best of the four on L1 and SSIM"
            if not beaten_l1 and not beaten_ssim
            else f"behind {beaten_l1} of {len(others)} classical methods on L1 and {beaten_ssim} on SSIM"
        )
        lines.append(
            f"- {bucket_label(bucket)}: {verdict}; L1 {l1_gap:+.0%} vs the best ({best_l1}), "
            f"SSIM {ssim_gap:+.3f} vs the best ({best_ssim})."
        )
    return lines


def photo_summary(train: Sequence[ListedPhoto], val: Sequence[ListedPhoto]) -> str:
    counts: dict[str, list[int]] = {}
    for index, photos in enumerate((train, val)):
        for photo in photos:
            counts.setdefault(photo.package, [0, 0])[index] += 1
    return "\n".join(f"  - `{package}`: {t} train, {v} val" for package, (t, v) in sorted(counts.items()))


def write_model_card(
    checkpoint: str | os.PathLike,
    table,
    dest: str | os.PathLike = MODEL_CARD,
    *,
    commit: str = "<filled at merge>",
    notes: str = "",
    size: int = CARD_SIZE,
) -> Path:
    """Write the model card of ``checkpoint`` (an exported demo model) with its evaluation table."""
    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(state["config"])
    train, val = read_photo_list(TRAIN_LIST), read_photo_list(VAL_LIST)
    parameters = sum(
        v.numel() for k, v in state["model"].items() if v.is_floating_point() and "running" not in k
    )
    size_mb = Path(checkpoint).stat().st_size / 2**20
    weights = LossWeights(**config.loss_weights)
    text = f"""# Course demo model: `pconv_lib/weights/demo_model.pt`

`PConvUNet(depth={config.depth}, width={config.width})`, {parameters:,} parameters, fp16 weights on CPU
({size_mb:.1f} MB), trained on {config.image_size}x{config.image_size} crops. Load it with
`pconv_lib.pretrained.demo_model()` or pass `--checkpoint demo` to `python -m pconv_lib predict` /
`evaluate`. Written by `tools/train_demo_model.py` (stage `card`).

- Provenance: {state.get("provenance", "(none recorded)")}
- Checkpoint step: {state["step"]}; commit: {commit}

## Data
- Training: the {len(train)} photographs of `tools/demo_photos/train.txt`; validation: the {len(val)} of
  `tools/demo_photos/val.txt`. They are files inside Debian wallpaper packages
  (`apt-get download {" ".join(PACKAGES)}`):
{photo_summary(train, val)}
- Licence: these are photographs shipped in Debian's wallpaper packages, each under the licence
  its package's `/usr/share/doc/<package>/copyright` states: GPL-2+ for the `mate-backgrounds`
  and `plasma-workspace-wallpapers` photos, CC-BY-4.0, CC-BY-SA-3.0/4.0 or CC0-1.0 (per photo,
  with its author) for the `lomiri-wallpapers-*` ones. The photos are not in this repository
  (only the list of their paths is); the script downloads the packages. Check those files
  before reusing the weights beyond the course.
- Preparation: each train photo resized (OpenCV `INTER_AREA`) so that its shorter side is
  {", ".join(map(str, TRAIN_SIZES))} px (JPEG quality {JPEG_QUALITY}: {len(train) * len(TRAIN_SIZES)} files);
  each val photo at {VAL_SIZE} px, copied {VAL_COPIES} times. `InpaintingDataset(folder, {config.image_size},
  seed={config.seed})`: random crops (the scales act as scale augmentation), horizontal
  flips; masks: see the recipe below (v1, v2: `random_irregular_mask`; v3: half of them
  `random_object_mask`, `--masks mix`).
- Never trained on: the other photos of those packages and the scikit-image sample photos (the
  notebooks show those as unseen examples; the table below uses them).

## Loss
Pixel terms only: valid {weights.valid:g}, hole {weights.hole:g}, total variation {weights.tv:g}
(perceptual and style weights 0). The paper's perceptual and style terms need VGG16 ImageNet
weights, which cannot be obtained offline; a stand-in feature extractor fills the loss's VGG slot
and is multiplied by 0. Expect smoother fills than the paper's (no texture from the style loss).

## Recipe
The last training stage of this file (its stored config): `pconv_lib.train.Trainer` with
`TrainConfig(image_size={config.image_size}, depth={config.depth}, width={config.width},
batch_size={config.batch_size}, amp={config.amp}, num_workers={config.num_workers},
steps_per_epoch={config.steps_per_epoch}, val_steps={config.val_steps}, stage="{config.stage}")`
(Adam, lr {config.learning_rate:g}), {state["step"]:,} steps in that stage. These photos overfit
within minutes on a GPU (validation and held-out error rise while the training loss falls), so
runs are short and `tools/train_demo_model.py` keeps the checkpoint with the best validation loss.
{notes}
## Evaluation
Held-out scikit-image photos, {size}x{size} centre crops,
{table.counts[table.buckets[0]]} images per column, the same masks for every method (seed 0): the
paper's strokes per hole-ratio bucket and large object-removal holes (`objects`, 10-40 %):
`python -m pconv_lib evaluate --checkpoint demo --size {size} --masks all --raw`. The model's row
is the path `predict` takes by default (multi-scale when holes are far wider than the training
holes); "(raw)" is one forward pass, `model(image, mask)`.
Cells: L1 (lower is better) / PSNR dB / SSIM (higher is better), on the composited image.

{_markdown_table(table)}

Where it loses:
{chr(10).join(where_it_loses(table))}

Column numbers depend on `pconv_lib.masks.random_mask_in_bucket` and `random_object_mask`; rerun
the command above after changing them.

## Reproduce
```
python tools/train_demo_model.py --stage all            # fetch, extract, prepare, train, export, card
python tools/train_demo_model.py --stage all --debs DIR # with the four .deb files already in DIR
```
Phase 1 needs a GPU (the reference run: one H200, about 4 minutes); on a CPU add e.g.
`--steps 20 --batch-size 4 --device cpu` for a smoke run. GPU runs are not bit-for-bit
reproducible, so expect numbers close to, not equal to, the table above.
"""
    dest = Path(dest)
    dest.write_text(text, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

STAGES = ("fetch", "extract", "prepare", "train", "finetune", "export", "card", "heldout", "all")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=STAGES, default="all")
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "data" / "demo_model",
        help="work folder for debs, extracted files, prepared photos and runs",
    )
    p.add_argument("--debs", type=Path, help="folder that already holds the four .deb files (skips apt-get)")
    p.add_argument(
        "--extracted", type=Path, help="folder where the packages were already extracted (dpkg -x)"
    )
    p.add_argument("--extractor", choices=("python", "dpkg"), default="python")
    p.add_argument("--steps", type=int, help="training steps (default 4200; finetune 600)")
    p.add_argument("--batch-size", type=int, help="default 32 (the reference)")
    p.add_argument("--image-size", type=int, help="crop size, default 256")
    p.add_argument("--width", type=float, help="channel width multiplier, default 0.5")
    p.add_argument("--depth", type=int, help="default 7")
    p.add_argument(
        "--layer",
        choices=("partial", "ordinary"),
        default="partial",
        help="partial (the demo model) or ordinary (the paper's ablation: nn.Conv2d, holes filled)",
    )
    p.add_argument(
        "--hole-fill",
        default="0.5",
        help="ordinary layer: what fills the holes, a number in [0, 1] (0.5 = the paper's 127.5) or "
        "'mean' (the train photos' mean pixel)",
    )
    p.add_argument("--steps-per-epoch", type=int, help="validate every N steps (default 1000; finetune 50)")
    p.add_argument("--val-steps", type=int, help="validation batches (default 4)")
    p.add_argument("--num-workers", type=int, help="data loader workers (default 6; 0 on CPU)")
    p.add_argument("--lr", type=float, help="default: 2e-4 (train) / 5e-5 (finetune)")
    p.add_argument("--device", help="cuda, cpu, ... (default: best available)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (e.g. 1 on a shared CPU)")
    p.add_argument(
        "--max-minutes", type=float, help="stop training after the step that passes this many minutes"
    )
    p.add_argument(
        "--train-sizes",
        default=",".join(map(str, TRAIN_SIZES)),
        help="prepare: shorter sides (px) of the train copies, comma-separated (default 384,640,1024)",
    )
    p.add_argument("--val-size", type=int, default=VAL_SIZE, help="prepare: shorter side of the val photos")
    p.add_argument(
        "--freeze-bn",
        choices=("stage", "all"),
        default="stage",
        help="stage: as the stage does (finetune freezes the encoder's BatchNorm); all: every BatchNorm "
        "on running statistics (small CPU batches)",
    )
    p.add_argument(
        "--masks",
        choices=("strokes", "mix"),
        default="strokes",
        help="train/finetune: the paper's strokes (v1, v2) or half object-removal blobs/boxes (v3)",
    )
    p.add_argument(
        "--init", default="demo", help="finetune: starting checkpoint (default: the bundled model)"
    )
    p.add_argument("--name", help="run name (default demo-train / demo-finetune)")
    p.add_argument(
        "--checkpoint", type=Path, help="export: the checkpoint to export (default: the run's best.pt)"
    )
    p.add_argument("--output", type=Path, default=DEMO_CHECKPOINT, help="export/card: the demo model file")
    p.add_argument(
        "--card", type=Path, help="card: where to write it (default: MODEL_CARD.md next to --output)"
    )
    p.add_argument("--provenance", help="export: the provenance text stored in the file")
    p.add_argument("--notes", type=Path, help="card: a markdown file inserted after the recipe")
    p.add_argument("--commit", default="<filled at merge>", help="card: the commit the model was trained at")
    p.add_argument(
        "--eval-size", type=int, default=CARD_SIZE, help="card: evaluation crop size (default 256)"
    )
    p.add_argument("--eval-limit", type=int, help="card: evaluate on at most this many photos (default all)")
    p.add_argument("--fetch-command", default="apt-get download", help="fetch: the download command")
    return p


def _config_from_args(args: argparse.Namespace, stage: str) -> TrainConfig:
    cpu = args.device == "cpu" or (args.device is None and not torch.cuda.is_available())
    finetune = stage == "finetune"
    return reference_config(
        name=args.name or f"demo-{stage}",
        stage=stage,
        steps=args.steps or (600 if finetune else None),
        batch_size=args.batch_size,
        image_size=args.image_size,
        width=args.width,
        depth=args.depth,
        steps_per_epoch=args.steps_per_epoch or (50 if finetune else None),
        val_steps=args.val_steps,
        num_workers=args.num_workers if args.num_workers is not None else (0 if cpu else None),
        lr=args.lr,
        out_dir=str(args.work / "runs"),
        layer=args.layer,
        hole_fill=_hole_fill(args),
    )


def _hole_fill(args: argparse.Namespace) -> float | list[float]:
    """``--hole-fill``: a number in [0, 1], or 'mean' for the mean pixel of the train photos."""
    if args.hole_fill == "mean":
        return mean_pixel(args.work / "photos" / "train")
    try:
        value = float(args.hole_fill)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise DemoBuildError(f"--hole-fill must be a number in [0, 1] or 'mean', got {args.hole_fill!r}")
    return value


def _default_provenance(checkpoint: Path, stage_note: str = "") -> str:
    state = load_checkpoint(checkpoint)
    c = TrainConfig.from_dict(state["config"])
    return (
        f"pconv-course demo model: PConvUNet(depth={c.depth}, width={c.width}), pixel losses (valid, hole, "
        f"TV), trained with pconv_lib.train.Trainer (tools/train_demo_model.py), stage {c.stage}, "
        f"{state['step']} steps at batch {c.batch_size} on {c.image_size}x{c.image_size} crops of 23 Debian "
        f"wallpaper photographs{stage_note}; see MODEL_CARD.md"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    else:
        apply_thread_policy()  # the library's CPU thread policy (pconv_lib.runtime)
    stages = (
        ("fetch", "extract", "prepare", "train", "export", "card") if args.stage == "all" else (args.stage,)
    )
    work = args.work
    extracted = args.extracted or work / "extracted"
    photos_dir = work / "photos"
    train_list, val_list = read_photo_list(TRAIN_LIST), read_photo_list(VAL_LIST)
    trained: Path | None = None
    try:
        for stage in stages:
            if stage == "fetch" and args.debs is None and args.extracted is None:
                fetch_debs(work / "debs", PACKAGES, shlex.split(args.fetch_command))
            elif stage == "extract" and args.extracted is None:
                debs = find_debs(args.debs or work / "debs", PACKAGES)
                extract_photos(debs, [*train_list, *val_list], extracted, args.extractor)
                select_photos(extracted, [*train_list, *val_list])
            elif stage == "prepare":
                train_files = select_photos(extracted, train_list)
                val_files = select_photos(extracted, val_list)
                prepare_photos(
                    list(zip(train_list, train_files)),
                    list(zip(val_list, val_files)),
                    photos_dir,
                    train_sizes=[int(size) for size in args.train_sizes.split(",")],
                    val_size=args.val_size,
                )
            elif stage in ("train", "finetune"):
                config = _config_from_args(args, stage)
                trained = train_model(
                    config,
                    photos_dir / "train",
                    photos_dir / "val",
                    init_from=args.init if stage == "finetune" else None,
                    device=args.device,
                    max_minutes=args.max_minutes,
                    progress=sys.stderr.isatty(),
                    freeze_bn=args.freeze_bn,
                    masks=args.masks,
                )
            elif stage == "heldout":
                heldout_list = read_photo_list(HELDOUT_LIST)
                extract_photos(find_debs(args.debs or work / "debs", PACKAGES), heldout_list, extracted,
                               args.extractor)
                folder = _fresh_folder(photos_dir / "heldout")
                for photo, file in zip(heldout_list, select_photos(extracted, heldout_list), strict=True):
                    write_jpeg(resize_shorter(_read(file), HELDOUT_SIZE), folder / f"{photo.name}.jpg")
                print(f"heldout: {len(heldout_list)} photos at {HELDOUT_SIZE} px in {folder}; compare with "
                      f"python -m pconv_lib evaluate --checkpoint demo --images {folder} --size 256 "
                      "--buckets 1,2,3,4")
            elif stage == "export":
                source = args.checkpoint or trained or work / "runs" / (args.name or "demo-train") / "best.pt"
                state = load_checkpoint(source)
                note = f", phase 2 from {args.init}" if state["config"].get("stage") == "finetune" else ""
                provenance = args.provenance or _default_provenance(source, note)
                print(f"export: {source} -> {export_checkpoint(source, args.output, provenance)}")
            elif stage == "card":
                table = evaluation_table(
                    args.output, size=args.eval_size, device=args.device, limit=args.eval_limit
                )
                print(table.to_text())
                notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
                card = write_model_card(
                    args.output,
                    table,
                    args.card or args.output.with_name("MODEL_CARD.md"),
                    commit=args.commit,
                    notes=notes,
                    size=args.eval_size,
                )
                print(f"card: {card}")
    except (DemoBuildError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
