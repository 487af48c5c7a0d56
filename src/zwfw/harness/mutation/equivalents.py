"""The reviewed list of equivalent mutants (``conformance/mutation/equivalent.yaml``).

A surviving mutant is either equivalent (no implementation behaviour a user could observe
changes) or a gap in the suites. Each entry names one mutant by its stable identity (see
`zwfw.harness.mutation.mutants`) and says in one line why it is equivalent::

    - module: zwfw.services.eseal.api
      function: verify
      operator: core/ReplaceComparisonOperator_Eq_LtE
      line: "if len(digest) == 32:"   # the source line it changes, as it reads
      ordinal: 0                      # optional: which of several such mutants (from 0)
      reason: the length was checked above; only 32 reaches here
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from zwfw.harness.errors import describe_validation_error
from zwfw.harness.mutation.config import MutationConfigError
from zwfw.harness.mutation.mutants import Mutant, fold


class MutantRef(BaseModel):
    """A mutant named by its stable identity, as a reviewed file writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = Field(pattern=r"^zwfw\.services\.[a-z_.]+$")
    function: str = Field(min_length=1)
    operator: str = Field(pattern=r"^[a-z_]+/\w+$")
    line: str = Field(min_length=1)
    ordinal: int = Field(0, ge=0)

    @field_validator("line")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("must be one line")
        return value.strip()

    @property
    def identity(self) -> tuple[str, str, str, str, int]:
        return (self.module, self.function, self.operator, fold(self.line), self.ordinal)

    @property
    def key(self) -> str:
        return f"{self.module}:{self.function} {self.operator} #{self.ordinal}"


class Equivalent(MutantRef):
    reason: str = Field(min_length=10, max_length=300)

    @field_validator("reason")
    @classmethod
    def _one_line_reason(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("must be one line")
        return value.strip()

    @classmethod
    def of(cls, mutant: Mutant, reason: str) -> Equivalent:
        return cls(
            module=mutant.module,
            function=mutant.function,
            operator=mutant.operator,
            line=mutant.context,
            ordinal=mutant.ordinal,
            reason=reason,
        )


_ENTRIES = TypeAdapter(list[Equivalent])


@dataclass(frozen=True)
class Equivalents:
    path: Path | None
    entries: tuple[Equivalent, ...]

    def reason(self, mutant: Mutant) -> str | None:
        for entry in self.entries:
            if entry.identity == mutant.identity:
                return entry.reason
        return None

    def unmatched(self, mutants: Iterable[Mutant], modules: set[str]) -> list[Equivalent]:
        """Entries of `modules` that name no mutant there any more (the code changed)."""
        known = {mutant.identity for mutant in mutants}
        return [e for e in self.entries if e.module in modules and e.identity not in known]


def load_equivalents(path: Path) -> Equivalents:
    """Read and check the file; a missing file is an empty list."""
    if not path.exists():
        return Equivalents(path, ())
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise MutationConfigError(f"{path}: cannot read: {error}") from None
    except yaml.YAMLError:
        raise MutationConfigError(f"{path}: invalid YAML") from None
    try:
        entries = _ENTRIES.validate_python(data or [])
    except ValidationError as error:
        raise MutationConfigError(f"{path}: {describe_validation_error(error)}") from None
    seen: set[tuple[str, str, str, str, int]] = set()
    for entry in entries:
        if entry.identity in seen:
            raise MutationConfigError(f"{path}: {entry.key} is listed twice")
        seen.add(entry.identity)
    return Equivalents(path, tuple(entries))
