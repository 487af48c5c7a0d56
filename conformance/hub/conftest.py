"""What the hub suite needs, as the province under test speaking to the national hub.

Credentials (each `{env: VAR}` in the profile's `credentials:`):

- `hub_report_token`: a national-IdP access token of the province's client with `hub:report`;
- `hub_exchange_token`: the same client's token with `hub:exchange`;
- `hub_supervise_token`: a national-IdP token with `hub:supervise` (reads what arrived) and
  `hub:provinces:read` (the registered channel key the arrivals are checked against);
- `channel_signing_key`: the province's SM2 channel signing key (PEM);
- `channel_key_id`: the SM3 fingerprint (hex) of its channel signing certificate;
- `xprov_citizen_token`: a national-IdP token of a citizen who holds a valid licence issued in
  another province (the hub among its audiences);
- `xprov_issuer_region`, `xprov_licence_id`: that province and that licence;
- `xprov_issuer_holder_token`: the same citizen's token at the issuing province's e-licence
  service (scope `elicense:read`), to read the licence's usage records there;
- `xprov_issuer_elicense_url`: the issuing province's e-licence base URL.

The synthetic case reports this suite sends carry a case number of the profile's first
declared implementation code with a sequence from 9000; run it against a certification
sandbox, not the production hub.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zwfw.codes import build_case_number
from zwfw.crypto.sm2 import load_private_key
from zwfw.formats.channel import ChannelSigner
from zwfw.harness.profile import TargetProfile

# The hub counts promised dates and rectification deadlines in Beijing time.
BEIJING = ZoneInfo("Asia/Shanghai")

CASES = "/reports/cases"
EVALUATIONS = "/reports/evaluations"


class Province:
    """The province under test as the hub's peer: its channel signer and tokens."""

    def __init__(self, hub: httpx.Client, signer: ChannelSigner) -> None:
        self.hub = hub
        self.signer = signer

    def send(
        self,
        path: str,
        payload: Any,
        token: str,
        *,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        prefix = httpx.URL(str(self.hub.base_url)).path.rstrip("/")
        headers = self.signer.headers(
            "POST", prefix + path, body, recipient="hub", idempotency_key=idempotency_key
        )
        return self.hub.post(
            path.lstrip("/"),
            content=body,
            headers={**headers, "Authorization": f"Bearer {token}",
                     "Content-Type": "application/json"},
        )  # fmt: skip


@pytest.fixture
def province(hub_client: httpx.Client, credential: Callable[[str], str], target: Any) -> Province:
    key = load_private_key(credential("channel_signing_key").encode())
    return Province(
        hub_client, ChannelSigner(target.region_code, key, key_id=credential("channel_key_id"))
    )


# Whether the hub already holds a case number, while a test that reads the hub's records runs
# (see ``supervise``): synthetic cases must not land on a case an earlier run left there.
_hub_holds: Callable[[str], bool] | None = None


@pytest.fixture
def supervise(
    hub_client: httpx.Client, credential: Callable[[str], str]
) -> Iterator[dict[str, str]]:
    global _hub_holds
    headers = {"Authorization": f"Bearer {credential('hub_supervise_token')}"}

    def holds(number: str) -> bool:
        # Free only if the hub has neither the case nor any report about it: an evaluation an
        # earlier run sent for a synthetic number is listed with that number's case reports.
        if hub_client.get(f"cases/{number}", headers=headers).status_code != 404:
            return True
        about = hub_client.get(f"cases/{number}/reports", headers=headers)
        return about.status_code != 200 or bool(about.json())

    _hub_holds = holds
    try:
        yield headers
    finally:
        _hub_holds = None


def fresh_key() -> str:
    return f"conformance-{uuid.uuid4().hex}"


def case_report(target: Any, version: int = 1, state: str = "submitted") -> dict[str, Any]:
    declared = target.declared.implementation_codes
    if not declared:
        pytest.fail("the profile declares no implementation_codes", pytrace=False)
    code = declared[0]
    now = datetime.now(UTC).replace(microsecond=0)
    # A synthetic case: sequence 5000-9999 of today (a province's own cases count from 1), one
    # the hub knows nothing about yet, so that a long-lived hub's earlier runs never collide.
    for _ in range(50):
        number = str(build_case_number(code, now.date(), 5000 + secrets.randbelow(5000)))
        if _hub_holds is None or not _hub_holds(number):
            break
    else:
        pytest.fail("no free synthetic case number of today at the hub", pytrace=False)
    return {
        "report": "case",
        "version": version,
        "region_code": target.region_code,
        "case_number": number,
        "implementation_code": code,
        "item_name": "互联互通测试事项",
        "dept_code": code[:18],
        "dept_name": "互联互通测试部门",
        "user_type": "0",
        "channel": "online",
        "state": state,
        "apply_time": now.isoformat(),
        "steps": [],
        "materials": [],
    }


def accepted_case_report(
    target: TargetProfile, promise_date: date, **changes: Any
) -> dict[str, Any]:
    """A synthetic case applied for and accepted before its ``promise_date`` (an hour ago, or a
    week before a promise date already past), with one step and two materials (one of them a
    licence reference), its times in Beijing time."""
    report = case_report(target, state="accepted_pending")
    # Written in Beijing time whatever the hour of the run (``case_report`` writes UTC), so that
    # every run checks that the hub keeps the instant and not only the wall-clock reading.
    accepted = min(
        datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
        datetime.combine(promise_date - timedelta(days=7), datetime.min.time(), BEIJING)
        + timedelta(hours=10),
    ).astimezone(BEIJING)
    report |= {
        "apply_time": (accepted - timedelta(minutes=20)).isoformat(),
        "handling_item_code": report["implementation_code"] + "01",
        "accept_time": accepted.isoformat(),
        "promised_days": 5,
        "promise_date": promise_date.isoformat(),
        "steps": [
            {
                "seq": 1,
                "nodetype": 1,
                "noderesult": 4,
                "node_name": "受理",
                "handler_name": "窗口人员",
                "time": accepted.isoformat(),
            },
        ],  # fmt: skip
        "materials": [
            {"name": "申请表", "gettype": 1},
            {"name": "营业执照", "gettype": 3, "licence_id": "1.2.156.3005.2.TEST.LIC"},
        ],
    }
    return report | changes


def finished_case_report(report: dict[str, Any], version: int) -> dict[str, Any]:
    finished = datetime.now(UTC).replace(microsecond=0)
    return report | {
        "version": version,
        "state": "concluded",
        "finish_time": finished.isoformat(),
        "result": "1",
        "steps": [
            *report["steps"],
            {"seq": 2, "nodetype": 4, "noderesult": 1, "time": finished.isoformat()},
        ],
    }


def evaluation_report(
    target: TargetProfile, number: str, deadline: date, version: int = 1, **changes: Any
) -> dict[str, Any]:
    code = target.declared.implementation_codes[0]
    rated = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    return {
        "report": "evaluation",
        "version": version,
        "region_code": target.region_code,
        "case_number": number,
        "implementation_code": code,
        "dept_code": code[:18],
        "level": 1,
        "time": rated.isoformat(),
        "text": "办理太慢",
        "follow_up": {"text": "仍未办结", "level": 1, "time": rated.isoformat()},
        "rectification": {"state": "open", "deadline": deadline.isoformat(), "working_days": 5},
        **changes,
    }


def hub_clock(hub_client: httpx.Client) -> float:
    """The hub's own time (its Date header), so window probes do not depend on the harness's
    clock; the harness's clock when the hub sends no Date."""
    answer = hub_client.get("readyz")
    # A gateway may add its own Date line; each line is one whole date.
    for line in answer.headers.get_list("date"):
        try:
            return parsedate_to_datetime(line).timestamp()
        except (TypeError, ValueError):
            continue
    return time.time()


def hub_today(hub_client: httpx.Client) -> date:
    """The Beijing calendar date at the hub now (by its own clock)."""
    return datetime.fromtimestamp(hub_clock(hub_client), BEIJING).date()
