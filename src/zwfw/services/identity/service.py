"""The identity service object: what one instance's routes share."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.accounts import Accounts
from zwfw.services.identity.clients import sync_provisioning_clients
from zwfw.services.identity.oauth import IdentityProvider
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.identity.trust import seed_trust_list

log = logging.getLogger("zwfw.identity")


class RateLimiter:
    """Sliding one-minute window per client address."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] < now - 60:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True


class IdentityService:
    """Everything one instance needs, shared by its routes."""

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self.protector = FieldProtector(
            bytes.fromhex(settings.data_key), bytes.fromhex(settings.lookup_key)
        )
        self.provider = IdentityProvider(settings, self.protector)
        self.accounts = Accounts(settings, self.protector)
        self.login_limit = RateLimiter(settings.login_rate_per_minute)
        self.token_limit = RateLimiter(settings.token_rate_per_minute)
        self._provisioned = False
        self._provisioning = threading.Lock()

    def provision(self, sessions: sessionmaker[Session]) -> None:
        """Once per process: add the settings' trust list entries the database lacks, and bring
        the provisioning clients in line with the settings (see ``clients``)."""
        with self._provisioning:
            if self._provisioned:
                return
            try:
                outcome = self._provision(sessions)
            except IntegrityError:
                # Another replica registered the same rows at the same moment; its work stands.
                outcome = self._provision(sessions)
            self._provisioned = True
        changed = {client_id: r for client_id, r in outcome.items() if r != "unchanged"}
        if changed:
            log.info("provisioning clients brought in line with the settings: %s", changed)

    def _provision(self, sessions: sessionmaker[Session]) -> dict[str, str]:
        with sessions.begin() as db:
            seed_trust_list(db, self.settings)
            return dict(sync_provisioning_clients(db, self.settings))
