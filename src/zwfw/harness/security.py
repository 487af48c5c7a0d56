"""What the security suite (`security/`) judges, as plain functions over HTTP material: the
operations of the interconnection interfaces, the authorization matrix, browser security
headers and cookies, personal data and secrets in responses and evidence, forged tokens.

The suite's tests drive the target; everything here is decided offline, so it is tested
without one (tests/harness/test_harness_security.py).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.codes.masking import find_personal_data, mask_personal_data
from zwfw.harness.errors import HarnessConfigError
from zwfw.harness.profile import SERVICE_NAMES, ServiceName

HTTP_METHODS = ("get", "put", "post", "delete", "patch")

# --- operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of an OpenAPI document of `conformance/spec/openapi/`."""

    service: ServiceName
    method: str  # upper case
    path: str
    body_types: tuple[str, ...]  # media types of the request body; () without one
    body_schema: Mapping[str, Any] | None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        return f"{self.service} {self.key}"


def _resolve(document: Mapping[str, Any], schema: Any) -> Any:
    while isinstance(schema, Mapping) and "$ref" in schema:
        node: Any = document
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def load_operations(openapi_dir: Path) -> list[Operation]:
    """Every operation of every `<service>.json` in `openapi_dir`, in file and path order."""
    operations: list[Operation] = []
    for file in sorted(openapi_dir.glob("*.json")):
        service = next((name for name in SERVICE_NAMES if name == file.stem), None)
        if service is None:
            raise HarnessConfigError(f"{file}: not the interface of a known service")
        document = json.loads(file.read_text(encoding="utf-8"))
        for path, item in document.get("paths", {}).items():
            for method in HTTP_METHODS:
                spec = item.get(method)
                if spec is None:
                    continue
                content = (spec.get("requestBody") or {}).get("content") or {}
                schema = None
                if "application/json" in content:
                    schema = _resolve(document, content["application/json"].get("schema"))
                operations.append(Operation(service, method.upper(), path, tuple(content), schema))
    return operations


# --- the authorization matrix ----------------------------------------------------------------

Outcome = Literal["public", "allowed", "denied", "unauthenticated"]
OUTCOMES: tuple[Outcome, ...] = ("public", "allowed", "denied", "unauthenticated")
IDENTITIES = (
    "anonymous",
    "citizen_a",
    "citizen_b",
    "other_province",
    "wrong_scope",
    "expired",
    "untrusted_issuer",
)
# Callers whose token comes from a profile credential (per service, with a default).
CREDENTIAL_IDENTITIES = ("citizen_a", "citizen_b", "other_province", "wrong_scope", "expired")


@dataclass(frozen=True)
class AuthzMatrix:
    """`security/authz-matrix.yaml`: the expected outcome of each (operation, caller) cell."""

    credentials: dict[str, dict[str, str]]  # identity -> service or "default" -> credential
    defaults: dict[str, Outcome]
    cells: dict[tuple[str, str], dict[str, Outcome]]  # (service, "METHOD /path") -> row

    def credential(self, identity: str, service: str) -> str:
        names = self.credentials[identity]
        return names.get(service, names["default"])

    def row(self, operation: Operation) -> dict[str, Outcome]:
        return self.cells[(operation.service, operation.key)]

    def size(self) -> tuple[int, int]:
        """(operations, callers)."""
        return len(self.cells), len(IDENTITIES)


def _outcome(value: Any, where: str) -> Outcome:
    if value not in OUTCOMES:
        raise HarnessConfigError(f"{where}: {value!r} is not one of {', '.join(OUTCOMES)}")
    outcome: Outcome = value
    return outcome


