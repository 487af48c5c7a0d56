"""The pytest plugin on scratch suites: refusals, fixtures, and how outcomes become statuses."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from zwfw.codes.personal import build_resident_id

from .support import (
    Checkout,
    Invoke,
    issue_certificate,
    read_results,
    requirement,
    statuses,
)


def pytest_run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A plain `pytest` run in its own process, as a user would start it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_requirement_fails_the_run(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-TEST-001"))
    checkout.suite_file(
        "demo/test_demo.py",
        """
        import pytest

        @pytest.mark.requirement("IC-TEST-001")
        def test_known():
            pass

        @pytest.mark.requirement("IC-TEST-001", "IC-NOPE-999")
        def test_typo():
            pass
        """,
    )
    profile = checkout.profile()
    out = checkout.root / "out"
    result = zwfw("certify", "--target", profile, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "conformance/demo/test_demo.py::test_typo: unknown requirement 'IC-NOPE-999'" in (
        result.stderr
    )
    assert not (out / "report.json").exists()

    plain = pytest_run(checkout.conformance, "--target", profile, cwd=checkout.root)
    assert plain.returncode != 0
    assert "test_typo: unknown requirement 'IC-NOPE-999'" in plain.stderr
    assert "passed" not in plain.stdout


def test_conformance_test_without_requirement_is_refused(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-TEST-001"))
    checkout.suite_file(
        "test_bare.py",
        """
        def test_says_nothing():
            assert True
        """,
    )
    result = zwfw("certify", "--target", checkout.profile(), "--out", checkout.root / "out")
    assert result.exit_code == 2
    assert "test_says_nothing: names no requirement" in result.stderr

    # Even without --target: a test under the suite directory must say what it verifies.
    plain = pytest_run(checkout.conformance, "--collect-only", cwd=checkout.root)
    assert plain.returncode != 0
    assert "test_says_nothing: names no requirement" in plain.stderr


def test_operations_run_last_and_head_starts_first(checkout: Checkout, zwfw: Invoke) -> None:
    # A key rotation changes the deployment for the tests after it: none may come after. A
    # head start begins a wait that a later test of its suite ends, with what it began.
    checkout.catalog(requirement("IC-TEST-001"))
    for suite, marker in (("a", "operation"), ("b", None), ("c", "head_start")):
        checkout.suite_file(
            f"{suite}/test_{suite}.py",
            f"""
            import pathlib
            import pytest
            from zwfw.harness.headstart import HeadStart

            LOG = pathlib.Path(__file__).parents[1] / "order.log"
            BEGUN = HeadStart()

            def note(what):
                with LOG.open("a") as log:
                    log.write(what + "\\n")

            {f"@pytest.mark.{marker}" if marker else ""}
            @pytest.mark.requirement("IC-TEST-001")
            def test_{suite}_first():
                BEGUN.begin(lambda: "by the head start")
                note("{suite} first{f" ({marker})" if marker else ""}")

            @pytest.mark.requirement("IC-TEST-001")
            def test_{suite}_second():
                note("{suite} second, " + BEGUN.take(lambda: "by itself"))
            """,
        )
    result = zwfw("certify", "--target", checkout.profile(), "--out", checkout.root / "out")
    assert result.exit_code == 0, result.stderr
    log = checkout.conformance / "order.log"
    assert log.read_text().splitlines() == [
        "c first (head_start)",
        "a second, by itself",
        "b first",
        "b second, by the head start",  # b's own first test began it just before
        "c second, by the head start",
        "a first (operation)",
    ]
    # The later half alone (a developer's run of one test) begins the check itself.
    log.unlink()
    alone = pytest_run(
        checkout.conformance / "c" / "test_c.py::test_c_second", "--target", checkout.profile(),
        cwd=checkout.root,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert log.read_text().splitlines() == ["c second, by itself"]


def test_broken_suite_file_is_a_configuration_error(checkout: Checkout, zwfw: Invoke) -> None:
    checkout.catalog(requirement("IC-TEST-001"))
    checkout.suite_file("test_broken.py", "def test_x(:\n    pass\n")
    result = zwfw("certify", "--target", checkout.profile(), "--out", checkout.root / "out")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "test_broken.py: cannot collect" in result.stderr


def test_plugin_is_inert_for_ordinary_test_runs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    tests = project / "tests"
    tests.mkdir(parents=True)
    (tests / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    # No --target, no catalog reachable: an ordinary run must not care.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tests)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={"ZWFW_CONFORMANCE_DIR": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b'{"status": "ok"}' if self.path == "/health" else b"{}"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hall_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LIVE_SUITE = """
