"""Masking of resident ID and phone numbers wherever text leaves a component."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum.iso7064 import mod_11_2

from zwfw.codes import (
    CodeError,
    build_credit_code,
    build_implementation_code,
    parse_credit_code,
    parse_division,
    parse_implementation_code,
)
from zwfw.codes.credit import check_character as credit_check
from zwfw.codes.masking import mask_personal_data, mask_phone, mask_resident_id, mask_value
from zwfw.codes.personal import ResidentId
from zwfw.codes.tables import REGISTRATION_AUTHORITIES

from .strategies import credit_codes, licence_ids, resident_ids

SEPARATORS = st.text(
    st.sampled_from([" ", ",", ":", "=", "\n", "\t", "(", ")", '"', "/", "，", "号", "：", "-"]),
    min_size=1,
    max_size=3,
)


phones = st.builds(
    lambda second, rest: f"1{second}{rest}",
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
)


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


@st.composite
def look_alike_runs(draw: st.DrawFn) -> str:
    """18-digit runs shaped both as a credit code and as a resident ID number: a registration
    authority, any institution type, a province-like prefix, a birth date (future and impossible
    ones too), the GB 32100 check character, and the MOD 11-2 one agreeing or not. Each rule that
    tells the two apart is met on both sides."""
    authority = draw(st.sampled_from([a for a in sorted(REGISTRATION_AUTHORITIES) if a.isdigit()]))
    institution = draw(st.sampled_from("0123456789"))
    region = draw(st.text("0123456789", min_size=4, max_size=4))
    born = draw(
        st.one_of(
            st.dates(date(1900, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d")),
            st.text("0123456789", min_size=8, max_size=8),
        )
    )
    agree = draw(st.booleans())
    for sequence in range(1000):
        body = f"{authority}{institution}{region}{born}{sequence:03d}"
        check = credit_check(body)
        if check in "0123456789X" and (check == mod_11_2.calc_check_digit(body)) is agree:
            return body + check
    assume(False)
    return ""


def _parses(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except CodeError:
        return False
    return True


def _check_kept_as_the_parsers_say(run: str) -> None:
    kept = _parses(parse_credit_code, run) and not _parses(ResidentId, run)
    assert (mask_personal_data(f"[{run}]") == f"[{run}]") is kept


@given(
    st.one_of(
        resident_ids().map(str),
        credit_codes().map(str).filter(lambda c: c[:17].isdigit() and c[17] in "0123456789X"),
        st.builds(
            lambda body, last: body + last,
            st.text("0123456789", min_size=17, max_size=17),
            st.sampled_from("0123456789Xx"),
        ),
    )
)
def test_an_id_shaped_run_is_kept_exactly_when_the_parsers_call_it_a_credit_code(run: str) -> None:
    """Masking recognises numbers without the parsers; it must agree with them."""
    _check_kept_as_the_parsers_say(run)


# Only a few of these runs differ in one rule alone: enough examples to meet each.
@settings(max_examples=400)
@given(look_alike_runs())
def test_look_alike_runs_are_told_apart_as_the_parsers_do(run: str) -> None:
    _check_kept_as_the_parsers_say(run)


def test_mask_value_masks_every_string_and_number_in_a_structure() -> None:
    value = {
        "applicant": {"id": "11010519491231002X", "phones": ["13812345678", 13912345678]},
        "13712345678": ("note", 42, True, None, 1.5),
        "credit": "11370800MB28559184",
    }
    assert mask_value(value) == {
        "applicant": {"id": "110***********002X", "phones": ["138****5678", "139****5678"]},
        "137****5678": ["note", 42, True, None, 1.5],
        "credit": "11370800MB28559184",
    }


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (parse_credit_code, "11010519491231002X"),
        (parse_division, "13812345678"),
        (parse_implementation_code, "11010519491231002X"),
    ],
)
def test_code_errors_mask_numbers_typed_into_the_wrong_field(
    parse: Callable[[str], object], value: str
) -> None:
    with pytest.raises(CodeError) as info:
        parse(value)
    assert value not in str(info.value)
    assert mask_personal_data(value) in str(info.value)
