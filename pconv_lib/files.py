"""Small file-system checks shared by training, the command line and ``doctor``.

This module imports nothing heavy (no torch), so ``python -m pconv_lib doctor`` can use it even
when PyTorch is missing or broken.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_writable_folder"]


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Check (by writing a temporary file) that ``folder`` exists or can be created and is writable.

    Nothing is created when ``folder`` does not exist yet: its nearest existing parent is tested.

    Raises:
        NotADirectoryError: ``folder`` or a parent is a file.
        PermissionError: it cannot be written (permissions, read-only file system); the message
            names the path.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"{what} {folder}: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise PermissionError(
            f"{what} {folder} is not writable ({error.strerror or error}, tested in {probe}); "
            "choose a writable folder (read-only file system or missing permissions)"
        ) from None
    return folder
