"""What the faults suite needs: per scenario one run of the load suite's journeys while the
harness causes the fault the target profile declares (`faults:`), shared by the checks of
that scenario. See README.md beside this file and `zwfw.harness.faults`.

The credentials are the load suite's (loadtests/conftest.py), plus `hub_supervise_token`
(`hub:supervise`) to read the hub's reports back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zwfw.harness.faults import (
    FaultError,
    Scenario,
    clock_skew_scenario,
    database_restart_scenario,
    hub_outage_scenario,
    measure_scenario,
    replica_scenario,
    slow_database_scenario,
)
from zwfw.harness.loadrun import LoadRunError
from zwfw.harness.profile import Faults, SecretUnavailable, TargetProfile
from zwfw.harness.pytest_plugin import harness_run
from zwfw.harness.redact import Redactor
from zwfw.harness.results import Inconclusive
from zwfw.harness.workload import Workload, WorkloadError, load_workload

DEFAULT_WORKLOAD = Path(__file__).resolve().parent / "workload.yaml"


@pytest.fixture(scope="session")
def fault_workload(pytestconfig: pytest.Config) -> Workload:
    chosen = harness_run(pytestconfig).workload or DEFAULT_WORKLOAD
    try:
        return load_workload(chosen)
    except WorkloadError as error:
        pytest.fail(str(error), pytrace=False)


def _faults(target: TargetProfile) -> Faults:
    if target.faults is None:
        raise Inconclusive(
            "the target profile declares no faults: section (how to cause and undo each "
            "fault), so the harness may not disturb this deployment"
        )
    return target.faults


def _scenario_figures(
    pytestconfig: pytest.Config,
    target: TargetProfile,
    workload: Workload,
    make: Callable[[TargetProfile, Faults], Scenario],
) -> dict[str, Any]:
    run = harness_run(pytestconfig)
    faults = _faults(target)
    if target.source is None:
        pytest.fail("the target profile has no file to hand to the generator", pytrace=False)
    scenario = make(target, faults)
    evidence = run.evidence
    with tempfile.TemporaryDirectory(prefix=f"zwfw-faults-{scenario.name}-") as scratch:
        try:
            figures = measure_scenario(
                target.source, target, scenario, workload, faults,
                work_dir=Path(scratch),
                evidence_dir=evidence.directory if evidence is not None else None,
                redactor=(
                    evidence.redactor if evidence is not None
                    else Redactor(target.available_secrets())
                ),
            )  # fmt: skip
        except (LoadRunError, FaultError) as error:
            raise Inconclusive(f"the {scenario.name} scenario did not complete: {error}") from None
        except SecretUnavailable as error:
            pytest.fail(f"reading acknowledged writes back: {error}", pytrace=False)
    previous = run.measurements.get("faults", {})
    run.measure("faults", {**previous, scenario.name: figures})
    return figures


@pytest.fixture(scope="session")
def replica_figures(
    pytestconfig: pytest.Config, target: TargetProfile, fault_workload: Workload
) -> dict[str, Any]:
    faults = _faults(target)
    if not faults.replica:
        raise Inconclusive("the target profile's faults: section declares no replica to kill")
    return _scenario_figures(pytestconfig, target, fault_workload, replica_scenario)


@pytest.fixture(scope="session")
def hub_outage_figures(
    pytestconfig: pytest.Config, target: TargetProfile, fault_workload: Workload
) -> dict[str, Any]:
    faults = _faults(target)
    if faults.hub_outage is None:
        raise Inconclusive("the target profile's faults: section declares no hub_outage")
    return _scenario_figures(pytestconfig, target, fault_workload, hub_outage_scenario)


@pytest.fixture(scope="session")
def clock_skew_figures(
    pytestconfig: pytest.Config, target: TargetProfile, fault_workload: Workload
) -> dict[str, Any]:
    faults = _faults(target)
    if faults.clock_skew is None:
        raise Inconclusive("the target profile's faults: section declares no clock_skew")
    return _scenario_figures(pytestconfig, target, fault_workload, clock_skew_scenario)


@pytest.fixture(scope="session")
def database_restart_figures(
    pytestconfig: pytest.Config, target: TargetProfile, fault_workload: Workload
) -> dict[str, Any]:
    faults = _faults(target)
    if faults.database_restart is None:
        raise Inconclusive("the target profile's faults: section declares no database_restart")
    return _scenario_figures(pytestconfig, target, fault_workload, database_restart_scenario)


@pytest.fixture(scope="session")
def slow_database_figures(
    pytestconfig: pytest.Config, target: TargetProfile, fault_workload: Workload
) -> dict[str, Any]:
    faults = _faults(target)
    if faults.slow_database is None:
        raise Inconclusive("the target profile's faults: section declares no slow_database")
    return _scenario_figures(pytestconfig, target, fault_workload, slow_database_scenario)
