"""`zwfw licence verify`: says which checks ran and which could not, takes the registry's
published records (as files, or fetched with --from-api), and fails only on failed checks."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from zwfw.codes import build_licence_id, parse_licence_id
from zwfw.services.elicense import cli as licence_cli
from zwfw.services.elicense.document import canonical, licence_property

from .conftest import ESEAL_AUDIENCE, TEST_ISSUER_CODE, Served, Tokens
from .test_elicense_access import copy_request
from .test_elicense_registry import resealed

OFFLINE = (
    "VALID as far as checked (not checked: seal status, issuer seal register, registry, "
    "licence status)"
)


def run(*args: str | Path) -> Result:
    root = typer.Typer()
    licence_cli.register(root)
    return CliRunner().invoke(root, ["licence", "verify", *map(str, args)])


def first_line(result: Result) -> str:
    return result.output.splitlines()[0]


@pytest.fixture
def files(tmp_path: Path, eseal_client: TestClient) -> Callable[..., list[Path]]:
    root = tmp_path / "root.pem"
    root.write_text(eseal_client.get("/trust").json()["root_certificate"])

    def write(name: str, sealed: dict[str, Any]) -> list[Path]:
        document, signature = tmp_path / f"{name}.json", tmp_path / f"{name}.sig"
        document.write_bytes(base64.b64decode(sealed["document"]))
        signature.write_text(sealed["signature"])
        return [document, signature, "--trust", root]  # type: ignore[list-item]

    return write


def saved(tmp_path: Path, client: TestClient, identifier: str) -> list[str | Path]:
    """The recipe: the issuer seal register and the licence's record, saved from the API."""
    register, record = tmp_path / "issuers.json", tmp_path / f"record-{identifier}.json"
    register.write_text(client.get("/issuers").text)
    record.write_text(client.get(f"/verify/{identifier}").text)
    return ["--issuers", register, "--status", record]


def test_offline_verification_names_what_it_did_not_check(files, issue) -> None:
    licence = issue()
    result = run(*files("licence", licence))
    assert result.exit_code == 0, result.output
    assert first_line(result) == f"licence: {OFFLINE}"
    lines = result.output.splitlines()
    for name in ("issuer_seal", "seal_status", "status", "registry"):
        assert any(line.split()[:2] == [name, "skipped"] for line in lines), (name, lines)
    assert any(line.split()[:2] == ["seal", "passed"] for line in lines)
    as_json = json.loads(run(*files("licence", licence), "--json").output)
    assert as_json["not_checked"] == ["seal_status", "issuer_seal", "registry", "status"]
    assert as_json["valid"] is True


def test_with_the_registrys_records_every_check_is_made(
    files, issue, client: TestClient, tokens: Tokens, tmp_path: Path
) -> None:
    licence = issue()
    result = run(*files("licence", licence), *saved(tmp_path, client, licence["identifier"]))
    assert result.exit_code == 0, result.output
    assert first_line(result) == "licence: VALID (every check made)"
    assert "issuer seal register as of 20" in result.output
    assert "licence record as of 20" in result.output
    # A copy: the registry's record of the copy itself is only checked online.
    copy = copy_request(tokens, client, licence["identifier"]).json()
    result = run(*files("copy", copy), *saved(tmp_path, client, licence["identifier"]))
    assert result.exit_code == 0, result.output
    assert first_line(result) == (
        "copy: VALID as far as checked (not checked: the copy's registry record)"
    )


def test_a_resealed_licence_fails_with_the_registrys_digest(
    files, issue, client: TestClient, eseal_client: TestClient, tokens: Tokens,
    test_issuer_seal: dict[str, Any], tmp_path: Path,
) -> None:  # fmt: skip
    licence = issue(issuer_code=TEST_ISSUER_CODE)
    identifier = licence["identifier"]
    forged = canonical({**licence["metadata"], "holder_name": "李四"})
    signature = resealed(
        eseal_client, tokens, test_issuer_seal["es_id"], forged, licence_property(identifier)
    )
    sealed = {"document": base64.b64encode(forged).decode(), "signature": signature}
    offline = run(*files("forged", sealed))
    assert offline.exit_code == 0, offline.output
    assert first_line(offline) == f"licence: {OFFLINE}"
    checked = run(*files("forged", sealed), *saved(tmp_path, client, identifier))
    assert checked.exit_code == 1, checked.output
    assert first_line(checked) == (
        "licence: INVALID: registry: the document differs from the one issued under this identifier"
    )


