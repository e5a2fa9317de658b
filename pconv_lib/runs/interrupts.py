"""How a training run stops between two steps: Ctrl-C, SIGTERM and SIGHUP are deferred to the end of
the current step (:class:`DeferredInterrupt`), so the trainer can save a consistent checkpoint and
raise :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The signals that stop training between two steps with a checkpoint (SIGHUP: a closed
#: terminal; SIGTERM: schedulers, ``docker stop``, Colab; SIGINT: Ctrl-C).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def signal_name(signum: int) -> str:
    """``"SIGINT (Ctrl-C)"``, ``"SIGTERM"``, ``"SIGHUP (terminal closed)"``: for messages."""
    name = signal.Signals(signum).name
    return {"SIGINT": "SIGINT (Ctrl-C)", "SIGHUP": "SIGHUP (terminal closed)"}.get(name, name)


def worker_ignores_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the trainer's DataLoaders: workers ignore SIGINT/SIGTERM/SIGHUP.

    A terminal, ``docker stop`` or a scheduler may signal the whole process group; a worker
    killed by it would surface as a "DataLoader worker is killed" error at any point of a step.
    The main process alone decides: it finishes the step, saves ``interrupted.pt`` and shuts the
    workers down (they also exit when the main process dies: PyTorch's parent watchdog).
    """
    del worker_id
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class DeferredInterrupt:
    """While active (main thread only), the first SIGINT (Ctrl-C), SIGTERM or SIGHUP only sets
    ``requested`` (and ``signum``): the training loop finishes its step and stops between two
    steps. A second one interrupts at once. A SIGTERM/SIGHUP that the process was started to
    ignore (``nohup``) stays ignored.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.requested, self.signum = enabled, False, int(signal.SIGINT)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredInterrupt:
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            self.enabled = False
            return self
        try:
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if signum != signal.SIGINT and previous == signal.SIG_IGN:
                    continue
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main interpreter
            self._restore()
            self.enabled = False
        return self

    def until_requested(self, items: Iterator[T]) -> Iterator[T]:
        """The items of ``items`` until it ends or a stop is requested (also when a DataLoader
        worker, killed by the same Ctrl-C in a terminal, makes ``next`` raise RuntimeError)."""
        while not self.requested:
            try:
                item = next(items)
            except StopIteration:
                return
            except RuntimeError:
                if self.requested:
                    return
                raise
            if self.requested:
                return
            yield item

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested, self.signum = True, int(signum)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            target = previous if previous is not None else signal.SIG_DFL
            if signum == signal.SIGINT and previous is None:
                target = signal.default_int_handler
            signal.signal(signum, target)
        self._previous = {}

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._restore()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's interrupt), SIGTERM or SIGHUP stopped :meth:`Trainer.fit` between
    two steps.

    ``str(error)`` is one line: the signal, the step reached and the consistent checkpoint saved.
    Attributes: ``step``, ``path`` (the checkpoint to resume from, or None) and ``signum`` (the
    signal: ``signal.SIGINT``, ``SIGTERM`` or ``SIGHUP``; the command line exits with 128 + it).
    """

    def __init__(self, message: str, step: int, path: Path | None, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.step, self.path, self.signum = step, path, int(signum)

    @classmethod
    def between_steps(cls, step: int, target: int, path: Path | None, signum: int) -> TrainingInterrupted:
        """Stopped after step ``step`` of ``target``; ``path``: the checkpoint saved (None on rank > 0)."""
        where = (
            f"saved {path}; continue with the same command plus --resume {path} (without --overwrite)"
            if path is not None
            else "rank > 0"
        )
        message = f"interrupted by {signal_name(signum)} at step {step} of {target}: {where}"
        return cls(message, step, path, signum)

    @classmethod
    def mid_step(cls, step: int, last: Path, signum: int) -> TrainingInterrupted:
        """A second signal in the middle of step ``step + 1``: that state is half-updated, nothing is
        saved; ``last``: the run's ``last.pt`` (named when it exists)."""
        hint = (
            f"continue with the same command plus --resume {last}"
            if last.is_file()
            else "no checkpoint had been written yet: rerun with --overwrite"
        )
        message = f"interrupted in the middle of step {step + 1}: that state is half-updated, so nothing"
        return cls(f"{message} was saved; {hint}", step, None, signum)
