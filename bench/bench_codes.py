"""Throughput of code validation, masking and working-day arithmetic, each against a baseline
that does the cheapest thing of the same shape (a regular expression or plain date stepping)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from figure import Figure, rate

from zwfw.codes import parse_credit_code, parse_licence_id
from zwfw.codes.masking import mask_personal_data
from zwfw.codes.workdays import WorkdayCalendar

CREDIT_CODE = "11370800MB28559184"
LICENCE_ID = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"
LOG_LINE = (
    "2025-10-09T09:30:01.123+08:00 INFO hall case=11370800MB285591843370117002011202510090012 "
    "applicant_id=11010519491231002X phone=+86 13812345678 licence=" + LICENCE_ID + " took=12ms"
)

_CREDIT_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")
_LICENCE_SHAPE = re.compile(
    r"1\.2\.156\.3005\.2\.[0-9A-Z]{18}\d{3}\.[0-9A-Z]{18}\.[0-9A-Za-z]{1,32}\.\d{3}\.[0-9A-Z]"
)
_DIGIT_RUN = re.compile(r"\d{11,18}")


def _weekdays_only(start: date, n: int) -> date:
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        counted += day.weekday() < 5
    return day


def figures() -> list[Figure]:
    assert parse_licence_id(LICENCE_ID)  # the sample must stay valid for the figure to mean much
    calendar = WorkdayCalendar(None)
    start = date(2025, 9, 26)
    return [
        Figure(
            "credit-code validations",
            rate(lambda: parse_credit_code(CREDIT_CODE)),
            "validations/s",
            "re.fullmatch of the credit-code shape",
            rate(lambda: _CREDIT_SHAPE.fullmatch(CREDIT_CODE)),
        ),
        Figure(
            "licence-id validations",
            rate(lambda: parse_licence_id(LICENCE_ID)),
            "validations/s",
            "re.fullmatch of the licence-id shape",
            rate(lambda: _LICENCE_SHAPE.fullmatch(LICENCE_ID)),
        ),
        Figure(
            "mask_personal_data on a log line",
            rate(lambda: mask_personal_data(LOG_LINE)),
            "lines/s",
            "re.sub of every 11-18 digit run",
            rate(lambda: _DIGIT_RUN.sub("*", LOG_LINE)),
        ),
        Figure(
            "workdays add 20",
            rate(lambda: calendar.add(start, 20)),
            "calls/s",
            "stepping 20 weekdays with no calendar",
            rate(lambda: _weekdays_only(start, 20)),
        ),
    ]
