"""Run folders: which files a run writes there, the lock that lets one process train in a folder at a
time (``.pconv.lock``, a ``filelock`` lock that the operating system releases when its process
ends, however it ends; the holder notes its PID there for messages), what ``--overwrite`` may delete (only
files training wrote), and the files a trainer writes besides checkpoints: ``metrics.csv`` and the
sample grids.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from pconv_lib.util.errors import RunFolderInUseError, RunFolderLocked
from pconv_lib.util.files import replace_atomically, write_atomically, write_error

#: Files that mark a folder as holding a run (see :func:`check_run_folder`).
RUN_FILES = ("last.pt", "best.pt", "interrupted.pt", "metrics.csv")
#: The lock file of a run folder (``filelock``); the holder writes ``<pid> <host>`` into it.
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


def checkpoint_step(path: Path) -> int | None:
    """The ``step`` a checkpoint holds (read lazily: its tensors are memory-mapped, not loaded), or
    None when it cannot be read or holds none (a weights-only file, a damaged one)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torch raises several types for a file it cannot read; none is a step
        return None
    step = state.get("step") if isinstance(state, dict) else None
    return int(step) if isinstance(step, int) and "optimizer" in state else None


def resumable_checkpoints(run_dir: Path) -> list[tuple[Path, int]]:
    """The checkpoints of ``run_dir`` a run can continue from (``last.pt``, ``interrupted.pt``,
    ``best.pt``, ``step_*.pt``) with the step each holds, newest step first."""
    names = [run_dir / n for n in ("interrupted.pt", "last.pt", "best.pt")]
    names += sorted(run_dir.glob("step_*.pt"))
    found = [(path, checkpoint_step(path)) for path in names if path.is_file()]
    return sorted(((p, s) for p, s in found if s is not None), key=lambda item: -item[1])


def newer_state(run_dir: Path, resumed: str | os.PathLike, step: int) -> tuple[Path, int] | None:
    """The newest checkpoint of ``run_dir`` holding a later step than ``step`` (the step of
    ``resumed``, which is skipped), or None: what a resume from ``resumed`` would overwrite."""
    for path, held in resumable_checkpoints(run_dir):
        try:
            same = os.path.samefile(path, resumed)
        except OSError:
            same = False
        if held > step and not same:
            return path, held
    return None


def _resume_hint(run_dir: Path) -> str:
    """How to continue the run in ``run_dir``: its checkpoint of the latest step, or why there is none."""
    candidates = resumable_checkpoints(run_dir)
    if not candidates:
        return (
            "it has no checkpoint to continue from (it stopped before the first one): pick a new "
            "--name or pass --overwrite to delete its files"
        )
    newest = candidates[0][0]
    return f"continue it with --resume {newest}, pick a new --name, or pass --overwrite to delete its files"


#: The locks this process holds: lock file path -> (token of the RunFolder holding it, the lock).
_HELD: dict[str, tuple[str, FileLock]] = {}


def _lock_key(run_dir: Path) -> str:
    return os.path.abspath(run_dir / LOCK_NAME)


def _lock_owner(run_dir: Path) -> tuple[str, str]:
    """``(pid, host)`` the holder wrote into the lock file (for the message only: the lock itself is
    the operating system's, so this is the holder's own note, never a stale PID); ``("?", "")``
    when unreadable."""
    try:
        parts = (run_dir / LOCK_NAME).read_text().split()
    except OSError:
        parts = []
    return (parts[0], parts[1]) if len(parts) >= 2 and parts[0].isdigit() else ("?", "")


def _locked_error(run_dir: Path) -> RunFolderLocked:
    pid, host = _lock_owner(run_dir)
    here = socket.gethostname()
    where = f"process {pid}" + ("" if host in (here, "") else f" on {host}")
    who = "this process (another Trainer in it)" if pid == str(os.getpid()) and host == here else where
    return RunFolderLocked(
        f"run folder {run_dir} is in use by {who}: wait for that run to finish or stop it, or pick "
        "another --name (the lock is the operating system's: it ends with that process, even a crash)"
    )


