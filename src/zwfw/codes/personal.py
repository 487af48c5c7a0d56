"""Resident ID numbers (公民身份号码, GB 11643-1999): parse, validate and build them.

18 characters = division code of the place of first registration (6 digits) + birth date
yyyyMMdd (8) + sequence (3, odd for men, even for women) + ISO 7064 MOD 11-2 check character
(0-9 or X). The 15-digit numbers issued before 1999 (yyMMdd birth date, no check character) are
still met in old records; they are masked but not parsed.

These numbers must never reach a log or a response unmasked (``zwfw.codes.masking`` hides
them); `ResidentId`'s repr and `parts()` are masked, `str()` is the full number for storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from stdnum.iso7064 import mod_11_2

from zwfw.codes.errors import RESIDENT_ID_KIND, CodeError, check_digits, check_text
from zwfw.codes.masking import mask_resident_id
from zwfw.codes.tables import PROVINCES

KIND = RESIDENT_ID_KIND
LENGTH = 18


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
