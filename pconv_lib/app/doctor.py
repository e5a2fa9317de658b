"""``python -m pconv_lib doctor``: a pre-flight check of everything the course needs.

One line per check, each starting with a mark::

    ✓  works
    !  works, but something is worth knowing (does not stop the course)
    ✗  the course will not run until this is fixed; the line says how

Checks: Python version; torch, torchvision, OpenCV, scikit-image and NumPy versions and whether torch
and torchvision belong together; CPU/GPU/MPS and the mode (quick or full) the notebooks will use; the
CPU threads torch will use (``PCONV_THREADS``, container CPU quota, :mod:`pconv_lib.runtime`); free
disk; free memory; that the kernel the notebooks ask for (``python3``) starts this environment's
Python; the bundled demo model (loads?); the VGG16 ImageNet weights (only needed to train with the
perceptual and style losses); the widget front-end (ipywidgets, ipycanvas and their JupyterLab
extensions); write access to ``runs/`` (where step 4 trains). The exit code is 0 when no line is ✗,
1 otherwise, so the output can be pasted into a question and the code used in scripts.

Fix lines are for the platform doctor runs on: on an Intel Mac (no torch after 2.2.2) they name
torch 2.2.2, torchvision 0.17.2 and NumPy < 2.

This module imports the heavy packages (torch, OpenCV, ...) only inside the checks, so it still runs
and says what is wrong when one of them is missing or broken.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pconv_lib.util.files import check_writable_folder

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}
#: Plain marks for consoles that cannot print ✓/✗ (e.g. Windows cmd with a legacy code page).
ASCII_MARKS = {OK: "OK  ", WARN: "WARN", FAIL: "FAIL"}

MIN_PYTHON = (3, 10)
#: Free disk below this (bytes) fails: a training run and its checkpoints need room.
MIN_FREE_DISK = 1 * 1024**3
#: Free disk below this only warns.
LOW_FREE_DISK = 5 * 1024**3

CPU_WHEELS = "https://download.pytorch.org/whl/cpu"
#: The newest torch/torchvision pair the course supports (pyproject.toml's upper bounds).
NEWEST_PAIR = ("2.14.1", "0.29.1")
#: The oldest (requirements/oldest.txt, ``make test-oldest``): the last torch with macOS x86_64
#: (Intel Mac) wheels; its wheels were built against NumPy 1.x.
OLDEST_PAIR = ("2.2.2", "0.17.2")
#: Apple silicon on macOS 12-13: torch after 2.11 has wheels for macOS 14 and newer only.
OLD_MACOS_ARM_PAIR = ("2.11.0", "0.26.0")
#: Python releases torch 2.2.2 has wheels for (on an Intel Mac nothing newer installs).
OLDEST_PYTHONS = ((3, 10), (3, 11), (3, 12))

#: Available memory below this (bytes) fails. Measured peak of a lesson's kernel, quick mode, torch
#: 2.14.1 on Linux: notebook 04 1.7 GB, notebook 03 1.3 GB (maximum resident set size under
#: ``jupyter nbconvert --execute``); JupyterLab itself adds about 0.2 GB.
MIN_FREE_MEMORY = 2 * 1024**3
#: Below this only warns: close the browser tabs and programs you do not need.
LOW_FREE_MEMORY = 3 * 1024**3
#: The kernel the notebooks ask for (their metadata's kernelspec name).
COURSE_KERNEL = "python3"


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is ``"ok"``, ``"warn"`` or ``"fail"``; ``fix`` says what
    to do (empty when nothing needs doing)."""

    status: str
    name: str
    message: str
    fix: str = ""

    def line(self, ascii_only: bool = False) -> str:
        mark = (ASCII_MARKS if ascii_only else MARKS)[self.status]
        text = f"{mark} {self.name}: {self.message}"
        return f"{text} -> {self.fix}" if self.fix else text


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_error(module: str) -> str | None:
    """``None`` when ``module`` imports, else the error in one line."""
    try:
        importlib.import_module(module)
    except Exception as error:  # any failure to import is what the check reports
        first = str(error).splitlines()[0] if str(error) else ""
        return f"{type(error).__name__}: {first}"
    return None


