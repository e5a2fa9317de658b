"""How a training run stops between two steps: Ctrl-C, SIGTERM and SIGHUP are deferred to the end of
the current step (:class:`DeferredInterrupt`), so the trainer can save a consistent checkpoint.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

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
