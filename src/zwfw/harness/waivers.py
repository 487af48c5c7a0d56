"""Waivers: reviewed, expiring acceptances of a requirement the target does not meet.

```yaml
- requirement: IC-HALL-004
  justification: Guide field `link_way` is migrated in release 2.3 (ticket OPS-1182).
  approver: Wang Li, certification board
  expires: 2025-06-30
```

A waiver is valid through its `expires` date (UTC). A valid waiver turns a requirement that
did not pass (fail or not tested) into `waived`, never `pass`. Waivers that are expired, name a
requirement the catalog does not know, or name one outside a partial run's scope are reported
and not applied; a waiver for a requirement that passed is reported as unused.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from zwfw.harness.errors import HarnessConfigError

WaiverState = Literal["applied", "unused", "expired", "unknown-requirement", "out-of-scope"]


class WaiverError(HarnessConfigError):
    """The waiver file is missing, unreadable or invalid."""


class Waiver(BaseModel):
    """One waiver entry; every field is required so each one is reviewable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requirement: str = Field(min_length=1)
    justification: str = Field(min_length=10)
    approver: str = Field(min_length=1)
    expires: dt.date

    @field_validator("justification", "approver", "requirement")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return " ".join(value.split())

    @field_validator("expires", mode="before")
    @classmethod
    def _date_only(cls, value: Any) -> Any:
        # YAML reads 2025-06-30 as a date; a datetime or number is a mistake worth naming.
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
            raise ValueError("must be a date written as YYYY-MM-DD")
        return value

    def expired_on(self, today: dt.date) -> bool:
        return today > self.expires

    def as_dict(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "justification": self.justification,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
        }


_WAIVER_LIST = TypeAdapter(list[Waiver])


def _describe(error: ValidationError) -> str:
    # Entries are numbered from 1 as a reviewer counts them, not from pydantic's 0.
    problems = error.errors(include_input=False, include_url=False)
    index, *where = problems[0]["loc"]
    field = ".".join(str(part) for part in where) or "(entry)"
    message = str(problems[0]["msg"]).removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    number = index + 1 if isinstance(index, int) else index
    return f"entry {number}: {field}: {message}{more}"


def load_waivers(path: str | Path) -> list[Waiver]:
    """Read and validate a waiver file; any problem raises `WaiverError` with a one-line reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WaiverError(f"waivers {path}: file not found") from None
    except IsADirectoryError:
        raise WaiverError(f"waivers {path}: is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WaiverError(f"waivers {path}: cannot read: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WaiverError(f"waivers {path}: invalid YAML{where}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise WaiverError(
            f"waivers {path}: expected a list of {{requirement, justification, approver, expires}}"
        )
    try:
        waivers = _WAIVER_LIST.validate_python(data)
    except ValidationError as error:
        raise WaiverError(f"waivers {path}: {_describe(error)}") from None
    seen: dict[str, int] = {}
    for number, waiver in enumerate(waivers, start=1):
        if waiver.requirement in seen:
            raise WaiverError(
                f"waivers {path}: {waiver.requirement} is waived twice "
                f"(entries {seen[waiver.requirement]} and {number}); keep one"
            )
        seen[waiver.requirement] = number
    return waivers