def _minor(version: str) -> tuple[int, int]:
    parts = version.split("+")[0].split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def expected_torchvision(torch_version: str) -> str | None:
    """The torchvision ``major.minor`` released with ``torch_version`` (e.g. 2.14.1 -> ``0.29``).

    The pairs PyTorch publishes: torch 2.N goes with torchvision 0.(N+15) (2.0/0.15 ... 2.14/0.29),
    torch 1.N with torchvision 0.(N+1) (1.13/0.14). ``None`` for a version outside those rules.
    """
    try:
        major, minor = _minor(torch_version)
    except (ValueError, IndexError):
        return None
    if major == 2:
        return f"0.{minor + 15}"
    if major == 1 and minor >= 7:
        return f"0.{minor + 1}"
    return None


# -- checks -----------------------------------------------------------------------------------------


def intel_mac(system: str | None = None, machine: str | None = None) -> bool:
    """True on macOS with an Intel (x86_64) processor: there torch stops at 2.2.2."""
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    return system == "Darwin" and machine.lower() in ("x86_64", "amd64", "i386")


def _macos_major() -> int:
    release = platform.mac_ver()[0]
    return int(release.split(".")[0]) if release.split(".")[0].isdigit() else 0


def torch_install_command(
    system: str | None = None, machine: str | None = None, macos_major: int | None = None
) -> str:
    """A pip line that installs a matching torch/torchvision pair on this platform.

    Intel Macs get the last pair with wheels for them (and NumPy < 2, which those wheels need);
    Apple silicon on macOS 12-13 the last pair for those releases; Linux the newest pair and the CPU
    index for a machine without an NVIDIA GPU; macOS 14+ and Windows the newest pair (PyPI's build
    there is already the CPU/MPS one).
    """
    system = platform.system() if system is None else system
    if system == "Darwin" and not intel_mac(system, machine):
        macos_major = _macos_major() if macos_major is None else macos_major
        if 0 < macos_major < 14:
            torch_version, vision_version = OLD_MACOS_ARM_PAIR
            return (
                f"pip install torch=={torch_version} torchvision=={vision_version} "
                f"(macOS {macos_major}: newer torch needs macOS 14)"
            )
    if intel_mac(system, machine):
        torch_version, vision_version = OLDEST_PAIR
        return (
            f'pip install torch=={torch_version} torchvision=={vision_version} "numpy<2" '
            "(Intel Mac: the last torch with wheels for it)"
        )
    torch_version, vision_version = NEWEST_PAIR
    line = f"pip install torch=={torch_version} torchvision=={vision_version}"
    if system == "Linux":
        line += f" (CPU-only: add --index-url {CPU_WHEELS})"
    return line


def check_python() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(
            FAIL,
            "Python",
            f"{version} is too old (the course needs 3.10 or newer)",
            "install Python 3.11 and create the virtual environment with it",
        )
    if intel_mac() and sys.version_info[:2] not in OLDEST_PYTHONS:
        return Check(
            FAIL,
            "Python",
            f"{version} on an Intel Mac: torch {OLDEST_PAIR[0]}, the last torch for Intel Macs, has "
            "wheels for Python 3.10-3.12 only",
            "install Python 3.11 and create the virtual environment with it",
        )
    return Check(OK, "Python", f"{version} ({sys.executable})")


def needs_numpy_1(torch_version: str) -> bool:
    """True for a torch built against NumPy 1.x (before 2.3), which cannot use NumPy 2."""
    try:
        return _minor(torch_version) < (2, 3)
    except (ValueError, IndexError):
        return False


