"""Pages checked in a real browser: Debian's `chromium`, driven by Playwright (its own browser
builds are never downloaded: the harness launches the installed one).

What the security suite asks of a sign-in page (SEC-BR-001), each as a function of an open
browser so the suite and the harness's own tests share them:

- `sign_in_with_form`: a person signs in through the page's form and the browser is sent on
  to the relying party's redirect URI with a code;
- `frame_from_other_origin`: a page of another origin (a local server on another port) that
  frames the sign-in page; the browser must refuse to render it there;
- `inject_inline_script`: an inline script added to the loaded page must not run, and the
  browser must report the Content-Security-Policy violation.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import os
import shutil
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

CHROMIUM_ENV = "ZWFW_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "Debian: apt-get install chromium"
# Each wait of a check; a page of the platform answers in well under a second.
TIMEOUT_MS = 10_000
# How long an injected script is given to run (or its CSP violation to be reported).
SCRIPT_GRACE_MS = 300
PASSWORD_FIELD = "input[type=password]"
LOGIN_FIELD = "input:not([type]), input[type=text], input[type=email], input[type=tel]"
SUBMIT = "button[type=submit], button:not([type]), input[type=submit]"


class BrowserCheckError(RuntimeError):
    """A page did not do what the check needs (no sign-in form, no landing)."""


def find_chromium() -> str | None:
    """The browser to launch: `$ZWFW_CHROMIUM`, else chromium (or Chrome) on PATH."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        return override
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def playwright_missing() -> str | None:
    """Why the browser checks cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install zwfw)"
    if find_chromium() is None:
        return f"chromium is not installed ({INSTALL_HINT}, or set {CHROMIUM_ENV})"
    return None


def verified_spki_pins(urls: Iterable[str], context: ssl.SSLContext) -> list[str]:
    """The base64 SHA-256 of each https endpoint's certificate key (SubjectPublicKeyInfo),
    read over a connection that ``context`` verified: its chain to the profile's trust anchor
    and its host name. Chromium cannot be handed the profile's CA bundle; told to accept
    exactly these keys, it trusts what the profile trusts and nothing else. An endpoint that
    does not verify raises ``ssl.SSLError``, as a browser would refuse it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pins: list[str] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or parts.hostname is None:
            continue
        address = (parts.hostname, parts.port or 443)
        with (
            socket.create_connection(address, timeout=TIMEOUT_MS / 1000) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None  # a verified handshake always has the server's certificate
        key = x509.load_der_x509_certificate(der).public_key()
        spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        if pin not in pins:
            pins.append(pin)
    return pins


@contextmanager
def chromium(executable: str, trusted_keys: Iterable[str] = ()) -> Iterator[Browser]:
    """A headless chromium at `executable`, closed afterwards; ``trusted_keys`` are
    certificate key pins (`verified_spki_pins`) it accepts besides its own trust store."""
    from playwright.sync_api import sync_playwright

    pins = ",".join(trusted_keys)
    args = [f"--ignore-certificate-errors-spki-list={pins}"] if pins else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Landing:
    """Where signing in through the form ended."""

    url: str
    code: str | None
    state: str | None
    # Titles of the pages the browser went through (sign-in, consent).
    pages: list[str] = field(default_factory=list)


def _at(redirect_uri: str) -> Callable[[str], bool]:
    base = redirect_uri.split("?", 1)[0]
    return lambda url: url.split("?", 1)[0] == base


def sign_in_with_form(page: Page, redirect_uri: str, username: str, password: str) -> Landing:
    """From the loaded sign-in page: fill the form with a password field and submit it,
    allow the consent form if one is shown, and return where the browser was sent.

    The landing is the browser's request for `redirect_uri`, whatever the relying party
    answers (or whether it is reachable from here at all): redirects cannot be intercepted
    in the browser, so the request is watched, not answered."""
    from playwright.sync_api import Error as PlaywrightError

    at_relying_party = _at(redirect_uri)
    landed: list[str] = []

    def watch(request: Request) -> None:
        if request.is_navigation_request() and at_relying_party(request.url):
            landed.append(request.url)

    page.on("request", watch)
    titles: list[str] = []
    done: set[str] = set()
    try:
        while not landed:
            titles.append(page.title())
            form = page.locator(f"form:has({PASSWORD_FIELD})")
            allow = page.locator("button[value=allow], input[type=submit][value=allow]")
            if form.count():
                kind, form = "sign-in", form.first
                form.locator(LOGIN_FIELD).first.fill(username, timeout=TIMEOUT_MS)
                form.locator(PASSWORD_FIELD).first.fill(password, timeout=TIMEOUT_MS)
                button = form.locator(SUBMIT).first
            elif allow.count():
                kind, button = "consent", allow.first
            else:
                where = f"the page {titles[-1]!r} at {page.url}"
                raise BrowserCheckError(f"{where} has no form to go on")
            if kind in done:
                # The same form again: the IdP refused what was submitted.
                raise BrowserCheckError(f"the {kind} form came back: {titles}")
            done.add(kind)
            try:
                with page.expect_navigation(wait_until="load", timeout=TIMEOUT_MS):
                    button.click(timeout=TIMEOUT_MS)
            except PlaywrightError as error:
                if not landed:  # the relying party need not answer; the IdP must
                    why = f"submitting the {kind} form: {error.message}"
                    raise BrowserCheckError(why) from None
    finally:
        page.remove_listener("request", watch)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed[0]).query))
    return Landing(landed[0], query.get("code"), query.get("state"), titles)


