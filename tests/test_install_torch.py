"""tools/install_torch.py: the light CPU build when the CPU index answers, the default index otherwise.

Every index here is a stand-in (no network): a loopback HTTP server or a local folder serving a
PEP 503 "simple" index, with tiny fake torch/torchvision wheels for the one test that runs pip.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("install_torch", ROOT / "tools" / "install_torch.py")
install_torch = importlib.util.module_from_spec(spec)
sys.modules["install_torch"] = install_torch  # dataclasses look their module up there
spec.loader.exec_module(install_torch)


# -- stand-in indexes --------------------------------------------------------------------------------


def _fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel that installs a package ``name`` with ``__version__``."""
    tag = f"{name}-{version}"
    path = folder / f"{tag}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{tag}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{tag}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for file, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{file},sha256={digest},{len(text.encode())}")
    record.append(f"{tag}.dist-info/RECORD,,")
    files[f"{tag}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for file, text in files.items():
            wheel.writestr(file, text)
    return path


def _simple_index(root: Path, local: str) -> Path:
    """A PEP 503 index under ``root/simple`` with torch 2.14.1 and torchvision 0.29.1 (+``local``)."""
    for name, version in (("torch", "2.14.1"), ("torchvision", "0.29.1")):
        project = root / "simple" / name
        project.mkdir(parents=True)
        wheel = _fake_wheel(project, name, version + local)
        (project / "index.html").write_text(
            f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>'
        )
    return root / "simple"


class _Server:
    """A loopback HTTP server for ``folder`` (index.html for a folder, as PEP 503 servers do)."""

    def __init__(self, folder: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.RequestHandlerClass.log_message = lambda *a: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"  # nothing listens there any more: refused at once


# -- reachability ------------------------------------------------------------------------------------


def test_loopback_index_with_torch_wheels_is_reachable(tmp_path):
    _simple_index(tmp_path, "+cpu")
    with _Server(tmp_path) as url:
        assert install_torch.index_reachable(f"{url}/simple", timeout=5)
        assert install_torch.index_reachable(f"{url}/simple/", timeout=5)
        assert not install_torch.index_reachable(f"{url}/elsewhere", timeout=5)  # 404


def test_an_index_page_without_wheels_does_not_count(tmp_path):
    (tmp_path / "simple" / "torch").mkdir(parents=True)
    (tmp_path / "simple" / "torch" / "index.html").write_text("<html>captive portal: please log in</html>")
    with _Server(tmp_path) as url:
        assert not install_torch.index_reachable(f"{url}/simple", timeout=5)


def test_closed_port_is_unreachable():
    assert not install_torch.index_reachable(_closed_port_url(), timeout=5)


def test_local_folder_index(tmp_path):
    index = _simple_index(tmp_path, "+cpu")
    assert install_torch.index_reachable(index.as_uri())
    assert not install_torch.index_reachable((tmp_path / "missing").as_uri())


# -- the decision ------------------------------------------------------------------------------------

URL = install_torch.CPU_INDEX


@pytest.mark.parametrize(
    "system, nvidia, has_torch, index, reachable, action",
    [
        ("Linux", False, False, URL, True, "cpu-index"),
        ("Linux", False, False, URL, False, "default"),  # offline mirror, wheelhouse, closed CI
        ("Linux", True, False, URL, True, "default"),  # a GPU wants the CUDA build
        ("Darwin", False, False, URL, True, "default"),  # PyPI's macOS torch is the CPU/MPS build
        ("Windows", False, False, URL, True, "default"),
        ("Linux", False, True, URL, True, "keep"),  # a torch installed by hand is kept
        ("Linux", False, False, None, True, "default"),  # PCONV_TORCH_INDEX=default
    ],
)
def test_decide(system, nvidia, has_torch, index, reachable, action):
    decision = install_torch.decide(system, nvidia, has_torch, index, reachable)
    assert decision.action == action and decision.reason
    assert (decision.index_url == URL) == (action == "cpu-index")


def test_nvidia_gpu_is_found_by_its_driver_files(monkeypatch, tmp_path):
    monkeypatch.setattr(install_torch.shutil, "which", lambda name: None)
    assert not install_torch.has_nvidia_gpu(tmp_path)
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text("NVRM version: 550")
    assert install_torch.has_nvidia_gpu(tmp_path)
    monkeypatch.setattr(install_torch.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert install_torch.has_nvidia_gpu(tmp_path / "elsewhere")


def test_requirements_are_the_pyproject_ranges():
    requirements = install_torch.torch_requirements()
    text = (ROOT / "pyproject.toml").read_text()
    assert [r.split(">")[0].split("=")[0].split("<")[0] for r in requirements] == ["torch", "torchvision"]
    for requirement in requirements:
        assert f'"{requirement}"' in text


def _main_with(monkeypatch, *, system="Linux", nvidia=False, has_torch=False, reachable=True, pip_codes=(0,)):
    calls = []
    codes = iter(pip_codes)
    monkeypatch.setattr(install_torch.platform, "system", lambda: system)
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: nvidia)
    monkeypatch.setattr(install_torch, "torch_installed", lambda: has_torch)
    monkeypatch.setattr(install_torch, "index_reachable", lambda url, timeout: reachable)

    def pip_install(requirements, index_url, constraint=None):
        calls.append((tuple(requirements), index_url))
        return next(codes)

    monkeypatch.setattr(install_torch, "pip_install", pip_install)
    monkeypatch.delenv(install_torch.INDEX_VARIABLE, raising=False)
    return calls


def test_main_installs_the_cpu_build_from_the_index(monkeypatch, capsys):
    calls = _main_with(monkeypatch)
    assert install_torch.main(["--index-url", "http://127.0.0.1:9/simple"]) == 0
    assert calls == [(tuple(install_torch.torch_requirements()), "http://127.0.0.1:9/simple")]
    assert "the CPU build" in capsys.readouterr().out


def test_main_falls_back_when_the_cpu_install_fails(monkeypatch, capsys):
    calls = _main_with(monkeypatch, pip_codes=(1, 0))
    assert install_torch.main([]) == 0
    assert [index for _, index in calls] == [install_torch.CPU_INDEX, None]
    assert "failed: torch from the default index" in capsys.readouterr().out


def test_main_unreachable_uses_the_default_index(monkeypatch, capsys):
    calls = _main_with(monkeypatch, reachable=False)
    assert install_torch.main([]) == 0
    assert [index for _, index in calls] == [None]
    assert "cannot be reached" in capsys.readouterr().out


def test_main_keeps_torch_and_dry_run_installs_nothing(monkeypatch):
    calls = _main_with(monkeypatch, has_torch=True)
    assert install_torch.main([]) == 0 and calls == []
    calls = _main_with(monkeypatch)
    assert install_torch.main(["--dry-run"]) == 0 and calls == []


def test_environment_variable_names_the_index_or_turns_it_off(monkeypatch):
    calls = _main_with(monkeypatch, pip_codes=(0, 0))
    monkeypatch.setenv(install_torch.INDEX_VARIABLE, "default")
    assert install_torch.main([]) == 0 and [index for _, index in calls] == [None]
    calls.clear()
    monkeypatch.setenv(install_torch.INDEX_VARIABLE, "file:///mirror/simple")
    assert install_torch.main([]) == 0 and [index for _, index in calls] == ["file:///mirror/simple"]


# -- end to end: real pip, a fresh virtual environment, stand-in indexes -----------------------------


def _pip_env(default_index: Path) -> dict[str, str]:
    """No pip configuration of this machine; the 'default index' is a local stand-in folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PCONV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL=default_index.as_uri(),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
    )
    return env


def _installed(python: Path, env: dict[str, str]) -> str:
    code = "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    return subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


# runs tools/install_torch.py as a Linux laptop without an NVIDIA GPU, whatever this machine is
AS_A_LAPTOP = (
    "import importlib.util, sys; spec = importlib.util.spec_from_file_location('it', sys.argv[1]); "
    "it = sys.modules['it'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(it); "
    "it.has_nvidia_gpu = lambda: False; it.platform.system = lambda: 'Linux'; sys.exit(it.main(sys.argv[2:]))"
)


def test_fresh_venv_gets_the_cpu_build_then_the_fallback(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    default_index = _simple_index(tmp_path / "default", "")
    cpu_index = _simple_index(tmp_path / "cpu", "+cpu")
    env = _pip_env(default_index)
    script = [python, "-c", AS_A_LAPTOP, str(ROOT / "tools" / "install_torch.py")]
    with _Server(tmp_path / "cpu") as url:
        done = subprocess.run(
            [*script, "--index-url", f"{url}/simple"], env=env, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _installed(python, env).split() == ["2.14.1+cpu", "0.29.1+cpu"]
    assert "no NVIDIA GPU: the CPU build" in done.stdout

    again = subprocess.run(script, env=env, capture_output=True, text=True)  # torch is there
    assert again.returncode == 0 and "already installed" in again.stdout

    subprocess.run(
        [python, "-m", "pip", "uninstall", "-y", "-q", "torch", "torchvision"], env=env, check=True
    )
    done = subprocess.run(
        [*script, "--index-url", _closed_port_url()], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot be reached" in done.stdout
    assert _installed(python, env).split() == ["2.14.1", "0.29.1"]  # from the default index
    assert cpu_index.is_dir()


# -- wired into make install and the README ----------------------------------------------------------


def test_make_install_decides_torch_before_installing_the_course():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(STAMP): pyproject.toml tools/install_torch.py\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()]
    course = lines.index("$(PY) -m pip install --quiet $(PIN_OLDEST) -e '.[test]'")
    intel_mac_pin = "$(if $(INTEL_MAC),--constraint requirements/oldest.txt,)"
    assert lines.index(f"$(PY) tools/install_torch.py {intel_mac_pin}") < course
    assert "INTEL_MAC := $(filter Darwin-x86_64," in makefile
    assert "PIN_OLDEST := $(if $(INTEL_MAC),-c requirements/oldest.txt,)" in makefile


def test_readme_first_commands_are_the_light_path():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "make lab" in first_block and "CPU-only torch" in first_block
    assert install_torch.INDEX_VARIABLE in readme and "tools/install_torch.py" in readme
