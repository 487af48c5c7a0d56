"""`zwfw certify` artefacts on a scratch suite against a live HTTP server: report.json against
its schema, evidence and its redaction, junit.xml, report.html, waivers and exit codes."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from zwfw.codes.personal import build_resident_id

from .support import REPO, Checkout, Invoke, read_results, requirement, statuses

SCHEMA = json.loads((REPO / "conformance/spec/report.schema.json").read_text(encoding="utf-8"))
RESIDENT_ID = str(build_resident_id("340104", dt.date(1990, 5, 17), 123))
ACCESS_TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaXRpemVuLTEiLCJhY3IiOiJyZWFsLW5hbWUifQ.c2ln"
REFRESH_TOKEN = "refresh-opaque-5f1c2a"
PRIVATE_D = "private-scalar-d-9f8e7d"
COOKIE = "session-cookie-value-77"
PASSWORD = "profile-password-Xy7!q"


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with tokens, a private JWK, a cookie, an ID number and an echo."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else ""
        document = {
            "access_token": ACCESS_TOKEN,
            "refresh_token": REFRESH_TOKEN,
            "token_type": "Bearer",
            "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "pubX", "d": PRIVATE_D}]},
            "holder": {"name": "张三", "id_number": RESIDENT_ID},
            "echo": {"path": self.path, "headers": dict(self.headers), "body": received},
        }
        body = json.dumps(document, ensure_ascii=False).encode()
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"sid={COOKIE}; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - the stdlib's names

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SUITE = """
import pytest

@pytest.mark.requirement("IC-T-001")
def test_token_exchange(hall_client, credential):
    response = hall_client.post(
        "token?code=c0de-in-query",
        data={"grant_type": "authorization_code", "code": "c0de-in-form",
              "code_verifier": "verifier-in-form", "password": credential("password")},
        headers={"Authorization": "Bearer opaque-bearer-123456"},
        cookies={"sid": "client-cookie-value"},
    )
    assert response.status_code == 200
    # The test sees the real response; only the evidence is redacted.
    assert response.json()["refresh_token"] == "%(refresh)s"

@pytest.mark.requirement("IC-T-002")
def test_rejects_markup(hall_client):
    response = hall_client.get("missing/<b>")
    assert response.status_code == 200, "<script>alert('x')</script> not served"

@pytest.mark.requirement("IC-T-003")
def test_should_thing(hall_client):
    assert hall_client.get("missing/should").status_code == 200, "optional endpoint absent"

@pytest.mark.requirement("IC-T-004")
def test_plain(target_http, target):
    assert target_http.get(target.base_url("hall") + "/plain").status_code == 200

@pytest.mark.requirement("IC-T-005")
def test_not_yet(eseal_client):
    pass
"""


@pytest.fixture
def scratch(checkout: Checkout, echo_server: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch checkout with the suite above, and its profile (returned)."""
    checkout.catalog(
        requirement("IC-T-001"),
        requirement("IC-T-002"),
        requirement("IC-T-003", "SHOULD"),
        requirement("IC-T-004"),
        requirement("IC-T-005"),
    )
    checkout.suite_file("live/test_live.py", SUITE % {"refresh": REFRESH_TOKEN})
    monkeypatch.setenv("SCRATCH_PASSWORD", PASSWORD)
    return checkout.profile(
        services={"hall": echo_server},
        credentials={"password": {"env": "SCRATCH_PASSWORD"}},
    )


def write_waivers(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(list(entries), allow_unicode=True), encoding="utf-8")
    return path


def waiver(rid: str, expires: dt.date, approver: str = "Li Lei, certification board") -> dict:
    return {
        "requirement": rid,
        "justification": f"Accepted for this release of {rid}; fix tracked in OPS-42.",
        "approver": approver,
        "expires": expires,
    }


TODAY = dt.datetime.now(dt.UTC).date()
FUTURE = TODAY + dt.timedelta(days=30)
PAST = TODAY - dt.timedelta(days=1)


