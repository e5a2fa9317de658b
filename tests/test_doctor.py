"""python -m pconv_lib doctor: every check passes here and fails (with a fix) when its thing is broken."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torchvision

from pconv_lib import losses, pretrained
from pconv_lib.app import cli, doctor
from pconv_lib.util import files

ROOT = Path(__file__).resolve().parent.parent
DiskUsage = namedtuple("DiskUsage", "total used free")


def _fake_import_error(broken: str, error: str = "ModuleNotFoundError: No module named it"):
    real = doctor._import_error

    def fake(module: str) -> str | None:
        return error if module == broken else real(module)

    return fake


# -- Python ------------------------------------------------------------------------------------------


def test_python_ok_here():
    assert doctor.check_python().status == doctor.OK


def test_python_too_old(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_PYTHON", (99, 0))
    result = doctor.check_python()
    assert result.status == doctor.FAIL and "too old" in result.message and "Python 3.11" in result.fix


# -- torch / torchvision -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "torch_version, expected",
    [("2.14.1", "0.29"), ("2.4.0", "0.19"), ("2.5.1+cpu", "0.20"), ("1.13.1", "0.14"), ("3.0.0", None)],
)
def test_expected_torchvision_known_pairs(torch_version, expected):
    assert doctor.expected_torchvision(torch_version) == expected


def test_torch_pair_ok_here():
    result = doctor.check_torch()
    assert result.status == doctor.OK and torch.__version__.split("+")[0] in result.message


def test_torch_mismatched_versions_fail(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: "0.20.0" if d == "torchvision" else real(d))
    monkeypatch.setattr(doctor, "expected_torchvision", lambda v: "0.29")
    result = doctor.check_torch()
    assert result.status == doctor.FAIL and "do not match" in result.message
    assert "torchvision==" in result.fix and doctor.torch_install_command() in result.fix


def test_torchvision_operator_missing_fails(monkeypatch):
    def broken_nms(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(torchvision.ops, "nms", broken_nms)
    result = doctor.check_torch()
    assert result.status == doctor.FAIL and "torchvision::nms" in result.message


def test_torchvision_import_failure_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_import_error", _fake_import_error("torchvision"))
    result = doctor.check_torch()
    assert result.status == doctor.FAIL and "import torchvision failed" in result.message
    assert "pip install torch" in result.fix


# -- OpenCV, NumPy, scikit-image ---------------------------------------------------------------------


def test_opencv_ok_here():
    assert doctor.check_opencv().status == doctor.OK


def test_opencv_libgl_error_names_the_headless_fix(monkeypatch):
    error = "ImportError: libGL.so.1: cannot open shared object file"
    monkeypatch.setattr(doctor, "_import_error", _fake_import_error("cv2", error))
    result = doctor.check_opencv()
    assert result.status == doctor.FAIL and "libGL" in result.message
    assert "pip uninstall -y opencv-python" in result.fix


def test_opencv_both_builds_installed_warns(monkeypatch):
    monkeypatch.setattr(doctor, "_version", lambda d: "4.10.0")
    result = doctor.check_opencv()
    assert result.status == doctor.WARN and "both installed" in result.message


def test_scikit_image_missing_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_import_error", _fake_import_error("skimage"))
    result = doctor.check_scientific()
    assert result.status == doctor.FAIL and result.fix == "pip install scikit-image"


# -- device and mode ---------------------------------------------------------------------------------


def _clear_mode_env(monkeypatch):
    for name in ("CI", "PCONV_QUICK", "PCONV_FULL"):
        monkeypatch.delenv(name, raising=False)


def test_device_cpu_reports_quick_mode(monkeypatch):
    _clear_mode_env(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    result = doctor.check_device()
    assert result.status == doctor.OK
    assert (
        "CPU only" in result.message and "quick mode" in result.message and "PCONV_FULL=1" in result.message
    )


def test_device_full_mode_on_a_cpu_warns(monkeypatch):
    _clear_mode_env(monkeypatch)
    monkeypatch.setenv("PCONV_FULL", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    result = doctor.check_device()
    assert result.status == doctor.WARN and "full mode" in result.message and "unset PCONV_FULL" in result.fix


# -- disk --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("free_gb, status", [(100, doctor.OK), (2, doctor.WARN), (0.2, doctor.FAIL)])
def test_disk_thresholds(monkeypatch, tmp_path, free_gb, status):
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: DiskUsage(10**12, 0, int(free_gb * 1024**3)))
    result = doctor.check_disk(tmp_path)
    assert result.status == status and f"{free_gb:.1f} GB free" in result.message


def test_disk_of_a_folder_not_created_yet(tmp_path):
    result = doctor.check_disk(tmp_path / "not" / "yet")
    assert result.message.endswith(f"GB free in {tmp_path.resolve()}")  # the nearest existing parent


# -- demo model --------------------------------------------------------------------------------------


def test_demo_model_loads_here():
    result = doctor.check_demo_model()
    assert result.status == doctor.OK and "6.45 M parameters" in result.message


def test_demo_model_missing_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "DEMO_CHECKPOINT", tmp_path / "demo_model.pt")
    result = doctor.check_demo_model()
    assert (
        result.status == doctor.FAIL
        and "not found" in result.message
        and "pip install -e ." in result.message
    )


def test_demo_model_unreadable_fails(monkeypatch, tmp_path):
    broken = tmp_path / "demo_model.pt"
    broken.write_text("version https://git-lfs.github.com/spec/v1\n")  # a Git LFS pointer
    monkeypatch.setattr(pretrained, "DEMO_CHECKPOINT", broken)
    result = doctor.check_demo_model()
    assert result.status == doctor.FAIL and "unreadable" in result.message


# -- VGG16 weights -----------------------------------------------------------------------------------


def test_vgg_missing_warns_with_the_exact_path(monkeypatch, tmp_path):
    expected = tmp_path / "hub" / "checkpoints" / losses.VGG16_IMAGENET_FILENAME
    monkeypatch.setattr(losses, "vgg16_weights_path", lambda: expected)
    result = doctor.check_vgg()
    assert result.status == doctor.WARN
    assert str(expected) in result.fix and "IMAGENET1K_V1" in result.fix and "--vgg-path" in result.fix


def test_vgg_present_is_ok(monkeypatch, tmp_path):
    weights = tmp_path / losses.VGG16_IMAGENET_FILENAME
    weights.write_bytes(b"0" * 1024)
    monkeypatch.setattr(losses, "vgg16_weights_path", lambda: weights)
    result = doctor.check_vgg()
    assert result.status == doctor.OK and str(weights) in result.message


# -- widgets -----------------------------------------------------------------------------------------


def test_widgets_ok_here():
    result = doctor.check_widgets()
    assert result.status == doctor.OK and "ipycanvas" in result.message


def test_widget_labextension_missing_warns(monkeypatch):
    monkeypatch.setattr(doctor, "find_labextension", lambda name: None)
    result = doctor.check_widgets()
    assert result.status == doctor.WARN and "@jupyter-widgets/jupyterlab-manager" in result.message
    assert "pip install ipywidgets ipycanvas" in result.fix


def test_ipycanvas_missing_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_import_error", _fake_import_error("ipycanvas"))
    result = doctor.check_widgets()
    assert result.status == doctor.FAIL and "import ipycanvas failed" in result.message


def test_find_labextension_reads_share_jupyter(monkeypatch, tmp_path):
    extension = tmp_path / "ipycanvas"
    extension.mkdir()
    (extension / "package.json").write_text("{}")
    monkeypatch.setattr(doctor, "_labextension_dirs", lambda: [tmp_path / "elsewhere", tmp_path])
    assert doctor.find_labextension("ipycanvas") == extension
    assert doctor.find_labextension("@jupyter-widgets/jupyterlab-manager") is None


# -- runs/ -------------------------------------------------------------------------------------------


def test_runs_writable(tmp_path):
    (tmp_path / "runs").mkdir()
    result = doctor.check_runs(tmp_path / "runs")
    assert result.status == doctor.OK and "writable" in result.message
    assert list((tmp_path / "runs").iterdir()) == []  # the probe file is gone


def test_runs_not_writable_fails(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(files.tempfile, "TemporaryFile", refuse)
    result = doctor.check_runs(tmp_path / "runs")
    assert result.status == doctor.FAIL and "cannot write" in result.message and result.fix


def test_runs_is_a_file_fails(tmp_path):
    (tmp_path / "runs").write_text("")
    result = doctor.check_runs(tmp_path / "runs")
    assert result.status == doctor.FAIL and "not a folder" in result.message


# -- report and exit code ----------------------------------------------------------------------------


def _ok() -> doctor.Check:
    return doctor.Check(doctor.OK, "fine", "all good")


def _fail() -> doctor.Check:
    return doctor.Check(doctor.FAIL, "broken", "it is broken", "fix it")


def test_a_crashing_check_becomes_a_fail_line():
    def crash() -> doctor.Check:
        raise KeyError("boom")

    (result,) = doctor.run_checks([("crashy", crash)])
    assert result.status == doctor.FAIL and result.name == "crashy" and "KeyError" in result.message


def test_report_one_line_per_check_and_ascii_fallback():
    results = [_ok(), doctor.Check(doctor.WARN, "note", "fyi", "maybe"), _fail()]
    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    assert doctor.report(results, out) is False
    out.flush()
    out.seek(0)
    lines = out.read().splitlines()
    assert lines[:3] == [
        "OK   fine: all good",
        "WARN note: fyi -> maybe",
        "FAIL broken: it is broken -> fix it",
    ]
    assert "1 problem(s)" in lines[3]
    unicode_out = io.StringIO()
    assert doctor.report([_ok()], unicode_out) is True
    assert unicode_out.getvalue().splitlines() == ["✓ fine: all good", "The course will run here."]


def test_cli_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "default_checks", lambda runs: [("fine", _ok)])
    assert cli.main(["doctor"]) == 0
    monkeypatch.setattr(doctor, "default_checks", lambda runs: [("fine", _ok), ("broken", _fail)])
    assert cli.main(["doctor", "--runs", "somewhere/runs"]) == 1
    assert "✗ broken: it is broken -> fix it" in capsys.readouterr().out


def test_real_checks_on_this_machine(tmp_path, capsys):
    """All real checks here: one line per check, exit code 0 exactly when no line is ✗."""
    code = doctor.main(["--runs", str(tmp_path / "runs")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(doctor.default_checks()) + 1
    assert all(line[0] in "✓!✗" for line in lines[:-1])
    assert code == (1 if any(line.startswith("✗") for line in lines) else 0)


def test_show_prints_the_report_for_a_notebook(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "default_checks", lambda runs: [("fine", _ok)])
    assert doctor.show() is None
    assert capsys.readouterr().out.splitlines() == ["✓ fine: all good", "The course will run here."]


def test_python_m_pconv_lib_doctor_needs_no_heavy_imports():
    """``python -m pconv_lib doctor`` starts without importing torch/OpenCV (so it can report them)."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['pconv_lib', 'doctor', '--help']\n"
        "try:\n"
        "    runpy.run_module('pconv_lib', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    print('exit', done.code, 'torch' in sys.modules, 'cv2' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert "--runs" in done.stdout and done.stdout.splitlines()[-1] == "exit 0 False False"


def test_threads_line_shows_the_policy_and_the_override(monkeypatch):
    from pconv_lib import runtime

    check = doctor.check_threads()
    assert check.status == doctor.OK and "threads: " + check.message == runtime.describe_threads()
    assert "PCONV_THREADS" in check.message
    monkeypatch.setenv("PCONV_THREADS", "many")
    bad = doctor.check_threads()
    assert bad.status == doctor.WARN and "PCONV_THREADS='many' is not understood" in bad.message
    assert "unset PCONV_THREADS" in bad.fix


def test_threads_line_names_a_container_quota(monkeypatch):
    from pconv_lib import runtime

    monkeypatch.delenv("PCONV_THREADS", raising=False)
    budget = runtime.CpuBudget(1, "1 CPU (container quota 1 CPUs of 8)")
    monkeypatch.setattr(runtime, "usable_cpus", lambda *a, **k: budget)
    check = doctor.check_threads()
    assert check.status == doctor.OK and "container CPU quota" in check.message
