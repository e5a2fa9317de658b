"""Run folders: which files a run writes there, the lock that lets one process train in a folder at a
time (``.pconv.lock`` with its PID; stale locks detected), what ``--overwrite`` may delete (only
files training wrote), and the files a trainer writes besides checkpoints: ``metrics.csv`` and the
sample grids.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pconv_lib.util.errors import RunFolderInUseError, RunFolderLocked
from pconv_lib.util.files import replace_atomically, write_atomically, write_error

#: Files that mark a folder as holding a run (see :func:`check_run_folder`).
RUN_FILES = ("last.pt", "best.pt", "interrupted.pt", "metrics.csv")
#: The lock file of a run folder: ``<pid> <host> <token>`` of the process training in it.
LOCK_NAME = ".pconv.lock"
#: The columns of ``metrics.csv``: one row per logged step, ``kind`` "train" or "val".
METRICS_COLUMNS = ["step", "kind", "total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"]


def _project_files(run_dir: Path) -> list[Path]:
    """Every file (never a folder) in ``run_dir`` that a Trainer writes: checkpoints, metrics,
    their temporary files, sample grids ``samples/step_*.png`` and TensorBoard event files."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).is_file()]
    found += sorted(run_dir.glob("step_*.pt"))
    names = [*RUN_FILES, *(p.name for p in run_dir.glob("step_*.pt"))]
    found += [run_dir / f"{n}.tmp" for n in dict.fromkeys(names) if (run_dir / f"{n}.tmp").is_file()]
    found += sorted(run_dir.glob("step_*.pt.tmp"))
    found += sorted(p for p in run_dir.glob("samples/step_*.png") if p.is_file())
    found += sorted(p for p in run_dir.glob("samples/step_*.png.tmp") if p.is_file())
    found += sorted(p for p in run_dir.glob("tensorboard/events.out.tfevents.*") if p.is_file())
    return list(dict.fromkeys(found))


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files of a previous run in ``run_dir`` (only files this library writes; a user's own
    files in the folder are neither counted nor touched)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return _project_files(run_dir)


def _resume_hint(run_dir: Path) -> str:
    """How to continue the run in ``run_dir``: its newest checkpoint, or why there is none."""
    candidates = [run_dir / n for n in ("interrupted.pt", "last.pt") if (run_dir / n).is_file()]
    if not candidates:
        return (
            "it has no checkpoint to continue from (it stopped before the first one): pick a new "
            "--name or pass --overwrite to delete its files"
        )
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    return f"continue it with --resume {newest}, pick a new --name, or pass --overwrite to delete its files"


def _lock_owner(run_dir: Path) -> tuple[int, str, str] | None:
    """``(pid, host, token)`` from the run folder's lock file, or None when there is none (or it
    is unreadable: a lock being written this instant is treated as held by an unknown process)."""
    try:
        parts = (run_dir / LOCK_NAME).read_text().split()
    except FileNotFoundError:
        return None
    except OSError:
        return (0, "", "")
    if len(parts) < 3 or not parts[0].isdigit():
        return (0, "", "")
    return int(parts[0]), parts[1], parts[2]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (never signals or stops it)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)  # signal 0: an existence check only
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def check_run_lock(run_dir: str | os.PathLike, token: str | None = None) -> None:
    """Refuse a run folder that another live process is training in; remove a stale lock (its
    process has ended on this machine).

    Raises:
        RunFolderLocked: naming the owner's PID (and host when it is another machine).
    """
    run_dir = Path(run_dir)
    owner = _lock_owner(run_dir)
    if owner is None or (token is not None and owner[2] == token):
        return
    pid, host, _ = owner
    here = socket.gethostname()
    if pid and host == here and not _pid_alive(pid):
        (run_dir / LOCK_NAME).unlink(missing_ok=True)  # stale: that process is gone
        return
    if not pid and _age(run_dir / LOCK_NAME) > 10:  # unreadable and not being written this instant
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
        return
    where = f"process {pid}" + ("" if host == here else f" on {host}")
    who = "this process (another Trainer in it)" if pid == os.getpid() and host == here else where
    raise RunFolderLocked(
        f"run folder {run_dir} is in use by {who}: wait for that run to finish or stop it"
        + (f" (kill {pid})" if host == here and pid != os.getpid() else "")
        + f", or pick another --name; if no such run is alive, delete {run_dir / LOCK_NAME}"
    )


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified (0 when it cannot be read)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def acquire_lock(run_dir: Path, token: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        check_run_lock(run_dir, token)
        try:
            fd = os.open(run_dir / LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _lock_owner(run_dir) and _lock_owner(run_dir)[2] == token:  # type: ignore[index]
                return
            continue  # raced with another process: check again
        except OSError as error:
            raise write_error(run_dir / LOCK_NAME, error) from None
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()} {socket.gethostname()} {token}\n")
        except OSError as error:  # e.g. a full disk: leave no empty lock behind
            (run_dir / LOCK_NAME).unlink(missing_ok=True)
            raise write_error(run_dir / LOCK_NAME, error) from None
        return
    check_run_lock(run_dir, token)


def release_lock(run_dir: Path, token: str) -> None:
    owner = _lock_owner(run_dir)
    if owner is not None and owner[2] == token:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)


