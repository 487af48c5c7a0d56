from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from zwfw.codes.cli import register
from zwfw.codes.workdays import ENV_VAR

from .test_codes_workdays import HOLIDAYS_2027

REGION_ISSUER_SAMPLE = "1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9"
BUILD_ARGS = [
    "codes", "licence-id", "--type", "11100000000013338W011", "--issuer", "11430000006122244L",
    "--serial", "20230000403", "--version", "001",
]  # fmt: skip


def make_app() -> typer.Typer:
    """The root command as zwfw.cli assembles it, with only this area registered."""
    app = typer.Typer(name="zwfw", pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """zwfw command line."""

    register(app)
    return app


@pytest.fixture(autouse=True)
def _no_holiday_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(make_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_valid_credit_code_prints_parts() -> None:
    code, out, err = run("codes", "check", "credit-code", "11370800MB28559184")
    assert code == 0, err
    assert "value: 11370800MB28559184" in out
    assert "registration authority: 1 (机构编制)" in out
    assert "check character: 4" in out


def test_any_changed_character_of_the_credit_code_exits_1_with_a_reason() -> None:
    value = "11370800MB28559184"
    for position in range(len(value)):
        changed = (
            value[:position] + ("A" if value[position] != "A" else "B") + value[position + 1 :]
        )
        code, out, err = run("codes", "check", "credit-code", changed)
        assert code == 1
        assert out == ""
        assert err.startswith("error: credit-code ")
        assert err.count("\n") == 1


def test_check_json() -> None:
    code, out, _ = run("codes", "check", "division", "340100", "--json")
    assert code == 0
    assert json.loads(out) == {
        "valid": True,
        "kind": "division",
        "value": "340100",
        "parts": {"province": "34 (安徽省)", "city": "01", "county": "00", "level": "city"},
    }
    code, out, err = run("codes", "check", "division", "340001", "--json")
    assert code == 1
    assert json.loads(out)["position"] == 4
    assert "county part '01' under city part '00'" in err


def test_built_licence_id_is_accepted_by_check() -> None:
    code, out, err = run(*BUILD_ARGS)
    assert code == 0, err
    identifier = out.strip()
    assert identifier.startswith("1.2.156.3005.2.11100000000013338W011.11430000006122244L.")
    code, out, _ = run("codes", "check", "licence-id", identifier)
    assert code == 0
    assert "issuer code: 11430000006122244L" in out


def test_licence_id_with_region_issuer_is_rejected() -> None:
    code, _, err = run("codes", "check", "licence-id", REGION_ISSUER_SAMPLE)
    assert code == 1
    assert "issuer code '340100' is not a credit code" in err


def test_licence_id_build_failure_exits_1() -> None:
    code, out, err = run(*BUILD_ARGS[:-1], "01")
    assert (code, out) == (1, "")
    assert "version is '01', expected 3 digits" in err


def test_unknown_kind_is_a_usage_error() -> None:
    code, _, err = run("codes", "check", "passport", "E12345678")
    assert code == 2
    assert "credit-code" in err


def test_workdays_add_and_between() -> None:
    assert run("codes", "workdays", "add", "2025-09-30", "1")[:2] == (0, "2025-10-09\n")
    assert run("codes", "workdays", "between", "2025-09-30", "2025-10-11")[:2] == (0, "3\n")
    assert run("codes", "workdays", "between", "2025-10-11", "2025-09-30")[:2] == (0, "-3\n")


def test_workdays_provisional_line() -> None:
    code, out, _ = run("codes", "workdays", "add", "2026-12-31", "1")
    assert code == 0
    assert out.splitlines() == [
        "2027-01-01",
        "provisional: weekends-only for 2027 (no holiday data; "
        "pass --holidays FILE or set ZWFW_HOLIDAY_FILE)",
    ]
    code, out, _ = run("codes", "workdays", "add", "2026-12-31", "1", "--json")
    assert json.loads(out) == {
        "date": "2027-01-01",
        "provisional": True,
        "provisional_years": [2027],
    }


def test_workdays_with_holiday_file(tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(HOLIDAYS_2027, encoding="utf-8")
    code, out, _ = run("codes", "workdays", "add", "2026-12-31", "1", "--holidays", str(path))
    assert (code, out) == (0, "2027-01-04\n")
    path.write_text("2027:\n  holidays: [2027-02-30]\n", encoding="utf-8")
    code, out, err = run(
        "codes", "workdays", "between", "2027-01-01", "2027-02-01", "--holidays", str(path)
    )
    assert (code, out) == (1, "")
    assert "2027.holidays[0]: 2027-02-30 does not exist" in err


@pytest.mark.parametrize(
    "args",
    [
        ("add", "2025-13-01", "1"),
        ("add", "20250101", "1"),
        ("add", "2025-01-01", "-1"),
        ("add", "2025-01-01", "x"),
        ("between", "2025-01-01", "tomorrow"),
        ("add", "2025-01-01", "1", "--holidays", "/nonexistent/h.yaml"),
    ],
)
def test_workdays_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert run("codes", "workdays", *args)[0] == 2


def test_add_beyond_the_calendar_exits_1() -> None:
    code, _, err = run("codes", "workdays", "add", "9999-12-30", "5")
    assert code == 1
    assert err.startswith("error: ")
