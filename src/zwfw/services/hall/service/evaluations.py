"""Evaluations (好差评, GB/T 39734-2020 / GB/T 39735-2020) and rectification tasks (整改).

The applicant rates a concluded case once (5 非常满意 … 1 非常不满意) and may follow up once.
Levels 1–2 are 差评: they open a rectification task whose deadline is the configured number of
working days (provincial practice: 5 or 15) after the rating; staff with
``hall:rectification`` close it with a response.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.services.hall import reports
from zwfw.services.hall.models import Evaluation, Rectification, as_utc, utcnow
from zwfw.services.hall.runtime import HallRuntime
from zwfw.services.hall.service.cases import visible_case
from zwfw.services.hall.steps import FINAL_STATES, CaseState
from zwfw.services.kit import Principal, audit, conflict, forbidden, not_found

RECTIFY = "hall:rectification"
BAD_LEVELS = frozenset({1, 2})


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    level: int = Field(
        ge=1, le=5, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意"
    )
    dimensions: dict[str, int] = Field(default_factory=dict, max_length=10)
    text: str = Field(default="", max_length=2000)
    channel: str = Field(default="online", pattern=r"^(online|window|mobile|self_service|phone)$")

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: dict[str, int]) -> dict[str, int]:
        for name, level in value.items():
            if not 1 <= len(name) <= 50:
                raise ValueError("dimension names have 1 to 50 characters")
            if not 1 <= level <= 5:
                raise ValueError(f"dimension {name!r} is rated {level}; levels are 1 to 5")
        return value

    @model_validator(mode="after")
    def _bad_needs_reason(self) -> EvaluationIn:
        if self.level in BAD_LEVELS and not self.text:
            raise ValueError("a 差评 (level 1 or 2) needs a text saying what went wrong")
        return self


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=2000)
    level: int | None = Field(default=None, ge=1, le=5)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    response: str = Field(min_length=1, max_length=4000, description="整改情况 / 回访答复")


class RectificationOut(BaseModel):
    id: int
    case_number: str
    level: int
    state: str
    opened_at: str
    working_days: int
    deadline: str
    deadline_provisional: bool
    overdue: bool
    response: str | None
    closed_at: str | None


class EvaluationOut(BaseModel):
    case_number: str
    level: int
    level_name: str
    bad: bool
    dimensions: dict[str, int]
    text: str
    channel: str
    at: str
    follow_up: dict[str, object] | None
    rectification: RectificationOut | None


def _iso(moment: object) -> str | None:
    value = as_utc(moment)  # type: ignore[arg-type]
    return value.isoformat() if value is not None else None


def rectification_out(task: Rectification, today: date) -> RectificationOut:
    return RectificationOut(
        id=task.id,
        case_number=task.evaluation.case.case_number,
        level=task.evaluation.level,
        state=task.state,
        opened_at=_iso(task.opened_at) or "",
        working_days=task.working_days,
        deadline=task.deadline.isoformat(),
        deadline_provisional=task.deadline_provisional,
        overdue=task.state == "open" and today > task.deadline,
        response=task.response,
        closed_at=_iso(task.closed_at),
    )


def evaluation_out(evaluation: Evaluation, today: date) -> EvaluationOut:
    follow_up: dict[str, object] | None = None
    if evaluation.follow_up_at is not None:
        follow_up = {
            "text": evaluation.follow_up_text,
            "level": evaluation.follow_up_level,
            "at": _iso(evaluation.follow_up_at),
        }
    task = evaluation.rectification
    return EvaluationOut(
        case_number=evaluation.case.case_number,
        level=evaluation.level,
        level_name=reports.LEVEL_NAMES[evaluation.level],
        bad=evaluation.level in BAD_LEVELS,
        dimensions=evaluation.dimensions,
        text=evaluation.text,
        channel=evaluation.channel,
        at=_iso(evaluation.at) or "",
        follow_up=follow_up,
        rectification=rectification_out(task, today) if task is not None else None,
    )


def evaluate(
    db: Session, hall: HallRuntime, number: str, body: EvaluationIn, principal: Principal
) -> EvaluationOut:
    """The applicant's one rating of a concluded case; a 差评 opens a rectification task."""
    case = visible_case(db, number, principal, lock=True)
    if case.applicant_sub != principal.subject:
        raise forbidden("only the applicant rates a case")
    if CaseState(case.state) not in FINAL_STATES:
        raise conflict(f"case {number} is {case.state}; a case is rated once it is concluded")
    if case.evaluation is not None:
        raise conflict(f"case {number} was rated already; a follow-up is possible once")
    now = utcnow()
    evaluation = Evaluation(
        case=case,
        evaluator_sub=principal.subject,
        level=body.level,
        dimensions=body.dimensions,
        text=body.text,
        channel=body.channel,
        at=now,
    )
    db.add(evaluation)
    if body.level in BAD_LEVELS:
        days = hall.settings.rectification_days
        deadline = hall.deadline(now, days, "working_day")
        evaluation.rectification = Rectification(
            state="open",
            opened_at=now,
            working_days=days,
            deadline=deadline.date,
            deadline_provisional=deadline.provisional,
        )
    db.flush()
    audit.record(
        db,
        actor=principal.subject,
        action="evaluation.create",
        resource=f"case/{number}/evaluation",
        result="success",
        detail={"level": body.level, "rectification": body.level in BAD_LEVELS},
    )
    reports.enqueue_evaluation_report(db, evaluation, hall.settings.region_code)
    return evaluation_out(evaluation, hall.today(now))


