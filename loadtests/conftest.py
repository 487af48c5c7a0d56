"""What the load suite needs: one Locust run per session, shared by every RESP-* check.

The run uses the target profile (base URLs, TLS trust, client certificate) and these
credentials (each `{env: VAR}` in the profile's `credentials:`), which the generator processes
read from their inherited environment:

- citizen: `identity_rp_client_id`, `identity_rp_redirect_uri`, `identity_user`,
  `identity_password` (a public relying party and a test person signing in with a password);
- staff: `hall_staff_token` (`hall:case:handle`);
- system: `identity_client_id`, `identity_client_key` (private_key_jwt client),
  `elicense_holder_token` (the holder of a licence, to verify its seal), `hub_report_token`,
  `channel_signing_key`, `channel_key_id`; the profile's declared `licence_identifiers` and
  `implementation_codes`.

The workload profile is `--zwfw-workload FILE` (`zwfw certify --workload FILE`), by default
`profiles/certify.yaml` beside this file. Run it against a certification sandbox: it applies
for cases, rates them and reports synthetic cases to the hub at the profile's rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zwfw.harness.loadrun import LoadRunError, measure
from zwfw.harness.profile import TargetProfile
from zwfw.harness.pytest_plugin import harness_run
from zwfw.harness.redact import Redactor
from zwfw.harness.results import Inconclusive
from zwfw.harness.workload import Workload, WorkloadError, load_targets, load_workload

DEFAULT_WORKLOAD = Path(__file__).resolve().parent / "profiles" / "certify.yaml"


@pytest.fixture(scope="session")
def workload(pytestconfig: pytest.Config) -> Workload:
    chosen = harness_run(pytestconfig).workload or DEFAULT_WORKLOAD
    try:
        return load_workload(chosen)
    except WorkloadError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def load_figures(
    pytestconfig: pytest.Config, target: TargetProfile, workload: Workload
) -> dict[str, Any]:
    """The figures of the session's one load run (kept for the report's measurements)."""
    run = harness_run(pytestconfig)
    if target.source is None:
        pytest.fail("the target profile has no file to hand to the generator", pytrace=False)
    try:
        targets = load_targets()
    except WorkloadError as error:
        pytest.fail(str(error), pytrace=False)
    evidence = run.evidence
    try:
        figures = measure(
            target.source,
            target,
            workload,
            targets,
            evidence_dir=evidence.directory if evidence is not None else None,
            redactor=evidence.redactor
            if evidence is not None
            else Redactor(target.available_secrets()),
        )
    except LoadRunError as error:
        raise Inconclusive(f"the load run did not complete: {error}") from None
    run.measure("load", figures)
    return figures
