from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from zwfw.codes import CodeError, build_credit_code, build_implementation_code
from zwfw.codes.division import PROVINCES
from zwfw.codes.personal import (
    ResidentId,
    build_resident_id,
    mask_personal_data,
    mask_phone,
    mask_resident_id,
    parse_resident_id,
)

from .strategies import credit_codes, licence_ids

# Not alphanumeric and not a dot: what may surround a standalone number in free text.
SEPARATORS = st.text(
    st.sampled_from([" ", ",", ":", "=", "\n", "\t", "(", ")", '"', "/", "，", "号", "：", "-"]),
    min_size=1,
    max_size=3,
)


@st.composite
def resident_ids(draw: st.DrawFn) -> ResidentId:
    division = draw(st.sampled_from(sorted(PROVINCES))) + draw(
        st.text("0123456789", min_size=4, max_size=4)
    )
    born = draw(st.dates(date(1900, 1, 1), date.today()))
    return build_resident_id(division, born, draw(st.integers(0, 999)))


phones = st.builds(
    lambda second, rest: f"1{second}{rest}",
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
)


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


def test_masks() -> None:
    assert mask_resident_id("11010519491231002X") == "110***********002X"
    assert mask_resident_id("110105491231002") == "110********1002"
    assert mask_resident_id("1234") == "****"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_phone("+86 13812345678") == "+86 138****5678"


def test_mask_personal_data_examples() -> None:
    text = (
        "申请人身份证号11010519491231002X，电话13812345678；"
        "旧证 110105491231002 call +86 13912345678 or 8615012345678."
    )
    assert mask_personal_data(text) == (
        "申请人身份证号110***********002X，电话138****5678；"
        "旧证 110********1002 call +86 139****5678 or 86150****5678."
    )


@pytest.mark.parametrize(
    "text",
    [
        "credit code 11370800MB28559184",
        "impl 11370800MB285591843370117002011 done",
        "licence 1.2.156.3005.2.11100000000013338W011.11430000006122244L.13812345678.001.X",
        "serial 1.2.156.3005.2.11100000MB03271699022.11430000006122244L.110105194912310021.001.0",
        "hex 0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6 and 13812345678abc",
        "ts=1718000000000 ms, 1718000000 s, order 138123456789",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "version 1.13812345678",
        "digits 113812345678 and 13812345678901234567890",
    ],
)
def test_mask_personal_data_leaves_other_runs_alone(text: str) -> None:
    assert mask_personal_data(text) == text


@given(
    st.lists(st.one_of(resident_ids().map(str), phones), min_size=1, max_size=4),
    SEPARATORS,
    SEPARATORS,
)
def test_every_standalone_number_is_masked(numbers: list[str], before: str, after: str) -> None:
    text = before + after.join(numbers) + after
    masked = mask_personal_data(text)
    assert len(masked) == len(text)
    for number in numbers:
        assert number not in masked
        assert mask_resident_id(number) in masked
    assert mask_personal_data(masked) == masked


@given(st.sampled_from(["+86", "86", "+86 ", "+86-"]), phones, SEPARATORS)
def test_prefixed_phones_are_masked(prefix: str, phone: str, around: str) -> None:
    masked = mask_personal_data(around + prefix + phone + around)
    assert phone not in masked
    assert prefix + mask_phone(phone) in masked


@given(
    st.one_of(
        credit_codes().map(str),
        licence_ids().map(str),
        st.builds(
            lambda c, b: str(build_implementation_code(c, 3, b)),
            credit_codes(),
            st.text("0123456789", min_size=12, max_size=12),
        ),
        st.builds(lambda: str(uuid.uuid4())),
        st.builds(lambda: uuid.uuid4().hex),
        st.integers(946_684_800_000, 4_102_444_800_000).map(str),
    ),
    SEPARATORS,
)
def test_codes_ids_and_timestamps_are_untouched(run: str, around: str) -> None:
    text = around + run + around
    assert mask_personal_data(text) == text


@given(st.text("0123456789", min_size=17, max_size=17))
def test_numeric_credit_codes_stay_unless_they_are_valid_resident_ids(body: str) -> None:
    try:
        code = str(build_credit_code(body))
    except CodeError:
        assume(False)
        return
    masked = mask_personal_data(f"code {code}.")
    try:
        ResidentId(code)
        is_resident_id = True
    except CodeError:
        is_resident_id = False
    if is_resident_id:
        assert code not in masked
    else:
        assert masked == f"code {code}."
