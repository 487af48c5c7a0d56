"""Signing a person in at an IdP the way a browser does (authorization code + PKCE): the
sign-in form (the one with a password field), then the consent form (the "allow" button).

The launcher uses it to obtain the access tokens of its test persons through the real
sign-in pages; nothing here knows how the IdP is built, only its HTML forms.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from typing import Any

import httpx

from zwfw.harness.forms import Form, page_forms


class SignInError(RuntimeError):
    """The sign-in did not come back to the relying party with a code."""


def _code_from_pages(
    browser: httpx.Client, url: str, redirect_uri: str, username: str, password: str
) -> str:
    response = browser.get(url, follow_redirects=False)
    done: set[str] = set()
    for _ in range(12):
        here = str(response.request.url)
        if response.is_redirect:
            location = urllib.parse.urljoin(here, response.headers["location"])
            if location.startswith(redirect_uri):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
                if "code" not in query:
                    raise SignInError(f"the IdP refused the sign-in: {query.get('error')}")
                return query["code"]
            response = browser.get(location, follow_redirects=False)
            continue
        chosen: tuple[str, Form, dict[str, str]] | None = None
        for form in page_forms(response.text):
            kinds = form.types
            if "password" in kinds.values():
                data = dict(form.fields)
                user_field = next(n for n, t in kinds.items() if t in ("text", "email", "tel"))
                data[user_field] = username
                data[next(n for n, t in kinds.items() if t == "password")] = password
                chosen = ("password", form, data)
                break
            allow = [(n, v) for n, v in form.buttons if v == "allow"]
            if allow:
                chosen = ("consent", form, {**form.fields, allow[0][0]: allow[0][1]})
                break
        if chosen is None or chosen[0] in done:
            raise SignInError(f"sign-in of {username} stopped at HTTP {response.status_code}")
        kind, form, data = chosen
        done.add(kind)
        response = browser.request(
            form.method.upper(),
            urllib.parse.urljoin(here, form.action),
            data=data,
            follow_redirects=False,
        )
    raise SignInError(f"sign-in of {username} did not finish")


def sign_in(
    issuer: str,
    client_id: str,
    redirect_uri: str,
    username: str,
    password: str,
    *,
    scope: str = "openid",
    timeout: float = 20.0,
) -> dict[str, Any]:
    """The token response for ``username`` signing in at ``issuer`` through public client
    ``client_id`` (no client secret: PKCE protects the code)."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(timeout=timeout) as browser:
        code = _code_from_pages(
            browser, f"{issuer}/authorize?{query}", redirect_uri, username, password
        )
        response = browser.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
    if response.status_code != 200:
        raise SignInError(f"code exchange for {username} failed: {response.text[:200]}")
    return dict(response.json())
