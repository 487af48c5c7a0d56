"""Natural- and legal-person accounts, assurance levels, and 等保 level-3 password login."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.codes import CodeError, parse_credit_code
from zwfw.codes.personal import parse_resident_id
from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.events import Actor, record
from zwfw.services.identity.models import Account, LoginThrottle
from zwfw.services.identity.security import (
    CertificateError,
    PasswordHashing,
    PasswordPolicy,
    PasswordPolicyError,
    load_certificate,
    new_totp_secret,
    verify_totp,
)
from zwfw.services.identity.settings import IdentitySettings

# Real-name verification compares at least this many attributes, the ID number among them
# (DB61/T 1127-2018).
REAL_NAME_MIN_ATTRIBUTES = 3


class AccountError(ValueError):
    pass


class AccountConflict(AccountError):
    """The login name, resident ID number or credit code already has an account."""


class AccountIn(BaseModel):
    """A new natural- or legal-person account: the body of ``POST /admin/accounts``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "legal_person"]
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=200)
    id_number: str | None = Field(default=None, max_length=18)
    phone: str | None = Field(default=None, max_length=11)
    credit_code: str | None = Field(default=None, max_length=18)
    legal_representative: str | None = Field(default=None, max_length=200)
    certificate_pem: str | None = Field(default=None, max_length=20_000)


class LevelIn(BaseModel):
    """An assurance level change with what was verified: the body of
    ``POST /admin/accounts/{sub}/level``."""

    model_config = ConfigDict(extra="forbid")

    level: str
    verified_attributes: list[str] = Field(default=[], max_length=20)
    evidence_ref: str = Field(
        min_length=1, max_length=200, description="Reference of the verification record."
    )


@dataclass(frozen=True)
class LoginResult:
    outcome: Literal["ok", "invalid", "locked", "expired"]
    account: Account | None = None


