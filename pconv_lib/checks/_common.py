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


def _full_error(error: BaseException, limit: int = 2000) -> str:
    """``"TypeError: what it says"`` with every line of the message (a long one cut at ``limit``)."""
    text = f"{builtin_name(error)}: {error}".rstrip().rstrip(".")
    return text if len(text) <= limit else text[:limit] + " [...]"


def _function_name(function: Any) -> str:
    """The name the learner gave the function (``DecoderBlock.forward`` for a module instance)."""
    if hasattr(function, "__qualname__") or hasattr(function, "__name__"):
        qualified = getattr(function, "__qualname__", None) or function.__name__
        return function.__name__ if "<locals>" in qualified else qualified
    return f"{type(function).__name__}.forward"


def _describe_args(function: Any, args: tuple, kwargs: dict | None = None) -> str:
    """``"x=tensor (2, 3, 8, 8) float64, k=3"``: each argument by name (when the signature says it)."""
    import inspect

    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        names = []
    parts = []
    for i, value in enumerate(args):
        shown = _describe_value(value)
        parts.append(f"{names[i]}={shown}" if i < len(names) else shown)
    parts += [f"{k}={_describe_value(v)}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


def _describe_value(value: Any) -> str:
    try:
        import torch

        if isinstance(value, torch.Tensor):
            grad = ", requires_grad" if value.requires_grad else ""
            return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}{grad}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(value, np.ndarray):
        return f"array {value.shape} {value.dtype}"
    if isinstance(value, dict):
        return "dict with keys " + ", ".join(repr(k) for k in value)
    if isinstance(value, np.random.Generator):
        return "a numpy Generator"
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _where_in_learner_code(error: BaseException, function: Any) -> str:
    """`` At line N of your code: `source` `` for the innermost frame in the learner's own code."""
    import linecache
    import traceback

    forward = getattr(function, "forward", None)
    code = getattr(function, "__code__", None) or getattr(forward, "__code__", None)
    if code is None and isinstance(function, type):
        for attribute in ("forward", "__init__"):
            code = getattr(getattr(function, attribute, None), "__code__", None) or code
    if code is None:
        return ""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == code.co_filename]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    return f", and it failed in {frame.name}, line {frame.lineno}: `{line}`" if line else ""


def _crash_text(function: Any, args: tuple, error: BaseException, kwargs: dict | None = None) -> str:
    """What a crash of the learner's code says: the whole error, then the call with its arguments."""
    return (f"{_full_error(error)}. The call was {_function_name(function)}"
            f"({_describe_args(function, args, kwargs)}){_where_in_learner_code(error, function)}")


def _run(function: Callable, args: tuple, *, where: str = "",
         diagnoses: list[tuple[Callable[[Exception], bool], str]] | None = None,
         kwargs: dict | None = None) -> tuple[bool, Any]:
    """Call the learner's function; ``(False, None)`` if it is still a stub.

    A crash becomes one :class:`ExerciseCheckError` naming the learner's function, its arguments
    (shapes and dtypes) and the full error message, plus the hint of the one diagnosis that
    confirms it (see :func:`_unique_hint`).
    """
    try:
        return True, function(*args, **(kwargs or {}))
    except NotImplementedError:
        return False, None
    except ExerciseCheckError:
        raise
    except Exception as error:  # the learner's code crashed: explain instead of a bare traceback
        hint = _unique_hint([(_confirmed(confirm, error), text) for confirm, text in diagnoses or []])
        place = f" for {where}" if where else ""
        crash = _crash_text(function, args, error, kwargs)
        _fail(f"{_function_name(function)} crashed{place}: {crash}.{hint}")
    raise AssertionError("unreachable")  # pragma: no cover


def _unique_hint(candidates: list[tuple[bool, str]]) -> str:
    """The hint of the one confirmed cause; none when no cause, or more than one, is confirmed.

    ``candidates``: (confirmed, hint) pairs, each confirmed by recomputing the suspected mistake.
    When two different mistakes give the same result the check cannot tell which one it is, so it
    names both as possibilities instead of blaming one.
    """
    hints = list(dict.fromkeys(text for confirmed, text in candidates if confirmed))
    if len(hints) == 1:
        return " " + hints[0]
    if len(hints) > 1:
        return (" Several different mistakes give exactly this result on these inputs, so the check "
                "cannot tell which one you made: " + " | ".join(hints))
    return ""


