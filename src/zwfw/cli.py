"""The `zwfw` command. Each area registers its own commands; this module only assembles them."""

from __future__ import annotations

import importlib

import typer

from zwfw import __version__

# Modules exposing `register(app: typer.Typer) -> None`, in the order they appear in --help.
COMMAND_MODULES = (
    "zwfw.codes.cli",
    "zwfw.services.kit.cli",
    "zwfw.services.identity.cli",
    "zwfw.services.elicense.cli",
    "zwfw.crypto.cli",
    "zwfw.harness.cli",
    "zwfw.provisioning.cli",
    "zwfw.deploy.cli",
    "zwfw.reference.sandbox",
    "zwfw.reference.cli",
)

app = typer.Typer(
    name="zwfw",
    help="政务服务: provision, operate and certify Internet + Government Services platforms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zwfw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """zwfw command line."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()
