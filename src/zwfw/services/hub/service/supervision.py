"""E-supervision (电子监察) and the hub's read side: overdue cases, bad evaluations past their
rectification deadline, and the aggregated catalog.

A case is overdue once its promised date (承诺办结时限, counted in working days by the
province) is over in the hub's time zone and it is not finished. A bad evaluation (level 1-2)
is overdue once its rectification deadline is over and the rectification is not closed. Both
are listed via the API and exported as gauges on ``/metrics`` (computed at scrape time).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from zwfw.services.hub.models import Case, CatalogItem, Evaluation, Report, as_utc
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import not_found

SCOPE_SUPERVISE = "hub:supervise"


def today(settings: HubSettings, now: datetime | None = None) -> date:
    moment = now or datetime.now(ZoneInfo(settings.timezone))
    return moment.astimezone(ZoneInfo(settings.timezone)).date()


def overdue_cases_query(day: date, region: str | None = None) -> Any:
    query = select(Case).where(
        Case.finish_time.is_(None), Case.promise_date.is_not(None), Case.promise_date < day
    )
    return query.where(Case.region_code == region) if region else query


def overdue_rectifications_query(day: date, region: str | None = None) -> Any:
    query = select(Evaluation).where(
        Evaluation.level <= 2,
        Evaluation.rectification_state != "closed",
        Evaluation.rectification_deadline < day,
    )
    return query.where(Evaluation.region_code == region) if region else query


def _iso(value: datetime | None) -> str | None:
    moment = as_utc(value)
    return moment.isoformat() if moment else None


class CaseOut(BaseModel):
    case_number: str
    region_code: str
    implementation_code: str
    item_name: str
    dept_code: str
    dept_name: str
    state: str
    apply_time: str | None
    accept_time: str | None
    promised_days: int | None
    promise_date: str | None
    finish_time: str | None
    result: str | None
    steps: list[dict[str, Any]]
    licence_materials: int
    version: int
    overdue_days: int | None = None


def case_out(case: Case, day: date | None = None) -> CaseOut:
    overdue = None
    if day is not None and case.promise_date is not None and case.finish_time is None:
        overdue = max(0, (day - case.promise_date).days)
    return CaseOut(
        case_number=case.case_number,
        region_code=case.region_code,
        implementation_code=case.implementation_code,
        item_name=case.item_name,
        dept_code=case.dept_code,
        dept_name=case.dept_name,
        state=case.state,
        apply_time=_iso(case.apply_time),
        accept_time=_iso(case.accept_time),
        promised_days=case.promised_days,
        promise_date=case.promise_date.isoformat() if case.promise_date else None,
        finish_time=_iso(case.finish_time),
        result=case.result,
        steps=case.steps,
        licence_materials=case.licence_materials,
        version=case.version,
        overdue_days=overdue,
    )


class EvaluationOut(BaseModel):
    case_number: str
    region_code: str
    implementation_code: str
    dept_code: str
    level: int
    rated_at: str | None
    followed_up: bool
    rectification_state: str | None
    rectification_deadline: str | None
    rectification_closed_at: str | None
    rectification_response: str | None
    version: int


def evaluation_out(evaluation: Evaluation) -> EvaluationOut:
    deadline = evaluation.rectification_deadline
    return EvaluationOut(
        case_number=evaluation.case_number,
        region_code=evaluation.region_code,
        implementation_code=evaluation.implementation_code,
        dept_code=evaluation.dept_code,
        level=evaluation.level,
        rated_at=_iso(evaluation.rated_at),
        followed_up=evaluation.followed_up,
        rectification_state=evaluation.rectification_state,
        rectification_deadline=deadline.isoformat() if deadline else None,
        rectification_closed_at=_iso(evaluation.rectification_closed_at),
        rectification_response=evaluation.rectification_response,
        version=evaluation.version,
    )


def overdue_cases(db: Session, settings: HubSettings, region: str | None = None) -> list[CaseOut]:
    day = today(settings)
    rows = db.scalars(overdue_cases_query(day, region).order_by(Case.promise_date))
    return [case_out(c, day) for c in rows]


def overdue_rectifications(
    db: Session, settings: HubSettings, region: str | None = None
) -> list[EvaluationOut]:
    day = today(settings)
    query = overdue_rectifications_query(day, region).order_by(Evaluation.rectification_deadline)
    return [evaluation_out(e) for e in db.scalars(query)]


def reported_case(db: Session, settings: HubSettings, case_number: str) -> CaseOut:
    case = db.get(Case, case_number)
    if case is None:
        raise not_found(f"case {case_number} has not been reported")
    return case_out(case, today(settings))


class ReportOut(BaseModel):
    report_id: str
    kind: str
    sender: str
    idempotency_key: str
    version: int
    outcome: str
    received_at: str | None
    signing_key_id: str | None


def case_reports(db: Session, case_number: str) -> list[ReportOut]:
    # What arrived, as taken: lets a supervisor (or a certification run) see each delivery,
    # who sent it and with which registered channel key it was verified.
    rows = db.scalars(
        select(Report)
        .where(Report.subject == case_number, Report.kind.in_(("case", "evaluation")))
        .order_by(Report.received_at, Report.version)
    )
    return [
        ReportOut(
            report_id=r.id,
            kind=r.kind,
            sender=r.sender,
            idempotency_key=r.idempotency_key,
            version=r.version,
            outcome=r.outcome,
            received_at=_iso(r.received_at),
            signing_key_id=r.signing_key_id,
        )
        for r in rows
    ]


def reported_evaluation(db: Session, case_number: str) -> EvaluationOut:
    evaluation = db.get(Evaluation, case_number)
    if evaluation is None:
        raise not_found(f"no evaluation of case {case_number} has been reported")
    return evaluation_out(evaluation)


class CatalogItemOut(BaseModel):
    region_code: str
    code: str
    implementation_code: str
    basic_code: str
    name: str
    version: int
    state: str
    guide: dict[str, Any]


def catalog_items(
    db: Session,
    *,
    region: str | None = None,
    basic_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[CatalogItemOut]:
    query = select(CatalogItem).where(CatalogItem.state == "published")
    if region:
        query = query.where(CatalogItem.region_code == region)
    if basic_code:
        query = query.where(CatalogItem.basic_code == basic_code)
    query = query.order_by(CatalogItem.region_code, CatalogItem.code).limit(limit).offset(offset)
    return [
        CatalogItemOut(
            region_code=i.region_code,
            code=i.code,
            implementation_code=i.implementation_code,
            basic_code=i.basic_code,
            name=i.name,
            version=i.version,
            state=i.state,
            guide=i.guide,
        )
        for i in db.scalars(query)
    ]


class SupervisionCollector(Collector):
    """``zwfw_hub_overdue_cases`` and ``zwfw_hub_overdue_rectifications`` by region, counted
    from the database at scrape time (always current, no background job)."""

    def __init__(self, sessions: sessionmaker[Session], settings: HubSettings) -> None:
        self.sessions = sessions
        self.settings = settings

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "zwfw_hub_overdue_cases",
                "Reported cases past their promised date and not finished (电子监察).",
                labels=["region_code"],
            ),
            GaugeMetricFamily(
                "zwfw_hub_overdue_rectifications",
                "Bad evaluations whose rectification is past its deadline and not closed.",
                labels=["region_code"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cases, rectifications = self._families()
        day = today(self.settings)
        with self.sessions() as session:
            overdue = overdue_cases_query(day).subquery()
            for region, n in session.execute(
                select(overdue.c.region_code, func.count()).group_by(overdue.c.region_code)
            ):
                cases.add_metric([region], n)
            late = overdue_rectifications_query(day).subquery()
            for region, n in session.execute(
                select(late.c.region_code, func.count()).group_by(late.c.region_code)
            ):
                rectifications.add_metric([region], n)
        yield cases
        yield rectifications
