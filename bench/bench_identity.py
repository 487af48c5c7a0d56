"""Identity service throughput on one worker process (`zwfw serve`, one uvicorn worker).

1. Client-credential token grants per second: private_key_jwt assertion checked (ES256,
   replay store), token signed (ES256), token row and audit record written. Baseline: the
   same grant's cryptography alone in-process (one ES256 verify plus one ES256 sign), the
   floor no implementation of this profile can go below.
2. Password logins per second: sign-in page fetched, credentials posted, argon2id verified,
   lockout counter and session written, audit recorded. Baseline: argon2id hashes per second
   with the same parameters, measured in the same run.

Keycloak's published sizing (about 120 client-credential grants/s and 15 password logins/s
per vCPU) is the reference these figures are read against.

The server process is pinned to one CPU (taskset) and the in-process baselines run pinned to
the same CPU; three client threads on the other CPUs keep the server busy.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from figure import Figure, rate
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.services.identity import IdentitySettings, build
from zwfw.services.identity.accounts import AccountIn
from zwfw.services.identity.clients import ClientIn, register_client
from zwfw.services.identity.security import PasswordHashing
from zwfw.services.kit import load_settings, migrate

PASSWORD = "Bench-Mark-Passw0rd"
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENTS = 3
SECONDS = 5.0
SERVER_CPU = 0


def _pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def _on_one_cpu(fn: Callable[[], float]) -> float:
    """Run an in-process baseline on the server's CPU, so both sides get one core."""
    if not hasattr(os, "sched_setaffinity"):
        return fn()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CPU})
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, before)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assertion(key: ECKey, audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "bench",
        "sub": "bench",
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def _load(call: Callable[[httpx.Client], None], base: str) -> float:
    """Completed calls per second with CLIENTS threads for SECONDS."""
    done = [0] * CLIENTS
    stop = time.perf_counter() + SECONDS
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            call(client)  # warm-up, not counted
            while time.perf_counter() < stop:
                try:
                    call(client)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return
                done[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.perf_counter() - started)


def _server(directory: Path, key: ECKey) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = directory / "identity.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "public_base_url": url,
                "port": port,
                "database_url": f"sqlite:///{directory / 'identity.sqlite3'}",
                "data_key": os.urandom(16).hex(),
                "lookup_key": os.urandom(32).hex(),
                "secure_cookies": False,
                "log_level": "WARNING",
                # The per-address limits would throttle the benchmark's single address.
                "login_rate_per_minute": 10**9,
                "token_rate_per_minute": 10**9,
            }
        )
    )
    app = build(load_settings(IdentitySettings, config))
    migrate(app)
    with app.state.kit.sessions.begin() as db:
        register_client(
            db,
            ClientIn(
                client_id="bench",
                name="bench",
                auth_method="private_key_jwt",
                jwks={"keys": [key.as_dict(private=False)]},
                grant_types=["client_credentials"],
                scopes=["hub:sync"],
            ),
            actor="bench",
        )
        for n in range(CLIENTS + 1):
            app.state.identity.accounts.register(
                db,
                AccountIn(kind="person", username=f"user{n}", password=PASSWORD, name="测试"),
                actor="bench",
            )
    app.state.kit.engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
    zwfw = str(Path(sys.executable).with_name("zwfw"))
    process = subprocess.Popen(
        [
            *_pinned(SERVER_CPU),
            zwfw,
            "serve",
            "zwfw.services.identity:SERVICE",
            "--config",
            str(config),
            "--workers",
            "1",
        ],
        env=env,
        stdout=open("/tmp/bench-identity-server.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the identity service did not start")


def figures() -> list[Figure]:
    key = ECKey.generate_key("P-256", parameters={"kid": "bench-1"})
    with tempfile.TemporaryDirectory() as tmp:
        process, url = _server(Path(tmp), key)
        try:
            token_url = url + "/token"

            def grant(client: httpx.Client) -> None:
                response = client.post(
                    "/token",
                    data={
                        "grant_type": "client_credentials",
                        "scope": "hub:sync",
                        "client_assertion_type": ASSERTION,
                        "client_assertion": _assertion(key, token_url),
                    },
                )
                assert response.status_code == 200, response.text

            users = iter(range(CLIENTS + 1))
            local = threading.local()
            lock = threading.Lock()

            def login(client: httpx.Client) -> None:
                if not hasattr(local, "user"):
                    with lock:
                        local.user = f"user{next(users)}"
                client.cookies.clear()
                page = client.get("/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert csrf, page.text
                response = client.post(
                    "/login",
                    data={"csrf": csrf.group(1), "username": local.user, "password": PASSWORD},
                )
                assert response.status_code == 303, response.text

            grants_per_second = _load(grant, url)
            logins_per_second = _load(login, url)
        finally:
            process.terminate()
            process.wait(timeout=15)

    signer = ECKey.generate_key("P-256")
    sample = jwt.encode({"alg": "ES256"}, {"sub": "x"}, signer)

    def crypto_floor() -> None:
        jwt.decode(sample, signer, algorithms=["ES256"])
        jwt.encode({"alg": "ES256"}, {"sub": "x", "n": secrets.token_hex(4)}, signer)

    fields = IdentitySettings.model_fields
    # The service's own hashing with its default cost: what every login above paid.
    hashing = PasswordHashing(
        memory_kib=fields["password_hash_memory_kib"].default,
        time_cost=fields["password_hash_time_cost"].default,
        parallelism=fields["password_hash_parallelism"].default,
    )
    return [
        Figure(
            "client-credential token grants (1 worker, HTTP)",
            grants_per_second,
            "grants/s",
            "ES256 verify + sign in-process, one CPU (the grant's crypto floor)",
            _on_one_cpu(lambda: rate(crypto_floor, seconds=2.0)),
        ),
        Figure(
            "password logins (1 worker, HTTP, argon2id)",
            logins_per_second,
            "logins/s",
            "argon2id hashes in-process, one CPU (same parameters)",
            _on_one_cpu(lambda: rate(lambda: hashing.hash(PASSWORD), seconds=2.0, min_calls=10)),
        ),
    ]


if __name__ == "__main__":
    print(json.dumps([f.as_dict() for f in figures()], indent=2, ensure_ascii=False))
