"""RFC 9457 problem details: the one error format every kit service speaks."""

from __future__ import annotations

import copy
import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from zwfw.codes.masking import mask_personal_data, mask_value
from zwfw.services.kit.logs import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a request to answer with ``application/problem+json``.

    ``type`` defaults to ``about:blank`` (then ``title`` should be the HTTP status phrase);
    ``extensions`` become extra members of the problem object. ``headers`` are added to the
    response (e.g. ``WWW-Authenticate``). Personal data in ``detail`` and extension strings is
    masked before it leaves the service.
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        type: str | None = None,  # noqa: A002 - the RFC 9457 member name
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type or "about:blank"
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(f"{status} {self.title}: {detail or ''}")

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = mask_personal_data(self.detail)
        for key, value in self.extensions.items():
            body[key] = mask_value(value)
        if request_id:
            body["request_id"] = request_id
        return body

    def to_response(self, request_id: str | None = None) -> Response:
        return problem_response(self.body(request_id), self.status, self.headers)


def problem_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    """A ``Response`` carrying ``body`` as ``application/problem+json``."""
    return Response(
        content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def bad_request(detail: str, **extensions: Any) -> Problem:
    return Problem(400, detail=detail, **extensions)


def unauthorized(detail: str, *, error: str = "invalid_token") -> Problem:
    """401 with the RFC 6750 challenge; ``error`` is ``invalid_token`` or ``invalid_request``."""
    challenge = f'Bearer error="{error}", error_description="{_quote(detail)}"'
    return Problem(401, detail=detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str, *, required_scopes: list[str] | None = None) -> Problem:
    """403; with ``required_scopes`` it is the RFC 6750 ``insufficient_scope`` answer."""
    if required_scopes is None:
        return Problem(403, detail=detail)
    scope = " ".join(required_scopes)
    challenge = f'Bearer error="insufficient_scope", scope="{_quote(scope)}"'
    return Problem(
        403,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
        required_scopes=required_scopes,
    )


def not_found(detail: str) -> Problem:
    return Problem(404, detail=detail)


def conflict(detail: str, **extensions: Any) -> Problem:
    return Problem(409, detail=detail, **extensions)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.to_response(current_request_id())


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    problem = Problem(exc.status_code, detail=detail, headers=dict(exc.headers or {}))
    return problem.to_response(current_request_id())


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The offending input values are left out: they may be personal data.
    errors = [
        {
            "field": _field(tuple(err.get("loc", ()))),
            "message": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    fields = ", ".join(e["field"] for e in errors)
    problem = Problem(
        422,
        detail=f"the request has invalid fields: {fields}",
        errors=errors,
    )
    return problem.to_response(current_request_id())


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every handled failure as problem+json (500s are answered by the kit middleware),
    and publish it so in the app's OpenAPI document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    generate = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_problems(generate())
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


# RFC 9457 section 3.1 members, and the extensions the kit adds.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; personal data in strings is masked.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# FastAPI's own description of its 422 body, which the kit answers as a problem instead.
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}}


def declare_problems(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` saying what the kit answers: any refusal (4XX) as problem+json, the 422
    of invalid input as a problem listing the fields, not FastAPI's validation body.

    Responses an operation declares itself with another media type (an OAuth error body)
    stay as they are.
    """
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            validation = responses.get("422")
            if validation is not None and "application/json" in validation.get("content", {}):
                schema = validation["content"]["application/json"].get("schema", {})
                if schema.get("$ref", "").endswith("/HTTPValidationError"):
                    validation["content"] = _problem_content()
            responses.setdefault(
                "4XX",
                {"description": "Refused: RFC 9457 problem details", "content": _problem_content()},
            )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    if "HTTPValidationError" not in json.dumps(document.get("paths", {})):
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)
    return document
