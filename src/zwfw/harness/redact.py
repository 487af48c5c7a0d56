"""Redaction of HTTP exchanges before they are written as evidence.

Evidence is published with certification reports, so whatever could let a reader act as the
harness or as a test person is removed, and personal identifiers are masked:

- `Authorization`/`Proxy-Authorization` values (the scheme is kept), cookie values (names and
  attributes are kept), and headers named like a token, secret, key or password;
- query-string, fragment and form fields carrying tokens, codes or secrets (`code`,
  `code_verifier`, `refresh_token`, `client_assertion`, `subject_token`, `password`, ...);
- JSON members with such names, private JWK members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`,
  and `k` of symmetric keys), wherever the JSON sits;
- JWTs (JWS and JWE compact form), PEM private keys and credentials after an HTTP
  authentication scheme (`Bearer ...`) anywhere in any text;
- the target profile's own credential values, wherever they appear;
- resident ID numbers and mobile numbers (`mask_personal_data`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from zwfw.codes.masking import mask_personal_data

REDACTED = "[REDACTED]"
REDACTED_JWT = "[REDACTED JWT]"
REDACTED_KEY = "[REDACTED PRIVATE KEY]"

# Field names whose values are credentials in URLs and form bodies.
_FIELD_NAMES = frozenset(
    {
        "code",
        "code_verifier",
        "device_code",
        "client_assertion",
        "client_secret",
        "subject_token",
        "actor_token",
        "assertion",
        "refresh_token",
        "access_token",
        "id_token",
        "id_token_hint",
        "token",
        "password",
        "passwd",
        "otp",
        "totp",
        "pin",
        "private_key",
        "api_key",
        "apikey",
        "secret",
        "session",
        "sessionid",
        "cookie",
        "set_cookie",
        "authorization",
        "proxy_authorization",
    }
)
# In JSON, `code` names catalog and item codes far more often than OAuth codes.
_JSON_PLAIN_NAMES = frozenset({"code"})
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_URL_HEADERS = frozenset({"location", "content-location", "referer", "refresh"})


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def is_secret_field(name: str) -> bool:
    """Whether a URL, form or header field of this name carries a credential."""
    key = _normal(name)
    return (
        key in _FIELD_NAMES
        or key.endswith("_token")
        or key.endswith("_secret")
        or key.endswith("_private_key")
        or key.endswith("_api_key")
        or "password" in key
        or "passwd" in key
        or key.startswith("secret")
    )


def is_secret_member(name: str) -> bool:
    """Whether a JSON member of this name carries a credential."""
    return _normal(name) not in _JSON_PLAIN_NAMES and is_secret_field(name)


_TOKEN_CHARS = r"[A-Za-z0-9_-]"
# JWS (3 parts) and JWE (5 parts) compact serialisations; the protected header is JSON, so
# base64url of '{"' always starts the token with "eyJ".
_JWT = re.compile(
    rf"(?<!{_TOKEN_CHARS})eyJ{_TOKEN_CHARS}+\.{_TOKEN_CHARS}*\.{_TOKEN_CHARS}*"
    rf"(?:\.{_TOKEN_CHARS}*\.{_TOKEN_CHARS}*)?(?!{_TOKEN_CHARS})"
)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL
)
# `"name": "value"` members in JSON that is embedded in text (escaped quotes allowed).
_JSON_MEMBER = re.compile(r'(\\?")([A-Za-z0-9_.-]+)\1(\s*:\s*)\1((?:[^"\\]|\\.)*?)\1')
# `name=value` fields in URLs, form-like text and headers.
_URL_FIELD = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_.-]+)=([^&#;\s\"'<>]*)")
# Credentials after an HTTP authentication scheme, wherever they are quoted (echoes, logs).
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|DPoP|Digest)( +)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_INPUT_TAG = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""\b(name|value)\s*=\s*("[^"]*"|'[^']*')""", re.IGNORECASE)
_MULTIPART_FIELD = re.compile(
    r'(Content-Disposition:[^\r\n]*\bname="([^"]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)'
    r"(.*?)(?=\r?\n--)",
    re.IGNORECASE | re.DOTALL,
)


# Texts up to this length are remembered with their redaction (see `Redactor.text`).
_SHORT_TEXT = 256


