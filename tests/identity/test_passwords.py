"""Password storage and policy (等保 level 3: complex, regularly changed credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import extract_parameters
from sqlalchemy import select

from zwfw.services.identity.models import Account
from zwfw.services.identity.security import PasswordPolicy, PasswordPolicyError

from .support import PASSWORD, add_person, started


def _stored(idp, username: str = "zhangsan") -> str:  # noqa: ANN001
    with idp.db() as db:
        return db.scalars(select(Account.password_hash).where(Account.username == username)).one()


def test_passwords_are_stored_as_argon2id_with_the_configured_cost(tmp_path: Path) -> None:
    with started(tmp_path, password_hash_memory_kib=8192, password_hash_time_cost=3) as idp:
        add_person(idp)
        stored = _stored(idp)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    parameters = extract_parameters(stored)
    assert (parameters.memory_cost, parameters.time_cost) == (8192, 3)


def test_a_changed_cost_upgrades_the_hash_at_the_next_sign_in(tmp_path: Path) -> None:
    with started(tmp_path, password_hash_memory_kib=8192) as idp:
        add_person(idp)
        old = _stored(idp)
        database = idp.settings.database_url
        data_key, lookup_key = idp.settings.data_key, idp.settings.lookup_key
    with started(
        tmp_path,
        database_url=database,
        data_key=data_key,
        lookup_key=lookup_key,
        password_hash_memory_kib=16384,
    ) as idp:
        with idp.db() as db:
            assert idp.svc.accounts.authenticate(db, "zhangsan", "wrong-Pass-word-1").outcome == (
                "invalid"
            )
        assert _stored(idp) == old, "a failed sign-in must not touch the stored hash"
        with idp.db() as db:
            assert idp.svc.accounts.authenticate(db, "zhangsan", PASSWORD).outcome == "ok"
        upgraded = _stored(idp)
    assert extract_parameters(upgraded).memory_cost == 16384
    assert upgraded != old


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt!", "at least 12 characters"),
        ("alllowercaseletters", "mix at least 3"),
        ("Zhangsan-2024-secret", "must not contain the login name"),
    ],
)
def test_password_policy_refusals(password: str, reason: str) -> None:
    with pytest.raises(PasswordPolicyError, match=reason):
        PasswordPolicy().check(password, username="zhangsan")


def test_password_expiry() -> None:
    policy = PasswordPolicy(max_age_days=90)
    assert not policy.expired(changed_at=0, now=89 * 86400)
    assert policy.expired(changed_at=0, now=91 * 86400)
