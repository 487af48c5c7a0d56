"""Ports for the reference platform's services: never the same one to two living processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zwfw.reference import national


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("claims")
    monkeypatch.setattr(national, "_PORT_CLAIMS", directory)
    return directory


def test_a_port_handed_out_is_claimed_and_not_handed_out_again(claims: Path) -> None:
    port = national.free_port()
    assert (claims / str(port)).read_text(encoding="ascii") == str(os.getpid())
    assert national._claim(port) is False
    assert len({national.free_port() for _ in range(200)} | {port}) == 201


def test_a_claim_holds_while_its_owner_lives(claims: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (claims / "40000").write_text(str(other.pid), encoding="ascii")
        assert national._claim(40000) is False
    finally:
        other.kill()
        other.wait()
    # Its owner has ended: the claim is void, and the port is ours now.
    assert national._claim(40000) is True
    assert (claims / "40000").read_text(encoding="ascii") == str(os.getpid())


def test_an_unfinished_claim_is_respected(claims: Path) -> None:
    (claims / "40001").write_text("", encoding="ascii")  # created, owner not yet written
    assert national._claim(40001) is False
