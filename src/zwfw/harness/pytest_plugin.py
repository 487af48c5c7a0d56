"""Pytest plugin: runs conformance suites against a target profile.

Loaded in every pytest run of this project (entry point `zwfw`), so it stays inert unless the
run is a conformance run: `--target` or `--zwfw-results` was given, a test carries a
`requirement` marker, or a test lives in a suite directory (`conformance/`, `security/`,
`loadtests/`). For those tests it

- refuses the run when a test names no requirement or one the catalog does not know, or
  declares a failure mode its requirement does not list
  (``@pytest.mark.requirement("IC-LIC-003", catches=("detail-leak", "list-leak"))``; with
  several IDs in one marker, qualify each: ``catches=("IC-LIC-003:list-leak",)``);
- gives them the `target` profile, HTTP clients per service and credentials from the
  environment (a service the profile does not list skips the test: not tested);
- parametrises `@pytest.mark.declared(KIND)` tests over the profile's declared values;
- records each test's outcome and, with `--zwfw-results PATH`, writes the report document
  (waivers from `--zwfw-waivers FILE` applied);
- with `--zwfw-evidence DIR`, writes the redacted HTTP exchanges of each test made through the
  harness's clients to `DIR/<test>.json`;
- records a test that raised `zwfw.harness.results.Inconclusive` as inconclusive, and keeps
  the figures suites measured (`HarnessRun.measure`) for the report's `measurements`;
- with `--zwfw-without SUITE` (an opt-in suite a complete run left out), lists the
  requirements only that suite verifies as out of scope.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from zwfw.harness.evidence import EvidenceLog
    from zwfw.harness.profile import ServiceName, TargetProfile
    from zwfw.harness.requirements import Catalog
    from zwfw.harness.results import TestRecord
    from zwfw.harness.waivers import Waiver

SUITE_NAMES = ("conformance", "security", "loadtests", "faults")
# Suites a run includes only when asked (`--suites …,load`): the load suite sends sustained
# load for minutes; the security suite sends hundreds of hostile requests (the authorization
# matrix, malformed bodies) that a certification of the interconnection does not need every
# time; the faults suite disturbs the deployment under load. Each with the prefixes of the
# requirements only it verifies (SEC-AUTH-* are the identity conformance suite's).
OPT_IN_SUITES: dict[str, tuple[str, ...]] = {
    "security": (
        "SEC-HDR-",
        "SEC-BR-",
        "SEC-AZ-",
        "SEC-PD-",
        "SEC-IN-",
        "SEC-TLS-",
        "SEC-CRY-",
        "SEC-DEP-",
    ),  # fmt: skip
    "loadtests": ("RESP-",),
    "faults": ("FT-",),
}
# Other names a suite answers to on the command line.
SUITE_ALIASES = {"load": "loadtests"}


@dataclass
class HarnessRun:
    """Per-session state, kept in the pytest config's stash."""

    profile: TargetProfile | None = None
    results_path: Path | None = None
    # A run over a subset of the suites judges only the requirements that subset verifies.
    partial: bool = False
    catalog: Catalog | None = None
    # nodeid -> requirement IDs of every collected conformance test
    checks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # nodeid -> failure modes the test declares it catches, as "REQUIREMENT-ID:mode"
    catches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    records: dict[str, TestRecord] = field(default_factory=dict)
    # Reasons the run cannot give a verdict (bad markers, collection errors).
    problems: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    document: dict[str, Any] | None = None
    waivers: list[Waiver] = field(default_factory=list)
    evidence: EvidenceLog | None = None
    # Requirement ID -> why a complete run does not judge it (an opt-in suite left out).
    out_of_scope: dict[str, str] = field(default_factory=dict)
    # Figures measured by suites, by name (the load suite's under "load").
    measurements: dict[str, Any] = field(default_factory=dict)
    workload: Path | None = None
    # nodeid -> files under evidence/ a test wrote itself (screenshots), listed with its own.
    attachments: dict[str, list[str]] = field(default_factory=dict)

    def measure(self, name: str, figures: dict[str, Any]) -> None:
        """Keep a suite's measured figures for the report's `measurements` member."""
        self.measurements[name] = figures

    def evidence_file(self, nodeid: str, relative: str) -> Path | None:
        """Where test `nodeid` writes an evidence file of its own (`relative` under
        evidence/, e.g. a screenshot), listed with the test's evidence once written; None when
        the run keeps no evidence."""
        if self.evidence is None:
            return None
        path = self.evidence.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self.attachments.setdefault(nodeid, []).append(relative)
        return path

    @property
    def explicit(self) -> bool:
        return self.profile is not None or self.results_path is not None


