"""E-licence identifier (电子证照标识, GB/T 36904-2018).

``1.2.156.3005.2.<type code>.<issuer code>.<serial>.<version>.<check>``

- root: the OID arc ``1.2.156.3005.2``; ``1.2.156.3003.2`` and others are rejected.
- type code (证照类型代码): 21 characters, the defining authority's credit code + 3 digits.
- issuer code (颁发机构代码): the issuing authority's 18-character credit code.
- serial (顺序号): issuer-defined, 1-32 characters of ``[0-9A-Za-z]``.
- version (版本号): 3 digits.
- check (校验位): ISO/IEC 7064 MOD 37,36 (hybrid system, alphabet 0-9A-Z) over type code +
  issuer code + serial + version, concatenated without dots and without the root.

The check alphabet has no lower case, so the identifier is case-insensitive; the canonical form
(``str(identifier)``) is upper case and two identifiers that differ only in case are the same
licence. MOD 37,36 catches every single-character substitution and every adjacent transposition
among the checked characters; together with the fixed field lengths this means every
single-character change of a valid identifier that is not a mere change of case is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from stdnum.iso7064 import mod_37_36

from zwfw.codes.credit import CreditCode
from zwfw.codes.errors import CodeError, check_text, describe_char

KIND = "licence-id"
ROOT = "1.2.156.3005.2"
TYPE_CODE_LENGTH = 21
ISSUER_CODE_LENGTH = 18
SERIAL_MAX_LENGTH = 32
VERSION_LENGTH = 3
_FIELD_NAMES = ("type code", "issuer code", "serial", "version", "check character")
_ALLOWED = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
_DIGITS = frozenset("0123456789")


def check_character(type_code: str, issuer_code: str, serial: str, version: str) -> str:
    """The MOD 37,36 check character of the four checked fields (any case, alphanumeric)."""
    return mod_37_36.calc_check_digit((type_code + issuer_code + serial + version).upper())


def _check_type_code(value: str, field: str, at: int) -> None:
    if len(field) != TYPE_CODE_LENGTH:
        raise CodeError(
            KIND,
            value,
            f"type code is {TYPE_CODE_LENGTH} characters (defining authority's credit code "
            f"+ 3 digits), got {len(field)}",
            at,
        )
    try:
        CreditCode(field[:18])
    except CodeError as err:
        raise err.within(
            KIND, value, at, "type code: defining authority is not a valid credit code"
        ) from None
    for index in range(18, TYPE_CODE_LENGTH):
        if field[index] not in _DIGITS:
            raise CodeError(
                KIND,
                value,
                f"type code ends in 3 digits, found {describe_char(field[index])} "
                f"at position {at + index}",
                at + index,
            )


def _check_issuer_code(value: str, field: str, at: int) -> None:
    if len(field) != ISSUER_CODE_LENGTH:
        hint = (
            " (it looks like an administrative division code)"
            if len(field) in (6, 12) and set(field) <= _DIGITS
            else ""
        )
        raise CodeError(
            KIND,
            value,
            f"issuer code '{field}' is not a credit code: expected {ISSUER_CODE_LENGTH} "
            f"characters, got {len(field)}{hint}",
            at,
        )
    try:
        CreditCode(field)
    except CodeError as err:
        raise err.within(KIND, value, at, "issuer code is not a valid credit code") from None


@dataclass(frozen=True)
class LicenceIdentifier:
    """A valid e-licence identifier, held in canonical (upper-case) form."""

    value: str

    def __post_init__(self) -> None:
        original = check_text(KIND, self.value, None)
        for index, char in enumerate(original):
            if char not in _ALLOWED:
                raise CodeError(
                    KIND,
                    original,
                    f"illegal character {describe_char(char)} at position {index} "
                    "(allowed: 0-9, A-Z, a-z and '.')",
                    index,
                )
        value = original.upper()
        self._check_root(original, value)
        fields = value[len(ROOT) + 1 :].split(".")
        if len(fields) != len(_FIELD_NAMES):
            raise CodeError(
                KIND,
                original,
                f"expected {len(_FIELD_NAMES)} fields after the root "
                f"({', '.join(_FIELD_NAMES)}), got {len(fields)}",
            )
        starts = []
        at = len(ROOT) + 1
        for field in fields:
            starts.append(at)
            at += len(field) + 1
        type_code, issuer_code, serial, version, check = fields
        _check_type_code(original, type_code, starts[0])
        _check_issuer_code(original, issuer_code, starts[1])
        if not 1 <= len(serial) <= SERIAL_MAX_LENGTH:
            raise CodeError(
                KIND,
                original,
                f"serial is {len(serial)} characters, expected 1-{SERIAL_MAX_LENGTH}",
                starts[2],
            )
        if len(version) != VERSION_LENGTH or not set(version) <= _DIGITS:
            raise CodeError(KIND, original, f"version is '{version}', expected 3 digits", starts[3])
        if len(check) != 1:
            raise CodeError(
                KIND,
                original,
                f"check character field is {len(check)} characters, expected 1",
                starts[4],
            )
        expected = check_character(type_code, issuer_code, serial, version)
        if check != expected:
            raise CodeError(
                KIND,
                original,
                f"check character is '{original[starts[4]]}', expected '{expected}'",
                starts[4],
            )
        object.__setattr__(self, "value", value)

    @staticmethod
    def _check_root(original: str, value: str) -> None:
        if value.startswith(ROOT + "."):
            return
        got = ".".join(value.split(".")[:5])
        position = next(
            (i for i, (a, b) in enumerate(zip(value, ROOT + ".", strict=False)) if a != b),
            min(len(value), len(ROOT)),
        )
        raise CodeError(KIND, original, f"root is '{got}', expected '{ROOT}'", position)

    def __str__(self) -> str:
        return self.value

    def _fields(self) -> list[str]:
        return self.value[len(ROOT) + 1 :].split(".")

    @property
    def type_code(self) -> str:
        return self._fields()[0]

    @property
    def defining_authority(self) -> CreditCode:
        return CreditCode(self.type_code[:18])

    @property
    def issuer_code(self) -> str:
        return self._fields()[1]

    @property
    def issuer(self) -> CreditCode:
        return CreditCode(self.issuer_code)

    @property
    def serial(self) -> str:
        return self._fields()[2]

    @property
    def version(self) -> str:
        return self._fields()[3]

    @property
    def check(self) -> str:
        return self._fields()[4]

    def parts(self) -> dict[str, str]:
        type_code, issuer_code, serial, version, check = self._fields()
        return {
            "root": ROOT,
            "type code": type_code,
            "defining authority": type_code[:18],
            "type number": type_code[18:],
            "issuer code": issuer_code,
            "serial": serial,
            "version": version,
            "check character": check,
        }


def parse_licence_id(value: str) -> LicenceIdentifier:
    """Validate `value` as an e-licence identifier; raises CodeError naming the first problem."""
    return LicenceIdentifier(value)


def build_licence_id(
    type_code: str, issuer_code: str, serial: str, version: str | int
) -> LicenceIdentifier:
    """The identifier of licence `serial`, version `version`, with its check character.

    An integer version 0-999 is zero-padded to 3 digits.
    """
    if isinstance(version, int) and 0 <= version <= 999:
        version = f"{version:03d}"
    parts = (type_code, issuer_code, serial, str(version))
    for name, part in zip(_FIELD_NAMES, parts, strict=False):
        if not isinstance(part, str):
            raise CodeError(KIND, repr(part), f"{name} must be a string")
        if "." in part:
            raise CodeError(KIND, part, f"{name} must not contain '.'", part.index("."))
        if part == "":
            raise CodeError(KIND, part, f"{name} is empty")
    body = ".".join((ROOT, *parts))
    # An unusable part gets a placeholder check; parsing then reports the part itself.
    check = check_character(*parts) if set("".join(parts)) <= _ALLOWED else "0"
    return LicenceIdentifier(f"{body}.{check}")
