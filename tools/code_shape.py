"""How much of a module is the paper's code and how much is defence: the figures of issue 16.

For each module it counts

* **code lines**: lines that hold code, without blank lines, comments and docstrings;
* **defensive lines**: code lines of ``raise`` and ``assert`` statements, of the ``if``/``elif``
  tests whose body only raises, and every line of a check or hint helper (a function whose name
  starts with ``check``/``_check``/``validate``/``_validate`` or ends with ``_hint``/``_hints``,
  or starts with ``_describe``);
* the longest class, in lines including its docstring.

A check helper defined in another module of the library (``util/arg_checks``, ``util/tensor_checks``,
...) that has exactly one calling module counts toward that caller, in its code and its defensive
lines (``borrowed``): moving a one-caller check out of a module does not make the module leaner.

Usage: ``python tools/code_shape.py [FILE ...]`` (default: the modules of steps 1-5 and ``train``).
``tests/test_docs_truth.py`` holds the limits of issue 16 with :func:`measure`.
"""

from __future__ import annotations

import ast
import functools
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "pconv_lib"
DEFAULT = ["masks", "layers", "model", "losses", "tiling", "train"]
HELPER_PREFIXES = ("check", "_check", "validate", "_validate", "_describe")
HELPER_SUFFIXES = ("_hint", "_hints")


@dataclass
class Shape:
    path: Path
    lines: int  # physical lines of the file
    code_lines: int
    defensive_lines: int
    classes: dict[str, int]  # class name: lines, docstring included
    borrowed: dict[str, int]  # "module.check": code lines of a check defined elsewhere, called only here

    @property
    def defensive_share(self) -> float:
        return self.defensive_lines / max(self.code_lines, 1)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _code_lines(source: str, tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines - _docstring_lines(tree)


def _span(node: ast.AST) -> set[int]:
    return set(range(node.lineno, node.end_lineno + 1))


def _only_raises(body: list[ast.stmt]) -> bool:
    return all(isinstance(s, ast.Raise) for s in body)


def _is_helper(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
        node.name.startswith(HELPER_PREFIXES) or node.name.endswith(HELPER_SUFFIXES)
    )


def _defensive(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.Assert)):
            lines |= _span(node)
        elif isinstance(node, ast.If) and _only_raises(node.body):
            lines |= _span(node.test) | {node.lineno}
        elif _is_helper(node):
            lines |= _span(node)
            lines |= {d.lineno for d in node.decorator_list}
    return lines


def _names_used(tree: ast.AST) -> set[str]:
    """Every name a module mentions: bare names, attributes (``check.check_size``) and imports."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


@functools.lru_cache(maxsize=4)
def one_caller_checks(library: Path = LIBRARY) -> dict[Path, dict[str, int]]:
    """``{caller module: {"defining_module.check": code lines}}`` for every check helper of the
    library that is called from exactly one other module (and not from its own). The exercise
    self-checks (``pconv_lib/checks/``) are lessons, not defence: neither counted nor callers."""
    paths = [p for p in sorted(library.rglob("*.py")) if "checks" not in p.relative_to(library).parts[:-1]]
    trees = {path: ast.parse(path.read_text()) for path in paths}  # the exercise checks are lessons
    used = {path: _names_used(tree) for path, tree in trees.items()}
    result: dict[Path, dict[str, int]] = {}
    for path, tree in trees.items():
        source = path.read_text()
        code = _code_lines(source, tree)
        for node in tree.body:
            if not _is_helper(node):
                continue
            own_use = any(node.name in _names_used(other) for other in tree.body if other is not node)
            callers = [other for other, names in used.items() if other != path and node.name in names]
            if len(callers) == 1 and not own_use:
                lines = len(code & _span(node))
                result.setdefault(callers[0], {})[f"{path.stem}.{node.name}"] = lines
    return result


def measure(path: Path, borrowed: dict[str, int] | None = None) -> Shape:
    """The figures of one module; ``borrowed`` (default: :func:`one_caller_checks` for a library
    module) adds the checks defined elsewhere that only this module calls."""
    source = path.read_text()
    tree = ast.parse(source)
    code = _code_lines(source, tree)
    classes = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    if borrowed is None:
        inside = path.resolve().is_relative_to(LIBRARY)
        borrowed = one_caller_checks().get(path.resolve(), {}) if inside else {}
    extra = sum(borrowed.values())
    return Shape(path, len(source.splitlines()), len(code) + extra,
                 len(code & _defensive(tree)) + extra, classes, borrowed)


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or [LIBRARY / f"{name}.py" for name in DEFAULT]
    borrowed = one_caller_checks()
    print(f"{'module':<28}{'lines':>7}{'code':>7}{'defence':>9}{'borrowed':>10}{'share':>8}  longest class")
    for path in paths:
        shape = measure(path, borrowed.get(path, {}))
        name, size = max(shape.classes.items(), key=lambda kv: kv[1], default=("-", 0))
        print(f"{path.name:<28}{shape.lines:>7}{shape.code_lines:>7}{shape.defensive_lines:>9}"
              f"{sum(shape.borrowed.values()):>10}{shape.defensive_share:>8.1%}  {name} ({size})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
