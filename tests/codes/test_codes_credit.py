from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zwfw.codes import CodeError, CreditCode, build_credit_code, parse_credit_code
from zwfw.codes.credit import ALPHABET

from .strategies import credit_codes

REAL_CODES = [
    "11370800MB28559184",
    "12441500196720244T",
    "11100000000013338W",
    "11430000006122244L",
]
# Every alphabet character, their lower-case forms, the letters GB 32100 leaves out, and others.
SUBSTITUTES = sorted(set(ALPHABET + ALPHABET.lower() + "IOSVZiosvz-_. /*#é０"))


@pytest.mark.parametrize("value", REAL_CODES)
def test_real_codes_are_accepted(value: str) -> None:
    code = parse_credit_code(value)
    assert str(code) == value
    assert code.check == value[-1]


def test_parts_name_authority_type_and_division() -> None:
    code = parse_credit_code("12441500196720244T")
    assert code.parts() == {
        "registration authority": "1 (机构编制)",
        "institution type": "2 (事业单位)",
        "division": "441500",
        "subject identifier": "196720244",
        "check character": "T",
    }
    assert code.registration_authority_name == "机构编制"
    assert code.institution_type_name == "事业单位"


def test_wrong_check_character_says_got_and_expected() -> None:
    with pytest.raises(CodeError) as info:
        parse_credit_code("11370800MB28559185")
    err = info.value
    assert (err.kind, err.value, err.position) == ("credit-code", "11370800MB28559185", 17)
    assert str(err) == "credit-code '11370800MB28559185': check character is '5', expected '4'"


@pytest.mark.parametrize(
    ("value", "reason", "position"),
    [
        ("", "empty value", None),
        ("11370800MB2855918", "expected 18 characters, got 17", None),
        ("11370800MB285591844", "expected 18 characters, got 19", None),
        (" 11370800MB2855918", "leading whitespace", 0),
        ("11370800MB2855918 ", "trailing whitespace", 17),
        ("11370800M 28559184", "embedded whitespace", 9),
        ("11370800MO28559184", "illegal character 'O' at position 9", 9),
        ("11370800Mb28559184", "lower-case 'b' at position 9", 9),
        ("11370800M#28559184", "illegal character '#' at position 9", 9),
        ("B1370800MB28559184", "unknown registration authority 'B'", 0),
        ("14370800MB28559184", "unknown institution type '4' for registration authority '1'", 1),
        ("94370800MB28559184", "unknown institution type '4' for registration authority '9'", 1),
        ("Y2370800MB28559184", "unknown institution type '2' for registration authority 'Y'", 1),
        ("1137A800MB28559184", "division part (positions 2-7) must be digits", 4),
    ],
)
def test_each_failure_has_a_precise_reason(value: str, reason: str, position: int | None) -> None:
    with pytest.raises(CodeError) as info:
        parse_credit_code(value)
    assert reason in info.value.reason
    assert info.value.position == position
    assert "\n" not in str(info.value)


def test_non_string_is_rejected() -> None:
    with pytest.raises(CodeError, match="expected a string, got int"):
        CreditCode(113708)  # type: ignore[arg-type]


def test_build_computes_the_check_character() -> None:
    assert str(build_credit_code("11370800MB2855918")) == "11370800MB28559184"
    with pytest.raises(CodeError, match="expected 17 characters"):
        build_credit_code("11370800MB28559184")
    with pytest.raises(CodeError, match="unknown registration authority"):
        build_credit_code("X1370800MB2855918")


@pytest.mark.parametrize("value", REAL_CODES)
def test_every_single_substitution_of_a_real_code_is_rejected(value: str) -> None:
    for position in range(len(value)):
        for char in SUBSTITUTES:
            if char == value[position]:
                continue
            changed = value[:position] + char + value[position + 1 :]
            with pytest.raises(CodeError):
                parse_credit_code(changed)


@given(credit_codes())
def test_every_built_code_validates(code: CreditCode) -> None:
    assert parse_credit_code(str(code)) == code


@given(credit_codes(), st.integers(0, 17), st.sampled_from(SUBSTITUTES))
def test_any_single_substitution_is_caught(code: CreditCode, position: int, char: str) -> None:
    value = str(code)
    changed = value[:position] + char + value[position + 1 :]
    if changed == value:
        return
    with pytest.raises(CodeError):
        parse_credit_code(changed)


@given(credit_codes(), st.integers(0, 15))
def test_adjacent_transpositions_before_the_check_are_caught(code: CreditCode, i: int) -> None:
    value = str(code)
    swapped = value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    if swapped == value:
        return
    with pytest.raises(CodeError):
        parse_credit_code(swapped)
