"""Which conformance tests reach which lines of the services: the attribution run's result.

The attribution run certifies the province once with its services under coverage, each line
labelled with the test that was running (`zwfw.harness.mutation.tracing`). From it, for a
mutant:

- *executed*: some line of the mutated statement ran at all (during a test or at start-up);
  a mutant that never runs cannot be killed, and is recorded as survived without a run;
- *tests*: the tests during which its **function** ran (decorators and default values
  included; at module level, the tests that ran any line of the module). Its requirements are
  the ones those tests verify: the requirements whose tests exercise the mutated code. That is
  the attribution of per-requirement scores, and the scope of the mutant's certification run
  (the suite files of those tests);
- a mutant executed only at start-up (a constant used nowhere a test reaches) falls back to
  the tests of its module, then of its service.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zwfw.harness.mutation.mutants import Mutant, SourceMap, service_of


@dataclass(frozen=True)
class Reach:
    executed: bool
    tests: tuple[str, ...]
    requirements: tuple[str, ...]

    @property
    def suites(self) -> tuple[str, ...]:
        """The suite files (relative to the checkout) holding the tests."""
        return tuple(sorted({test.split("::", 1)[0] for test in self.tests}))


@dataclass
class Attribution:
    # path (relative, POSIX) -> line -> node ids of the tests that ran it ("" outside tests)
    lines: dict[str, dict[int, frozenset[str]]]
    # node id -> requirement IDs it verifies
    requirements: dict[str, tuple[str, ...]]
    _sources: dict[str, SourceMap] = field(default_factory=dict, repr=False)

    def _tests(self, path: str, lines: Iterable[int]) -> set[str]:
        executed = self.lines.get(path, {})
        return {
            test for line in lines for test in executed.get(line, ()) if test in self.requirements
        }

    def reach(self, mutant: Mutant, root: Path) -> Reach:
        source = self._sources.get(mutant.path)
        if source is None:
            source = SourceMap((root / mutant.path).read_text(encoding="utf-8"))
            self._sources[mutant.path] = source
        executed_lines = self.lines.get(mutant.path, {})
        executed = any(line in executed_lines for line in source.statement_lines(mutant.line))
        tests = self._tests(mutant.path, source.function_lines(mutant.function))
        if executed and not tests:
            tests = self._tests(mutant.path, executed_lines)
        if executed and not tests:
            service = mutant.service
            tests = {
                test
                for path, lines in self.lines.items()
                if _service(path) == service
                for contexts in lines.values()
                for test in contexts
                if test in self.requirements
            }
        ordered = tuple(sorted(tests))
        requirement_ids = sorted({rid for test in ordered for rid in self.requirements[test]})
        return Reach(executed, ordered, tuple(requirement_ids))

    def as_dict(self) -> dict[str, Any]:
        tests = sorted(self.requirements)
        index = {test: number for number, test in enumerate(tests)}
        index[""] = -1
        return {
            "tests": {test: list(self.requirements[test]) for test in tests},
            "lines": {
                path: {
                    str(line): sorted(index[c] for c in contexts if c in index)
                    for line, contexts in sorted(lines.items())
                }
                for path, lines in sorted(self.lines.items())
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        tests = list(data["tests"])
        names = dict(enumerate(tests))
        names[-1] = ""
        return cls(
            lines={
                path: {
                    int(line): frozenset(names[n] for n in numbers)
                    for line, numbers in lines.items()
                }
                for path, lines in data["lines"].items()
            },
            requirements={test: tuple(ids) for test, ids in data["tests"].items()},
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict()) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Attribution:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _service(path: str) -> str | None:
    try:
        return service_of(path)
    except ValueError:
        return None


def read_coverage(trace_dir: Path, root: Path) -> dict[str, dict[int, frozenset[str]]]:
    """Lines each traced process ran, merged, keyed by path relative to `root`."""
    from coverage import CoverageData

    merged: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for data_file in sorted(trace_dir.glob("coverage-*")):
        data = CoverageData(basename=str(data_file))
        data.read()
        for measured in data.measured_files():
            resolved = Path(measured).resolve()
            if not resolved.is_relative_to(root):
                continue
            relative = resolved.relative_to(root).as_posix()
            for line, contexts in data.contexts_by_lineno(measured).items():
                merged[relative][line].update(contexts)
    return {
        path: {line: frozenset(contexts) for line, contexts in lines.items()}
        for path, lines in merged.items()
    }


def tests_of_report(report: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Node id -> requirement IDs, from a report.json of the attribution run."""
    tests: dict[str, list[str]] = defaultdict(list)
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            tests[test["nodeid"]].append(requirement["id"])
    return {nodeid: tuple(ids) for nodeid, ids in tests.items()}