def check_run_folder(
    run_dir: str | os.PathLike,
    *,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    token: str | None = None,
) -> None:
    """Refuse to start a new run in a folder that already holds one.

    Resuming a checkpoint that lies in ``run_dir`` continues that run and is allowed; so is
    ``overwrite=True`` (the old run's files are then deleted by :func:`clear_run_folder`).

    Raises:
        RunFolderInUseError: naming the folder and the three ways out.
    """
    run_dir = Path(run_dir)
    check_run_lock(run_dir, token)  # ``token``: the caller's own lock, which is no obstacle
    # what a crash can leave (temporary or empty files) holds no run and never blocks a new one
    held = [p for p in run_files(run_dir) if p.suffix != ".tmp" and p.stat().st_size > 0]
    if overwrite or not held:
        return
    if resume is not None and is_inside(resume, run_dir):
        return
    existing = ", ".join(p.relative_to(run_dir).as_posix() for p in held[:4])
    raise RunFolderInUseError(
        f"run folder {run_dir} already holds a run ({existing}); {_resume_hint(run_dir)} "
        "(API: Trainer(..., overwrite=True) or trainer.resume(path))"
    )


def clear_run_folder(run_dir: str | os.PathLike) -> list[Path]:
    """Delete a previous run's files from ``run_dir`` - only files this library writes
    (:func:`run_files`); a user's own files stay, and ``samples/`` and ``tensorboard/`` are
    removed only when nothing else is left in them. Returns what was removed."""
    run_dir = Path(run_dir)
    removed = run_files(run_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    for folder in (run_dir / "samples", run_dir / "tensorboard"):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
    return removed


def is_inside(path: str | os.PathLike, folder: Path) -> bool:
    try:
        return Path(path).resolve().parent == folder.resolve()
    except OSError:
        return False


class RunLock:
    """A trainer's hold on its run folder's lock, re-entrant: the outermost ``with`` takes the
    lock (:func:`acquire_lock`, refusing a folder another live trainer holds) and releases it.
    Disabled (``enabled=False``, ranks > 0) it does nothing."""

    def __init__(self, run_dir: Path, token: str, enabled: bool = True) -> None:
        self.run_dir, self.token, self.enabled, self.depth = run_dir, token, enabled, 0

    def __enter__(self) -> RunLock:
        if self.enabled and self.depth == 0:
            acquire_lock(self.run_dir, self.token)
        self.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.enabled and self.depth == 0:
            release_lock(self.run_dir, self.token)


def claim_run_folder(run_dir: Path, *, token: str, clear: bool, resumed_at: int | None) -> None:
    """Make ``run_dir`` ready for a trainer's first write: ``clear`` deletes an earlier run's
    files; a new run (``resumed_at`` None) is refused a folder that holds one
    (:func:`check_run_folder`); stale ``*.tmp`` files are removed; after a resume at step
    ``resumed_at`` the metrics rows logged after it are dropped (they are logged again)."""
    if clear:
        clear_run_folder(run_dir)
    elif resumed_at is None:
        check_run_folder(run_dir, token=token)
        clear_run_folder(run_dir)  # only leftovers remain (temporary or empty files)
    for stale in run_files(run_dir):  # only the temporary files this library writes
        if stale.suffix == ".tmp":
            stale.unlink(missing_ok=True)
    if resumed_at is not None:
        truncate_metrics(run_dir / "metrics.csv", resumed_at)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows of ``metrics.csv`` logged after ``step`` (the header stays)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) != len(rows):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as handle:
            csv.writer(handle).writerows(kept)
        os.replace(tmp, path)


