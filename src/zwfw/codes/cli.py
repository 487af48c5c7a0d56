"""`zwfw codes`: check and build domain codes, and count working days."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from zwfw.codes import KINDS, CodeError, build_licence_id
from zwfw.codes.workdays import HolidayFileError, WorkdayCalendar, provisional_note

# An Enum so that an unknown KIND is a usage error (exit 2) listing the known ones.
Kind = Enum("Kind", {name: name for name in KINDS}, type=str)  # type: ignore[misc]

codes_app = typer.Typer(
    name="codes",
    help="Check and build domain codes (credit codes, item codes, licence identifiers).",
    no_args_is_help=True,
)
workdays_app = typer.Typer(
    name="workdays",
    help="Working-day arithmetic on the State Council holiday calendar.",
    no_args_is_help=True,
)
codes_app.add_typer(workdays_app)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
HolidaysOption = Annotated[
    Path | None,
    typer.Option(
        "--holidays",
        help="YAML holiday file for years the built-in calendar lacks "
        "(default: $ZWFW_HOLIDAY_FILE).",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def _parse_date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _fail(reason: str, *, as_json: bool, **fields: Any) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"valid": False, "reason": reason, **fields}, ensure_ascii=False))
    typer.echo(f"error: {reason}", err=True)
    return typer.Exit(1)


def _print_parts(kind: str, obj: object, parts: dict[str, str], as_json: bool) -> None:
    if as_json:
        payload = {"valid": True, "kind": kind, "value": str(obj), "parts": parts}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    typer.echo(f"value: {obj}")
    for name, part in parts.items():
        typer.echo(f"{name}: {part}")


@codes_app.command("check")
def check(
    kind: Annotated[Kind, typer.Argument(help="Which kind of code VALUE is.")],
    value: Annotated[str, typer.Argument(help="The code to check.")],
    as_json: JsonOption = False,
) -> None:
    """Exit 0 and print the parts when VALUE is a valid KIND, else exit 1 with the reason."""
    try:
        obj = KINDS[kind.value](value)
    except CodeError as err:
        raise _fail(str(err), as_json=as_json, kind=kind.value, position=err.position) from None
    _print_parts(kind.value, obj, obj.parts(), as_json)  # type: ignore[attr-defined]


@codes_app.command("licence-id")
def licence_id(
    type_code: Annotated[
        str, typer.Option("--type", help="21-char type code (authority credit code + 3 digits).")
    ],
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer's 18-char credit code.")],
    serial: Annotated[str, typer.Option("--serial", help="Serial, 1-32 of [0-9A-Za-z].")],
    version: Annotated[str, typer.Option("--version", help="3-digit version.")] = "001",
    as_json: JsonOption = False,
) -> None:
    """Print the GB/T 36904 e-licence identifier made of these parts, check character included."""
    try:
        identifier = build_licence_id(type_code, issuer, serial, version)
    except CodeError as err:
        raise _fail(str(err), as_json=as_json, position=err.position) from None
    if as_json:
        _print_parts("licence-id", identifier, identifier.parts(), True)
    else:
        typer.echo(str(identifier))


def _calendar(holidays: Path | None) -> WorkdayCalendar:
    try:
        return WorkdayCalendar(holidays)
    except HolidayFileError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _print_workdays(
    name: str, value: object, provisional_years: tuple[int, ...], as_json: bool
) -> None:
    if as_json:
        payload = {
            name: value,
            "provisional": bool(provisional_years),
            "provisional_years": list(provisional_years),
        }
        typer.echo(json.dumps(payload))
        return
    typer.echo(str(value))
    if provisional_years:
        typer.echo(provisional_note(provisional_years))


@workdays_app.command("add")
def workdays_add(
    start: Annotated[date, typer.Argument(parser=_parse_date, metavar="DATE", help="YYYY-MM-DD")],
    n: Annotated[int, typer.Argument(min=0, metavar="N", help="Working days to add (>= 0).")],
    holidays: HolidaysOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the day of the N-th working day after DATE (DATE itself for N = 0)."""
    try:
        result = _calendar(holidays).add(start, n)
    except ValueError as err:
        raise _fail(str(err), as_json=False) from None
    _print_workdays("date", result.date.isoformat(), result.provisional_years, as_json)


@workdays_app.command("between")
def workdays_between(
    start: Annotated[date, typer.Argument(parser=_parse_date, metavar="D1", help="YYYY-MM-DD")],
    end: Annotated[date, typer.Argument(parser=_parse_date, metavar="D2", help="YYYY-MM-DD")],
    holidays: HolidaysOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the number of working days in (D1, D2]; negative when D2 is before D1."""
    count = _calendar(holidays).between(start, end)
    _print_workdays("days", count.days, count.provisional_years, as_json)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root `zwfw` app."""
    app.add_typer(codes_app)
