"""The requirement catalog (`conformance/spec/requirements.yaml`): what a target must satisfy.

Every conformance test names the requirement IDs it verifies; the catalog says what each ID
means, how binding it is and which standard clause it comes from. The root file holds the
``spec_version`` and may ``include`` family files (paths relative to it) whose ``requirements``
follow its own, in the order given.

A requirement may list its ``failure_modes``: the ways an implementation breaks it, each a
short id unique within the requirement (``detail-leak``) and one line saying how. Tests declare
the failure modes they catch (``@pytest.mark.requirement(ID, catches=(...))``), and
``zwfw requirements coverage`` reports the failure modes no test catches.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from zwfw.harness.errors import CatalogError, describe_validation_error

Level = Literal["MUST", "SHOULD", "MAY"]
LEVELS: tuple[Level, ...] = ("MUST", "SHOULD", "MAY")

REQUIREMENT_ID = re.compile(r"^[A-Z]+(-[A-Z]+)*-\d{3}$")
FAILURE_MODE_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CONFORMANCE_DIR_ENV = "ZWFW_CONFORMANCE_DIR"
CATALOG_PATH = Path("spec") / "requirements.yaml"


class FailureMode(BaseModel):
    """One way an implementation breaks a requirement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(max_length=40)
    text: str = Field(min_length=1, max_length=200)

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not FAILURE_MODE_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a failure-mode id like detail-leak")
        return value

    @field_validator("text")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("a failure mode is one line")
        return value.strip()


class Requirement(BaseModel):
    """One requirement; every field but `failure_modes` is mandatory, so no entry is
    half-specified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    level: Level
    title: str = Field(min_length=1)
    source: str = Field(min_length=1)
    text: str = Field(min_length=1)
    failure_modes: tuple[FailureMode, ...] = ()
    # What only documents or the hosts can show (e.g. a 密评 control as deployed): a run
    # reports the requirement "manual evidence required" (not tested, out of the run's scope),
    # never passed, whatever its tests did.
    manual_evidence: str | None = Field(default=None, min_length=1)

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not REQUIREMENT_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a requirement ID like IC-CODE-001")
        return value

    @field_validator("failure_modes")
    @classmethod
    def _unique_modes(cls, value: tuple[FailureMode, ...]) -> tuple[FailureMode, ...]:
        seen: set[str] = set()
        for mode in value:
            if mode.id in seen:
                raise ValueError(f"failure mode {mode.id} is listed twice")
            seen.add(mode.id)
        return value

    def failure_mode(self, mode_id: str) -> FailureMode | None:
        return next((mode for mode in self.failure_modes if mode.id == mode_id), None)


class Catalog(BaseModel):
    """The whole catalog, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec_version: str = Field(min_length=1)
    requirements: list[Requirement]

    @field_validator("spec_version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        # `spec_version: 1.0` in YAML is a float; keep what was written.
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        seen: set[str] = set()
        for requirement in self.requirements:
            if requirement.id in seen:
                raise ValueError(f"duplicate requirement ID {requirement.id}")
            seen.add(requirement.id)
        return self

    @cached_property
    def by_id(self) -> dict[str, Requirement]:
        return {requirement.id: requirement for requirement in self.requirements}

    def __contains__(self, requirement_id: object) -> bool:
        return requirement_id in self.by_id

    def get(self, requirement_id: str) -> Requirement | None:
        return self.by_id.get(requirement_id)


def conformance_dir() -> Path:
    """The `conformance/` directory: `$ZWFW_CONFORMANCE_DIR`, else the one next to `src/`.

    Falls back to the current directory and its parents, for an installed (non-editable) zwfw
    run from a checkout.
    """
    override = os.environ.get(CONFORMANCE_DIR_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not (path / CATALOG_PATH).is_file():
            raise CatalogError(f"{CONFORMANCE_DIR_ENV}={override}: no {CATALOG_PATH} there")
        return path
    here = Path(__file__).resolve().parent
    cwd = Path.cwd().resolve()
    for base in (*here.parents, cwd, *cwd.parents):
        candidate = base / "conformance"
        if (candidate / CATALOG_PATH).is_file():
            return candidate
    raise CatalogError(
        f"requirement catalog not found: run from a zwfw checkout or set {CONFORMANCE_DIR_ENV}"
    )


def catalog_path() -> Path:
    return conformance_dir() / CATALOG_PATH


_REQUIREMENT_LIST = TypeAdapter(list[Requirement])
# libyaml's safe loader where PyYAML was built with it: the catalog is read several times per
# run, and the pure-Python parser takes a tenth of a second for it each time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> object:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise CatalogError(f"catalog {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"catalog {path}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CatalogError(f"catalog {path}: invalid YAML{where}") from None


def _included(root: Path, data: dict[str, object]) -> list[object]:
    """The requirements of the root file followed by those of its ``include`` files."""
    own = data.get("requirements") or []
    includes = data.get("include") or []
    if not isinstance(own, list) or not isinstance(includes, list):
        raise CatalogError(f"catalog {root}: requirements and include must be lists")
    gathered: list[object] = list(own)
    for entry in includes:
        if not isinstance(entry, str) or not entry:
            raise CatalogError(f"catalog {root}: include entries are relative file paths")
        part = (root.parent / entry).resolve()
        if not part.is_relative_to(root.parent.resolve()):
            raise CatalogError(f"catalog {root}: include {entry!r} points outside the catalog")
        content = _read_yaml(part)
        if not isinstance(content, dict) or set(content) != {"requirements"}:
            raise CatalogError(f"catalog {part}: expected only a requirements list")
        try:
            # Validated per file so that a mistake is reported where it was made.
            gathered.extend(_REQUIREMENT_LIST.validate_python(content["requirements"]))
        except ValidationError as error:
            raise CatalogError(
                f"catalog {part}: requirements.{describe_validation_error(error)}"
            ) from None
    return gathered


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate the catalog; any problem raises `CatalogError` with a one-line reason."""
    path = Path(path) if path is not None else catalog_path()
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CatalogError(f"catalog {path}: expected spec_version and requirements")
    unknown = set(data) - {"spec_version", "requirements", "include"}
    if unknown:
        raise CatalogError(f"catalog {path}: unknown fields {', '.join(sorted(unknown))}")
    merged = {key: value for key, value in data.items() if key != "include"}
    merged["requirements"] = _included(path, data)
    try:
        return Catalog.model_validate(merged)
    except ValidationError as error:
        raise CatalogError(f"catalog {path}: {describe_validation_error(error)}") from None
