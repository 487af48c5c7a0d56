"""The browser checks of the security suite (SEC-BR-001, `zwfw.harness.browser`) against a
small sign-in page served with good and bad headers: chromium must refuse to frame the page
and to run an injected script exactly when the headers say so, and sign a person in through
the form. The suite itself runs against the reference province in the self-test."""

from __future__ import annotations

import http.server
import os
import threading
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

from zwfw.harness.browser import (
    CHROMIUM_ENV,
    BrowserCheckError,
    chromium,
    find_chromium,
    frame_from_other_origin,
    inject_inline_script,
    playwright_missing,
    sign_in_with_form,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

STRICT = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
# A relying party nobody can reach: the landing is the browser's request for it.
REDIRECT_URI = "http://relying-party.invalid/callback"
# Path prefix -> the headers the page is served with.
POLICIES: dict[str, dict[str, str]] = {
    "strict": {"Content-Security-Policy": STRICT},
    "none": {},
    "xfo-only": {"X-Frame-Options": "DENY"},
    "no-frame-ancestors": {"Content-Security-Policy": "default-src 'none'"},
}
LOGIN = (
    "<!doctype html><html><head><title>Sign in</title></head><body>"
    "<form method='post' action='{action}'><input type='hidden' name='next' value='{state}'>"
    "<label>Login <input name='username'></label>"
    "<label>Password <input name='password' type='password'></label>"
    "<button type='submit'>Sign in</button></form></body></html>"
)


class _IdP(http.server.BaseHTTPRequestHandler):
    """`/<policy>/login?state=S`: the form; its POST sends a known person on to the relying
    party with a code, anyone else back to the form."""

    def _headers(self) -> dict[str, str]:
        return POLICIES[self.path.split("/")[1]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        state = dict(urllib.parse.parse_qsl(url.query)).get("state", "")
        body = LOGIN.format(action=url.path, state=state).encode()
        self.send_response(200)
        for name, value in {"Content-Type": "text/html; charset=utf-8", **self._headers()}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        known = form.get("username") == "citizen" and form.get("password") == "s3cret"
        query = urllib.parse.urlencode({"code": "c0de", "state": form.get("next", "")})
        location = f"{REDIRECT_URI}?{query}" if known else self.path
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _missing(message: str) -> NoReturn:
    """CI must run the browser checks: a missing browser fails there, and skips elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _IdP)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = playwright_missing()
    if missing is not None:
        _missing(missing)
    executable = find_chromium()
    assert executable is not None
    with chromium(executable) as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_chromium_override_is_taken_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, "/opt/browsers/chromium")
    assert find_chromium() == "/opt/browsers/chromium"


@pytest.mark.parametrize(
    ("policy", "framed"),
    [("strict", False), ("xfo-only", False), ("none", True), ("no-frame-ancestors", True)],
)
def test_framing_from_another_origin_is_judged_by_what_the_browser_does(
    idp: str, page: Page, policy: str, framed: bool
) -> None:
    framing = frame_from_other_origin(page, f"{idp}/{policy}/login")
    assert framing.frame_urls
    assert framing.framer.split(":")[2] != idp.split(":")[2]  # another port: another origin
    assert framing.rendered is framed, framing
    if not framed:
        assert any("frame" in line.lower() for line in framing.console), framing.console


@pytest.mark.parametrize(("policy", "runs"), [("strict", False), ("none", True)])
def test_an_injected_inline_script_runs_only_without_a_policy(
    idp: str, page: Page, policy: str, runs: bool
) -> None:
    page.goto(f"{idp}/{policy}/login")
    injection = inject_inline_script(page)
    assert injection.ran is runs
    if not runs:
        assert injection.violations == ["script-src-elem inline"], injection.violations


def test_a_person_signs_in_through_the_form_and_lands_with_a_code(idp: str, page: Page) -> None:
    page.goto(f"{idp}/strict/login?state=st4te")
    landing = sign_in_with_form(page, REDIRECT_URI, "citizen", "s3cret")
    assert (landing.code, landing.state, landing.pages) == ("c0de", "st4te", ["Sign in"])


def test_a_refused_sign_in_is_reported_not_landed(idp: str, page: Page) -> None:
    page.goto(f"{idp}/strict/login?state=st4te")
    with pytest.raises(BrowserCheckError, match="the sign-in form came back"):
        sign_in_with_form(page, REDIRECT_URI, "citizen", "wrong")
