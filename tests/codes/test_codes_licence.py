from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.iso7064 import mod_37_36

from zwfw.codes import CodeError, LicenceIdentifier, build_licence_id, parse_licence_id
from zwfw.codes.licence import ROOT, check_character

from .strategies import licence_ids

REGION_ISSUER_SAMPLE = "1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9"
PRINTABLE = [chr(c) for c in range(0x21, 0x7F)] + [" ", "é", "０"]


def built() -> LicenceIdentifier:
    return build_licence_id("11100000000013338W011", "11430000006122244L", "20230000403", "001")


def test_sample_check_character_is_9_over_its_parts() -> None:
    assert check_character("11100000MB03271699022", "340100", "000000016", "001") == "9"


def test_region_code_issuer_is_rejected_as_not_a_credit_code() -> None:
    with pytest.raises(CodeError) as info:
        parse_licence_id(REGION_ISSUER_SAMPLE)
    assert "issuer code '340100' is not a credit code" in info.value.reason
    assert info.value.position == REGION_ISSUER_SAMPLE.index("340100")


def test_build_then_parse() -> None:
    identifier = built()
    assert str(identifier).startswith(ROOT + ".11100000000013338W011.11430000006122244L.")
    assert parse_licence_id(str(identifier)) == identifier
    assert identifier.serial == "20230000403"
    assert identifier.version == "001"
    assert str(identifier.issuer) == "11430000006122244L"
    assert str(identifier.defining_authority) == "11100000000013338W"
    assert identifier.parts()["type number"] == "011"
    # The check covers the fields without dots or root, per GB/T 36904.
    assert mod_37_36.is_valid(
        "11100000000013338W01111430000006122244L20230000403001" + identifier.check
    )


def test_lower_case_input_is_canonicalised() -> None:
    identifier = build_licence_id("11100000000013338W011", "11430000006122244L", "ab12cd", 7)
    assert identifier.serial == "AB12CD"
    assert identifier.version == "007"
    assert parse_licence_id(str(identifier).lower()) == identifier


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            "1.2.156.3003.2.11100000MB03271699022.11430000006122244L.1.001.0",
            "root is '1.2.156.3003.2', expected '1.2.156.3005.2'",
        ),
        (
            "1.2.156.3005.11100000MB03271699022.11430000006122244L.1.001.0",
            "root is '1.2.156.3005.11100000MB03271699022'",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L.001.0",
            "expected 5 fields after the root",
        ),
        (
            "1.2.156.3005.2.11100000MB0327169902.11430000006122244L.1.001.0",
            "type code is 21 characters",
        ),
        (
            "1.2.156.3005.2.11100000MB0327169X022.11430000006122244L.1.001.0",
            "type code: defining authority is not a valid credit code: check character is 'X'",
        ),
        (
            "1.2.156.3005.2.11100000MB0327169902A.11430000006122244L.1.001.0",
            "type code ends in 3 digits",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244K.1.001.0",
            "issuer code is not a valid credit code: check character is 'K', expected 'L'",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L..001.0",
            "serial is 0 characters",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L." + "1" * 33 + ".001.0",
            "serial is 33 characters, expected 1-32",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L.1.01.0",
            "version is '01', expected 3 digits",
        ),
        ("1.2.156.3005.2.11100000MB03271699022.11430000006122244L.1.00A.0", "version is '00A'"),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L.1.001.",
            "check character field is 0 characters",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L.1-2.001.0",
            "illegal character '-' at position",
        ),
        (
            "1.2.156.3005.2.11100000MB03271699022.11430000006122244L.1 2.001.0",
            "embedded whitespace",
        ),
        ("", "empty value"),
    ],
)
def test_errors(value: str, reason: str) -> None:
    with pytest.raises(CodeError) as info:
        parse_licence_id(value)
    assert info.value.kind == "licence-id"
    assert reason in info.value.reason


def test_wrong_check_character_names_got_and_expected() -> None:
    good = str(built())
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(CodeError) as info:
        parse_licence_id(bad)
    assert info.value.reason == f"check character is '{bad[-1]}', expected '{good[-1]}'"
    assert info.value.position == len(good) - 1


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        ({"type_code": "11100000000013338W01"}, "type code is 21 characters"),
        ({"issuer_code": "340100"}, "issuer code '340100' is not a credit code"),
        ({"serial": "a.b"}, "serial must not contain '.'"),
        ({"serial": ""}, "serial is empty"),
        ({"serial": "12/3"}, "illegal character '/'"),
        ({"version": "1"}, "version is '1', expected 3 digits"),
        ({"version": 1000}, "version is '1000'"),
    ],
)
def test_build_rejects_bad_parts(part: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {
        "type_code": "11100000000013338W011",
        "issuer_code": "11430000006122244L",
        "serial": "20230000403",
        "version": "001",
        **part,
    }
    with pytest.raises(CodeError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        build_licence_id(**args)  # type: ignore[arg-type]


def test_every_single_substitution_of_a_built_identifier_is_rejected() -> None:
    value = str(built())
    for position in range(len(value)):
        for char in PRINTABLE:
            if char.upper() == value[position].upper():
                continue
            with pytest.raises(CodeError):
                parse_licence_id(value[:position] + char + value[position + 1 :])


@given(licence_ids())
def test_every_built_identifier_validates(identifier: LicenceIdentifier) -> None:
    assert parse_licence_id(str(identifier)) == identifier
    assert mod_37_36.is_valid(str(identifier)[len(ROOT) + 1 :].replace(".", ""))


@given(licence_ids(), st.data())
def test_any_single_substitution_is_caught(
    identifier: LicenceIdentifier, data: st.DataObject
) -> None:
    value = str(identifier)
    position = data.draw(st.integers(0, len(value) - 1))
    char = data.draw(st.sampled_from(PRINTABLE).filter(lambda c: c.upper() != value[position]))
    with pytest.raises(CodeError):
        parse_licence_id(value[:position] + char + value[position + 1 :])


@given(licence_ids(), st.data())
def test_any_adjacent_transposition_is_caught(
    identifier: LicenceIdentifier, data: st.DataObject
) -> None:
    value = str(identifier)
    i = data.draw(st.integers(0, len(value) - 2).filter(lambda k: value[k] != value[k + 1]))
    with pytest.raises(CodeError):
        parse_licence_id(value[:i] + value[i + 1] + value[i] + value[i + 2 :])
