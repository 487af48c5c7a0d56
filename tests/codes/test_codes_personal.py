from __future__ import annotations

from datetime import date

import pytest

from zwfw.codes import CodeError
from zwfw.codes.masking import mask_resident_id
from zwfw.codes.personal import build_resident_id, parse_resident_id


def test_parse_resident_id() -> None:
    rid = build_resident_id("340102", date(1990, 3, 7), 451)
    assert parse_resident_id(str(rid)) == rid
    assert rid.birth_date == date(1990, 3, 7)
    assert rid.sex == "male"
    assert rid.division == "340102"
    assert rid.parts() == {
        "number": mask_resident_id(str(rid)),
        "division": "340102",
        "sex": "male",
    }
    assert str(rid) not in repr(rid)


def test_lower_case_x_is_canonicalised() -> None:
    # 11010519491231002X is the GB 11643 example number.
    assert str(parse_resident_id("11010519491231002x")) == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "reason", "position"),
    [
        ("", "empty value", None),
        ("11010519491231002", "expected 18 characters, got 17", None),
        ("1101051949123100A2", "the first 17 characters must be digits", 16),
        ("11010519491231002Y", "check character (position 17) must be a digit or X", 17),
        ("99010519491231002X", "unknown province", 0),
        ("110105194902300021", "birth date (positions 6-13) does not exist", 6),
        ("110105294901010021", "birth date (positions 6-13) is in the future", 6),
        ("110105194912310021", "check character is '1', expected 'X'", 17),
    ],
)
def test_resident_id_errors(value: str, reason: str, position: int | None) -> None:
    with pytest.raises(CodeError) as info:
        parse_resident_id(value)
    assert info.value.kind == "resident-id"
    assert reason in info.value.reason
    assert info.value.position == position
    # The number never appears whole in the message.
    if len(value) > 7:
        assert value not in str(info.value)
