"""The mutation-testing configuration: a cosmic-ray configuration file with zwfw's sections.

``conformance/mutation/cosmic-ray.toml`` is read by cosmic-ray itself (``module-path``,
``excluded-modules``, ``timeout``, ``test-command``, the distributor and its filters) and by
``zwfw mutation``, which validates the sections that are zwfw's own:

- ``[cosmic-ray.distributor.zwfw-reference]``: how the reference platform runs the mutants
  (`DistributorSettings`);
- ``[cosmic-ray.filters.zwfw-sample]``: the seeded, stratified sample (`SampleSettings`);
- ``[cosmic-ray.filters.operators-filter]``: cosmic-ray's own operator filter (regexes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zwfw.harness.errors import HarnessConfigError, describe_validation_error

DISTRIBUTOR = "zwfw-reference"
CONFIG_PATH = Path("mutation") / "cosmic-ray.toml"
EQUIVALENTS_PATH = Path("mutation") / "equivalent.yaml"
CI_SAMPLE_PATH = Path("mutation") / "ci-sample.yaml"
# The placeholders `test-command` may use; filled per mutant.
TEST_COMMAND_FIELDS = frozenset({"zwfw", "profile", "out", "suites"})


class MutationConfigError(HarnessConfigError):
    """The mutation configuration, a sample file or the equivalent-mutant file is unusable."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DistributorSettings(_Section):
    """How mutants run: workers, each with its own source copy and reference platform."""

    workers: int = Field(2, ge=1, le=8)
    # The province whose service gets the mutant (the hub is the national one).
    region: str = Field("340000", pattern=r"^[0-9]{2}0000$")
    # Provinces of each worker's platform: 2 for the cross-province suites.
    provinces: int = Field(2, ge=1, le=2)
    # Mutants between two clean runs; a failing clean run invalidates its batch.
    batch: int = Field(10, ge=1, alias="batch-size")
    ready_timeout: float = Field(60.0, gt=0, alias="ready-timeout")
    # Stop taking mutants after this long (what was not run stays pending in the session).
    budget_minutes: float | None = Field(None, gt=0, alias="budget-minutes")
    work_dir: str = Field("out/mutation/work", alias="work-dir")


class SampleSettings(_Section):
    """The sample: `size` mutants drawn with `seed`, stratified per service and module."""

    seed: int = 13
    size: int = Field(240, ge=0)


@dataclass(frozen=True)
class MutationConfig:
    path: Path
    raw: Any  # cosmic-ray's ConfigDict, handed to its commands unchanged
    module_paths: tuple[str, ...]
    excluded_modules: tuple[str, ...]
    timeout: float
    test_command: str
    distributor: DistributorSettings
    sample: SampleSettings
    exclude_operators: tuple[str, ...]

    def operator_excluded(self, operator: str) -> bool:
        return any(re.match(pattern, operator) for pattern in self.exclude_operators)


def _strings(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise MutationConfigError(f"{what} must be a list of strings")
    return tuple(value)


def load_config(path: Path) -> MutationConfig:
    """Read and check the configuration; problems raise `MutationConfigError` in one line."""
    from cosmic_ray.config import ConfigError
    from cosmic_ray.config import load_config as cosmic_ray_config

    try:
        raw = cosmic_ray_config(str(path))
    except (ConfigError, KeyError) as error:
        cause = error.__cause__ or error
        raise MutationConfigError(f"{path}: {cause}") from None
    where = f"{path}: [cosmic-ray]"
    try:
        modules = _strings(raw["module-path"], f"{where} module-path")
        excluded = _strings(raw.get("excluded-modules", []), f"{where} excluded-modules")
        timeout = float(raw["timeout"])
        command = raw["test-command"]
        distributor_name = raw["distributor"]["name"]
    except KeyError as error:
        raise MutationConfigError(f"{where}: missing {error.args[0]}") from None
    except (TypeError, ValueError) as error:
        raise MutationConfigError(f"{where}: {error}") from None
    if timeout <= 0:
        raise MutationConfigError(f"{where} timeout must be positive")
    if distributor_name != DISTRIBUTOR:
        raise MutationConfigError(f"{where} distributor.name must be {DISTRIBUTOR!r}")
    _check_test_command(command, where)
    try:
        distributor = DistributorSettings.model_validate(dict(raw.sub("distributor", DISTRIBUTOR)))
        sample = SampleSettings.model_validate(dict(raw.sub("filters", "zwfw-sample")))
    except ValidationError as error:
        raise MutationConfigError(f"{path}: {describe_validation_error(error)}") from None
    operators = raw.sub("filters", "operators-filter").get("exclude-operators", [])
    exclude = _strings(operators, f"{where}.filters.operators-filter exclude-operators")
    for pattern in exclude:
        try:
            re.compile(pattern)
        except re.error as error:
            raise MutationConfigError(f"{where} exclude-operators {pattern!r}: {error}") from None
    return MutationConfig(
        path=path,
        raw=raw,
        module_paths=modules,
        excluded_modules=excluded,
        timeout=timeout,
        test_command=command,
        distributor=distributor,
        sample=sample,
        exclude_operators=exclude,
    )


def _check_test_command(command: object, where: str) -> None:
    if not isinstance(command, str) or not command.strip():
        raise MutationConfigError(f"{where} test-command must be a command line")
    used = set(re.findall(r"\{(\w+)\}", command))
    unknown = used - TEST_COMMAND_FIELDS
    if unknown:
        raise MutationConfigError(
            f"{where} test-command: unknown placeholder {{{sorted(unknown)[0]}}}; "
            f"use {', '.join('{' + f + '}' for f in sorted(TEST_COMMAND_FIELDS))}"
        )
    missing = {"profile", "out", "suites"} - used
    if missing:
        raise MutationConfigError(
            f"{where} test-command must certify {{profile}} into {{out}} over {{suites}}"
        )


class _Override(_Section):
    """Command-line overrides, validated like the file."""

    workers: int | None = Field(None, ge=1, le=8)
    provinces: int | None = Field(None, ge=1, le=2)
    budget_minutes: float | None = Field(None, gt=0)
    size: int | None = Field(None, ge=0)
    seed: int | None = None


def with_overrides(config: MutationConfig, **values: Any) -> MutationConfig:
    """`config` with the command line's overrides (None: keep the file's value)."""
    try:
        given = _Override.model_validate(values)
    except ValidationError as error:
        raise MutationConfigError(describe_validation_error(error)) from None
    distributor = config.distributor.model_copy(
        update={
            k: v
            for k, v in {
                "workers": given.workers,
                "provinces": given.provinces,
                "budget_minutes": given.budget_minutes,
            }.items()
            if v is not None
        }
    )
    sample = config.sample.model_copy(
        update={k: v for k, v in {"size": given.size, "seed": given.seed}.items() if v is not None}
    )
    return MutationConfig(
        path=config.path,
        raw=config.raw,
        module_paths=config.module_paths,
        excluded_modules=config.excluded_modules,
        timeout=config.timeout,
        test_command=config.test_command,
        distributor=distributor,
        sample=sample,
        exclude_operators=config.exclude_operators,
    )
