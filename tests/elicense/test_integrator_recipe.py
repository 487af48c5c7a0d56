"""The shell recipes of docs/verifying-licences-and-seals.md, run as written against the e-seal
and e-licence services served on localhost: the inputs fetched from the APIs, zwfw licence
verify with and without the registry's records, and both GB/T 38540 signatures and the SM2
chains checked with OpenSSL alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import TEST_ISSUER_CODE, Served

DOC = Path(__file__).resolve().parents[2] / "docs" / "verifying-licences-and-seals.md"
TOOLS = ("bash", "curl", "jq", "openssl", "base64", "dd", "awk", "cmp")


def recipe(name: str) -> str:
    match = re.search(rf"<!-- recipe: {name} -->\n```sh\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"{DOC.name} has no recipe {name!r}"
    return match.group(1)


def run(script: str, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = f"the recipes need {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_the_documented_recipes_verify_a_licence(
    tools: None, served: Served, tmp_path: Path
) -> None:
    token = served.token("holder-a", "elicense", "elicense:read")
    listed = httpx.get(
        f"{served.elicense_url}/me/licences", headers={"Authorization": f"Bearer {token}"}
    ).json()
    identifier = next(e["identifier"] for e in listed if TEST_ISSUER_CODE not in e["identifier"])
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ELICENSE": served.elicense_url,
        "ESEAL": served.eseal_url,
        "ID": identifier,
        "TOKEN": token,
    }
    fetched = run(recipe("fetch"), tmp_path, env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    lines = fetched.stdout.splitlines()
    verdicts = [line for line in lines if line.startswith(("licence:", "seal signature:"))]
    assert verdicts == [
        "licence: VALID (every check made)",
        "licence: VALID (every check made)",
        "licence: VALID as far as checked (not checked: seal status, issuer seal register, "
        "registry, licence status)",
        "seal signature: VALID as far as checked (not checked: seal status in the register)",
        "seal signature: VALID (every check made)",
    ]
    assert any("status not checked" in line for line in lines)

    checked = run(recipe("openssl"), tmp_path, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "Verified OK",
        "Verified OK",
        "signer.pem: OK",
        "maker.pem: OK",
        "signer listed",
        "dataHash matches",
    ]

    # What the document claims about OpenSSL without the SM2 signer ID.
    no_id = run(
        "openssl dgst -sm3 -verify signer-key.pem -signature signature.bin tbs.der", tmp_path, env
    )
    assert no_id.returncode != 0
    assert "Verification failure" in no_id.stdout + no_id.stderr
    no_id_chain = run("openssl verify -CAfile root.pem signer.pem", tmp_path, env)
    assert no_id_chain.returncode != 0
    assert "certificate signature failure" in no_id_chain.stdout + no_id_chain.stderr

    # An altered document fails the dataHash comparison; an altered TBS_Sign the signature.
    document = tmp_path / "document.json"
    document.write_bytes(
        document.read_bytes().replace(b'"licence_number":"', b'"licence_number":"X')
    )
    tampered = run(recipe("openssl"), tmp_path, env)
    assert tampered.returncode != 0
    assert "dataHash matches" not in tampered.stdout
    altered_tbs = run(
        "printf x >> tbs.der; openssl dgst -sm3 -verify signer-key.pem "
        "-sigopt distid:1234567812345678 -signature signature.bin tbs.der",
        tmp_path,
        env,
    )
    assert altered_tbs.returncode != 0
    assert "Verification failure" in altered_tbs.stdout + altered_tbs.stderr
