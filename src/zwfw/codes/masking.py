"""Masking of personal numbers: resident ID numbers and mainland mobile numbers.

The one place that decides how these numbers are hidden, for code errors, the service kit's
logs, problem details and audit records, the harness' evidence redaction and the services'
own responses. Masking keeps the first 3 and the last 4 characters, as in
``110***********1234`` and ``138****5678``.

This module sits below the code parsers (``CodeError`` masks its own messages with it), so it
recognises a resident ID number and a credit code with the same rules as ``ResidentId`` and
``CreditCode`` but without them; the codes tests check that both agree.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from stdnum.cn import uscc
from stdnum.iso7064 import mod_11_2

from zwfw.codes.tables import PROVINCES, REGISTRATION_AUTHORITIES


def mask_resident_id(value: str) -> str:
    """`value` with all but its first 3 and last 4 characters replaced by `*`.

    Works on any string (never raises), so it is safe to call on malformed input; values of 7
    characters or fewer are masked whole.
    """
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


_PHONE_PREFIX = re.compile(r"(\+?86[- ]?)(?=[0-9]{8})")


def mask_phone(value: str) -> str:
    """A phone number with its middle digits masked: ``13812345678`` -> ``138****5678``.

    A ``+86``/``86`` country prefix is kept as written and the national number is masked as
    usual. Never raises; short values are masked whole.
    """
    match = _PHONE_PREFIX.match(value)
    prefix = match.group(1) if match else ""
    return prefix + mask_resident_id(value[len(prefix) :])


# A "run" is an alphanumeric string, possibly dotted (licence identifiers, OIDs): a number only
# counts as standalone when it does not touch one.
_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9A-Za-z]\.)"
_AFTER = r"(?![0-9A-Za-z])(?!\.[0-9A-Za-z])"
_PERSONAL = re.compile(
    _BEFORE
    + r"(?:(?P<id18>[0-9]{17}[0-9Xx])|(?P<id15>[0-9]{15})"
    + r"|(?P<prefix>\+?86[- ]?)?(?P<phone>1[3-9][0-9]{9}))"
    + _AFTER
)


def _is_resident_id(run: str) -> bool:
    """An ID-shaped run (``[0-9]{17}[0-9Xx]``) that ``ResidentId`` accepts: a known province,
    a birth date that exists and is not in the future, the MOD 11-2 check character."""
    if run[:2] not in PROVINCES:
        return False
    try:
        born = date(int(run[6:10]), int(run[10:12]), int(run[12:14]))
    except ValueError:
        return False
    return born <= date.today() and run[17].upper() == mod_11_2.calc_check_digit(run[:17])


def _is_credit_code(run: str) -> bool:
    """An ID-shaped run that ``CreditCode`` accepts: a known registration authority and
    institution type, the GB 32100 check character (upper-case, as codes are)."""
    authority = REGISTRATION_AUTHORITIES.get(run[0])
    return (
        authority is not None
        and run[1] in authority[1]
        and run[17] == uscc.calc_check_digit(run[:17])
    )


def _mask_match(match: re.Match[str]) -> str:
    if (id18 := match.group("id18")) is not None:
        # Some credit codes share the shape; leave those that are evidently credit codes.
        if _is_credit_code(id18) and not _is_resident_id(id18):
            return id18
        return mask_resident_id(id18)
    if (id15 := match.group("id15")) is not None:
        return mask_resident_id(id15)
    return (match.group("prefix") or "") + mask_resident_id(match.group("phone"))


def mask_personal_data(text: str) -> str:
    """`text` with every standalone resident ID number and mainland mobile number masked.

    Masked: 18-character ``\\d{17}[\\dXx]`` and legacy 15-digit numbers, and ``1[3-9]\\d{9}``
    mobile numbers, optionally written with a ``+86``/``86`` prefix (``+86 ``, ``+86-``).
    Standalone means not part of a longer run of letters and digits, dotted runs included, so
    credit codes, licence identifiers, implementation codes, hex serials, UUIDs and millisecond
    timestamps are left alone. An ID-shaped value that is a valid credit code but fails the
    resident ID check is left alone too; any other one is masked, erring on the side of privacy.
    The length of the text is unchanged.
    """
    return _PERSONAL.sub(_mask_match, text)


def find_personal_data(text: str) -> list[tuple[str, int]]:
    """Where ``text`` shows a personal number in clear, as ``(kind, offset)``: kind
    ``resident-id`` (18 characters with a valid GB 11643 check character, known province and
    real birth date) or ``mobile``. The same notion of standalone as ``mask_personal_data``;
    what that function leaves alone, or masks only to err on the side of privacy (ID-shaped
    runs failing the check), is not reported."""
    found: list[tuple[str, int]] = []
    for match in _PERSONAL.finditer(text):
        if (id18 := match.group("id18")) is not None:
            if _is_resident_id(id18):
                found.append(("resident-id", match.start("id18")))
        elif match.group("phone") is not None:
            found.append(("mobile", match.start("phone")))
    return found


def mask_value(value: Any) -> Any:
    """Mask every string inside ``value`` (dicts, lists, tuples); integers that mask differently
    (a phone number sent as a number) become masked strings."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {mask_personal_data(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        masked = mask_personal_data(text)
        return value if masked == text else masked
    return value
