"""Hypothesis strategies for valid domain codes, shared by the codes tests."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from zwfw.codes import CreditCode, LicenceIdentifier, build_credit_code, build_licence_id
from zwfw.codes.credit import ALPHABET
from zwfw.codes.personal import ResidentId, build_resident_id
from zwfw.codes.tables import PROVINCES, REGISTRATION_AUTHORITIES

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@st.composite
def credit_codes(draw: st.DrawFn) -> CreditCode:
    authority = draw(st.sampled_from(sorted(REGISTRATION_AUTHORITIES)))
    institution = draw(st.sampled_from(sorted(REGISTRATION_AUTHORITIES[authority][1])))
    division = draw(st.text("0123456789", min_size=6, max_size=6))
    subject = draw(st.text(ALPHABET, min_size=9, max_size=9))
    return build_credit_code(authority + institution + division + subject)


@st.composite
def licence_ids(draw: st.DrawFn) -> LicenceIdentifier:
    type_code = str(draw(credit_codes())) + draw(st.text("0123456789", min_size=3, max_size=3))
    issuer = str(draw(credit_codes()))
    serial = draw(st.text(ALNUM, min_size=1, max_size=32))
    version = draw(st.integers(0, 999))
    return build_licence_id(type_code, issuer, serial, version)


@st.composite
def resident_ids(draw: st.DrawFn) -> ResidentId:
    division = draw(st.sampled_from(sorted(PROVINCES))) + draw(
        st.text("0123456789", min_size=4, max_size=4)
    )
    born = draw(st.dates(date(1900, 1, 1), date.today()))
    return build_resident_id(division, born, draw(st.integers(0, 999)))
