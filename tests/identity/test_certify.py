"""The identity conformance suite, run by `zwfw certify` against a locally started instance:
the reference implementation passes every IC-ID-* and SEC-AUTH-* requirement."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from zwfw.services.identity.accounts import AccountIn
from zwfw.services.identity.clients import ClientIn, register_client
from zwfw.services.identity.service import IdentityService

from .processes import ZWFW, running, seed, write_config
from .support import PASSWORD, SEEDER

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
NATIONAL = "https://national-idp.certification.test"
REDIRECT = "https://rp.certification.test/cb"
SIGNED_OUT = "https://rp.certification.test/signed-out"
REQUIREMENTS = [f"IC-ID-{n:03d}" for n in range(1, 17)] + [f"SEC-AUTH-00{n}" for n in (1, 2, 3)]
CHECKOUT = Path(__file__).resolve().parents[2]


def test_reference_idp_passes_the_identity_suite(tmp_path: Path) -> None:
    system_key = ECKey.generate_key("P-256", parameters={"kid": "conformance-system-1"})
    national_key = ECKey.generate_key("P-256", parameters={"kid": "national-1"})
    config, _ = write_config(
        tmp_path,
        "province",
        trust_list=[{"issuer": NATIONAL, "jwks": {"keys": [national_key.as_dict(private=False)]}}],
    )

    def setup(svc: IdentityService, db: Session) -> None:
        for username, id_number in (
            ("cert-user", "11010519491231002X"),
            ("cert-lockout", "340104198001010012"),
        ):
            svc.accounts.register(
                db,
                AccountIn(
                    kind="person",
                    username=username,
                    password=PASSWORD,
                    name="测试用户",
                    id_number=id_number,
                    phone="13812345678",
                ),
                actor=SEEDER,
            )
        register_client(
            db,
            ClientIn(
                client_id="conformance-rp",
                name="认证测试应用",
                auth_method="none",
                redirect_uris=[REDIRECT],
                post_logout_redirect_uris=[SIGNED_OUT],
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "profile", "phone"],
            ),
            actor=SEEDER,
        )
        register_client(
            db,
            ClientIn(
                client_id="conformance-system",
                name="认证测试系统",
                auth_method="private_key_jwt",
                jwks={"keys": [system_key.as_dict(private=False)]},
                grant_types=["client_credentials", EXCHANGE],
                scopes=["openid"],
            ),
            actor=SEEDER,
        )

    seed(config, setup)
    values = {
        "identity_rp_client_id": "conformance-rp",
        "identity_rp_redirect_uri": REDIRECT,
        "identity_rp_post_logout_redirect_uri": SIGNED_OUT,
        "identity_user": "cert-user",
        "identity_password": PASSWORD,
        "identity_lockout_user": "cert-lockout",
        "identity_lockout_password": PASSWORD,
        "identity_client_id": "conformance-system",
        "identity_client_key": json.dumps(system_key.as_dict(private=True)),
        "federation_issuer": NATIONAL,
        "federation_issuer_key": json.dumps(national_key.as_dict(private=True)),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_")}
    env.update({f"CERT_{name.upper()}": value for name, value in values.items()})
    with running(config) as idp:
        profile = tmp_path / "target.yaml"
        profile.write_text(
            yaml.safe_dump(
                {
                    "name": "Reference identity service",
                    "region_code": "340000",
                    "services": {"identity": idp.url},
                    "credentials": {name: {"env": f"CERT_{name.upper()}"} for name in values},
                    # In the instance's database, as from inside its container.
                    "operations": {
                        "rotate_signing_key": {
                            "run": shlex.join(
                                [ZWFW, "identity", "keys", "rotate", "--config", str(config)]
                            )
                        }
                    },
                }
            ),
            encoding="utf-8",
        )
        out = tmp_path / "out"
        run = subprocess.run(
            [ZWFW, "certify", "--target", str(profile), "--out", str(out)]
            + ["--suites", "conformance/identity"],
            env=env,
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    # Only the identity suite ran, so other MUST requirements stay untested (exit 1).
    assert run.returncode in (0, 1), run.stdout + run.stderr
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    status = {r["id"]: (r["status"], r["reason"]) for r in document["requirements"]}
    failing = {rid: status[rid] for rid in REQUIREMENTS if status[rid][0] != "pass"}
    assert not failing, run.stdout
    for secret in (PASSWORD, values["identity_client_key"]):
        assert secret not in run.stdout
        assert secret not in (out / "results.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("missing", ["identity_client_key"])
def test_unreachable_identity_is_a_configuration_error(tmp_path: Path, missing: str) -> None:
    profile = tmp_path / "target.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "No identity credentials",
                "region_code": "340000",
                # Nothing listens here: no verdict can be given about this target.
                "services": {"identity": "http://127.0.0.1:9"},
                "credentials": {missing: {"env": "CERT_UNSET_VARIABLE"}},
                "timeout_seconds": 2,
            }
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "CERT_UNSET_VARIABLE"}
    run = subprocess.run(
        [ZWFW, "certify", "--target", str(profile), "--out", str(tmp_path / "out")]
        + ["--suites", "conformance/identity"],
        env=env,
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1
    assert "unreachable" in run.stderr
    assert "identity" in run.stderr
    assert not (tmp_path / "out/report.json").exists()
