"""Command line: ``python -m pconv_lib {train,predict,evaluate}`` (also installed as ``pconv``).

Mirrors the original course's ``main.py``::

    # phase 1 on ImageNet-style folders (any tree of photos works), 256x256, batch 4
    python -m pconv_lib train --name imagenet_phase1 --train /data/imagenet/train \\
        --validation /data/imagenet/val --test /data/test_photos --vgg-path vgg16-397923af.pth
    # phase 2: fine-tune with frozen encoder BatchNorm at lr 5e-5
    python -m pconv_lib train --stage finetune --checkpoint runs/imagenet_phase1/best.pt \\
        --name imagenet_phase2 --train /data/imagenet/train --validation /data/imagenet/val
    # several GPUs / nodes
    torchrun --nproc_per_node=4 -m pconv_lib train --name big --train ... --validation ...

    python -m pconv_lib predict --checkpoint best.pt --image photo.jpg [--mask mask.png] -o out.png
    python -m pconv_lib evaluate --checkpoint best.pt [--images DIR] --size 256

Without ``--train``, training uses the sample photos shipped with scikit-image (a CPU demo).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from pconv_lib.runtime import pick_device


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train (phase 1) or fine-tune (phase 2) a PConv UNet")
    p.add_argument("--name", required=True, help="run name: checkpoints go to <log-path>/<name>/")
    p.add_argument(
        "--stage",
        choices=["train", "finetune"],
        default="train",
        help="train: lr 2e-4 with BN; finetune: lr 5e-5, encoder BN frozen (needs --checkpoint)",
    )
    p.add_argument("--train", type=Path, help="folder of training photos (default: sample photos)")
    p.add_argument("--validation", type=Path, help="folder of validation photos")
    p.add_argument("--test", type=Path, help="folder of photos shown as samples during training")
    p.add_argument("--masks", type=Path, help="folder of binary mask PNGs (default: generated)")
    p.add_argument("--holes-are", choices=["black", "white"], default="black")
    p.add_argument(
        "--vgg-path", type=Path, help="VGG16 ImageNet weights file (default: the torch hub cache); see README"
    )
    p.add_argument(
        "--random-vgg",
        action="store_true",
        help="random VGG weights (tests/demos only: perceptual and style terms are meaningless)",
    )
    p.add_argument("--checkpoint", type=Path, help="weights to start from (required for finetune)")
    p.add_argument("--resume", type=Path, help="continue an interrupted run from its last.pt")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--depth", type=int, default=None, help="default: 7 for 256, 8 for 512")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = paper)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=None, help="default: 2e-4 train, 5e-5 finetune")
    p.add_argument("--steps", type=int, default=100_000, help="total optimiser steps")
    p.add_argument("--steps-per-epoch", type=int, default=10_000)
    p.add_argument("--val-steps", type=int, default=1_000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--sample-every", type=int, default=1_000)
    p.add_argument("--checkpoint-every", type=int, default=1_000)
    p.add_argument(
        "--log-path",
        type=Path,
        default=Path("runs"),
        help="where runs go (checkpoints, TensorBoard, CSV, samples)",
    )
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU")
    p.add_argument(
        "--amp-dtype",
        choices=["float16", "bfloat16"],
        default="float16",
        help="mixed precision type on GPU (bfloat16 needs no loss scaling; Ampere or newer)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (faster steps on GPU)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--no-progress", action="store_true")


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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="L1/PSNR/SSIM per hole-ratio bucket vs classical baselines")
    p.add_argument(
        "--checkpoint", type=Path, help="model to evaluate, or 'demo' (omit: baselines only)"
    )
    p.add_argument("--images", type=Path, help="folder of test photos (default: sample photos)")
    p.add_argument("--size", type=int, default=256, help="centre crop size of the test images")
    p.add_argument("--limit", type=int, default=50, help="at most this many images")
    p.add_argument("--buckets", default="0,1,2,3,4,5")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pconv_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    return parser


def _read_rgb(path: Path) -> np.ndarray:
    from pconv_lib.data import read_image

    if not path.is_file():
        raise SystemExit(f"error: image not found: {path}")
    image = read_image(path)
    if image is None:
        raise SystemExit(f"error: {path} is not a readable image (corrupt file or unknown format)")
    return image


def run_train(args: argparse.Namespace) -> int:
    from pconv_lib.data import InpaintingDataset, sample_photo_dataset
    from pconv_lib.train import TrainConfig, Trainer

    if args.stage == "finetune" and args.checkpoint is None and args.resume is None:
        raise SystemExit("error: --stage finetune needs --checkpoint (the phase 1 weights)")
    depth = args.depth or (8 if args.image_size >= 512 else 7)
    vgg = None if args.random_vgg else (str(args.vgg_path) if args.vgg_path else "imagenet")
    config = TrainConfig(
        name=args.name,
        stage=args.stage,
        image_size=args.image_size,
        depth=depth,
        width=args.width,
        batch_size=args.batch_size,
        lr=args.lr,
        steps=args.steps,
        steps_per_epoch=args.steps_per_epoch,
        val_steps=args.val_steps,
        log_every=args.log_every,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        amp=not args.no_amp,
        amp_dtype=args.amp_dtype,
        compile=args.compile,
        channels_last=args.channels_last,
        seed=args.seed,
        num_workers=args.num_workers,
        vgg_weights=vgg,
        out_dir=str(args.log_path),
    )
    common = dict(masks=args.masks, holes_are=args.holes_are)
    if args.train is not None:
        train_data = InpaintingDataset(args.train, args.image_size, seed=args.seed, **common)
    else:
        print("no --train folder: training on the sample photos (a CPU demo, not a real model)")
        train_data = sample_photo_dataset(args.image_size, repeats=50, seed=args.seed, **common)
    val_data = None
    if args.validation is not None:
        val_data = InpaintingDataset(
            args.validation, args.image_size, seed=args.seed + 1, flip=False, **common
        )
    elif args.train is None:
        val_data = sample_photo_dataset(args.image_size, repeats=2, seed=args.seed + 1, flip=False, **common)
    test_data = None  # sample grids come from the test photos when given
    if args.test is not None:
        test_data = InpaintingDataset(args.test, args.image_size, seed=args.seed + 2, flip=False, **common)
    trainer = Trainer(
        config,
        train_data,
        val_data,
        device=args.device,
        progress=not args.no_progress,
        init_from=args.checkpoint if args.resume is None else None,
        sample_data=test_data,
    )
    if args.resume is not None:
        trainer.resume(args.resume)
        print(f"resumed {args.resume} at step {trainer.step}")
    trainer.fit()
    trainer.close()
    print(f"done: step {trainer.step}, checkpoints in {config.run_dir}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from pconv_lib import masks as mask_lib
    from pconv_lib.tiling import choose_scale, predict_multiscale
    from pconv_lib.train import model_from_checkpoint

    device = pick_device(args.device)
    model, config = model_from_checkpoint(args.checkpoint, device)
    image = _read_rgb(args.image)
    height, width = image.shape[:2]
    if args.mask is not None:
        mask = mask_lib.load_mask_png(args.mask, holes_are=args.holes_are)
        if mask.shape != (height, width):
            print(f"resizing mask {mask.shape[::-1]} to the image size {width}x{height} (nearest)")
            mask = mask_lib.resize_mask(mask, (height, width))
    else:
        mask = mask_lib.random_mask_in_bucket(height, width, args.bucket, args.seed)
    tile = args.tile_size or config.image_size
    auto = choose_scale(mask, config.image_size)  # from the hole widths and the training size
    factor = {"auto": auto, "single": 1, "multi": max(2, auto)}[args.scale]
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
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"error: could not write {args.output}")
    if args.save_mask is not None:
        mask_lib.save_mask_png(mask, args.save_mask)
    print(f"{args.output}: {mask_lib.hole_stats(mask)}; {result.summary()}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from pconv_lib import evaluate
    from pconv_lib.photos import center_crop_resize, sample_photos

    if args.images is not None:
        from pconv_lib.data import find_images, read_image

        images = []
        for path in find_images(args.images)[: args.limit]:
            image = read_image(path)
            if image is not None:
                images.append(center_crop_resize(image, args.size, args.size))
    else:
        images = list(sample_photos(size=args.size).values())[: args.limit]
    methods: dict[str, evaluate.Inpainter] = {}
    if args.checkpoint is not None:
        from pconv_lib.train import model_from_checkpoint

        device = pick_device(args.device)
        model, config = model_from_checkpoint(args.checkpoint, device)
        methods["PConv (this model)"] = evaluate.model_inpainter(model, 2**config.depth, device)
    if not args.no_baselines:
        methods.update(evaluate.BASELINES)
    if not methods:
        raise SystemExit("error: nothing to evaluate: give --checkpoint or drop --no-baselines")
    buckets = [int(b) for b in args.buckets.split(",")]
    table = evaluate.evaluate_methods(methods, images, buckets, seed=args.seed)
    print(table.to_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runner = {"train": run_train, "predict": run_predict, "evaluate": run_evaluate}[args.command]
    try:
        return runner(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
