"""Command line: ``python -m pconv_lib {train,lr-find,predict,evaluate,doctor,app}`` (also ``pconv``).

Mirrors the original course's ``main.py``::

    # phase 1 on ImageNet-style folders (any tree of photos works), 256x256, batch 4
    python -m pconv_lib train --name imagenet_phase1 --train /data/imagenet/train \\
        --validation /data/imagenet/val --test /data/test_photos --vgg-path vgg16-397923af.pth
    # phase 2: fine-tune with frozen encoder BatchNorm at lr 5e-5
    python -m pconv_lib train --stage finetune --checkpoint runs/imagenet_phase1/best.pt \\
        --name imagenet_phase2 --train /data/imagenet/train --validation /data/imagenet/val
    # several GPUs / nodes
    torchrun --nproc_per_node=4 -m pconv_lib train --name big --train ... --validation ...

    # offline, without the VGG16 file: the pixel terms only (valid, hole, TV)
    python -m pconv_lib train --name offline --train /data/photos --pixel-losses
    # pick a learning rate: exponential sweep, prints the steepest descent, optional plot
    python -m pconv_lib lr-find --train /data/photos --pixel-losses --plot lr.png

    python -m pconv_lib predict --checkpoint best.pt --image photo.jpg [--mask mask.png] -o out.png
    python -m pconv_lib evaluate --checkpoint best.pt [--images DIR] --size 256
    python -m pconv_lib evaluate --checkpoint v1=demo --checkpoint mine=best.pt   # several, one table
    python -m pconv_lib doctor    # is this machine ready for the course? (exit code 0 = yes)
    python -m pconv_lib app [--checkpoint best.pt]   # a local web app: paint holes, inpaint

Without ``--train``, training uses the sample photos shipped with scikit-image (a CPU demo).

Bad input gives one line ``error: <what was wrong and how to fix it>`` on stderr, checked before
any long computation, and never a traceback. Exit codes:

    0    success
    1    unexpected internal error (a bug: rerun with PCONV_TRACEBACK=1 and report the traceback)
    2    bad input: arguments, files, folders, checkpoints, devices (the message says what to fix)
    3    training stopped because the loss became NaN or infinite (last.pt keeps the last good state)
    129  stopped by SIGHUP (terminal closed)  } training first finishes its step and saves
    130  interrupted with Ctrl-C (SIGINT)       } interrupted.pt (a consistent state); rerun the
    143  stopped by SIGTERM (docker stop, ...)  } same command plus --resume <it> to continue

A run folder ``<log-path>/<name>`` that already holds a run is refused: continue it with
``--resume``, choose a new ``--name`` or pass ``--overwrite`` (which deletes only the files
training writes: checkpoints, metrics.csv, samples/step_*.png, TensorBoard events). While a run
trains, its folder holds the lock ``.pconv.lock`` (the OS releases it when the run ends): a second
run there is refused.
Photos are checked from their headers before decoding: more than ``PCONV_MAX_PIXELS`` pixels
(default 100 million; ``--max-pixels`` for ``train``/``predict``) or more than the free memory is
refused (``predict``) or skipped with a warning (training and evaluation folders).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pconv_lib.train_config import FLAG_SETTINGS
from pconv_lib.util.errors import PconvError, UsageError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGHUP gives 129, SIGTERM 143 (128 + the signal number)

EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected internal error (a bug: rerun with PCONV_TRACEBACK=1 and report it)
  2    bad input: arguments, files, folders, checkpoints, devices (the message says what to fix)
  3    training stopped: the loss became NaN or infinite (last.pt keeps the last good state)
  129  stopped by SIGHUP (terminal closed); 130: Ctrl-C (SIGINT); 143: SIGTERM (docker stop,
       schedulers): training first saves interrupted.pt (a consistent state); rerun the same
       command plus --resume <that file> to continue
environment: PCONV_MAX_PIXELS  photos with more pixels are refused before decoding
                               (default 100000000; also --max-pixels)"""


