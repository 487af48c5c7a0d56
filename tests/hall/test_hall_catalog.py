"""The item catalog: public reads, scoped and audited edits, versions and states."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from zwfw.services.kit.audit import audit_log, verify

from .support import DEPT, EDITOR, IMPLEMENTATION, Hall, guide, running_hall

OTHER_CODE = f"{DEPT}3442199806004"


def test_published_item_is_public(hall: Hall) -> None:
    listing = hall.client.get("/items")
    assert listing.status_code == 200
    assert listing.json()["total"] == 1
    item = hall.client.get(f"/items/{IMPLEMENTATION}").json()
    assert item["state"] == "published"
    assert item["version"] == 1
    assert item["basic_code"] == "442199806003"
    assert item["guide"]["materials"][0]["copies"] == 1
    assert item["guide"]["by_law"]


def test_draft_is_not_public_until_published(hall: Hall) -> None:
    created = hall.client.post(
        "/items", json=guide(implementation_code=OTHER_CODE), headers=hall.staff(*EDITOR)
    )
    assert created.status_code == 201
    assert created.json()["state"] == "draft"
    assert hall.client.get(f"/items/{OTHER_CODE}").status_code == 404
    assert hall.client.get("/items").json()["total"] == 1
    draft = hall.client.get(f"/items/{OTHER_CODE}/draft", headers=hall.staff(*EDITOR))
    assert draft.json()["version"] == 1


def test_edits_need_the_catalog_scope(hall: Hall) -> None:
    body = guide(implementation_code=OTHER_CODE)
    anonymous = hall.client.post("/items", json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    wrong = hall.client.post("/items", json=body, headers=hall.staff("hall:case:handle"))
    assert wrong.status_code == 403
    assert wrong.json()["required_scopes"] == ["hall:catalog:write"]
    assert hall.client.get(f"/items/{OTHER_CODE}").status_code == 404


def test_new_draft_version_leaves_the_published_one_current(hall: Hall) -> None:
    changed = guide(promise_day=3, name="企业投资项目备案（变更）")
    draft = hall.client.put(
        f"/items/{IMPLEMENTATION}/draft", json=changed, headers=hall.staff(*EDITOR)
    )
    assert draft.status_code == 200
    assert draft.json()["version"] == 2
    assert hall.client.get(f"/items/{IMPLEMENTATION}").json()["version"] == 1
    published = hall.client.post(
        f"/items/{IMPLEMENTATION}/versions/2/publish", headers=hall.staff(*EDITOR)
    )
    assert published.status_code == 200
    current = hall.client.get(f"/items/{IMPLEMENTATION}").json()
    assert (current["version"], current["guide"]["promise_day"]) == (2, 3)
    versions = hall.client.get(f"/items/{IMPLEMENTATION}/versions").json()
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    again = hall.client.post(
        f"/items/{IMPLEMENTATION}/versions/2/publish", headers=hall.staff(*EDITOR)
    )
    assert again.status_code == 409


def test_invalid_codes_are_refused_with_the_reason(hall: Hall) -> None:
    bad_check = IMPLEMENTATION[:17] + "6" + IMPLEMENTATION[18:]
    response = hall.client.post(
        "/items", json=guide(implementation_code=bad_check), headers=hall.staff(*EDITOR)
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "body.implementation_code"
    assert "check character" in problem["errors"][0]["message"]
    handling = hall.client.post(
        "/items",
        json=guide(
            implementation_code=OTHER_CODE,
            handling_items=[{"code": IMPLEMENTATION + "01", "name": "x"}],
        ),
        headers=hall.staff(*EDITOR),
    )
    assert handling.status_code == 422
    assert "does not belong" in handling.text


def test_incomplete_or_inconsistent_guides_are_refused(hall: Hall) -> None:
    headers = hall.staff(*EDITOR)
    missing = guide(implementation_code=OTHER_CODE)
    del missing["supervise_way"]
    assert hall.client.post("/items", json=missing, headers=headers).status_code == 422
    over = guide(implementation_code=OTHER_CODE, promise_day=30)
    response = hall.client.post("/items", json=over, headers=headers)
    assert response.status_code == 422
    assert "exceeds the legal time limit" in response.text
    fee = guide(implementation_code=OTHER_CODE, is_fee=True)
    assert "no fee" in hall.client.post("/items", json=fee, headers=headers).text
    outside = guide(implementation_code=OTHER_CODE, region_code="330100")
    response = hall.client.post("/items", json=outside, headers=headers)
    assert response.status_code == 400
    assert "outside this province" in response.json()["detail"]
    assert hall.client.get(f"/items/{OTHER_CODE}/versions").status_code == 404


def test_cancelled_item_leaves_the_catalog(hall: Hall) -> None:
    response = hall.client.post(
        f"/items/{IMPLEMENTATION}/cancel", json={"reason": "事项取消"}, headers=hall.staff(*EDITOR)
    )
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert hall.client.get(f"/items/{IMPLEMENTATION}").status_code == 404
    assert hall.client.get("/items").json()["total"] == 0
    apply = hall.client.post(
        "/cases", json={"implementation_code": IMPLEMENTATION}, headers=hall.citizen()
    )
    assert apply.status_code == 422  # incomplete body first
    from .support import application

    refused = hall.client.post("/cases", json=application(), headers=hall.citizen())
    assert refused.status_code == 409
    assert "cancelled" in refused.json()["detail"]


def test_every_edit_is_audited(tmp_path: Path) -> None:
    with running_hall(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path) as hall:
        hall.publish()
        hall.client.post(
            f"/items/{IMPLEMENTATION}/cancel", json={"reason": "合并"}, headers=hall.staff(*EDITOR)
        )
        with hall.db() as db:
            actions = [
                (row.actor, row.action, row.resource)
                for row in db.execute(select(audit_log).order_by(audit_log.c.seq))
            ]
            assert verify(db).ok
    assert actions == [
        ("officer-7", "item.create", f"item/{IMPLEMENTATION}/1"),
        ("officer-7", "item.publish", f"item/{IMPLEMENTATION}/1"),
        ("officer-7", "item.cancel", f"item/{IMPLEMENTATION}/1"),
    ]