def test_a_revoked_licence_fails_with_the_registrys_status(
    files, issue, client: TestClient, tokens: Tokens, tmp_path: Path
) -> None:
    licence = issue()
    identifier = licence["identifier"]
    revoked = client.post(
        f"/licences/{identifier}/status", json={"status": "03", "reason": "吊销"},
        headers=tokens.issuer(),
    )  # fmt: skip
    assert revoked.status_code == 200
    result = run(*files("licence", licence), *saved(tmp_path, client, identifier))
    assert result.exit_code == 1
    assert first_line(result) == "licence: INVALID: status: the licence is revoked (03)"


def test_a_suspended_issuer_seal_in_the_register_fails_step_3(
    files, issue, client: TestClient, eseal_client: TestClient, tokens: Tokens,
    issuer_seal: dict[str, Any], tmp_path: Path,
) -> None:  # fmt: skip
    licence = issue()
    admin = tokens.bearer(tokens.client("seal-admin", "eseal:admin", audience=ESEAL_AUDIENCE))
    suspended = eseal_client.post(
        f"/seals/{issuer_seal['es_id']}/suspend", json={"reason": "核查"}, headers=admin
    )
    assert suspended.status_code == 200
    records = saved(tmp_path, client, licence["identifier"])
    register = json.loads(Path(records[1]).read_text())
    assert {i["es_id"]: i["seal_status"] for i in register["issuers"]}[
        issuer_seal["es_id"]
    ] == "suspended"
    result = run(*files("licence", licence), *records)
    assert result.exit_code == 1
    assert first_line(result).startswith("licence: INVALID: seal: step 3 (seal):")
    assert "suspended" in first_line(result)


def test_usage_errors_exit_2_with_one_line(files, issue, client: TestClient, tmp_path: Path):
    licence, other = issue(), issue()
    args = files("licence", licence)
    wrong = saved(tmp_path, client, other["identifier"])
    mismatch = run(*args, *wrong)
    assert mismatch.exit_code == 2
    assert f"the licence record is of {other['identifier']}" in mismatch.output
    both = run(*args, "--from-api", "http://127.0.0.1:1", *wrong)
    assert both.exit_code == 2
    assert "not both" in both.output
    not_json = tmp_path / "not.json"
    not_json.write_text("<html>")
    assert run(*args, "--status", not_json).exit_code == 2
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps({"status": 404, "title": "Not Found"}))
    refused = run(*args, "--issuers", problem)
    assert refused.exit_code == 2
    assert "is not an issuer seal register (GET /issuers): issuers: Field required" in (
        refused.output
    )
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    unreachable = run(*args, "--from-api", f"http://127.0.0.1:{closed}")
    assert unreachable.exit_code == 2
    assert "is unreachable" in unreachable.output


def test_from_api_reads_the_records_of_a_running_service(served: Served, tmp_path: Path) -> None:
    holder = served.token("holder-a", "elicense", "elicense:read")
    with httpx.Client(base_url=served.elicense_url) as http:
        auth = {"Authorization": f"Bearer {holder}"}
        identifier = next(
            entry["identifier"]
            for entry in http.get("/me/licences", headers=auth).json()
            if TEST_ISSUER_CODE not in entry["identifier"]
        )
        licence = http.get(f"/me/licences/{identifier}", headers=auth).json()
    root = tmp_path / "root.pem"
    root.write_text(httpx.get(f"{served.eseal_url}/trust").json()["root_certificate"])
    document, signature = tmp_path / "licence.json", tmp_path / "licence.sig"
    document.write_bytes(base64.b64decode(licence["document"]))
    signature.write_text(licence["signature"])
    args = [document, signature, "--trust", root, "--from-api", served.elicense_url]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert first_line(result) == "licence: VALID (every check made)"
    # Identifiers the registry never issued, or that are not identifiers at all: failed
    # checks (exit 1), not usage errors.
    parsed = parse_licence_id(identifier)
    unknown = build_licence_id(parsed.type_code, parsed.issuer_code, "77777777", 1)
    for presented, check in ((str(unknown), "registry"), (identifier[:-1] + "#", "identifier")):
        other = {**json.loads(document.read_text()), "identifier": presented}
        document.write_bytes(canonical(other))
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert any(line.split()[:2] == [check, "failed"] for line in result.output.splitlines())