def check_run_lock(run_dir: str | os.PathLike, token: str | None = None) -> None:
    """Refuse a run folder whose lock another process (or another trainer in this one) holds now.
    A lock file left by a process that has ended is not held (the operating system released it
    when the process ended, however it ended), so it is no obstacle and is removed.

    Raises:
        RunFolderLocked: naming the holder's PID (and host when it is another machine).
    """
    run_dir = Path(run_dir)
    held = _HELD.get(_lock_key(run_dir))
    if held is not None and token is not None and held[0] == token:
        return
    if not (run_dir / LOCK_NAME).exists():
        return
    probe = FileLock(run_dir / LOCK_NAME, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise _locked_error(run_dir) from None
    except OSError:
        return  # cannot even open it (a read-only folder): training there fails with its own message
    try:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)  # a leftover: removed while holding it
    finally:
        probe.release()


def acquire_lock(run_dir: Path, token: str) -> None:
    """Take the run folder's lock for the trainer ``token`` (``filelock``: ``flock``/``LockFileEx``,
    released by the operating system if the process dies) and note our PID and host in it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    key = _lock_key(run_dir)
    if key in _HELD:
        if _HELD[key][0] == token:
            return
        raise _locked_error(run_dir)
    lock = FileLock(run_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _locked_error(run_dir) from None
    except OSError as error:
        raise write_error(run_dir / LOCK_NAME, error) from None
    _HELD[key] = (token, lock)
    try:
        (run_dir / LOCK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    except OSError:  # e.g. a full disk: the lock holds without the note
        pass


def release_lock(run_dir: Path, token: str) -> None:
    key = _lock_key(run_dir)
    held = _HELD.get(key)
    if held is None or held[0] != token:
        return
    del _HELD[key]
    try:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)  # while still holding it: no one else's file
    except OSError:
        pass
    held[1].release()


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


def claim_run_folder(
    run_dir: Path, *, token: str, clear: bool, resumed_at: int | None, discard_later: bool = False
) -> None:
    """Make ``run_dir`` ready for a trainer's first write: ``clear`` deletes an earlier run's
    files; a new run (``resumed_at`` None) is refused a folder that holds one
    (:func:`check_run_folder`); stale ``*.tmp`` files are removed; after a resume at step
    ``resumed_at`` the metrics rows logged after it are dropped (they are logged again), and with
    ``discard_later`` the checkpoints holding a later step too (the user asked to discard them)."""
    if discard_later and resumed_at is not None:
        for path, held in resumable_checkpoints(run_dir):
            if held > resumed_at:
                path.unlink(missing_ok=True)
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


#: Where rows of ``metrics.csv`` that cannot be read (e.g. after a spreadsheet re-saved it) are kept.
METRICS_ASIDE = "metrics.unparsed.csv"


def _row_step(row: list[str]) -> int | None:
    """The step of a ``metrics.csv`` row (``1000``, or ``1000.0`` as a spreadsheet may write it)."""
    if len(row) < 2:
        return None
    try:
        value = float(row[0])
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def truncate_metrics(path: Path, step: int) -> Path | None:
    """Drop the rows of ``metrics.csv`` logged after ``step`` (they are logged again); rows that
    cannot be read (another delimiter, a header a spreadsheet rewrote, text in the step column) are
    appended, as they were, to :data:`METRICS_ASIDE` beside it, never deleted. The file is
    rewritten with the library's header. Returns the side file when rows were put there."""
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        original = handle.read()
    lines = original.splitlines(keepends=True)
    if not lines:
        return None
    header = next(csv.reader([lines[0].lstrip("\ufeff")]), [])
    kept: list[list[str]] = []
    aside = [] if header == METRICS_COLUMNS else [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        at = _row_step(row)
        if not row:
            continue
        if at is None or len(row) != len(METRICS_COLUMNS):
            aside.append(line)
        elif at <= step:
            kept.append([str(at), *row[1:]])
    text = io.StringIO()
    csv.writer(text).writerows([METRICS_COLUMNS, *kept])
    side = None
    if aside:
        side = path.with_name(METRICS_ASIDE)
        with side.open("a", encoding="utf-8") as handle:
            handle.writelines(line if line.endswith("\n") else line + "\n" for line in aside)
        warnings.warn(
            f"{len(aside)} line(s) of {path} could not be read as metrics (was it re-saved by a "
            f"spreadsheet?); they were moved, unchanged, to {side}",
            stacklevel=2,
        )
    if text.getvalue() != original:
        write_atomically(path, text.getvalue().encode())
    return side


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
        claim_run_folder(self.run_dir, token=self.token, clear=clear, resumed_at=self.resumed_at,
                         discard_later=self.overwrite and not self._clear_on_claim)
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