class Redactor:
    """Redacts text, URLs, headers and bodies; `secrets` are literal values never to appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        # Each secret as written and JSON-escaped, in one pattern: evidence passes tens of
        # thousands of strings through here in a run.
        written = {
            form for s in self.secrets for form in (s, json.dumps(s, ensure_ascii=False)[1:-1])
        }
        alternatives = sorted(written, key=len, reverse=True)
        self._secret_pattern = (
            re.compile("|".join(re.escape(form) for form in alternatives)) if alternatives else None
        )
        # Member names, header names and short values repeat across a run's exchanges.
        self._short_text = functools.lru_cache(maxsize=8192)(self._text)

    # --- text -----------------------------------------------------------------------------

    def literal_secrets(self, text: str) -> str:
        """`text` with every known credential value replaced, as written or JSON-escaped."""
        if self._secret_pattern is None:
            return text
        return self._secret_pattern.sub(REDACTED, text)

    def text(self, text: str) -> str:
        """Any text: JWTs, private keys, credential fields and members, personal data."""
        return self._short_text(text) if len(text) <= _SHORT_TEXT else self._text(text)

    def _text(self, text: str) -> str:
        text = self.literal_secrets(text)
        text = _PEM_PRIVATE.sub(REDACTED_KEY, text)
        text = _JWT.sub(REDACTED_JWT, text)
        text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
        text = _JSON_MEMBER.sub(self._json_member, text)
        text = _URL_FIELD.sub(self._url_field, text)
        text = _INPUT_TAG.sub(self._input_tag, text)
        text = _MULTIPART_FIELD.sub(self._multipart_field, text)
        return mask_personal_data(text)

    @staticmethod
    def _json_member(match: re.Match[str]) -> str:
        quote_mark, name, colon = match.group(1), match.group(2), match.group(3)
        if is_secret_member(name) or name in _PRIVATE_JWK_MEMBERS or name == "k":
            value = REDACTED
        else:
            value = match.group(4)
        return f"{quote_mark}{name}{quote_mark}{colon}{quote_mark}{value}{quote_mark}"

    @staticmethod
    def _url_field(match: re.Match[str]) -> str:
        name = match.group(1)
        if is_secret_field(name) and match.group(2):
            return f"{name}={REDACTED}"
        return match.group(0)

    @staticmethod
    def _input_tag(match: re.Match[str]) -> str:
        tag = match.group(0)
        attrs = {key.lower(): value[1:-1] for key, value in _ATTR.findall(tag)}
        if "value" not in attrs or not is_secret_field(attrs.get("name", "")):
            return tag
        return _ATTR.sub(
            lambda m: f'{m.group(1)}="{REDACTED}"' if m.group(1).lower() == "value" else m.group(0),
            tag,
        )

    @staticmethod
    def _multipart_field(match: re.Match[str]) -> str:
        if is_secret_field(match.group(2)):
            return match.group(1) + REDACTED
        return match.group(0)

    # --- structured values ------------------------------------------------------------------

    def json_value(self, value: Any) -> Any:
        """A parsed JSON value with credential members, private JWK members and text redacted."""
        if isinstance(value, dict):
            is_jwk = "kty" in value
            symmetric = is_jwk and str(value.get("kty")).lower() == "oct"
            out: dict[str, Any] = {}
            for key, member in value.items():
                name = str(key)
                private = is_jwk and (name in _PRIVATE_JWK_MEMBERS or (symmetric and name == "k"))
                if private or (is_secret_member(name) and member not in (None, "")):
                    out[self.text(name)] = REDACTED
                else:
                    out[self.text(name)] = self.json_value(member)
            return out
        if isinstance(value, list):
            return [self.json_value(item) for item in value]
        if isinstance(value, str):
            return self._string(value)
        return value

    def _string(self, value: str) -> str:
        # A string may itself hold JSON (a JWK passed as a form field, a nested document).
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                inner = json.loads(stripped)
            except (ValueError, RecursionError):
                pass
            else:
                return json.dumps(self.json_value(inner), ensure_ascii=False)
        return self.text(value)

    def fields(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Form or query fields: credential fields blanked, every other value redacted as text."""
        return [
            (self.text(name), REDACTED if is_secret_field(name) and value else self._string(value))
            for name, value in pairs
        ]

    def query(self, query: str) -> str:
        if not query:
            return query
        if "=" not in query:
            return self.text(query)
        pairs = self.fields(parse_qsl(query, keep_blank_values=True))
        return "&".join(
            f"{quote(name, safe='[]*')}={quote(value, safe='[]*:/@,')}" for name, value in pairs
        )

    def url(self, url: str) -> str:
        """A URL with user info, credential query/fragment fields and personal data redacted."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.text(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        return urlunsplit(
            (
                parts.scheme,
                netloc,
                self.text(parts.path),
                self.query(parts.query),
                self.query(parts.fragment),
            )
        )

    def header(self, name: str, value: str) -> str:
        key = name.lower()
        if key in ("authorization", "proxy-authorization"):
            scheme, _, credentials = value.partition(" ")
            return f"{scheme} {REDACTED}" if credentials else REDACTED
        if key == "cookie":
            return "; ".join(
                f"{part.split('=', 1)[0].strip()}={REDACTED}" if "=" in part else REDACTED
                for part in value.split(";")
                if part.strip()
            )
        if key == "set-cookie":
            first, sep, attributes = value.partition(";")
            cookie_name = first.split("=", 1)[0].strip()
            return f"{cookie_name}={REDACTED}{sep}{attributes}"
        if is_secret_field(key) or key.endswith(("-key", "-auth")):
            return REDACTED
        if key in _URL_HEADERS:
            return self.url(value)
        return self.text(value)

    def headers(self, headers: Sequence[tuple[str, str]]) -> list[list[str]]:
        return [[name, self.header(name, value)] for name, value in headers]


__all__ = [
    "REDACTED",
    "REDACTED_JWT",
    "REDACTED_KEY",
    "Redactor",
    "is_secret_field",
    "is_secret_member",
]