RUN_KEY = pytest.StashKey[HarnessRun]()


def harness_run(config: pytest.Config) -> HarnessRun:
    """The session's harness state (for drivers that registered a plugin object)."""
    return config.stash[RUN_KEY]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from zwfw.harness import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zwfw", "zwfw certification harness")
    group.addoption(
        "--target",
        metavar="FILE",
        default=None,
        help="target profile (YAML) of the platform under test.",
    )
    group.addoption(
        "--zwfw-results",
        metavar="PATH",
        default=None,
        help="write the per-requirement results document (JSON) here; needs --target.",
    )
    group.addoption(
        "--zwfw-partial",
        action="store_true",
        default=False,
        help="the selected tests are a subset of the suites: judge only the requirements "
        "they verify and never call the run a certification.",
    )
    group.addoption(
        "--zwfw-waivers",
        metavar="FILE",
        default=None,
        help="waiver file (YAML list of requirement, justification, approver, expires).",
    )
    group.addoption(
        "--zwfw-without",
        metavar="SUITE",
        action="append",
        default=[],
        choices=sorted(OPT_IN_SUITES),
        help="an opt-in suite this complete run leaves out: the requirements only it "
        "verifies are listed out of scope.",
    )
    group.addoption(
        "--zwfw-workload",
        metavar="FILE",
        default=None,
        help="workload profile of the load suite (default loadtests/profiles/certify.yaml).",
    )
    group.addoption(
        "--zwfw-evidence",
        metavar="DIR",
        default=None,
        help="write each test's redacted HTTP exchanges to DIR/<test>.json; needs --target.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids, catches=()): requirement IDs (conformance/spec/requirements.yaml) "
        "this test verifies, and the failure modes of theirs it catches (mode ids; "
        "'ID:mode' when the marker names several IDs).",
    )
    config.addinivalue_line(
        "markers",
        "declared(kind): run once per value of this kind the target profile declares, "
        "passed as the `value` argument.",
    )
    config.addinivalue_line(
        "markers",
        "operation: performs an operation on the deployment (the profile's operations:, e.g. "
        "a signing key rotation); runs after every other test of the run.",
    )
    config.addinivalue_line(
        "markers",
        "head_start: runs before every other test of the run; for the first half of a check "
        "that must let time pass (a seal's period ending, a status cache's bound), whose second "
        "half, a later test, then finds the time passed while the other checks ran.",
    )
    run = HarnessRun()
    target = config.getoption("target")
    results = config.getoption("zwfw_results")
    waivers = config.getoption("zwfw_waivers")
    evidence = config.getoption("zwfw_evidence")
    for name, value in (("results", results), ("waivers", waivers), ("evidence", evidence)):
        if value is not None and target is None:
            raise pytest.UsageError(f"--zwfw-{name} needs --target FILE")
    if target is not None:
        from zwfw.harness.errors import HarnessConfigError
        from zwfw.harness.profile import load_profile
        from zwfw.harness.requirements import load_catalog
        from zwfw.harness.waivers import load_waivers

        try:
            run.profile = load_profile(target)
            # Loaded up front so that even a run that collects nothing gets a verdict.
            run.catalog = load_catalog()
            run.waivers = load_waivers(waivers) if waivers is not None else []
        except HarnessConfigError as error:
            raise pytest.UsageError(str(error)) from None
        if evidence is not None:
            from zwfw.harness import http
            from zwfw.harness.evidence import EvidenceLog
            from zwfw.harness.redact import Redactor

            run.evidence = EvidenceLog(Path(evidence), Redactor(_credential_values(run.profile)))
            http.activate(run.evidence)
    run.results_path = Path(results) if results is not None else None
    run.partial = bool(config.getoption("zwfw_partial"))
    workload = config.getoption("zwfw_workload")
    run.workload = Path(workload) if workload is not None else None
    if run.catalog is not None:
        for suite in config.getoption("zwfw_without"):
            prefixes = OPT_IN_SUITES[suite]
            why = (
                f"the {suite} suite is opt-in and was not selected "
                f"(zwfw certify --suites conformance,{suite})"
            )
            for requirement in run.catalog.requirements:
                if requirement.id.startswith(prefixes):
                    run.out_of_scope[requirement.id] = why
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(Recorder(config, run), "zwfw-recorder")


