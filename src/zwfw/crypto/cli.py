"""Command-line entry points for this area (registered by zwfw.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