@dataclass
class Framing:
    """What the browser made of a page of another origin framing `url`."""

    url: str
    framer: str
    # The framed document showed the sign-in form (the browser rendered it in the frame).
    rendered: bool
    frame_urls: list[str]
    console: list[str]


class _Framer(http.server.BaseHTTPRequestHandler):
    framed = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>another site</title>"
            f"</head><body><iframe src=\"{html.escape(self.framed)}\" width='640' "
            "height='480'></iframe></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def framing_page(url: str) -> Iterator[str]:
    """A page on a free loopback port (another origin than any service's) framing `url`."""
    handler = type("Framer", (_Framer,), {"framed": url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def frame_from_other_origin(page: Page, url: str, screenshot: Path | None = None) -> Framing:
    """Load a page of another origin that frames `url` (a sign-in page): whether the browser
    rendered the sign-in form inside the frame, and what it said about it."""
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    with framing_page(url) as framer:
        page.goto(framer, wait_until="load", timeout=TIMEOUT_MS)
        frames = [frame for frame in page.frames if frame is not page.main_frame]
        rendered = any(frame.locator(PASSWORD_FIELD).count() > 0 for frame in frames)
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
    return Framing(url, framer, rendered, [frame.url for frame in frames], console)


@dataclass
class Injection:
    """An inline script added to a loaded page: whether it ran, and the CSP violations the
    browser reported for it (directive and blocked source)."""

    ran: bool
    violations: list[str]


_INJECT = """grace => new Promise(resolve => {
  const violations = [];
  document.addEventListener('securitypolicyviolation',
    event => violations.push(event.effectiveDirective + ' ' + event.blockedURI));
  const script = document.createElement('script');
  script.textContent = 'window.__zwfwInjected = true;';
  document.body.appendChild(script);
  setTimeout(() => resolve({ran: window.__zwfwInjected === true, violations}), grace);
})"""


def inject_inline_script(page: Page) -> Injection:
    """Add an inline `<script>` to the loaded page, as a stored or reflected injection would,
    and see whether it ran. The harness's own evaluation is outside the page's policy; the
    injected element is not."""
    result = page.evaluate(_INJECT, SCRIPT_GRACE_MS)
    return Injection(bool(result["ran"]), [str(v) for v in result["violations"]])
