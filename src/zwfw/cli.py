"""The `zwfw` command. Each area registers its own commands; this module only assembles them.

A command's module is imported when that command runs (or when help lists them all), not at
start: the services' modules pull in FastAPI, SQLAlchemy and the cryptography, seconds of
start-up that a deployment step such as ``zwfw deploy client`` would otherwise pay on every
call.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import get_command

from zwfw import __version__

# Each top-level command (or command group) and the module whose `register(app)` adds it, in
# the order they appear in --help. tests/test_cli.py checks that every module registers
# exactly the names given here.
COMMANDS: dict[str, str] = {
    "codes": "zwfw.codes.cli",
    "serve": "zwfw.services.kit.cli",
    "migrate": "zwfw.services.kit.cli",
    "audit": "zwfw.services.kit.cli",
    "identity": "zwfw.services.identity.cli",
    "licence": "zwfw.services.elicense.cli",
    "pki": "zwfw.crypto.cli",
    "seal": "zwfw.crypto.cli",
    "certify": "zwfw.harness.cli",
    "verify-report": "zwfw.harness.cli",
    "capacity": "zwfw.harness.cli",
    "harness": "zwfw.harness.cli",
    "requirements": "zwfw.harness.cli",
    "mutation": "zwfw.harness.cli",
    "security": "zwfw.harness.cli",
    "provision": "zwfw.provisioning.cli",
    "deploy": "zwfw.deploy.cli",
    "sandbox": "zwfw.reference.sandbox",
    "reference": "zwfw.reference.cli",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


@cache
def registered_commands(module: str) -> dict[str, Any]:
    """The commands (typer's own click objects) that ``module``'s ``register`` adds to an
    app, by name."""
    area = typer.Typer()

    @area.callback()
    def _group() -> None:  # a callback makes even a one-command area a group
        pass

    importlib.import_module(module).register(area)
    group = get_command(area)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


class _CommandsOnDemand(Mapping[str, Any]):
    """The root group's commands: the names are known up front, a command is built (its
    module imported) when it is looked up."""

    def __getitem__(self, name: str) -> Any:
        if name not in COMMANDS:
            raise KeyError(name)
        return registered_commands(COMMANDS[name])[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _RootGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _CommandsOnDemand()  # type: ignore[assignment]


app = typer.Typer(
    name="zwfw",
    help="政务服务: provision, operate and certify Internet + Government Services platforms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_RootGroup,
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


def main() -> None:
    app()
