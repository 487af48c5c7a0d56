"""Input checks shared by the settings, the domain modules and the admin API."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, cast

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{2,128}$"
# RFC 6749 §3.3 scope-token: printable ASCII without space, double quote and backslash.
SCOPE_PATTERN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")
# JWK members that only private or symmetric keys have (RFC 7518 §6).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_KEYS = 10


def public_jwks(document: Any) -> dict[str, Any]:
    """``document`` if it is a JWKS of public ES256 (EC P-256) signature keys, the only kind
    this IdP verifies; ``ValueError`` naming what is wrong otherwise."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a keys list")
    keys = document["keys"]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise ValueError(f"a JWKS needs 1 to {MAX_KEYS} keys")
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise ValueError(f"key {index} is not a JSON object")
        leaked = sorted(_PRIVATE_MEMBERS & set(key))
        if leaked:
            # Refused rather than stripped: whoever sent it has exposed a secret key.
            raise ValueError(
                f"key {index} carries private key material ({', '.join(leaked)}); "
                "give the public key only"
            )
        if key.get("kty") != "EC" or key.get("crv") != "P-256":
            raise ValueError(f"key {index} is not an EC P-256 key (ES256)")
        if key.get("alg", "ES256") != "ES256" or key.get("use", "sig") != "sig":
            raise ValueError(f"key {index} is not an ES256 signature key")
    try:
        # Checked member by member above; joserfc types the document as a TypedDict.
        KeySet.import_key_set(cast(Any, document))
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"the JWKS cannot be read: {exc}") from None
    return document


def http_url(value: str, what: str, *, fragment: bool = False) -> str:
    """``value`` if it is an absolute http(s) URL with a host (and no fragment unless
    allowed); ``ValueError`` otherwise."""
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or len(value) > 2000:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {value!r}")
    if parsed.fragment and not fragment:
        raise ValueError(f"{what} must not have a fragment: {value!r}")
    return value
