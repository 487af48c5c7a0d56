"""`zwfw provision apply --plan FILE`: provision through the services' APIs (see
``zwfw.provisioning``). Prints one line per planned object, then a JSON summary; exit 0 done,
1 a service refused or could not be reached, 2 an unreadable or invalid plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

provision_app = typer.Typer(
    help="Provision clients, accounts, trust, registrations, seals, licences and catalog "
    "items through the services' APIs.",
    no_args_is_help=True,
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"zwfw provision: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


@provision_app.command("apply")
def apply(
    plan: Annotated[Path, typer.Option("--plan", help="The plan (YAML or JSON).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Look everything up; change nothing.")
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="CA certificates of the services (default: the system's)."),
    ] = None,
) -> None:
    """Apply PLAN; a rerun reports every object unchanged."""
    import ssl

    from zwfw.provisioning import PlanError, ProvisioningError, ProvisioningPlan, apply_plan

    try:
        loaded = ProvisioningPlan.load(plan)
        outcome = apply_plan(loaded, dry_run=dry_run, ca_file=ca_file)
    except PlanError as exc:
        raise _fail(str(exc), 2) from None
    except (OSError, ssl.SSLError) as exc:
        raise _fail(f"cannot read --ca-file {ca_file}: {exc}", 2) from None
    except ProvisioningError as exc:
        raise _fail(str(exc), 1) from None
    for change in outcome.changes:
        typer.echo(change.line())
    summary = outcome.as_json()
    summary["summary"] = (
        "nothing to change" if not outcome.changed
        else f"{sum(c.result != 'unchanged' for c in outcome.changes)} of "
        f"{len(outcome.changes)} objects {'to change' if dry_run else 'changed'}"
    )  # fmt: skip
    typer.echo(json.dumps({k: summary[k] for k in ("changed", "dry_run", "summary")}))


def register(app: typer.Typer) -> None:
    app.add_typer(provision_app, name="provision")
