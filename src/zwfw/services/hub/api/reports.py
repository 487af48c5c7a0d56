"""Report intake routes (``/reports/*``, ``hub:report``): each body a signed channel message,
verified here against the sending province's registration before the domain takes it.
A duplicate delivery is answered 200 with its first receipt, a new report 201."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from zwfw.formats.channel import VerifiedMessage
from zwfw.services.hub.inbound import RawBody, parse_body, verify_message
from zwfw.services.hub.models import Province
from zwfw.services.hub.service import reports
from zwfw.services.hub.service.reports import (
    SCOPE_REPORT,
    CaseReport,
    CatalogReceipt,
    CatalogReport,
    EvaluationReport,
    Receipt,
)
from zwfw.services.kit import DbSession, Principal, require_scopes

router = APIRouter(prefix="/reports", tags=["report intake"])
ReportScope = Annotated[Principal, Depends(require_scopes(SCOPE_REPORT))]


Payload = TypeVar("Payload", bound=BaseModel)
Answer = TypeVar("Answer", bound=Receipt)


def _take(
    request: Request,
    response: Response,
    body: bytes,
    db: Session,
    principal: Principal,
    shape: type[Payload],
    take: Callable[[Session, Province, VerifiedMessage, Payload], Answer],
) -> Answer:
    province, message = verify_message(request, body, db, principal)
    receipt = take(db, province, message, parse_body(shape, body))
    if receipt.duplicate:
        response.status_code = 200
    return receipt


@router.post("/cases", status_code=201, summary="Take a case report (办件)")
def report_case(
    request: Request, response: Response, body: RawBody, db: DbSession, principal: ReportScope
) -> Receipt:
    return _take(request, response, body, db, principal, CaseReport, reports.take_case_report)


@router.post("/evaluations", status_code=201, summary="Take an evaluation report (好差评)")
def report_evaluation(
    request: Request, response: Response, body: RawBody, db: DbSession, principal: ReportScope
) -> Receipt:
    return _take(
        request, response, body, db, principal, EvaluationReport, reports.take_evaluation_report
    )


@router.post("/catalog", status_code=201, summary="Take a province's published items (事项)")
def report_catalog(
    request: Request, response: Response, body: RawBody, db: DbSession, principal: ReportScope
) -> CatalogReceipt:
    return _take(request, response, body, db, principal, CatalogReport, reports.take_catalog_report)