def append_metrics_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to ``metrics.csv`` (:data:`METRICS_COLUMNS`): the file is created whole
    (temporary file + rename) and a failed append is cut back, so a full disk never leaves a
    broken or empty file."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
    if not path.is_file() or path.stat().st_size == 0:
        writer.writeheader()
        writer.writerow(row)
        write_atomically(path, text.getvalue().encode())
        return
    writer.writerow(row)
    size = path.stat().st_size
    try:
        with path.open("a", newline="") as handle:
            handle.write(text.getvalue())
    except OSError as error:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise write_error(path, error) from None


def write_sample_grid(path: Path, image: torch.Tensor, mask: torch.Tensor, output: torch.Tensor) -> Path:
    """Save a PNG grid of a batch (N, C, H, W) in [0, 1], one column per image, rows: input (holes
    white), mask, output, composite, ground truth; written atomically."""
    from torchvision.utils import save_image

    output = output.float().clamp(0, 1)
    comp = mask * image + (1 - mask) * output
    shown = image * mask + (1 - mask)
    rows = torch.cat([shown, mask.expand_as(image), output, comp, image], dim=0).cpu()
    grid = dict(format="png", nrow=image.shape[0], padding=2, pad_value=1.0)
    return replace_atomically(path, lambda tmp: save_image(rows, tmp, **grid))


class RunFolder:
    """What one trainer writes into its run folder ``run_dir``: checkpoints, ``metrics.csv``,
    TensorBoard events (``tensorboard/``) and sample grids, each under the folder's lock
    (:attr:`lock`, re-entrant). With ``enabled=False`` (ranks > 0) nothing is written.

    Before the first write the folder is claimed (:func:`claim_run_folder`): an earlier run's
    files are refused, or deleted with ``overwrite``; after :meth:`resumed` the rows and events
    logged after the checkpoint's step are dropped (they are logged again).
    """

    def __init__(self, run_dir: Path, *, overwrite: bool = False, enabled: bool = True) -> None:
        self.run_dir, self.overwrite, self.enabled = run_dir, overwrite, enabled
        self.token = secrets.token_hex(8)  # names this trainer in the lock file
        self.lock = RunLock(run_dir, self.token, enabled)
        self.resumed_at: int | None = None  # the step of the checkpoint this run continues
        self._claimed = False  # True once the folder is claimed
        self._clear_on_claim = False
        self._writer: Any = None  # the TensorBoard SummaryWriter, opened at the first row

    def resumed(self, step: int, outside: bool) -> None:
        """The trainer continues a checkpoint of step ``step`` (``outside``: not from this folder;
        with ``overwrite`` this folder's earlier files are then deleted)."""
        self.resumed_at, self._clear_on_claim, self._claimed = step, self.overwrite and outside, False

    def claim(self) -> None:
        """Before the first write: :func:`claim_run_folder` (once)."""
        if self._claimed or not self.enabled:
            return
        clear = self.overwrite and (self.resumed_at is None or self._clear_on_claim)
        claim_run_folder(self.run_dir, token=self.token, clear=clear, resumed_at=self.resumed_at)
        self._claimed = True

    def write(self, name: str, write: Callable[[Path], Any]) -> Any:
        """Claim the folder and call ``write(run_dir / name)`` under the lock; returns its result."""
        if not self.enabled:
            return None
        with self.lock:
            self.claim()
            return write(self.run_dir / name)

    def log(self, step: int, kind: str, values: dict[str, float]) -> None:
        """Append a row to ``metrics.csv`` and each value to TensorBoard as ``<kind>/<term>``."""
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, **values}
        self.write("metrics.csv", lambda path: append_metrics_row(path, row))
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if self.resumed_at is None else self.resumed_at + 1
            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        for key, value in values.items():
            self._writer.add_scalar(f"{kind}/{key}", value, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