def _credential_values(profile: TargetProfile) -> list[str]:
    """The values of the profile's credentials that are set: never to appear in evidence."""
    from zwfw.harness.profile import SecretUnavailable

    values = []
    for name in profile.credentials:
        try:
            values.append(profile.secret(name))
        except SecretUnavailable:
            continue
    return values


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None and run.evidence is not None:
        from zwfw.harness import http

        http.deactivate(run.evidence)


def _suite_dirs() -> list[Path]:
    from zwfw.harness.errors import HarnessConfigError
    from zwfw.harness.requirements import conformance_dir

    try:
        conformance = conformance_dir()
    except HarnessConfigError:
        return []
    return [conformance, *(conformance.parent / name for name in SUITE_NAMES[1:])]


def _requirement_ids(item: pytest.Item) -> list[object]:
    return [rid for marker in item.iter_markers("requirement") for rid in marker.args]


def _declared_catches(item: pytest.Item, catalog: Catalog) -> tuple[list[str], list[str]]:
    """The failure modes a test declares (as "ID:mode"), and what is wrong with them."""
    caught: list[str] = []
    problems: list[str] = []
    for marker in item.iter_markers("requirement"):
        unknown = sorted(set(marker.kwargs) - {"catches"})
        if unknown:
            problems.append(f"{item.nodeid}: requirement marker has no argument {unknown[0]!r}")
        declared = marker.kwargs.get("catches", ())
        if isinstance(declared, str) or not isinstance(declared, list | tuple):
            problems.append(f"{item.nodeid}: catches= takes a tuple of failure-mode ids")
            continue
        ids = [rid for rid in marker.args if isinstance(rid, str)]
        for entry in declared:
            if not isinstance(entry, str) or not entry:
                problems.append(f"{item.nodeid}: catches= takes failure-mode ids, got {entry!r}")
                continue
            requirement_id, _, mode = entry.rpartition(":")
            if not requirement_id:
                if len(ids) != 1:
                    problems.append(
                        f"{item.nodeid}: failure mode {mode!r}: the marker names several "
                        "requirements; write ID:mode"
                    )
                    continue
                requirement_id = ids[0]
            elif requirement_id not in ids:
                problems.append(
                    f"{item.nodeid}: failure mode {entry!r} is of a requirement this marker "
                    "does not name"
                )
                continue
            requirement = catalog.get(requirement_id)
            if requirement is None:
                continue  # reported as an unknown requirement
            if requirement.failure_mode(mode) is None:
                problems.append(f"{item.nodeid}: unknown failure mode {mode!r} of {requirement_id}")
                continue
            caught.append(f"{requirement_id}:{mode}")
    return list(dict.fromkeys(caught)), problems


