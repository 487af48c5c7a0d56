"""The identity service object: what one instance's routes share."""

from __future__ import annotations

import time
from collections import deque

from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.accounts import Accounts
from zwfw.services.identity.oauth import IdentityProvider
from zwfw.services.identity.settings import IdentitySettings


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
