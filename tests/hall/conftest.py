from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zwfw.crypto.keystore import KEK_ENV, KEK_FILE_ENV, KeyEncryptionKey

from .support import Hall, running_hall


@pytest.fixture(autouse=True)
def hall_kek(monkeypatch: pytest.MonkeyPatch) -> KeyEncryptionKey:
    """The deployment's key-encryption key, fresh per test; the hall derives its personal-data
    keys from it."""
    kek = KeyEncryptionKey.generate()
    monkeypatch.delenv(KEK_FILE_ENV, raising=False)
    monkeypatch.setenv(KEK_ENV, kek.to_text())
    return kek


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Hall]:
    """A hall on a SQLite file with one published item."""
    with running_hall(f"sqlite:///{tmp_path / 'hall.sqlite3'}", tmp_path) as running:
        running.publish()
        yield running


@pytest.fixture
def any_hall(database_url: str, tmp_path: Path) -> Iterator[Hall]:
    """The same on SQLite and on PostgreSQL."""
    with running_hall(database_url, tmp_path) as running:
        running.publish()
        yield running
