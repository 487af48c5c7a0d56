"""`zwfw capacity`: step the load of one journey at a time until an SLO breaks, and report the
highest arrival rate each journey sustained.

For each journey, runs of `--step-seconds` each (after a short ramp) at rates `--start`,
`--start × --factor`, … up to `--max-rate`. A step passes when every step of the journey keeps
p95 and p99 within the SLO profile's targets, failed requests stay within the error budget,
no 5xx is answered and the rate is sustained; the first step that fails ends the journey. A
step the generator cannot stand behind (saturated, or the rate not offered) ends it too, as
"inconclusive": the capacity is then at least the last passing rate, not a measured limit.

Writes `capacity.json` (every step's figures) and `capacity.html` (a plot per journey).
Exit 0: every journey got a result; 1: a journey broke an SLO already at the first rate; 2:
usage or configuration error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from markupsafe import escape

from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.loadplots import capacity_plot
from zwfw.harness.loadrun import (
    LoadRunError,
    judge_error_rate,
    judge_latency,
    judge_no_5xx,
    judge_throughput,
    measure,
)
from zwfw.harness.profile import TargetProfile, load_profile
from zwfw.harness.redact import Redactor
from zwfw.harness.results import write_text
from zwfw.harness.workload import JOURNEY_STEPS, JOURNEYS, Workload, load_targets, load_workload

DEFAULT_JOURNEYS = ("browse", "citizen", "system")


@dataclass(frozen=True)
class Plan:
    journeys: tuple[str, ...]
    start: float
    factor: float
    max_rate: float
    step_seconds: float


def judge_step(measured: dict[str, Any], journey: str) -> tuple[str, list[str]]:
    """pass, fail or inconclusive for one step's figures, with the reasons."""
    steps = [s for s in JOURNEY_STEPS[journey] if measured["steps"].get(s, {}).get("count")]
    judgements = [
        judge_latency(measured, steps),
        judge_error_rate(measured),
        judge_no_5xx(measured),
        judge_throughput(measured),
    ]
    reasons = list(dict.fromkeys(j.reason for j in judgements if j.reason))
    if any(j.status == "fail" for j in judgements):
        return "fail", reasons
    if any(j.status == "inconclusive" for j in judgements):
        return "inconclusive", reasons
    return "pass", []


def _worst(measured: dict[str, Any], journey: str, key: str) -> float | None:
    values = [
        figures[key]
        for step, figures in measured["steps"].items()
        if step in JOURNEY_STEPS[journey] and figures.get(key) is not None
    ]
    return max(values) if values else None


def settle(profile: TargetProfile, *, quiet_seconds: float = 1.0, limit: float = 300.0) -> None:
    """Wait until the target answers within `quiet_seconds` three times in a row: a step that
    broke an SLO leaves queues behind (requests its clients gave up on are still worked
    off), which the next step must not inherit. The hall's discovery document is asked, as
    it is served like the journeys' pages; other services by their base URL."""
    from zwfw.harness.http import client

    probes = [
        f"{url}/.well-known/zwfw" if service == "hall" else url
        for service, url in profile.services.configured().items()
    ]
    deadline, quiet = time.monotonic() + limit, 0
    with client(profile, timeout=max(quiet_seconds * 5, 5.0)) as http:
        while quiet < 3 and time.monotonic() < deadline:
            fast = True
            for url in probes:
                began = time.monotonic()
                try:
                    http.get(url)
                except httpx.HTTPError:
                    fast = False
                    continue
                fast = fast and time.monotonic() - began <= quiet_seconds
            quiet = quiet + 1 if fast else 0
            time.sleep(1.0 if fast else 3.0)


def step_workload(base: Workload, journey: str, rate: float, seconds: float) -> Workload:
    return base.scaled(
        rate,
        name=f"capacity-{journey}",
        description=f"capacity step: {journey} at {rate:g}/s",
        mix={journey: 1},
        ramp_seconds=min(base.ramp_seconds, 5.0),
        duration_seconds=seconds,
        # Enough users for journeys slowed down at the highest rates.
        max_concurrency=max(base.max_concurrency, int(rate * 10)),
    )


def find_capacity(
    target: Path,
    profile: TargetProfile,
    base: Workload,
    plan: Plan,
    *,
    redactor: Redactor,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    targets = load_targets()
    results: dict[str, Any] = {}
    for journey in plan.journeys:
        steps: list[dict[str, Any]] = []
        highest: float | None = None
        rate = plan.start
        ended = "the highest rate asked for (--max-rate) was sustained"
        while rate <= plan.max_rate + 1e-9:
            settle(profile)
            workload = step_workload(base, journey, rate, plan.step_seconds)
            try:
                measured = measure(target, profile, workload, targets, evidence_dir=None,
                                   redactor=redactor)  # fmt: skip
            except LoadRunError as error:
                steps.append({"rate": rate, "status": "inconclusive", "reasons": [str(error)]})
                ended = f"the run at {rate:g}/s did not complete"
                break
            status, reasons = judge_step(measured, journey)
            steps.append({
                "rate": rate,
                "status": status,
                "reasons": reasons,
                "worst_p95_ms": _worst(measured, journey, "p95_ms"),
                "worst_p99_ms": _worst(measured, journey, "p99_ms"),
                "p95_target_ms": targets.p95_seconds * 1000,
                "p99_target_ms": targets.p99_seconds * 1000,
                "error_rate": measured["totals"]["error_rate"],
                "answered_per_second": measured["throughput"]["answered_per_second"],
                "requests_per_second": measured["throughput"]["requests_per_second"],
                "generator": {
                    "max_cpu_demand": measured["generator"]["max_cpu_demand"],
                    "saturated": measured["generator"]["saturated"],
                },
                "steps": measured["steps"],
            })  # fmt: skip
            progress(f"{journey} at {rate:g}/s: {status}" + (f" ({reasons[0]})" if reasons else ""))
            if status != "pass":
                ended = (
                    f"an SLO broke at {rate:g}/s"
                    if status == "fail"
                    else f"the generator could not stand behind {rate:g}/s"
                )
                break
            highest = rate
            rate = round(rate * plan.factor, 3)
        results[journey] = {
            "highest_sustained_per_second": highest,
            "measured_limit": bool(steps) and steps[-1]["status"] == "fail",
            "ended": ended,
            "steps": steps,
        }
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {"name": profile.name, "region_code": profile.region_code,
                   "fingerprint": profile.fingerprint()},
        "base_workload": base.as_dict(),
        "targets": targets.as_dict(),
        "plan": plan.__dict__,
        "journeys": results,
    }  # fmt: skip


