"""doctor's workshop checks: fix lines that install on this platform (Intel Macs stop at torch
2.2.2), NumPy 1.x for an old torch, free memory, and the kernel the notebooks ask for."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pconv_lib.app import doctor

ROOT = Path(__file__).resolve().parent.parent


# -- fix lines per platform --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "system, machine, intel",
    [
        ("Darwin", "x86_64", True),
        ("Darwin", "arm64", False),
        ("Linux", "x86_64", False),
        ("Windows", "AMD64", False),
    ],
)
def test_intel_mac_is_macos_on_x86_64(system, machine, intel):
    assert doctor.intel_mac(system, machine) is intel


def test_intel_mac_fix_line_names_the_last_torch_it_can_install():
    line = doctor.torch_install_command("Darwin", "x86_64")
    assert line.startswith('pip install torch==2.2.2 torchvision==0.17.2 "numpy<2"')
    assert doctor.CPU_WHEELS not in line


def test_other_platforms_get_the_newest_pair():
    linux = doctor.torch_install_command("Linux", "x86_64")
    assert linux.startswith("pip install torch==2.14.1 torchvision==0.29.1") and doctor.CPU_WHEELS in linux
    for system, machine in (("Darwin", "arm64"), ("Windows", "AMD64")):
        line = doctor.torch_install_command(system, machine, macos_major=15)
        assert line == "pip install torch==2.14.1 torchvision==0.29.1"


def test_apple_silicon_before_macos_14_gets_the_last_torch_for_it():
    line = doctor.torch_install_command("Darwin", "arm64", macos_major=13)
    assert line.startswith("pip install torch==2.11.0 torchvision==0.26.0") and "macOS 14" in line
    assert doctor.expected_torchvision(doctor.OLD_MACOS_ARM_PAIR[0]) == "0.26"
    newest = doctor.torch_install_command("Darwin", "arm64", macos_major=15)
    assert newest == "pip install torch=={} torchvision=={}".format(*doctor.NEWEST_PAIR)


def test_fix_pairs_are_the_supported_range():
    """NEWEST_PAIR is pyproject's upper bound; OLDEST_PAIR is requirements/oldest.txt."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"torch>=2.2,<={doctor.NEWEST_PAIR[0]}"' in pyproject
    assert f'"torchvision>=0.17,<={doctor.NEWEST_PAIR[1]}"' in pyproject
    oldest = (ROOT / "requirements" / "oldest.txt").read_text().splitlines()
    assert f"torch=={doctor.OLDEST_PAIR[0]}" in oldest and f"torchvision=={doctor.OLDEST_PAIR[1]}" in oldest
    assert "numpy<2" in oldest
    assert doctor.expected_torchvision(doctor.OLDEST_PAIR[0]) == "0.17"
    assert doctor.expected_torchvision(doctor.NEWEST_PAIR[0]) == "0.29"


