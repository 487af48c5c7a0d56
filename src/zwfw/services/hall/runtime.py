"""What the hall keeps on ``app.state.hall``: the working-day calendar and the e-licence
client, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import Request

from zwfw.codes.workdays import WorkdayCalendar
from zwfw.services.hall.elicense import ElicenseClient, build_client
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit.outbox import Dispatcher

# Dates of acceptance, deadlines and case numbers are Beijing-time calendar dates.
CHINA = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Deadline:
    date: date
    provisional: bool
    provisional_years: tuple[int, ...]


@dataclass
class HallRuntime:
    settings: HallSettings
    calendar: WorkdayCalendar
    elicense: ElicenseClient | None
    # The outbox dispatcher delivering reports to the hub (None: reporting is off).
    dispatcher: Dispatcher | None = None

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(CHINA).date()

    def deadline(self, start: datetime, days: int, unit: str) -> Deadline:
        """The day ``days`` working (or natural) days after ``start``'s Beijing date."""
        day = self.local_date(start)
        if unit == "natural_day":
            return Deadline(day + timedelta(days=days), False, ())
        result = self.calendar.add(day, days)
        return Deadline(result.date, result.provisional, result.provisional_years)

    def today(self, now: datetime) -> date:
        return self.local_date(now)


def runtime(request: Request) -> HallRuntime:
    return request.app.state.hall


def build_runtime(settings: HallSettings) -> HallRuntime:
    return HallRuntime(settings, WorkdayCalendar(settings.holiday_file), build_client(settings))