def _number(value: float) -> str:
    """A float with every digit it has (``repr``): two different values never print the same."""
    return repr(float(value))


def _differ(got: float, expected: float) -> str:
    """``"got 0.7160644531, expected 0.7161458333 (difference 8.1e-05, relative 0.011 %)"``."""
    got, expected = got + 0.0, expected + 0.0  # -0.0 == 0.0: shown alike
    difference = got - expected
    relative = f", relative {abs(difference) / abs(expected):.2g}" if expected else ""
    return f"got {_number(got)}, expected {_number(expected)} (difference {difference:.2g}{relative})"


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
                f"{check.__name__} could not finish with what your function returned ({_full_error(error)}): "
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
    """:func:`_run` for ``where`` (kept for the step modules): a crash names the call and the error."""
    return _run(function, args, where=where, diagnoses=diagnoses)


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


def _gradient_text(names: list[str]) -> str:
    return " and ".join(f"`{n}`" for n in names)


def _require_gradients(call: str, got: Any, expected: Any, inputs: list[tuple[str, Any, Any]],
                       *, rtol: float = 1e-5, atol: float = 1e-8, seed: int = 0) -> None:
    """Fail unless gradients flow from the learner's result to its inputs as from the reference's.

    ``got`` and ``expected``: the learner's and the reference result, computed from tensors that
    require grad; ``inputs``: (name, tensor the learner's result was computed from, the tensor the
    reference was computed from). Both results are projected on one fixed random tensor of their
    shape (seeded), and ``torch.autograd.grad`` of that number with respect to each input is
    compared: a result computed under ``torch.no_grad()``, detached or rebuilt from plain numbers
    gives "no gradient flows"; a partly detached one gives a gradient that differs.
    """
    import torch

    names = [name for name, _, _ in inputs]
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        _fail(f"{call}: no gradient flows from its result back to {_gradient_text(names)} (the result "
              "has requires_grad=False), so training with it would not learn. Keep the whole computation "
              "in torch, outside torch.no_grad(), without .detach(), .item(), float(), .numpy() or "
              "torch.tensor(...) around intermediate results")
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(tuple(expected.shape), generator=generator, dtype=torch.float64)
    got_grads = torch.autograd.grad((got.double() * projection).sum(), [t for _, t, _ in inputs],
                                    allow_unused=True)
    expected_grads = torch.autograd.grad((expected.double() * projection).sum(), [t for _, _, t in inputs],
                                         allow_unused=True)
    for name, mine, theirs in zip(names, got_grads, expected_grads):
        theirs = torch.zeros_like(inputs[0][2], dtype=torch.float64) if theirs is None else theirs.double()
        if mine is None or (not bool(mine.any()) and bool(theirs.any())):
            _fail(f"{call}: no gradient flows from its result back to `{name}` (its gradient is "
                  f"{'missing' if mine is None else 'zero everywhere'}), although the values are right: "
                  f"part of the computation that uses `{name}` is cut from the graph (torch.no_grad(), "
                  ".detach(), .data, or a tensor rebuilt from plain numbers). Training would not learn "
                  "through it")
        mine = mine.double()
        if tuple(mine.shape) != tuple(theirs.shape) or not torch.allclose(mine, theirs, rtol=rtol, atol=atol):
            error = (mine - theirs).abs()
            where = [int(i) for i in torch.nonzero(error == error.max())[0]]
            _fail(f"{call}: the values are right but the gradient with respect to `{name}` differs (at "
                  f"index {where}: {_differ(float(mine[tuple(where)]), float(theirs[tuple(where)]))}): "
                  "part of the computation is cut from the graph or replaced by a step without the right "
                  "derivative (.detach(), .data, torch.no_grad() around one step, rounding)")
