from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zwfw.codes.workdays import ENV_VAR, HolidayFileError, WorkdayCalendar, load_holiday_file

# A schedule in the published form, for a year the library does not know. The dates are
# illustrative: the real 2027 schedule is published in November 2026.
HOLIDAYS_2027 = """\
2027:
  holidays:
    - 2027-01-01
    - 2027-02-06..2027-02-13
    - {from: 2027-10-01, to: 2027-10-07, name: 国庆节}
  workdays:
    - 2027-02-14
    - 2027-09-26
"""


@pytest.fixture(autouse=True)
def _no_holiday_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def holiday_file(tmp_path: Path) -> Path:
    path = tmp_path / "holidays.yaml"
    path.write_text(HOLIDAYS_2027, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "h.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_national_day_2025_with_make_up_days() -> None:
    calendar = WorkdayCalendar()
    assert calendar.is_workday(date(2025, 9, 28)) == (True, False)  # Sunday, make-up day
    assert calendar.is_workday(date(2025, 10, 11)) == (True, False)  # Saturday, make-up day
    for day in range(1, 9):
        assert calendar.is_workday(date(2025, 10, day)).workday is False
    assert calendar.add(date(2025, 9, 30), 1).date == date(2025, 10, 9)
    assert calendar.add(date(2025, 9, 26), 1).date == date(2025, 9, 28)
    assert calendar.between(date(2025, 9, 30), date(2025, 10, 11)).days == 3
    result = calendar.add(date(2025, 9, 30), 3)
    assert (result.date, result.provisional, result.provisional_years) == (
        date(2025, 10, 11),
        False,
        (),
    )


def test_spring_festival_2026() -> None:
    calendar = WorkdayCalendar()
    # 2026-02-14 (Saturday) is a make-up day; 02-15..02-23 are off.
    assert calendar.add(date(2026, 2, 13), 1).date == date(2026, 2, 14)
    assert calendar.add(date(2026, 2, 14), 1).date == date(2026, 2, 24)
    assert calendar.source(2026) == "chinese-calendar"


def test_add_zero_is_the_start_day_even_on_a_holiday() -> None:
    assert WorkdayCalendar().add(date(2025, 10, 1), 0).date == date(2025, 10, 1)


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_add_rejects_anything_but_a_natural_number(n: object) -> None:
    with pytest.raises(ValueError, match="integer >= 0"):
        WorkdayCalendar().add(date(2025, 1, 1), n)  # type: ignore[arg-type]


def test_add_past_the_last_date_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="beyond 9999-12-31"):
        WorkdayCalendar().add(date(9999, 12, 30), 5)


def test_between_is_negative_backwards_and_zero_on_the_same_day() -> None:
    calendar = WorkdayCalendar()
    assert calendar.between(date(2025, 10, 11), date(2025, 9, 30)).days == -3
    assert calendar.between(date(2025, 10, 11), date(2025, 10, 11)).days == 0


def test_years_without_data_are_weekends_only_and_flagged() -> None:
    calendar = WorkdayCalendar()
    result = calendar.add(date(2026, 12, 31), 1)
    # 2027-01-01 is a Friday: a working day when only weekends are known.
    assert (result.date, result.provisional, result.provisional_years) == (
        date(2027, 1, 1),
        True,
        (2027,),
    )
    count = calendar.between(date(2026, 12, 1), date(2029, 1, 2))
    assert count.provisional_years == (2027, 2028, 2029)
    assert calendar.is_workday(date(2027, 1, 2)) == (False, True)
    assert calendar.source(2027) is None
    assert not calendar.between(date(2026, 1, 1), date(2026, 12, 31)).provisional


def test_holiday_file_covers_later_years(holiday_file: Path) -> None:
    calendar = WorkdayCalendar(holiday_file)
    result = calendar.add(date(2026, 12, 31), 1)
    assert (result.date, result.provisional) == (date(2027, 1, 4), False)
    assert calendar.is_workday(date(2027, 2, 14)) == (True, False)
    assert calendar.add(date(2027, 2, 5), 1).date == date(2027, 2, 14)
    assert calendar.source(2027) == "holiday-file"
    assert calendar.add(date(2027, 12, 30), 2).provisional_years == (2028,)


