"""Signing keys (ES256) with rotation: retired keys stay published until their tokens expire."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, cast

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.models import SigningKey

ALGORITHM = "ES256"
_CONTEXT = "signing_key"
_KEYS = cast(Table, SigningKey.__table__)
_ACTIVE_KID = select(_KEYS.c.kid).where(_KEYS.c.active.is_(True)).order_by(_KEYS.c.created_at)


class KeyManager:
    def __init__(self, protector: FieldProtector, retire_after: float) -> None:
        self._protector = protector
        # Seconds a rotated-out key stays published: longest token life plus a grace period.
        self._retire_after = retire_after
        self._cache: dict[str, ECKey] = {}

    def _create(self, db: Session) -> SigningKey:
        key = ECKey.generate_key("P-256", parameters={"alg": ALGORITHM, "use": "sig"})
        kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
        private = key.as_dict(private=True)
        private["kid"] = kid
        public = key.as_dict(private=False)
        public.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
        row = SigningKey(
            kid=kid,
            private_jwk_enc=self._protector.encrypt(json.dumps(private), _CONTEXT),
            public_jwk=public,
            active=True,
        )
        db.add(row)
        db.flush()
        return row

    def active(self, db: Session) -> tuple[str, ECKey]:
        # The signer is looked up on every call (a rotation by another process takes effect at
        # once), but only its kid: the decrypted key is kept per kid.
        kid = db.execute(_ACTIVE_KID).scalar()
        if kid is not None and kid in self._cache:
            return kid, self._cache[kid]
        row = db.get(SigningKey, kid) if kid is not None else None
        if row is None:
            row = self._create(db)
        data = json.loads(self._protector.decrypt(row.private_jwk_enc, _CONTEXT))
        self._cache[row.kid] = ECKey.import_key(data)
        return row.kid, self._cache[row.kid]

    def rotate(self, db: Session) -> str:
        """Make a new key the signer; the old ones stay in the JWKS for `retire_after`."""
        until = time.time() + self._retire_after
        for row in db.scalars(select(SigningKey).where(SigningKey.active.is_(True))):
            row.active = False
            row.publish_until = until
        self._cache.clear()
        return self._create(db).kid

    def published(self, db: Session) -> list[dict[str, Any]]:
        now = time.time()
        rows = db.scalars(
            select(SigningKey)
            .where(
                or_(
                    SigningKey.active.is_(True),
                    SigningKey.publish_until > now,
                )
            )
            .order_by(SigningKey.created_at.desc())
        )
        return [dict(row.public_jwk) for row in rows]

    def jwks(self, db: Session) -> dict[str, Any]:
        if not self.published(db):
            self.active(db)
        return {"keys": self.published(db)}

    def key_set(self, db: Session) -> KeySet:
        return KeySet.import_key_set({"keys": self.jwks(db)["keys"]})

    def sign(self, db: Session, claims: dict[str, Any], typ: str = "JWT") -> str:
        kid, key = self.active(db)
        return jwt.encode({"alg": ALGORITHM, "kid": kid, "typ": typ}, claims, key)
