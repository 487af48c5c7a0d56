"""Static checks of the deployment behind the target (SEC-DEP-001..005), when the profile
declares one (`deployment: {state_dir: ...}`): the secrets' modes and owners under the
playbooks' state directory, the listening ports of its processes, the nginx gateway's rendered
configuration, and with `playbooks` / `manifests` ansible-lint and checkov. The same checks as
`zwfw security static` (src/zwfw/harness/deploycheck.py); the findings are also written as
`security.sarif` next to the run's results.

Without a declared deployment the requirements are out of scope (`conftest.py`); a check that
cannot judge (nothing running, no gateway configured) leaves its requirement not tested, never
passed."""

from __future__ import annotations

import json

import pytest

from zwfw.harness.deploycheck import CheckResult, StaticCheckError, run_static_checks, sarif
from zwfw.harness.profile import TargetProfile


@pytest.fixture(scope="session")
def static_checks(target: TargetProfile, pytestconfig: pytest.Config) -> dict[str, CheckResult]:
    deployment = target.deployment
    if deployment is None:
        pytest.skip("the profile declares no deployment")
    try:
        results = run_static_checks(
            deployment.state_dir,
            service_user=deployment.service_user,
            playbooks=deployment.playbooks,
            manifests=deployment.manifests,
        )
    except StaticCheckError as error:
        pytest.fail(f"the deployment's static checks could not run: {error}")
    from zwfw.harness.pytest_plugin import RUN_KEY

    run = pytestconfig.stash.get(RUN_KEY, None)
    if run is not None and run.results_path is not None:
        target_file = run.results_path.parent / "security.sarif"
        target_file.parent.mkdir(parents=True, exist_ok=True)
        target_file.write_text(json.dumps(sarif(results), indent=2, ensure_ascii=False) + "\n")
    return {result.requirement: result for result in results}


def _judge(requirement: str, static_checks: dict[str, CheckResult]) -> None:
    result = static_checks.get(requirement)
    if result is None:
        pytest.skip(f"{requirement}: the profile's deployment gives nothing for this check")
    if result.not_checked is not None:
        pytest.skip(f"{requirement} not checked: {result.not_checked}")
    problems = [f"{finding.failure_mode}: {finding.message}" for finding in result.findings]
    assert not problems, "; ".join(problems)


@pytest.mark.requirement("SEC-DEP-001", catches=("secret-readable-by-others", "secret-wrong-owner"))
def test_deployed_secrets_are_readable_by_the_service_user_only(
    static_checks: dict[str, CheckResult],
) -> None:
    _judge("SEC-DEP-001", static_checks)


@pytest.mark.requirement("SEC-DEP-002", catches=("undeclared-port", "wider-address"))
def test_the_deployment_listens_on_the_declared_ports_only(
    static_checks: dict[str, CheckResult],
) -> None:
    _judge("SEC-DEP-002", static_checks)


@pytest.mark.requirement(
    "SEC-DEP-003",
    catches=(
        "legacy-protocol",
        "weak-cipher",
        "hsts-missing",
        "server-tokens-on",
        "body-size-unbounded",
    ),
)
def test_the_gateway_configuration_is_hardened(static_checks: dict[str, CheckResult]) -> None:
    _judge("SEC-DEP-003", static_checks)


@pytest.mark.requirement("SEC-DEP-004", catches=("ansible-lint",))
def test_the_playbooks_pass_ansible_lint(static_checks: dict[str, CheckResult]) -> None:
    _judge("SEC-DEP-004", static_checks)


@pytest.mark.requirement("SEC-DEP-005", catches=("checkov",))
def test_the_rendered_manifests_pass_checkov(static_checks: dict[str, CheckResult]) -> None:
    _judge("SEC-DEP-005", static_checks)
