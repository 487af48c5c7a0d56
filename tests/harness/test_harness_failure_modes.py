"""Failure modes: in the catalog, declared by tests (`catches=`), reported by `requirements
coverage` (both gate levels) and `requirements list`, and shown in report.json/report.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from zwfw.harness.errors import CatalogError
from zwfw.harness.requirements import load_catalog

from .support import REPO, Checkout, Invoke, read_results, requirement

SCHEMA = json.loads((REPO / "conformance/spec/report.schema.json").read_text(encoding="utf-8"))


def with_modes(rid: str, level: str = "MUST", *modes: str) -> dict[str, Any]:
    return {
        **requirement(rid, level),
        "failure_modes": [
            {"id": mode, "text": f"the target breaks {rid} by {mode}"} for mode in modes
        ],
    }


def write_catalog(tmp_path: Path, *requirements: dict[str, Any]) -> Path:
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump({"spec_version": "1", "requirements": list(requirements)}))
    return path


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ([{"id": "Detail_Leak", "text": "x"}], "is not a failure-mode id like detail-leak"),
        ([{"id": "leak", "text": "a"}, {"id": "leak", "text": "b"}], "leak is listed twice"),
        ([{"id": "leak", "text": "first line\nsecond line"}], "a failure mode is one line"),
        ([{"id": "leak"}], "text: Field required"),
        ([{"id": "leak", "text": "x", "test": "t"}], "Extra inputs are not permitted"),
    ],
)
def test_bad_failure_modes_are_refused(tmp_path: Path, modes: object, expected: str) -> None:
    entry = {**requirement("IC-A-001"), "failure_modes": modes}
    with pytest.raises(CatalogError, match=expected):
        load_catalog(write_catalog(tmp_path, entry))


def test_the_repository_catalog_seeds_worked_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZWFW_CONFORMANCE_DIR", raising=False)
    catalog = load_catalog()
    modes = {r.id: [m.id for m in r.failure_modes] for r in catalog.requirements}
    assert modes["IC-LIC-003"][:3] == ["detail-leak", "list-leak", "existence-oracle"]
    assert "content-unchecked" in modes["IC-SEAL-002"]
    assert "still-signs" in modes["IC-SEAL-003"]


CATALOG = (
    with_modes("IC-A-001", "MUST", "detail-leak", "list-leak"),
    with_modes("IC-A-002", "SHOULD", "slow"),
    requirement("IC-A-003"),
)


def test_coverage_reports_failure_modes_without_a_test(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(*CATALOG)
    checkout.suite_file(
        "test_a.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-001", catches=("detail-leak",))
        @pytest.mark.parametrize("n", [1, 2])
        def test_detail(n):
            pass

        @pytest.mark.requirement("IC-A-002", "IC-A-003")
        def test_other():
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 1, result.stdout
    assert "Failure modes no test catches" in result.stdout
    assert "list-leak" in result.stdout
    assert "slow" in result.stdout
    assert "detail-leak" not in result.stdout.split("Failure modes no test catches")[1]
    assert "1 of 3 failure modes have a test" in result.stdout
    assert "MUST requirements with failure modes no test catches: IC-A-001" in result.stdout

    as_json = zwfw("requirements", "coverage", "--json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert document["failure_modes_without_test"] == ["IC-A-001:list-leak", "IC-A-002:slow"]
    first = document["requirements"][0]
    assert first["failure_modes"][0] == {
        "id": "detail-leak",
        "text": "the target breaks IC-A-001 by detail-leak",
        "tests": ["conformance/test_a.py::test_detail"],
    }
    assert document["ok"] is False

    # The MUST requirement's modes all caught: a SHOULD's uncaught mode is listed, not fatal,
    # and a MUST listing no modes passes the default gate but not the strict one.
    checkout.suite_file(
        "test_b.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-001", "IC-A-002", catches=("IC-A-001:list-leak",))
        def test_list():
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 0, result.stdout
    assert "slow" in result.stdout
    assert "2 of 3 failure modes have a test" in result.stdout
    assert "1 MUST requirements list no failure modes" in result.stdout
    strict = zwfw("requirements", "coverage", "--require-failure-modes")
    assert strict.exit_code == 1
    assert "MUST requirements listing no failure modes: IC-A-003" in strict.stdout
    strict_json = json.loads(
        zwfw("requirements", "coverage", "--json", "--require-failure-modes").stdout
    )
    assert strict_json["must_without_failure_modes"] == ["IC-A-003"]
    assert strict_json["ok"] is False


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('"IC-A-001", catches=("leak",)', "unknown failure mode 'leak' of IC-A-001"),
        ('"IC-A-001", catches=("IC-A-002:slow",)', "is of a requirement this marker does not name"),
        ('"IC-A-001", "IC-A-002", catches=("slow",)', "names several requirements; write ID:mode"),
        ('"IC-A-001", catches="detail-leak"', "catches= takes a tuple of failure-mode ids"),
        ('"IC-A-001", catch=("detail-leak",)', "requirement marker has no argument 'catch'"),
        (
            '"IC-A-001", "IC-A-002", catches=("IC-A-002:fast",)',
            "unknown failure mode 'fast' of IC-A-002",
        ),
    ],
)
def test_a_wrong_catches_declaration_stops_the_run(
    checkout: Checkout, zwfw: Invoke, marker: str, expected: str
) -> None:
    checkout.catalog(*CATALOG)
    checkout.suite_file(
        "test_a.py",
        f"""
        import pytest

        @pytest.mark.requirement({marker})
        def test_one():
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    certify = zwfw("certify", "--target", checkout.profile(), "--out", checkout.root / "out")
    assert certify.exit_code == 2
    assert expected in certify.stderr


