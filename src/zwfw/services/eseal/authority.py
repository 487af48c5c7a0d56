"""The seal authority: its root CA and seal-maker key, generated on first start, and the
encrypted key store every e-seal private key lives in.

Keys are stored in the ``eseal_key`` table wrapped with SM4-GCM under the KEK
(``zwfw.crypto.keystore``). The blob store is bound to a SQLAlchemy session, so a key made
while a seal is registered is stored in the same transaction as the seal (all or nothing),
and reading a key during a request never opens a second write transaction (SQLite takes its
write lock at ``BEGIN``). Unwrapped keys are kept in process memory after first use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from zwfw.crypto.keystore import (
    EncryptedKeyStore,
    KeyEncryptionKey,
    KeyExistsError,
    KeyNotFoundError,
)
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile, SM2Certificate
from zwfw.services.eseal.models import Authority, KeyBlob
from zwfw.services.eseal.settings import EsealSettings

log = logging.getLogger("zwfw.eseal")

ROOT_KEY_ID = "authority-root"
MAKER_KEY_ID = "authority-maker"


class SessionBlobStore(MutableMapping[str, bytes]):
    """``eseal_key`` rows as a blob store inside one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __getitem__(self, key: str) -> bytes:
        row = self.session.get(KeyBlob, key)
        if row is None:
            raise KeyError(key)
        return bytes(row.blob)

    def __setitem__(self, key: str, value: bytes) -> None:
        row = self.session.get(KeyBlob, key)
        if row is None:
            self.session.add(KeyBlob(key_id=key, blob=value))
        else:
            row.blob = value
        self.session.flush()

    def __delitem__(self, key: str) -> None:
        row = self.session.get(KeyBlob, key)
        if row is None:
            raise KeyError(key)
        self.session.delete(row)
        self.session.flush()

    def __iter__(self) -> Iterator[str]:
        return iter(self.session.scalars(select(KeyBlob.key_id).order_by(KeyBlob.key_id)).all())

    def __len__(self) -> int:
        return len(list(iter(self)))


class Keys:
    """Signing keys of the seal authority, maker and signers, by key id."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self.kek = kek
        self._cache: dict[str, SM2PrivateKey] = {}
        self._lock = threading.Lock()

    def store(self, session: Session) -> EncryptedKeyStore:
        return EncryptedKeyStore(SessionBlobStore(session), self.kek, cache=False)

    def put(self, session: Session, key_id: str, key: SM2PrivateKey) -> None:
        self.store(session).put(key_id, key)

    def get(self, session: Session, key_id: str) -> SM2PrivateKey:
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        key = self.store(session).get(key_id)
        with self._lock:
            self._cache[key_id] = key
        return key


@dataclass(frozen=True)
class SealAuthority:
    root: SM2Certificate
    maker: SM2Certificate
    root_key_id: str
    maker_key_id: str

    def ca(self, keys: Keys, session: Session) -> CertificateAuthority:
        return CertificateAuthority(self.root, keys.get(session, self.root_key_id))


def _load(row: Authority) -> SealAuthority:
    return SealAuthority(
        root=SM2Certificate.from_der(row.root_cert),
        maker=SM2Certificate.from_der(row.maker_cert),
        root_key_id=row.root_key_id,
        maker_key_id=row.maker_key_id,
    )


def ensure_authority(
    sessions: sessionmaker[Session], keys: Keys, settings: EsealSettings
) -> SealAuthority:
    """Load the authority, creating its root CA and maker certificate on first start.

    Concurrent first starts (several workers) race on the row's primary key, or on the key
    ids when the winner committed first: the loser's transaction, keys included, rolls back
    and it loads the winner's authority.
    """
    with sessions.begin() as session:
        row = session.get(Authority, 1)
        if row is not None:
            return _load(row)
    now = datetime.now(UTC)
    # Back-dated a day so seals valid from "today" and clocks a little behind are covered.
    since = now - timedelta(days=1)
    ca = CertificateAuthority.create_root(
        f"{settings.authority_name} 根证书",
        organization=settings.authority_organisation,
        valid_from=since,
        valid_days=settings.root_valid_days,
    )
    maker_key = SM2PrivateKey.generate()
    maker = ca.issue(
        maker_key.public_key,
        f"{settings.authority_name} 制章者",
        CertProfile.SEAL_MAKER,
        organization=settings.authority_organisation,
        valid_from=since,
        valid_days=settings.maker_valid_days,
    )
    try:
        with sessions.begin() as session:
            keys.put(session, ROOT_KEY_ID, ca.key)
            keys.put(session, MAKER_KEY_ID, maker_key)
            session.add(
                Authority(
                    id=1,
                    root_cert=ca.certificate.der,
                    maker_cert=maker.der,
                    root_key_id=ROOT_KEY_ID,
                    maker_key_id=MAKER_KEY_ID,
                    created_at=now,
                )
            )
    except (IntegrityError, KeyExistsError):
        with sessions.begin() as session:
            row = session.get(Authority, 1)
            if row is None:
                raise
            return _load(row)
    log.info(
        "seal authority created",
        extra={"root_sm3": ca.certificate.fingerprint.hex(), "maker_sm3": maker.fingerprint.hex()},
    )
    return SealAuthority(ca.certificate, maker, ROOT_KEY_ID, MAKER_KEY_ID)


__all__ = [
    "MAKER_KEY_ID",
    "ROOT_KEY_ID",
    "KeyNotFoundError",
    "Keys",
    "SealAuthority",
    "SessionBlobStore",
    "ensure_authority",
]
