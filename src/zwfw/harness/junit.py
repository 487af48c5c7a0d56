"""`junit.xml`: the report in the JUnit XML shape CI systems (Jenkins, GitLab) read.

One `<testsuite>` per in-scope requirement, one `<testcase>` per check (a test verifying that
requirement), named `<requirement ID> <test>`. A requirement no test verified gets one skipped
testcase so it is visible. Failed checks carry `<failure>`, errors `<error>`, skipped checks
`<skipped>`; the checks of a waived requirement are `<skipped>` with the waiver, so a waived
failure does not fail the CI job, and a passed check of a waived requirement stays passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zwfw.harness.results import write_text


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _waiver_text(waiver: Mapping[str, Any]) -> str:
    return f"waived by {waiver['approver']} until {waiver['expires']}: {waiver['justification']}"


def _case(suite: ET.Element, requirement: Mapping[str, Any], test: Mapping[str, Any] | None) -> str:
    """Add one testcase; returns its kind: passed, failure, error or skipped."""
    rid = requirement["id"]
    name = f"{rid} {test['nodeid']}" if test else f"{rid} (no test ran)"
    case = ET.SubElement(
        suite,
        "testcase",
        name=name,
        classname=rid,
        time=_seconds(float(test["duration"]) if test else 0.0),
    )
    outcome = test["outcome"] if test else "skipped"
    reason = (test or {}).get("reason") or requirement.get("reason") or outcome
    waiver = requirement.get("waiver")
    if waiver is not None and outcome != "passed":
        ET.SubElement(case, "skipped", message=_waiver_text(waiver)).text = f"{outcome}: {reason}"
        return "skipped"
    if outcome == "passed":
        return "passed"
    if outcome == "skipped":
        ET.SubElement(case, "skipped", message=reason)
        return "skipped"
    kind = "failure" if outcome == "failed" else "error"
    element = ET.SubElement(case, kind, message=reason, type=f"{requirement['level']} {outcome}")
    evidence = (test or {}).get("evidence") or []
    detail = [f"{rid} ({requirement['level']}): {requirement['title']}", reason]
    detail += [f"evidence: evidence/{name}" for name in evidence]
    element.text = "\n".join(detail)
    return kind


def junit_tree(document: Mapping[str, Any]) -> ET.ElementTree:
    """The JUnit XML tree of a report document."""
    root = ET.Element("testsuites", name=f"zwfw certification of {document['target']['name']}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    for requirement in document["requirements"]:
        if not requirement["in_scope"]:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{requirement['id']} {requirement['title']}",
            timestamp=document["started_at"],
        )
        properties = ET.SubElement(suite, "properties")
        for key in ("level", "status", "source"):
            ET.SubElement(properties, "property", name=key, value=str(requirement[key]))
        counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for test in requirement["tests"] or [None]:
            kind = _case(suite, requirement, test)
            counts["tests"] += 1
            if kind == "failure":
                counts["failures"] += 1
            elif kind in ("error", "skipped"):
                counts["errors" if kind == "error" else "skipped"] += 1
        duration = float(requirement.get("duration", 0.0))
        total_time += duration
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", _seconds(duration))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_time))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(document: Mapping[str, Any], path: Path) -> None:
    root = junit_tree(document).getroot()
    assert root is not None  # junit_tree always builds a <testsuites> root
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    write_text(path, '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
