"""The load suite's arithmetic without a platform: workload profiles, the arrival schedule,
figures from a generator's records, the honest-generator rule, and the inconclusive status
through to the report."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.loadrun import (
    CpuMeter,
    LocustRun,
    figures,
    judge_error_rate,
    judge_latency,
    judge_no_5xx,
    judge_throughput,
    percentile,
)
from zwfw.harness.requirements import Catalog, Requirement
from zwfw.harness.results import TestRecord as Record
from zwfw.harness.results import aggregate, apply_waivers, is_certified, summarize
from zwfw.harness.runner import resolve_suites, run_scope, suite_dir
from zwfw.harness.waivers import Waiver
from zwfw.harness.workload import (
    LoadTargets,
    Workload,
    WorkloadError,
    load_targets,
    load_workload,
    mix_cycle,
)

from .support import Invoke

T0 = 1_700_000_000.0
TARGETS = LoadTargets(
    p95_seconds=3.0, p99_seconds=5.0, error_budget=0.001, throughput_tolerance=0.05, source="t"
)


def workload(**fields: Any) -> Workload:
    data: dict[str, Any] = {
        "name": "unit", "arrivals_per_second": 2, "ramp_seconds": 0, "duration_seconds": 10,
        "mix": {"browse": 1}, "processes": 1,
    }  # fmt: skip
    data.update(fields)
    return Workload.model_validate(data)


class Meter(CpuMeter):
    """A meter whose single process used `demand` of a CPU, `wait` of it waiting."""

    def __init__(self, running: float, waiting: float) -> None:
        super().__init__(root=1)
        ns = 1_000_000_000
        self.samples = {1: [(T0, 0, 0), (T0 + 10, int(running * 10 * ns), int(waiting * 10 * ns))]}


def run_of(
    load: Workload,
    *,
    latency_ms: float = 20.0,
    status: int = 200,
    slow: dict[str, float] | None = None,
    late: float = 0.0,
    running: float = 0.1,
    waiting: float = 0.02,
) -> LocustRun:
    """Records of a run where every arrival of the schedule ran one browse journey."""
    records: list[list[Any]] = []
    count = int(load.arrivals_per_second * load.run_seconds)
    for n in range(count):
        due = T0 + load.arrival_offset(n)
        start = due + late
        moment = start
        for step in ("discovery", "catalog", "guide"):
            ms = (slow or {}).get(step, latency_ms)
            failed = status >= 400 and step == "catalog"
            records.append(["r", moment, step, ms, status if step == "catalog" else 200,
                            f"HTTP {status}" if failed else None])  # fmt: skip
            moment += ms / 1000
        records.append(["j", "browse", due, start, moment, "failed" if status >= 400 else "ok",
                        None, None])  # fmt: skip
        records.append(["l", int(start), 2.0])
    return LocustRun(load, Path("."), records, Meter(running, waiting), T0, T0 + 20, 0, 1, 8, "")


def test_workload_profiles_are_validated(tmp_path: Path) -> None:
    shipped = Path(suite_dir("loadtests")) / "profiles"
    for path in shipped.glob("*.yaml"):
        assert load_workload(path).duration_seconds > 0
    bad = tmp_path / "bad.yaml"
    for content, message in (
        ({"name": "x", "arrivals_per_second": 1, "duration_seconds": 5, "mix": {"tourist": 1}},
         "mix"),
        ({"name": "x", "arrivals_per_second": 1, "duration_seconds": 5, "mix": {"browse": 0}},
         "at least one above 0"),
        ({"name": "x", "model": "closed", "arrivals_per_second": 1, "duration_seconds": 5,
          "mix": {"browse": 1}}, "needs users"),
        ({"name": "x", "arrivals_per_second": 0, "duration_seconds": 5, "mix": {"browse": 1}},
         "arrivals_per_second"),
    ):  # fmt: skip
        bad.write_text(yaml.safe_dump(content), encoding="utf-8")
        with pytest.raises(WorkloadError, match=message):
            load_workload(bad)
    with pytest.raises(WorkloadError, match="file not found"):
        load_workload(tmp_path / "missing.yaml")


def test_targets_are_the_slo_profiles_numbers() -> None:
    targets = load_targets()
    assert targets.p95_seconds == 3.0
    assert targets.p99_seconds == 5.0
    assert targets.error_budget == pytest.approx(0.001)
    assert targets.throughput_tolerance == 0.05


def test_the_schedule_ramps_then_holds_the_rate_and_keeps_the_mix() -> None:
    load = workload(arrivals_per_second=10, ramp_seconds=4, duration_seconds=6)
    offsets = [load.arrival_offset(n) for n in range(100)]
    assert offsets == sorted(offsets)
    assert offsets[0] == 0.0
    assert offsets[20] == pytest.approx(4.0)  # the ramp holds rate x ramp / 2 arrivals
    steady = [b - a for a, b in zip(offsets[20:], offsets[21:], strict=False)]
    assert all(gap == pytest.approx(0.1) for gap in steady)
    assert offsets[79] == pytest.approx(9.9)  # 60 arrivals in the 6 s steady window
    cycle = mix_cycle({"browse": 3, "citizen": 2, "staff": 1, "system": 2})
    assert len(cycle) == 8
    assert {kind: cycle.count(kind) for kind in set(cycle)} == {
        "browse": 3, "citizen": 2, "staff": 1, "system": 2,
    }  # fmt: skip
    assert all(a != b for a, b in zip(cycle, cycle[1:], strict=False) if a == "staff")


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_a_clean_run_passes_on_its_figures() -> None:
    measured = figures(run_of(workload()), TARGETS)
    assert measured["arrivals"]["on_time"] == 20
    assert measured["throughput"]["answered_per_second"] == 2.0
    assert measured["steps"]["catalog"]["count"] == 20
    assert measured["steps"]["catalog"]["p95_ms"] == 20.0
    assert measured["generator"]["saturated"] is False
    for judgement in (
        judge_latency(measured, ["discovery", "catalog", "guide"]),
        judge_error_rate(measured),
        judge_no_5xx(measured),
        judge_throughput(measured),
    ):
        assert (judgement.status, judgement.reason) == ("pass", None)
    assert sum(measured["series"]["journeys_started"]) == 20
    assert max(measured["series"]["in_flight"]) > 0


def test_latency_over_a_target_fails_naming_the_step_and_figure() -> None:
    measured = figures(run_of(workload(), slow={"catalog": 4000.0}), TARGETS)
    judgement = judge_latency(measured, ["discovery", "catalog", "guide"])
    assert judgement.status == "fail"
    assert judgement.reason == "catalog p95 4000 ms > 3000 ms"
    assert judge_latency(measured, ["discovery", "guide"]).status == "pass"
    # Both sides of the p99 window: 5000 ms passes, 5000.1 ms does not.
    at = figures(run_of(workload(), slow={"guide": 2999.0}), TARGETS)
    assert judge_latency(at, ["guide"]).status == "pass"
    p99 = figures(run_of(workload(), slow={"guide": 5000.1}), TARGETS)
    assert "guide p99 5000 ms > 5000 ms" in (judge_latency(p99, ["guide"]).reason or "")
    assert judge_latency(measured, ["case.rate"]).status == "inconclusive"


def test_server_errors_fail_the_error_requirements() -> None:
    measured = figures(run_of(workload(), status=503), TARGETS)
    error_rate, no_5xx = judge_error_rate(measured), judge_no_5xx(measured)
    assert error_rate.status == "fail"
    assert "catalog 20" in (error_rate.reason or "")
    assert no_5xx.status == "fail"
    assert (no_5xx.reason or "").startswith("20 of 60 requests were answered 5xx")
    # Answered, even if refused: the rate was sustained.
    assert judge_throughput(measured).status == "pass"


def test_a_saturated_generator_never_passes_but_a_5xx_stands() -> None:
    busy = figures(run_of(workload(), status=503, running=0.95, waiting=0.0), TARGETS)
    assert busy["generator"]["saturated"] is True
    assert "demanded 95% of a CPU" in busy["generator"]["inconclusive"][0]
    assert judge_latency(busy, ["discovery"]).status == "inconclusive"
    assert judge_throughput(busy).status == "inconclusive"
    assert judge_error_rate(busy).status == "inconclusive"
    assert judge_no_5xx(busy).status == "fail"
    starved = figures(run_of(workload(), running=0.05, waiting=0.5), TARGETS)
    assert "waited for a CPU 50% of the time" in starved["generator"]["inconclusive"][0]
    assert judge_latency(starved, ["discovery"]).status == "inconclusive"


def test_late_arrivals_make_passes_inconclusive_and_failures_stand() -> None:
    late = figures(run_of(workload(), late=2.0), TARGETS)
    assert late["arrivals"]["on_time"] == 0
    assert judge_throughput(late).status == "inconclusive"
    assert "2/s was not reached" in (judge_latency(late, ["discovery"]).reason or "")
    slow_and_late = figures(run_of(workload(), late=2.0, slow={"catalog": 4000.0}), TARGETS)
    assert judge_latency(slow_and_late, ["catalog"]).status == "fail"
    # A shortfall of journeys the generator never offered on time is not the server's.
    short = copy.deepcopy(late)
    short["throughput"]["answered_per_second"] = 0.5
    shortfall = judge_throughput(short)
    assert shortfall.status == "inconclusive"
    assert "2/s was not reached" in (shortfall.reason or "")
    assert "0.5 journeys/s answered" in (shortfall.reason or "")
    on_time_short = figures(run_of(workload()), TARGETS)
    on_time_short["throughput"]["answered_per_second"] = 0.5
    assert judge_throughput(on_time_short).status == "fail"


def catalog(*ids: str) -> Catalog:
    return Catalog(
        spec_version="t",
        requirements=[
            Requirement(id=i, level="MUST", title="t", source="s", text="t") for i in ids
        ],
    )


def test_inconclusive_is_never_a_pass_and_can_be_waived() -> None:
    rules = catalog("RESP-T-001", "RESP-T-002")
    records = [
        Record("a", ("RESP-T-001",), outcome="inconclusive", reason="saturated"),
        Record("b", ("RESP-T-002",), outcome="passed"),
        Record("c", ("RESP-T-002",), outcome="inconclusive", reason="late"),
    ]
    results = aggregate(rules, records)
    assert [(r.status, r.reason) for r in results] == [
        ("inconclusive", "a: saturated"),
        ("inconclusive", "c: late"),
    ]
    assert is_certified(results) is False
    summary = summarize(results)
    assert summary["inconclusive"] == 2
    assert summary["blocking"] == ["RESP-T-001", "RESP-T-002"]
    failing = aggregate(rules, [*records, Record("d", ("RESP-T-001",), outcome="failed")])
    assert failing[0].status == "fail"
    waiver = Waiver(
        requirement="RESP-T-001", justification="Measured again on the generator hosts.",
        approver="Li Lei", expires=dt.date(2099, 1, 1),
    )  # fmt: skip
    waived, outcomes = apply_waivers(rules, results, [waiver], dt.date(2030, 1, 1))
    assert waived[0].status == "waived"
    assert waived[0].waived_status == "inconclusive"
    assert outcomes[0].state == "applied"


def test_the_load_suite_is_opt_in_and_answers_to_load() -> None:
    assert resolve_suites(["load"]) == [suite_dir("loadtests")]
    assert suite_dir("loadtests") not in resolve_suites()
    assert run_scope(resolve_suites()) == (False, ["security", "loadtests", "faults"])
    assert run_scope([*resolve_suites(), suite_dir("loadtests")]) == (False, ["security", "faults"])
    everything = [*resolve_suites(), *(suite_dir(n) for n in ("security", "loadtests", "faults"))]
    assert run_scope(everything) == (False, [])
    assert suite_dir("faults") not in resolve_suites()
    assert suite_dir("security") not in resolve_suites()
    assert run_scope(resolve_suites(["load"]))[0] is True
    with pytest.raises(HarnessConfigError, match=r"unknown suite 'lode'.*load \(= loadtests\)"):
        resolve_suites(["lode"])


def test_certify_refuses_a_bad_workload_in_one_line(zwfw: Invoke, tmp_path: Path) -> None:
    profile = Path(suite_dir("conformance")) / "profiles" / "example.yaml"
    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\narrivals_per_second: -1\n", encoding="utf-8")
    result = zwfw("certify", "--target", profile, "--out", tmp_path / "out", "--suites", "load",
                  "--workload", bad)  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("zwfw certify: error: workload profile ")
    assert result.stderr.count("\n") == 1


def test_capacity_refuses_bad_usage_in_one_line(zwfw: Invoke, tmp_path: Path) -> None:
    profile = Path(suite_dir("conformance")) / "profiles" / "example.yaml"
    unknown = zwfw("capacity", "--target", profile, "--out", tmp_path, "--journey", "tourist")
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "zwfw capacity: error: unknown journey 'tourist'; one of browse, citizen, staff, system\n"
    )
    missing = zwfw("capacity", "--target", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert missing.exit_code == 2
    assert "file not found" in missing.stderr
    assert not (tmp_path / "o").exists()