import pytest

@pytest.mark.requirement("IC-HALL-001")
def test_hall_health(hall_client):
    response = hall_client.get("health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.request.headers["User-Agent"].startswith("zwfw-harness/")

@pytest.mark.requirement("IC-SEAL-001")
def test_seal_status(eseal_client):
    eseal_client.get("seals/1/status")

@pytest.mark.requirement("IC-HUB-001")
def test_hub_token(target, credential):
    assert credential("hub_client_secret") == "from-the-environment"

@pytest.mark.requirement("IC-MIX-001")
def test_mix_hall(hall_client):
    assert hall_client.get("health").status_code == 200

@pytest.mark.requirement("IC-MIX-001")
def test_mix_hub(hub_client):
    pass

@pytest.mark.requirement("IC-BAD-001")
def test_bad_a(hall_client):
    assert hall_client.get("missing").status_code == 200, "missing endpoint"

@pytest.mark.requirement("IC-BAD-001")
def test_bad_b():
    pass

@pytest.mark.requirement("IC-PII-001", "IC-SHOULD-001")
def test_leaks_personal_data():
    pytest.fail("holder {resident_id} (phone 13812345678) not found")

@pytest.mark.requirement("IC-XFAIL-001")
@pytest.mark.xfail(reason="known defect")
def test_expected_failure():
    assert False
"""


def test_services_credentials_and_aggregation(
    checkout: Checkout, zwfw: Invoke, hall_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ["IC-HALL-001", "IC-SEAL-001", "IC-HUB-001", "IC-MIX-001", "IC-BAD-001"]
    ids += ["IC-PII-001", "IC-XFAIL-001", "IC-NONE-001"]
    checkout.catalog(*map(requirement, ids), requirement("IC-SHOULD-001", "SHOULD"))
    resident_id = str(build_resident_id("340104", dt.date(1990, 5, 17), 123))
    checkout.suite_file("live/test_live.py", LIVE_SUITE.replace("{resident_id}", resident_id))
    profile = checkout.profile(
        services={"hall": hall_server},
        credentials={"hub_client_secret": {"env": "SCRATCH_HUB_SECRET"}},
    )
    monkeypatch.delenv("SCRATCH_HUB_SECRET", raising=False)

    out = checkout.root / "out"
    result = zwfw("certify", "--target", profile, "--out", out)
    assert result.exit_code == 1
    document = read_results(out)
    by_id = {entry["id"]: entry for entry in document["requirements"]}
    assert statuses(document) == {
        "IC-HALL-001": "pass",
        "IC-SEAL-001": "not-tested",
        "IC-HUB-001": "fail",
        "IC-MIX-001": "not-tested",
        "IC-BAD-001": "fail",
        "IC-PII-001": "fail",
        "IC-XFAIL-001": "fail",
        "IC-NONE-001": "not-tested",
        "IC-SHOULD-001": "fail",
    }
    assert "the target profile lists no eseal service" in by_id["IC-SEAL-001"]["reason"]
    assert by_id["IC-SEAL-001"]["tests"][0]["outcome"] == "skipped"
    assert "environment variable SCRATCH_HUB_SECRET is not set" in by_id["IC-HUB-001"]["reason"]
    assert "1 of 2 tests skipped" in by_id["IC-MIX-001"]["reason"]
    assert "missing endpoint" in by_id["IC-BAD-001"]["reason"]
    assert "expected failure: known defect" in by_id["IC-XFAIL-001"]["reason"]
    assert by_id["IC-NONE-001"]["reason"] == "no test in the selected suites verifies it"
    assert by_id["IC-NONE-001"]["tests"] == []
    raw = (out / "report.json").read_text()
    assert resident_id not in raw
    assert "13812345678" not in raw
    assert "138****5678" in by_id["IC-PII-001"]["reason"]

    # With the secret set, only that requirement changes.
    monkeypatch.setenv("SCRATCH_HUB_SECRET", "from-the-environment")
    assert zwfw("certify", "--target", profile, "--out", out).exit_code == 1
    assert statuses(read_results(out))["IC-HUB-001"] == "pass"


def test_plain_pytest_writes_the_same_results_document(checkout: Checkout) -> None:
    checkout.catalog(requirement("IC-TEST-001"), requirement("IC-TEST-002", "SHOULD"))
    checkout.suite_file(
        "test_ok.py",
        """
        import pytest

        @pytest.mark.requirement("IC-TEST-001")
        def test_ok(target):
            assert target.region_code == "340000"
        """,
    )
    results = checkout.root / "results.json"
    plain = pytest_run(
        checkout.conformance,
        "--target",
        checkout.profile(),
        "--zwfw-results",
        results,
        cwd=checkout.root,
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    document = read_results(checkout.root, "results.json")
    assert statuses(document) == {"IC-TEST-001": "pass", "IC-TEST-002": "not-tested"}
    assert document["certified"] is True
    assert document["spec_version"] == "9.9"

    alone = pytest_run(checkout.conformance, "--zwfw-results", results, cwd=checkout.root)
    assert alone.returncode != 0
    assert "--zwfw-results needs --target FILE" in alone.stderr


def test_conformance_test_run_without_target_fails_clearly(checkout: Checkout) -> None:
    checkout.catalog(requirement("IC-TEST-001"))
    checkout.suite_file(
        "test_needs_target.py",
        """
        import pytest

        @pytest.mark.requirement("IC-TEST-001")
        def test_needs(target):
            pass
        """,
    )
    plain = pytest_run(checkout.conformance, "-q", cwd=checkout.root)
    assert plain.returncode == 1
    assert "no target profile: run with --target FILE" in plain.stdout


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # refused handshakes are the point of the test


@pytest.fixture
def mtls_hall(checkout: Checkout) -> Iterator[str]:
    """An HTTPS hall that trusts only client certificates of the scratch CA."""
    certs = checkout.root / "certs"
    certs.mkdir()
    ca = issue_certificate(certs, "ca")
    issue_certificate(certs, "server", issuer=ca, server=True)
    issue_certificate(certs, "client", issuer=ca)
    issue_certificate(certs, "stranger")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.load_verify_locations(certs / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server = _QuietServer(("127.0.0.1", 0), _Health)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_service_clients_use_the_profile_trust_settings(
    checkout: Checkout, zwfw: Invoke, mtls_hall: str
) -> None:
    checkout.catalog(requirement("IC-HALL-001"))
    checkout.suite_file(
        "test_tls.py",
        """
        import pytest

        @pytest.mark.requirement("IC-HALL-001")
        def test_hall_health(hall_client):
            assert hall_client.get("health").json() == {"status": "ok"}
        """,
    )
    out = checkout.root / "out"
    trusted = checkout.profile(
        services={"hall": mtls_hall},
        tls={
            "ca_bundle": "certs/ca.pem",
            "client_cert": "certs/client.pem",
            "client_key": "certs/client.key",
        },
    )
    assert zwfw("certify", "--target", trusted, "--out", out).exit_code == 0
    assert statuses(read_results(out)) == {"IC-HALL-001": "pass"}

    # A client certificate the target does not trust: the check fails, it is not skipped.
    stranger = checkout.profile(
        services={"hall": mtls_hall},
        tls={
            "ca_bundle": "certs/ca.pem",
            "client_cert": "certs/stranger.pem",
            "client_key": "certs/stranger.key",
        },
    )
    assert zwfw("certify", "--target", stranger, "--out", out).exit_code == 1
    assert statuses(read_results(out)) == {"IC-HALL-001": "fail"}

    # Without the CA bundle the server itself is not trusted.
    untrusted = checkout.profile(
        services={"hall": mtls_hall},
        tls={"client_cert": "certs/client.pem", "client_key": "certs/client.key"},
    )
    assert zwfw("certify", "--target", untrusted, "--out", out).exit_code == 1
    document = read_results(out)
    assert statuses(document) == {"IC-HALL-001": "fail"}
    assert "CERTIFICATE_VERIFY_FAILED" in document["requirements"][0]["reason"]