def _is_check(item: pytest.Item, run: HarnessRun, suite_dirs: Callable[[], list[Path]]) -> bool:
    if run.explicit or item.get_closest_marker("requirement") is not None:
        return True
    return any(item.path.is_relative_to(directory) for directory in suite_dirs())


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    run = config.stash[RUN_KEY]
    # An operation changes the deployment for every test after it: the others go first, so
    # that a defect it reveals fails its own requirement only.
    # A head start begins a wait that a later test ends: first, so that the wait elapses
    # while the rest of the run goes on instead of in a sleep.
    operations = [item for item in items if item.get_closest_marker("operation") is not None]
    head = [item for item in items if item.get_closest_marker("head_start") is not None]
    if operations or head:
        rest = [item for item in items if item not in operations and item not in head]
        items[:] = head + rest + operations
    dirs: list[Path] | None = None

    def suite_dirs() -> list[Path]:
        nonlocal dirs
        if dirs is None:
            dirs = _suite_dirs()
        return dirs

    checks = [item for item in items if _is_check(item, run, suite_dirs)]
    if not checks:
        return
    from zwfw.harness.errors import HarnessConfigError
    from zwfw.harness.requirements import load_catalog

    try:
        catalog = run.catalog = run.catalog or load_catalog()
    except HarnessConfigError as error:
        raise pytest.UsageError(str(error)) from None
    problems: list[str] = []
    for item in checks:
        ids = _requirement_ids(item)
        if not ids:
            problems.append(
                f"{item.nodeid}: names no requirement; add @pytest.mark.requirement(ID)"
            )
        for requirement_id in ids:
            if not isinstance(requirement_id, str) or requirement_id not in catalog:
                problems.append(f"{item.nodeid}: unknown requirement {requirement_id!r}")
        caught, wrong = _declared_catches(item, catalog)
        problems.extend(wrong)
        run.checks[item.nodeid] = tuple(dict.fromkeys(str(rid) for rid in ids))
        if caught:
            run.catches[item.nodeid] = tuple(caught)
    if problems:
        run.problems.extend(problems)
        raise pytest.UsageError(*problems)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("declared")
    if marker is None:
        return
    from zwfw.harness.profile import Declared

    if len(marker.args) != 1 or marker.args[0] not in Declared.model_fields:
        kinds = ", ".join(Declared.model_fields)
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: @pytest.mark.declared takes one of: {kinds}"
        )
    if "value" not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: @pytest.mark.declared needs a `value` argument"
        )
    kind: str = marker.args[0]
    profile = metafunc.config.stash[RUN_KEY].profile
    values: list[str] = getattr(profile.declared, kind) if profile is not None else []
    if values:
        metafunc.parametrize("value", values, ids=values)
        return
    reason = (
        f"the target profile declares no {kind}"
        if profile is not None
        else "no target profile (pass --target FILE)"
    )
    metafunc.parametrize(
        "value", [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="none-declared")]
    )


def _summary(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The one line that says why a test failed or was skipped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).removeprefix("Failed: ")
    lines = [line for line in str(longrepr).splitlines() if line.strip()]
    return lines[-1].strip() if lines else report.outcome


def _relative(path: Path, root: Path) -> str:
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


