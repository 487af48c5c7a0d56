"""The IdP's sign-in page in a real browser (SEC-BR-001): Debian's chromium, driven by
Playwright. The headers judged by `test_headers.py` only matter if a browser obeys them; here
one does, on the page a person signs in at (the profile's relying party's authorization
request, as `test_headers.py` reaches it):

- the page renders its sign-in form (screenshot under evidence/browser/), and signing in
  through it as the profile's test person lands on the relying party's redirect URI with a
  code and the request's state;
- a page of another origin (a local server on another port) framing it gets no sign-in form;
- an inline script added to the loaded page does not run, and the browser reports the
  Content-Security-Policy violation.

Without chromium (or the playwright package) the tests are skipped: the requirement is then
not tested, never passed.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from zwfw.harness.browser import (
    LOGIN_FIELD,
    PASSWORD_FIELD,
    TIMEOUT_MS,
    BrowserCheckError,
    chromium,
    find_chromium,
    frame_from_other_origin,
    inject_inline_script,
    playwright_missing,
    sign_in_with_form,
    verified_spki_pins,
)
from zwfw.harness.evidence import BROWSER_EVIDENCE
from zwfw.harness.profile import TargetProfile
from zwfw.harness.pytest_plugin import harness_run

from .conftest import authorization_params, secret

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# What chromium names when it refuses to render a page in a frame.
FRAMING_POLICIES = ("frame-ancestors", "X-Frame-Options")


@pytest.fixture(scope="module")
def browser(target: TargetProfile) -> Iterator[Browser]:
    if target.base_url("identity") is None:
        pytest.skip("the profile names no IdP: no sign-in page to check")
    missing = playwright_missing()
    if missing is not None:
        pytest.skip(f"{missing}: the sign-in page is not checked in a browser")
    executable = find_chromium()
    assert executable is not None
    # The IdP and the relying party's redirect URI, verified against the profile's trust.
    redirect = secret(target, "identity_rp_redirect_uri")
    endpoints = [str(target.base_url("identity")), redirect]
    pins = verified_spki_pins(endpoints, target.tls.ssl_context())
    with chromium(executable, trusted_keys=pins) as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # A fresh context per check: no session cookie carried from one to the next.
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _sign_in_url(target: TargetProfile, params: dict[str, str]) -> str:
    base = str(target.base_url("identity")).rstrip("/")
    return f"{base}/authorize?{urllib.parse.urlencode(params)}"


def _screenshot(request: pytest.FixtureRequest, name: str) -> Path | None:
    return harness_run(request.config).evidence_file(
        request.node.nodeid, f"{BROWSER_EVIDENCE}/{name}.png"
    )


@pytest.mark.requirement("SEC-BR-001", catches=("sign-in-page-not-rendered", "sign-in-form-broken"))
def test_the_sign_in_page_renders_and_signs_a_person_in(
    target: TargetProfile, page: Page, request: pytest.FixtureRequest
) -> None:
    params = authorization_params(target)
    page.goto(_sign_in_url(target, params), wait_until="load")
    title = page.title()
    shot = _screenshot(request, "sign-in-page")
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    form = page.locator(f"form:has({PASSWORD_FIELD})")
    assert form.count() == 1, f"{page.url} ({title!r}) shows no sign-in form"
    assert title.strip(), f"{page.url}: the sign-in page has no title"
    for field in (LOGIN_FIELD, PASSWORD_FIELD):
        assert form.locator(field).first.is_visible(), f"{page.url}: no visible {field}"
    try:
        landing = sign_in_with_form(
            page,
            params["redirect_uri"],
            secret(target, "identity_user"),
            secret(target, "identity_password"),
        )
    except BrowserCheckError as error:
        pytest.fail(f"signing in through the form failed: {error}", pytrace=False)
    assert landing.code, f"landed on the relying party without a code: {landing.url}"
    assert landing.state == params["state"], "the relying party got another state back"


@pytest.mark.requirement("SEC-BR-001", catches=("framed-by-other-origin",))
def test_another_origin_cannot_frame_the_sign_in_page(
    target: TargetProfile, page: Page, request: pytest.FixtureRequest
) -> None:
    url = _sign_in_url(target, authorization_params(target))
    framing = frame_from_other_origin(page, url, _screenshot(request, "framed-by-other-origin"))
    assert framing.frame_urls, f"the framing page at {framing.framer} shows no frame"
    said = "; ".join(framing.console) or "nothing"
    if framing.rendered:
        pytest.fail(
            f"a page of another origin ({framing.framer}) rendered the sign-in form in a frame "
            f"(the browser said: {said})",
            pytrace=False,
        )
    # An empty frame proves nothing unless the page's own framing policy emptied it (not a
    # certificate or connection error).
    if not any(policy in said for policy in FRAMING_POLICIES):
        pytest.fail(
            f"the framed sign-in page did not load, but the browser named no framing policy "
            f"(frame-ancestors, X-Frame-Options) as the reason: {said}",
            pytrace=False,
        )


@pytest.mark.requirement("SEC-BR-001", catches=("injected-script-ran",))
def test_an_injected_inline_script_does_not_run(target: TargetProfile, page: Page) -> None:
    page.goto(_sign_in_url(target, authorization_params(target)), wait_until="load")
    injection = inject_inline_script(page)
    assert not injection.ran, f"an inline script injected into {page.url} ran"
    assert any(v.startswith("script-src") for v in injection.violations), (
        f"the browser reported no script-src violation for the injected script: "
        f"{injection.violations}"
    )
