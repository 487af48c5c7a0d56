"""Unified social credit code (统一社会信用代码, GB 32100-2015).

Layout of the 18 characters (positions 0-based):

====  =========================================================  ==========================
0     registration authority (登记管理部门代码)                   table below
1     institution type (机构类别代码), depends on the authority  table below
2-7   division of the registering office (登记管理机关行政区划码)  6 digits
8-16  subject identifier (主体标识码, the GB 11714 organisation code for older bodies)
17    check character, GB 32100 weights over positions 0-16, modulus 31
====  =========================================================  ==========================

The alphabet is the 31 characters ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z). Codes
are upper-case; lower-case input is rejected rather than folded, so that a stored value is always
the canonical one.

The authority/type table (GB 32100-2015 Table 1 with its later additions) is in
``zwfw.codes.tables``.

Because 31 is prime and every weight is non-zero and distinct from its neighbour modulo 31, the
check character catches every single-character substitution and every adjacent transposition
within positions 0-16.
"""

from __future__ import annotations

from dataclasses import dataclass

from stdnum.cn import uscc

from zwfw.codes.errors import CodeError, check_digits, check_text, describe_char
from zwfw.codes.tables import REGISTRATION_AUTHORITIES

KIND = "credit-code"
LENGTH = 18
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ALPHABET_SET = frozenset(ALPHABET)
_UNUSED_LETTERS = frozenset("IOSVZ")


def check_character(first17: str) -> str:
    """The GB 32100 check character for 17 characters already known to be in the alphabet."""
    return uscc.calc_check_digit(first17)


def _check_body(value: str, end: int) -> None:
    """Validate value[:end] (end is 17 or 18): alphabet, authority, type, division digits."""
    for index in range(end):
        char = value[index]
        if char in _ALPHABET_SET:
            continue
        if char.islower() and char.upper() in _ALPHABET_SET:
            reason = f"lower-case {describe_char(char)} at position {index}; codes are upper-case"
        elif char.upper() in _UNUSED_LETTERS:
            reason = (
                f"illegal character {describe_char(char)} at position {index} "
                "(GB 32100 does not use I, O, S, V, Z)"
            )
        else:
            reason = f"illegal character {describe_char(char)} at position {index}"
        raise CodeError(KIND, value, reason, index)
    authority = REGISTRATION_AUTHORITIES.get(value[0])
    if authority is None:
        known = ", ".join(REGISTRATION_AUTHORITIES)
        raise CodeError(
            KIND, value, f"unknown registration authority '{value[0]}' (known: {known})", 0
        )
    name, types = authority
    if value[1] not in types:
        known = ", ".join(types)
        raise CodeError(
            KIND,
            value,
            f"unknown institution type '{value[1]}' for registration authority "
            f"'{value[0]}' ({name}); known: {known}",
            1,
        )
    check_digits(KIND, value, 2, 8, "division part (positions 2-7)")


@dataclass(frozen=True)
class CreditCode:
    """A valid unified social credit code; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        value = check_text(KIND, self.value, (LENGTH,), f"{LENGTH} characters")
        _check_body(value, LENGTH)
        expected = check_character(value[:17])
        if value[17] != expected:
            raise CodeError(
                KIND, value, f"check character is '{value[17]}', expected '{expected}'", 17
            )

    def __str__(self) -> str:
        return self.value

    @property
    def registration_authority(self) -> str:
        return self.value[0]

    @property
    def registration_authority_name(self) -> str:
        return REGISTRATION_AUTHORITIES[self.value[0]][0]

    @property
    def institution_type(self) -> str:
        return self.value[1]

    @property
    def institution_type_name(self) -> str:
        return REGISTRATION_AUTHORITIES[self.value[0]][1][self.value[1]]

    @property
    def division(self) -> str:
        return self.value[2:8]

    @property
    def subject_identifier(self) -> str:
        return self.value[8:17]

    @property
    def check(self) -> str:
        return self.value[17]

    def parts(self) -> dict[str, str]:
        return {
            "registration authority": f"{self.registration_authority} "
            f"({self.registration_authority_name})",
            "institution type": f"{self.institution_type} ({self.institution_type_name})",
            "division": self.division,
            "subject identifier": self.subject_identifier,
            "check character": self.check,
        }


def parse_credit_code(value: str) -> CreditCode:
    """Validate `value` as a credit code; raises CodeError naming the first problem."""
    return CreditCode(value)


def build_credit_code(first17: str) -> CreditCode:
    """The credit code made of `first17` and the check character computed for it."""
    value = check_text(KIND, first17, (17,), "17 characters (the code without its check)")
    _check_body(value, 17)
    return CreditCode(value + check_character(value))