def check_torch() -> Check:
    """torch and torchvision import, belong together (known pairs) and torchvision's operators load."""
    fix_pair = f"install them together, e.g. {torch_install_command()}"
    for module in ("torch", "torchvision"):
        error = _import_error(module)
        if error is not None:
            return Check(FAIL, "torch/torchvision", f"import {module} failed ({error})", fix_pair)
    torch_version = _version("torch") or importlib.import_module("torch").__version__
    vision_version = _version("torchvision") or importlib.import_module("torchvision").__version__
    found = f"torch {torch_version}, torchvision {vision_version}"
    expected = expected_torchvision(torch_version)
    if expected is not None and ".".join(map(str, _minor(vision_version))) != expected:
        return Check(
            FAIL,
            "torch/torchvision",
            f"{found} do not match (torch {'.'.join(map(str, _minor(torch_version)))} "
            f"goes with torchvision {expected}.x)",
            fix_pair,
        )
    try:  # the symptom of a mismatch: "operator torchvision::nms does not exist"
        import torch
        import torchvision

        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except Exception as error:
        return Check(FAIL, "torch/torchvision", f"{found}: torchvision's operators fail ({error})", fix_pair)
    numpy_version = _version("numpy")
    if numpy_version and needs_numpy_1(torch_version) and _minor(numpy_version) >= (2, 0):
        return Check(
            FAIL,
            "torch/torchvision",
            f"{found} were built for NumPy 1.x, but NumPy {numpy_version} is installed "
            "(tensors and arrays will not convert)",
            'pip install "numpy<2"',
        )
    if expected is None:
        return Check(WARN, "torch/torchvision", f"{found} (pair not in the known table, but it works)")
    return Check(OK, "torch/torchvision", f"{found} (a matching pair)")


def check_opencv() -> Check:
    error = _import_error("cv2")
    both = _version("opencv-python") is not None and _version("opencv-python-headless") is not None
    fix = "pip uninstall -y opencv-python && pip install --force-reinstall opencv-python-headless"
    if error is not None:
        if "libGL" in error or both:
            return Check(FAIL, "OpenCV", f"import cv2 failed ({error})", fix)
        return Check(FAIL, "OpenCV", f"import cv2 failed ({error})", "pip install opencv-python-headless")
    import cv2

    if both:
        return Check(
            WARN,
            "OpenCV",
            f"{cv2.__version__}, but opencv-python and opencv-python-headless are both installed "
            "(they overwrite each other; the GUI build needs libGL)",
            fix,
        )
    return Check(OK, "OpenCV", cv2.__version__)


def check_scientific() -> Check:
    """NumPy, scikit-image (sample photos, biharmonic baseline) and matplotlib import."""
    versions = []
    for module, distribution in (
        ("numpy", "numpy"),
        ("skimage", "scikit-image"),
        ("matplotlib", "matplotlib"),
    ):
        error = _import_error(module)
        if error is not None:
            return Check(
                FAIL, "NumPy/scikit-image", f"import {module} failed ({error})", f"pip install {distribution}"
            )
        versions.append(f"{distribution} {_version(distribution) or '?'}")
    return Check(OK, "NumPy/scikit-image", ", ".join(versions))


def check_device() -> Check:
    """The device the notebooks pick and the mode (quick or full) they will run in."""
    try:
        import torch

        from pconv_lib.runtime import describe_mode, pick_device, quick_mode
    except Exception as error:
        return Check(
            FAIL, "device", f"cannot import torch ({type(error).__name__})", "fix torch first (above)"
        )
    device = pick_device()
    if device.type == "cuda":
        what = f"CUDA GPU {torch.cuda.get_device_name(0)}"
    elif device.type == "mps":
        what = "Apple GPU (MPS)"
    else:
        what = f"CPU only ({os.cpu_count()} cores)"
    mode = describe_mode().split(" Threads: ")[0]  # the threads have a line of their own
    line = f"{what}; notebooks: {mode}"
    if device.type != "cuda" and not quick_mode():
        return Check(WARN, "device", line, "full sizes on a CPU take hours: unset PCONV_FULL for a workshop")
    return Check(OK, "device", line)


