"""Domain codes: parse, validate and build the codes government services exchange.

Every parser raises `CodeError` naming the first problem (kind, value, reason, position) and
returns a frozen dataclass whose `str()` is the canonical value and whose `parts()` names its
parts. `KINDS` maps the CLI's kind names to their parsers.
"""

from __future__ import annotations

from collections.abc import Callable

from zwfw.codes.credit import CreditCode, build_credit_code, parse_credit_code
from zwfw.codes.division import DivisionCode, build_division, parse_division
from zwfw.codes.errors import CodeError
from zwfw.codes.items import (
    EXERCISE_LEVELS,
    CaseNumber,
    HandlingItemCode,
    ImplementationCode,
    ItemBasicCode,
    build_case_number,
    build_handling_item_code,
    build_implementation_code,
    parse_case_number,
    parse_handling_item_code,
    parse_implementation_code,
    parse_item_basic_code,
)
from zwfw.codes.licence import LicenceIdentifier, build_licence_id, parse_licence_id

KINDS: dict[str, Callable[[str], object]] = {
    "credit-code": parse_credit_code,
    "division": parse_division,
    "item-basic": parse_item_basic_code,
    "item-impl": parse_implementation_code,
    "handling-item": parse_handling_item_code,
    "case-number": parse_case_number,
    "licence-id": parse_licence_id,
}

__all__ = [
    "EXERCISE_LEVELS",
    "KINDS",
    "CaseNumber",
    "CodeError",
    "CreditCode",
    "DivisionCode",
    "HandlingItemCode",
    "ImplementationCode",
    "ItemBasicCode",
    "LicenceIdentifier",
    "build_case_number",
    "build_credit_code",
    "build_division",
    "build_handling_item_code",
    "build_implementation_code",
    "build_licence_id",
    "parse_case_number",
    "parse_credit_code",
    "parse_division",
    "parse_handling_item_code",
    "parse_implementation_code",
    "parse_item_basic_code",
    "parse_licence_id",
]
