"""python -m pconv_lib train / predict / evaluate, end to end on tiny folders."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from pconv_lib import masks, photos
from pconv_lib.app import cli


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    for split, names in {
        "train": ["astronaut", "coffee", "chelsea", "rocket"],
        "val": ["camera", "brick"],
    }.items():
        for i, name in enumerate(names):
            path = root / split / f"n0000{i}" / f"{name}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(photos.sample_photo(name, 48), cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="module")
def checkpoint(folders, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    code = cli.main(
        [
            "train",
            "--name",
            "tiny",
            "--train",
            str(folders / "train"),
            "--validation",
            str(folders / "val"),
            "--test",
            str(folders / "val"),
            "--random-vgg",
            "--image-size",
            "32",
            "--depth",
            "3",
            "--width",
            "0.125",
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--steps-per-epoch",
            "1",
            "--val-steps",
            "1",
            "--log-every",
            "1",
            "--sample-every",
            "1",
            "--checkpoint-every",
            "1",
            "--log-path",
            str(runs),
            "--num-workers",
            "0",
            "--no-progress",
        ]
    )
    assert code == 0
    return runs / "tiny"


def test_train_writes_a_run_folder(checkpoint):
    assert (checkpoint / "last.pt").exists() and (checkpoint / "best.pt").exists()
    assert len(list((checkpoint / "samples").glob("*.png"))) == 2
    assert (checkpoint / "metrics.csv").read_text().startswith("step,kind,total")


def test_resume_continues_the_step_count(checkpoint, folders, capsys):
    code = cli.main(
        [
            "train",
            "--name",
            "tiny",
            "--train",
            str(folders / "train"),
            "--random-vgg",
            "--image-size",
            "32",
            "--depth",
            "3",
            "--width",
            "0.125",
            "--batch-size",
            "2",
            "--steps",
            "3",
            "--log-path",
            str(checkpoint.parent),
            "--num-workers",
            "0",
            "--no-progress",
            "--resume",
            str(checkpoint / "last.pt"),
        ]
    )
    assert code == 0
    assert "resumed" in capsys.readouterr().out


def test_finetune_needs_a_checkpoint(folders, capsys):
    code = cli.main(["train", "--name", "x", "--stage", "finetune", "--train", str(folders / "train")])
    assert code == 2 and "needs --checkpoint" in capsys.readouterr().err


def test_predict_any_size_with_and_without_mask(checkpoint, tmp_path):
    image = photos.sample_photo("rocket", (50, 70))
    cv2.imwrite(str(tmp_path / "in.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    mask = masks.random_mask_in_bucket(50, 70, 1, rng=0)
    masks.save_mask_png(mask, tmp_path / "mask.png")
    out = tmp_path / "out.png"
    assert (
        cli.main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint / "last.pt"),
                "--image",
                str(tmp_path / "in.png"),
                "--mask",
                str(tmp_path / "mask.png"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    result = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert result.shape == image.shape
    assert np.array_equal(result[mask == 1], image[mask == 1])  # valid pixels kept exactly
    assert (
        cli.main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint / "last.pt"),
                "--image",
                str(tmp_path / "in.png"),
                "-o",
                str(tmp_path / "random.png"),
                "--save-mask",
                str(tmp_path / "used.png"),
            ]
        )
        == 0
    )
    assert masks.hole_stats(masks.load_mask_png(tmp_path / "used.png")).bucket == 2


def test_predict_rejects_corrupt_image(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    assert 2 == (
        cli.main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint / "last.pt"),
                "--image",
                str(bad),
                "-o",
                str(tmp_path / "o.png"),
            ]
        )
    )
    assert "bad.jpg" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "--image", "x.png", "-o", "y.png"])
    assert code == 2 and "none.pt" in capsys.readouterr().err


def test_evaluate_prints_the_bucket_table(checkpoint, folders, capsys):
    code = cli.main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint / "last.pt"),
            "--images",
            str(folders / "val"),
            "--size",
            "32",
            "--buckets",
            "0,5",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for needle in (
        "PConv (this model)",
        "OpenCV Telea",
        "OpenCV Navier-Stokes",
        "scikit-image biharmonic",
        "(0.5, 0.6]",
        "SSIM",
    ):
        assert needle in out


def test_evaluate_compares_several_named_checkpoints_in_one_table(checkpoint, folders, capsys):
    last = str(checkpoint / "last.pt")
    base = ["evaluate", "--images", str(folders / "val"), "--size", "32", "--buckets", "1"]
    assert cli.main([*base, "--checkpoint", f"mine={last}", "--checkpoint", "demo v2=demo"]) == 0
    out = capsys.readouterr().out
    l1_block = out.split("PSNR")[0]
    assert "mine " in l1_block and "demo v2 " in l1_block and "OpenCV Telea" in l1_block
    ratios = out.split("below 1: the model wins")[1]
    assert [line.split()[0] for line in ratios.splitlines()[2:4]] == ["mine", "demo"]
    # two unnamed checkpoints with the same path would make two rows alike
    assert cli.main([*base, "--checkpoint", last, "--checkpoint", last]) == 2
    assert "named alike" in capsys.readouterr().err


def test_module_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "pconv_lib", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_train_flags_are_the_config_fields_with_their_help_ranges_and_defaults():
    """One field list: every TrainConfig setting made with ``setting`` is a train flag that stores into
    the field's name, with the field's help, range and default; --no-amp turns ``amp`` off."""
    import argparse
    from dataclasses import MISSING

    from pconv_lib.app.cli import build_parser
    from pconv_lib.train_config import FLAG_SETTINGS, LIMITS

    parser = build_parser()
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    actions = {a.dest: a for a in train._actions}
    for item in FLAG_SETTINGS:
        action = actions[item.name]
        assert action.help.startswith(item.metadata["help"])
        if item.name in LIMITS:
            low, high = LIMITS[item.name]
            assert action.help.endswith(f"({low}..{high})")
        expected = item.metadata.get("flag_default", item.default)
        assert expected is not MISSING and action.default == expected
    assert "--no-amp" in actions["amp"].option_strings
    args = parser.parse_args(["train", "--name", "x", "--no-amp", "--image-size", "128", "--compile"])
    assert (args.amp, args.image_size, args.compile, args.num_workers) == (False, 128, True, 4)
