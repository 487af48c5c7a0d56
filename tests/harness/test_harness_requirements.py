"""The requirement catalog, `zwfw requirements list` and `zwfw requirements coverage`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from zwfw.harness.errors import CatalogError
from zwfw.harness.requirements import REQUIREMENT_ID, conformance_dir, load_catalog

from .support import REPO, Checkout, Invoke, requirement

CODE_REQUIREMENTS = [f"IC-CODE-00{n}" for n in range(1, 8)]


def test_repository_catalog_is_valid_and_seeded_with_the_code_requirements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ZWFW_CONFORMANCE_DIR", raising=False)
    assert conformance_dir() == REPO / "conformance"
    catalog = load_catalog()
    ids = [r.id for r in catalog.requirements]
    assert all(REQUIREMENT_ID.fullmatch(rid) for rid in ids)
    assert set(CODE_REQUIREMENTS) <= set(ids)
    sources = {r.id: r.source for r in catalog.requirements}
    assert "GB 32100-2015" in sources["IC-CODE-003"]
    assert "GB/T 36904-2018" in sources["IC-CODE-007"]
    assert "1.2.156.3005.2" in sources["IC-CODE-007"]
    assert catalog.get("IC-CODE-006").level == "SHOULD"


def without(field: str) -> dict[str, str]:
    entry = requirement("IC-A-001")
    del entry[field]
    return entry


def write_catalog(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"spec_version": "1", "requirements": [requirement("IC-A-001")] * 2},
            "duplicate requirement ID IC-A-001",
        ),
        (
            {"spec_version": "1", "requirements": [requirement("ic-a-001")]},
            "requirements.0.id: 'ic-a-001' is not a requirement ID",
        ),
        (
            {"spec_version": "1", "requirements": [requirement("IC-A-01")]},
            "is not a requirement ID",
        ),
        (
            {"spec_version": "1", "requirements": [requirement("IC-A-001", "MUSTNT")]},
            "requirements.0.level",
        ),
        (
            {
                "spec_version": "1",
                "requirements": [{**requirement("IC-A-001"), "source": None}],
            },
            "requirements.0.source: Input should be a valid string",
        ),
        (
            {"spec_version": "1", "requirements": [without("text")]},
            "requirements.0.text: Field required",
        ),
        ({"requirements": []}, "spec_version: Field required"),
        (["IC-A-001"], "expected spec_version and requirements"),
    ],
)
def test_bad_catalog_is_refused(tmp_path: Path, data: object, expected: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(tmp_path, data))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_conformance_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZWFW_CONFORMANCE_DIR", str(tmp_path))
    with pytest.raises(CatalogError, match="no spec/requirements.yaml there"):
        conformance_dir()
    (tmp_path / "spec").mkdir()
    write_catalog(tmp_path / "spec", {"spec_version": "2", "requirements": []})
    assert conformance_dir() == tmp_path.resolve()
    assert load_catalog().spec_version == "2"


def test_requirements_list(zwfw: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZWFW_CONFORMANCE_DIR", raising=False)
    result = zwfw("requirements", "list")
    assert result.exit_code == 0
    for rid in CODE_REQUIREMENTS:
        assert rid in result.stdout
    should = zwfw("requirements", "list", "--level", "SHOULD")
    assert "IC-CODE-006" in should.stdout
    assert "IC-CODE-007" not in should.stdout
    bad = zwfw("requirements", "list", "--level", "OPTIONAL")
    assert bad.exit_code == 2
    assert "expected MUST, SHOULD or MAY" in bad.stderr


def test_bad_catalog_makes_commands_exit_2(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-A-001"), requirement("IC-A-001"))
    for args in (("requirements", "list"), ("requirements", "coverage")):
        result = zwfw(*args)
        assert result.exit_code == 2
        assert "duplicate requirement ID IC-A-001" in result.stderr
        assert result.stderr.count("\n") == 1


def test_coverage_of_the_repository_suites(zwfw: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZWFW_CONFORMANCE_DIR", raising=False)
    # The opt-in suites count too: they alone verify the SEC-* (but SEC-AUTH-*), RESP-* and
    # FT-* requirements.
    result = zwfw("requirements", "coverage", "--suites", "conformance,security,load,faults")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Requirements without a test" not in result.stdout
    total = len(load_catalog().requirements)
    assert f"{total} of {total} requirements have a test" in result.stdout


def test_coverage_lists_untested_requirements(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(
        requirement("IC-A-001"),
        requirement("IC-A-002", "SHOULD"),
        requirement("IC-A-003"),
    )
    checkout.suite_file(
        "test_a.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-001")
        @pytest.mark.parametrize("n", [1, 2])
        def test_one(n):
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 1
    assert "IC-A-002" in result.stdout
    assert "IC-A-003" in result.stdout
    assert "1 of 3 requirements have a test" in result.stdout
    assert "MUST requirements without a test: IC-A-003" in result.stdout

    # Only a SHOULD left without a test: listed, but not a failure.
    checkout.suite_file(
        "test_b.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-003")
        def test_three():
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 0
    assert "IC-A-002" in result.stdout
    assert "2 of 3 requirements have a test" in result.stdout


def test_coverage_refuses_unknown_requirements(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-A-001"))
    checkout.suite_file(
        "test_a.py",
        """
        import pytest

        @pytest.mark.requirement("IC-A-002")
        def test_one():
            pass
        """,
    )
    result = zwfw("requirements", "coverage")
    assert result.exit_code == 2
    assert "test_one: unknown requirement 'IC-A-002'" in result.stderr


def test_catalog_includes_family_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "families").mkdir()
    (tmp_path / "families" / "b.yaml").write_text(
        yaml.safe_dump({"requirements": [requirement("IC-B-001"), requirement("IC-B-002")]})
    )
    (tmp_path / "families" / "a.yaml").write_text(
        yaml.safe_dump({"requirements": [requirement("IC-A-001")]})
    )
    root = write_catalog(
        tmp_path,
        {
            "spec_version": "3",
            "requirements": [requirement("IC-R-001")],
            "include": ["families/b.yaml", "families/a.yaml"],
        },
    )
    catalog = load_catalog(root)
    assert [r.id for r in catalog.requirements] == ["IC-R-001", "IC-B-001", "IC-B-002", "IC-A-001"]


@pytest.mark.parametrize(
    ("family", "include", "expected"),
    [
        ({"requirements": [requirement("IC-R-001")]}, ["f.yaml"], "duplicate requirement ID"),
        ({"requirements": [requirement("IC-X-1")]}, ["f.yaml"], "f.yaml: requirements.0.id"),
        ({"spec_version": "2", "requirements": []}, ["f.yaml"], "expected only a requirements"),
        ({"requirements": []}, ["missing.yaml"], "missing.yaml: file not found"),
        ({"requirements": []}, ["../outside.yaml"], "points outside the catalog"),
    ],
)
def test_bad_family_file_is_refused_with_its_name(
    tmp_path: Path, family: dict[str, object], include: list[str], expected: str
) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "outside.yaml").write_text(yaml.safe_dump({"requirements": []}))
    (tmp_path / "cat" / "f.yaml").write_text(yaml.safe_dump(family))
    root = write_catalog(
        tmp_path / "cat",
        {"spec_version": "1", "requirements": [requirement("IC-R-001")], "include": include},
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_clause_view_lists_every_clause_and_what_needs_documents(
    zwfw: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZWFW_CONFORMANCE_DIR", raising=False)
    result = zwfw("requirements", "coverage", "--suites", "security", "--by-clause", "--json")
    clauses = {c["clause"]: c for c in json.loads(result.stdout)["clauses"]}
    audit = clauses["GB/T 22239-2019 8.1.4.3"]
    assert audit["kind"] == "manual"
    assert audit["requirements"] == []
    access = clauses["GB/T 22239-2019 8.1.4.2"]
    assert {"id": "SEC-AZ-002", "tests": 1} in access["requirements"]
    assert access["kind"] == "automatic + manual"
    assert any(c["kind"] == "not applicable" for c in clauses.values())
