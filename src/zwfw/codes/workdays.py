"""Working-day arithmetic on the State Council holiday calendar (法定/承诺办结时限).

Sources, per calendar year:

1. ``chinese-calendar`` (the library's years, 2004-2026 in the pinned version): authoritative.
2. An operator-supplied holiday file, for the years the library does not know yet. The State
   Council publishes each year's schedule in November, while deadlines already run into the next
   year, so operators add it to the file as soon as it is published. Where the file also covers a
   library year it must agree with the library day for day; a file that disagrees is refused,
   never silently overridden either way.
3. Neither: weekends-only (Monday-Friday are working days). Results that relied on such a year
   are flagged ``provisional`` with the years named, so a caller can tell a guess from a fact.

Semantics:

- ``add(d, n)`` (n >= 0) is the day on which the n-th working day after ``d`` falls: days are
  counted from the day after ``d``; ``add(d, 0)`` is ``d`` itself, working day or not.
- ``between(a, b)`` counts the working days in ``(a, b]``, and is negative (minus the count in
  ``(b, a]``) when ``b < a``; so ``between(d, add(d, n).date) == n``.

Holiday file (YAML)::

    2027:
      holidays:                        # days off, weekends inside the break included or not
        - 2027-01-01                   # one day
        - 2027-02-06..2027-02-12       # an inclusive range
        - {from: 2027-10-01, to: 2027-10-07, name: 国庆节}
      workdays:                        # 调休上班: make-up working days, always a Sat or Sun
        - 2027-02-14

Every date must exist and lie in its year key; a day may not be both a holiday and a make-up
working day; each year needs at least one holiday. Errors name the file and the entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import chinese_calendar
import yaml

ENV_VAR = "ZWFW_HOLIDAY_FILE"
Source = Literal["chinese-calendar", "holiday-file"]
_ONE_DAY = timedelta(days=1)


class HolidayFileError(ValueError):
    """The holiday file cannot be used; `location` names the entry, e.g. ``2027.holidays[2]``."""

    def __init__(self, path: Path | str, location: str, reason: str) -> None:
        super().__init__(path, location, reason)
        self.path = Path(path)
        self.location = location
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}: {self.location}" if self.location else str(self.path)
        return f"holiday file {where}: {self.reason}"


@dataclass(frozen=True)
class YearSchedule:
    """One year's days off and make-up working days, and where they come from."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    source: Source

    def is_workday(self, day: date) -> bool:
        return day in self.workdays or (day.weekday() < 5 and day not in self.holidays)


class DayStatus(NamedTuple):
    workday: bool
    provisional: bool


@dataclass(frozen=True)
class WorkdayResult:
    date: date
    provisional: bool
    provisional_years: tuple[int, ...]


@dataclass(frozen=True)
class WorkdayCount:
    days: int
    provisional: bool
    provisional_years: tuple[int, ...]


def _library_schedules() -> dict[int, YearSchedule]:
    years = {day.year for day in chinese_calendar.holidays}
    return {
        year: YearSchedule(
            year,
            frozenset(d for d in chinese_calendar.holidays if d.year == year),
            frozenset(d for d in chinese_calendar.workdays if d.year == year),
            "chinese-calendar",
        )
        for year in range(min(years), max(years) + 1)
    }


