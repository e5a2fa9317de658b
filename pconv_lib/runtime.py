"""Run-time helpers shared by every step: quick mode, device choice, seeding and CPU threads.

Quick mode (:func:`quick_mode`): ``CI``/``PCONV_QUICK`` -> quick; else ``PCONV_FULL`` -> full; else
quick without a CUDA GPU, full with one. Quick sizes run each notebook in about a minute on a
2-core CPU.

CPU threads (:func:`apply_thread_policy`, an explicit call: the notebooks' setup cell, the command
line's ``main``; importing ``pconv_lib`` changes nothing): as many threads as CPUs this process may
use (affinity, cgroup quota), one fewer per core that other programs keep busy (applied by
:func:`follow_free_cores` when the library's model or loss runs); ``PCONV_THREADS=N|auto|torch``
overrides. Why and how it was
measured: ``docs/DESIGN.md`` ("CPU threads") and ``bench/RESULTS.md``.

Torch is imported only inside functions, so ``import pconv_lib`` stays cheap.
"""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pconv_lib.util.errors import BadValue

if TYPE_CHECKING:
    import numpy as np
    import torch

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def mode_reason() -> str:
    """Why :func:`quick_mode` decides what it decides, in a few words."""
    if _flag("CI") or _flag("PCONV_QUICK"):
        name = "CI" if _flag("CI") else "PCONV_QUICK"
        return f"{name} is set"
    if _flag("PCONV_FULL"):
        return "PCONV_FULL=1 is set"
    import torch

    if torch.cuda.is_available():
        return "a CUDA GPU was found"
    return "no CUDA GPU was found"


def quick_mode() -> bool:
    """True for quick settings: ``CI``/``PCONV_QUICK`` set, or no ``PCONV_FULL`` and no CUDA GPU.

    Environment values 1/true/yes/on (case-insensitive) count as set.
    """
    if _flag("CI") or _flag("PCONV_QUICK"):
        return True
    if _flag("PCONV_FULL"):
        return False
    import torch

    return not torch.cuda.is_available()


def describe_mode() -> str:
    """One line for the first cell of every notebook: the mode, why, and how to switch."""
    if quick_mode():
        switch = (
            "unset CI / PCONV_QUICK and set PCONV_FULL=1 before starting Jupyter"
            if _flag("CI") or _flag("PCONV_QUICK")
            else "start Jupyter with PCONV_FULL=1 (full sizes take hours on a CPU; meant for a GPU)"
        )
        return (
            f"quick mode ({mode_reason()}): small sizes and few steps, about a minute a notebook. "
            f"Full mode: {switch}. {_threads_sentence()}"
        )
    switch = (
        "unset PCONV_FULL" if _flag("PCONV_FULL") else "start Jupyter with PCONV_QUICK=1"
    )
    return (
        f"full mode ({mode_reason()}): full sizes and step counts. Quick mode: {switch}. "
        f"{_threads_sentence()}"
    )


def _threads_sentence() -> str:
    line = describe_threads()
    return line[0].upper() + line[1:] + "."


