"""From per-test outcomes to a verdict per requirement, and the `results.json` document.

A requirement fails when any of its tests failed or errored, passes when every one of its tests
passed, and is not tested otherwise (no test ran, or some were skipped: a partly verified
requirement is not verified). Certification needs every MUST requirement to pass.

A run over a subset of the suites (`zwfw certify --suites ...`) is partial: only the
requirements its tests verify are in scope and judged; the others are listed as not tested and
out of scope, and a partial run is never a certification.

A test that could not decide (the load generator saturated, or could not offer the workload's
rate) is `inconclusive`; a requirement with such a test and no failing one is `inconclusive`,
which is never a pass: it blocks certification of an in-scope MUST requirement like a failure.

A requirement the catalog marks `manual_evidence` (only documents or the hosts can show it) is
not tested and out of scope in every run, its reason "manual evidence required: ...": never a
pass, and left to the reviewer rather than blocking the run.

The load suite is opt-in: a complete run without it judges every requirement but those only
the load suite verifies (`RESP-*`), which are listed out of scope.

Valid waivers then turn in-scope requirements that did not pass into `waived` (never `pass`);
certification needs every in-scope MUST requirement to be `pass` or `waived`. The document is
`report.json`; its schema is `conformance/spec/report.schema.json`; measured figures (the load
suite's) are its `measurements` member, versioned on their own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from zwfw import __version__
from zwfw.codes.masking import mask_personal_data
from zwfw.harness.profile import TargetProfile
from zwfw.harness.requirements import LEVELS, Catalog, Requirement
from zwfw.harness.waivers import Waiver, WaiverState

# Bumped whenever a consumer of report.json would have to change (2: waivers, evidence,
# durations, verdict; 3: the inconclusive outcome and status, measurements).
SCHEMA_VERSION = 3

Outcome = Literal["passed", "failed", "error", "skipped", "inconclusive"]
Status = Literal["pass", "fail", "not-tested", "waived", "inconclusive"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "inconclusive", "not-tested", "waived")
Verdict = Literal["certified", "not-certified", "partial-pass", "partial-fail"]

_REASON_LIMIT = 500
# The reason of a requirement only documents can judge (catalog `manual_evidence`).
MANUAL_EVIDENCE = "manual evidence required"
# Version of the `measurements` member's own layout (documented in the report schema).
MEASUREMENTS_VERSION = 1


class Inconclusive(Exception):  # noqa: N818 - a verdict, not an error
    """Raised by a test that cannot decide (its measurement is not to be trusted); the test's
    outcome is `inconclusive`, never a pass."""


def clean_reason(text: str | None) -> str | None:
    """A failure or skip reason fit for a report: one line, bounded, personal data masked."""
    if not text:
        return None
    line = " ".join(text.split())
    if len(line) > _REASON_LIMIT:
        line = line[: _REASON_LIMIT - 1] + "…"
    return mask_personal_data(line)


@dataclass
class TestRecord:
    """What one collected conformance test did (setup, call and teardown together)."""

    nodeid: str
    requirement_ids: tuple[str, ...]
    outcome: Outcome = "passed"
    duration: float = 0.0
    reason: str | None = None
    # Names of the files under evidence/ holding this test's HTTP exchanges.
    evidence: list[str] = field(default_factory=list)
    # Failure modes the test declares it catches, as "REQUIREMENT-ID:mode".
    catches: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration": round(self.duration, 6),
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class RequirementResult:
    requirement: Requirement
    status: Status
    reason: str | None
    tests: list[TestRecord] = field(default_factory=list)
    in_scope: bool = True
    # Set when a valid waiver applied: the status the tests decided, and the waiver.
    waived_status: Status | None = None
    waiver: Waiver | None = None

    @property
    def duration(self) -> float:
        return sum(test.duration for test in self.tests)

    @property
    def evidence(self) -> list[str]:
        return list(dict.fromkeys(name for test in self.tests for name in test.evidence))

    def failure_modes(self) -> list[dict[str, Any]]:
        """Each failure mode of the requirement, the tests of this run that catch it, and
        whether one of them ran (passed or failed, not skipped): exercised."""
        modes = []
        for mode in self.requirement.failure_modes:
            qualified = f"{self.requirement.id}:{mode.id}"
            tests = [test for test in self.tests if qualified in test.catches]
            modes.append(
                {
                    "id": mode.id,
                    "text": mode.text,
                    "exercised": any(test.outcome != "skipped" for test in tests),
                    "tests": [{"nodeid": t.nodeid, "outcome": t.outcome} for t in tests],
                }
            )
        return modes

    def as_dict(self) -> dict[str, Any]:
        requirement = self.requirement
        return {
            "id": requirement.id,
            "level": requirement.level,
            "title": requirement.title,
            "source": requirement.source,
            "status": self.status,
            "in_scope": self.in_scope,
            "reason": self.reason,
            "waived_status": self.waived_status,
            "waiver": self.waiver.as_dict() if self.waiver is not None else None,
            "duration": round(self.duration, 6),
            "evidence": self.evidence,
            "tests": [test.as_dict() for test in self.tests],
            "failure_modes": self.failure_modes(),
        }


def decide(tests: list[TestRecord]) -> tuple[Status, str | None]:
    """The status of one requirement from the tests that verify it, and why."""
    if not tests:
        return "not-tested", "no test in the selected suites verifies it"
    broken = [test for test in tests if test.outcome in ("failed", "error")]
    if broken:
        first = broken[0]
        more = f" (and {len(broken) - 1} more failing tests)" if len(broken) > 1 else ""
        return "fail", f"{first.nodeid}: {first.reason or first.outcome}{more}"
    undecided = [test for test in tests if test.outcome == "inconclusive"]
    if undecided:
        first = undecided[0]
        more = f" (and {len(undecided) - 1} more)" if len(undecided) > 1 else ""
        return "inconclusive", f"{first.nodeid}: {first.reason or 'inconclusive'}{more}"
    skipped = [test for test in tests if test.outcome == "skipped"]
    if not skipped:
        return "pass", None
    first = skipped[0]
    why = first.reason or "skipped"
    return "not-tested", f"{len(skipped)} of {len(tests)} tests skipped; {first.nodeid}: {why}"


def aggregate(
    catalog: Catalog,
    records: Iterable[TestRecord],
    in_scope: frozenset[str] | None = None,
    out_of_scope: Mapping[str, str] | None = None,
) -> list[RequirementResult]:
    """One result per catalog requirement, in catalog order (`in_scope` None: all of them);
    those of `out_of_scope`, which maps requirement IDs to why they are not judged, are listed
    not tested and out of scope in any run."""
    out_of_scope = out_of_scope or {}
    by_requirement: dict[str, list[TestRecord]] = {r.id: [] for r in catalog.requirements}
    for record in records:
        for requirement_id in record.requirement_ids:
            # Unknown IDs never get this far: the plugin refuses them at collection.
            by_requirement.setdefault(requirement_id, []).append(record)
    results = []
    for requirement in catalog.requirements:
        tests = by_requirement[requirement.id]
        # Out of scope by the run's own finding (e.g. nothing of the target to judge), in a
        # partial run as in a complete one.
        if requirement.id in out_of_scope:
            results.append(
                RequirementResult(
                    requirement, "not-tested", out_of_scope[requirement.id], [], in_scope=False
                )
            )
            continue
        if in_scope is not None and requirement.id not in in_scope:
            results.append(
                RequirementResult(
                    requirement, "not-tested", "outside the selected suites", [], in_scope=False
                )
            )
            continue
        if requirement.manual_evidence is not None:
            # Judged from documents by the reviewer: never a pass of the run, never blocking it.
            why = f"{MANUAL_EVIDENCE}: {requirement.manual_evidence}"
            results.append(RequirementResult(requirement, "not-tested", why, tests, in_scope=False))
            continue
        status, reason = decide(tests)
        results.append(RequirementResult(requirement, status, reason, tests))
    return results


@dataclass(frozen=True)
class WaiverOutcome:
    """What became of one waiver in a run."""

    waiver: Waiver
    state: WaiverState
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.waiver.as_dict(), "state": self.state, "note": self.note}


def apply_waivers(
    catalog: Catalog,
    results: list[RequirementResult],
    waivers: Iterable[Waiver],
    today: date,
) -> tuple[list[RequirementResult], list[WaiverOutcome]]:
    """Results with valid waivers applied, and the fate of every waiver."""
    by_id = {result.requirement.id: index for index, result in enumerate(results)}
    updated = list(results)
    outcomes: list[WaiverOutcome] = []
    for waiver in waivers:
        rid = waiver.requirement
        if rid not in catalog:
            outcomes.append(
                WaiverOutcome(waiver, "unknown-requirement", f"{rid} is not in the catalog")
            )
            continue
        if waiver.expired_on(today):
            outcomes.append(
                WaiverOutcome(waiver, "expired", f"expired on {waiver.expires.isoformat()}")
            )
            continue
        result = updated[by_id[rid]]
        if not result.in_scope:
            outcomes.append(WaiverOutcome(waiver, "out-of-scope", "outside the selected suites"))
            continue
        if result.status == "pass":
            outcomes.append(WaiverOutcome(waiver, "unused", f"{rid} passed; waiver not needed"))
            continue
        updated[by_id[rid]] = RequirementResult(
            result.requirement,
            "waived",
            result.reason,
            result.tests,
            in_scope=True,
            waived_status=result.status,
            waiver=waiver,
        )
        outcomes.append(
            WaiverOutcome(waiver, "applied", f"{rid} was {result.status}; shown as waived")
        )
    return updated, outcomes


def is_certified(results: Iterable[RequirementResult]) -> bool:
    """Every in-scope MUST requirement passed or is validly waived (partial run: its scope)."""
    return all(
        result.status in ("pass", "waived")
        for result in results
        if result.requirement.level == "MUST" and result.in_scope
    )


def summarize(results: list[RequirementResult]) -> dict[str, Any]:
    """Counts per status, overall and per level, plus the MUST requirements blocking a pass."""
    summary: dict[str, Any] = {"requirements": len(results)}
    summary.update(dict.fromkeys(STATUSES, 0))
    by_level: dict[str, dict[str, int]] = {level: dict.fromkeys(STATUSES, 0) for level in LEVELS}
    for result in results:
        summary[result.status] += 1
        by_level[result.requirement.level][result.status] += 1
    summary["by_level"] = by_level
    summary["blocking"] = [
        result.requirement.id
        for result in results
        if result.requirement.level == "MUST"
        and result.in_scope
        and result.status not in ("pass", "waived")
    ]
    return summary


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def results_document(
    *,
    catalog: Catalog,
    profile: TargetProfile,
    records: Iterable[TestRecord],
    suites: list[str],
    started_at: datetime,
    finished_at: datetime,
    in_scope: frozenset[str] | None = None,
    waivers: Iterable[Waiver] = (),
    out_of_scope: Mapping[str, str] | None = None,
    measurements: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `report.json` document for one run (`in_scope` set: a partial run; `out_of_scope`:
    requirements of opt-in suites a complete run left out, with the reason).

    Waivers are judged on the run's finishing date (UTC). `measurements` are the figures
    suites measured (`{"load": {...}}`), kept as given under `measurements`.
    """
    results = aggregate(catalog, records, in_scope, out_of_scope)
    results, waiver_outcomes = apply_waivers(
        catalog, results, waivers, finished_at.astimezone(UTC).date()
    )
    certified = is_certified(results)
    partial = in_scope is not None
    verdict: Verdict
    if partial:
        verdict = "partial-pass" if certified else "partial-fail"
    else:
        verdict = "certified" if certified else "not-certified"
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "spec_version": catalog.spec_version,
        "target": {
            "name": profile.name,
            "region_code": profile.region_code,
            "fingerprint": profile.fingerprint(),
        },
        "suites": suites,
        "scope": "partial" if partial else "complete",
        "started_at": _timestamp(started_at),
        "finished_at": _timestamp(finished_at),
        "duration": round((finished_at - started_at).total_seconds(), 3),
        "requirements": [result.as_dict() for result in results],
        "waivers": [outcome.as_dict() for outcome in waiver_outcomes],
        "summary": summarize(results),
        "certified": certified,
        "verdict": verdict,
        "measurements": (
            {"version": MEASUREMENTS_VERSION, **measurements} if measurements else None
        ),
    }


def write_text(path: Path, text: str) -> None:
    """Write a file so that readers never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_document(path: Path, document: Mapping[str, Any]) -> None:
    """Write a JSON document atomically."""
    write_text(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
