"""Putting a defect proxy in front of one service of a running reference platform, certifying
through it, and the detection table the runs fill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zwfw.reference import ReferencePlatform
from zwfw.reference.platform import ServiceProcess, free_port

from .proxy import Defect, DefectProxy, listening_socket

REPO = Path(__file__).resolve().parents[2]
ZWFW = str(Path(sys.executable).with_name("zwfw"))
DETECTION_TABLE = REPO / "out" / "selftest" / "detection.md"


@dataclass(frozen=True)
class CertifyRun:
    returncode: int
    report: dict[str, Any]
    out: Path
    stdout: str
    stderr: str

    @property
    def failed(self) -> frozenset[str]:
        """In-scope requirements the run judged ``fail``."""
        return frozenset(
            r["id"] for r in self.report["requirements"] if r["in_scope"] and r["status"] == "fail"
        )

    @property
    def not_passed(self) -> dict[str, str]:
        """In-scope requirements that did not pass, with the harness's reason."""
        return {
            r["id"]: f"{r['status']}: {r.get('reason') or ''}"
            for r in self.report["requirements"]
            if r["in_scope"] and r["status"] != "pass"
        }

    def explain(self) -> str:
        reasons = "\n".join(f"  {k}: {v[:300]}" for k, v in sorted(self.not_passed.items()))
        return f"exit {self.returncode}; not passed:\n{reasons}\n{self.stderr[-1500:]}"


def certify(
    platform: ReferencePlatform,
    region: str,
    profile: Path,
    out: Path,
    harness_home: Path,
    suites: tuple[str, ...] = (),
) -> CertifyRun:
    """``zwfw certify`` of ``profile`` as an operator runs it, with the province's
    credentials in the environment; ``suites`` as ``--suites`` (default: the default ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_REF_")}
    env.update(platform.credentials(region))
    env["ZWFW_HARNESS_HOME"] = str(harness_home)
    result = subprocess.run(
        [
            ZWFW,
            "certify",
            "--target",
            str(profile),
            "--out",
            str(out),
            *(["--suites", ",".join(suites)] if suites else []),
        ],  # fmt: skip
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report_file = out / "report.json"
    if not report_file.is_file():
        raise AssertionError(
            f"certify wrote no report (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    report = json.loads(report_file.read_text(encoding="utf-8"))
    return CertifyRun(result.returncode, report, out, result.stdout, result.stderr)


def profile_through(platform: ReferencePlatform, region: str, service: str, url: str,
                    dest: Path) -> Path:  # fmt: skip
    """A copy of the province's profile with ``service`` at ``url``."""
    profile = yaml.safe_load(platform.profile_path(region).read_text(encoding="utf-8"))
    profile["services"][service] = url
    dest.write_text(yaml.safe_dump(profile, allow_unicode=True, sort_keys=False), "utf-8")
    return dest


# Services known by their own address: an IdP by its issuer URL (tokens carry it, client
# assertions are addressed to its token endpoint, the other services fetch its JWKS there); an
# e-licence service by its public address (the 2-D codes on its licence faces name it). A
# proxy on another address would break that by itself, so the proxy takes the service's own.
TAKEN_OVER = ("identity", "elicense")


@contextmanager
def _taken_over(
    platform: ReferencePlatform, region: str, service: str, defect: Defect, workdir: Path
) -> Iterator[Path]:
    """The province's ``service`` moved to another port and the proxy in its place."""
    original = platform.process(region, service)
    values = yaml.safe_load(original.config.read_text(encoding="utf-8"))
    port = free_port()
    config = workdir / f"{original.name}-behind-proxy.yaml"
    config.write_text(yaml.safe_dump({**values, "port": port}, allow_unicode=True), "utf-8")
    moved = ServiceProcess(
        name=f"{original.name}-behind-proxy",
        service=original.service,
        port=port,
        config=config,
        log=workdir / f"{original.name}-behind-proxy.log",
        env=dict(original.env),
    )
    original.stop()
    try:
        with ExitStack() as stack:
            sock = listening_socket(original.port)
            stack.callback(sock.close)
            moved.start(platform.zwfw, platform.ready_timeout)
            stack.callback(moved.stop)
            stack.enter_context(DefectProxy(moved.url, defect, sock=sock))
            yield platform.profile_path(region)
    finally:
        original.start(platform.zwfw, platform.ready_timeout)


@contextmanager
def defect_in_front_of(
    platform: ReferencePlatform, region: str, service: str, defect: Defect, workdir: Path
) -> Iterator[Path]:
    """The province with ``defect`` applied to ``service``; yields the profile to certify."""
    if service != "identity":
        # A fresh IdP process behind the proxy has a fresh login window anyway.
        fresh_login_window(platform, region)
    if service in TAKEN_OVER:
        with _taken_over(platform, region, service, defect, workdir) as profile:
            yield profile
        return
    upstream = platform.url("national" if service == "hub" else region, service)
    with DefectProxy(upstream, defect) as proxy:
        yield profile_through(platform, region, service, proxy.url, workdir / "profile.yaml")


def fresh_login_window(platform: ReferencePlatform, region: str) -> None:
    """Restart the province's IdP: its login rate limit (a one-minute window per client
    address, in memory) would otherwise count the sign-ins of several certification runs
    made seconds apart, which real certifications never are."""
    platform.stop_service(region, "identity")
    platform.start_service(region, "identity")


@dataclass(frozen=True)
class Detection:
    variant: str
    service: str
    defect: str
    expected: frozenset[str]
    failed: frozenset[str]
    exit_code: int

    @property
    def detected(self) -> bool:
        return self.exit_code == 1 and bool(self.expected) and self.expected <= self.failed

    @property
    def exact(self) -> bool:
        return self.failed == self.expected


def _ids(ids: frozenset[str]) -> str:
    return ", ".join(sorted(ids)) or "—"


def detection_markdown(rows: list[Detection]) -> str:
    lines = [
        "# Harness self-test: known-bad variants of the reference province",
        "",
        "Each variant is the reference province 340000 with one seeded defect, applied by a",
        "proxy in front of one of its services; `zwfw certify` ran the complete suites through",
        "it. *Detected*: not certified (exit 1) and every expected requirement failed; *exact*:",
        "no other requirement failed.",
        "",
        "| variant | service | defect | expected | failed | exit | detected | exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        detected = "yes" if row.detected else ("n/a" if not row.expected else "no")
        lines.append(
            f"| {row.variant} | {row.service} | {row.defect} | {_ids(row.expected)} | "
            f"{_ids(row.failed)} | {row.exit_code} | {detected} | "
            f"{'yes' if row.exact else 'no'} |"
        )
    found = sum(1 for r in rows if r.expected and r.detected)
    seeded = sum(1 for r in rows if r.expected)
    lines += ["", f"{found} of {seeded} seeded defects detected.", ""]
    return "\n".join(lines)
