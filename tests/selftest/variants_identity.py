"""Known-bad variants of the reference province's identity side: one seeded defect each, in the
shape of ``defects.py`` (a proxy coroutine and the requirements it must fail, exactly)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import time
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from zwfw.services.identity.routes.login import INVALID_MESSAGE, LOCKED_MESSAGE

from .defects import Variant, _fresh_instance, _plain, bearer, jwt_part
from .proxy import Forward, ProxyRequest, ProxyResponse


def _form(request: ProxyRequest) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.body.decode(), keep_blank_values=True))


def _with_form(request: ProxyRequest, form: dict[str, str]) -> ProxyRequest:
    return replace(request, body=urllib.parse.urlencode(form).encode())


def _location_params(response: ProxyResponse) -> dict[str, str]:
    location = response.header("location") or ""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _claims(token: str) -> dict[str, Any] | None:
    return jwt_part(token, 1)


def _kid(token: str) -> str | None:
    header = jwt_part(token, 0)
    return None if header is None else header.get("kid")


class _SeesRotations:
    """Remembers the key a rotation through the admin API made the signer."""

    active: str | None = None

    def saw_rotation(self, request: ProxyRequest, response: ProxyResponse) -> bool:
        rotated = request.method == "POST" and request.path.rstrip("/").endswith("/keys/rotate")
        if rotated and response.status == 200 and response.is_json:
            self.active = str(response.json()["active_kid"])
        return rotated


class KeyReplacedAtRotation(_SeesRotations):
    """A rotation replaces the signing key: from ``retention`` seconds after it the JWKS
    publishes the new key alone, and the tokens the old one signed verify nowhere."""

    def __init__(self, retention: float = 0.0) -> None:
        self.retention = retention
        self.rotated_at = 0.0

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        response = await forward(request)
        if self.saw_rotation(request, response):
            self.rotated_at = time.monotonic()
        if self.active is None or time.monotonic() < self.rotated_at + self.retention:
            return response
        if request.method == "GET" and request.path == "/jwks" and response.status == 200:
            keys = [key for key in response.json()["keys"] if key.get("kid") == self.active]
            return response.with_json({"keys": keys})
        return response


class OnlyTheSignerVerifies(_SeesRotations):
    """Userinfo and introspection verify tokens with the current signing key only: after a
    rotation, tokens signed before it are refused there though the JWKS still has their key."""

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        path = request.path.rstrip("/")
        if self.active is not None and path.endswith("/userinfo"):
            token = bearer(request) or _form(request).get("access_token", "")
            if _kid(token) not in (None, self.active):
                challenge = 'Bearer error="invalid_token"'
                return ProxyResponse(401, [("www-authenticate", challenge)])
        introspected = _form(request).get("token", "") if path.endswith("/introspect") else ""
        if self.active is not None and _kid(introspected) not in (None, self.active):
            body = json.dumps({"active": False}).encode()
            headers = [("content-type", "application/json"), ("cache-control", "no-store")]
            return ProxyResponse(200, headers, body)
        response = await forward(request)
        self.saw_rotation(request, response)
        return response


class ContinuationFollowed:
    """The sign-in page keeps the ``next`` address it is given as it is, and the password step
    sends the browser there once the person has signed in (an open redirect)."""

    _NEXT_FIELD = re.compile(rb'(<input type="hidden" name="next" value=")[^"]*(")')

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        path = request.path.rstrip("/")
        if request.method == "GET" and path.endswith("/login"):
            given = dict(urllib.parse.parse_qsl(request.query)).get("next", "")
            response = await forward(request)
            if not given or response.status != 200:
                return response
            kept = html.escape(given).encode()
            return replace(response, body=self._NEXT_FIELD.sub(rb"\g<1>" + kept + rb"\g<2>",
                                                               response.body))  # fmt: skip
        form = _password_step(request)
        response = await forward(request)
        given = (form or {}).get("next", "")
        if given and response.status == 303:
            return response.with_header("location", given)
        return response


def _by_prefix(uri: str, registered: str) -> bool:
    return uri.startswith(registered)


def _case_folded(uri: str, registered: str) -> bool:
    return uri.casefold() == registered.casefold()


def _without_port_and_slash(uri: str, registered: str) -> bool:
    def normal(value: str) -> tuple[str, str, str, str]:
        parts = urllib.parse.urlsplit(value)
        return parts.scheme, parts.hostname or "", parts.path.rstrip("/"), parts.query

    return normal(uri) == normal(registered)


class RedirectUriPrefix:
    """Redirect URIs are matched loosely (by default by prefix: a registered URI with anything
    appended is taken), and the code goes to the URI the request gave."""

    def __init__(self, matches: Callable[[str, str], bool] = _by_prefix) -> None:
        self.matches = matches
        self.registered: set[str] = set()
        self.flows: dict[str, str] = {}  # state -> the unregistered URI the code goes to

    def _taken(self, uri: str) -> str | None:
        return next((r for r in self.registered if uri != r and self.matches(uri, r)), None)

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.path != "/authorize":
            return await forward(request)
        get = request.method == "GET"
        params = request.params if get else _form(request)
        uri, state = params.get("redirect_uri", ""), params.get("state", "")
        prefix = self._taken(uri)
        if prefix is not None:
            self.flows[state] = uri
            params["redirect_uri"] = prefix
            request = request.with_params(params) if get else _with_form(request, params)
        response = await forward(request)
        if get and prefix is None and uri and response.status in (200, 302, 303):
            location = response.header("location") or ""
            if "error=" not in location:
                self.registered.add(uri)
        location = response.header("location") or ""
        taken = self.flows.get(_location_params(response).get("state", ""))
        if taken is not None:
            for registered in self.registered:
                if location.startswith(registered) and self.matches(taken, registered):
                    tail = location[len(registered) :]
                    joiner = "&" if "?" in taken and tail.startswith("?") else ""
                    tail = tail[1:] if joiner else tail
                    return response.with_header("location", taken + joiner + tail)
        return response


class VerifierOptional:
    """The token endpoint checks a code_verifier only when one is sent: a code issued with a
    challenge is exchanged without any verifier."""

    def __init__(self) -> None:
        # Challenge the IdP sees -> (the client's challenge, the verifier of the one it sees).
        self.challenges: dict[str, tuple[str, str]] = {}
        self.codes: dict[str, tuple[str, str]] = {}

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.path == "/authorize":
            get = request.method == "GET"
            params = request.params if get else _form(request)
            challenge = params.get("code_challenge")
            if challenge and params.get("code_challenge_method") == "S256":
                if challenge not in self.challenges:
                    verifier = secrets.token_urlsafe(48)
                    ours = _s256(verifier)
                    self.challenges[ours] = (challenge, verifier)
                    params["code_challenge"] = ours
                    request = request.with_params(params) if get else _with_form(request, params)
                response = await forward(request)
                code = _location_params(response).get("code")
                if code:
                    self.codes[code] = self.challenges[params["code_challenge"]]
                return response
        if request.method == "POST" and request.path == "/token":
            form = _form(request)
            issued = self.codes.get(form.get("code", ""))
            if form.get("grant_type") == "authorization_code" and issued is not None:
                sent = form.get("code_verifier")
                challenge, verifier = issued
                if sent is None or _s256(sent) == challenge:
                    request = _with_form(request, {**form, "code_verifier": verifier})
        return await forward(request)


class RefreshAnyClient:
    """A refresh token is not bound to its client: another authenticated client refreshes a
    relying party's token."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}  # refresh token -> the public client it was issued to

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method != "POST" or request.path != "/token":
            return await forward(request)
        form = _form(request)
        response = await forward(request)
        if response.status == 200 and response.is_json and "client_assertion" not in form:
            issued = response.json().get("refresh_token")
            if issued and form.get("client_id"):
                self.owners[issued] = form["client_id"]
        owner = self.owners.get(form.get("refresh_token", ""))
        if (
            form.get("grant_type") == "refresh_token"
            and "client_assertion" in form
            and response.status in (400, 401)
            and owner is not None
        ):
            as_owner = {"grant_type": "refresh_token", "refresh_token": form["refresh_token"],
                        "client_id": owner}  # fmt: skip
            return await forward(_with_form(request, as_owner))
        return response