def check_threads() -> Check:
    """The CPU threads the library gives torch: the CPUs this process may use, the override."""
    from pconv_lib.runtime import THREADS_VARIABLE, describe_threads, thread_setting, usable_cpus

    try:
        thread_setting()
    except ValueError as error:
        return Check(WARN, "CPU threads", f"{error}; the default is used",
                     f"unset {THREADS_VARIABLE} or set it to a whole number, auto or torch")
    line = describe_threads().removeprefix("threads: ")
    budget = usable_cpus()
    if "quota" in budget.reason:
        return Check(OK, "CPU threads", f"{line} (a container CPU quota: torch alone would start one "
                     f"thread per core, {os.cpu_count()})")
    return Check(OK, "CPU threads", line)


def check_disk(path: str | os.PathLike = ".") -> Check:
    """Free space on the disk that holds ``path`` (or its nearest existing parent)."""
    where = Path(path).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    text = f"{free / 1024**3:.1f} GB free in {where}"
    if free < MIN_FREE_DISK:
        return Check(FAIL, "disk", text, "free at least 1 GB (checkpoints and runs/ need room)")
    if free < LOW_FREE_DISK:
        return Check(WARN, "disk", text, "enough for the course; training on your own photos needs more")
    return Check(OK, "disk", text)


def check_demo_model() -> Check:
    try:
        from pconv_lib.pretrained import demo_model
        from pconv_lib.runs.checkpoints import DEMO_CHECKPOINT
    except Exception as error:
        return Check(FAIL, "demo model", f"pconv_lib.pretrained does not import ({type(error).__name__})")
    try:
        model = demo_model()
    except Exception as error:  # DemoModelUnavailable's message says how to get the file back
        return Check(FAIL, "demo model", str(error))
    size = DEMO_CHECKPOINT.stat().st_size / 1024**2
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    return Check(
        OK, "demo model", f"{DEMO_CHECKPOINT.name} loads ({size:.0f} MB, {parameters:.2f} M parameters)"
    )


def check_vgg() -> Check:
    """VGG16 ImageNet weights: only training with the perceptual/style loss needs them (a warning)."""
    try:
        from pconv_lib.losses import VGG16_IMAGENET_FILENAME, vgg16_weights_path
    except Exception as error:
        return Check(WARN, "VGG16 weights", f"pconv_lib.losses does not import ({type(error).__name__})")
    path = vgg16_weights_path()
    if path.is_file():
        return Check(OK, "VGG16 weights", f"{path} ({path.stat().st_size / 1024**2:.0f} MB)")
    return Check(
        WARN,
        "VGG16 weights",
        f"not found at {path} (the notebooks do not need them; training with the perceptual and "
        "style losses does)",
        'on a machine with internet run python -c "import torchvision; '
        "torchvision.models.vgg16(weights='IMAGENET1K_V1')\", then copy "
        f"{VGG16_IMAGENET_FILENAME} (528 MB) to {path}, or pass --vgg-path FILE",
    )


def _labextension_dirs() -> list[Path]:
    try:
        from jupyter_core.paths import jupyter_path

        roots = [Path(p) for p in jupyter_path("labextensions")]
    except Exception:
        roots = []
    roots.append(Path(sys.prefix) / "share" / "jupyter" / "labextensions")
    return roots


def find_labextension(name: str) -> Path | None:
    """The folder of the installed (prebuilt) JupyterLab extension ``name``, or ``None``."""
    for root in _labextension_dirs():
        if (root / name / "package.json").is_file():
            return root / name
    return None