def test_holiday_file_from_environment(holiday_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(holiday_file))
    assert WorkdayCalendar().source(2027) == "holiday-file"
    monkeypatch.setenv(ENV_VAR, str(holiday_file.parent / "missing.yaml"))
    with pytest.raises(HolidayFileError, match="cannot read"):
        WorkdayCalendar()


def test_file_agreeing_with_the_library_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2025:\n  holidays: ['2025-01-01', 2025-01-28..2025-02-04, 2025-04-04..2025-04-06,"
        " 2025-05-01..2025-05-05, 2025-05-31..2025-06-02, 2025-10-01..2025-10-08]\n"
        "  workdays: [2025-01-26, 2025-02-08, 2025-04-27, 2025-09-28, 2025-10-11]\n",
    )
    calendar = WorkdayCalendar(path)
    assert calendar.source(2025) == "chinese-calendar"


def test_file_contradicting_the_library_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "2025:\n  holidays: [2025-10-01..2025-10-09]\n")
    with pytest.raises(HolidayFileError) as info:
        WorkdayCalendar(path)
    # The file omits the make-up days and the Spring Festival; the first difference is named.
    assert "2025-01-01 is a working day in the file but a day off" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2027:\n  holidays: [2027-02-30]\n", "2027.holidays[0]: 2027-02-30 does not exist"),
        ("2027:\n  holidays: [2027-1-1]\n", "2027.holidays[0]: '2027-1-1' is not a date"),
        ("2027:\n  holidays: [2026-12-31]\n", "2027.holidays[0]: 2026-12-31 is not in year 2027"),
        (
            "2027:\n  holidays: [2027-01-05..2027-01-01]\n",
            "range ends (2027-01-01) before it starts",
        ),
        (
            "2027:\n  holidays: [2027-02-06..2027-02-14]\n  workdays: [2027-02-14]\n",
            "2027.workdays[0]: 2027-02-14 is both a holiday (2027.holidays[0]) and a make-up",
        ),
        (
            "2027:\n  holidays: [2027-01-01]\n  workdays: [2027-02-15]\n",
            "2027-02-15 is a Monday; make-up working days fall on weekends",
        ),
        ("2027:\n  holidays: []\n", "2027.holidays: lists no holiday"),
        ("2027:\n  workdays: [2027-02-14]\n", "2027.holidays: expected a list"),
        ("2027:\n  holidays: [2027-01-01]\n  rest: []\n", "unknown keys ['rest']"),
        ("twenty:\n  holidays: [2027-01-01]\n", "year key 'twenty' is not a year"),
        (
            "2027:\n  holidays: [{from: 2027-01-01}]\n",
            "an entry mapping has 'date' or 'from' and 'to'",
        ),
        (
            "2027:\n  holidays: [2027-01-01]\n2027:\n  holidays: [2027-01-02]\n",
            "duplicate key 2027",
        ),
        ("2027: [\n", "not valid YAML"),
        ("- 2027-01-01\n", "expected a mapping of years"),
        ("", "expected a mapping of years"),
    ],
)
def test_holiday_file_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HolidayFileError) as info:
        load_holiday_file(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_year_as_quoted_key_and_single_date_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "'2030':\n  holidays: [{date: 2030-01-01, name: 元旦}]\n")
    assert load_holiday_file(path)[2030].holidays == frozenset({date(2030, 1, 1)})


calendars = st.sampled_from(["library", "file"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calendars, st.dates(date(2024, 1, 1), date(2028, 12, 31)), st.integers(0, 400))
def test_between_inverts_add(holiday_file: Path, which: str, start: date, n: int) -> None:
    calendar = WorkdayCalendar(holiday_file if which == "file" else None)
    result = calendar.add(start, n)
    count = calendar.between(start, result.date)
    assert count.days == n
    assert calendar.between(result.date, start).days == -n
    assert count.provisional_years == result.provisional_years
    if n:
        assert calendar.is_workday(result.date).workday
        assert calendar.add(start, n - 1).date < result.date


@given(st.dates(date(2024, 1, 1), date(2028, 12, 31)), st.integers(0, 60))
def test_between_counts_working_days_in_the_half_open_interval(start: date, span: int) -> None:
    calendar = WorkdayCalendar()
    end = start + timedelta(days=span)
    expected = sum(
        calendar.is_workday(start + timedelta(days=i)).workday for i in range(1, span + 1)
    )
    assert calendar.between(start, end).days == expected