class RevocationAnyClient:
    """Revocation does not check whose token it is: another authenticated client revokes a
    relying party's refresh token."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}  # refresh token -> the public client it was issued to

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.method != "POST" or request.path not in ("/token", "/revoke"):
            return await forward(request)
        form = _form(request)
        if request.path == "/revoke":
            owner = self.owners.get(form.get("token", ""))
            if "client_assertion" in form and owner is not None:
                return await forward(_with_form(request, {"token": form["token"],
                                                          "client_id": owner}))  # fmt: skip
            return await forward(request)
        response = await forward(request)
        if response.status == 200 and response.is_json and "client_assertion" not in form:
            issued = response.json().get("refresh_token")
            if issued and form.get("client_id"):
                self.owners[issued] = form["client_id"]
        return response


async def introspection_for_any_client(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Introspection reads a token's own claims for whoever asks: a public client learns a
    system client's live token, active, with its client, subject and scope."""
    response = await forward(request)
    if request.method != "POST" or request.path != "/introspect" or response.status != 200:
        return response
    form = _form(request)
    claims = _claims(form.get("token", ""))
    asking = form.get("client_id")
    if "client_assertion" in form or claims is None or not response.is_json:
        return response
    if response.json().get("active") is not False or claims.get("client_id") in (None, asking):
        return response
    return response.with_json({**claims, "active": True})