def check_widgets() -> Check:
    """ipywidgets and ipycanvas (step 5's drawing widget) and their JupyterLab front-end."""
    fix = "pip install ipywidgets ipycanvas in the environment that runs JupyterLab, then restart it"
    for module in ("ipywidgets", "ipycanvas"):
        error = _import_error(module)
        if error is not None:
            return Check(FAIL, "widgets", f"import {module} failed ({error})", fix)
    found = f"ipywidgets {_version('ipywidgets') or '?'}, ipycanvas {_version('ipycanvas') or '?'}"
    missing = [
        name
        for name in ("@jupyter-widgets/jupyterlab-manager", "ipycanvas")
        if find_labextension(name) is None
    ]
    if missing:
        return Check(
            WARN,
            "widgets",
            f"{found}; JupyterLab extension(s) not found here: {', '.join(missing)} (the drawing widget "
            "shows as text in this JupyterLab; VS Code and Colab bring their own)",
            fix,
        )
    return Check(OK, "widgets", f"{found}; JupyterLab extensions installed")


def check_runs(path: str | os.PathLike = "runs") -> Check:
    """Step 4 writes checkpoints to ``runs/<name>/``: the folder (or its parent) must be writable."""
    target = Path(path)
    try:
        check_writable_folder(target, "runs/ folder")
    except NotADirectoryError:
        return Check(
            FAIL, "runs/", f"{target.resolve()} exists but is not a folder", f"remove or rename {target}"
        )
    except PermissionError as error:
        return Check(
            FAIL,
            "runs/",
            f"cannot write in {target.resolve()}: {error}",
            "run from a folder you own (e.g. your clone of the course) or fix its permissions",
        )
    state = "writable" if target.is_dir() else "will be created (parent writable)"
    return Check(OK, "runs/", f"{target.resolve()} {state}")


def check_memory(available: int | None = None) -> Check:
    """Memory available now (Linux ``MemAvailable``, a container's limit): a lesson's kernel peaks at
    about 1.7 GB (notebook 04), JupyterLab adds some. ``available`` replaces the reading (tests)."""
    if available is None:
        from pconv_lib.util.files import available_memory

        available = available_memory()
    if available is None:
        return Check(
            WARN,
            "memory",
            "free memory cannot be read on this system (the lessons need about 2 GB free)",
            "close programs you do not need before the workshop",
        )
    text = f"{available / 1024**3:.1f} GB available"
    if available < MIN_FREE_MEMORY:
        return Check(
            FAIL,
            "memory",
            f"{text}; the lessons need about 2 GB (notebook 04's kernel peaks at 1.7 GB)",
            "close other programs and browser tabs, then run doctor again; or use Colab",
        )
    if available < LOW_FREE_MEMORY:
        return Check(
            WARN, "memory", f"{text}: enough, but tight", "close programs and browser tabs you do not need"
        )
    return Check(OK, "memory", text)


def _same_environment(kernel_python: str) -> bool:
    """True when ``kernel_python`` is this environment's Python. Links are not followed: a virtual
    environment's ``python`` links to its base Python, which lacks the course's packages."""
    if "/" not in kernel_python and os.sep not in kernel_python:
        return True  # a bare "python": jupyter_client starts the Python that runs Jupyter

    def norm(path: str | os.PathLike) -> str:
        return os.path.normcase(os.path.abspath(path))

    folder = Path(kernel_python).parent  # bin/ (Scripts\ on Windows), or a conda prefix on Windows
    same_file = norm(kernel_python) == norm(sys.executable)
    return same_file or norm(sys.prefix) in (norm(folder), norm(folder.parent))


def kernel_install_command(user: bool = False) -> str:
    """The line that makes this environment's Python the course kernel (``python3``)."""
    where = "--user" if user else "--sys-prefix"
    return (
        f'"{sys.executable}" -m ipykernel install {where} --name {COURSE_KERNEL} '
        '--display-name "Python 3 (pconv-course)"'
    )