def test_torch_check_on_an_intel_mac_proposes_what_installs_there(monkeypatch):
    real = doctor._import_error
    monkeypatch.setattr(
        doctor, "_import_error", lambda m: "ModuleNotFoundError: torch" if m == "torch" else real(m)
    )
    monkeypatch.setattr(doctor.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(doctor.platform, "machine", lambda: "x86_64")
    result = doctor.check_torch()
    assert result.status == doctor.FAIL and "torch==2.2.2" in result.fix and "numpy<2" in result.fix


def test_python_3_13_on_an_intel_mac_fails(monkeypatch):
    monkeypatch.setattr(doctor.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(doctor.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(doctor, "OLDEST_PYTHONS", ())  # this Python is not one torch 2.2.2 has wheels for
    result = doctor.check_python()
    assert result.status == doctor.FAIL and "Intel Mac" in result.message and "Python 3.11" in result.fix
    monkeypatch.setattr(doctor, "OLDEST_PYTHONS", (sys.version_info[:2],))
    assert doctor.check_python().status == doctor.OK


@pytest.mark.parametrize(
    "torch_version, needs", [("2.2.2", True), ("2.2.2+cpu", True), ("2.3.0", False), ("2.14.1", False)]
)
def test_old_torch_needs_numpy_1(torch_version, needs):
    assert doctor.needs_numpy_1(torch_version) is needs


def test_old_torch_beside_numpy_2_fails_with_the_pin(monkeypatch):
    versions = {"torch": "2.2.2", "torchvision": "0.17.2", "numpy": "2.1.0"}
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: versions.get(d) or real(d))
    result = doctor.check_torch()
    assert (
        result.status == doctor.FAIL
        and "NumPy 1.x" in result.message
        and result.fix == 'pip install "numpy<2"'
    )
    versions["numpy"] = "1.26.4"
    assert doctor.check_torch().status == doctor.OK


# -- memory ------------------------------------------------------------------------------------------

GB = 1024**3


@pytest.mark.parametrize(
    "available, status", [(8 * GB, doctor.OK), (2.5 * GB, doctor.WARN), (1.5 * GB, doctor.FAIL)]
)
def test_memory_thresholds(available, status):
    result = doctor.check_memory(int(available))
    assert result.status == status and f"{available / GB:.1f} GB available" in result.message
    assert (result.fix != "") == (status != doctor.OK)


def test_memory_that_cannot_be_read_only_warns(monkeypatch):
    from pconv_lib.util import files

    monkeypatch.setattr(files, "available_memory", lambda: None)
    result = doctor.check_memory()
    assert result.status == doctor.WARN and "cannot be read" in result.message


def test_memory_here_is_read():
    result = doctor.check_memory()
    assert result.status in (doctor.OK, doctor.WARN, doctor.FAIL) and "GB available" in result.message


# -- the course kernel -------------------------------------------------------------------------------


def _kernel_dir(root: Path, python: str) -> Path:
    folder = root / "kernels" / doctor.COURSE_KERNEL
    folder.mkdir(parents=True)
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture
def only_kernels_in(monkeypatch, tmp_path):
    """Jupyter finds kernel specs only under tmp_path (the user's data folder here)."""
    from jupyter_client import kernelspec

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))

    class Manager(kernelspec.KernelSpecManager):
        def __init__(self, **kwargs):
            super().__init__(kernel_dirs=[str(tmp_path / "kernels")], **kwargs)

    monkeypatch.setattr(kernelspec, "KernelSpecManager", Manager)
    return tmp_path


def test_kernel_pointing_at_this_python_is_ok(only_kernels_in):
    _kernel_dir(only_kernels_in, sys.executable)
    result = doctor.check_kernel()
    assert result.status == doctor.OK and "this environment's Python" in result.message


def test_kernel_pointing_at_another_python_fails_with_the_install_line(only_kernels_in):
    folder = _kernel_dir(only_kernels_in, "/opt/some-other/env/bin/python")
    result = doctor.check_kernel()
    assert result.status == doctor.FAIL and "/opt/some-other/env/bin/python" in result.message
    assert str(folder) in result.message
    assert f'"{sys.executable}" -m ipykernel install' in result.fix and "--name python3" in result.fix
    assert "--user" in result.fix  # the stray spec is in the user's folder, which wins over --sys-prefix


def test_no_course_kernel_fails(only_kernels_in, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel.kernelspec", None)  # no ipykernel: no built-in python3
    result = doctor.check_kernel()
    assert result.status == doctor.FAIL and "no kernel named python3" in result.message
    assert "--sys-prefix" in result.fix


def test_the_base_python_of_a_virtual_environment_is_another_environment():
    other = Path(sys.base_prefix) / ("python.exe" if sys.platform == "win32" else "bin/python3")
    if sys.prefix == sys.base_prefix:  # not in a virtual environment: a made-up one instead
        other = Path(sys.prefix) / "envs" / "other" / "bin" / "python3"
    assert not doctor._same_environment(str(other))
    assert doctor._same_environment(sys.executable)
    assert doctor._same_environment(str(Path(sys.executable).with_name("python3")))
    assert doctor._same_environment("python")


def test_the_notebooks_ask_for_the_course_kernel():
    for folder in ("notebooks", "exercises", "solutions"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            kernel = json.loads(path.read_text(encoding="utf-8"))["metadata"]["kernelspec"]["name"]
            assert kernel == doctor.COURSE_KERNEL, path


def test_new_checks_are_in_the_report():
    names = [name for name, _ in doctor.default_checks()]
    assert names.index("memory") > names.index("disk") and "kernel" in names
