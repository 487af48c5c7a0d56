"""密评 (GB/T 39786-2021 level 3) checks of the security suite that the services' public
declarations allow: the e-seal register's seals, their makers' and signers' certificates and
the trust certificates it publishes must be SM2 with SM3 (SEC-CRY-001). What only documents
or the hosts can show is a requirement of its own with manual evidence (SEC-CRY-002)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from zwfw.crypto.hashing import sm3_hex
from zwfw.crypto.ses import SealError, parse_seal
from zwfw.crypto.sm2 import OID_SM2_WITH_SM3
from zwfw.crypto.x509 import CertificateError, SM2Certificate, load_pem_bundle

# (failure mode of SEC-CRY-001, what was seen)
Finding = tuple[str, str]


def certificate_findings(pem_text: str, what: str) -> list[Finding]:
    """A PEM certificate that is not SM2 keyed and SM2-with-SM3 signed."""
    try:
        load_pem_bundle(pem_text.encode())
    except CertificateError as error:
        return [("certificate-not-sm2", f"{what}: {error}")]
    return []


def signer_findings(signer: Mapping[str, Any], where: str) -> list[Finding]:
    """A seal signer's certificate (SM2) and its declared SM3 fingerprint."""
    what = f"{where} signer {signer.get('subject', '?')}"
    pem_text = str(signer.get("certificate") or "")
    found = certificate_findings(pem_text, what)
    if found:
        return found
    der = bytes(load_pem_bundle(pem_text.encode())[0].asn1.dump())
    declared = str(signer.get("sm3_fingerprint") or "").lower()
    if declared != sm3_hex(der):
        return [("fingerprint-not-sm3", f"{what}: fingerprint {declared or 'missing'} is not SM3")]
    return []


def seal_findings(seal: Mapping[str, Any]) -> list[Finding]:
    """One seal of the register: the maker's signature over it is SM2-with-SM3, the maker's
    certificate inside it is SM2, and so are its signers' certificates."""
    where = f"seal {seal.get('es_id', '?')}"
    try:
        parsed = parse_seal(base64.b64decode(str(seal.get("seal") or ""), validate=True))
    except (SealError, binascii.Error, ValueError) as error:
        return [("seal-not-sm2", f"{where}: not a GB/T 38540 seal: {error}")]
    found: list[Finding] = []
    algorithm = parsed["sign_alg_id"].dotted
    if algorithm != OID_SM2_WITH_SM3:
        found.append(("seal-not-sm2", f"{where}: signed with {algorithm}, not SM2-with-SM3"))
    try:
        SM2Certificate.from_der(parsed["cert"].native)
    except CertificateError as error:
        found.append(("certificate-not-sm2", f"{where} maker certificate: {error}"))
    for signer in seal.get("signers") or []:
        found += signer_findings(signer, where)
    return found


def register_findings(trust: Mapping[str, Any], seals: list[Mapping[str, Any]]) -> list[Finding]:
    """The e-seal register's published trust certificates and every seal it lists."""
    found = [
        *certificate_findings(str(trust.get("root_certificate") or ""), "root certificate"),
        *certificate_findings(str(trust.get("maker_certificate") or ""), "maker certificate"),
    ]
    for seal in seals:
        found += seal_findings(seal)
    return found
