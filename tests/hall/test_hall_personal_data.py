"""Applicants' certificate numbers: encrypted at rest with a keyed hash for lookups, masked in
every response, in clear only in the reports to the hub (the 好差评 / 办件 data sets)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from zwfw.cli import app as cli
from zwfw.codes.masking import mask_resident_id
from zwfw.codes.personal import build_resident_id
from zwfw.crypto.fields import FieldProtectionError, FieldProtector
from zwfw.crypto.keystore import KEK_ENV, KeyEncryptionKey
from zwfw.services.hall import MIGRATIONS
from zwfw.services.hall.models import Case, certificate_lookup, field_protector
from zwfw.services.kit import migrate, outbox
from zwfw.services.kit.db import make_engine
from zwfw.services.kit.migrations import alembic_config

from .support import PHONE, RESIDENT_ID, Hall, application

OTHER_ID = str(build_resident_id("340104", date(1985, 11, 2), 456))


def _raw_cases(hall: Hall) -> list[dict[str, object]]:
    with hall.app.state.kit.engine.connect() as connection:
        return [
            dict(row._mapping) for row in connection.execute(sa.text("SELECT * FROM hall_case"))
        ]


def _contains(value: object, needle: str) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return needle.encode() in bytes(value)
    return needle in str(value)


def test_database_row_holds_no_clear_certificate_number(any_hall: Hall) -> None:
    hall = any_hall
    number = hall.apply()["case_number"]
    (row,) = _raw_cases(hall)
    assert "certificate_number" not in row
    assert not any(_contains(value, RESIDENT_ID) for value in row.values())
    assert not any(_contains(value, RESIDENT_ID[-8:]) for value in row.values())
    assert "phone" not in row
    assert not any(_contains(value, PHONE) for value in row.values())
    assert row["certificate_number_lookup"] == certificate_lookup(RESIDENT_ID)
    with hall.db() as db:
        case = db.scalars(sa.select(Case).where(Case.case_number == number)).unique().one()
        assert case.certificate_number == RESIDENT_ID
        assert case.phone == PHONE


def test_ciphertext_is_bound_to_its_column_and_key(hall: Hall, hall_kek) -> None:
    hall.apply()
    (row,) = _raw_cases(hall)
    blob = bytes(row["certificate_number_enc"])
    mine = FieldProtector.from_kek(hall_kek, "hall.case")
    assert mine.decrypt(blob, "certificate_number") == RESIDENT_ID
    with pytest.raises(FieldProtectionError, match="failed authentication"):
        mine.decrypt(blob, "phone")
    other = FieldProtector.from_kek(KeyEncryptionKey.generate(), "hall.case")
    with pytest.raises(FieldProtectionError):
        other.decrypt(blob, "certificate_number")


def test_responses_show_only_the_masked_number(hall: Hall) -> None:
    created = hall.client.post("/cases", json=application(), headers=hall.citizen())
    assert created.status_code == 201, created.text
    number = created.json()["case_number"]
    responses = [
        created,
        hall.client.get(f"/cases/{number}", headers=hall.citizen()),
        hall.client.get(f"/cases/{number}", headers=hall.staff()),
        hall.client.get("/cases", headers=hall.staff()),
        hall.client.post(
            "/cases/lookup", json={"certificate_number": RESIDENT_ID}, headers=hall.staff()
        ),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert RESIDENT_ID not in response.text
        assert mask_resident_id(RESIDENT_ID) in response.text
    applicant = responses[1].json()["applicant"]
    assert applicant["certificate_number"] == mask_resident_id(RESIDENT_ID)


def test_reports_to_the_hub_carry_the_number(hall: Hall) -> None:
    number = hall.apply()["case_number"]
    hall.finish(number)
    rated = hall.client.post(
        f"/cases/{number}/evaluation", json={"level": 2, "text": "材料要求重复"},
        headers=hall.citizen(),
    )  # fmt: skip
    assert rated.status_code == 201, rated.text
    with hall.db() as db:
        messages = outbox.list_messages(db, protector=field_protector())
        with pytest.raises(outbox.OutboxBodyError, match="its key is needed"):
            outbox.list_messages(db)
    # Kept after delivery as well: stored encrypted, never as a clear copy.
    with hall.app.state.kit.engine.connect() as connection:
        bodies = connection.execute(sa.text("SELECT body FROM outbox_message")).scalars().all()
    assert bodies
    assert not any(_contains(body, RESIDENT_ID) for body in bodies)
    assert not any(_contains(body, "张三") for body in bodies)
    cases = [m.payload() for m in messages if m.kind == "case"]
    evaluations = [m.payload() for m in messages if m.kind == "evaluation"]
    assert [p["version"] for p in cases] == [1, 2, 3, 4]
    for payload in cases + evaluations:
        assert payload["case_number"] == number
        assert (payload["certificate_type"], payload["certificate_number"]) == ("10", RESIDENT_ID)
    assert cases[0]["applicant_name"] == "张三"
    assert evaluations[0]["level"] == 2


def test_staff_find_cases_by_certificate_number(hall: Hall) -> None:
    mine = hall.apply()["case_number"]
    theirs = hall.apply(
        "citizen-2", applicant={**application()["applicant"], "certificate_number": OTHER_ID}
    )["case_number"]

    def lookup(value: str, headers: dict[str, str]):  # noqa: ANN202
        return hall.client.post(
            "/cases/lookup", json={"certificate_number": value}, headers=headers
        )

    found = lookup(RESIDENT_ID.lower(), hall.staff())
    assert found.status_code == 200, found.text
    assert [c["case_number"] for c in found.json()["cases"]] == [mine]
    assert [c["case_number"] for c in lookup(OTHER_ID, hall.staff()).json()["cases"]] == [theirs]
    assert lookup("110101199003074514", hall.staff()).json() == {"total": 0, "cases": []}
    refused = lookup(RESIDENT_ID, hall.citizen())
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    too_long = lookup(RESIDENT_ID + "0", hall.staff())
    assert too_long.status_code == 422


def test_without_a_key_evaluations_answer_503(hall: Hall, monkeypatch: pytest.MonkeyPatch) -> None:
    number = hall.apply()["case_number"]
    hall.finish(number)
    monkeypatch.delenv(KEK_ENV)
    response = hall.client.post(
        f"/cases/{number}/evaluation", json={"level": 5}, headers=hall.citizen()
    )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_without_a_key_cases_are_refused_not_stored_in_clear(
    hall: Hall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEK_ENV)
    response = hall.client.post("/cases", json=application(), headers=hall.citizen())
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "personal data" in response.json()["detail"]
    assert RESIDENT_ID not in response.text
    assert _raw_cases(hall) == []


# --- migration hall_0002 -------------------------------------------------------------------


def _database_at_hall_0001(url: str) -> sa.Engine:
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(MIGRATIONS, connection=connection), "hall_0001")
        connection.execute(
            sa.text(
                "INSERT INTO hall_item (id, implementation_code, version, state, name,"
                " dept_code, guide, created_at, updated_at) VALUES (1, :code, 1, 'published',"
                " '企业投资项目备案', '113401000030547255', '{}', :now, :now)"
            ),
            {"code": "113401000030547255" + "3442199806003", "now": "2026-03-02 08:00:00"},
        )
        for row_id, cert_type, number in ((1, "10", RESIDENT_ID), (2, "001", "91340100MA2N0J1X5B")):
            connection.execute(
                sa.text(
                    "INSERT INTO hall_case (id, case_number, item_id, implementation_code,"
                    " applicant_sub, user_type, applicant_name, certificate_type,"
                    " certificate_number, phone, channel, state, applied_at,"
                    " deadline_provisional, provisional_years, revision) VALUES (:id,"
                    " :case_number, 1, :code, 'c', 'person', '张三', :type, :number, :phone,"
                    " 'online', 'submitted', :now, false, '[]', 1)"
                ),
                {
                    "id": row_id,
                    "case_number": f"1134010000305472553442199806003202603020{row_id:03d}",
                    "code": "113401000030547255" + "3442199806003",
                    "type": cert_type,
                    "number": number,
                    "phone": PHONE if row_id == 1 else None,
                    "now": "2026-03-02 08:00:00",
                },
            )
    return engine


def test_migration_encrypts_existing_rows_and_downgrades(database_url: str, hall_kek) -> None:
    engine = _database_at_hall_0001(database_url)
    try:
        migrate(engine, MIGRATIONS)
        with engine.connect() as connection:
            rows = [
                dict(r._mapping) for r in connection.execute(sa.text("SELECT * FROM hall_case"))
            ]
        assert all("certificate_number" not in row for row in rows)
        assert not any(_contains(v, RESIDENT_ID) for row in rows for v in row.values())
        with Session(engine) as db:
            cases = db.scalars(sa.select(Case).order_by(Case.id)).unique().all()
            assert [c.certificate_number for c in cases] == [RESIDENT_ID, "91340100MA2N0J1X5B"]
            assert [c.phone for c in cases] == [PHONE, None]
            found = db.scalars(
                sa.select(Case.id).where(
                    Case.certificate_number_lookup == certificate_lookup(RESIDENT_ID)
                )
            ).all()
            assert found == [1]

        with engine.begin() as connection:
            command.downgrade(alembic_config(MIGRATIONS, connection=connection), "hall_0001")
            clear = connection.execute(
                sa.text("SELECT certificate_number, phone FROM hall_case ORDER BY id")
            ).all()
            assert [tuple(r) for r in clear] == [
                (RESIDENT_ID, PHONE),
                ("91340100MA2N0J1X5B", None),
            ]
    finally:
        engine.dispose()


def test_migration_without_a_key_leaves_the_rows_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _database_at_hall_0001(f"sqlite:///{tmp_path / 'hall.sqlite3'}")
    monkeypatch.delenv(KEK_ENV)
    try:
        with pytest.raises(RuntimeError, match=r"hall_0002 must convert 2 case\(s\)"):
            migrate(engine, MIGRATIONS)
        with engine.connect() as connection:
            numbers = connection.execute(
                sa.text("SELECT certificate_number FROM hall_case ORDER BY id")
            ).scalars()
            assert list(numbers) == [RESIDENT_ID, "91340100MA2N0J1X5B"]
            columns = {c["name"] for c in sa.inspect(connection).get_columns("hall_case")}
        assert "certificate_number_enc" not in columns
    finally:
        engine.dispose()


def test_cli_migrate_without_a_key_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'hall.sqlite3'}"
    _database_at_hall_0001(url).dispose()
    config = tmp_path / "hall.yaml"
    config.write_text(
        f"database_url: '{url}'\nregion_code: '340000'\n"
        "auth: {issuer: 'https://idp.example', audience: 'https://hall.example',"
        " jwks_url: 'https://idp.example/jwks'}\n",
        encoding="utf-8",
    )
    monkeypatch.delenv(KEK_ENV)
    outcome = CliRunner().invoke(cli, ["migrate", "hall", "--config", str(config)])
    assert outcome.exit_code == 1, outcome.output
    assert "Traceback" not in outcome.output
    assert "migration failed: hall_0002 must convert 2 case(s)" in outcome.output