def case_evaluation(
    db: Session, hall: HallRuntime, number: str, principal: Principal
) -> EvaluationOut:
    case = visible_case(db, number, principal)
    if case.evaluation is None:
        raise not_found(f"case {number} has not been rated")
    return evaluation_out(case.evaluation, hall.today(utcnow()))


def follow_up(
    db: Session, hall: HallRuntime, number: str, body: FollowUpIn, principal: Principal
) -> EvaluationOut:
    case = visible_case(db, number, principal, lock=True)
    if case.applicant_sub != principal.subject:
        raise forbidden("only the applicant follows up an evaluation")
    evaluation = case.evaluation
    if evaluation is None:
        raise conflict(f"case {number} has not been rated; rate it first")
    if evaluation.follow_up_at is not None:
        raise conflict(f"case {number}'s evaluation was followed up already (once only)")
    now = utcnow()
    evaluation.follow_up_text, evaluation.follow_up_level, evaluation.follow_up_at = (
        body.text,
        body.level,
        now,
    )
    db.flush()
    audit.record(
        db,
        actor=principal.subject,
        action="evaluation.follow_up",
        resource=f"case/{number}/evaluation",
        result="success",
        detail={"level": body.level},
    )
    reports.enqueue_evaluation_report(db, evaluation, hall.settings.region_code)
    return evaluation_out(evaluation, hall.today(now))


def rectifications(
    db: Session, hall: HallRuntime, *, state: str | None = None, overdue: bool | None = None
) -> list[RectificationOut]:
    today = hall.today(utcnow())
    query = select(Rectification).order_by(Rectification.deadline, Rectification.id)
    if state is not None:
        query = query.where(Rectification.state == state)
    if overdue:
        query = query.where(Rectification.state == "open", Rectification.deadline < today)
    return [rectification_out(t, today) for t in db.scalars(query).unique()]


def close_rectification(
    db: Session, hall: HallRuntime, task_id: int, response: str, *, actor: str
) -> RectificationOut:
    task = db.scalars(
        select(Rectification).where(Rectification.id == task_id).with_for_update(of=Rectification)
    ).first()
    if task is None:
        raise not_found(f"rectification {task_id} does not exist")
    if task.state != "open":
        raise conflict(f"rectification {task_id} is closed already")
    now = utcnow()
    task.state, task.response, task.closed_at, task.closed_by = (
        "closed",
        response,
        now,
        actor,
    )
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="rectification.close",
        resource=f"rectification/{task_id}",
        result="success",
        detail={"case": task.evaluation.case.case_number},
    )
    reports.enqueue_evaluation_report(db, task.evaluation, hall.settings.region_code)
    return rectification_out(task, hall.today(now))