def load_matrix(path: Path, operations: Iterable[Operation]) -> AuthzMatrix:
    """Read and check the matrix: every caller has a default, every operation of the
    interfaces is declared and no declared operation is unknown (HarnessConfigError)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise HarnessConfigError(f"{path}: cannot read: {error}") from None
    if not isinstance(data, dict):
        raise HarnessConfigError(f"{path}: expected a mapping")
    raw_defaults = data.get("defaults") or {}
    if set(raw_defaults) != set(IDENTITIES):
        raise HarnessConfigError(f"{path}: defaults must name exactly {', '.join(IDENTITIES)}")
    defaults = {k: _outcome(v, f"{path}: defaults.{k}") for k, v in raw_defaults.items()}
    raw_credentials = data.get("credentials") or {}
    credentials: dict[str, dict[str, str]] = {}
    for identity in CREDENTIAL_IDENTITIES:
        names = raw_credentials.get(identity)
        if not isinstance(names, dict) or "default" not in names:
            raise HarnessConfigError(f"{path}: credentials.{identity} needs a default")
        credentials[identity] = {str(k): str(v) for k, v in names.items()}
    cells: dict[tuple[str, str], dict[str, Outcome]] = {}
    for service, rows in (data.get("operations") or {}).items():
        for key, row in (rows or {}).items():
            where = f"{path}: operations.{service}.{key}"
            if row == "public":
                cells[(service, key)] = dict.fromkeys(IDENTITIES, "public")
                continue
            row = row or {}
            if not isinstance(row, dict) or not set(row) <= set(IDENTITIES):
                raise HarnessConfigError(f"{where}: 'public' or a mapping of callers to outcomes")
            cells[(service, key)] = {
                identity: _outcome(row.get(identity, defaults[identity]), f"{where}.{identity}")
                for identity in IDENTITIES
            }
    known = {(op.service, op.key) for op in operations}
    missing = sorted(f"{s} {k}" for s, k in known - set(cells))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise HarnessConfigError(
            f"{path}: operation {missing[0]}{more} of the interfaces is not in the "
            "authorization matrix; declare who may call it"
        )
    unknown = sorted(f"{s} {k}" for s, k in set(cells) - known)
    if unknown:
        raise HarnessConfigError(f"{path}: {unknown[0]} is no operation of the interfaces")
    return AuthzMatrix(credentials, defaults, cells)


def public_operations(matrix: AuthzMatrix) -> set[tuple[str, str]]:
    """(service, "METHOD /path") of the operations anyone may call."""
    return {key for key, row in matrix.cells.items() if set(row.values()) == {"public"}}


def operation_for(
    operations: Iterable[Operation], base_urls: Mapping[str, str], method: str, url: str
) -> Operation | None:
    """The operation a request to `url` calls (base URLs by service), or None."""
    for operation in operations:
        base = base_urls.get(operation.service)
        if base is None or operation.method != method.upper() or not url.startswith(base):
            continue
        rest = url[len(base) :].split("?", 1)[0] or "/"
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(operation.path))
        if re.fullmatch(pattern, rest):
            return operation
    return None


def judge_cell(outcome: Outcome, status: int) -> str | None:
    """Why `status` contradicts the declared outcome of a cell, or None."""
    if outcome == "public":
        return None
    if outcome == "unauthenticated":
        if status == 401:
            return None
        if status < 400:
            return f"unexpected success: HTTP {status}, expected 401"
        return f"HTTP {status}, expected 401 (authentication first)"
    if outcome == "denied":
        if 400 <= status < 500:
            return None
        if status < 400:
            return f"unexpected success: HTTP {status}, expected a refusal"
        return f"HTTP {status}, expected a refusal (4xx)"
    if status in (401, 403):
        return f"HTTP {status}, but the matrix declares this caller allowed"
    return None


# --- forged tokens ---------------------------------------------------------------------------


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import base64

    def part(text: str) -> dict[str, Any]:
        padded = text + "=" * (-len(text) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        return value if isinstance(value, dict) else {}

    header, claims, _ = token.split(".", 2)
    return part(header), part(claims)


def forge_token(template: str) -> str:
    """A token claiming everything `template` claims (issuer, audience, subject, scopes) and
    the key id of the issuer's key, signed with a fresh key of an issuer nobody trusts, which
    it also offers in its `jwk` header: a validator that skips signatures, trusts embedded keys
    or picks keys by issuer name alone accepts it."""
    header, claims = _unverified(template)
    key = ECKey.generate_key("P-256")
    now = int(time.time())
    forged = {**claims, "iat": now, "exp": now + 600, "jti": secrets.token_urlsafe(16)}
    protected = {
        "alg": "ES256",
        "typ": header.get("typ", "JWT"),
        "kid": header.get("kid", "untrusted"),
        "jwk": key.as_dict(private=False),
    }
    return jwt.encode(protected, forged, key)


# --- headers and cookies ---------------------------------------------------------------------

_SAFE_REFERRER = frozenset(
    {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin", "origin"}
)


def _csp_directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return directives


def header_findings(headers: Mapping[str, str], *, authenticated: bool) -> list[tuple[str, str]]:
    """Failure modes of SEC-HDR-001 (and SEC-HDR-002 when `authenticated`) a response's
    headers show, as (requirement:mode, what)."""
    found: list[tuple[str, str]] = []
    lower = {k.lower(): v for k, v in headers.items()}
    policy = lower.get("content-security-policy")
    if policy is None:
        found.append(("SEC-HDR-001:csp-missing", "no Content-Security-Policy"))
    else:
        directives = _csp_directives(policy)
        ancestors = directives.get("frame-ancestors")
        if (
            ancestors is None
            or "*" in ancestors
            or any(a.startswith(("http:", "https:")) and "*" in a for a in ancestors)
        ):
            found.append(
                ("SEC-HDR-001:frame-ancestors-missing", f"CSP without frame-ancestors: {policy}")
            )
        scripts = directives.get("script-src", directives.get("default-src"))
        if scripts is None or {"'unsafe-inline'", "*", "data:", "http:", "https:"} & set(scripts):
            found.append(
                ("SEC-HDR-001:inline-script-allowed", f"CSP allows such scripts: {policy}")
            )
    if lower.get("x-content-type-options", "").strip().lower() != "nosniff":
        found.append(("SEC-HDR-001:nosniff-missing", "no X-Content-Type-Options: nosniff"))
    referrer = lower.get("referrer-policy", "")
    # The last policy a browser understands wins.
    last = referrer.split(",")[-1].strip().lower() if referrer else ""
    if last not in _SAFE_REFERRER:
        found.append(("SEC-HDR-001:referrer-leak", f"Referrer-Policy {referrer or 'missing'}"))
    if authenticated:
        cache = {d.strip().split("=")[0].lower() for d in lower.get("cache-control", "").split(",")}
        if "no-store" not in cache:
            found.append(
                (
                    "SEC-HDR-002:cacheable-authenticated",
                    f"Cache-Control {lower.get('cache-control') or 'missing'}",
                )
            )
    return found


def cookie_findings(set_cookies: Iterable[str], *, https: bool) -> list[tuple[str, str]]:
    """Failure modes of SEC-HDR-003 the `Set-Cookie` values show (names only, never values)."""
    found: list[tuple[str, str]] = []
    for raw in set_cookies:
        name = raw.split("=", 1)[0].strip()
        attributes = {a.split("=", 1)[0].strip().lower(): a for a in raw.split(";")[1:]}
        # A cookie being deleted (empty value, expired) carries nothing worth protecting.
        value = raw.split(";", 1)[0].partition("=")[2].strip()
        if value in ("", '""') and ("max-age" in attributes or "expires" in attributes):
            continue
        if "httponly" not in attributes:
            found.append(("SEC-HDR-003:cookie-not-httponly", f"cookie {name} lacks HttpOnly"))
        same_site = attributes.get("samesite", "").partition("=")[2].strip().lower()
        if same_site not in ("lax", "strict"):
            found.append(
                ("SEC-HDR-003:cookie-no-samesite", f"cookie {name}: SameSite {same_site or '-'}")
            )
        if https and "secure" not in attributes:
            found.append(("SEC-HDR-003:cookie-not-secure", f"cookie {name} lacks Secure"))
    return found


# --- personal data and secrets ---------------------------------------------------------------

JWT_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"
)
PEM_PRIVATE = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----")
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi"})
_PASSWORD_MEMBERS = frozenset({"password", "passwd", "pwd", "new_password", "old_password"})
# What redaction writes in place of a secret; never a finding.
_REDACTED = re.compile(r"^(\[?redacted|\*+$|<redacted)", re.IGNORECASE)


def _excerpt(text: str, offset: int) -> str:
    # The finding must not repeat the data it found: shown masked.
    return mask_personal_data(text[max(0, offset - 40) : offset + 60]).replace("\n", " ")


def personal_findings(text: str) -> Iterator[tuple[str, str]]:
    """(kind, masked context) of every resident ID or mobile number in clear in `text`."""
    for kind, offset in find_personal_data(text):
        yield kind, _excerpt(text, offset)


def _members(value: Any) -> Iterator[tuple[str, Any, Mapping[str, Any]]]:
    if isinstance(value, Mapping):
        for name, member in value.items():
            yield str(name), member, value
            yield from _members(member)
    elif isinstance(value, list):
        for item in value:
            yield from _members(item)


def secret_findings(text: str, *, tokens: bool) -> list[str]:
    """What `text` (a body, a header value, an evidence file) gives away: PEM private keys,
    private JWK members, password members with a value and, with `tokens`, JWTs."""
    found: list[str] = []
    if PEM_PRIVATE.search(text):
        found.append("a PEM private key")
    if tokens and JWT_PATTERN.search(text):
        found.append("a bearer token (JWT)")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    for name, member, parent in _members(document):
        lowered = name.lower()
        if (
            lowered in _PRIVATE_JWK_MEMBERS
            and "kty" in parent
            and isinstance(member, str)
            and member
            and not _REDACTED.match(member)
        ):
            found.append(f"a private JWK member {name!r}")
        if (
            lowered in _PASSWORD_MEMBERS
            and isinstance(member, str)
            and member
            and not _REDACTED.match(member)
        ):
            found.append(f"a password member {name!r} with a value")
    return found
