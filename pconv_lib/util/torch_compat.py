"""Two torch calls whose home moved after torch 2.2, the oldest torch the course supports (the last
with Intel Mac wheels; ``make test-oldest``). Everything else the library uses exists in 2.2.

- :func:`is_compiling`: ``torch.compiler.is_compiling`` (torch >= 2.3), else
  ``torch._dynamo.is_compiling`` (2.2).
- :func:`grad_scaler`: ``torch.amp.GradScaler("cuda", ...)`` (torch >= 2.3), else
  ``torch.cuda.amp.GradScaler`` (2.2; the same class, deprecated later).
"""

from __future__ import annotations

import torch

if hasattr(torch.compiler, "is_compiling"):
    _is_compiling = torch.compiler.is_compiling
else:  # torch 2.2
    from torch._dynamo import is_compiling as _is_compiling


def is_compiling() -> bool:
    """True while torch.compile traces the caller (a constant inside the graph), else False.

    A plain function, so that the compiler inlines it and sees the torch call by name: torch 2.2
    cannot trace its own ``is_compiling`` when it is reached through an attribute (``self.f()``).
    """
    return _is_compiling()


def grad_scaler(enabled: bool) -> torch.amp.GradScaler:
    """A CUDA loss scaler for mixed precision (``enabled=False``: a no-op scaler, any device)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch 2.2
