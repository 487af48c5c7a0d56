"""The harness against known-bad provinces: the reference province 340000 with one seeded
defect at a time must not certify, and must fail exactly the requirements that defect breaks.

One reference platform serves the module; each run puts a defect proxy in front of one of
province A's services and certifies the complete suites through it. A clean run through a
pass-through proxy shows the proxy itself changes nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from zwfw.reference import ReferencePlatform

from .defects import Province, Variant
from .proxy import passthrough
from .support import ZWFW, CertifyRun, Detection, certify, defect_in_front_of
from .variants import ALL_VARIANTS
from .variants_security import DEPLOYMENT_CHECKED, REVIEWED, TLS_SCANNED

A = "340000"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferencePlatform]:
    with ReferencePlatform(tmp_path_factory.mktemp("reference")) as running:
        yield running


@pytest.fixture(scope="module")
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness") / "home"


@pytest.fixture(scope="module")
def province(platform: ReferencePlatform) -> Province:
    a = platform.provinces[A]
    return Province(
        region=A,
        channel_key=a.channel.key,
        channel_key_id=a.channel.key_id,
        issuer_token=platform.province_token(A, f"ops-{A}", "elicense:issue"),
        id_numbers={person.sub: person.id_number for person in a.persons.values()},
        passwords={person.username: person.password for person in a.persons.values()},
        idp_url=platform.url(A, "identity"),
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, CertifyRun]:
    """Certify runs of the module by variant, for the checks that read a finished report."""
    return {}


def run_variant(
    variant: Variant,
    platform: ReferencePlatform,
    province: Province,
    harness_home: Path,
    workdir: Path,
    runs: dict[str, CertifyRun],
    detections: list[Detection],
) -> CertifyRun:
    if variant.name in runs:
        return runs[variant.name]
    workdir.mkdir(parents=True, exist_ok=True)
    defect = variant.make(province)
    with defect_in_front_of(platform, A, variant.service, defect, workdir) as profile:
        run = certify(platform, A, profile, workdir / "report", harness_home, variant.suites)
    runs[variant.name] = run
    detections.append(
        Detection(variant.name, variant.service, variant.defect, variant.expected, run.failed,
                  run.returncode)
    )  # fmt: skip
    return run


def test_the_clean_province_certifies_through_a_passthrough_proxy(
    platform: ReferencePlatform, harness_home: Path, tmp_path: Path,
    detections: list[Detection],
) -> None:  # fmt: skip
    with defect_in_front_of(platform, A, "hall", passthrough, tmp_path) as profile:
        run = certify(platform, A, profile, tmp_path / "report", harness_home)
    detections.append(
        Detection("clean (pass-through)", "hall", "none", frozenset(), run.failed, run.returncode)
    )
    assert run.not_passed == {}, run.explain()
    assert run.report["certified"] is True
    assert run.returncode == 0, run.explain()


def test_the_clean_province_passes_the_security_review(
    platform: ReferencePlatform, harness_home: Path, tmp_path: Path,
    detections: list[Detection],
) -> None:  # fmt: skip
    profile = platform.profile_path(A)
    run = certify(platform, A, profile, tmp_path / "report", harness_home, REVIEWED)
    detections.append(
        Detection("clean (security review)", "-", "none", frozenset(), run.failed, run.returncode)
    )
    assert run.not_passed == {}, run.explain()
    assert run.report["scope"] == "complete"
    assert run.returncode == 0, run.explain()
    reviewed = [r for r in run.report["requirements"] if r["id"].startswith("SEC-")]
    assert reviewed
    # Every service of the reference platform is on loopback http (internal_only): nothing for
    # the TLS scans, which are listed not tested and out of scope, never passed.
    scanned = {r["id"]: r for r in reviewed if r["id"] in TLS_SCANNED}
    assert sorted(scanned) == sorted(TLS_SCANNED)
    assert all(not r["in_scope"] and r["status"] == "not-tested" for r in scanned.values())
    # Without a declared deployment, its static checks are out of scope, never passed.
    static = {r["id"]: r for r in reviewed if r["id"] in DEPLOYMENT_CHECKED}
    assert sorted(static) == sorted(DEPLOYMENT_CHECKED)
    assert all(not r["in_scope"] and r["status"] == "not-tested" for r in static.values())
    assert "declares no deployment" in static["SEC-DEP-001"]["reason"]
    # What only documents show is "manual evidence required": not tested, never passed.
    manual = {r["id"]: r for r in reviewed if r["reason"] and r["reason"].startswith("manual ev")}
    assert sorted(manual) == ["SEC-CRY-002"]
    assert all(not r["in_scope"] and r["status"] == "not-tested" for r in manual.values())
    judged = [r for r in reviewed if r["id"] not in {**scanned, **static, **manual}]
    assert all(r["in_scope"] and r["status"] == "pass" for r in judged)
    assert "SEC-CRY-001" in [r["id"] for r in judged]
    html = (run.out / "report.html").read_text(encoding="utf-8")
    assert "Clause view" in html
    assert "manual evidence required" in html


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=lambda v: v.name)
def test_a_seeded_defect_fails_exactly_its_requirements(
    variant: Variant,
    platform: ReferencePlatform,
    province: Province,
    harness_home: Path,
    tmp_path: Path,
    runs: dict[str, CertifyRun],
    detections: list[Detection],
) -> None:
    run = run_variant(variant, platform, province, harness_home, tmp_path, runs, detections)
    assert run.report["scope"] == "complete"
    assert run.returncode == 1, run.explain()
    assert run.report["certified"] is False
    assert run.failed == variant.expected, run.explain()
    # Nothing else is left undecided either: the defect shows only where it should.
    assert set(run.not_passed) == set(variant.expected), run.explain()


def test_a_laundered_verdict_of_a_known_bad_report_is_refused(
    platform: ReferencePlatform,
    province: Province,
    harness_home: Path,
    tmp_path: Path,
    runs: dict[str, CertifyRun],
    detections: list[Detection],
) -> None:
    variant = next(v for v in ALL_VARIANTS if v.name == "discovery-field-missing")
    run = run_variant(variant, platform, province, harness_home, tmp_path / "run", runs, detections)
    report = tmp_path / "laundered"
    shutil.copytree(run.out, report)
    verified = subprocess.run(
        [ZWFW, "verify-report", str(report)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert "verdict not-certified" in verified.stdout

    # Someone turns the failed requirement into a pass and the verdict into a certification.
    document = json.loads((report / "report.json").read_text(encoding="utf-8"))
    for requirement in document["requirements"]:
        if requirement["status"] == "fail":
            requirement.update(status="pass", reason=None)
    document.update(certified=True, verdict="certified")
    (report / "report.json").write_text(json.dumps(document, ensure_ascii=False, indent=2))
    refused = subprocess.run(
        [ZWFW, "verify-report", str(report)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith("zwfw verify-report: refused: ")
    assert "report.json: SM3 digest differs" in refused.stderr
