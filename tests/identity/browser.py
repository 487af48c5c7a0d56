"""A scripted browser for the IdP's server-rendered pages: follows redirects and submits forms.

It knows nothing of the server's code, only HTML forms: the sign-in form is the one with a
password field, the second-factor form the one with a one-time-code field, the consent form
the one with an "allow" button.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from zwfw.harness.forms import Form, page_forms


@dataclass
class SignIn:
    """Where the sign-in ended: the redirect to the relying party, or the last page shown."""

    location: str | None
    response: httpx.Response

    @property
    def query(self) -> dict[str, str]:
        assert self.location is not None, self.response.text
        parsed = urllib.parse.urlsplit(self.location)
        return dict(urllib.parse.parse_qsl(parsed.query))


def sign_in(
    client: httpx.Client,
    authorize_url: str,
    redirect_uri: str,
    username: str,
    password: str,
    *,
    second_factor: Callable[[Form, str], dict[str, str] | None] | None = None,
    decision: str = "allow",
    max_steps: int = 12,
) -> SignIn:
    """Start at `authorize_url` and act like a person: sign in, pass the second factor, consent."""
    response = client.get(authorize_url, follow_redirects=False)
    submitted: set[str] = set()
    for _ in range(max_steps):
        here = str(response.request.url)
        if response.is_redirect:
            location = urllib.parse.urljoin(here, response.headers["location"])
            if location.startswith(redirect_uri):
                return SignIn(location, response)
            response = client.get(location, follow_redirects=False)
            continue
        page = page_forms(response.text)
        form, data, kind = None, {}, ""
        for candidate in page:
            types = candidate.types
            if "password" in types.values() and "new_password" not in types:
                kind, form = "password", candidate
                data = dict(candidate.fields)
                text = next(n for n, t in types.items() if t == "text" and n != "next")
                data[text] = username
                data[next(n for n, t in types.items() if t == "password")] = password
                break
            if any(value == "allow" for _, value in candidate.buttons):
                kind, form = "consent", candidate
                data = {**candidate.fields, "decision": decision}
                break
            extra = second_factor(candidate, response.text) if second_factor else None
            if extra is not None:
                kind, form = "second_factor", candidate
                data = {**candidate.fields, **extra}
                break
        if form is None or kind in submitted:
            # Nothing more to do (an error page, or the same step refused again).
            return SignIn(None, response)
        submitted.add(kind)
        target = urllib.parse.urljoin(here, form.action)
        response = client.request(form.method.upper(), target, data=data, follow_redirects=False)
    return SignIn(None, response)
