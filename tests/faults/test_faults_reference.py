"""The faults suite against the reference platform: `zwfw certify --suites faults` as an
operator runs it. On a platform with two worker processes per service every FT-* requirement
passes: a killed worker's survivor carries the service, nothing acknowledged is lost or
duplicated, the halls serve through a hub outage, a hall whose clock is skewed is refused,
and taken again once it is set right, and the services reconnect by themselves when their
database restarts (a PostgreSQL cluster of the test's own, never the machine's shared
server); one with a single process per service fails the replica requirement, and one
whose hall has no outbox fails the requirement that the reports of a hub outage arrive.

Every service keeps its data in its own PostgreSQL database (``service_databases``, or the
test's own cluster for the replicated platform), as a
replicated deployment does: two workers writing one SQLite file wait on each other's locks
("database is locked") and the survivor of a kill fails requests it should carry. Without
PostgreSQL these tests fail.

Each platform serves its module's run; the load is faults/workload.yaml (4 arrivals/s), so the
whole stage takes a few minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pgcluster import Cluster, own_cluster

from zwfw.reference import DEFAULT_PROVINCES, ReferencePlatform

A = "340000"
REPO = Path(__file__).resolve().parents[2]
ZWFW = str(Path(sys.executable).with_name("zwfw"))
SCHEMA = json.loads((REPO / "conformance" / "spec" / "report.schema.json").read_text("utf-8"))
FT = ("FT-REP-001", "FT-REP-002", "FT-HUB-001", "FT-HUB-002", "FT-CLK-001", "FT-DB-001",
      "FT-DB-002", "FT-DB-003")  # fmt: skip


def certify(
    platform: ReferencePlatform, profile: Path, out: Path, home: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_REF_")}
    env.update(platform.credentials(A))
    env["ZWFW_HARNESS_HOME"] = str(home)
    result = subprocess.run(
        [ZWFW, "certify", "--target", str(profile), "--out", str(out), "--suites", "faults",
         "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    report = out / "report.json"
    assert report.is_file(), f"no report (exit {result.returncode}): {result.stderr[-2000:]}"
    return result, json.loads(report.read_text(encoding="utf-8"))


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in document["requirements"] if r["in_scope"]}


def explain(document: dict[str, Any]) -> str:
    return "\n".join(
        f"{r['id']}: {r['status']}: {r['reason']}"
        for r in document["requirements"]
        if r["in_scope"] and r["status"] != "pass"
    )


def platform(
    tmp_path: Path,
    service_databases: Callable[[str], str],
    workers: int,
    service_settings: dict[str, dict[str, Any]] | None = None,
) -> ReferencePlatform:
    return ReferencePlatform(
        tmp_path / "reference",
        DEFAULT_PROVINCES[:1],
        workers=workers,
        database_url_for=service_databases,
        service_settings=service_settings,
    )


@pytest.fixture
def own_postgres() -> Iterator[Cluster]:
    with own_cluster() as cluster:
        yield cluster


@pytest.fixture
def replicated(tmp_path: Path, own_postgres: Cluster) -> Iterator[ReferencePlatform]:
    # Its databases live in a cluster of its own, which the database restart may restart
    # (-m immediate: a crash, in-flight transactions lost, committed ones recovered).
    cluster = own_postgres
    restart = cluster.restart_fault()
    with ReferencePlatform(
        tmp_path / "reference", DEFAULT_PROVINCES[:1], workers=2,
        database_url_for=cluster.database_url_for, database_restart=restart,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture
def single(tmp_path: Path, service_databases: Callable[[str], str]) -> Iterator[ReferencePlatform]:
    with platform(tmp_path, service_databases, workers=1) as running:
        yield running


@pytest.fixture
def without_outbox(
    tmp_path: Path, service_databases: Callable[[str], str]
) -> Iterator[ReferencePlatform]:
    settings = {
        # The hall's outbox disabled: each report gets one short attempt and is dropped when
        # the hub does not answer it, instead of staying queued until it does.
        "hall": {"hub": {"max_attempts": 1, "timeout_seconds": 0.5}},
        # The outage stops the hub (SIGSTOP), whose sockets still take what is sent meanwhile
        # and hand it over when it continues, as if delivered late. A dead link would lose
        # it: with a 10 s freshness window the hub refuses it as stale, as good as lost.
        "hub": {"channel_window_seconds": 10},
    }
    with platform(tmp_path, service_databases, workers=1, service_settings=settings) as running:
        yield running


def narrowed_profile(running: ReferencePlatform, name: str, faults: dict[str, Any]) -> Path:
    """The province's profile with its `faults:` section replaced by ``faults``."""
    profile = yaml.safe_load(running.profile_path(A).read_text(encoding="utf-8"))
    profile["faults"] = faults
    narrowed = running.profile_path(A).with_name(f"{name}.yaml")
    narrowed.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return narrowed


