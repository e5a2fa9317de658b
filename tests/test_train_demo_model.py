"""tools/train_demo_model.py: photo lists, fetch (fake apt-get), .deb extraction, selection,
preparation sizes, and a tiny end-to-end run that writes a loadable checkpoint and model card."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pconv_lib import pretrained

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("train_demo_model", ROOT / "tools" / "train_demo_model.py")
tdm = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = tdm  # dataclasses look their module up there
spec.loader.exec_module(tdm)

TRAIN = tdm.read_photo_list(tdm.TRAIN_LIST)
VAL = tdm.read_photo_list(tdm.VAL_LIST)


def _jpeg(height: int, width: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    # smooth colour ramps plus a little noise: a photo-like, compressible image
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    image = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def _ar(members: dict[str, bytes]) -> bytes:
    """A Unix ar archive, as dpkg-deb writes it."""
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _deb_by_hand(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A minimal .deb (debian-binary, control.tar.xz, data.tar.xz) holding ``./<path>`` files."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo("./" + name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz") as tar:
        body = b"Package: test\n"
        info = tarfile.TarInfo("./control")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    path.write_bytes(
        _ar({"debian-binary": b"2.0\n", "control.tar.xz": control.getvalue(), "data.tar.xz": data.getvalue()})
    )
    return path


# --------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------


def test_bundled_lists_are_the_demo_photos():
    assert len(TRAIN) == 23 and len(VAL) == 3
    assert {p.package for p in TRAIN + VAL} <= set(tdm.PACKAGES)
    assert not {p.path for p in TRAIN} & {p.path for p in VAL}
    names = [p.name for p in TRAIN + VAL]
    assert len(set(names)) == len(names)  # prepared file names cannot collide
    assert VAL[0].name == "ColdRipple"  # KDE wallpapers are named after their folder


def test_malformed_list_line_is_named(tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text("# comment\nmate-backgrounds\tusr/a.jpg\nno-tab-here\n")
    with pytest.raises(tdm.DemoBuildError, match=r"list.txt:3: expected 'package<TAB>path'"):
        tdm.read_photo_list(bad)
    bad.write_text("pkg\t../etc/passwd\n")
    with pytest.raises(tdm.DemoBuildError, match="relative inside the package"):
        tdm.read_photo_list(bad)


# --------------------------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------------------------


def _fake_apt(tmp_path: Path, source: Path) -> list[str]:
    """A stand-in for ``apt-get download``: copies ``<pkg>_1.0_all.deb`` from ``source``."""
    script = tmp_path / "fake_apt.py"
    script.write_text(
        "import shutil, sys\n"
        "for package in sys.argv[1:]:\n"
        f"    shutil.copy({str(source)!r} + '/' + package + '_1.0_all.deb', '.')\n"
    )
    return [sys.executable, str(script)]


def test_fetch_runs_the_download_command_only_for_missing_packages(tmp_path):
    source = tmp_path / "mirror"
    source.mkdir()
    for package in ("a", "b"):
        _deb_by_hand(source / f"{package}_1.0_all.deb", {"x": b"1"})
    cache = tmp_path / "debs"
    cache.mkdir()
    shutil.copy(source / "a_1.0_all.deb", cache)
    (source / "a_1.0_all.deb").unlink()  # asking for "a" again would fail
    found = tdm.fetch_debs(cache, ["a", "b"], _fake_apt(tmp_path, source))
    assert found == {"a": cache / "a_1.0_all.deb", "b": cache / "b_1.0_all.deb"}


def test_fetch_errors_are_one_clear_line(tmp_path):
    with pytest.raises(tdm.DemoBuildError, match="cannot run 'no-such-apt-get'.*--debs"):
        tdm.fetch_debs(tmp_path / "c1", ["a"], ["no-such-apt-get", "download"])
    with pytest.raises(tdm.DemoBuildError, match="failed.*--debs"):
        tdm.fetch_debs(tmp_path / "c2", ["a"], _fake_apt(tmp_path, tmp_path / "empty"))
    with pytest.raises(tdm.DemoBuildError, match="no .deb for b in"):
        (tmp_path / "c3").mkdir()
        _deb_by_hand(tmp_path / "c3" / "a_1_all.deb", {"x": b"1"})
        tdm.find_debs(tmp_path / "c3", ["a", "b"])


# --------------------------------------------------------------------------------------------
# Extract and select
# --------------------------------------------------------------------------------------------


def test_python_extraction_takes_only_the_listed_files_and_follows_links(tmp_path):
    deb = _deb_by_hand(
        tmp_path / "p_1_all.deb",
        {"usr/share/backgrounds/a.jpg": b"AAA", "usr/share/backgrounds/b.jpg": b"BBBB"},
        links={"usr/share/backgrounds/link.jpg": "a.jpg"},
    )
    out = tmp_path / "out"
    written = tdm.extract_from_deb(
        deb, ["usr/share/backgrounds/b.jpg", "usr/share/backgrounds/link.jpg"], out
    )
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "usr/share/backgrounds/b.jpg",
        "usr/share/backgrounds/link.jpg",
    ]
    assert (out / "usr/share/backgrounds/link.jpg").read_bytes() == b"AAA"
    assert not (out / "usr/share/backgrounds/a.jpg").exists()


def test_extraction_rejects_a_file_that_is_not_a_deb(tmp_path):
    fake = tmp_path / "x_1_all.deb"
    fake.write_bytes(b"<html>404</html>")
    with pytest.raises(tdm.DemoBuildError, match="not a .deb"):
        tdm.extract_from_deb(fake, ["a"], tmp_path / "out")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_a_real_dpkg_deb_package_extracts_both_ways(tmp_path):
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: pconv-test\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    photo = tree / "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(_jpeg(8, 12))
    deb = tmp_path / "pconv-test_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "-Zxz", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    entry = tdm.ListedPhoto("pconv-test", "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg")
    for extractor in ("python", "dpkg"):
        out = tmp_path / extractor
        tdm.extract_photos({"pconv-test": deb}, [entry], out, extractor)
        [selected] = tdm.select_photos(out, [entry])
        assert selected.read_bytes() == photo.read_bytes()


def test_a_missing_listed_photo_is_named(tmp_path):
    present = tdm.ListedPhoto("mate-backgrounds", "usr/share/backgrounds/mate/nature/Dune.jpg")
    missing = tdm.ListedPhoto("lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg")
    (tmp_path / present.path).parent.mkdir(parents=True)
    (tmp_path / present.path).write_bytes(b"x")
    assert tdm.select_photos(tmp_path, [present]) == [tmp_path / present.path]
    with pytest.raises(
        tdm.DemoBuildError, match=r"1 listed photo.*Kleiber_by_Lukas_Baubkus.jpg \(package lomiri"
    ):
        tdm.select_photos(tmp_path, [present, missing])


# --------------------------------------------------------------------------------------------
# Prepare
# --------------------------------------------------------------------------------------------


def test_prepare_writes_three_scales_and_validation_copies(tmp_path):
    wide, tall = tmp_path / "wide.jpg", tmp_path / "tall.jpg"
    wide.write_bytes(_jpeg(150, 250))
    tall.write_bytes(_jpeg(300, 200, seed=1))
    train = [(tdm.ListedPhoto("p", "a/wide.jpg"), wide), (tdm.ListedPhoto("p", "a/tall.jpg"), tall)]
    val = [(tdm.ListedPhoto("p", "w/Kite/contents/images/1x1.jpg"), wide)]
    train_dir, val_dir = tdm.prepare_photos(train, val, tmp_path / "out", train_sizes=(64, 96), val_copies=3)
    shapes = {p.name: cv2.imread(str(p)).shape[:2] for p in train_dir.glob("*.jpg")}
    assert shapes == {
        "wide_64.jpg": (64, 107),
        "wide_96.jpg": (96, 160),
        "tall_64.jpg": (96, 64),
        "tall_96.jpg": (144, 96),
    }
    copies = sorted(val_dir.glob("*.jpg"))
    assert [p.name for p in copies] == [f"Kite_512_{i:02d}.jpg" for i in range(3)]
    assert cv2.imread(str(copies[0])).shape[:2] == (512, 853)
    assert len({p.read_bytes() for p in copies}) == 1


def test_resize_uses_the_exact_shorter_side():
    image = np.zeros((1600, 2560, 3), np.uint8)
    for size in tdm.TRAIN_SIZES:
        assert min(tdm.resize_shorter(image, size).shape[:2]) == size
    assert tdm.resize_shorter(image, 384).shape[:2] == (384, 614)


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def test_tiny_end_to_end_run_writes_a_loadable_model_and_card(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for package in tdm.PACKAGES:
        files = {p.path: _jpeg(40, 60, seed=i) for i, p in enumerate(TRAIN + VAL) if p.package == package}
        _deb_by_hand(mirror / f"{package}_1.0_all.deb", files)
    output = tmp_path / "weights" / "demo_model.pt"
    command = " ".join(_fake_apt(tmp_path, mirror))
    args = ["--stage", "all", "--work", str(tmp_path / "work"), "--fetch-command", command]
    args += ["--image-size", "64", "--depth", "5", "--width", "0.125", "--steps", "2", "--batch-size", "2"]
    args += ["--steps-per-epoch", "1", "--val-steps", "1", "--device", "cpu", "--output", str(output)]
    args += ["--eval-size", "64", "--eval-limit", "2", "--train-sizes", "64,96", "--val-size", "64"]
    assert tdm.main(args) == 0, capsys.readouterr().err

    prepared = tmp_path / "work" / "photos"
    assert len(list((prepared / "train").glob("*.jpg"))) == 23 * 2
    assert len(list((prepared / "val").glob("*.jpg"))) == 3 * 12
    state = torch.load(output, weights_only=True)
    assert set(state) == {"model", "config", "step", "provenance"}
    assert state["config"]["name"] == "demo" and state["config"]["stage"] == "train"
    assert state["step"] in (1, 2) and "23 Debian wallpaper photographs" in state["provenance"]
    assert all(
        v.dtype == torch.float16 and v.device.type == "cpu"
        for v in state["model"].values()
        if v.is_floating_point()
    )
    model = pretrained.demo_model(path=output)
    assert model.depth == 5 and not model.training

    card = (output.parent / "MODEL_CARD.md").read_text()
    for text in (
        "valid 1, hole 6, total variation 0.1",
        "commit: <filled at merge>",
        "lomiri-wallpapers-16.04",
        "(0.1, 0.2]",
        "(0.4, 0.5]",
        "OpenCV Telea",
        "Where it loses",
        "--size 64",
        "| objects |",
        "PConv (this model) (raw)",
        "--masks all --raw",
    ):
        assert text in card


def test_the_v3_mask_mix_trains_and_validates_on_strokes_and_object_holes():
    from pconv_lib import masks

    assert tdm.MASK_MIXES == {"strokes": None, "mix": masks.random_training_mask}
    assert tdm.build_parser().parse_args(["--masks", "mix"]).masks == "mix"
    with pytest.raises(SystemExit):
        tdm.build_parser().parse_args(["--masks", "blobs"])


def test_train_model_uses_the_trainer_hooks_for_the_start_and_the_time_limit(tmp_path, capsys):
    """Phase 2 from a checkpoint: step 0 is validated and kept as best.pt (validate_first);
    --max-minutes stops after the step that passes it (time_budget_s) and the last steps are
    validated (validate_last); on_best names the step of best.pt."""
    photos = {}
    for kind, count in (("train", 4), ("val", 2)):
        photos[kind] = tmp_path / kind
        photos[kind].mkdir()
        for i in range(count):
            (photos[kind] / f"{i}.jpg").write_bytes(_jpeg(64, 96, seed=i))
    tiny = dict(image_size=64, depth=5, width=0.125, batch_size=2, val_steps=1, num_workers=0,
                amp=False, out_dir=str(tmp_path / "runs"))  # fmt: skip
    first = tdm.train_model(tdm.reference_config(name="p1", steps=2, steps_per_epoch=1, **tiny),
                            photos["train"], photos["val"], device="cpu", progress=False)  # fmt: skip
    assert torch.load(first, weights_only=True)["step"] in (1, 2)
    out = capsys.readouterr().out
    assert "step 1: val" in out and "step 2: val" in out and "train: best validation loss" in out

    config = tdm.reference_config(name="p2", stage="finetune", steps=5, steps_per_epoch=3, **tiny)
    best = tdm.train_model(config, photos["train"], photos["val"], init_from=first, device="cpu",
                           max_minutes=1e-9, progress=False)  # fmt: skip
    out = capsys.readouterr().out
    assert f"step 0 (from {first}): val" in out
    assert "stopped at step 1: --max-minutes" in out and "step 1: val" in out
    run = tmp_path / "runs" / "p2"
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 1
    assert best == run / "best.pt" and torch.load(best, weights_only=True)["step"] in (0, 1)
    saved_step = torch.load(best, weights_only=True)["step"]
    assert f"at step {saved_step}: {best}" in out


def test_bad_stage_input_is_one_line_not_a_traceback(tmp_path, capsys):
    code = tdm.main(["--stage", "prepare", "--work", str(tmp_path), "--extracted", str(tmp_path / "none")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 23 listed photo(s) not found") and err.count("\n") == 1


def test_freeze_all_batchnorm_keeps_running_statistics_under_train():
    from pconv_lib.model import PConvUNet

    model = PConvUNet(depth=3, width=0.125, freeze_encoder_bn=True)
    keys = list(model.state_dict())
    assert tdm.freeze_all_batchnorm(model) == sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    image, mask = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
    mask[:, :, 8:20, 8:20] = 0
    output, _ = model(image * mask, mask)
    output.mean().backward()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(after) == keys  # loads into a plain PConvUNet
    decoder_bn = [m for m in model.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert decoder_bn and all(not m.training and m.weight.grad is not None for m in decoder_bn)