def pick_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: ``prefer`` if given, else cuda, then mps, then cpu."""
    import torch

    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """:func:`pick_device`, checking that a named device exists here.

    Raises:
        ValueError: an unknown device name, or CUDA / MPS asked for where it is not available.
    """
    import torch

    if name is None or isinstance(name, torch.device):
        return pick_device(None if name is None else str(name))
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise BadValue(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps (or omit it)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadValue(
                f"device {name!r} asked for, but no CUDA GPU is available here "
                "(torch.cuda.is_available() is False): use --device cpu or leave --device out"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadValue(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered 0..{torch.cuda.device_count() - 1}"
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BadValue(f"device {name!r} asked for, but Apple MPS is not available here: use cpu")
    elif device.type != "cpu":
        raise BadValue(f"device {name!r} is not supported: use cpu, cuda, cuda:N or mps")
    return device


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``numpy.random.Generator`` for ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# CPU threads
# --------------------------------------------------------------------------------------------

#: The override: a whole number >= 1 (fixed count), ``auto`` (default) or ``torch`` (torch's defaults).
THREADS_VARIABLE = "PCONV_THREADS"
#: Seconds between two looks at how busy the other cores are.
SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class CpuBudget:
    """How many CPUs this process may really use (``count`` >= 1) and why (``reason``, a few words)."""

    count: int
    reason: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(proc_self_cgroup: Path) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 line (``0::/path``) under key ``""``."""
    paths: dict[str, str] = {}
    for line in (_read(proc_self_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _walk_up(base: Path, relative: str) -> list[Path]:
    """``base/relative`` and each parent folder up to ``base`` (a quota may be set on a parent)."""
    folders = [base]
    current = base
    for part in [p for p in relative.split("/") if p]:
        current = current / part
        folders.append(current)
    return folders[::-1]


def cgroup_cpu_quota(
    cgroup_root: str | os.PathLike = "/sys/fs/cgroup",
    proc_self_cgroup: str | os.PathLike = "/proc/self/cgroup",
) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none.

    Reads cgroup v2 ``cpu.max`` (``"150000 100000"``; ``"max 100000"`` = no quota) and cgroup v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota ``-1`` = none), in the process's own cgroup
    and its parents; the smallest quota found wins. Unreadable or malformed files count as no quota.
    """
    root = Path(cgroup_root)
    paths = _cgroup_paths(Path(proc_self_cgroup))
    quotas: list[float] = []
    for folder in _walk_up(root, paths.get("", "/")):  # v2 (unified hierarchy)
        fields = (_read(folder / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max":
            try:
                quota, period = float(fields[0]), float(fields[1])
            except ValueError:
                continue
            if quota > 0 and period > 0:
                quotas.append(quota / period)
    v1_path = paths.get("cpu", paths.get("cpuacct", "/"))
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # v1: one folder per controller (group)
        for folder in _walk_up(root / mount, v1_path):
            quota_text, period_text = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            try:
                quota, period = float(quota_text or "-1"), float(period_text or "0")
            except ValueError:
                continue
            if quota > 0 and period > 0:
                quotas.append(quota / period)
    return min(quotas) if quotas else None


def usable_cpus(
    cgroup_root: str | os.PathLike = "/sys/fs/cgroup",
    proc_self_cgroup: str | os.PathLike = "/proc/self/cgroup",
) -> CpuBudget:
    """The number of CPUs this process may really use: its CPU affinity, capped by a cgroup quota.

    A fractional quota is rounded down (1.5 CPUs -> 1: a second thread would be throttled), never
    below 1. ``os.cpu_count()`` where the platform has no affinity (macOS, Windows).
    """
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
        machine = os.cpu_count() or cpus
        reason = f"{cpus} CPUs" if cpus == machine else f"{cpus} of {machine} CPUs (CPU affinity)"
    else:
        cpus = os.cpu_count() or 1
        reason = f"{cpus} CPUs"
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    if quota is not None and quota < cpus:
        count = max(1, math.floor(quota + 1e-9))
        plural = "s" if count > 1 else ""
        return CpuBudget(count, f"{count} CPU{plural} (container quota {quota:g} CPUs of {cpus})")
    return CpuBudget(max(1, cpus), reason.replace("1 CPUs", "1 CPU"))


def thread_setting(value: str | None = None) -> int | str:
    """``PCONV_THREADS`` (or ``value``) parsed: an int >= 1, ``"auto"`` (unset/empty) or ``"torch"``.

    Raises:
        ValueError: anything else, with the accepted values.
    """
    text = (os.environ.get(THREADS_VARIABLE, "") if value is None else value).strip().lower()
    if text in ("", "auto"):
        return "auto"
    if text == "torch":
        return "torch"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1 or count > 1024:
        raise BadValue(
            f"{THREADS_VARIABLE}={text!r} is not understood: use a whole number of threads from 1 to 1024, "
            "'auto' (the default: the CPUs this process may use, fewer while other programs keep cores "
            "busy) or 'torch' (torch's own defaults)"
        )
    return count


def _cpu_times(cpus: set[int] | None, proc_stat: Path = Path("/proc/stat")) -> tuple[float, float] | None:
    """Seconds the given CPUs spent busy since boot, as (all busy time, busy time without ``nice``)."""
    text = _read(proc_stat)
    if text is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = normal = 0.0
    found = False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
            values = [float(v) for v in rest.split()]
        except ValueError:
            continue
        if cpus is not None and index not in cpus or len(values) < 8:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
        total += user + nice + system + irq + softirq + steal
        normal += user + system + irq + softirq + steal
        found = True
    return (total / ticks, normal / ticks) if found else None


class _ThreadGovernor:
    """Adapts torch's intra-op thread count to the cores other programs leave free (see module doc).

    A daemon thread measures every :data:`SAMPLE_SECONDS` how many cores the *other* processes kept
    busy (busy time of this process's CPUs in ``/proc/stat`` minus this process's own CPU time);
    :func:`follow_free_cores`, called by the library's models and loss at the start of their
    ``forward``, applies the count in the main thread, at most once per sample.
    Not used when the user made the threads sleep (``OMP_WAIT_POLICY=PASSIVE``).
    A forked child (a DataLoader worker) has no sampler, so it keeps the count it was given.
    """

    def __init__(self, budget: CpuBudget) -> None:
        self.budget = budget
        self.threads = budget.count
        self.others = 0.0  # cores kept busy by other programs, last sample
        self._seen = -1  # the sample number last applied
        self._samples = 0
        self._cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self._lock = threading.Lock()
        self._sampler: threading.Thread | None = None
        import torch

        from pconv_lib.util.torch_compat import is_compiling

        self.torch = torch
        self._is_compiling = is_compiling

    def wanted(self, others: float) -> int:
        """Threads for ``others`` busy cores: ``round(CPUs - others)`` (half rounds up), 1..CPUs."""
        return max(1, min(self.budget.count, int(self.budget.count - others + 0.5)))

    def _sample_forever(self) -> None:
        before, own_before, clock_before = _cpu_times(self._cpus), time.process_time(), time.monotonic()
        while before is not None:
            time.sleep(SAMPLE_SECONDS)
            after, own_after, clock_after = _cpu_times(self._cpus), time.process_time(), time.monotonic()
            if after is None:
                return
            busy = after[0] - before[0]  # niced programs count too: spinning threads lose to them
            own = own_after - own_before
            wall = max(clock_after - clock_before, 1e-3)
            self.others = max(0.0, (busy - own) / wall)
            self._samples += 1
            before, own_before, clock_before = after, own_after, clock_after

    def start(self) -> None:
        with self._lock:
            if self._sampler is None and self._cpus is not None and self.budget.count > 1:
                self._sampler = threading.Thread(
                    target=self._sample_forever, name="pconv-threads", daemon=True
                )
                self._sampler.start()

    def apply(self) -> None:
        """Apply the latest sample (cheap when there is nothing new)."""
        torch = self.torch
        if self._is_compiling() or self._samples == self._seen:
            return  # first: torch.compile traces nothing of this
        if threading.current_thread() is not threading.main_thread():
            return  # the count is per thread in OpenMP: only the main thread's matters here
        self._seen = self._samples
        wanted = self.wanted(self.others)
        if wanted != self.threads:
            self.threads = wanted
            torch.set_num_threads(wanted)


_governor: _ThreadGovernor | None = None
_policy_line = ""


def follow_free_cores() -> None:
    """Give torch one thread fewer per core that other programs keep busy (the latest sample).

    Called at the start of the forward of ``PartialConv2d``, ``FastPartialConv2d``, ``PConvUNet``
    and ``PConvLoss`` (the library's own modules; lesson 02 runs the layers alone); does nothing until
    :func:`apply_thread_policy` started the sampler (``auto`` setting, Linux, more than one CPU,
    threads not sleeping), and nothing new within one sample. Touches no other module.
    """
    governor = _governor
    if governor is not None:
        governor.apply()


def _waiting_sleeps() -> bool:
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def _configure_torch(setting: int | str, budget: CpuBudget, passive: bool) -> None:
    """Apply ``setting`` to torch; start the sampler that adapts the count when threads spin."""
    global _governor
    import torch

    if setting == "torch":
        return
    if isinstance(setting, int):
        torch.set_num_threads(setting)
        return
    torch.set_num_threads(budget.count)
    if not passive and budget.count > 1 and sys.platform.startswith("linux") and _governor is None:
        _governor = _ThreadGovernor(budget)
        _governor.start()


def _settings() -> tuple[int | str, CpuBudget, bool]:
    try:
        setting = thread_setting()
    except ValueError as error:
        warnings.warn(f"{error}; using 'auto'", stacklevel=3)
        setting = "auto"
    return setting, usable_cpus(), _waiting_sleeps()


def apply_thread_policy() -> str:
    """Apply the CPU thread policy (module docstring) to torch now; return :func:`describe_threads`.

    An explicit call, never a side effect of import: the notebooks' setup cell, the command line's
    ``main`` and the bench scripts make it. It imports torch, sets its thread count and, for the
    ``auto`` setting on Linux with more than one CPU, starts the ``pconv-threads`` daemon thread
    that :func:`follow_free_cores` reads. Calling it again does nothing new. An unreadable
    ``PCONV_THREADS`` gives one warning line and the default policy.
    """
    global _policy_line
    if _policy_line:
        return describe_threads()
    setting, budget, passive = _settings()
    _configure_torch(setting, budget, passive)
    _policy_line = _describe(setting, budget, passive)
    return describe_threads()


def _describe(setting: int | str, budget: CpuBudget, passive: bool) -> str:
    if setting == "torch":
        return f"threads: torch's defaults ({THREADS_VARIABLE}=torch; this process may use {budget.reason})"
    if isinstance(setting, int):
        return f"threads: {setting} ({THREADS_VARIABLE}={setting}; this process may use {budget.reason})"
    line = f"threads: {budget.count} ({budget.reason})"
    if passive:
        line += ", waiting threads sleep (OMP_WAIT_POLICY=PASSIVE)"
    elif budget.count > 1 and sys.platform.startswith("linux"):
        line += ", fewer while other programs keep cores busy"
    return line + f"; {THREADS_VARIABLE}=N to fix the count"


def describe_threads() -> str:
    """One line: the thread count the policy uses, why, and how to override it (mode line, doctor).

    Before :func:`apply_thread_policy` ran, the line says what it would do and that it was not
    applied (nothing is imported or started to say so).
    """
    if not _policy_line:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the policy's own call warns about a bad PCONV_THREADS
            line = _describe(*_settings())
        return line + " (not applied yet: pconv_lib.runtime.apply_thread_policy())"
    if _governor is not None:
        return _policy_line + f"; now {_governor.threads}"
    return _policy_line
