"""Mutants of the reference services: where each one is, and an identity that survives edits.

cosmic-ray names a mutation by file, operator and *occurrence* (the index of that operator's
position in the whole module), which shifts whenever code above it changes. A reviewed file of
equivalent mutants needs better: here a mutant is known by its module, the function (qualified
name) that holds it, the operator, the source line it changes (whitespace folded) and its
ordinal among the mutants sharing those four; that key only changes when the line itself or
its function's name does.
"""

from __future__ import annotations

import ast
import difflib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SERVICES = ("identity", "hall", "elicense", "eseal", "hub")
MODULE_LEVEL = "<module>"


class MutantError(ValueError):
    """A mutant cannot be located or named (one-line reason)."""


def service_of(path: str) -> str:
    """The service a module under ``src/zwfw/services/<service>/`` belongs to."""
    parts = PurePosixPath(path).parts
    try:
        index = parts.index("services")
    except ValueError:
        raise MutantError(f"{path}: not a module of a service") from None
    if index + 1 >= len(parts) or parts[index + 1] not in SERVICES:
        raise MutantError(f"{path}: not a module of one of {', '.join(SERVICES)}")
    return parts[index + 1]


def module_name(path: str) -> str:
    """``src/zwfw/services/hall/cases.py`` -> ``zwfw.services.hall.cases``."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if "zwfw" not in parts:
        raise MutantError(f"{path}: not under the zwfw package")
    parts = parts[parts.index("zwfw") :]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def fold(line: str) -> str:
    """A source line as the identity uses it: stripped, inner whitespace folded."""
    return " ".join(line.split())


@dataclass(frozen=True)
class Mutant:
    """One mutation of one module (a cosmic-ray work item with a stable identity)."""

    job_id: str
    path: str  # relative to the checkout, POSIX
    operator: str
    occurrence: int  # cosmic-ray's index, to apply it
    start: tuple[int, int]  # (line, column) as cosmic-ray (parso) counts them
    end: tuple[int, int]
    function: str  # qualified name of the innermost def/class holding it, or <module>
    context: str  # the folded source line at `start`
    ordinal: int  # among mutants with the same module, function, operator and context
    in_annotation: bool = False
    # False for a binary-operator mutant whose token is no binary operation (`*,` in a def).
    operation: bool = True

    @property
    def module(self) -> str:
        return module_name(self.path)

    @property
    def service(self) -> str:
        return service_of(self.path)

    @property
    def identity(self) -> tuple[str, str, str, str, int]:
        return (self.module, self.function, self.operator, self.context, self.ordinal)

    @property
    def key(self) -> str:
        """One line naming the mutant: ``module:function operator #ordinal``."""
        return f"{self.module}:{self.function} {self.operator} #{self.ordinal}"

    @property
    def line(self) -> int:
        return self.start[0]

    def describe(self) -> dict[str, object]:
        return {
            "key": self.key,
            "service": self.service,
            "module": self.module,
            "path": self.path,
            "function": self.function,
            "operator": self.operator,
            "line": self.line,
            "context": self.context,
            "ordinal": self.ordinal,
        }


@dataclass(frozen=True)
class _Scope:
    first: int
    last: int
    qualname: str


def _char_column(lines: Sequence[str], line: int, byte_offset: int) -> int:
    """ast counts columns in UTF-8 bytes, parso in characters; the catalog's Chinese does tell."""
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


