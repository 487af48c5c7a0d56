"""Personal identifiers: resident ID numbers and mainland mobile numbers, and how to mask them.

Resident ID number (公民身份号码, GB 11643-1999): 18 characters = division code of the place of
first registration (6 digits) + birth date yyyyMMdd (8) + sequence (3, odd for men, even for
women) + ISO 7064 MOD 11-2 check character (0-9 or X). The 15-digit numbers issued before 1999
(yyMMdd birth date, no check character) are still met in old records; they are masked but not
parsed.

Masking keeps the first 3 and the last 4 characters, as in ``110***********1234`` and
``138****5678``. These numbers must never reach a log or a response unmasked; `ResidentId`'s repr
and `parts()` are masked, `str()` is the full number for storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from stdnum.iso7064 import mod_11_2

from zwfw.codes.credit import CreditCode
from zwfw.codes.division import PROVINCES
from zwfw.codes.errors import CodeError, check_digits, check_text

KIND = "resident-id"
LENGTH = 18


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


def _is_credit_code(run: str) -> bool:
    """An ID-shaped run that is a valid credit code and not a valid resident ID number (province,
    birth date and check character all checked)."""
    try:
        CreditCode(run)
    except CodeError:
        return False
    try:
        ResidentId(run)
    except CodeError:
        return True
    return False


def _mask_match(match: re.Match[str]) -> str:
    if (id18 := match.group("id18")) is not None:
        # Some credit codes share the shape; leave those that are evidently credit codes.
        return id18 if _is_credit_code(id18) else mask_resident_id(id18)
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


@dataclass(frozen=True)
class ResidentId:
    """A valid 18-character resident ID number; constructing one validates it.

    Lower-case ``x`` is accepted as the check character and stored as ``X``. Reasons in errors
    name positions, never the digits themselves.
    """

    value: str

    def __post_init__(self) -> None:
        value = check_text(KIND, self.value, (LENGTH,), f"{LENGTH} characters")
        check_digits(KIND, value, 0, 17, "the first 17 characters")
        if value[17] not in "0123456789Xx":
            raise CodeError(KIND, value, "check character (position 17) must be a digit or X", 17)
        if value[:2] not in PROVINCES:
            raise CodeError(KIND, value, "unknown province in the division part", 0)
        try:
            born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        except ValueError:
            raise CodeError(KIND, value, "birth date (positions 6-13) does not exist", 6) from None
        if born > date.today():
            raise CodeError(KIND, value, "birth date (positions 6-13) is in the future", 6)
        expected = mod_11_2.calc_check_digit(value[:17])
        if value[17].upper() != expected:
            raise CodeError(
                KIND, value, f"check character is '{value[17]}', expected '{expected}'", 17
            )
        object.__setattr__(self, "value", value.upper())

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"ResidentId({mask_resident_id(self.value)!r})"

    @property
    def division(self) -> str:
        return self.value[:6]

    @property
    def birth_date(self) -> date:
        return date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))

    @property
    def sequence(self) -> str:
        return self.value[14:17]

    @property
    def sex(self) -> str:
        """``male`` for an odd sequence, ``female`` for an even one."""
        return "male" if int(self.value[16]) % 2 else "female"

    @property
    def masked(self) -> str:
        return mask_resident_id(self.value)

    def parts(self) -> dict[str, str]:
        """Parts that are safe to show: the masked number, division and sex."""
        return {"number": self.masked, "division": self.division, "sex": self.sex}


def parse_resident_id(value: str) -> ResidentId:
    """Validate `value` as a resident ID number; raises CodeError naming the first problem."""
    return ResidentId(value)


def build_resident_id(division: str, birth_date: date, sequence: int) -> ResidentId:
    """The resident ID number with these parts and its MOD 11-2 check character."""
    body = f"{division}{birth_date.year:04d}{birth_date.month:02d}{birth_date.day:02d}"
    body += f"{sequence:03d}" if 0 <= sequence <= 999 else str(sequence)
    if len(body) != 17 or not body.isascii() or not body.isdigit():
        raise CodeError(
            KIND,
            mask_resident_id(body),
            "division must be 6 digits and sequence 0-999",
        )
    return ResidentId(body + mod_11_2.calc_check_digit(body))