def _add_loss_choice(p: argparse.ArgumentParser) -> None:
    """--vgg-path / --pixel-losses / --random-vgg: where the perceptual and style terms come from."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--vgg-path", type=Path, help="VGG16 ImageNet weights file (default: the torch hub cache); see README"
    )
    group.add_argument(
        "--pixel-losses",
        action="store_true",
        help="offline loss without VGG16: valid 1, hole 6, TV 0.1 (LossWeights.pixel_only()); "
        "every logged term is meaningful",
    )
    group.add_argument(
        "--random-vgg",
        action="store_true",
        help="random VGG weights (tests/demos of the plumbing only: perceptual and style values are "
        "meaningless; use --pixel-losses to train without the VGG16 file)",
    )


def _loss_settings(args: argparse.Namespace) -> tuple[str | None, dict[str, float]]:
    """(vgg_weights, loss_weights) for TrainConfig from the --vgg-path/--pixel-losses/--random-vgg flags."""
    from pconv_lib.losses import LossWeights

    if args.pixel_losses:
        return None, LossWeights.pixel_only().as_dict()
    vgg = None if args.random_vgg else (str(args.vgg_path) if args.vgg_path else "imagenet")
    return vgg, LossWeights.paper().as_dict()


#: ``lr-find`` on a CPU without --image-size/--depth/--width/--steps/--checkpoint: the demo model's
#: depth and crop size, a quarter of the paper's width, sweeping in about a minute on 2 cores
#: (measured: 69 s sweep, 76 s in all, sample photos, --pixel-losses, on the course's shared 2-core
#: test machine at load average 4); the paper's width 1.0 took 5.5 s a step there: 200 steps ~20 min.
LR_FIND_CPU_DEFAULTS = {"image_size": 256, "depth": 7, "width": 0.25, "steps": 100}
LR_FIND_GPU_DEFAULTS = {"image_size": 256, "width": 1.0, "steps": 200}


def _lr_find_sizes(args: argparse.Namespace, device) -> None:  # noqa: ANN001
    """Fill the size flags left out: paper size on a GPU, a one-minute network on a CPU (said so)."""
    flags = ("image_size", "depth", "width", "steps")
    small = device.type == "cpu" and args.checkpoint is None and all(getattr(args, f) is None for f in flags)
    defaults = LR_FIND_CPU_DEFAULTS if small else LR_FIND_GPU_DEFAULTS
    for flag, value in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    if small:
        print(f"on the CPU: a small network (--image-size {args.image_size} --depth {args.depth} "
              f"--width {args.width}, {args.steps} steps; about a minute on 2 cores); give --image-size, "
              "--width and --steps for the size you will train (the paper's --width 1 --steps 200: ~20 min)"
              )


def _add_lr_find(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: sweep the lr exponentially, suggest the steepest descent",
    )
    p.add_argument("--train", type=Path, help="folder of training photos (default: sample photos)")
    p.add_argument("--masks", type=Path, help="folder of binary mask PNGs (default: generated)")
    p.add_argument("--holes-are", choices=["black", "white"], default="black")
    _add_loss_choice(p)
    p.add_argument("--checkpoint", type=Path, help="start from these weights (e.g. for phase 2)")
    p.add_argument("--stage", choices=["train", "finetune"], default="train",
                   help="finetune: encoder BatchNorm frozen, as in phase 2")
    small = LR_FIND_CPU_DEFAULTS
    p.add_argument("--image-size", type=int, default=None,
                   help=f"default: 256 on a GPU; {small['image_size']} on a CPU (about a minute)")
    p.add_argument("--depth", type=int, default=None,
                   help=f"default: 7 for 256, 8 for 512; {small['depth']} for the CPU default size")
    p.add_argument("--width", type=float, default=None,
                   help=f"channel multiplier (default: 1.0 = paper on a GPU, {small['width']} on a CPU)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=None,
                   help=f"sweep length (default: 200 on a GPU, {small['steps']} on a CPU)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=1.0)
    p.add_argument("--plot", type=Path, help="save the loss-vs-lr curve to this PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _training_data(args: argparse.Namespace, without_train: str):
    """The ``--train`` folder as an InpaintingDataset, or the sample photos (saying so) without it."""
    from pconv_lib.data import InpaintingDataset, sample_photo_dataset

    common = dict(masks=args.masks, holes_are=args.holes_are)
    if args.train is not None:
        limit = getattr(args, "max_pixels", None)
        return InpaintingDataset(args.train, args.image_size, seed=args.seed, max_pixels=limit, **common)
    print(f"no --train folder: {without_train}")
    return sample_photo_dataset(args.image_size, repeats=50, seed=args.seed, **common)


def run_lr_find(args: argparse.Namespace) -> int:
    from pconv_lib.losses import LossWeights, PConvLoss
    from pconv_lib.lr_finder import check_lr_sweep, lr_find
    from pconv_lib.model import PConvUNet
    from pconv_lib.runs.checkpoints import load_checkpoint, load_model_weights
    from pconv_lib.train_config import TrainConfig

    if args.plot is not None:  # checked before the sweep: never over an input, a known extension
        _check_output_file(args.plot, "--plot", extensions=(".png", ".jpg", ".jpeg"))
        _check_distinct({"--plot": args.plot}, {"--checkpoint": args.checkpoint})
        for flag in ("train", "masks"):
            folder = getattr(args, flag)
            if folder is not None and folder.resolve() in args.plot.resolve().parents:
                raise UsageError(
                    f"--plot {args.plot} is inside --{flag} {folder}: it would become one of its images; "
                    "save it elsewhere"
                )
    device = _device(args.device)
    _lr_find_sizes(args, device)
    depth = args.depth or (8 if args.image_size >= 512 else 7)
    _check_ranges(args, ("image_size", "depth", "width", "batch_size", "seed"))
    TrainConfig(image_size=args.image_size, depth=depth)  # the size checks, before any work
    check_lr_sweep(args.start_lr, args.end_lr, args.steps)
    vgg, weights = _loss_settings(args)
    criterion = PConvLoss(LossWeights(**weights), vgg_weights=vgg)
    data = _training_data(args, "sweeping on the sample photos (a demo; use your training folder)")
    model = PConvUNet(depth=depth, width=args.width, freeze_encoder_bn=args.stage == "finetune")
    if args.checkpoint is not None:
        # its depth/width and finite weights checked, with messages that name the file
        load_model_weights(model, load_checkpoint(args.checkpoint), args.checkpoint)
    result = lr_find(
        model,
        data,
        criterion,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        batch_size=args.batch_size,
        device=device,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(result.summary())
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = result.plot()
        from pconv_lib.util.files import replace_atomically

        ax.figure.tight_layout()
        kind = args.plot.suffix.lower().lstrip(".")
        replace_atomically(args.plot, lambda tmp: ax.figure.savefig(tmp, dpi=100, format=kind))
        plt.close(ax.figure)
        print(f"plot saved to {args.plot}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train (phase 1) or fine-tune (phase 2) a PConv UNet")
    p.add_argument("--name", required=True, help="run name: checkpoints go to <log-path>/<name>/")
    p.add_argument("--train", type=Path, help="folder of training photos (default: sample photos)")
    p.add_argument("--validation", type=Path, help="folder of validation photos")
    p.add_argument("--test", type=Path, help="folder of photos shown as samples during training")
    p.add_argument("--masks", type=Path, help="folder of binary mask PNGs (default: generated)")
    p.add_argument("--holes-are", choices=["black", "white"], default="black")
    _add_loss_choice(p)
    p.add_argument("--checkpoint", type=Path, help="weights to start from (required for finetune)")
    p.add_argument("--resume", type=Path, help="continue an interrupted run from its last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the files of an earlier run with this --name before training; with --resume of a "
        "checkpoint of this run: discard the checkpoints of later steps (refused without it)",
    )
    _add_config_flags(p)
    p.add_argument(
        "--log-path",
        type=Path,
        default=Path("runs"),
        help="where runs go (checkpoints, TensorBoard, CSV, samples)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="skip training photos with more pixels (default: $PCONV_MAX_PIXELS or 100000000)",
    )
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--no-progress", action="store_true")


def _flag(setting: str) -> str:
    """How a TrainConfig setting is spelt on the command line (``amp`` is ``--no-amp``)."""
    return "--no-amp" if setting == "amp" else "--" + setting.replace("_", "-")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """The TrainConfig settings made with ``setting``: one flag each, with the help, range, choices
    and default written on the field (``pconv_lib.train_config``); ``--no-amp`` sets ``amp``."""
    types = {"int": int, "float": float, "str": str}
    for item in FLAG_SETTINGS:
        text, dest = item.metadata["help"], item.name
        if "range" in item.metadata:
            low, high = item.metadata["range"]
            text += f" ({low}..{high})"
        if isinstance(item.default, bool):
            action = "store_false" if item.default else "store_true"
            p.add_argument(_flag(dest), dest=dest, action=action, help=text)
            continue
        kind = types[str(item.type).split(" ")[0]]
        p.add_argument(_flag(dest), dest=dest, type=kind, choices=item.metadata.get("choices"),
                       default=item.metadata.get("flag_default", item.default), help=text)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="inpaint one image of any size")
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a checkpoint file, or 'demo' for the bundled demo model",
    )
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--mask", type=Path, help="binary mask PNG (default: a random irregular mask)")
    p.add_argument("--holes-are", choices=["black", "white"], default="black")
    p.add_argument("--bucket", type=int, default=2, help="hole-ratio bucket of the random mask (0-5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tile-size", type=int, default=None, help="default: the training size")
    p.add_argument("--overlap", type=int, default=None, help="default: tile size / 4")
    p.add_argument("--output", "-o", type=Path, required=True, help="output PNG")
    p.add_argument("--save-mask", type=Path, help="also save the mask used")
    p.add_argument(
        "--scale",
        choices=["auto", "single", "multi"],
        default="auto",
        help="multi: coarse pass on a downscaled copy, then tiles (for holes wider than the "
        "training holes); auto: multi only when the holes need it",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--device", default=None)
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse larger photos before decoding (default: $PCONV_MAX_PIXELS or 100000000)",
    )


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="L1/PSNR/SSIM per hole-ratio bucket or mask kind vs classical baselines"
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        help="model to evaluate, or 'demo'; repeat to compare several on the same photos and masks, "
        "each as NAME=PATH to name its row (omit: baselines only)",
    )
    p.add_argument("--images", type=Path, help="folder of test photos (default: sample photos)")
    p.add_argument("--size", type=int, default=256, help="centre crop size of the test images")
    p.add_argument("--limit", type=int, default=50, help="at most this many images")
    p.add_argument("--buckets", default="0,1,2,3,4,5", help="the paper's hole-ratio buckets (strokes), 0..5")
    p.add_argument(
        "--masks",
        help="mask kinds instead of --buckets, comma-separated: strokes (buckets 1,2), scribbles "
        "(3,4,5), objects (large object-removal holes), or all",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="also a row per model run once on the whole image (no multi-scale), as model(image, mask)",
    )
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    from pconv_lib.app import doctor

    p = sub.add_parser("doctor", help="check this machine for the course: one line per check, with the fix")
    doctor.build_parser(p)


def _explicit_flags(argv: list[str]) -> set[str]:
    """The ``dest`` names of the options given on the command line ``argv`` (not defaulted):
    the same parser with every default suppressed leaves only those in the namespace."""
    parser = build_parser()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv))) - {"command"}
    except SystemExit:  # cannot happen after the first parse succeeded; be safe
        return set()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pconv_lib",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_lr_find(sub)
    _add_doctor(sub)
    from pconv_lib.app.web import add_app_parser  # step 6's web app: its flags live with it

    add_app_parser(sub)
    return parser


# --------------------------------------------------------------------------------------------
# Checks shared by the sub-commands (all run before any model is built or trained)
# --------------------------------------------------------------------------------------------

#: Output image extensions ``predict`` can write (OpenCV writers).
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _device(name: str | None):
    from pconv_lib.runtime import resolve_device

    return resolve_device(name)


def _positive(args: argparse.Namespace, *names: str, minimum: int | float = 1) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be at least {minimum}, got {value}")


def _read_rgb(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """The --image photo, upright; its header is checked (pixel limit, memory) before decoding."""
    from pconv_lib.tiling import PREDICT_BYTES_PER_PIXEL
    from pconv_lib.util.image_files import load_image

    if path.is_dir():
        raise UsageError(f"--image {path} is a folder; name one image file")
    return load_image(
        path, max_pixels=max_pixels, bytes_per_pixel=PREDICT_BYTES_PER_PIXEL, what="inpainting it"
    )


def _check_output_file(path: Path, flag: str, extensions: tuple[str, ...] = OUTPUT_EXTENSIONS) -> None:
    """An output image path must have a known extension, not be a folder, and be writable."""
    from pconv_lib.util.files import check_writable_folder

    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name such as {path / 'out.png'}")
    suffix = path.suffix.lower()
    if not suffix:
        raise UsageError(f"{flag} {path} has no file extension; add one of {', '.join(extensions)}")
    if suffix not in extensions or not cv2.haveImageWriter("image" + suffix):  # OpenCV crashes on a
        # name that is not valid text (a surrogate-escaped byte): it is only asked about the extension
        known = ", ".join(extensions)
        raise UsageError(f"{flag} {path}: unknown image extension {path.suffix!r}; use one of {known}")
    check_writable_folder(path.parent, f"{flag} {path}: the folder")


def _probe_images(folder: Path, what: str, sample: int = 16, max_pixels: int | None = None) -> None:
    """Refuse a folder in which none of (up to) ``sample`` evenly spread photos can be read
    (headers first: an oversized photo is not decoded)."""
    from pconv_lib.util.image_files import find_images, load_image

    files = find_images(folder)
    step = max(1, len(files) // sample)
    probed = files[::step][:sample]
    reasons = []
    for path in probed:
        try:
            load_image(path, max_pixels=max_pixels)
            return
        except (OSError, ValueError) as error:
            reasons.append(str(error))
    checked = "all" if len(probed) == len(files) else f"{len(probed)} evenly spread"
    raise UsageError(
        f"{what} {folder}: none of the image files could be read ({checked} of {len(files)} "
        f"checked, e.g. {reasons[0]}); check the folder"
    )


def _check_checkpoint_exists(path: Path | None) -> None:
    from pconv_lib.runs.checkpoints import resolve_checkpoint

    if path is not None and not resolve_checkpoint(path).exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")


def _write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` (OpenCV's BGR or grey ``uint8``) by ``path``'s extension and write it
    through a temporary file and a rename: a full disk leaves no half-written file."""
    from pconv_lib.util.files import write_atomically

    ok, data = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise OSError(f"could not encode {path} as {path.suffix} (choose .png or .jpg)")
    write_atomically(path, data.tobytes())