def check_kernel() -> Check:
    """The notebooks ask for the kernel ``python3``: the spec Jupyter finds under that name must
    start this environment's Python, else the lessons run (and fail) in another one."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from jupyter_core.paths import jupyter_data_dir
    except Exception as error:
        missing = f"jupyter_client does not import ({type(error).__name__})"
        return Check(FAIL, "kernel", missing, "pip install jupyterlab")
    try:
        spec = KernelSpecManager().get_kernel_spec(COURSE_KERNEL)
    except NoSuchKernel:
        return Check(FAIL, "kernel", f"no kernel named {COURSE_KERNEL}", kernel_install_command())
    python = spec.argv[0] if spec.argv else ""
    in_user_dir = Path(spec.resource_dir).resolve().is_relative_to(Path(jupyter_data_dir()).resolve())
    where = f"{COURSE_KERNEL} ({spec.resource_dir})"
    if not _same_environment(python):
        return Check(
            FAIL,
            "kernel",
            f"{where} starts {python}, not this environment's Python {sys.executable}: the notebooks "
            "would run without the course's packages",
            kernel_install_command(user=in_user_dir),
        )
    if not Path(python).is_absolute() and shutil.which(python) is None:
        return Check(FAIL, "kernel", f"{where} starts {python}, which is not found", kernel_install_command())
    return Check(OK, "kernel", f"{where} starts this environment's Python")


def default_checks(runs: str | os.PathLike = "runs") -> list[tuple[str, Callable[[], Check]]]:
    """The checks in report order, as ``(name, function)``; ``runs`` is where step 4 trains."""
    module = sys.modules[__name__]  # looked up at call time, so tests can replace a check
    return [
        ("Python", module.check_python),
        ("torch/torchvision", module.check_torch),
        ("OpenCV", module.check_opencv),
        ("NumPy/scikit-image", module.check_scientific),
        ("device", module.check_device),
        ("CPU threads", module.check_threads),
        ("disk", lambda: module.check_disk(Path(runs).resolve().parent)),
        ("memory", module.check_memory),
        ("kernel", module.check_kernel),
        ("demo model", module.check_demo_model),
        ("VGG16 weights", module.check_vgg),
        ("widgets", module.check_widgets),
        ("runs/", lambda: module.check_runs(runs)),
    ]


def run_checks(checks: list[tuple[str, Callable[[], Check]]] | None = None) -> list[Check]:
    """Run every check; a check that crashes becomes a ✗ line instead of a traceback."""
    results = []
    for name, check in checks if checks is not None else default_checks():
        try:
            results.append(check())
        except Exception as error:
            results.append(Check(FAIL, name, f"the check itself failed ({type(error).__name__}: {error})"))
    return results


def _can_print_marks(stream) -> bool:
    encoding = getattr(stream, "encoding", None)
    if encoding is None:  # an in-memory text stream holds any character
        return True
    try:
        "".join(MARKS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def report(results: list[Check], stream=None) -> bool:
    """Print one line per check and a verdict; True when the course will run (no ✗)."""
    stream = stream if stream is not None else sys.stdout
    ascii_only = not _can_print_marks(stream)
    for result in results:
        print(result.line(ascii_only), file=stream)
    failures = [r for r in results if r.status == FAIL]
    if failures:
        print(
            f"{len(failures)} problem(s): fix the {'FAIL' if ascii_only else '✗'} lines above, then run "
            "python -m pconv_lib doctor again.",
            file=stream,
        )
        return False
    warnings = sum(r.status == WARN for r in results)
    extra = f" ({warnings} note(s) above, none blocking)" if warnings else ""
    print(f"The course will run here{extra}.", file=stream)
    return True


def show(runs: str | os.PathLike = "runs") -> None:
    """Print the report in a notebook cell (returns nothing, so the cell shows only the lines)."""
    report(run_checks(default_checks(runs)))


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="python -m pconv_lib doctor", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="where training runs go (default: runs)"
    )
    return parser


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    """Run the checks and print the report; 0 when the course will run, 1 otherwise."""
    args = args if args is not None else build_parser().parse_args(argv)
    return 0 if report(run_checks(default_checks(args.runs))) else 1
