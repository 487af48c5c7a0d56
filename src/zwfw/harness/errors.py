"""Errors that stop a certification before any verdict: bad profile, bad catalog, bad suite."""

from __future__ import annotations

from pydantic import ValidationError


class HarnessConfigError(Exception):
    """A usage or configuration problem; the CLI prints `str()` on one line and exits 2."""

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the cause looked like.
        super().__init__(" ".join(message.split()))


class ProfileError(HarnessConfigError):
    """The target profile is missing, unreadable or invalid."""


class CatalogError(HarnessConfigError):
    """The requirement catalog is missing or invalid."""


class SuiteError(HarnessConfigError):
    """A suite is unknown, or its tests cannot be collected or name unknown requirements."""


class TargetUnreachable(HarnessConfigError):
    """A service the profile lists does not accept connections."""


def describe_validation_error(error: ValidationError) -> str:
    """One line for a pydantic error: where, what, and how many more problems there are.

    Only the location and message are used: the offending input may be a secret.
    """
    problems = error.errors(include_input=False, include_url=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {message}{more}"