def validate(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


def test_report_artefacts_evidence_and_redaction(
    checkout: Checkout, scratch: Path, zwfw: Invoke
) -> None:
    out = checkout.root / "out"
    result = zwfw("certify", "--target", scratch, "--out", out)
    assert result.exit_code == 1, result.stdout + result.stderr
    document = read_results(out)
    validate(document)
    assert document["verdict"] == "not-certified"
    assert statuses(document) == {
        "IC-T-001": "pass",
        "IC-T-002": "fail",
        "IC-T-003": "fail",
        "IC-T-004": "pass",
        "IC-T-005": "not-tested",
    }
    assert document["summary"]["blocking"] == ["IC-T-002", "IC-T-005"]
    by_id = {entry["id"]: entry for entry in document["requirements"]}

    # One evidence file per test that talked HTTP, named in the report.
    evidence = sorted(p.name for p in (out / "evidence").iterdir())
    assert len(evidence) == 4
    named = [name for entry in document["requirements"] for name in entry["evidence"]]
    assert sorted(named) == evidence
    assert by_id["IC-T-005"]["evidence"] == []
    exchange = json.loads((out / "evidence" / by_id["IC-T-001"]["evidence"][0]).read_text())
    assert exchange["test"].endswith("::test_token_exchange")
    assert exchange["requirements"] == ["IC-T-001"]
    [token] = exchange["exchanges"]
    assert token["request"]["method"] == "POST"
    assert token["request"]["url"].endswith("/token?code=[REDACTED]")
    assert dict(token["request"]["body"]["form"])["grant_type"] == "authorization_code"
    assert token["response"]["status"] == 200
    assert token["response"]["body"]["json"]["token_type"] == "Bearer"
    assert token["response"]["body"]["json"]["jwks"]["keys"][0]["x"] == "pubX"
    # target_http (not bound to a service) records too.
    plain = json.loads((out / "evidence" / by_id["IC-T-004"]["evidence"][0]).read_text())
    assert plain["exchanges"][0]["request"]["url"].endswith("/plain")

    # No secret of any kind survives in any file of the report.
    secrets = [
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        PRIVATE_D,
        COOKIE,
        PASSWORD,
        RESIDENT_ID,
        "c0de-in-query",
        "c0de-in-form",
        "verifier-in-form",
        "opaque-bearer-123456",
        "client-cookie-value",
    ]
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".sig":
            text = path.read_text(encoding="utf-8")
            leaked = [secret for secret in secrets if secret in text]
            assert not leaked, f"{path.name} leaks {leaked}"
    assert "340***********" in (out / "evidence" / by_id["IC-T-001"]["evidence"][0]).read_text()

    # junit.xml: testsuites/testsuite/testcase as CI systems read it.
    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name").split()[0] for s in suites] == list(statuses(document))
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert len(cases) == 5
    assert all(case.get("classname") == name.split()[0] for name, case in cases.items())
    failing = next(c for n, c in cases.items() if n.startswith("IC-T-002 "))
    failure = failing.find("failure")
    assert failure is not None
    assert "not served" in failure.get("message")
    assert "evidence/" in failure.text
    skipped = next(c for n, c in cases.items() if n.startswith("IC-T-005 "))
    assert skipped.find("skipped") is not None
    assert root.get("tests") == "5"
    assert root.get("failures") == "2"
    assert root.get("skipped") == "1"
    assert root.get("errors") == "0"
    for suite in suites:
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert float(suite.get("time")) >= 0

    # report.html: verdict first, failures with reason and evidence, everything escaped.
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.index("NOT CERTIFIED") < html.index("Failures (2)") < html.index("All requirements")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert f'href="evidence/{by_id["IC-T-002"]["evidence"][0]}"' in html
    assert "<svg" in html
    # Self-contained: nothing is loaded from anywhere.
    for reference in ("src=", "<link", "url(", "@import", "<script", "<iframe"):
        assert reference not in html, reference


def test_waivers_are_applied_reported_and_never_pass(
    checkout: Checkout, scratch: Path, zwfw: Invoke
) -> None:
    waivers = write_waivers(
        checkout.root / "waivers.yaml",
        waiver("IC-T-002", FUTURE),
        waiver("IC-T-003", FUTURE),  # a SHOULD can be waived too
        waiver("IC-T-004", FUTURE),  # passed: unused
        waiver("IC-T-005", PAST),  # expired: not applied
        waiver("IC-NOPE-001", FUTURE),  # unknown requirement: not applied
    )
    out = checkout.root / "out"
    result = zwfw("certify", "--target", scratch, "--out", out, "--waivers", waivers, "-q")
    assert result.exit_code == 1
    document = read_results(out)
    validate(document)
    assert statuses(document) == {
        "IC-T-001": "pass",
        "IC-T-002": "waived",
        "IC-T-003": "waived",
        "IC-T-004": "pass",
        "IC-T-005": "not-tested",
    }
    by_id = {entry["id"]: entry for entry in document["requirements"]}
    assert by_id["IC-T-002"]["waived_status"] == "fail"
    assert by_id["IC-T-002"]["waiver"]["approver"] == "Li Lei, certification board"
    assert "not served" in by_id["IC-T-002"]["reason"]
    states = {w["requirement"]: w["state"] for w in document["waivers"]}
    assert states == {
        "IC-T-002": "applied",
        "IC-T-003": "applied",
        "IC-T-004": "unused",
        "IC-T-005": "expired",
        "IC-NOPE-001": "unknown-requirement",
    }
    assert document["summary"]["blocking"] == ["IC-T-005"]
    assert document["summary"]["waived"] == 2
    # The terminal names every waiver that was not applied, and why.
    assert f"waiver expired IC-T-005 (approver Li Lei, certification board, expires {PAST}" in (
        result.stdout
    )
    assert "waiver unknown-requirement IC-NOPE-001" in result.stdout
    assert "waiver unused IC-T-004" in result.stdout
    # junit: waived failures are skipped with the waiver, not failures.
    root = ET.parse(out / "junit.xml").getroot()
    waived_case = next(c for c in root.iter("testcase") if c.get("name").startswith("IC-T-002 "))
    assert waived_case.find("failure") is None
    assert "waived by Li Lei" in waived_case.find("skipped").get("message")
    assert root.get("failures") == "0"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Waived (2)" in html
    assert "Waivers not applied (3)" in html

    # Renewing the expired waiver certifies, and still shows waived, not pass. Waivers are
    # judged on the run's finishing date: a run that crossed midnight (UTC) is made again
    # with the new date, so the boundary is tested whatever the hour.
    for _ in range(2):
        today = dt.datetime.now(dt.UTC).date()
        renewed = write_waivers(
            checkout.root / "renewed.yaml",
            waiver("IC-T-002", FUTURE),
            waiver("IC-T-005", today),  # valid through its expiry date
        )
        result = zwfw("certify", "--target", scratch, "--out", out, "--waivers", renewed, "-q")
        finished = dt.datetime.fromisoformat(read_results(out)["finished_at"])
        if finished.astimezone(dt.UTC).date() == today:
            break
    assert result.exit_code == 0, result.stdout
    assert "CERTIFIED" in result.stdout
    assert "validly waived" in result.stdout
    document = read_results(out)
    validate(document)
    assert document["verdict"] == "certified"
    assert statuses(document)["IC-T-005"] == "waived"
    assert statuses(document)["IC-T-003"] == "fail"  # a SHOULD failure does not block
    assert zwfw("verify-report", out).exit_code == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("requirement: IC-T-002\n", "expected a list of"),
        ("- [unclosed\n", "invalid YAML at line"),
        ("- {requirement: IC-T-002, approver: A, expires: 2030-01-01}\n", "entry 1: justification"),
        (
            "- {requirement: IC-T-002, justification: long enough text, approver: A, "
            "expires: tomorrow}\n",
            "entry 1: expires",
        ),
        (
            "- {requirement: IC-T-002, justification: long enough text, approver: A, "
            "expires: 2030-01-01, extra: 1}\n",
            "entry 1: extra",
        ),
        (
            "- {requirement: IC-T-002, justification: long enough text, approver: A, "
            "expires: 2030-01-01}\n"
            "- {requirement: IC-T-002, justification: long enough text, approver: B, "
            "expires: 2031-01-01}\n",
            "IC-T-002 is waived twice (entries 1 and 2)",
        ),
    ],
)
def test_bad_waiver_file_exits_2(
    checkout: Checkout, scratch: Path, zwfw: Invoke, content: str, expected: str
) -> None:
    waivers = checkout.root / "waivers.yaml"
    waivers.write_text(content, encoding="utf-8")
    out = checkout.root / "out"
    result = zwfw("certify", "--target", scratch, "--out", out, "--waivers", waivers)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert not out.exists()


def test_missing_waiver_file_exits_2(checkout: Checkout, scratch: Path, zwfw: Invoke) -> None:
    missing = checkout.root / "nope.yaml"
    out = checkout.root / "o"
    result = zwfw("certify", "--target", scratch, "--out", out, "--waivers", missing)
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_unreachable_target_exits_2_before_running(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-T-001"))
    checkout.suite_file(
        "test_one.py",
        """
        import pytest

        @pytest.mark.requirement("IC-T-001")
        def test_one(hall_client):
            hall_client.get("x")
        """,
    )
    # Port 9 (discard) on loopback: nothing listens there.
    profile = checkout.profile(services={"hall": "http://127.0.0.1:9"}, timeout_seconds=2)
    out = checkout.root / "out"
    result = zwfw("certify", "--target", profile, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "target unreachable: hall at http://127.0.0.1:9" in result.stderr
    assert not out.exists()


def test_out_dir_with_foreign_files_is_refused(
    checkout: Checkout, scratch: Path, zwfw: Invoke
) -> None:
    out = checkout.root / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = zwfw("certify", "--target", scratch, "--out", out)
    assert result.exit_code == 2
    assert "not part of a report (notes.txt)" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"