def _parse_buckets(text: str) -> list[int]:
    from pconv_lib.masks import HOLE_RATIO_BUCKETS

    last = len(HOLE_RATIO_BUCKETS) - 1
    try:
        buckets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        buckets = []
    if not buckets or any(not 0 <= b <= last for b in buckets):
        raise UsageError(
            f"--buckets must be comma-separated hole-ratio bucket numbers 0..{last} "
            f"(e.g. 0,2,{last}), got {text!r}"
        )
    return buckets


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


#: TrainConfig field -> the flags that set it (for --resume: only flags given override the checkpoint's).
#: Each setting's flag stores into the field's own name; the loss choice sets two fields.
_CONFIG_FLAGS: dict[str, tuple[str, ...]] = {
    **{item.name: (item.name,) for item in FLAG_SETTINGS},
    "vgg_weights": ("vgg_path", "pixel_losses", "random_vgg"),
    "loss_weights": ("vgg_path", "pixel_losses", "random_vgg"),
}


def _check_ranges(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Numbers out of range: one line naming the flag and its valid range, before any allocation."""
    from pconv_lib.train_config import LIMITS, lr_error, range_error

    for name in names:
        value = getattr(args, name, None)
        if value is not None and name in LIMITS:
            problem = range_error(name, value, "--" + name.replace("_", "-"))
            if problem:
                raise UsageError(problem)
    if getattr(args, "lr", None) is not None:
        problem = lr_error(args.lr, "--lr")
        if problem:
            raise UsageError(problem)
    if getattr(args, "max_pixels", None) is not None and args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1 (a number of pixels), got {args.max_pixels}")


def _same_or_nested(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def _flag_given(args: argparse.Namespace, dest: str) -> bool:
    return dest in getattr(args, "explicit", set())


def _check_train_args(args: argparse.Namespace) -> None:
    """Everything about ``train`` that can be checked before data, VGG or model are loaded."""
    from pconv_lib.runs.checkpoints import resolve_checkpoint
    from pconv_lib.runs.run_folder import check_run_folder, is_inside
    from pconv_lib.util.files import check_writable_folder

    if args.stage == "finetune" and args.checkpoint is None and args.resume is None:
        raise UsageError("--stage finetune needs --checkpoint (the phase 1 weights)")
    name = args.name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UsageError(f"--name must be a plain folder name (no slashes), got {args.name!r}")
    _check_ranges(args, tuple(item.name for item in FLAG_SETTINGS))
    if args.vgg_path is not None and not args.random_vgg and not args.vgg_path.is_file():
        raise UsageError(f"--vgg-path {args.vgg_path}: no such file (give the VGG16 .pth weights file)")
    if _flag_given(args, "holes_are") and args.masks is None:
        raise UsageError("--holes-are describes --masks files, but --masks is missing: add it or drop it")
    for flag in ("train", "validation", "test", "masks"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            raise UsageError(f"--{flag} {folder}: no such folder")
    for flag in ("checkpoint", "resume"):
        path = getattr(args, flag)
        if path is not None and not resolve_checkpoint(path).is_file():
            raise UsageError(f"--{flag} {path}: no such checkpoint file")
    run_dir = args.log_path / name
    for flag in ("train", "validation", "test", "masks"):  # outputs never mix with inputs
        folder = getattr(args, flag)
        if folder is not None and _same_or_nested(run_dir, folder):
            raise UsageError(
                f"the run folder {run_dir} (--log-path/--name) and --{flag} {folder} overlap: training "
                "writes checkpoints and sample images there; choose a --log-path outside your photo folders"
            )
    if args.checkpoint is not None and args.overwrite and is_inside(args.checkpoint, run_dir):
        raise UsageError(
            f"--overwrite would delete --checkpoint {args.checkpoint}, which this run starts from; copy it "
            "elsewhere or pick a new --name"
        )
    device = _device(args.device)
    if device.type != "cuda":
        gpu_only = ("amp", "amp_dtype", "channels_last")
        ignored = [_flag(d) for d in gpu_only if _flag_given(args, d)]
        if ignored:
            _warn(f"{', '.join(ignored)} only change GPU runs; this run is on {device.type}")
    steps = args.steps if args.resume is None or _flag_given(args, "steps") else None
    if steps is not None:
        if args.validation is not None and args.steps_per_epoch > steps:
            _warn(
                f"--validation is used every --steps-per-epoch ({args.steps_per_epoch}) steps, more than "
                f"--steps {steps}: it will not run (lower --steps-per-epoch)"
            )
        if args.test is not None and args.sample_every > steps:
            _warn(
                f"--test photos are shown every --sample-every ({args.sample_every}) steps, more than "
                f"--steps {steps}: no sample grid will be saved (lower --sample-every)"
            )
    check_writable_folder(run_dir, "--log-path run folder")
    check_run_folder(run_dir, resume=args.resume, overwrite=args.overwrite)
    if args.train is not None:
        _probe_images(args.train, "--train", max_pixels=args.max_pixels)
    if args.validation is not None:
        _probe_images(args.validation, "--validation", max_pixels=args.max_pixels)


def _train_config(args: argparse.Namespace):
    """The run's TrainConfig: from the flags; with --resume, the checkpoint's settings with only
    the flags actually given applied on top (settings that define the model must not change)."""
    from pconv_lib.runs.checkpoints import checkpoint_config, load_checkpoint
    from pconv_lib.train_checks import check_resumable
    from pconv_lib.train_config import TrainConfig

    vgg, loss_weights = _loss_settings(args)
    values = {item.name: getattr(args, item.name) for item in FLAG_SETTINGS}
    values.update(
        name=args.name.strip(),
        depth=args.depth or (8 if args.image_size >= 512 else 7),
        vgg_weights=vgg,
        loss_weights=loss_weights,
        out_dir=str(args.log_path),
    )
    if args.resume is None:
        return TrainConfig(**values)
    state = load_checkpoint(args.resume)
    saved = dict(state.get("config", {}))
    merged = {**saved, "name": values["name"], "out_dir": values["out_dir"]}
    for field, dests in _CONFIG_FLAGS.items():
        if any(_flag_given(args, dest) for dest in dests):
            merged[field] = values[field]
    try:
        config = TrainConfig.from_dict(merged)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--resume {args.resume}: its config is invalid ({error})") from None
    # the resume rules, the same as Trainer.resume's, checked before any data or model is loaded
    saved_config = checkpoint_config(state, args.resume)
    check_resumable(args.resume, state, saved_config, config, args.overwrite, flags=True)
    if config.steps < int(state["step"]):
        raise UsageError(
            f"--resume {args.resume} is at step {state['step']}, beyond --steps {config.steps}: nothing to "
            "train; give a larger --steps"
        )
    return config


def run_train(args: argparse.Namespace) -> int:
    from pconv_lib.data import InpaintingDataset, sample_photo_dataset
    from pconv_lib.train import Trainer
    from pconv_lib.train_checks import check_training_memory

    _check_train_args(args)
    config = _train_config(args)
    check_training_memory(config.batch_size, config.image_size, config.width, _device(args.device))
    args.image_size, args.seed = config.image_size, config.seed  # the data follows the run's config
    limit = dict(max_pixels=args.max_pixels)
    common = dict(masks=args.masks, holes_are=args.holes_are)
    train_data = _training_data(args, "training on the sample photos (a CPU demo, not a real model)")
    val_data = None
    if args.validation is not None:
        val_data = InpaintingDataset(
            args.validation, args.image_size, seed=args.seed + 1, flip=False, **common, **limit
        )
    elif args.train is None:
        val_data = sample_photo_dataset(args.image_size, repeats=2, seed=args.seed + 1, flip=False, **common)
    test_data = None  # sample grids come from the test photos when given
    if args.test is not None:
        test_data = InpaintingDataset(
            args.test, args.image_size, seed=args.seed + 2, flip=False, **common, **limit
        )
    trainer = Trainer(
        config,
        train_data,
        val_data,
        device=args.device,
        progress=not args.no_progress,
        init_from=args.checkpoint if args.resume is None else None,
        sample_data=test_data,
        overwrite=args.overwrite,
    )
    try:
        if args.resume is not None:
            trainer.resume(args.resume)
            print(f"resumed {args.resume} at step {trainer.step}")
            if args.checkpoint is not None:
                print(f"note: --checkpoint {args.checkpoint} is not used: a resumed run has its own weights")
            if trainer.resume_changes:
                pairs = trainer.resume_changes.items()
                changed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in pairs)
                print(f"changed on resume (applied, and recorded in the checkpoints): {changed}")
        trainer.fit()
    finally:
        trainer.close()
    print(f"done: step {trainer.step}, checkpoints in {config.run_dir}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------


def _check_predict_args(args: argparse.Namespace) -> None:
    from pconv_lib.masks import HOLE_RATIO_BUCKETS
    from pconv_lib.train_config import range_error

    if args.tile_size is not None:
        problem = range_error("image_size", args.tile_size, "--tile-size")
        if problem:
            raise UsageError(problem)
    _positive(args, "overlap", minimum=0)
    if args.tile_size is not None and args.overlap is not None and args.overlap >= args.tile_size:
        raise UsageError(f"--overlap {args.overlap} must be smaller than --tile-size {args.tile_size}")
    if not 0 <= args.bucket < len(HOLE_RATIO_BUCKETS):
        raise UsageError(f"--bucket must be 0..{len(HOLE_RATIO_BUCKETS) - 1}, got {args.bucket}")
    _check_ranges(args, ("seed",))
    if args.mask is not None:
        given = [f"--{d}" for d in ("bucket", "seed") if _flag_given(args, d)]
        if given:
            raise UsageError(
                f"{' and '.join(given)} {'choose' if len(given) > 1 else 'chooses'} the random mask, but "
                f"--mask {args.mask} is given: drop "
                f"{' and '.join(given)} or --mask"
            )
    elif _flag_given(args, "holes_are"):
        raise UsageError("--holes-are describes the --mask file, but --mask is missing: add it or drop it")
    _check_output_file(args.output, "--output")
    if args.save_mask is not None:
        _check_output_file(args.save_mask, "--save-mask", extensions=(".png",))
    _check_distinct(
        {"--output": args.output, "--save-mask": args.save_mask},
        {"--image": args.image, "--mask": args.mask, "--checkpoint": args.checkpoint},
    )
    _device(args.device)
    _check_checkpoint_exists(args.checkpoint)


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _check_distinct(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """No output may be an input or another output of the same command (it would be destroyed)."""
    named_outputs = [(flag, path) for flag, path in outputs.items() if path is not None]
    for i, (flag, path) in enumerate(named_outputs):
        for other_flag, other in [*named_outputs[i + 1 :], *inputs.items()]:
            if other is not None and _same_path(path, other):
                raise UsageError(
                    f"{flag} {path} is the same file as {other_flag} {other}: writing it would destroy "
                    f"that; choose another {flag}"
                )


def _load_predict_mask(args: argparse.Namespace, height: int, width: int) -> np.ndarray:
    """The mask for ``predict`` (1 = valid): from --mask (header checked first; EXIF orientation
    applied as for the photo; refused when its aspect ratio differs from the photo's, resized
    (nearest) when only its resolution does; not all holes; hint when inverted) or a random one."""
    from pconv_lib import masks as mask_lib
    from pconv_lib.util.files import check_image_resources, read_image_header
    from pconv_lib.util.image_files import apply_orientation

    if args.mask is None:
        return mask_lib.random_mask_in_bucket(height, width, args.bucket, args.seed)
    if args.mask.is_dir():
        raise UsageError(f"--mask {args.mask} is a folder; name one mask image file")
    if not args.mask.is_file():
        raise FileNotFoundError(f"mask file not found: {args.mask}")
    header = read_image_header(args.mask)
    check_image_resources(header, args.mask, limit=args.max_pixels, bytes_per_pixel=16, what="loading it")
    mask = apply_orientation(mask_lib.load_mask_png(args.mask, holes_are=args.holes_are), header.orientation)
    if mask.shape != (height, width):
        mh, mw = mask.shape
        mask = mask_lib.fit_mask_to_photo(mask, height, width, f"--mask {args.mask}",
                                          " (both as displayed, EXIF orientation applied)")
        print(f"resizing mask {mw}x{mh} to the image size {width}x{height} (nearest, same aspect ratio)")
    from pconv_lib.util.arg_checks import hole_share_problem

    problem = hole_share_problem(mask_lib.hole_ratio(mask), str(args.mask), args.holes_are)
    if problem is not None and problem[0] == "error":
        raise UsageError(problem[1])
    if problem is not None:
        _warn(problem[1])
    return mask


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from pconv_lib import masks as mask_lib
    from pconv_lib.runs.checkpoints import model_from_checkpoint
    from pconv_lib.tiling import choose_scale, predict_multiscale, wide_hole_notice

    _check_predict_args(args)
    image = _read_rgb(args.image, args.max_pixels)
    height, width = image.shape[:2]
    mask = _load_predict_mask(args, height, width)
    device = _device(args.device)
    model, config = model_from_checkpoint(args.checkpoint, device)
    tile = args.tile_size or config.image_size
    auto = choose_scale(mask, config.image_size)  # from the hole widths and the training size
    factor = {"auto": auto, "single": 1, "multi": max(2, auto)}[args.scale]
    notice = wide_hole_notice(mask, config.image_size) if args.scale == "single" else None
    if notice:
        _warn(f"{notice}: --scale single may paint blotches; drop --scale for the default (auto)")
    if args.compile:
        model = torch.compile(model)
    result = predict_multiscale(
        model,
        image,
        mask,
        tile_size=tile,
        overlap=args.overlap if args.overlap is not None else tile // 4,
        factor=factor,
        multiple=2**config.depth,
        device=device,
        progress=True,
    )
    _write_image(args.output, cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR))
    if args.save_mask is not None:
        _write_image(args.save_mask, mask_lib.validate_mask(mask) * 255)
    print(f"{args.output}: {mask_lib.hole_stats(mask)}; {result.summary()}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def _parse_mask_kinds(text: str) -> list[int | str]:
    """``--masks strokes,objects`` -> the columns of those kinds (bucket numbers, ``"objects"``)."""
    from pconv_lib.masks import MASK_KIND_COLUMNS

    names = [part.strip() for part in text.split(",") if part.strip()]
    names = list(MASK_KIND_COLUMNS) if names == ["all"] else names
    unknown = [name for name in names if name not in MASK_KIND_COLUMNS]
    if not names or unknown:
        raise UsageError(
            f"--masks must be comma-separated mask kinds out of {', '.join(MASK_KIND_COLUMNS)} (or all), "
            f"got {text!r}"
        )
    return [column for name in names for column in MASK_KIND_COLUMNS[name]]


def _check_evaluate_args(args: argparse.Namespace) -> list[int | str]:
    if args.no_baselines and args.checkpoint is None:
        raise UsageError("nothing to evaluate: give --checkpoint or drop --no-baselines")
    _positive(args, "limit")
    _positive(args, "size", minimum=7)  # SSIM's 7x7 window
    if args.size > 8192:
        raise UsageError(f"--size must be at most 8192 (valid: 7..8192), got {args.size}")
    _check_ranges(args, ("seed",))
    buckets = _parse_mask_kinds(args.masks) if args.masks is not None else _parse_buckets(args.buckets)
    if args.images is not None and not args.images.is_dir():
        raise UsageError(f"--images {args.images}: no such folder")
    for _, path in _named_checkpoints(args.checkpoint):
        _check_checkpoint_exists(path)
    _device(args.device)
    return buckets


def _named_checkpoints(values: list[str] | None) -> list[tuple[str, Path]]:
    """``--checkpoint`` values as (row name, path): ``NAME=PATH`` names its row; a single unnamed
    checkpoint is "PConv (this model)", several unnamed ones are named by their path."""
    pairs = [
        value.partition("=")[::2] if "=" in value and not Path(value).exists() else ("", value)
        for value in values or []
    ]
    if len(pairs) == 1 and not pairs[0][0]:
        return [("PConv (this model)", Path(pairs[0][1]))]
    names = [name or path for name, path in pairs]
    if len(set(names)) < len(names):
        raise UsageError(f"--checkpoint: two rows would be named alike ({', '.join(names)}); use NAME=PATH")
    return [(name, Path(path)) for name, (_, path) in zip(names, pairs, strict=True)]


def _read_evaluation_images(folder: Path, size: int, limit: int, progress: bool = False) -> list[np.ndarray]:
    """Up to ``limit`` readable photos of ``folder``, centre-cropped; unreadable files are
    skipped with a warning naming them, and a folder with none readable is an error."""
    from tqdm.auto import tqdm

    from pconv_lib.photos import center_crop_resize
    from pconv_lib.util.files import ImageTooLarge
    from pconv_lib.util.image_files import find_images, load_image

    images, skipped = [], []
    files = find_images(folder)
    bar = tqdm(total=min(limit, len(files)), desc="reading photos", unit="photo", disable=not progress)
    for path in files:
        if len(images) == limit:
            break
        bar.update(1)
        try:
            image = load_image(path)
        except ImageTooLarge as error:  # header checked first: nothing was decoded
            _warn(f"skipping {error}")
            continue
        except (OSError, ValueError):
            skipped.append(path.name)
            continue
        images.append(center_crop_resize(image, size, size))
    bar.close()
    if not images and not skipped:
        raise UsageError(f"--images {folder}: every photo is over the pixel limit (see the warnings)")
    if not images:
        raise UsageError(
            f"--images {folder}: all {len(skipped)} image file(s) were skipped as unreadable "
            f"(corrupt or not images, e.g. {', '.join(skipped[:3])}); give a folder of photos"
        )
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        _warn(f"skipped {len(skipped)} unreadable image file(s) in {folder} (corrupt or not images): {shown}")
    return images


#: Seconds per pixel of one image and one bucket, measured on the course's loaded 2-core test VM
#: (sample photo, bucket 2): OpenCV Telea + Navier-Stokes together about 2.8e-6 at 128-512 px;
#: scikit-image biharmonic 2.5e-6 at 128, 3.9e-6 at 256, 6.1e-6 at 512 (about pixels**1.3 in all).
EVALUATE_OPENCV_S_PER_PIXEL = 2.8e-6
EVALUATE_BIHARMONIC_S_PER_PIXEL_512 = 6.1e-6


def _check_evaluate_cost(args: argparse.Namespace, count: int, buckets: list[int]) -> None:
    """Before any photo is read: refuse an evaluation whose photos and one model pass cannot fit
    in the free memory, and say how long the classical baselines will take when it is over a
    minute (their time grows faster than the pixel count)."""
    from pconv_lib.tiling import PREDICT_BYTES_PER_PIXEL
    from pconv_lib.util.files import available_memory

    pixels = args.size * args.size
    need = count * pixels * 3 + pixels * PREDICT_BYTES_PER_PIXEL
    free = available_memory()
    if free is not None and need > free:
        raise UsageError(
            f"evaluating {count} photo(s) at --size {args.size} needs about {need / 1e9:.1f} GB of memory "
            f"and {free / 1e9:.1f} GB is free: lower --size or --limit"
        )
    if args.no_baselines:
        return
    growth = max(1.0, pixels / 512**2) ** 0.3
    per_pixel = EVALUATE_OPENCV_S_PER_PIXEL + EVALUATE_BIHARMONIC_S_PER_PIXEL_512 * growth
    seconds = count * len(buckets) * pixels * per_pixel
    if seconds > 60:
        hours = f"{seconds / 3600:.1f} hours" if seconds > 5400 else f"{seconds / 60:.0f} minutes"
        _warn(
            f"{count} photo(s) x {len(buckets)} bucket(s) at {args.size}x{args.size}: the classical "
            f"baselines alone take about {hours} on a 2-core CPU (scikit-image biharmonic grows faster "
            "than the pixel count); lower --size or --limit, or add --no-baselines"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    from pconv_lib import evaluate
    from pconv_lib.photos import SAMPLE_PHOTOS, sample_photos
    from pconv_lib.util.image_files import find_images

    buckets = _check_evaluate_args(args)
    count = len(find_images(args.images)) if args.images is not None else len(SAMPLE_PHOTOS)
    _check_evaluate_cost(args, min(args.limit, count), buckets)
    if args.images is not None:
        images = _read_evaluation_images(args.images, args.size, args.limit, progress=not args.no_progress)
    else:
        images = list(sample_photos(size=args.size).values())[: args.limit]
    methods: dict[str, evaluate.Inpainter] = {}
    if args.checkpoint is not None:
        from pconv_lib.runs.checkpoints import model_from_checkpoint

        device = _device(args.device)
        for name, path in _named_checkpoints(args.checkpoint):
            model, config = model_from_checkpoint(path, device)
            methods[name] = evaluate.model_inpainter(
                model, 2**config.depth, device, train_size=config.image_size
            )  # the path `predict` takes by default
            if args.raw:
                methods[f"{name} (raw)"] = evaluate.model_inpainter(model, 2**config.depth, device)
    models = list(methods)
    if not args.no_baselines:
        methods.update(evaluate.BASELINES)
    table = evaluate.evaluate_methods(methods, images, buckets, seed=args.seed, progress=not args.no_progress)
    print(table.to_text())
    if models and not args.no_baselines:
        print()
        print(evaluate.best_baseline_ratios(table, models))
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# main: the library's errors become one line and an exit code
# --------------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    _warn(str(message))


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "bad input" (exit 2): the library's own errors, whose message
    names the problem and the fix, and the operating system's (a missing file, a full disk).
    Anything else is a bug in the library and is reported as one."""
    return (PconvError, OSError)


def _error_line(error: BaseException) -> str:
    from pconv_lib.util.files import errno_hint

    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    hint = errno_hint(getattr(error, "errno", None)) if isinstance(error, OSError) else None
    if hint and hint not in text:  # by the cause (errno), e.g. a name too long for the file system
        text = f"{text}; {hint}"
    return text


def _run_app(args: argparse.Namespace) -> int:
    from pconv_lib.app.web import run_app

    return run_app(args)


def run_doctor(args: argparse.Namespace) -> int:
    from pconv_lib.app import doctor

    return doctor.main(args=args)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside training: raised by the handler that :func:`main` installs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signal(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _out_of_memory(error: BaseException) -> bool:
    """Whether a RuntimeError is PyTorch running out of CPU or GPU memory."""
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def _install_stop_handlers() -> dict[int, object]:
    """SIGTERM/SIGHUP (unless ignored, as under ``nohup``) raise :class:`_Stopped`, so that any
    command ends with one line and exit code 128 + the signal; returns the handlers replaced.
    Training replaces these with its own (finish the step, save ``interrupted.pt``)."""
    import signal
    import threading

    replaced: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return replaced
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) == signal.SIG_IGN:
            continue
        try:
            replaced[signum] = signal.signal(signum, _stop_on_signal)
        except (ValueError, OSError):
            pass
    return replaced


def _restore_handlers(replaced: dict[int, object]) -> None:
    import signal

    for signum, handler in replaced.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (see the module docstring)."""
    from pconv_lib.runs.interrupts import TrainingInterrupted, signal_name
    from pconv_lib.runtime import apply_thread_policy
    from pconv_lib.util.errors import TrainingDiverged

    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a name that is not valid text prints as \xff, no crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)  # argparse prints usage errors itself (exit 2)
    if args.command == "doctor":
        return run_doctor(args)
    args.explicit = _explicit_flags(argv)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {
        "train": run_train,
        "predict": run_predict,
        "evaluate": run_evaluate,
        "lr-find": run_lr_find,
        "app": _run_app,
    }
    runner = runners[args.command]
    replaced = _install_stop_handlers()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            apply_thread_policy()  # torch's threads follow the CPUs this process may use
            return runner(args)
        except TrainingInterrupted as error:
            print(str(error), file=sys.stderr)
            return 128 + error.signum
        except _Stopped as error:
            print(
                f"stopped by {signal_name(error.signum)} before {args.command} finished (files are written "
                "whole or not at all: nothing is left half-written)",
                file=sys.stderr,
            )
            return 128 + error.signum
        except KeyboardInterrupt:
            print("interrupted (Ctrl-C)", file=sys.stderr)
            return EXIT_INTERRUPTED
        except TrainingDiverged as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_DIVERGED
        except MemoryError:
            print(
                f"error: {args.command} ran out of memory; use a smaller image, batch size, "
                "--image-size or --tile-size (or free memory)",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        except _bad_input_errors() as error:
            if os.environ.get("PCONV_TRACEBACK"):
                raise
            print(f"error: {_error_line(error)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as error:  # a bug: one line, the traceback on request
            if os.environ.get("PCONV_TRACEBACK"):
                raise
            if isinstance(error, RuntimeError) and _out_of_memory(error):  # CPU or CUDA allocator
                print(
                    f"error: {args.command} ran out of memory ({str(error).strip().splitlines()[0][:120]}); "
                    "use a smaller image, batch size, --image-size, --width or --tile-size (or free memory)",
                    file=sys.stderr,
                )
                return EXIT_BAD_INPUT
            print(
                f"error: unexpected {type(error).__name__}: {_error_line(error)} (this is a bug; rerun "
                "with PCONV_TRACEBACK=1 to see the traceback and report it)",
                file=sys.stderr,
            )
            return EXIT_UNEXPECTED
        finally:
            _restore_handlers(replaced)


if __name__ == "__main__":
    sys.exit(main())
