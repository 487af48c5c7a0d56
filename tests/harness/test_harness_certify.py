"""`zwfw certify` end to end on the real catalog and code-format suite."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from zwfw import __version__
from zwfw.harness.profile import load_profile
from zwfw.harness.requirements import load_catalog

from .support import BAD_PROFILE, EXAMPLE_PROFILE, Invoke, read_results, statuses


def test_example_profile_passes_the_code_suite(zwfw: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = zwfw(
        "certify", "--target", EXAMPLE_PROFILE, "--out", out, "--suites", "conformance/codes"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "PASSED partial run (conformance/codes)" in result.stdout
    assert "not a certification" in result.stdout
    assert "CERTIFIED" not in result.stdout

    document = read_results(out)
    catalog = load_catalog()
    assert [entry["id"] for entry in document["requirements"]] == [
        r.id for r in catalog.requirements
    ]
    assert document["scope"] == "partial"
    in_scope = {e["id"]: e["status"] for e in document["requirements"] if e["in_scope"]}
    assert set(in_scope) == {r.id for r in catalog.requirements if r.id.startswith("IC-CODE-")}
    assert set(in_scope.values()) == {"pass"}
    outside = [e for e in document["requirements"] if not e["in_scope"]]
    assert outside
    assert {(e["status"], e["reason"]) for e in outside} == {
        ("not-tested", "outside the selected suites")
    }
    assert document["certified"] is True
    assert document["schema_version"] == 3
    assert document["verdict"] == "partial-pass"
    # The first schema's file name still holds the same document.
    assert read_results(out, "results.json") == document
    assert document["harness_version"] == __version__
    assert document["spec_version"] == catalog.spec_version
    assert document["target"] == {
        "name": "Anhui provincial government services platform (example)",
        "region_code": "340000",
        "fingerprint": load_profile(EXAMPLE_PROFILE).fingerprint(),
    }
    assert document["started_at"] <= document["finished_at"]
    assert document["summary"]["pass"] == len(in_scope)
    assert document["summary"]["blocking"] == []
    licence = next(e for e in document["requirements"] if e["id"] == "IC-CODE-007")
    assert licence["level"] == "MUST"
    assert len(licence["tests"]) == 3
    assert {test["outcome"] for test in licence["tests"]} == {"passed"}
    # Per-test progress goes to stderr while the run goes on.
    assert "test_licence_identifier[" in result.stderr


def test_a_full_run_without_services_is_not_certified(zwfw: Invoke, tmp_path: Path) -> None:
    # The example profile lists no live services: their MUST requirements cannot be verified.
    out = tmp_path / "full"
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, "-q")
    assert result.exit_code == 1
    assert "NOT CERTIFIED" in result.stdout
    document = read_results(out)
    assert document["scope"] == "complete"
    # The load, security and faults suites are opt-in: a complete run without them judges the
    # rest.
    outside = {e["id"]: e["reason"] for e in document["requirements"] if not e["in_scope"]}
    assert any(rid.startswith("RESP-") for rid in outside)
    assert any(rid.startswith("SEC-AZ-") for rid in outside)
    assert any(rid.startswith("FT-") for rid in outside)
    opt_in = {"RESP-": "loadtests", "SEC-": "security", "FT-": "faults"}
    for rid, why in outside.items():
        assert rid.startswith(tuple(opt_in)), rid
        suite = next(name for prefix, name in opt_in.items() if rid.startswith(prefix))
        assert f"--suites conformance,{suite}" in why
    assert all(
        e["in_scope"] for e in document["requirements"] if e["id"].startswith(("IC-", "SEC-AUTH-"))
    )
    found = statuses(document)
    assert {found[r] for r in found if r.startswith("IC-CODE-")} == {"pass"}
    assert found["IC-ID-001"] == "not-tested"
    assert "IC-ID-001" in document["summary"]["blocking"]


def test_bad_profile_fails_exactly_the_broken_requirements(zwfw: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    result = zwfw("certify", "--target", BAD_PROFILE, "--out", out, "--suites", "conformance/codes")
    assert result.exit_code == 1
    assert "FAILED partial run" in result.stdout

    document = read_results(out)
    found = {e["id"]: e["status"] for e in document["requirements"] if e["in_scope"]}
    failed = {rid for rid, status in found.items() if status == "fail"}
    assert failed == {"IC-CODE-003", "IC-CODE-007"}
    assert {s for rid, s in found.items() if rid not in failed} == {"pass"}
    assert document["certified"] is False
    assert document["summary"]["blocking"] == ["IC-CODE-003", "IC-CODE-007"]

    credit = next(e for e in document["requirements"] if e["id"] == "IC-CODE-003")
    assert "11340000002988139H" in credit["reason"]
    assert "check character" in credit["reason"]
    licence = next(e for e in document["requirements"] if e["id"] == "IC-CODE-007")
    outcomes = {test["nodeid"].split("[", 1)[1]: test["outcome"] for test in licence["tests"]}
    assert outcomes == {
        "1.2.156.3005.2.11100000000013338W001.113401000030547255.00000000016.001.Y]": "passed",
        "1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9]": "failed",
        "1.2.156.3005.2.11100000MB03271699022.11340000002988139G.3401002024000123ABCD.001.2]": (
            "failed"
        ),
    }
    reasons = [test["reason"] for test in licence["tests"] if test["outcome"] == "failed"]
    assert "issuer code '340100' is not a credit code" in reasons[0]
    assert "check character" in reasons[1]
    assert "(and 1 more failing tests)" in licence["reason"]


def test_undeclared_values_leave_requirements_not_tested(zwfw: Invoke, tmp_path: Path) -> None:
    profile = tmp_path / "sparse.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "Sparse",
                "region_code": "330000",
                "declared": {"credit_codes": ["12441500196720244T"]},
            }
        )
    )
    out = tmp_path / "out"
    result = zwfw("certify", "--target", profile, "--out", out, "--suites", "conformance/codes")
    assert result.exit_code == 1
    document = read_results(out)
    found = statuses(document)
    assert found["IC-CODE-001"] == "pass"
    assert found["IC-CODE-003"] == "pass"
    assert found["IC-CODE-007"] == "not-tested"
    licence = next(e for e in document["requirements"] if e["id"] == "IC-CODE-007")
    assert "the target profile declares no licence_identifiers" in licence["reason"]
    assert "IC-CODE-007" in document["summary"]["blocking"]


def test_suite_selection(zwfw: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "sub"
    result = zwfw(
        "certify", "--target", EXAMPLE_PROFILE, "--out", out, "--suites", "conformance/codes", "-q"
    )
    assert result.exit_code == 0
    assert read_results(out)["suites"] == ["conformance/codes"]
    assert result.stderr == ""

    for suites, expected in [
        ("bogus", "unknown suite 'bogus'; suites are conformance, security, loadtests, faults"),
        ("conformance/nothing-here", "suite 'conformance/nothing-here': "),
        ("conformance/../../etc", "points outside"),
    ]:
        result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, "--suites", suites)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1
        assert expected in result.stderr


def test_out_must_be_a_directory(zwfw: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("keep me")
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out)
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr
    assert out.read_text() == "keep me"


def test_results_are_replaced_by_a_new_run(zwfw: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    codes = ("--suites", "conformance/codes")
    assert zwfw("certify", "--target", BAD_PROFILE, "--out", out, *codes).exit_code == 1
    assert zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, *codes).exit_code == 0
    assert json.loads((out / "report.json").read_text())["certified"] is True
    assert sorted(p.name for p in out.iterdir()) == [
        "harness-chain.pem",
        "junit.xml",
        "manifest.json",
        "report.html",
        "report.json",
        "report.sig",
        "results.json",
    ]
