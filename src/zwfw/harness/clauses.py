"""The clause view (`conformance/spec/clauses.yaml`): each 等保 (GB/T 22239-2019 level 3) and
密评 (GB/T 39786-2021 level 3) clause in scope, the requirements that judge it, and what only
documents can show ("manual evidence required"). A clause needing manual evidence is never
passed by a run alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zwfw.harness.errors import CatalogError, describe_validation_error
from zwfw.harness.requirements import Catalog, conformance_dir

CLAUSES_PATH = Path("spec") / "clauses.yaml"


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clause: str = Field(min_length=1)
    title: str = Field(min_length=1)
    requirements: tuple[str, ...] = ()
    manual: str | None = None
    not_applicable: str | None = None

    @model_validator(mode="after")
    def _judged_somehow(self) -> Clause:
        if self.not_applicable is not None and (self.requirements or self.manual):
            raise ValueError(f"{self.clause}: not_applicable excludes requirements and manual")
        if self.not_applicable is None and not (self.requirements or self.manual):
            raise ValueError(f"{self.clause}: give requirements, manual or not_applicable")
        return self

    @property
    def kind(self) -> str:
        """automatic, automatic + manual, manual, or not applicable."""
        if self.not_applicable is not None:
            return "not applicable"
        if self.requirements and self.manual:
            return "automatic + manual"
        return "automatic" if self.requirements else "manual"


class ClauseView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clauses: tuple[Clause, ...]


def load_clauses(catalog: Catalog, path: Path | None = None) -> list[Clause]:
    """The clause view; every requirement it names must be in `catalog` (CatalogError)."""
    path = path or conformance_dir() / CLAUSES_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        view = ClauseView.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        raise CatalogError(f"{path}: cannot read: {error}") from None
    except ValidationError as error:
        raise CatalogError(f"{path}: {describe_validation_error(error)}") from None
    for clause in view.clauses:
        for requirement in clause.requirements:
            if requirement not in catalog:
                raise CatalogError(f"{path}: {clause.clause} names unknown {requirement}")
    return list(view.clauses)


def counts(clauses: Sequence[Clause]) -> dict[str, int]:
    """Clauses per kind: automatic (entirely), manual evidence required (in part or whole),
    not applicable."""
    result = {"automatic": 0, "manual evidence required": 0, "not applicable": 0}
    for clause in clauses:
        if clause.kind == "not applicable":
            result["not applicable"] += 1
        elif clause.manual:
            result["manual evidence required"] += 1
        else:
            result["automatic"] += 1
    return result


def clause_verdict(clause: Clause, statuses: Mapping[str, str]) -> str:
    """A clause's verdict from its requirements' statuses in a report: `fail` when any failed,
    `manual evidence required` when the run cannot decide it alone, else the requirements'
    common status (`pass` only when all passed)."""
    if clause.not_applicable is not None:
        return "not applicable"
    seen = [statuses.get(r, "not-tested") for r in clause.requirements]
    if "fail" in seen:
        return "fail"
    if clause.manual:
        return "manual evidence required"
    if seen and all(s == "pass" for s in seen):
        return "pass"
    return next((s for s in seen if s != "pass"), "not-tested")


def clause_rows(clauses: Sequence[Clause], document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The clause view of a report document, for report.html."""
    statuses = {r["id"]: r["status"] for r in document.get("requirements", [])}
    return [
        {
            "clause": clause.clause,
            "title": clause.title,
            "kind": clause.kind,
            "requirements": [(r, statuses.get(r, "not-tested")) for r in clause.requirements],
            "manual": clause.manual or clause.not_applicable or "",
            "verdict": clause_verdict(clause, statuses),
        }
        for clause in clauses
    ]