class SourceMap:
    """What the identity needs from one module's source: functions, annotations, statements."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines()
        tree = ast.parse(source)
        self._scopes: list[_Scope] = []
        self._annotations: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self._statements: list[tuple[int, int, int]] = []  # (first line, last line, depth)
        # Where a binary operator may stand: between the operands of each BinOp.
        self._operators: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self._walk(tree, (), 0)

    def _walk(self, node: ast.AST, names: tuple[str, ...], depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            inner = names
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = (*names, child.name)
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self._scopes.append(
                    _Scope(first, child.end_lineno or child.lineno, ".".join(inner))
                )
            if isinstance(child, ast.stmt):
                first = child.lineno
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self._statements.append((first, child.end_lineno or child.lineno, depth))
            for annotation in _annotations_of(child):
                self._annotations.append(self._span(annotation))
            if isinstance(child, ast.BinOp):
                self._operators.append((self._span(child.left)[1], self._span(child.right)[0]))
            self._walk(child, inner, depth + 1)

    def _span(self, node: ast.expr) -> tuple[tuple[int, int], tuple[int, int]]:
        end_line = node.end_lineno or node.lineno
        return (
            (node.lineno, _char_column(self.lines, node.lineno, node.col_offset)),
            (end_line, _char_column(self.lines, end_line, node.end_col_offset or 0)),
        )

    def function_at(self, line: int) -> str:
        """Qualified name of the innermost def or class spanning `line`, else <module>."""
        holding = [s for s in self._scopes if s.first <= line <= s.last]
        if not holding:
            return MODULE_LEVEL
        return max(holding, key=lambda s: (s.first, -s.last)).qualname

    def function_lines(self, qualname: str) -> range:
        """The lines of a function (decorators included), or of the whole module."""
        for scope in self._scopes:
            if scope.qualname == qualname:
                return range(scope.first, scope.last + 1)
        return range(1, len(self.lines) + 1)

    def binary_operation(self, position: tuple[int, int]) -> bool:
        """Whether a ``*``, ``+``, ``|``… at `position` is a binary operation (parso also
        offers the keyword-only marker and unpacking stars to cosmic-ray's operator)."""
        return any(after <= position < before for after, before in self._operators)

    def in_annotation(self, position: tuple[int, int]) -> bool:
        return any(start <= position < end for start, end in self._annotations)

    def statement_lines(self, line: int) -> range:
        """The lines of the innermost statement holding `line` (a compound statement's header
        when the line is in it): what coverage must have seen run for the mutant to matter."""
        holding = [s for s in self._statements if s[0] <= line <= s[1]]
        if not holding:
            return range(line, line + 1)
        first, last, _ = max(holding, key=lambda s: (s[2], s[0]))
        return range(first, last + 1)

    def context(self, line: int) -> str:
        return fold(self.lines[line - 1]) if 0 < line <= len(self.lines) else ""


def _annotations_of(node: ast.AST) -> Iterable[ast.expr]:
    if isinstance(node, ast.arg) and node.annotation is not None:
        yield node.annotation
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        yield node.returns
    elif isinstance(node, ast.AnnAssign):
        yield node.annotation


@dataclass(frozen=True)
class RawMutation:
    """What cosmic-ray's session says of a work item."""

    job_id: str
    path: str
    operator: str
    occurrence: int
    start: tuple[int, int]
    end: tuple[int, int]


def name_mutants(mutations: Iterable[RawMutation], root: Path) -> list[Mutant]:
    """Give every mutation its stable identity (per module, in cosmic-ray's order)."""
    by_path: dict[str, list[RawMutation]] = defaultdict(list)
    for mutation in mutations:
        by_path[mutation.path].append(mutation)
    named: list[Mutant] = []
    for path, items in by_path.items():
        try:
            source = (root / path).read_text(encoding="utf-8")
        except OSError as error:
            raise MutantError(f"{path}: cannot read: {error.strerror}") from None
        where = SourceMap(source)
        seen: dict[tuple[str, str, str], int] = defaultdict(int)
        for item in sorted(items, key=lambda m: (m.operator, m.occurrence)):
            function = where.function_at(item.start[0])
            context = where.context(item.start[0])
            group = (function, item.operator, context)
            named.append(
                Mutant(
                    job_id=item.job_id,
                    path=path,
                    operator=item.operator,
                    occurrence=item.occurrence,
                    start=item.start,
                    end=item.end,
                    function=function,
                    context=context,
                    ordinal=seen[group],
                    in_annotation=where.in_annotation(item.start),
                    operation=(
                        "BinaryOperator" not in item.operator or where.binary_operation(item.start)
                    ),
                )
            )
            seen[group] += 1
    return named


def mutated_source(mutant: Mutant, source: str) -> str:
    """The module's source with the mutant applied (cosmic-ray's operator)."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    mutated = mutate_code(source, get_operator(mutant.operator)(), mutant.occurrence)
    if mutated is None:
        raise MutantError(f"{mutant.key}: cosmic-ray finds no such mutation in {mutant.path}")
    return str(mutated)


def diff(mutant: Mutant, root: Path) -> str:
    """The unified diff of the mutant against the checkout's source."""
    source = (root / mutant.path).read_text(encoding="utf-8")
    changed = mutated_source(mutant, source)
    return "".join(
        difflib.unified_diff(
            source.splitlines(keepends=True),
            changed.splitlines(keepends=True),
            fromfile=f"a/{mutant.path}",
            tofile=f"b/{mutant.path}",
            n=2,
        )
    )
