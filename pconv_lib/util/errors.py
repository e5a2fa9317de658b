"""Every error ``pconv_lib`` raises on purpose, in one place.

A :class:`PconvError` means "what the caller gave is wrong": ``str(error)`` is one line that says
what was wrong and how to fix it, and ``error.hint`` holds the fix on its own (empty when the
message already is the fix). The command line prints it as ``error: <message>`` and exits 2.
Any other exception is a bug in the library and is reported as one (exit 1).

Each class also derives from the built-in exception a Python user would expect (``ValueError``,
``TypeError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class PconvError(Exception):
    """Bad input: the message names the problem, ``hint`` the fix (also at the end of the message)."""

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(f"{problem}: {hint}" if hint else problem)
        self.problem = problem
        self.hint = hint


class BadValue(PconvError, ValueError):
    """A value out of range, a wrong shape, a mask that is not 0/1, ..."""


class BadType(PconvError, TypeError):
    """An argument of the wrong type (a NumPy array for a tensor, an int mask, ...)."""


class BadPicture(BadValue, TypeError):
    """A picture array of the wrong dtype, shape or value range (e.g. floats in [0, 1] where uint8
    0..255 is expected); both a ``ValueError`` and a ``TypeError``, so either ``except`` catches it."""


class UsageError(BadValue):
    """A bad command-line value."""


class ImageRejected(BadValue):
    """An image file was refused before or while decoding; ``str(error)`` names the file and why."""


class ImageTooLarge(ImageRejected):
    """The image has more pixels than the limit, or needs more memory than is available."""


class UnreadableImagesError(PconvError, RuntimeError):
    """No readable photo was found after several tries (the files are corrupt or not images)."""


class DemoModelUnavailable(PconvError, RuntimeError):
    """The demo model file is missing or unreadable (e.g. a partial checkout or a Git LFS pointer)."""


class WeightsNotFoundError(PconvError, FileNotFoundError):
    """The VGG16 ImageNet weights file is not on this machine (nothing is downloaded for you)."""


class DownloadError(PconvError, OSError):
    """The server could not be reached or answered with an error."""


class ChecksumError(BadValue):
    """The downloaded file's SHA-256 differs from the expected one."""


class UnsafeArchiveError(BadValue):
    """An archive member would be written outside the destination folder (or is a device)."""


class NotAnArchiveError(DownloadError):
    """A downloaded file is not an archive (e.g. an HTML login or error page); it was deleted."""


class RunFolderInUseError(PconvError, FileExistsError):
    """The run folder already holds another run's files (checkpoints, metrics, samples)."""


class RunFolderLocked(RunFolderInUseError):
    """Another process (or another trainer in this one) is training in this run folder now."""


class DataWorkerKilled(PconvError, RuntimeError):
    """A data-loading worker process was ended by a signal (on Linux SIGKILL is usually the
    out-of-memory killer); the message names it, the checkpoint saved and the command to continue."""


class TrainingDiverged(PconvError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def builtin_name(error: BaseException) -> str:
    """The name a Python user knows the error by: ``ValueError`` for a :class:`BadValue`, ...
    (any other exception keeps its own name)."""
    if not isinstance(error, PconvError):
        return type(error).__name__
    for cls in type(error).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return type(error).__name__  # pragma: no cover - every exception derives from a builtin
