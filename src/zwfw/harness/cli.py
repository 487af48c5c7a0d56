"""`zwfw certify` and `zwfw requirements`: run the suites against a target, inspect the catalog.

Exit codes: 0 certified (every MUST requirement passed), 1 not certified, 2 usage or
configuration error (bad profile, catalog or suite), with a one-line reason on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.requirements import LEVELS, load_catalog
from zwfw.harness.results import TestRecord

EXIT_CERTIFIED = 0
EXIT_NOT_CERTIFIED = 1
EXIT_CONFIG_ERROR = 2

_STATUS_STYLE = {"pass": "green", "fail": "bold red", "not-tested": "yellow"}
_OUTCOME_LABEL = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}

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
        ..., "--out", metavar="DIR", help="Directory for results.json (created if missing)."
    ),
    suites: list[str] | None = typer.Option(
        None,
        "--suites",
        metavar="SUITE",
        help="Suites to run: conformance, security, loadtests or a sub-directory such as "
        "conformance/codes; repeat or separate with commas. Default: every suite present.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-test progress lines."),
) -> None:
    """Run the suites against a target and write DIR/results.json with each requirement's status."""
    from zwfw.harness.runner import certify as run_certification

    # Bound now: the runner silences pytest's own stderr while the suites run.
    progress_console = Console(file=sys.stderr, highlight=False)

    def progress(record: TestRecord) -> None:
        if quiet:
            return
        label = _OUTCOME_LABEL[record.outcome]
        style = {"pass": "green", "skip": "yellow"}.get(label, "bold red")
        progress_console.print(
            f"[{style}]{label:>5}[/] {record.nodeid} [dim]{record.duration:.2f}s[/]",
            soft_wrap=True,
        )

    try:
        outcome = run_certification(target, out, _suite_names(suites), progress=progress)
    except HarnessConfigError as error:
        raise _fail_config("certify", error) from None
    document = outcome.document
    console = Console(highlight=False)
    console.print(_results_table(document))
    summary = document["summary"]
    counts = ", ".join(f"{summary[status]} {status}" for status in ("pass", "fail", "not-tested"))
    target_info = document["target"]
    if document.get("scope") == "partial":
        verdict = "[bold green]PASSED[/]" if outcome.certified else "[bold red]FAILED[/]"
        blocking = summary["blocking"]
        console.print(
            f"{verdict} partial run ({', '.join(document['suites'])}) of {target_info['name']} "
            f"({target_info['region_code']}): not a certification; {counts}"
            + (f"; MUST not passed: {', '.join(blocking)}" if blocking else ""),
            soft_wrap=True,
        )
    elif outcome.certified:
        console.print(
            f"[bold green]CERTIFIED[/] {target_info['name']} ({target_info['region_code']}): "
            f"every MUST requirement passed; {counts}",
            soft_wrap=True,
        )
    else:
        console.print(
            f"[bold red]NOT CERTIFIED[/] {target_info['name']} ({target_info['region_code']}): "
            f"MUST requirements not passed: {', '.join(summary['blocking'])}; {counts}",
            soft_wrap=True,
        )
    console.print(f"results: {outcome.results_path}", soft_wrap=True)
    raise typer.Exit(EXIT_CERTIFIED if outcome.certified else EXIT_NOT_CERTIFIED)


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
    """List the requirements of the catalog."""
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
    for requirement in selected:
        table.add_row(requirement.id, requirement.level, requirement.title, requirement.source)
    console = Console(highlight=False)
    console.print(table)
    console.print(f"{len(selected)} of {len(catalog.requirements)} requirements")


@requirements_app.command("coverage")
def requirements_coverage(
    suites: list[str] | None = typer.Option(
        None,
        "--suites",
        metavar="SUITE",
        help="Suites to collect (default: every suite present); repeat or separate by commas.",
    ),
) -> None:
    """List requirements no test verifies; exit 1 if a MUST requirement has none."""
    from zwfw.harness.runner import collect_checks, coverage

    try:
        catalog, checks = collect_checks(_suite_names(suites))
    except HarnessConfigError as error:
        raise _fail_config("requirements coverage", error) from None
    tests = coverage(catalog, checks)
    uncovered = [r for r in catalog.requirements if not tests[r.id]]
    console = Console(highlight=False)
    if uncovered:
        table = Table(title="Requirements without a test", title_justify="left")
        table.add_column("id", no_wrap=True)
        table.add_column("level", no_wrap=True)
        table.add_column("title", overflow="fold")
        for requirement in uncovered:
            table.add_row(requirement.id, requirement.level, requirement.title)
        console.print(table)
    must_missing = [r.id for r in uncovered if r.level == "MUST"]
    covered = len(catalog.requirements) - len(uncovered)
    console.print(
        f"{covered} of {len(catalog.requirements)} requirements have a test "
        f"({len(checks)} tests collected)",
        soft_wrap=True,
    )
    if must_missing:
        console.print(
            f"[bold red]MUST requirements without a test:[/] {', '.join(must_missing)}",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_NOT_CERTIFIED)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.command("certify")(certify)
    app.add_typer(requirements_app)