_LIBRARY = _library_schedules()


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps dates as text (so we can say which one is wrong) and refuses
    duplicate keys (which YAML would otherwise resolve silently to the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _parse_date(path: Path, location: str, text: object, year: int) -> date:
    match = _DATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise HolidayFileError(path, location, f"{text!r} is not a date (expected YYYY-MM-DD)")
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise HolidayFileError(path, location, f"{text} does not exist") from None
    if day.year != year:
        raise HolidayFileError(path, location, f"{text} is not in year {year}")
    return day


def _parse_entry(path: Path, location: str, entry: object, year: int) -> list[date]:
    """One list entry: a date, ``A..B``, ``{date: D}`` or ``{from: A, to: B}`` (+ ``name``)."""
    if isinstance(entry, dict):
        keys = set(entry)
        shape = keys - {"name"}
        if shape != {"date"} and shape != {"from", "to"}:
            raise HolidayFileError(
                path,
                location,
                f"an entry mapping has 'date' or 'from' and 'to' (and optionally 'name'), "
                f"got keys {sorted(map(str, keys))}",
            )
        if "date" in entry:
            return [_parse_date(path, location, entry["date"], year)]
        start_text, end_text = entry["from"], entry["to"]
    elif isinstance(entry, str) and ".." in entry:
        start_text, _, end_text = entry.partition("..")
    else:
        return [_parse_date(path, location, entry, year)]
    start = _parse_date(path, location, start_text, year)
    end = _parse_date(path, location, end_text, year)
    if end < start:
        raise HolidayFileError(path, location, f"range ends ({end}) before it starts ({start})")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _parse_days(path: Path, year: int, key: str, entries: object) -> dict[date, str]:
    """Every day listed under `key`, mapped to the location that first listed it."""
    if not isinstance(entries, list):
        raise HolidayFileError(path, f"{year}.{key}", "expected a list of dates and ranges")
    days: dict[date, str] = {}
    for index, entry in enumerate(entries):
        location = f"{year}.{key}[{index}]"
        for day in _parse_entry(path, location, entry, year):
            days.setdefault(day, location)
    return days


def _parse_year(path: Path, key: object, body: object) -> YearSchedule:
    if isinstance(key, bool) or not (
        isinstance(key, int) or (isinstance(key, str) and key.isascii() and key.isdigit())
    ):
        raise HolidayFileError(path, str(key), f"year key {key!r} is not a year")
    year = int(key)
    if not 1900 <= year <= 9999:
        raise HolidayFileError(path, str(key), f"year {year} is out of range 1900-9999")
    if not isinstance(body, dict):
        raise HolidayFileError(path, str(year), "expected a mapping with 'holidays', 'workdays'")
    unknown = set(body) - {"holidays", "workdays"}
    if unknown:
        raise HolidayFileError(
            path,
            str(year),
            f"unknown keys {sorted(map(str, unknown))}; allowed: holidays, workdays",
        )
    holidays = _parse_days(path, year, "holidays", body.get("holidays"))
    if not holidays:
        raise HolidayFileError(path, f"{year}.holidays", "lists no holiday")
    workdays = _parse_days(path, year, "workdays", body.get("workdays", []))
    for day, location in workdays.items():
        if day in holidays:
            raise HolidayFileError(
                path,
                location,
                f"{day} is both a holiday ({holidays[day]}) and a make-up working day",
            )
        if day.weekday() < 5:
            raise HolidayFileError(
                path,
                location,
                f"{day} is a {_WEEKDAYS[day.weekday()]}; make-up working days fall on weekends",
            )
    return YearSchedule(year, frozenset(holidays), frozenset(workdays), "holiday-file")


def _check_agrees_with_library(path: Path, schedule: YearSchedule) -> None:
    library = _LIBRARY[schedule.year]
    day = date(schedule.year, 1, 1)
    while day.year == schedule.year:
        in_file, in_library = schedule.is_workday(day), library.is_workday(day)
        if in_file != in_library:
            raise HolidayFileError(
                path,
                str(schedule.year),
                f"{day} is a {'working day' if in_file else 'day off'} in the file but a "
                f"{'working day' if in_library else 'day off'} in the State Council calendar "
                f"known to chinese-calendar; correct the file or drop year {schedule.year}",
            )
        day += _ONE_DAY


def load_holiday_file(path: Path | str) -> dict[int, YearSchedule]:
    """Read and validate a holiday file; raises HolidayFileError naming the bad entry.

    Years the library also knows must agree with it day for day; they are checked, then left to
    the library.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise HolidayFileError(path, "", f"cannot read: {err}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())
        raise HolidayFileError(path, "", f"not valid YAML: {reason}") from None
    if not isinstance(data, dict) or not data:
        raise HolidayFileError(path, "", "expected a mapping of years to their schedules")
    schedules: dict[int, YearSchedule] = {}
    for key, body in data.items():
        schedule = _parse_year(path, key, body)
        if schedule.year in schedules:
            raise HolidayFileError(path, str(key), f"year {schedule.year} is listed twice")
        if schedule.year in _LIBRARY:
            _check_agrees_with_library(path, schedule)
        schedules[schedule.year] = schedule
    return schedules


class WorkdayCalendar:
    """Working days per the State Council calendar, extended by an optional holiday file.

    `holiday_file` None reads the path from the environment variable ``ZWFW_HOLIDAY_FILE`` when
    it is set and not empty. The file is read and validated once, here.
    """

    def __init__(self, holiday_file: Path | str | None = None) -> None:
        if holiday_file is None and os.environ.get(ENV_VAR):
            holiday_file = os.environ[ENV_VAR]
        self.holiday_file = Path(holiday_file) if holiday_file is not None else None
        self._schedules = dict(_LIBRARY)
        if self.holiday_file is not None:
            for year, schedule in load_holiday_file(self.holiday_file).items():
                self._schedules.setdefault(year, schedule)

    def source(self, year: int) -> Source | None:
        """Where `year`'s schedule comes from; None when it has none (weekends-only)."""
        schedule = self._schedules.get(year)
        return schedule.source if schedule else None

    @property
    def years(self) -> tuple[int, ...]:
        """Every year with holiday data, sorted."""
        return tuple(sorted(self._schedules))

    def is_workday(self, day: date) -> DayStatus:
        """Whether `day` is a working day, and whether that is a weekends-only guess."""
        schedule = self._schedules.get(day.year)
        if schedule is None:
            return DayStatus(day.weekday() < 5, True)
        return DayStatus(schedule.is_workday(day), False)

    def add(self, start: date, n: int) -> WorkdayResult:
        """The day of the n-th working day after `start` (n >= 0; n = 0 gives `start`)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"working days to add must be an integer >= 0, got {n!r}")
        day, counted, provisional = start, 0, set()
        while counted < n:
            try:
                day += _ONE_DAY
            except OverflowError:
                raise ValueError(f"{n} working days after {start} is beyond {date.max}") from None
            workday, guessed = self.is_workday(day)
            if guessed:
                provisional.add(day.year)
            counted += workday
        return WorkdayResult(day, bool(provisional), tuple(sorted(provisional)))

    def between(self, start: date, end: date) -> WorkdayCount:
        """Working days in (start, end]; negative, the count in (end, start], when end < start."""
        sign, low, high = (1, start, end) if start <= end else (-1, end, start)
        count, provisional = 0, set()
        for ordinal in range(low.toordinal() + 1, high.toordinal() + 1):
            workday, guessed = self.is_workday(date.fromordinal(ordinal))
            if guessed:
                provisional.add(date.fromordinal(ordinal).year)
            count += workday
        return WorkdayCount(sign * count, bool(provisional), tuple(sorted(provisional)))


def provisional_note(years: Iterable[int]) -> str:
    """The warning to show next to a result that relied on weekends-only years."""
    listed = ", ".join(str(year) for year in years)
    return (
        f"provisional: weekends-only for {listed} "
        f"(no holiday data; pass --holidays FILE or set {ENV_VAR})"
    )
