"""Code formats (IC-CODE-*): the codes the province declares in its target profile.

Each declared value is one test, so a report names exactly which value is wrong and why.
Until the live suites read these codes from the target's catalog, cases and licences, the
province declares samples of them under `declared:` in its profile.
"""

from __future__ import annotations

import pytest

from zwfw.codes import KINDS, CodeError
from zwfw.harness.profile import TargetProfile

CREDIT_CODE_LENGTH = 18


def parsed(kind: str, value: str) -> object:
    """`value` parsed as `kind`; a parse error fails the test with the parser's one-line reason."""
    try:
        return KINDS[kind](value)
    except CodeError as error:
        pytest.fail(str(error), pytrace=False)


def embedded_credit_code_is_valid(kind: str, value: str) -> None:
    """Codes that start with the implementing body's credit code: that prefix must validate."""
    try:
        KINDS["credit-code"](value[:CREDIT_CODE_LENGTH])
    except CodeError as error:
        pytest.fail(f"{kind} {value!r}: embedded credit code: {error}", pytrace=False)


@pytest.mark.requirement(
    "IC-CODE-001", catches=("not-province-level", "unknown-province", "malformed")
)
def test_region_code_is_province_level(target: TargetProfile) -> None:
    parsed("division", target.region_code)
    assert len(target.region_code) == 6, f"region code {target.region_code!r} is not 6 digits"
    assert target.region_code.endswith("0000"), (
        f"region code {target.region_code!r} is not province level (expected PP0000)"
    )


@pytest.mark.requirement("IC-CODE-002", catches=("outside-province", "malformed"))
@pytest.mark.declared("division_codes")
def test_division_code_within_province(target: TargetProfile, value: str) -> None:
    parsed("division", value)
    assert len(value) == 6, f"division code {value!r}: expected the 6-digit form"
    assert value[:2] == target.region_code[:2], (
        f"division code {value!r} is outside province {target.region_code}"
    )


@pytest.mark.requirement("IC-CODE-003", catches=("check-character", "alphabet", "structure"))
@pytest.mark.declared("credit_codes")
def test_credit_code(value: str) -> None:
    parsed("credit-code", value)


@pytest.mark.requirement("IC-CODE-004", catches=("embedded-credit-code", "structure"))
@pytest.mark.declared("implementation_codes")
def test_implementation_code(value: str) -> None:
    parsed("item-impl", value)
    embedded_credit_code_is_valid("item-impl", value)


@pytest.mark.requirement("IC-CODE-005", catches=("embedded-implementation-code", "structure"))
@pytest.mark.declared("handling_item_codes")
def test_handling_item_code(value: str) -> None:
    parsed("handling-item", value)
    embedded_credit_code_is_valid("handling-item", value)


@pytest.mark.requirement(
    "IC-CODE-006", catches=("embedded-implementation-code", "acceptance-date", "structure")
)
@pytest.mark.declared("case_numbers")
def test_case_number(value: str) -> None:
    parsed("case-number", value)
    embedded_credit_code_is_valid("case-number", value)


@pytest.mark.requirement("IC-CODE-007", catches=("check-character", "root", "issuer-part"))
@pytest.mark.declared("licence_identifiers")
def test_licence_identifier(value: str) -> None:
    parsed("licence-id", value)
