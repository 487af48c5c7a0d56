"""What the identity routes share: the service object, the posted form, Authlib adapters and
the page and error helpers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from zwfw.services.identity.oauth import FormRequest
from zwfw.services.identity.pages import SECURITY_HEADERS
from zwfw.services.identity.service import IdentityService
from zwfw.services.kit import unauthorized
from zwfw.services.kit.problems import Problem

# How the routes that are not open to anyone, yet take no kit bearer token, check callers.
CLIENT_AUTHENTICATION = (
    "client authentication (private_key_jwt, mutual TLS, client secret or a public client's id)"
)
SIGN_IN_SESSION = "the sign-in session cookie and its anti-forgery token"


async def service(request: Request) -> IdentityService:
    # async: a plain function would be sent to the thread pool for one attribute lookup.
    service: IdentityService = request.app.state.identity
    return service


Service = Annotated[IdentityService, Depends(service)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form_items(request: Request) -> list[tuple[str, str]]:
    """The posted form, read on the event loop so that endpoints can be plain `def`.

    Endpoints touching the database run in the thread pool: a SQLite write lock held across an
    `await` would stall the event loop that its own commit needs.
    """
    if request.method != "POST":
        return []
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


FormItems = Annotated[list[tuple[str, str]], Depends(_form_items)]


def authlib_request(request: Request, form: list[tuple[str, str]]) -> FormRequest:
    return FormRequest(
        request.method,
        str(request.url),
        # Starlette's headers: Authlib looks names up case-insensitively ("Authorization").
        request.headers,
        list(request.query_params.multi_items()),
        form,
    )


def authlib_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    if isinstance(body, dict):
        return JSONResponse(body, status_code=status, headers=dict(headers))
    return Response(body or b"", status_code=status, headers=dict(headers))


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


# What the OpenAPI document declares beyond the kit's problem+json refusals: the protocol
# answers of the OAuth endpoints (RFC 6749 section 5.2 errors), the sign-in pages, redirects.
OAUTH_ERROR: dict[str, Any] = {
    "description": "RFC 6749 section 5.2 error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "error_description": {"type": "string"},
                },
            }
        }
    },
}
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {400: OAUTH_ERROR, 401: OAUTH_ERROR}
HTML_PAGE: dict[str, Any] = {
    "description": "An HTML page",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
REDIRECT: dict[str, Any] = {"description": "Redirect to the Location header"}
JWK_SET: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The IdP's public keys (RFC 7517 JWK Set)",
        "content": {
            "application/jwk-set+json": {
                "schema": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}


def too_many() -> Problem:
    return Problem(429, detail="too many requests; slow down", headers={"Retry-After": "60"})


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise unauthorized("a bearer access token is required")
    return value.strip()
