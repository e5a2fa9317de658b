"""What every check shares: calling the learner's function, the contract checks, the messages.

A check verifies the contract first (a tensor, not NumPy; dtype and device; inputs unchanged),
then the values. A hint is given only when it is confirmed: the suspected mistake is recomputed
(or the failing call reproduced) and matches; otherwise the message names the first mismatch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from pconv_lib.util.errors import builtin_name

#: The first character of a passed check's line, and of a "not implemented yet" line.
PASS = "\u2705"
TODO = "\u23f3"


class ExerciseCheckError(AssertionError):
    """The learner's function runs but gives a wrong result; the message says what differs."""


def _call(function: Callable, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Call the learner's function; (False, None) if it is still a stub."""
    try:
        return True, function(*args, **kwargs)
    except NotImplementedError:
        return False, None


def _todo(name: str) -> bool:
    print(f"{TODO} {name} is not implemented yet: replace the `raise NotImplementedError` line.")
    return False


def _passed(message: str) -> bool:
    print(f"{PASS} {message}")
    return True


def _fail(message: str) -> None:
    raise ExerciseCheckError(message)


def _first_line(error: BaseException, limit: int = 300) -> str:
    """``"TypeError: what it says"``, first line only, at most ``limit`` characters."""
    return f"{builtin_name(error)}: {error}".splitlines()[0][:limit].rstrip(".")


def _guarded(check: Callable[..., bool]) -> Callable[..., bool]:
    """Make a check turn any unexpected exception into an :class:`ExerciseCheckError`.

    The contract checks below catch wrong types, shapes and dtypes first; this is the net under
    them, so that whatever the learner's function returns or raises, the check answers with one
    message and never fails inside its own code with a bare AttributeError or TypeError.
    """

    @functools.wraps(check)
    def guarded(*args: Any, **kwargs: Any) -> bool:
        try:
            return check(*args, **kwargs)
        except ExerciseCheckError:
            raise
        except Exception as error:  # the learner's code, or what it returned, broke the check
            raise ExerciseCheckError(
                f"{check.__name__} could not run your function to the end ({_first_line(error)}): "
                "compare the types, shapes and dtypes it takes and returns with the task's description"
            ) from None

    return guarded


def _same_error(error: BaseException, reproduce: Callable[[], Any]) -> bool:
    """True when ``reproduce()`` (a suspected mistake, redone by the check) raises the same error.

    A crash is explained only when the suspected mistake, recomputed on the same inputs, fails
    with the same exception type and text: the diagnosis is confirmed, not guessed from words.
    """
    try:
        reproduce()
    except Exception as again:
        return type(again) is type(error) and str(again) == str(error)
    return False


def _describe_array(value: Any) -> str:
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, (tuple, list)) and value:
        items = ", ".join(_describe_array(v) for v in value[:3]) + (", ..." if len(value) > 3 else "")
        return f"{type(value).__name__} of {len(value)} ({items})"
    text = " ".join(repr(value).split())  # one line, whatever the object prints
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _require_tensor(value: Any, what: str, *, like: Any = None, dtype: Any = None,
                    shape: tuple[int, ...] | None = None, also: Any = None) -> None:
    """The contract before the values: a torch tensor (not NumPy), dtype and device, then shape.

    ``like``: a tensor whose dtype and device the result must have (the spec's "in the input's
    dtype"); ``dtype`` overrides the dtype; ``also``: a second accepted dtype.
    """
    import torch

    if isinstance(value, np.ndarray):
        _fail(f"{what} is a NumPy array ({_describe_array(value)}): return a torch tensor. Keep the "
              "computation in torch (no .numpy(), np.* functions or np.array(...)), so that it runs "
              "on a GPU and gradients can flow through it")
    if not isinstance(value, torch.Tensor):
        _fail(f"{what} should be a torch tensor, got {_describe_array(value)}")
    want = dtype if dtype is not None else (like.dtype if like is not None else None)
    if want is not None and value.dtype not in (want, also):
        if like is None:
            _fail(f"{what} has dtype {value.dtype}, expected {want}, as the task says: convert the result "
                  f"with .to({want})")
        _fail(f"{what} has dtype {value.dtype}, expected {want}, the input's: create new tensors with the "
              "input's dtype and device (dtype=x.dtype, device=x.device) or convert with .to(x.dtype)")
    if like is not None and value.device != like.device:
        _fail(f"{what} is on {value.device}, but the inputs are on {like.device}: create new tensors "
              "on the input's device (device=x.device), never a fixed one")
    if shape is not None and tuple(value.shape) != tuple(shape):
        _fail(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")


def _require_unchanged(call: str, inputs: list[tuple[str, Any, Any]]) -> None:
    """Fail when the learner's function modified one of its inputs in place.

    ``inputs``: (name, original, the copy that was passed); the check calls the learner's function
    with copies and compares them with the originals afterwards.
    """
    import torch

    for name, original, passed in inputs:
        if original is None:
            continue
        if isinstance(original, torch.Tensor):
            same = isinstance(passed, torch.Tensor) and torch.equal(original, passed)
        else:
            same = np.array_equal(original, passed)
        if not same:
            _fail(f"{call} changed its input `{name}` in place: the caller's data must stay as it was. "
                  "Compute new arrays or tensors (y = a * b, or work on a copy) instead of in-place "
                  "operations (*=, +=, ^=, methods ending in _, or assigning into a slice)")


def compare_arrays(name: str, got: Any, expected: np.ndarray, *, atol: float = 1e-6) -> None:
    """Raise :class:`ExerciseCheckError` naming the first value where ``got`` differs from ``expected``.

    The neutral message of every check: "first mismatch at index [...]: expected ..., got ...".
    """
    try:
        import torch

        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().numpy()
        if isinstance(expected, torch.Tensor):
            expected = expected.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not isinstance(got, np.ndarray):
        _fail(f"{name} should be an array like {_describe_array(expected)}, got {_describe_array(got)}")
    if got.shape != expected.shape:
        _fail(f"{name} has shape {got.shape}, expected {expected.shape}")
    if not np.issubdtype(got.dtype, np.number) and got.dtype != bool:
        _fail(f"{name} holds {got.dtype} values, expected numbers like {expected.dtype}")
    got64, expected64 = got.astype(np.float64), expected.astype(np.float64)
    if not np.all(np.isfinite(got64)):
        _fail(f"{name} contains inf or NaN at index {np.argwhere(~np.isfinite(got64))[0].tolist()}")
    diff = np.abs(got64 - expected64)
    if diff.max(initial=0.0) > atol:
        where = tuple(np.argwhere(diff > atol)[0])
        _fail(
            f"{name}: first mismatch at index {list(map(int, where))}: expected {expected64[where]:.6g}, "
            f"got {got64[where]:.6g} ({int((diff > atol).sum())} of {diff.size} values differ)"
        )


def _works(thunk: Callable[[], Any]) -> bool:
    """True when ``thunk()`` returns without raising (a probe of the learner's function)."""
    try:
        thunk()
    except Exception:
        return False
    return True


def _call_diagnosed(
    function: Callable, name: str, where: str, args: tuple, diagnoses: list[tuple[Callable[..., bool], str]]
) -> tuple[bool, Any]:
    """Like :func:`_call`, but a crash becomes an ExerciseCheckError that says where, and why when known.

    ``diagnoses``: (confirm, hint) pairs; ``confirm(error)`` recomputes a suspected mistake (or
    calls the learner's function again with one thing changed) and says whether it explains the
    crash. The first confirmed hint is added; none is guessed from the error's wording.
    """
    try:
        return _call(function, *args)
    except ExerciseCheckError:
        raise
    except Exception as error:  # the learner's code crashed: explain instead of a bare traceback
        hint = next((" " + text for confirm, text in diagnoses if _confirmed(confirm, error)), "")
        _fail(f"{name} crashed for {where}: {_first_line(error)}.{hint}")
    raise AssertionError("unreachable")  # pragma: no cover


def _confirmed(confirm: Callable[[Exception], bool], error: Exception) -> bool:
    try:
        return bool(confirm(error))
    except Exception:  # a diagnosis that cannot be run confirms nothing
        return False


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().to(dtype=value.dtype if value.is_floating_point() else None).double().numpy()


def _unpack_pair(got: Any, name: str, names: str) -> tuple[Any, Any]:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail(f"{name} should return a pair {names}, got {_describe_array(got)}")
    return got[0], got[1]


def _require_order(first: Any, second: Any, expected: tuple[Any, Any], name: str, names: str,
                   where: str) -> None:
    """Fail when the two results are the expected ones in swapped order (recomputed, so confirmed)."""
    import torch

    if not all(isinstance(v, torch.Tensor) for v in (first, second)):
        return
    if _close(first, expected[1], atol=1e-6) and _close(second, expected[0], atol=1e-6) and not _close(
        first, expected[0], atol=1e-6
    ):
        _fail(f"{name} returned its two results in swapped order for {where}: return {names}, in this order")


def _close(a: Any, b: Any, atol: float = 1e-5) -> bool:
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool((a.detach().double() - b.detach().double()).abs().max() <= atol)


def _distinct_values(tensor: Any) -> str:
    values = sorted({round(float(v), 4) for v in tensor.detach().flatten().unique()[:6].tolist()})
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"