def test_requirements_list_counts_failure_modes(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(*CATALOG)
    result = zwfw("requirements", "list")
    assert result.exit_code == 0
    assert "failure modes" in result.stdout
    rows = {
        line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "IC-A-" in line
    }
    assert rows["IC-A-001"].rstrip("│ ").endswith("2")
    assert rows["IC-A-003"].rstrip("│ ").endswith("0")
    assert "3 of 3 requirements; 3 failure modes" in result.stdout


def test_the_report_shows_which_failure_modes_were_exercised_and_by_which_test(
    checkout: Checkout, zwfw: Invoke
) -> None:
    checkout.catalog(*CATALOG)
    checkout.suite_file(
        "test_a.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-001", catches=("detail-leak",))
        def test_detail(target):
            assert False, "the detail endpoint answered another holder's licence"

        @pytest.mark.requirement("IC-A-001", catches=("list-leak",))
        def test_list(target):
            pytest.skip("the profile names no second holder")

        @pytest.mark.requirement("IC-A-002", "IC-A-003")
        def test_other(target):
            pass
        """,
    )
    out = checkout.root / "out"
    result = zwfw("certify", "--target", checkout.profile(), "--out", out, "-q")
    assert result.exit_code == 1, result.stdout + result.stderr
    document = read_results(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    by_id = {r["id"]: r for r in document["requirements"]}
    assert by_id["IC-A-001"]["failure_modes"] == [
        {
            "id": "detail-leak",
            "text": "the target breaks IC-A-001 by detail-leak",
            "exercised": True,
            "tests": [{"nodeid": "conformance/test_a.py::test_detail", "outcome": "failed"}],
        },
        {
            "id": "list-leak",
            "text": "the target breaks IC-A-001 by list-leak",
            "exercised": False,
            "tests": [{"nodeid": "conformance/test_a.py::test_list", "outcome": "skipped"}],
        },
    ]
    assert by_id["IC-A-002"]["failure_modes"][0]["tests"] == []
    assert by_id["IC-A-003"]["failure_modes"] == []
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html.split('id="failure-modes"')[1].split('id="all"')[0]
    assert "detail-leak" in section
    assert "conformance/test_a.py::test_detail" in section
    assert "no test in this run" in section  # IC-A-002's mode
    # A report of a harness without failure modes still validates (the member is optional).
    for requirement_entry in document["requirements"]:
        del requirement_entry["failure_modes"]
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
