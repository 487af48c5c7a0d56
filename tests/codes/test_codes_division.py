from __future__ import annotations

import pytest

from zwfw.codes import CodeError, build_division, parse_division


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("340000", "province"),
        ("340100", "city"),
        ("340102", "county"),
        ("110101", "county"),
        ("429004", "county"),
        ("340102001000", "township"),
        ("340102001001", "village"),
        ("441900003000", "township"),
        ("340100000000", "city"),
    ],
)
def test_levels(value: str, level: str) -> None:
    assert parse_division(value).level == level


def test_parts_of_a_12_digit_code() -> None:
    code = parse_division("340102001002")
    assert code.parts() == {
        "province": "34 (安徽省)",
        "city": "01",
        "county": "02",
        "township": "001",
        "village": "002",
        "level": "village",
    }
    assert code.province_code == "340000"
    assert parse_division("330000").province_name == "浙江省"


@pytest.mark.parametrize(
    ("value", "reason", "position"),
    [
        ("", "empty value", None),
        ("34010", "expected 6 or 12 digits, got 5", None),
        ("3401020010", "expected 6 or 12 digits, got 10", None),
        ("34010A", "found 'A' at position 5", 5),
        ("34０100", "found '０' at position 2", 2),
        ("160000", "unknown province part '16'", 0),
        ("900000", "unknown province part '90'", 0),
        ("340001", "county part '01' under city part '00'", 4),
        ("340102000001", "village part '001' under township part '000'", 9),
    ],
)
def test_invalid(value: str, reason: str, position: int | None) -> None:
    with pytest.raises(CodeError) as info:
        parse_division(value)
    assert info.value.kind == "division"
    assert reason in info.value.reason
    assert info.value.position == position


def test_build() -> None:
    assert str(build_division("34", "01")) == "340100"
    assert str(build_division("34", "01", "02", township="001")) == "340102001000"
    with pytest.raises(CodeError, match="2 digits each"):
        build_division("340", "1")
