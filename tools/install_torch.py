"""Install torch and torchvision into this Python's environment: the light CPU build where it helps.

``make install`` (and so ``make lab`` and ``make test``) runs this with the virtual environment's
Python before ``pip install -e .``, which then keeps the torch it finds. The decision:

1. torch already installed here -> nothing (whatever you installed by hand is kept).
2. not Linux -> the default index: PyPI's torch for macOS and Windows is already the CPU (or MPS)
   build, and no CPU index has macOS wheels.
3. Linux with an NVIDIA GPU (a driver: ``nvidia-smi``, ``/proc/driver/nvidia`` or ``/dev/nvidia0``)
   -> the default index: PyPI's Linux torch is the CUDA build, which the GPU wants.
4. Linux without one, the CPU index reachable (its ``torch/`` page answers within the time-out)
   -> torch and torchvision from the CPU index: about 1 GB instead of 6 GB installed.
5. otherwise (no network to that index: offline mirrors, a wheelhouse, CI on a closed network; or
   the install from it failed) -> the default index, i.e. whatever pip is configured with.

The CPU index is https://download.pytorch.org/whl/cpu unless ``PCONV_TORCH_INDEX`` or
``--index-url`` names another (a PEP 503 "simple" index: ``http(s)://`` or ``file://``);
``PCONV_TORCH_INDEX=default`` always uses the default index. The versions installed are the torch
and torchvision ranges of ``pyproject.toml``, so ``pip install -e .`` never replaces them.
``--dry-run`` prints the decision and installs nothing.

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INDEX_VARIABLE = "PCONV_TORCH_INDEX"
#: Seconds to wait for the CPU index before falling back (a closed network refuses at once).
DEFAULT_TIMEOUT = 8.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Decision:
    """What to do: ``action`` is ``"keep"`` (torch is there), ``"cpu-index"`` or ``"default"``;
    ``reason`` is the sentence printed for the person installing."""

    action: str
    reason: str
    index_url: str | None = None


def has_nvidia_gpu(root: Path = Path("/")) -> bool:
    """True when an NVIDIA driver is present (Linux): its tool, its /proc entry or its device file."""
    if shutil.which("nvidia-smi"):
        return True
    return (root / "proc/driver/nvidia/version").exists() or (root / "dev/nvidia0").exists()


def torch_installed() -> bool:
    """True when torch is installed in this Python's environment (its metadata, not an import)."""
    import importlib.metadata

    try:
        importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def index_reachable(index_url: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True when the PEP 503 index at ``index_url`` serves a ``torch/`` page that links a wheel."""
    page = index_url.rstrip("/") + "/torch/"
    if page.startswith("file:"):  # pip reads a local index folder's index.html, as a server sends it
        page += "index.html"
    try:
        with urllib.request.urlopen(page, timeout=timeout) as response:  # noqa: S310 (http/file only)
            if getattr(response, "status", None) not in (None, 200):  # file: URLs have no status
                return False
            body = response.read(4_000_000).decode("utf-8", errors="replace")
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return ".whl" in body


def decide(
    system: str, nvidia_gpu: bool, has_torch: bool, index_url: str | None, reachable: bool
) -> Decision:
    """The decision of the module docstring, from facts already gathered (pure, for tests)."""
    if has_torch:
        return Decision("keep", "torch is already installed here: kept")
    if index_url is None:
        return Decision("default", f"{INDEX_VARIABLE}=default: torch from the default index")
    if system != "Linux":
        return Decision("default", f"{system}: the default index's torch is already the CPU build")
    if nvidia_gpu:
        return Decision("default", "an NVIDIA GPU is present: the CUDA build from the default index")
    if not reachable:
        return Decision(
            "default",
            f"no NVIDIA GPU, but {index_url} cannot be reached: torch from the default index "
            "(the CUDA build, several GB; see README, Setup)",
        )
    return Decision("cpu-index", f"no NVIDIA GPU: the CPU build from {index_url}", index_url)


def torch_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``torch`` and ``torchvision`` requirements of ``pyproject.toml``, e.g. ``torch>=2.2,<=2.14.1``."""
    text = pyproject.read_text(encoding="utf-8")
    found = re.findall(r'^\s*"(torch(?:vision)?\s*[<>=!~][^"]*)"', text, flags=re.M)
    names = sorted(re.match(r"torch(?:vision)?", r).group(0) for r in found)
    if names != ["torch", "torchvision"]:
        raise SystemExit(f"install_torch: no torch/torchvision requirements found in {pyproject}")
    return [requirement.replace(" ", "") for requirement in found]


def pip_install(requirements: list[str], index_url: str | None, constraint: Path | None = None) -> int:
    command = [sys.executable, "-m", "pip", "install", "--quiet", *requirements]
    if constraint is not None:
        command += ["--constraint", str(constraint)]
    if index_url is not None:
        command += ["--index-url", index_url]
    print("install_torch:", " ".join(command), flush=True)
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--index-url",
        default=os.environ.get(INDEX_VARIABLE) or CPU_INDEX,
        help=f"the CPU index (default: ${INDEX_VARIABLE} or {CPU_INDEX}; 'default' skips it)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for it")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument(
        "--constraint",
        type=Path,
        help="a pip constraints file, e.g. requirements/oldest.txt (make test-oldest)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the decision, install nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    index_url = None if args.index_url.strip().lower() == "default" else args.index_url
    system = platform.system()
    has_torch = torch_installed()
    nvidia = system == "Linux" and has_nvidia_gpu()
    # ask the network only when the answer matters
    asks = not has_torch and index_url is not None and system == "Linux" and not nvidia
    reachable = asks and index_reachable(index_url, args.timeout)
    decision = decide(system, nvidia, has_torch, index_url, reachable)
    print(f"install_torch: {decision.reason}", flush=True)
    if args.dry_run or decision.action == "keep":
        return 0
    requirements = torch_requirements(args.pyproject)
    if decision.action == "cpu-index":
        if pip_install(requirements, decision.index_url, args.constraint) == 0:
            return 0
        print(f"install_torch: installing from {decision.index_url} failed: torch from the default index")
    return pip_install(requirements, None, args.constraint)


if __name__ == "__main__":
    sys.exit(main())