class Accounts:
    def __init__(self, settings: IdentitySettings, protector: FieldProtector) -> None:
        self.settings = settings
        self.protector = protector
        self.policy = PasswordPolicy(
            min_length=settings.password_min_length,
            min_classes=settings.password_min_classes,
            max_age_days=settings.password_max_age_days,
        )
        self.hashing = PasswordHashing(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            parallelism=settings.password_hash_parallelism,
        )

    # --- creation ---------------------------------------------------------------------------

    def register(self, db: Session, body: AccountIn, *, actor: Actor | str) -> Account:
        """A natural or legal person's account as the admin API describes it, audited."""
        try:
            if body.kind == "person":
                account = self.create_person(
                    db,
                    username=body.username,
                    password=body.password,
                    name=body.name,
                    id_number=body.id_number,
                    phone=body.phone,
                )
            else:
                if not body.credit_code or not body.legal_representative:
                    raise AccountError("a legal person needs credit_code and legal_representative")
                account = self.create_legal_person(
                    db,
                    username=body.username,
                    password=body.password,
                    name=body.name,
                    credit_code=body.credit_code,
                    legal_representative=body.legal_representative,
                    certificate_pem=body.certificate_pem,
                    phone=body.phone,
                )
        except (PasswordPolicyError, CertificateError) as exc:
            raise AccountError(str(exc)) from None
        record(db, "admin.account.create", "success", actor=actor, subject=account.sub)
        return account

    def set_level(
        self, db: Session, account: Account, body: LevelIn, *, actor: Actor | str
    ) -> bool:
        """``change_level`` for the admin API, audited with its evidence; False when the
        account is at that level already."""
        previous = self.change_level(db, account, body.level, body.verified_attributes)
        if previous == body.level:
            return False
        record(
            db,
            "admin.account.level",
            "success",
            actor=actor,
            subject=account.sub,
            previous=previous,
            level=body.level,
            attributes=sorted(body.verified_attributes),
            evidence=body.evidence_ref,
        )
        return True

    def replace_totp(self, db: Session, account: Account, *, actor: Actor | str) -> str:
        """A new TOTP secret for the account (the previous one stops working), audited."""
        secret = self.enrol_totp(account)
        record(db, "admin.account.totp", "success", actor=actor, subject=account.sub)
        return secret

    def _check_new(self, db: Session, username: str, password: str) -> None:
        if not username or len(username) > 64:
            raise AccountError("login name must have 1 to 64 characters")
        if db.scalars(select(Account.id).where(Account.username == username)).first():
            raise AccountConflict(f"login name {username} is taken")
        self.policy.check(password, username=username)

    def create_person(
        self,
        db: Session,
        *,
        username: str,
        password: str,
        name: str,
        id_number: str | None = None,
        phone: str | None = None,
        is_admin: bool = False,
    ) -> Account:
        self._check_new(db, username, password)
        account = Account(
            sub=secrets.token_urlsafe(24),
            kind="person",
            username=username,
            password_hash=self.hashing.hash(password),
            password_changed_at=time.time(),
            name=name,
            level=self.settings.assurance_levels[0],
            region=self.settings.region_code,
            is_admin=is_admin,
        )
        if id_number:
            self._set_id_number(db, account, id_number)
        if phone:
            account.phone_enc = self.protector.encrypt(_check_phone(phone), "phone")
        db.add(account)
        db.flush()
        return account

    def create_legal_person(
        self,
        db: Session,
        *,
        username: str,
        password: str,
        name: str,
        credit_code: str,
        legal_representative: str,
        certificate_pem: str | None = None,
        phone: str | None = None,
    ) -> Account:
        self._check_new(db, username, password)
        try:
            code = str(parse_credit_code(credit_code))
        except CodeError as exc:
            raise AccountError(f"credit code: {exc}") from None
        if db.scalars(select(Account.id).where(Account.credit_code == code)).first():
            raise AccountConflict("a legal person with this credit code already has an account")
        if certificate_pem:
            load_certificate(certificate_pem)
        account = Account(
            sub=secrets.token_urlsafe(24),
            kind="legal_person",
            username=username,
            password_hash=self.hashing.hash(password),
            password_changed_at=time.time(),
            name=name,
            credit_code=code,
            legal_representative=legal_representative,
            certificate_pem=certificate_pem,
            level=self.settings.assurance_levels[0],
            region=self.settings.region_code,
        )
        if phone:
            account.phone_enc = self.protector.encrypt(_check_phone(phone), "phone")
        db.add(account)
        db.flush()
        return account

    def _set_id_number(self, db: Session, account: Account, id_number: str) -> None:
        try:
            parsed = parse_resident_id(id_number)
        except CodeError as exc:
            raise AccountError(f"resident ID number: {exc}") from None
        value = parsed.value
        lookup = self.protector.lookup(value, "id_number")
        owner = self.find_by_lookup(db, lookup)
        if owner is not None and owner is not account:
            raise AccountConflict("this resident ID number already has an account")
        account.id_number_enc = self.protector.encrypt(value, "id_number")
        account.id_lookup = lookup

    def find_by_lookup(self, db: Session, lookup: str) -> Account | None:
        return db.scalars(select(Account).where(Account.id_lookup == lookup)).first()

    def find_by_id_number(self, db: Session, id_number: str) -> Account | None:
        return self.find_by_lookup(db, self.protector.lookup(id_number.upper(), "id_number"))

    def by_sub(self, db: Session, sub: str) -> Account | None:
        return db.scalars(select(Account).where(Account.sub == sub)).first()

    def by_username(self, db: Session, username: str) -> Account | None:
        return db.scalars(select(Account).where(Account.username == username)).first()

    # --- assurance levels ---------------------------------------------------------------------

    def change_level(
        self, db: Session, account: Account, level: str, verified_attributes: list[str]
    ) -> str:
        """Move `account` to `level`; raising needs the verification evidence the level asks."""
        levels = self.settings.assurance_levels
        if level not in levels:
            raise AccountError(f"unknown assurance level {level!r}; levels are {levels}")
        target, current = levels.index(level), levels.index(account.level)
        if target > current:
            if target - current > 1:
                raise AccountError(f"{level} must follow {levels[target - 1]}")
            attributes = set(verified_attributes)
            if target == 1:
                if account.kind == "person" and "id_number" not in attributes:
                    raise AccountError("real-name verification must include the ID number")
                if account.kind == "person" and account.id_number_enc is None:
                    raise AccountError("the account has no ID number to verify")
                if len(attributes) < REAL_NAME_MIN_ATTRIBUTES:
                    raise AccountError(
                        f"real-name verification needs at least {REAL_NAME_MIN_ATTRIBUTES} "
                        "verified attributes"
                    )
            elif "face" not in attributes:
                raise AccountError(f"{level} needs a face verification result ('face')")
        previous = account.level
        account.level = level
        return previous

    # --- login --------------------------------------------------------------------------------

    def authenticate(self, db: Session, username: str, password: str) -> LoginResult:
        """Password check with lockout; unknown names behave exactly like known ones."""
        now = time.time()
        key = self.protector.lookup(username.lower(), "login")
        throttle = db.get(LoginThrottle, key)
        if throttle is None:
            throttle = LoginThrottle(name_hash=key, failures=0, locked_until=0.0)
            db.add(throttle)
        account = db.scalars(select(Account).where(Account.username == username)).first()
        usable = account if account is not None and not account.disabled else None
        ok = self.hashing.verify(usable.password_hash if usable else None, password)
        if throttle.locked_until > now:
            return LoginResult("locked")
        throttle.updated_at = now
        if not ok:
            throttle.failures += 1
            if throttle.failures >= self.settings.lockout_threshold:
                throttle.locked_until = now + self.settings.lockout_seconds
                throttle.failures = 0
                return LoginResult("locked")
            return LoginResult("invalid")
        throttle.failures = 0
        assert account is not None
        if self.hashing.needs_rehash(account.password_hash):
            account.password_hash = self.hashing.hash(password)
        if self.policy.expired(account.password_changed_at, now):
            return LoginResult("expired", account)
        return LoginResult("ok", account)

    def change_password(self, db: Session, account: Account, old: str, new: str) -> None:
        if not self.hashing.verify(account.password_hash, old):
            raise AccountError("the current password is wrong")
        if self.hashing.verify(account.password_hash, new):
            raise AccountError("the new password must differ from the current one")
        self.policy.check(new, username=account.username)
        account.password_hash = self.hashing.hash(new)
        account.password_changed_at = time.time()

    # --- second factors -------------------------------------------------------------------

    def enrol_totp(self, account: Account) -> str:
        secret = new_totp_secret()
        account.totp_secret_enc = self.protector.encrypt(secret, "totp")
        return secret

    def check_totp(self, account: Account, code: str) -> bool:
        if account.totp_secret_enc is None:
            return False
        return verify_totp(self.protector.decrypt(account.totp_secret_enc, "totp"), code)


def _check_phone(phone: str) -> str:
    if not (len(phone) == 11 and phone.isdigit() and phone.startswith("1")):
        raise AccountError("phone must be an 11-digit mainland mobile number")
    return phone
