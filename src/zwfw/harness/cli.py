"""`zwfw certify`, `zwfw verify-report`, `zwfw capacity`, `zwfw harness` and
`zwfw requirements`.

Exit codes of `certify`: 0 certified (every MUST requirement passed or is validly waived), 1 not
certified, 2 usage or configuration error (bad profile, catalog, suite or waiver file,
unreachable target, unusable harness home), with a one-line reason on stderr.
`verify-report`: 0 verified, 1 refused, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.requirements import LEVELS, load_catalog
from zwfw.harness.results import STATUSES, TestRecord

EXIT_CERTIFIED = 0
EXIT_NOT_CERTIFIED = 1
EXIT_CONFIG_ERROR = 2

_STATUS_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "inconclusive": "bold yellow",
    "not-tested": "yellow",
    "waived": "magenta",
}
_OUTCOME_LABEL = {
    "passed": "pass",
    "failed": "FAIL",
    "error": "ERROR",
    "skipped": "skip",
    "inconclusive": "UNDEC",
}

harness_app = typer.Typer(
    name="harness",
    help="The harness's own e-seal that signs certification reports.",
    no_args_is_help=True,
)

requirements_app = typer.Typer(
    name="requirements",
    help="The requirement catalog (conformance/spec/requirements.yaml).",
    no_args_is_help=True,
)


def _fail_config(command: str, error: Exception) -> typer.Exit:
    typer.echo(f"zwfw {command}: error: {error}", err=True)
    return typer.Exit(EXIT_CONFIG_ERROR)


def _suite_names(values: list[str] | None) -> list[str]:
    # `--suites conformance,security` and repeated `--suites` both work.
    return [name for value in values or [] for name in value.split(",") if name.strip()]


def certify(
    target: Path = typer.Option(
        ..., "--target", metavar="FILE", help="Target profile (YAML) of the platform under test."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        metavar="DIR",
        help="Report directory (created if missing; a previous report there is replaced).",
    ),
    suites: list[str] | None = typer.Option(
        None,
        "--suites",
        metavar="SUITE",
        help="Suites to run: conformance, security, loadtests (alias load), faults or a "
        "sub-directory such as conformance/codes; repeat or separate with commas. Default: "
        "the conformance suite; the security, load and faults suites are opt-in (add security "
        "to judge the SEC-* requirements of the security review, load the RESP-* and faults "
        "the FT-* requirements).",
    ),
    workload: Path | None = typer.Option(
        None,
        "--workload",
        metavar="FILE",
        help="Workload profile of the load suite (default loadtests/profiles/certify.yaml) "
        "and of the faults suite (default faults/workload.yaml).",
    ),
    waivers: Path | None = typer.Option(
        None,
        "--waivers",
        metavar="FILE",
        help="Waiver file: YAML list of {requirement, justification, approver, expires}.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-test progress lines."),
) -> None:
    """Run the suites against a target; write a sealed report (report.json, junit.xml,
    report.html, evidence/) into DIR."""
    from zwfw.harness.runner import certify as run_certification

    # Bound now: the runner silences pytest's own stderr while the suites run.
    progress_console = Console(file=sys.stderr, highlight=False)
    bar = Progress(
        TextColumn("[bold]certifying[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=progress_console,
        transient=True,
        disable=quiet or not progress_console.is_terminal,
    )
    task = bar.add_task("", total=None)

    def collected(count: int) -> None:
        bar.update(task, total=count)

    def progress(record: TestRecord) -> None:
        bar.update(task, advance=1, description=record.nodeid.rsplit("::", 1)[-1][:60])
        if quiet:
            return
        label = _OUTCOME_LABEL[record.outcome]
        style = {"pass": "green", "skip": "yellow", "UNDEC": "bold yellow"}.get(label, "bold red")
        bar.console.print(
            f"[{style}]{label:>5}[/] {record.nodeid} [dim]{record.duration:.2f}s[/]",
            soft_wrap=True,
        )

    try:
        with bar:
            outcome = run_certification(
                target,
                out,
                _suite_names(suites),
                waivers=waivers,
                progress=progress,
                collected=collected,
                workload=workload,
            )
    except HarnessConfigError as error:
        raise _fail_config("certify", error) from None
    document = outcome.document
    console = Console(highlight=False)
    console.print(_results_table(document))
    _print_waivers(console, document)
    summary = document["summary"]
    counts = ", ".join(f"{summary[status]} {status}" for status in STATUSES)
    target_info = document["target"]
    who = f"{target_info['name']} ({target_info['region_code']})"
    blocking = summary["blocking"]
    verdict = document["verdict"]
    if verdict in ("partial-pass", "partial-fail"):
        label = "[bold green]PASSED[/]" if outcome.certified else "[bold red]FAILED[/]"
        console.print(
            f"{label} partial run ({', '.join(document['suites'])}) of {who}: "
            f"not a certification; {counts}"
            + (f"; MUST not passed: {', '.join(blocking)}" if blocking else ""),
            soft_wrap=True,
        )
    elif outcome.certified:
        console.print(
            f"[bold green]CERTIFIED[/] {who}: every MUST requirement passed"
            f"{' or is validly waived' if summary['waived'] else ''}; {counts}",
            soft_wrap=True,
        )
    else:
        console.print(
            f"[bold red]NOT CERTIFIED[/] {who}: MUST requirements not passed: "
            f"{', '.join(blocking)}; {counts}",
            soft_wrap=True,
        )
    console.print(f"report: {outcome.report_path}", soft_wrap=True)
    if outcome.seal is not None:
        console.print(
            f"sealed: {outcome.out_dir / 'report.sig'} (harness root SM3 "
            f"{outcome.seal.root_fingerprint}); check with `zwfw verify-report {outcome.out_dir}`",
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_CERTIFIED if outcome.certified else EXIT_NOT_CERTIFIED)


def _print_waivers(console: Console, document: dict[str, Any]) -> None:
    style = {
        "applied": "magenta",
        "unused": "yellow",
        "expired": "bold red",
        "unknown-requirement": "bold red",
        "out-of-scope": "yellow",
    }
    for waiver in document["waivers"]:
        state = waiver["state"]
        applied = "applied" if state == "applied" else "not applied"
        console.print(
            f"waiver [{style[state]}]{state}[/] {waiver['requirement']} "
            f"(approver {waiver['approver']}, expires {waiver['expires']}): "
            f"{waiver['note']}; {applied}",
            soft_wrap=True,
        )


def verify_report_command(
    directory: Path = typer.Argument(..., metavar="DIR", help="A sealed report directory."),
    trust: Path | None = typer.Option(
        None,
        "--trust",
        metavar="ROOT.pem",
        help="Harness root certificate(s) to trust. Without it, the root shipped in the "
        "report is used: that proves integrity, not who sealed the report.",
    ),
) -> None:
    """Check a sealed report offline: seal signature, manifest digests, no edited, added or
    removed file. Exit 0 verified, 1 refused, 2 usage error."""
    from zwfw.crypto.x509 import CertificateError, load_pem_bundle
    from zwfw.harness.signing import ReportRejected, verify_report

    if not directory.is_dir():
        raise _fail_config("verify-report", ValueError(f"{directory}: not a directory"))
    anchors = None
    if trust is not None:
        try:
            anchors = load_pem_bundle(trust.read_bytes())
        except (OSError, CertificateError) as error:
            raise _fail_config("verify-report", ValueError(f"--trust {trust}: {error}")) from None
    try:
        verified = verify_report(directory, anchors)
    except ReportRejected as error:
        typer.echo(f"zwfw verify-report: refused: {error}", err=True)
        raise typer.Exit(EXIT_NOT_CERTIFIED) from None
    signed_at = verified.signed_at.isoformat() if verified.signed_at else "unknown time"
    typer.echo(
        f"verified: {verified.files} files sealed by '{verified.signer}' "
        f"({verified.seal_name}) at {signed_at}; verdict {verified.verdict}"
    )
    if verified.pinned:
        typer.echo(f"trusted root: SM3 {verified.root_fingerprint}")
    else:
        typer.echo(
            f"root not pinned: the report's own root (SM3 {verified.root_fingerprint}) was "
            "used; compare it with the harness operator's, or pass --trust ROOT.pem"
        )


@harness_app.command("init")
def harness_init(
    renew: bool = typer.Option(
        False, "--renew", help="Issue a new seal and signer certificate under the same root."
    ),
) -> None:
    """Create the harness e-seal in $ZWFW_HARNESS_HOME (default ~/.local/share/zwfw/harness)."""
    from zwfw.harness.seal import harness_home, init_home

    try:
        seal, created = init_home(harness_home(), renew=renew)
    except HarnessConfigError as error:
        raise _fail_config("harness init", error) from None
    action = ("renewed" if renew else "created") if created else "already present"
    typer.echo(f"harness seal {action} in {seal.home}")
    typer.echo(f"trust anchor: {seal.home / 'root.pem'} (SM3 {seal.root_fingerprint})")
    typer.echo(f"signer certificate valid until {seal.signer.not_after.isoformat()}")


def _results_table(document: dict[str, Any]) -> Table:
    table = Table(title=f"Requirements (spec {document['spec_version']})", title_justify="left")
    table.add_column("requirement", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("tests", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for requirement in document["requirements"]:
        status = requirement["status"]
        table.add_row(
            requirement["id"],
            requirement["level"],
            f"[{_STATUS_STYLE[status]}]{status}[/]",
            str(len(requirement["tests"])),
            requirement["reason"] or "",
        )
    return table


@requirements_app.command("list")
def list_requirements(
    level: str | None = typer.Option(
        None, "--level", metavar="LEVEL", help="Only this level: MUST, SHOULD or MAY."
    ),
) -> None:
    """List the requirements of the catalog, with how many failure modes each lists."""
    if level is not None and level.upper() not in LEVELS:
        raise _fail_config(
            "requirements list", ValueError(f"--level {level}: expected MUST, SHOULD or MAY")
        )
    try:
        catalog = load_catalog()
    except HarnessConfigError as error:
        raise _fail_config("requirements list", error) from None
    selected = [r for r in catalog.requirements if level is None or r.level == level.upper()]
    table = Table(title=f"Requirements (spec {catalog.spec_version})", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("source", overflow="fold")
    table.add_column("failure modes", justify="right", no_wrap=True)
    for requirement in selected:
        table.add_row(
            requirement.id,
            requirement.level,
            requirement.title,
            requirement.source,
            str(len(requirement.failure_modes)),
        )
    console = Console(highlight=False)
    console.print(table)
    modes = sum(len(r.failure_modes) for r in selected)
    console.print(
        f"{len(selected)} of {len(catalog.requirements)} requirements; {modes} failure modes"
    )


@requirements_app.command("coverage")
def requirements_coverage(
    suites: list[str] | None = typer.Option(
        None,
        "--suites",
        metavar="SUITE",
        help="Suites to collect (default: every suite present); repeat or separate by commas.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage as JSON instead."),
    require_failure_modes: bool = typer.Option(
        False,
        "--require-failure-modes",
        help="Also fail when a MUST requirement lists no failure modes.",
    ),
    by_clause: bool = typer.Option(
        False,
        "--by-clause",
        help="Also print the clause view: each 等保 / 密评 clause in scope, the requirements "
        "and tests that judge it, and which clauses need manual evidence.",
    ),
) -> None:
    """List requirements and failure modes no test verifies; exit 1 if a MUST requirement has
    no test, or lists a failure mode no test catches (or, with --require-failure-modes, lists
    none)."""
    from zwfw.harness.runner import collect, coverage, failure_mode_coverage

    try:
        collected = collect(_suite_names(suites))
    except HarnessConfigError as error:
        raise _fail_config("requirements coverage", error) from None
    catalog = collected.catalog
    tests = coverage(catalog, collected.checks)
    modes = failure_mode_coverage(catalog, collected.catches)
    uncovered = [r for r in catalog.requirements if not tests[r.id]]
    modes_missing = [
        (requirement, mode)
        for requirement in catalog.requirements
        for mode in requirement.failure_modes
        if not modes[requirement.id][mode.id]
    ]
    must_missing = [r.id for r in uncovered if r.level == "MUST"]
    must_modes_missing = sorted(
        {requirement.id for requirement, _ in modes_missing if requirement.level == "MUST"},
        key=[r.id for r in catalog.requirements].index,
    )
    must_without_modes = [
        r.id for r in catalog.requirements if r.level == "MUST" and not r.failure_modes
    ]
    failing = bool(must_missing or must_modes_missing) or (
        require_failure_modes and bool(must_without_modes)
    )
    clause_view: list[dict[str, Any]] = []
    if by_clause:
        from zwfw.harness.clauses import load_clauses

        try:
            clauses = load_clauses(catalog)
        except HarnessConfigError as error:
            raise _fail_config("requirements coverage", error) from None
        clause_view = [
            {
                "clause": c.clause,
                "title": c.title,
                "kind": c.kind,
                "requirements": [{"id": r, "tests": len(tests[r])} for r in c.requirements],
                "manual": c.manual,
                "not_applicable": c.not_applicable,
            }
            for c in clauses
        ]
    if as_json:
        document = {
            "tests_collected": len(collected.checks),
            "requirements": [
                {
                    "id": r.id,
                    "level": r.level,
                    "tests": tests[r.id],
                    "failure_modes": [
                        {"id": m.id, "text": m.text, "tests": modes[r.id][m.id]}
                        for m in r.failure_modes
                    ],
                }
                for r in catalog.requirements
            ],
            "without_test": [r.id for r in uncovered],
            "failure_modes_without_test": [f"{r.id}:{m.id}" for r, m in modes_missing],
            "must_without_failure_modes": must_without_modes,
            "require_failure_modes": require_failure_modes,
            "ok": not failing,
        }
        if by_clause:
            document["clauses"] = clause_view
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        raise typer.Exit(EXIT_NOT_CERTIFIED if failing else 0)
    console = Console(highlight=False)
    if uncovered:
        table = Table(title="Requirements without a test", title_justify="left")
        table.add_column("id", no_wrap=True)
        table.add_column("level", no_wrap=True)
        table.add_column("title", overflow="fold")
        for requirement in uncovered:
            table.add_row(requirement.id, requirement.level, requirement.title)
        console.print(table)
    if modes_missing:
        table = Table(title="Failure modes no test catches", title_justify="left")
        table.add_column("requirement", no_wrap=True)
        table.add_column("level", no_wrap=True)
        table.add_column("failure mode", no_wrap=True)
        table.add_column("how it breaks", overflow="fold")
        for requirement, mode in modes_missing:
            table.add_row(requirement.id, requirement.level, mode.id, mode.text)
        console.print(table)
    if by_clause:
        _print_clauses(console, clause_view)
    covered = len(catalog.requirements) - len(uncovered)
    listed = sum(len(r.failure_modes) for r in catalog.requirements)
    console.print(
        f"{covered} of {len(catalog.requirements)} requirements have a test "
        f"({len(collected.checks)} tests collected); {listed - len(modes_missing)} of {listed} "
        f"failure modes have a test; {len(must_without_modes)} MUST requirements list no "
        "failure modes",
        soft_wrap=True,
    )
    if must_missing:
        console.print(
            f"[bold red]MUST requirements without a test:[/] {', '.join(must_missing)}",
            soft_wrap=True,
        )
    if must_modes_missing:
        console.print(
            "[bold red]MUST requirements with failure modes no test catches:[/] "
            + ", ".join(must_modes_missing),
            soft_wrap=True,
        )
    if require_failure_modes and must_without_modes:
        console.print(
            "[bold red]MUST requirements listing no failure modes:[/] "
            + ", ".join(must_without_modes),
            soft_wrap=True,
        )
    if failing:
        raise typer.Exit(EXIT_NOT_CERTIFIED)


def _print_clauses(console: Console, clause_view: list[dict[str, Any]]) -> None:
    table = Table(title="Clause view (等保 level 3, 密评 level 3)", title_justify="left")
    table.add_column("clause", overflow="fold")
    table.add_column("judged by", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("manual evidence required / not applicable", overflow="fold")
    kinds: dict[str, int] = {}
    for row in clause_view:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        judged = ", ".join(f"{r['id']} ({r['tests']} tests)" for r in row["requirements"])
        table.add_row(
            f"{row['clause']}\n{row['title']}",
            judged or "—",
            row["kind"],
            row["manual"] or row["not_applicable"] or "",
        )
    console.print(table)
    manual = sum(1 for row in clause_view if row["manual"])
    console.print(
        f"{len(clause_view)} clauses: {kinds.get('automatic', 0)} automatic, "
        f"{manual} manual evidence required ({kinds.get('automatic + manual', 0)} of them also "
        f"judged in part by tests), {kinds.get('not applicable', 0)} not applicable",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.command("certify")(certify)
    app.command("verify-report")(verify_report_command)
    from zwfw.harness.capacity import capacity_command

    app.command("capacity")(capacity_command)
    app.add_typer(harness_app)
    app.add_typer(requirements_app)
    from zwfw.harness.mutation.cli import mutation_app

    app.add_typer(mutation_app)
    from zwfw.harness.deploycheck import security_app

    app.add_typer(security_app)
