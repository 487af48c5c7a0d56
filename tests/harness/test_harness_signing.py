"""The harness e-seal: its home, the sealed report, and `zwfw verify-report` refusing tampering."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from zwfw.crypto.hashing import sm3
from zwfw.crypto.ses import parse_signature
from zwfw.harness.seal import harness_home, init_home, load_seal
from zwfw.harness.signing import seal_report

from .support import EXAMPLE_PROFILE, Invoke

CODES = ("--suites", "conformance/codes")


@pytest.fixture
def sealed(tmp_path: Path, zwfw: Invoke) -> Path:
    """A sealed report of the example profile, with one evidence file, re-sealed."""
    out = tmp_path / "report"
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, *CODES, "-q")
    assert result.exit_code == 0, result.stdout + result.stderr
    evidence = out / "evidence"
    evidence.mkdir()
    (evidence / "conformance_x_test_a-0123456789.json").write_text('{"exchanges": []}\n')
    seal_report(out, load_seal())
    return out


def test_first_certify_creates_the_harness_home_privately(
    tmp_path: Path, zwfw: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "fresh" / "harness"
    monkeypatch.setenv("ZWFW_HARNESS_HOME", str(home))
    out = tmp_path / "out"
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, *CODES, "-q")
    assert result.exit_code == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for key in ("root.key", "maker.key", "signer.key"):
        assert stat.S_IMODE((home / key).stat().st_mode) == 0o600
    # Only certificates leave the home; no key material reaches the report.
    for path in out.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes()
    seal = load_seal(home, create=False)
    assert seal.root_fingerprint in result.stdout
    signature = parse_signature((out / "report.sig").read_bytes())
    # dataHash is SM3 over the manifest, which lists every other file.
    assert bytes(signature["to_sign"]["data_hash"].native) == sm3(
        (out / "manifest.json").read_bytes()
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {
        "harness-chain.pem",
        "junit.xml",
        "report.html",
        "report.json",
        "results.json",
    }
    assert (
        manifest["target_fingerprint"]
        == json.loads((out / "report.json").read_text())["target"]["fingerprint"]
    )


def test_harness_init(zwfw: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ZWFW_HARNESS_HOME", str(home))
    first = zwfw("harness", "init")
    assert first.exit_code == 0
    assert f"harness seal created in {home}" in first.stdout
    fingerprint = load_seal(home, create=False).root_fingerprint
    assert fingerprint in first.stdout
    again = zwfw("harness", "init")
    assert "already present" in again.stdout
    old_signer = load_seal(home, create=False).signer
    renewed = zwfw("harness", "init", "--renew")
    assert "renewed" in renewed.stdout
    seal = load_seal(home, create=False)
    assert seal.root_fingerprint == fingerprint  # same trust anchor
    assert seal.signer != old_signer


def test_unusable_harness_home_exits_2(
    tmp_path: Path, zwfw: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    init_home(home)
    monkeypatch.setenv("ZWFW_HARNESS_HOME", str(home))
    (home / "signer.key").chmod(0o644)
    out = tmp_path / "out"
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, *CODES)
    assert result.exit_code == 2
    assert "is open to other users (mode 0644); chmod 600 it" in result.stderr
    (home / "signer.key").chmod(0o600)
    (home / "seal.der").unlink()
    result = zwfw("certify", "--target", EXAMPLE_PROFILE, "--out", out, *CODES)
    assert result.exit_code == 2
    assert "is incomplete (missing seal.der)" in result.stderr


def test_untouched_report_verifies(sealed: Path, zwfw: Invoke) -> None:
    result = zwfw("verify-report", sealed)
    assert result.exit_code == 0, result.stderr
    assert "verified: 6 files sealed by 'zwfw harness report signer'" in result.stdout
    assert "verdict partial-pass" in result.stdout
    assert "root not pinned" in result.stdout
    pinned = zwfw("verify-report", sealed, "--trust", harness_home() / "root.pem")
    assert pinned.exit_code == 0
    assert "trusted root: SM3 " + load_seal().root_fingerprint in pinned.stdout


def _append(name: str, data: bytes = b" ") -> Callable[[Path], None]:
    def edit(out: Path) -> None:
        with (out / name).open("ab") as handle:
            handle.write(data)

    return edit


def _flip(name: str, at: int) -> Callable[[Path], None]:
    def edit(out: Path) -> None:
        content = bytearray((out / name).read_bytes())
        content[at] ^= 0x01
        (out / name).write_bytes(bytes(content))

    return edit


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(out: Path) -> None:
        path = out / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def _remove(name: str) -> Callable[[Path], None]:
    return lambda out: (out / name).unlink()


def _add(name: str) -> Callable[[Path], None]:
    def edit(out: Path) -> None:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("{}")

    return edit


def _evidence(out: Path) -> str:
    return next((out / "evidence").iterdir()).name


def _edit_evidence(out: Path) -> None:
    _append(f"evidence/{_evidence(out)}")(out)


def _remove_evidence(out: Path) -> None:
    _remove(f"evidence/{_evidence(out)}")(out)


def _forge_manifest(out: Path) -> None:
    # Edit the report and update its digest in the manifest: the signature no longer matches.
    _replace("report.json", '"certified": true', '"certified": false')(out)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "report.json":
            entry["sm3"] = sm3((out / "report.json").read_bytes()).hex()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _symlink_evidence(out: Path) -> None:
    target = out / "evidence" / _evidence(out)
    moved = out.parent / "elsewhere.json"
    shutil.move(target, moved)
    target.symlink_to(moved)


TAMPERING = {
    "report.json edited": (
        _replace("report.json", '"pass"', '"fail"'),
        "report.json: SM3 digest differs from the manifest (edited)",
    ),
    "report.json whitespace": (_append("report.json", b"\n"), "report.json: SM3 digest differs"),
    "results.json edited": (_append("results.json"), "results.json: SM3 digest differs"),
    "junit.xml edited": (
        _replace("junit.xml", 'failures="0"', 'failures="1"'),
        "junit.xml: SM3 digest differs",
    ),
    "report.html edited": (
        _replace("report.html", "PASSED", "CERTIFIED"),
        "report.html: SM3 digest differs",
    ),
    "evidence edited": (_edit_evidence, "SM3 digest differs from the manifest"),
    "chain edited": (_append("harness-chain.pem", b"\n"), "harness-chain.pem: SM3 digest"),
    "manifest edited": (
        _replace("manifest.json", '"partial-pass"', '"certified"'),
        "seal verification step 5 (data_hash) failed",
    ),
    "manifest forged to match an edit": (_forge_manifest, "step 5 (data_hash) failed"),
    "signature flipped": (_flip("report.sig", -10), "report.sig: seal verification step 1"),
    "file added": (_add("extra.json"), "extra.json: not in the manifest (added after signing)"),
    "evidence added": (_add("evidence/new.json"), "evidence/new.json: not in the manifest"),
    "directory added": (
        lambda out: (out / "attachments").mkdir(),
        "attachments/: not in the manifest",
    ),
    "evidence removed": (_remove_evidence, "is missing (removed after signing)"),
    "report.html removed": (_remove("report.html"), "report.html is missing"),
    "junit.xml removed": (_remove("junit.xml"), "junit.xml is missing"),
    "chain removed": (_remove("harness-chain.pem"), "harness-chain.pem is missing"),
    "manifest removed": (_remove("manifest.json"), "manifest.json is missing"),
    "signature removed": (_remove("report.sig"), "report.sig is missing"),
    "evidence swapped for a link": (_symlink_evidence, "is a symbolic link"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_any_edited_added_or_removed_file_is_refused(sealed: Path, zwfw: Invoke, kind: str) -> None:
    edit, reason = TAMPERING[kind]
    edit(sealed)
    result = zwfw("verify-report", sealed)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("zwfw verify-report: refused: ")
    assert reason in result.stderr
    assert result.stdout == ""


def test_a_report_resealed_by_another_harness_fails_a_pinned_check(
    sealed: Path, zwfw: Invoke, tmp_path: Path
) -> None:
    # A forger edits the report and seals it again with a harness of their own.
    _replace("report.json", '"pass"', '"fail"')(sealed)
    seal_report(sealed, init_home(tmp_path / "forger")[0])
    assert zwfw("verify-report", sealed).exit_code == 0  # integrity alone holds...
    result = zwfw("verify-report", sealed, "--trust", harness_home() / "root.pem")
    assert result.exit_code == 1  # ...but not who sealed it
    assert "step 3 (seal) failed" in result.stderr
    assert "maker certificate rejected" in result.stderr


def test_verify_report_usage_errors_exit_2(sealed: Path, zwfw: Invoke, tmp_path: Path) -> None:
    missing = zwfw("verify-report", tmp_path / "nowhere")
    assert missing.exit_code == 2
    assert "not a directory" in missing.stderr
    bad_trust = tmp_path / "root.pem"
    bad_trust.write_text("not a certificate")
    result = zwfw("verify-report", sealed, "--trust", bad_trust)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "--trust" in result.stderr