class Recorder:
    """Records conformance tests of one session (registered per config as `zwfw-recorder`)."""

    def __init__(self, config: pytest.Config, run: HarnessRun) -> None:
        self.config = config
        self.run = run

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            # Kept for drivers; pytest itself reports the error and stops the run.
            where = report.nodeid or "."
            self.run.problems.append(f"{where}: cannot collect: {_summary(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        run = self.run
        if report.nodeid not in run.checks:
            return
        from zwfw.harness.results import TestRecord, clean_reason

        record = run.records.get(report.nodeid)
        if record is None:
            record = TestRecord(
                report.nodeid,
                run.checks[report.nodeid],
                catches=run.catches.get(report.nodeid, ()),
            )
            run.records[report.nodeid] = record
        record.duration += report.duration
        if record.outcome != "passed":
            return  # the first phase that did not pass decides
        xfail = getattr(report, "wasxfail", None)
        undecided = getattr(report, "zwfw_inconclusive", None)
        if undecided is not None:
            record.outcome = "inconclusive"
            record.reason = clean_reason(undecided)
        elif report.skipped and xfail is not None:
            # An expected failure is still the target failing; waivers are how to accept one.
            record.outcome = "failed"
            record.reason = clean_reason(f"expected failure: {xfail or _summary(report)}")
        elif report.failed:
            record.outcome = "failed" if report.when == "call" else "error"
            record.reason = clean_reason(_summary(report))
        elif report.skipped:
            record.outcome = "skipped"
            record.reason = clean_reason(_summary(report))

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.run.evidence is not None and nodeid in self.run.checks:
            self.run.evidence.begin(nodeid)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        record = self.run.records.get(nodeid)
        if record is None:
            return
        if self.run.evidence is not None:
            name = self.run.evidence.finish(nodeid, record.requirement_ids, record.outcome)
            if name is not None:
                record.evidence.append(name)
            directory = self.run.evidence.directory
            for relative in self.run.attachments.pop(nodeid, []):
                if (directory / relative).is_file():
                    record.evidence.append(relative)
        self.config.hook.pytest_zwfw_test_recorded(record=record)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run = self.run
        if run.profile is None or run.catalog is None or run.problems:
            return
        if self.config.option.collectonly:
            return
        from zwfw.harness.results import results_document, write_document

        root = self.config.rootpath
        suites = [_relative(Path(arg.split("::")[0]), root) for arg in self.config.args]
        run.document = results_document(
            catalog=run.catalog,
            profile=run.profile,
            records=[run.records[nodeid] for nodeid in run.checks if nodeid in run.records],
            suites=suites,
            in_scope=_named_requirements(run.checks) if run.partial else None,
            started_at=run.started_at,
            finished_at=datetime.now(UTC),
            waivers=run.waivers,
            out_of_scope=run.out_of_scope,
            measurements=run.measurements,
        )
        if run.results_path is not None:
            write_document(run.results_path, run.document)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    from zwfw.harness.results import Inconclusive

    if call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
        reason = str(call.excinfo.value) or "inconclusive"
        # Shown by pytest as a skip: neither a pass nor a failure of the target.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"inconclusive: {reason}")
        report.zwfw_inconclusive = reason  # type: ignore[attr-defined]
    return report


def _named_requirements(checks: dict[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(requirement_id for ids in checks.values() for requirement_id in ids)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> TargetProfile:
    """The profile of the platform under test (`--target FILE`)."""
    profile = request.config.stash[RUN_KEY].profile
    if profile is None:
        pytest.fail("no target profile: run with --target FILE", pytrace=False)
    return profile


@pytest.fixture(scope="session")
def service_client(target: TargetProfile) -> Iterator[Callable[[ServiceName], httpx.Client]]:
    """`service_client("hall")`: the session's client for that service, or skip when absent."""
    from zwfw.harness.http import service_client as make_client
    from zwfw.harness.profile import SERVICE_NAMES

    clients: dict[str, httpx.Client] = {}

    def client(service: ServiceName) -> httpx.Client:
        if service not in SERVICE_NAMES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICE_NAMES)}")
        if target.base_url(service) is None:
            pytest.skip(f"the target profile lists no {service} service")
        if service not in clients:
            clients[service] = make_client(target, service)
        return clients[service]

    yield client
    for opened in clients.values():
        opened.close()


@pytest.fixture
def identity_client(service_client: Callable[[ServiceName], httpx.Client]) -> httpx.Client:
    return service_client("identity")


@pytest.fixture
def hall_client(service_client: Callable[[ServiceName], httpx.Client]) -> httpx.Client:
    return service_client("hall")


@pytest.fixture
def elicense_client(service_client: Callable[[ServiceName], httpx.Client]) -> httpx.Client:
    return service_client("elicense")


@pytest.fixture
def eseal_client(service_client: Callable[[ServiceName], httpx.Client]) -> httpx.Client:
    return service_client("eseal")


@pytest.fixture
def hub_client(service_client: Callable[[ServiceName], httpx.Client]) -> httpx.Client:
    return service_client("hub")


@pytest.fixture
def credential(target: TargetProfile) -> Callable[[str], str]:
    """`credential("name")`: the secret from its environment variable, or fail naming it."""
    from zwfw.harness.profile import SecretUnavailable

    def resolve(name: str) -> str:
        try:
            return target.secret(name)
        except SecretUnavailable as error:
            pytest.fail(str(error), pytrace=False)

    return resolve


@pytest.fixture
def target_http(target: TargetProfile) -> Iterator[httpx.Client]:
    """A client for URLs the target hands out (JWKS URIs, redirects), with its trust settings.

    Its exchanges are recorded as evidence like those of the service clients.
    """
    from zwfw.harness.http import client

    with client(target) as opened:
        yield opened
