"""Make the GB/T 38540 test vectors of this directory with tools that are not zwfw's.

Keys, certificates, SM2 signatures and SM3 digests come from the openssl command (OpenSSL 3:
`genpkey -algorithm SM2`, `req`/`ca` with `-sigopt distid:1234567812345678`, `pkeyutl -sign
-rawin -digest sm3`, `dgst -sm3`); the SES_Seal and SES_Signature structures are assembled
with the ASN.1 definitions below, written from the standard's text with asn1crypto and sharing
nothing with `zwfw.crypto.ses`. Every signature is checked with `openssl pkeyutl -verify`, and
every certificate with `openssl verify`, before anything is written.

    python tests/crypto/vectors/generate.py [--out DIR]

writes the certificates (PEM), the signed content, one SES_Signature per case (`<case>.der`)
and `cases.json`: each case's files and the outcome each of the five verification steps must
have. Private keys stay in a temporary directory and are discarded. SM2 signatures are
randomised, so every run makes different bytes with the same outcomes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import core

HERE = Path(__file__).resolve().parent
SM2_ID = "distid:1234567812345678"  # GM/T 0009 default signer ID, as GB/T 38540 uses
SM2_WITH_SM3 = "1.2.156.10197.1.501"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"  # a real algorithm, but not the one the standard names

# Fixed moments, so the vectors verify the same way whatever the day of the run.
TIME_INFO = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)
VERIFY_AT = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
CERTS_FROM, CERTS_TO = "20250101000000Z", "20350101000000Z"
ROOT_FROM, ROOT_TO = "20250101000000Z", "20450101000000Z"
SEAL_FROM = datetime(2025, 1, 1, tzinfo=UTC)
SEAL_TO = datetime(2030, 1, 1, tzinfo=UTC)

# A 1×1 PNG: the seal picture.
PICTURE = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f1f5b30000000049454e44ae426082"
)
CONTENT = "第三方 GB/T 38540 测试向量：被签名的文档内容。\n".encode()
OTHER_CONTENT = "第三方 GB/T 38540 测试向量：被篡改的文档内容。\n".encode()


# --- GB/T 38540-2020 (v4) ASN.1 -------------------------------------------------------------


class Header(core.Sequence):  # SES_Header
    _fields = [("id", core.IA5String), ("version", core.Integer), ("vid", core.IA5String)]


class Certs(core.SequenceOf):  # certs: SEQUENCE OF OCTET STRING (certListType 1)
    _child_spec = core.OctetString


class CertDigest(core.Sequence):  # CertDigestObj
    _fields = [("type", core.PrintableString), ("value", core.OctetString)]


class CertDigests(core.SequenceOf):  # certDigestList (certListType 2)
    _child_spec = CertDigest


class PropertyInfo(core.Sequence):  # SES_ESPropertyInfo
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),  # an untagged CHOICE told apart by certListType
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class PictureInfo(core.Sequence):  # SES_ESPictureInfo
    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class SealInfo(core.Sequence):  # SES_SealInfo (extDatas left out)
    _fields = [
        ("header", Header),
        ("es_id", core.IA5String),
        ("property", PropertyInfo),
        ("picture", PictureInfo),
    ]


class Seal(core.Sequence):  # SESeal
    _fields = [
        ("e_seal_info", SealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class ToSign(core.Sequence):  # TBS_Sign (extDatas left out)
    _fields = [
        ("version", core.Integer),
        ("eseal", Seal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
    ]


class Signature(core.Sequence):  # SES_Signature (timeStamp left out)
    _fields = [
        ("to_sign", ToSign),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
    ]


# --- openssl -----------------------------------------------------------------------------------

CA_CONFIG = """\
[ca]
default_ca = vectors
[vectors]
dir = .
database = ./index.txt
new_certs_dir = ./issued
serial = ./serial
default_md = sm3
policy = any
unique_subject = no
email_in_dn = no
[any]
commonName = supplied
organizationName = optional
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[req]
distinguished_name = dn
[dn]
"""


class OpenSSL:
    """The openssl command, run in a scratch directory that also holds the CA database."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir
        (workdir / "issued").mkdir()
        (workdir / "index.txt").write_text("")
        (workdir / "serial").write_text("1000\n")
        (workdir / "ca.cnf").write_text(CA_CONFIG)

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        result = subprocess.run(
            [self.binary, *args], cwd=self.dir, input=stdin, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(f"openssl {' '.join(args)} failed:\n{result.stderr.decode()}")
        return result.stdout

    def version(self) -> str:
        return self.run("version").decode().strip()

    def key(self, name: str) -> str:
        self.run("genpkey", "-algorithm", "SM2", "-out", f"{name}.key")
        self.run("pkey", "-in", f"{name}.key", "-pubout", "-out", f"{name}.pub")
        return name

    def certificate(
        self, name: str, subject: str, issuer: str | None, profile: str, start: str, end: str
    ) -> bytes:
        """Issue ``name``'s certificate (self-signed when ``issuer`` is None); returns its DER."""
        self.run(
            "req", "-new", "-config", "ca.cnf", "-key", f"{name}.key", "-subj", subject,
            "-sm3", "-sigopt", SM2_ID, "-out", f"{name}.csr",
        )  # fmt: skip
        signing = ["-selfsign", "-keyfile", f"{name}.key"]
        if issuer is not None:
            signing = ["-cert", f"{issuer}.pem", "-keyfile", f"{issuer}.key"]
        self.run(
            "ca", "-batch", "-config", "ca.cnf", *signing, "-in", f"{name}.csr",
            "-startdate", start, "-enddate", end, "-extensions", profile, "-md", "sm3",
            "-sigopt", SM2_ID, "-vfyopt", SM2_ID, "-notext", "-out", f"{name}.pem",
        )  # fmt: skip
        return self.run("x509", "-in", f"{name}.pem", "-outform", "DER")

    def check_chain(self, name: str, root: str, at: datetime, *, expect_ok: bool = True) -> None:
        result = subprocess.run(
            [self.binary, "verify", "-CAfile", f"{root}.pem", "-vfyopt", SM2_ID,
             "-attime", str(int(at.timestamp())), f"{name}.pem"],
            cwd=self.dir, capture_output=True, check=False,
        )  # fmt: skip
        if (result.returncode == 0) != expect_ok:
            raise SystemExit(f"openssl verify of {name}: {result.stdout!r} {result.stderr!r}")

    def sign(self, key: str, data: bytes) -> bytes:
        """SM2 signature (DER SEQUENCE {r, s}) over SM3(Z ‖ data), Z with the default ID."""
        (self.dir / "tbs.bin").write_bytes(data)
        signature = self.run(
            "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", f"{key}.key",
            "-pkeyopt", SM2_ID, "-in", "tbs.bin",
        )  # fmt: skip
        (self.dir / "signature.der").write_bytes(signature)
        self.run(
            "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", f"{key}.pub",
            "-pkeyopt", SM2_ID, "-in", "tbs.bin", "-sigfile", "signature.der",
        )  # fmt: skip
        return signature

    def sm3(self, data: bytes) -> bytes:
        return self.run("dgst", "-sm3", "-binary", stdin=data)


# --- assembling ------------------------------------------------------------------------------


@dataclass
class Parties:
    root: bytes
    maker: bytes
    signer: bytes
    other_signer: bytes
    expired_signer: bytes
    untrusted_maker: bytes


def _seal(
    openssl: OpenSSL,
    parties: Parties,
    *,
    maker: str = "maker",
    maker_cert: bytes | None = None,
    listed: tuple[bytes, ...] | None = None,
    by_digest: bool = False,
    version: int = 4,
    valid_start: datetime = SEAL_FROM,
    valid_end: datetime = SEAL_TO,
    algorithm: str = SM2_WITH_SM3,
    signed_name: str | None = None,
) -> Seal:
    certs = listed if listed is not None else (parties.signer, parties.expired_signer)
    if by_digest:
        cert_list: core.Asn1Value = CertDigests(
            [{"type": "SM3", "value": openssl.sm3(cert)} for cert in certs]
        )
    else:
        cert_list = Certs(list(certs))

    def info(name: str) -> SealInfo:
        return SealInfo(
            {
                "header": {"id": "ES", "version": version, "vid": "third-party vectors"},
                "es_id": "34000000000000000001",
                "property": {
                    "type": 1,
                    "name": name,
                    "cert_list_type": 2 if by_digest else 1,
                    "cert_list": core.Any.load(cert_list.dump()),
                    "create_date": SEAL_FROM,
                    "valid_start": valid_start,
                    "valid_end": valid_end,
                },
                "picture": {"type": "png", "data": PICTURE, "width": 40, "height": 40},
            }
        )

    sealed = info("第三方测试印章")
    # The maker's signature covers DER(SES_SealInfo); over other bytes it must not verify.
    signed = sealed if signed_name is None else info(signed_name)
    return Seal(
        {
            "e_seal_info": sealed,
            "cert": maker_cert if maker_cert is not None else parties.maker,
            "sign_alg_id": algorithm,
            "signed_value": openssl.sign(maker, signed.dump()),
        }
    )


def _signature(
    openssl: OpenSSL,
    seal: Seal,
    *,
    signer: str = "signer",
    signer_cert: bytes,
    version: int = 4,
    algorithm: str = SM2_WITH_SM3,
    signed_property: str | None = None,
) -> bytes:
    def tbs(property_info: str) -> ToSign:
        return ToSign(
            {
                "version": version,
                "eseal": seal,
                "time_info": TIME_INFO,
                "data_hash": openssl.sm3(CONTENT),
                "property_info": property_info,
            }
        )

    to_sign = tbs("/vectors/document.txt")
    # The signer's signature covers DER(TBS_Sign) exactly as sent.
    signed = to_sign if signed_property is None else tbs(signed_property)
    return Signature(
        {
            "to_sign": to_sign,
            "cert": signer_cert,
            "signature_alg_id": algorithm,
            "signature": openssl.sign(signer, signed.dump()),
        }
    ).dump()


PASS, SKIP = "passed", "skipped"


def _fail(code: str) -> str:
    return f"failed:{code}"


@dataclass
class Case:
    name: str
    description: str
    build: Callable[[OpenSSL, Parties], bytes]
    steps: tuple[str, str, str, str, str]
    content: str = "content.txt"


def _cases() -> list[Case]:
    def valid(o: OpenSSL, p: Parties) -> bytes:
        return _signature(o, _seal(o, p), signer_cert=p.signer)

    return [
        Case("valid", "well-formed signature, certificate list of full certificates",
             valid, (PASS, PASS, PASS, PASS, PASS)),
        Case("valid-cert-digests", "well-formed signature, certListType 2 (SM3 digests)",
             lambda o, p: _signature(o, _seal(o, p, by_digest=True), signer_cert=p.signer),
             (PASS, PASS, PASS, PASS, PASS)),
        Case("content-altered", "a valid signature, verified against other content",
             valid, (PASS, PASS, PASS, PASS, _fail("hash_mismatch")),
             content="other-content.txt"),
        Case("truncated", "the valid signature's DER without its last 16 bytes",
             lambda o, p: valid(o, p)[:-16],
             (_fail("malformed"), SKIP, SKIP, SKIP, SKIP)),
        Case("tbs-version-3", "TBS_Sign version 3 (v4 is required), correctly signed",
             lambda o, p: _signature(o, _seal(o, p), signer_cert=p.signer, version=3),
             (_fail("version"), PASS, PASS, PASS, PASS)),
        Case("seal-version-3", "SES_Header version 3, signed by the maker",
             lambda o, p: _signature(o, _seal(o, p, version=3), signer_cert=p.signer),
             (PASS, PASS, _fail("header"), PASS, PASS)),
        Case("signature-oid-ecdsa-sha256", "signatureAlgID ecdsa-with-SHA256 on an SM2 signature",
             lambda o, p: _signature(o, _seal(o, p), signer_cert=p.signer,
                                     algorithm=ECDSA_WITH_SHA256),
             (_fail("algorithm"), PASS, PASS, PASS, PASS)),
        Case("seal-oid-ecdsa-sha256", "the seal's signAlgID ecdsa-with-SHA256",
             lambda o, p: _signature(o, _seal(o, p, algorithm=ECDSA_WITH_SHA256),
                                     signer_cert=p.signer),
             (PASS, PASS, _fail("algorithm"), PASS, PASS)),
        Case("signature-over-other-bytes",
             "the signer signed a TBS_Sign with another propertyInfo than the one sent",
             lambda o, p: _signature(o, _seal(o, p), signer_cert=p.signer,
                                     signed_property="/vectors/other.txt"),
             (_fail("bad_signature"), PASS, PASS, PASS, PASS)),
        Case("seal-signed-over-other-bytes",
             "the maker signed an SES_SealInfo with another seal name than the one sent",
             lambda o, p: _signature(o, _seal(o, p, signed_name="另一枚印章"),
                                     signer_cert=p.signer),
             (PASS, PASS, _fail("bad_maker_signature"), PASS, PASS)),
        Case("signer-not-listed", "signed by a certificate the seal does not list",
             lambda o, p: _signature(o, _seal(o, p), signer="other-signer",
                                     signer_cert=p.other_signer),
             (PASS, _fail("signer_not_listed"), PASS, PASS, PASS)),
        Case("signer-not-listed-by-digest", "certListType 2 without the signer's digest",
             lambda o, p: _signature(o, _seal(o, p, by_digest=True), signer="other-signer",
                                     signer_cert=p.other_signer),
             (PASS, _fail("signer_not_listed"), PASS, PASS, PASS)),
        Case("seal-expired", "signed after the seal's validEnd",
             lambda o, p: _signature(o, _seal(o, p, valid_end=datetime(2026, 1, 1, tzinfo=UTC)),
                                     signer_cert=p.signer),
             (PASS, PASS, _fail("seal_expired"), PASS, PASS)),
        Case("seal-not-yet-valid", "signed before the seal's validStart",
             lambda o, p: _signature(
                 o, _seal(o, p, valid_start=datetime(2027, 1, 1, tzinfo=UTC)),
                 signer_cert=p.signer),
             (PASS, PASS, _fail("seal_not_yet_valid"), PASS, PASS)),
        Case("signer-certificate-expired",
             "listed signer whose certificate expired before timeInfo (2025-06-01)",
             lambda o, p: _signature(o, _seal(o, p), signer="expired-signer",
                                     signer_cert=p.expired_signer),
             (PASS, PASS, PASS, _fail("signer_expired"), PASS)),
        Case("maker-untrusted", "seal made under a root the verifier does not trust",
             lambda o, p: _signature(o, _seal(o, p, maker="untrusted-maker",
                                              maker_cert=p.untrusted_maker),
                                     signer_cert=p.signer),
             (PASS, PASS, _fail("maker_unknown_issuer"), PASS, PASS)),
    ]  # fmt: skip


def generate(out: Path, openssl_binary: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gbt38540-vectors-") as scratch:
        o = OpenSSL(openssl_binary, Path(scratch))
        for name in ("root", "maker", "signer", "other-signer", "expired-signer",
                     "untrusted-root", "untrusted-maker"):  # fmt: skip
            o.key(name)
        root = o.certificate("root", "/O=Vectors/CN=GBT 38540 vectors root", None, "root",
                             ROOT_FROM, ROOT_TO)  # fmt: skip
        o.certificate("untrusted-root", "/O=Elsewhere/CN=Untrusted root", None, "root",
                      ROOT_FROM, ROOT_TO)  # fmt: skip
        parties = Parties(
            root=root,
            maker=o.certificate("maker", "/O=Vectors/CN=Seal maker", "root", "leaf",
                                CERTS_FROM, CERTS_TO),
            signer=o.certificate("signer", "/O=Vectors/CN=Signer", "root", "leaf",
                                 CERTS_FROM, CERTS_TO),
            other_signer=o.certificate("other-signer", "/O=Vectors/CN=Other signer", "root",
                                       "leaf", CERTS_FROM, CERTS_TO),
            expired_signer=o.certificate("expired-signer", "/O=Vectors/CN=Expired signer",
                                         "root", "leaf", CERTS_FROM, "20250601000000Z"),
            untrusted_maker=o.certificate("untrusted-maker", "/O=Elsewhere/CN=Seal maker",
                                          "untrusted-root", "leaf", CERTS_FROM, CERTS_TO),
        )  # fmt: skip
        for name in ("maker", "signer", "other-signer"):
            o.check_chain(name, "root", TIME_INFO)
        o.check_chain("expired-signer", "root", TIME_INFO, expect_ok=False)
        o.check_chain("untrusted-maker", "untrusted-root", TIME_INFO)
        o.check_chain("untrusted-maker", "root", TIME_INFO, expect_ok=False)
        for name in ("root", "maker", "signer", "other-signer", "expired-signer",
                     "untrusted-maker"):  # fmt: skip
            shutil.copyfile(Path(scratch) / f"{name}.pem", out / f"{name}.pem")
        (out / "content.txt").write_bytes(CONTENT)
        (out / "other-content.txt").write_bytes(OTHER_CONTENT)
        cases = []
        for case in _cases():
            (out / f"{case.name}.der").write_bytes(case.build(o, parties))
            cases.append(
                {
                    "name": case.name,
                    "description": case.description,
                    "signature": f"{case.name}.der",
                    "content": case.content,
                    "steps": list(case.steps),
                }
            )
        document = {
            "made_with": o.version(),
            "trust_anchor": "root.pem",
            "time_info": TIME_INFO.isoformat(),
            "verify_at": VERIFY_AT.isoformat(),
            "step_names": ["signature", "signer_in_seal", "seal", "signer_certificate",
                           "data_hash"],
            "cases": cases,
        }  # fmt: skip
    (out / "cases.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    args = parser.parse_args(argv)
    document = generate(args.out, args.openssl)
    print(f"{len(document['cases'])} cases written to {args.out} ({document['made_with']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