class UserinfoSignatureUnchecked:
    """Userinfo reads the access token's claims without verifying its signature and answers
    for its subject's current session: a token altered after signing is answered."""

    def __init__(self) -> None:
        self.current: dict[str, str] = {}  # subject -> the last token answered for it

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        if request.path != "/userinfo":
            return await forward(request)
        response = await forward(request)
        authorization = request.header("authorization") or ""
        token = authorization.removeprefix("Bearer ").strip()
        claims = _claims(token) if authorization.startswith("Bearer ") else None
        subject = str(claims.get("sub")) if claims else None
        if subject is None:
            return response
        if response.status == 200:
            self.current[subject] = token
            return response
        known = self.current.get(subject)
        if response.status == 401 and known is not None and known != token:
            return await forward(request.with_header("authorization", f"Bearer {known}"))
        return response


async def logout_keeps_session(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """Logout answers as signed out but never ends the session: the browser's session cookie
    is neither sent on nor cleared."""
    if request.path != "/logout":
        return await forward(request)
    response = await forward(request.with_header("cookie", None))
    return response.without_headers("set-cookie")


async def logout_state_dropped(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """RP-initiated logout returns to the client's registered URI without the client's
    state."""
    response = await forward(request)
    location = response.header("location")
    if request.path != "/logout" or not location or "?" not in location:
        return response
    base, query = location.split("?", 1)
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(query) if k != "state"]
    bare = base + ("?" + urllib.parse.urlencode(kept) if kept else "")
    return response.with_header("location", bare)


async def logout_redirect_prefix_matched(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """RP-initiated logout follows any post_logout_redirect_uri that starts with a registered
    one: the IdP is asked with the registered prefix (a portal's ``/portal/signed-out``) and
    the browser sent on to the URI the request named."""
    if request.path != "/logout" or request.method != "GET":
        return await forward(request)
    params = request.params
    asked = params.get("post_logout_redirect_uri", "")
    match = re.match(r"^(https?://[^?#]*?/portal/signed-out)(.+)$", asked)
    if match is None:
        return await forward(request)
    response = await forward(request.with_params(params | {"post_logout_redirect_uri": match[1]}))
    location = response.header("location")
    if not location or not location.startswith(match[1]):
        return response
    return response.with_header("location", asked + location[len(match[1]) :])


async def logout_client_id_ignored(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """RP-initiated logout never reads client_id: the hint's client's URIs apply whatever
    client the request names."""
    if request.path != "/logout" or request.method != "GET" or "client_id" not in request.params:
        return await forward(request)
    params = request.params
    params.pop("client_id")
    return await forward(request.with_params(params))


async def logout_form_refused(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The end_session_endpoint takes GET only: a logout posted as a form is refused."""
    if request.path != "/logout" or request.method != "POST":
        return await forward(request)
    problem = {"type": "about:blank", "title": "Method Not Allowed", "status": 405}
    return ProxyResponse(405, [("content-type", "application/problem+json")]).with_json(problem)


async def session_outlives_prompt_login(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The sign-in session is taken whatever the relying party asked: prompt=login and max_age
    never reach the authorization endpoint."""
    if request.path != "/authorize" or request.method != "GET" or not request.query:
        return await forward(request)
    params = request.params
    params.pop("max_age", None)
    prompt = " ".join(p for p in params.pop("prompt", "").split() if p != "login")
    if prompt:
        params["prompt"] = prompt
    return await forward(request.with_params(params))


async def refresh_answer_cacheable(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The refresh grant builds its own answer and forgets the token endpoint's headers: a
    refreshed token pair may be stored by caches (the other grants' answers keep no-store)."""
    response = await forward(request)
    refresh = request.path == "/token" and _form(request).get("grant_type") == "refresh_token"
    if request.method == "POST" and refresh:
        return response.without_headers("cache-control", "pragma")
    return response


class NoncePerSession:
    """The nonce is kept with the sign-in session, not with the authorization request: every
    authorization the session answers carries the nonce of its first one."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}  # the browser's cookies -> the session's first nonce

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        cookies = request.header("cookie") or ""
        if request.path == "/authorize" and request.method == "GET" and cookies:
            params = request.params
            if "nonce" in params:
                params["nonce"] = self.first.setdefault(cookies, params["nonce"])
                request = request.with_params(params)
        return await forward(request)


def _password_step(request: ProxyRequest) -> dict[str, str] | None:
    """The submitted sign-in form, for a POST of the password step."""
    if request.method != "POST" or not request.path.rstrip("/").endswith("/login"):
        return None
    form = _form(request)
    return form if "username" in form and "password" in form else None


def _throwaway(form: dict[str, str]) -> dict[str, str]:
    # A name no one has and never again: the service answers a plain wrong password, and its
    # own lock never engages (the defects below keep their own).
    return {**form, "username": "shadow-" + secrets.token_hex(8), "password": "-"}


def _say_locked(answer: ProxyResponse) -> ProxyResponse:
    body = answer.body.decode().replace(INVALID_MESSAGE, LOCKED_MESSAGE)
    return replace(answer, body=body.encode())


class OnlyExistingNamesLock:
    """Failures are counted only for names that have an account: a name that does not exist is
    never locked, so the lock tells which names exist."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.names = {name.lower() for name in passwords}

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        form = _password_step(request)
        if form is not None and form["username"].lower() not in self.names:
            request = _with_form(request, _throwaway(form))
        return await forward(request)


class OwnLock:
    """A lock kept in front of the service (whose own lock never engages: failures reach it
    as throwaway names), for the defects of a lock below."""

    threshold, lock_seconds = 5, 30.0

    def __init__(self, passwords: dict[str, str]) -> None:
        self.accounts = {name.lower(): (name, password) for name, password in passwords.items()}
        self.failures: dict[str, int] = {}
        self.locked_at: dict[str, float] = {}

    def lock_key(self, typed: str) -> str:
        return typed.lower()

    def account(self, typed: str) -> tuple[str, str] | None:
        """The account ``typed`` names, as (login name, password)."""
        return self.accounts.get(typed.lower())

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        form = _password_step(request)
        if form is None:
            return await forward(request)
        key, now = self.lock_key(form["username"]), time.monotonic()
        locked = now - self.locked_at.get(key, -1e9) < self.lock_seconds
        account = self.account(form["username"])
        if not locked and account is not None and account[1] == form["password"]:
            self.failures[key] = 0
            request = _with_form(request, {**form, "username": account[0]})
            answer = await forward(request)
            # The service's own lock, left by an earlier run, is not this IdP's: wait it out.
            for _ in range(40):
                if LOCKED_MESSAGE.encode() not in answer.body:
                    break
                await asyncio.sleep(1)
                answer = await forward(request)
            return answer
        answer = await forward(_with_form(request, _throwaway(form)))
        if not locked:
            self.failures[key] = self.failures.get(key, 0) + 1
            if self.failures[key] >= self.threshold:
                self.locked_at[key], self.failures[key], locked = now, 0, True
        return _say_locked(answer) if locked else answer


class LockInMilliseconds(OwnLock):
    """The lock after five failures is configured in seconds and read as milliseconds: it is
    over after one second."""

    lock_seconds = 1.0


class LockPerSpelling(OwnLock):
    """Login names are found whatever their case and surrounding spaces, but failures are
    counted per name as typed: the locked person signs in by typing the name otherwise."""

    def lock_key(self, typed: str) -> str:
        return typed

    def account(self, typed: str) -> tuple[str, str] | None:
        return self.accounts.get(typed.strip().lower())


class LockPerWidth(OwnLock):
    """Login names are found whatever their width (NFKC, as full-width input gives them), but
    the lock ignores case and spaces only: the locked person signs in in full-width letters."""

    def lock_key(self, typed: str) -> str:
        return typed.strip().lower()

    def account(self, typed: str) -> tuple[str, str] | None:
        return self.accounts.get(unicodedata.normalize("NFKC", typed).strip().lower())


class RememberedLoginName:
    """A failed sign-in of an existing account sets a cookie remembering its login name (to
    fill the form in next time); a name that does not exist gets none."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.names = {name.lower() for name in passwords}

    async def __call__(self, request: ProxyRequest, forward: Forward) -> ProxyResponse:
        form = _password_step(request)
        answer = await forward(request)
        if form is None or form["username"].lower() not in self.names or answer.status < 400:
            return answer
        remembered = urllib.parse.quote(form["username"])
        cookie = f"last_login_name={remembered}; Path=/; HttpOnly; SameSite=Lax"
        return replace(answer, headers=[*answer.headers, ("set-cookie", cookie)])


async def response_type_defaulted(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An authorization request by GET without response_type is taken as the code flow."""
    if request.method == "GET" and request.path.rstrip("/").endswith("/authorize"):
        params = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
        if all(name != "response_type" for name, _ in params):
            query = urllib.parse.urlencode([*params, ("response_type", "code")])
            request = replace(request, query=query)
    return await forward(request)


async def response_type_defaulted_by_post(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An authorization request by POST without response_type is taken as the code flow (a
    request by GET without it is refused)."""
    if request.method == "POST" and request.path.rstrip("/").endswith("/authorize"):
        form = _form(request)
        if "client_id" in form and "response_type" not in form:
            request = _with_form(request, {**form, "response_type": "code"})
    return await forward(request)


async def missing_response_type_error_without_state(
    request: ProxyRequest, forward: Forward
) -> ProxyResponse:
    """The error redirect answering a request without response_type drops its state."""
    response = await forward(request)
    params = _location_params(response)
    if params.get("error") in ("invalid_request", "unsupported_response_type"):
        location = response.header("location") or ""
        kept = [(k, v) for k, v in params.items() if k != "state"]
        bare = urllib.parse.urlsplit(location)._replace(query=urllib.parse.urlencode(kept))
        return response.with_header("location", urllib.parse.urlunsplit(bare))
    return response


async def request_object_ignored(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The authorization endpoint drops a request object it does not support and answers the
    rest of the request (by GET or by POST)."""
    if request.path.rstrip("/").endswith("/authorize"):
        if request.method == "GET" and "request" in request.params:
            kept = [(k, v) for k, v in urllib.parse.parse_qsl(request.query) if k != "request"]
            request = replace(request, query=urllib.parse.urlencode(kept))
        elif request.method == "POST" and "request" in (form := _form(request)):
            request = _with_form(request, {k: v for k, v in form.items() if k != "request"})
    return await forward(request)


async def request_uri_support_unstated(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The discovery leaves request_uri_parameter_supported out (true by default), while the
    IdP refuses every request_uri."""
    response = await forward(request)
    if request.path == "/.well-known/openid-configuration" and response.status == 200:
        config = response.json()
        config.pop("request_uri_parameter_supported", None)
        return response.with_json(config)
    return response


async def authorization_by_post_refused(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """The authorization endpoint takes requests by GET only: a POSTed request (not the
    consent page's own form) is refused with 405."""
    if (
        request.method == "POST"
        and request.path.rstrip("/").endswith("/authorize")
        and not {"csrf", "decision"} & set(_form(request))
    ):
        problem = {"type": "about:blank", "title": "Method Not Allowed", "status": 405}
        body = json.dumps(problem).encode()
        return ProxyResponse(405, [("content-type", "application/problem+json"),
                                   ("allow", "GET")], body)  # fmt: skip
    return await forward(request)


async def unknown_client_redirected(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """An authorization request of an unknown client (or none) is answered with an error
    redirect to the redirect_uri it gives, as if that URI had been registered."""
    response = await forward(request)
    params = request.params
    if (
        request.method != "GET"
        or not request.path.rstrip("/").endswith("/authorize")
        or response.status != 400
        or "redirect_uri" not in params
        or not response.is_json
    ):
        return response
    error = str(response.json().get("error", ""))
    if error != "invalid_client" and "client_id" in params:
        return response
    query = urllib.parse.urlencode({"error": error or "invalid_request",
                                    "state": params.get("state", "")})  # fmt: skip
    return ProxyResponse(302, [("location", f"{params['redirect_uri']}?{query}")])


async def prompt_none_shows_consent(request: ProxyRequest, forward: Forward) -> ProxyResponse:
    """prompt=none is honoured only without a sign-in session: with one, the consent page is
    shown as for any request."""
    params = request.params
    if (
        request.method == "GET"
        and request.path.rstrip("/").endswith("/authorize")
        and params.get("prompt") == "none"
        and request.header("cookie")
    ):
        del params["prompt"]
        request = request.with_params(params)
    return await forward(request)


VARIANTS: tuple[Variant, ...] = (
    Variant("redirect-uri-prefix", "identity",
            "redirect URIs are matched by prefix; the code goes to the longer URI",
            frozenset({"IC-ID-009"}), _fresh_instance(RedirectUriPrefix)),
    Variant("redirect-uri-case-folded", "identity",
            "redirect URIs are compared without regard to case; the code goes to the URI given",
            frozenset({"IC-ID-009"}), lambda _province: RedirectUriPrefix(_case_folded)),
    Variant("redirect-uri-port-and-slash-ignored", "identity",
            "redirect URIs are compared without their port and a trailing slash",
            frozenset({"IC-ID-009"}),
            lambda _province: RedirectUriPrefix(_without_port_and_slash)),
    Variant("pkce-verifier-optional", "identity",
            "a code issued with a PKCE challenge is exchanged without any code_verifier",
            frozenset({"IC-ID-004"}), _fresh_instance(VerifierOptional)),
    Variant("refresh-any-client", "identity",
            "another client refreshes a relying party's refresh token",
            frozenset({"IC-ID-005"}), _fresh_instance(RefreshAnyClient)),
    Variant("revocation-any-client", "identity",
            "another client revokes a relying party's refresh token",
            frozenset({"IC-ID-013"}), _fresh_instance(RevocationAnyClient)),
    Variant("introspection-for-any-client", "identity",
            "introspection answers a public client about a system client's token",
            frozenset({"IC-ID-006"}), _plain(introspection_for_any_client)),
    Variant("userinfo-signature-unchecked", "identity",
            "userinfo answers an access token altered after signing",
            frozenset({"IC-ID-010"}), _fresh_instance(UserinfoSignatureUnchecked)),
    Variant("logout-keeps-session", "identity",
            "logout leaves the sign-in session alive",
            frozenset({"IC-ID-011"}), _plain(logout_keeps_session)),
    Variant("logout-state-dropped", "identity",
            "logout returns to the registered post_logout_redirect_uri without the state",
            frozenset({"IC-ID-011"}), _plain(logout_state_dropped)),
    Variant("logout-redirect-prefix-matched", "identity",
            "logout follows a post_logout_redirect_uri that only starts with a registered one",
            frozenset({"IC-ID-011"}), _plain(logout_redirect_prefix_matched)),
    Variant("logout-client-id-ignored", "identity",
            "logout applies the hint's client's URIs whatever client_id the request names",
            frozenset({"IC-ID-011"}), _plain(logout_client_id_ignored)),
    Variant("logout-form-refused", "identity",
            "the end_session_endpoint refuses a logout posted as a form",
            frozenset({"IC-ID-011"}), _plain(logout_form_refused)),
    Variant("prompt-login-ignored", "identity",
            "prompt=login and max_age are ignored: the live sign-in session is taken",
            frozenset({"IC-ID-017"}), _plain(session_outlives_prompt_login)),
    Variant("response-type-defaulted", "identity",
            "an authorization request without response_type is answered as the code flow",
            frozenset({"IC-ID-003"}), _plain(response_type_defaulted)),
    Variant("response-type-defaulted-by-post", "identity",
            "an authorization request by POST without response_type is answered as the code"
            " flow",
            frozenset({"IC-ID-003"}), _plain(response_type_defaulted_by_post)),
    Variant("response-type-error-without-state", "identity",
            "the error redirect answering a request without response_type drops its state",
            frozenset({"IC-ID-003"}), _plain(missing_response_type_error_without_state)),
    Variant("request-object-ignored", "identity",
            "a request object the IdP does not support is dropped and the rest of the request"
            " answered with a code",
            frozenset({"IC-ID-019"}), _plain(request_object_ignored)),
    Variant("request-uri-support-unstated", "identity",
            "the discovery leaves request_uri_parameter_supported out (true by default) while"
            " every request_uri is refused",
            frozenset({"IC-ID-019"}), _plain(request_uri_support_unstated)),
    Variant("authorization-by-post-refused", "identity",
            "the authorization endpoint refuses a request sent by POST (GET only)",
            frozenset({"IC-ID-003"}), _plain(authorization_by_post_refused)),
    Variant("sign-in-continuation-followed", "identity",
            "the sign-in page follows the next address it is given, wherever it points",
            frozenset({"IC-ID-009"}), _plain(ContinuationFollowed())),
    Variant("unknown-client-redirected", "identity",
            "an authorization request of an unknown client is redirected to its redirect_uri",
            frozenset({"IC-ID-009"}), _plain(unknown_client_redirected)),
    Variant("prompt-none-consent-page", "identity",
            "prompt=none with a sign-in session shows the consent page",
            frozenset({"IC-ID-016"}), _plain(prompt_none_shows_consent)),
    Variant("key-replaced-at-rotation", "identity",
            "a signing key rotation drops the old key from the JWKS at once",
            frozenset({"IC-ID-002"}), _fresh_instance(KeyReplacedAtRotation)),
    Variant("retired-key-kept-seconds", "identity",
            "a key retired by rotation stays in the JWKS for 5 s, not for its tokens' lives",
            frozenset({"IC-ID-002"}), lambda _province: KeyReplacedAtRotation(retention=5.0)),
    Variant("only-the-signer-verifies", "identity",
            "userinfo and introspection take only tokens of the current signing key",
            frozenset({"IC-ID-002"}), _fresh_instance(OnlyTheSignerVerifies)),
    Variant("lockout-only-existing-names", "identity",
            "failed sign-ins are counted only for names with an account: the lock reveals them",
            frozenset({"SEC-AUTH-001"}),
            lambda province: OnlyExistingNamesLock(province.passwords)),
    Variant("lockout-milliseconds", "identity",
            "the lock after five failed sign-ins is over after one second",
            frozenset({"SEC-AUTH-001"}), lambda province: LockInMilliseconds(province.passwords)),
    Variant("lockout-per-spelling", "identity",
            "failures are counted per name as typed; accounts are found whatever case or spaces",
            frozenset({"SEC-AUTH-001"}), lambda province: LockPerSpelling(province.passwords)),
    Variant("lockout-per-width", "identity",
            "names are found whatever their width, the lock counts full-width names apart",
            frozenset({"SEC-AUTH-001"}), lambda province: LockPerWidth(province.passwords)),
    Variant("login-name-remembered", "identity",
            "a failed sign-in of an existing account sets a cookie with its login name",
            frozenset({"SEC-AUTH-001"}), lambda province: RememberedLoginName(province.passwords)),
    Variant("refresh-answer-cacheable", "identity",
            "the refresh grant's answer lacks Cache-Control no-store (the other grants keep it)",
            frozenset({"IC-ID-018"}), _plain(refresh_answer_cacheable)),
    Variant("nonce-per-session", "identity",
            "an authorization the sign-in session answers carries the session's first nonce",
            frozenset({"IC-ID-017"}), _fresh_instance(NoncePerSession)),
)  # fmt: skip
