"""The hall's reports to the national hub: one case report (办件) and one evaluation report
(好差评) per change, in the shape of the national-aligned data sets.

A case report carries the whole case so far (basic info, every step, materials, deadline,
result), so the hub can flag open cases past their promised date (电子监察) without waiting
for the end. ``version`` (the case's revision) grows with every change and the idempotency
key names it, so a report delivered twice is stored once while a newer version replaces an
older one.

The certificate number is part of the national data set (GB/T 39735 reported items); it
travels only over the signed, mutually authenticated channel and is never logged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from zwfw.services.hall.models import Case, Evaluation, as_utc, field_protector
from zwfw.services.kit import outbox

CASE_REPORT_PATH = "/reports/cases"
EVALUATION_REPORT_PATH = "/reports/evaluations"

USER_TYPES = {"person": "0", "legal_person": "1"}
LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


def _iso(moment: Any) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def case_report(case: Case, region_code: str) -> dict[str, Any]:
    guide = case.item.guide
    return {
        "report": "case",
        "version": case.revision,
        "region_code": region_code,
        "case_number": case.case_number,
        "implementation_code": case.implementation_code,
        "handling_item_code": case.handling_item_code,
        "item_name": case.item.name,
        "item_version": case.item.version,
        "dept_code": guide["dept_code"],
        "dept_name": guide["dept_name"],
        "project_type": guide["project_type"],
        "user_type": USER_TYPES[case.user_type],
        "applicant_name": case.applicant_name,
        "certificate_type": case.certificate_type,
        "certificate_number": case.certificate_number,
        "channel": case.channel,
        "state": case.state,
        "apply_time": _iso(case.applied_at),
        "accept_time": _iso(case.accepted_at),
        "promised_days": case.promised_days,
        "promised_unit": case.promised_unit,
        "promise_date": case.promise_date.isoformat() if case.promise_date else None,
        "promise_date_provisional": case.deadline_provisional,
        "finish_time": _iso(case.finished_at),
        "result": case.result,
        "steps": [
            {
                "seq": step.seq,
                "nodetype": step.nodetype,
                "noderesult": step.noderesult,
                "node_name": step.node_name,
                "handler_name": step.handler_name,
                "opinion": step.opinion,
                "time": _iso(step.at),
            }
            for step in case.steps
        ],
        "materials": [
            {
                "name": material.name,
                "gettype": material.gettype,
                "supplement": material.supplement,
                "sha256": material.sha256,
                "licence_id": material.licence_id,
                "licence_cause": material.licence_cause,
            }
            for material in case.materials
        ],
    }


def evaluation_report(evaluation: Evaluation, region_code: str, version: int) -> dict[str, Any]:
    case = evaluation.case
    guide = case.item.guide
    officer = case.steps[-1].handler_name if case.steps else None
    rectification = evaluation.rectification
    return {
        "report": "evaluation",
        "version": version,
        "region_code": region_code,
        "case_number": case.case_number,
        "implementation_code": case.implementation_code,
        "item_name": case.item.name,
        "dept_code": guide["dept_code"],
        "dept_name": guide["dept_name"],
        "handler_name": officer,
        "apply_time": _iso(case.applied_at),
        "done_time": _iso(case.finished_at),
        "user_type": USER_TYPES[case.user_type],
        "certificate_type": case.certificate_type,
        "certificate_number": case.certificate_number,
        "channel": evaluation.channel,
        "level": evaluation.level,
        "level_name": LEVEL_NAMES[evaluation.level],
        "dimensions": evaluation.dimensions,
        "text": evaluation.text,
        "time": _iso(evaluation.at),
        "follow_up": None
        if evaluation.follow_up_at is None
        else {
            "text": evaluation.follow_up_text,
            "level": evaluation.follow_up_level,
            "time": _iso(evaluation.follow_up_at),
        },
        "rectification": None
        if rectification is None
        else {
            "state": rectification.state,
            "deadline": rectification.deadline.isoformat(),
            "working_days": rectification.working_days,
            "deadline_provisional": rectification.deadline_provisional,
            "response": rectification.response,
            "closed_at": _iso(rectification.closed_at),
        },
    }


def evaluation_version(evaluation: Evaluation) -> int:
    """1 when rated, +1 for the follow-up and +1 when the rectification is closed."""
    closed = evaluation.rectification is not None and evaluation.rectification.state == "closed"
    return 1 + (evaluation.follow_up_at is not None) + closed


def enqueue_case_report(db: Session, case: Case, region_code: str) -> str:
    """Queue the case's report in ``db``'s transaction (delivered by the outbox dispatcher)."""
    return outbox.enqueue(
        db,
        kind="case",
        path=CASE_REPORT_PATH,
        payload=case_report(case, region_code),
        idempotency_key=f"{region_code}:case:{case.case_number}:v{case.revision}",
        # Reports carry the certificate number: kept encrypted like the case itself.
        protector=field_protector(),
    )


def enqueue_evaluation_report(db: Session, evaluation: Evaluation, region_code: str) -> str:
    version = evaluation_version(evaluation)
    return outbox.enqueue(
        db,
        kind="evaluation",
        path=EVALUATION_REPORT_PATH,
        payload=evaluation_report(evaluation, region_code, version),
        idempotency_key=f"{region_code}:evaluation:{evaluation.case.case_number}:v{version}",
        protector=field_protector(),
    )