def test_two_workers_per_service_under_every_declared_fault(
    replicated: ReferencePlatform, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result, document = certify(replicated, replicated.profile_path(A), out, tmp_path / "home")
    found = statuses(document)
    assert {rid: found[rid] for rid in FT} == dict.fromkeys(FT, "pass"), explain(document)
    assert result.returncode == 0, result.stderr[-2000:]
    jsonschema.Draft202012Validator(SCHEMA).validate(document)

    faults = document["measurements"]["faults"]
    replica = faults["replica"]
    assert replica["judged_services"] == ["identity", "hall", "elicense", "eseal", "hub"]
    assert set(replica["recovery_seconds"]) == set(replica["judged_services"])
    caused = [e for e in replica["events"] if e["what"].startswith("caused")]
    assert len(caused) == 5
    assert all(e["exit"] == 0 for e in caused)
    assert replica["during"]["requests"] > 0
    assert replica["during"]["success_rate"] >= 0.995
    assert all(took is not None for took in replica["recovery_seconds"].values())
    assert replica["durability"]["acknowledged"] > 0
    assert replica["durability"]["lost"] == 0 == replica["durability"]["duplicated"]
    assert replica["durability"]["found"] == replica["durability"]["acknowledged"]

    outage = faults["hub-outage"]
    assert "hub" not in outage["judged_services"]
    assert [e["what"].split(":")[0] for e in outage["events"]] == ["caused", "undone", "recovered"]
    assert outage["outbox"]["cases"] > 0
    assert outage["outbox"]["arrived_once"] == outage["outbox"]["cases"]
    # Requests to the hub itself failed or hung while it was cut off: it was really down.
    rows = (out / "evidence" / "faults-hub-outage" / "requests.csv").read_text("utf-8")
    hub = [line.split(",") for line in rows.splitlines() if ",system.hub-report," in line]
    assert any(row[4] or float(row[2]) >= 5000 for row in hub), "the hub answered throughout"

    skew = faults["clock-skew"]
    assert skew["skew"]["probe"]["status"] == 401
    assert skew["skew"]["probe"]["type"] == "urn:zwfw:problem:channel:stale"
    assert skew["skew"]["skewed_cases"] > 0
    assert skew["skew"]["accepted_while_skewed"] == 0
    assert skew["outbox"]["arrived_once"] == skew["outbox"]["cases"] > 0

    restart = faults["database-restart"]
    assert [e["what"].split(":")[0] for e in restart["events"]] == [
        "caused", "recovered", "recovered"]  # fmt: skip
    assert all(took is not None for took in restart["recovery_seconds"].values())
    away, after = restart["restart"]["away"], restart["restart"]["after"]
    assert away["not_503"] == 0 == away["over_answer_bound"], away
    assert after["requests"] > 0, after
    assert after["success_rate"] >= 0.995, after
    assert restart["durability"]["acknowledged"] > 0
    assert restart["durability"]["lost"] == 0 == restart["durability"]["duplicated"]

    # The hall's case table locked: case submissions give up with 503 within the bound.
    slow = faults["slow-database"]["restart"]["away"]
    assert slow["failures_by_answer"].get("HTTP 503", 0) > 0, slow
    assert slow["not_503"] == 0 == slow["over_answer_bound"], slow

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Fault tolerance under load" in html
    assert html.count("fault window") >= 7
    assert "Database slow" in html
    assert "Skewed clock" in html
    verified = subprocess.run([ZWFW, "verify-report", str(out)], capture_output=True,
                              text=True, check=False)  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_a_single_process_service_fails_the_replica_requirement(
    single: ReferencePlatform, tmp_path: Path
) -> None:
    # The operator's profile narrowed to one service (the e-seal service, which no read-back
    # needs) with a short recovery bound: nothing restarts a killed single process.
    declared = yaml.safe_load(single.profile_path(A).read_text(encoding="utf-8"))["faults"]
    faults = {"replica": {"eseal": declared["replica"]["eseal"]}, "recovery_seconds": 8}
    narrowed = narrowed_profile(single, "single", faults)

    result, document = certify(single, narrowed, tmp_path / "report", tmp_path / "home")
    found = statuses(document)
    assert found["FT-REP-001"] == "fail", explain(document)
    assert found["FT-REP-002"] == "pass", explain(document)
    assert found["FT-HUB-001"] == found["FT-HUB-002"] == found["FT-CLK-001"] == "inconclusive"
    assert result.returncode == 1
    reason = next(r["reason"] for r in document["requirements"] if r["id"] == "FT-REP-001")
    assert "not recovered within 8 s: eseal" in reason
    assert "eseal" in reason.split("(")[1]


def test_a_hall_without_an_outbox_fails_the_reports_requirement(
    without_outbox: ReferencePlatform, tmp_path: Path
) -> None:
    # Only the hub outage, held 25 s: what the hall gave up in its first 15 s is older than
    # the hub's window when the hub continues. The delivery bound covers the reports sent
    # in the last 10 s (taken when it continues), not a long wait for those that never come.
    declared = yaml.safe_load(without_outbox.profile_path(A).read_text(encoding="utf-8"))
    outage = {**declared["faults"]["hub_outage"], "hold_seconds": 25}
    faults = {"hub_outage": outage, "delivery_seconds": 30}
    narrowed = narrowed_profile(without_outbox, "without-outbox", faults)

    result, document = certify(without_outbox, narrowed, tmp_path / "report", tmp_path / "home")
    found = statuses(document)
    # Citizens are served throughout (the hall never waited for the hub); what it could not
    # deliver during the outage is gone.
    assert found["FT-HUB-002"] == "fail", explain(document)
    assert found["FT-HUB-001"] == "pass", explain(document)
    assert found["FT-REP-001"] == found["FT-REP-002"] == found["FT-CLK-001"] == "inconclusive"
    assert result.returncode == 1
    reason = next(r["reason"] for r in document["requirements"] if r["id"] == "FT-HUB-002")
    assert "acknowledged cases never reported to the hub within the delivery bound" in reason
    outbox = document["measurements"]["faults"]["hub-outage"]["outbox"]
    assert 0 < outbox["missing"] <= outbox["cases"]
    assert outbox["arrived_more_than_once"] == 0


@pytest.fixture
def unbounded_waits(
    tmp_path: Path, service_databases: Callable[[str], str]
) -> Iterator[ReferencePlatform]:
    # A hall that waits on its database without bound (no statement or pool time-out).
    settings = {"hall": {"database_wait_seconds": None}}
    with platform(tmp_path, service_databases, workers=1, service_settings=settings) as running:
        yield running


def test_a_hall_that_waits_on_a_slow_database_fails_the_fail_fast_requirement(
    unbounded_waits: ReferencePlatform, tmp_path: Path
) -> None:
    declared = yaml.safe_load(unbounded_waits.profile_path(A).read_text(encoding="utf-8"))
    # Declared by the platform itself: its databases are PostgreSQL (the machine's server; a
    # lock on one table of the test's own database disturbs nothing else).
    faults = {"slow_database": declared["faults"]["slow_database"]}
    narrowed = narrowed_profile(unbounded_waits, "unbounded", faults)

    result, document = certify(unbounded_waits, narrowed, tmp_path / "report", tmp_path / "home")
    found = statuses(document)
    assert found["FT-DB-003"] == "fail", explain(document)
    assert found["FT-REP-001"] == found["FT-DB-001"] == "inconclusive"
    assert result.returncode == 1
    reason = next(r["reason"] for r in document["requirements"] if r["id"] == "FT-DB-003")
    assert "to be answered while the database was slow" in reason