def capacity_html(document: dict[str, Any]) -> str:
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f"<title>Capacity of {escape(document['target']['name'])}</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;"
        "padding:0 1rem}svg text{font:11px system-ui,sans-serif}table{border-collapse:collapse}"
        "td,th{padding:.2rem .6rem;border-bottom:1px solid #eaeef2;text-align:left}"
        "figure{margin:1rem 0}figcaption{color:#57606a;font-size:.85rem}</style></head><body>",
        f"<h1>Capacity of {escape(document['target']['name'])} "
        f"({escape(document['target']['region_code'])})</h1>",
        f"<p>Generated {escape(document['generated_at'])}; targets p95 ≤ "
        f"{document['targets']['p95_seconds']} s, p99 ≤ {document['targets']['p99_seconds']} s "
        "(charts/monitoring/slo-profile.yaml).</p>",
        "<table><tr><th>journey</th><th>highest sustained rate</th><th>why it ended</th></tr>",
    ]
    for journey, result in document["journeys"].items():
        highest = result["highest_sustained_per_second"]
        shown = f"{highest:g}/s" if highest is not None else "none"
        if highest is not None and not result["measured_limit"]:
            shown = f"≥ {shown}"
        parts.append(
            f"<tr><td>{escape(journey)}</td><td>{escape(shown)}</td>"
            f"<td>{escape(result['ended'])}</td></tr>"
        )
    parts.append("</table>")
    for journey, result in document["journeys"].items():
        measured = [step for step in result["steps"] if "worst_p95_ms" in step]
        if measured:
            parts.append(str(capacity_plot(measured, journey)))
    parts.append("</body></html>")
    return "\n".join(parts)


def capacity_command(
    target: Path = typer.Option(..., "--target", metavar="FILE", help="Target profile (YAML)."),
    out: Path = typer.Option(..., "--out", metavar="DIR", help="Where capacity.json/html go."),
    journeys: list[str] | None = typer.Option(
        None,
        "--journey",
        metavar="JOURNEY",
        help=f"Journey to step ({', '.join(JOURNEYS)}); repeat. "
        f"Default: {', '.join(DEFAULT_JOURNEYS)}.",
    ),
    workload: Path | None = typer.Option(
        None,
        "--workload",
        metavar="FILE",
        help="Base workload profile (ramp, generator limits, sign-in budget); default "
        "loadtests/profiles/certify.yaml.",
    ),
    start: float = typer.Option(2.0, "--start", min=0.01, help="First arrival rate (/s)."),
    factor: float = typer.Option(1.5, "--factor", min=1.01, help="Rate multiplier per step."),
    max_rate: float = typer.Option(200.0, "--max-rate", min=0.01, help="Highest rate tried."),
    step_seconds: float = typer.Option(
        20.0, "--step-seconds", min=5.0, max=3600.0, help="Steady window of each step."
    ),
) -> None:
    """Step the load until an SLO breaks; report the highest sustained rate per journey."""
    from zwfw.harness.runner import check_reachable, suite_dir

    chosen = tuple(journeys or DEFAULT_JOURNEYS)
    unknown = [j for j in chosen if j not in JOURNEYS]
    try:
        if unknown:
            raise HarnessConfigError(
                f"unknown journey {unknown[0]!r}; one of {', '.join(JOURNEYS)}"
            )
        if out.exists() and not out.is_dir():
            raise HarnessConfigError(f"--out {out}: exists and is not a directory")
        profile = load_profile(target)
        base = load_workload(workload or suite_dir("loadtests") / "profiles" / "certify.yaml")
        check_reachable(profile)
    except HarnessConfigError as error:
        typer.echo(f"zwfw capacity: error: {error}", err=True)
        raise typer.Exit(2) from None
    secrets = []
    for name in profile.credentials:
        try:
            secrets.append(profile.secret(name))
        except LookupError:
            continue
    plan = Plan(chosen, start, factor, max_rate, step_seconds)
    document = find_capacity(
        target, profile, base, plan, redactor=Redactor(secrets),
        progress=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "capacity.json", json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    write_text(out / "capacity.html", capacity_html(document))
    none = []
    for journey, result in document["journeys"].items():
        highest = result["highest_sustained_per_second"]
        if highest is None:
            none.append(journey)
            typer.echo(f"{journey}: no sustained rate ({result['ended']})")
        else:
            bound = "" if result["measured_limit"] else "at least "
            typer.echo(f"{journey}: {bound}{highest:g} journeys/s sustained ({result['ended']})")
    typer.echo(f"report: {out / 'capacity.html'} ({out / 'capacity.json'})")
    raise typer.Exit(1 if none else 0)


def capacity_summary(document: dict[str, Any]) -> Sequence[tuple[str, float | None]]:
    return [(j, r["highest_sustained_per_second"]) for j, r in document["journeys"].items()]
