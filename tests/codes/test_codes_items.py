from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zwfw.codes import (
    CodeError,
    CreditCode,
    build_case_number,
    build_handling_item_code,
    build_implementation_code,
    parse_case_number,
    parse_handling_item_code,
    parse_implementation_code,
    parse_item_basic_code,
)

from .strategies import credit_codes

SAMPLES = ["11370800MB285591843370117002011", "12441500196720244T3442199806003"]


def test_basic_code() -> None:
    assert str(parse_item_basic_code("370117002011")) == "370117002011"
    with pytest.raises(CodeError, match="expected 12 digits, got 11"):
        parse_item_basic_code("37011700201")
    with pytest.raises(CodeError, match="found 'A' at position 3") as info:
        parse_item_basic_code("370A17002011")
    assert info.value.kind == "item-basic"


@pytest.mark.parametrize("value", SAMPLES)
def test_implementation_samples(value: str) -> None:
    code = parse_implementation_code(value)
    assert code.level == "3"
    assert str(code.credit_code) == value[:18]
    assert str(code.basic_code) == value[19:]
    assert code.parts()["exercise level"] == "3 (市级)"


@pytest.mark.parametrize(
    ("value", "reason", "position"),
    [
        ("11370800MB28559184337011700201", "expected 31 characters", None),
        (
            "11370800MB285591853370117002011",
            "implementing body credit code (positions 0-17): check character is '5', expected '4'",
            17,
        ),
        ("11370800MB285591847370117002011", "exercise level at position 18 is '7'", 18),
        ("11370800MB285591840370117002011", "exercise level at position 18 is '0'", 18),
        ("11370800MB2855918433701170020X1", "basic code (positions 19-30) must be digits", 29),
    ],
)
def test_implementation_errors(value: str, reason: str, position: int | None) -> None:
    with pytest.raises(CodeError) as info:
        parse_implementation_code(value)
    assert info.value.kind == "item-impl"
    assert reason in info.value.reason
    assert info.value.position == position


def test_handling_item_code() -> None:
    code = parse_handling_item_code(SAMPLES[0] + "01")
    assert code.suffix == "01"
    assert str(code.implementation_code) == SAMPLES[0]
    assert code.parts()["handling item"] == "01"
    assert str(build_handling_item_code(SAMPLES[0], 7)) == SAMPLES[0] + "07"
    with pytest.raises(CodeError, match="expected 33 characters") as info:
        parse_handling_item_code(SAMPLES[0])
    assert info.value.kind == "handling-item"
    with pytest.raises(CodeError, match="suffix") as info:
        parse_handling_item_code(SAMPLES[0] + "0A")
    assert info.value.position == 32


def test_case_number_round_trip() -> None:
    case = build_case_number(SAMPLES[1], date(2025, 10, 9), 12)
    assert str(case) == SAMPLES[1] + "202510090012"
    parsed = parse_case_number(str(case))
    assert (parsed.day, parsed.sequence) == (date(2025, 10, 9), 12)
    assert parsed.parts()["date"] == "2025-10-09"
    assert parsed.parts()["sequence"] == "0012"


@pytest.mark.parametrize(
    ("suffix", "reason", "position"),
    [
        ("202502300001", "date '20250230' does not exist", 31),
        ("202513010001", "date '20251301' does not exist", 31),
        ("2025103A0001", "date (positions 31-38) must be digits", 38),
        ("202510090000", "sequence is 0000", 39),
        ("20251009000X", "sequence (positions 39-42) must be digits", 42),
    ],
)
def test_case_number_errors(suffix: str, reason: str, position: int) -> None:
    with pytest.raises(CodeError) as info:
        parse_case_number(SAMPLES[0] + suffix)
    assert info.value.kind == "case-number"
    assert reason in info.value.reason
    assert info.value.position == position


@pytest.mark.parametrize("sequence", [0, 10000, -1])
def test_case_number_sequence_out_of_range(sequence: int) -> None:
    with pytest.raises(CodeError, match="expected 1-9999"):
        build_case_number(SAMPLES[0], date(2025, 1, 2), sequence)


@given(
    credit_codes(),
    st.integers(1, 6),
    st.text("0123456789", min_size=12, max_size=12),
    st.dates(date(1000, 1, 1), date(9999, 12, 31)),
    st.integers(1, 9999),
    st.integers(0, 99),
)
def test_built_item_codes_validate(
    credit: CreditCode, level: int, basic: str, day: date, sequence: int, suffix: int
) -> None:
    implementation = build_implementation_code(credit, level, basic)
    assert parse_implementation_code(str(implementation)) == implementation
    handling = build_handling_item_code(implementation, suffix)
    assert parse_handling_item_code(str(handling)) == handling
    case = build_case_number(implementation, day, sequence)
    assert parse_case_number(str(case)).day == day
    assert parse_case_number(str(case)).sequence == sequence
