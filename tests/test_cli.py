"""The `zwfw` command: every area's commands reachable by name, and a command's module loaded
only when that command runs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zwfw.cli import COMMAND_MODULES, COMMANDS, app, registered_commands


def test_every_area_registers_exactly_the_commands_the_root_names() -> None:
    for module in COMMAND_MODULES:
        named_here = {name for name, owner in COMMANDS.items() if owner == module}
        assert set(registered_commands(module)) == named_here, module


def test_help_lists_every_command_in_order() -> None:
    outcome = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert outcome.exit_code == 0
    listed = re.findall(r"^│ ([a-z][a-z-]*)\s", outcome.output, flags=re.MULTILINE)
    assert listed == list(COMMANDS), outcome.output


def test_an_unknown_command_is_a_usage_error() -> None:
    outcome = CliRunner().invoke(app, ["no-such-command"])
    assert outcome.exit_code == 2
    assert "No such command" in outcome.output


def test_a_deployment_step_does_not_load_the_services() -> None:
    # Each playbook step is a process of its own: importing FastAPI and every service's routes
    # for `zwfw deploy key` cost seconds per call.
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from zwfw.cli import app\n"
        "outcome = CliRunner().invoke(app, ['deploy', 'key', '--help'])\n"
        "assert outcome.exit_code == 0, outcome.output\n"
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'zwfw.services.hall',"
        " 'zwfw.services.identity.routes') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_kit_names_resolve_on_first_use() -> None:
    import zwfw.services.kit as kit
    from zwfw.services.kit.problems import Problem

    assert kit.Problem is Problem
    assert kit.audit.__name__ == "zwfw.services.kit.audit"
    with pytest.raises(AttributeError, match="no_such_name"):
        kit.no_such_name  # noqa: B018
