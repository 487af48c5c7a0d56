"""The site profile on this machine (inventories/site-local): PostgreSQL, two replicas per
service, the nginx gateway in front and Prometheus, Alertmanager and the blackbox exporter
running. Deployed into a temporary state directory on a free port range; a replica is killed
under traffic (no request may fail, the service-down alert must fire and reach
Alertmanager), province A is certified through the gateway, and the teardown leaves no
listening port and no database behind."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from pgcluster import Cluster, own_cluster

from zwfw.harness.faults import table_lock_fault

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
VENV_BIN = Path(sys.executable).parent

T = TypeVar("T")

# What the site-local inventory deploys: instance -> (service, region code, port offset).
INSTANCES = {
    "national-identity": ("identity", "100000", 100),
    "national-hub": ("hub", "100000", 110),
    "province-a-identity": ("identity", "340000", 200),
    "province-a-hall": ("hall", "340000", 210),
    "province-a-elicense": ("elicense", "340000", 220),
    "province-a-eseal": ("eseal", "340000", 230),
    "province-b-identity": ("identity", "330000", 300),
    "province-b-hall": ("hall", "330000", 310),
    "province-b-elicense": ("elicense", "330000", 320),
    "province-b-eseal": ("eseal", "330000", 330),
}
REPLICAS = 2
GATEWAY_SHIFT = 500
PROMETHEUS, ALERTMANAGER, BLACKBOX, WEBHOOK = 900, 901, 902, 903
# Every port the deployment may listen on lies in [base + 100, base + 1000).
PORT_SPAN = range(100, 1000)
# Shorter than production so the test sees the alert within seconds; the shipped rule (1m)
# is what the promtool tests check.
SCRAPE_INTERVAL = "2s"
SERVICE_DOWN_HOLD = "6s"


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_LOCAL_TEMP"] = env["ANSIBLE_REMOTE_TEMP"] = "/tmp/.ansible-zwfw-tests"
    return env


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # the gateway listens on every address
        except OSError:
            return False
    return True


def _port_base() -> int:
    """A base port whose whole span is free now (below the kernel's ephemeral range)."""
    bases = list(range(20000, 32000, 1000))
    random.shuffle(bases)
    for base in bases:
        if all(_port_is_free(base + offset) for offset in PORT_SPAN):
            return base
    raise AssertionError("no free port range for the site deployment")


def _eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last_error, result = exc, None
        if result is not None:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last_error})")


class AlertReceiver:
    """Alertmanager's webhook receiver: keeps every notification it is sent."""

    def __init__(self, port: int) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for note in list(self.notifications) for alert in note.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SiteDeployment:
    ansible_playbook: str
    state: Path
    port_base: int
    database_prefix: str
    tools: dict[str, str]
    cluster: Cluster
    deploy_seconds: float = 0.0
    torn_down: bool = False
    receiver: AlertReceiver | None = field(default=None, repr=False)

    @property
    def bundle(self) -> Path:
        return self.state / "pki" / "tls" / "ca-bundle.pem"

    def play(self, playbook: str) -> subprocess.CompletedProcess[str]:
        extra = {
            "zwfw_state_dir": str(self.state),
            "zwfw_port_base": self.port_base,
            "zwfw_database_prefix": self.database_prefix,
            # The deployment's own PostgreSQL, which the faults suite may restart.
            "zwfw_database_port": self.cluster.port,
            "certification_database_restart": self.cluster.restart_fault(),
            "certification_slow_database": {
                "province-a": table_lock_fault(
                    f"{self.cluster.url}/{self.database_prefix}province_a_hall", "hall_case"
                )
            },
            "monitoring_scrape_interval": SCRAPE_INTERVAL,
            "monitoring_alert_for": {"ZwfwServiceDown": SERVICE_DOWN_HOLD},
            "monitoring_alert_group_wait": "1s",
            "gateway_nginx": self.tools["nginx"],
            "monitoring_promtool": self.tools["promtool"],
            "monitoring_prometheus": self.tools["prometheus"],
            "monitoring_alertmanager": self.tools["alertmanager"],
            "monitoring_blackbox_exporter": self.tools["blackbox"],
        }
        return subprocess.run(
            [self.ansible_playbook, "-i", "inventories/site-local", playbook,
             "-e", json.dumps(extra)],
            cwd=PLAYBOOKS, env=_ansible_env(), capture_output=True, text=True,
            timeout=1500, check=False,
        )  # fmt: skip

    def replica_ports(self, instance: str) -> list[int]:
        first = self.port_base + INSTANCES[instance][2]
        return [first + index for index in range(REPLICAS)]

    def gateway_port(self, instance: str) -> int:
        return self.port_base + INSTANCES[instance][2] + GATEWAY_SHIFT

    def url(self, offset: int, path: str) -> str:
        return f"http://127.0.0.1:{self.port_base + offset}{path}"

    def supervisorctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "--configuration",
             str(self.state / "etc" / "supervisord.conf"), *argv],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def force_stop(self) -> None:
        """Last resort when the teardown playbook failed: stop whatever still runs."""
        for conf, pid in (
            (self.state / "monitoring" / "supervisord.conf", "monitoring/run/supervisord.pid"),
            (self.state / "etc" / "supervisord.conf", "run/supervisord.pid"),
        ):
            if (self.state / pid).exists():
                subprocess.run(
                    [str(VENV_BIN / "supervisorctl"), "--configuration", str(conf), "shutdown"],
                    capture_output=True, timeout=120, check=False,
                )  # fmt: skip
        nginx_pid = self.state / "gateway" / "nginx.pid"
        if nginx_pid.exists() and nginx_pid.read_text().strip():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(nginx_pid.read_text()), signal.SIGQUIT)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _databases(cluster: Cluster, prefix: str) -> list[str]:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres"
    ) as connection:
        pattern = prefix.replace("_", r"\_") + "%"
        names = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s "
            "UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
            (pattern, pattern),
        ).fetchall()
    return sorted(name for (name,) in names)


def test_site_local_inventory_passes_the_syntax_check(ansible_playbook: str) -> None:
    for playbook in ("site.yml", "teardown.yml"):
        result = subprocess.run(
            [ansible_playbook, "--syntax-check", "-i", "inventories/site-local", playbook],
            cwd=PLAYBOOKS, env=_ansible_env(), capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def site(
    ansible_playbook: str,
    nginx: str,
    promtool: str,
    prometheus: str,
    alertmanager: str,
    blackbox_exporter: str,
    supervisord: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SiteDeployment]:
    # Its databases live in a PostgreSQL cluster of its own, which the faults suite restarts.
    with own_cluster() as cluster:
        deployed = SiteDeployment(
            ansible_playbook,
            tmp_path_factory.mktemp("site") / "state",
            _port_base(),
            f"zwfw_t{secrets.token_hex(4)}_",
            {"nginx": nginx, "promtool": promtool, "prometheus": prometheus,
             "alertmanager": alertmanager, "blackbox": blackbox_exporter},
            cluster,
        )  # fmt: skip
        deployed.receiver = AlertReceiver(deployed.port_base + WEBHOOK)
        try:
            started = time.monotonic()
            result = deployed.play("site.yml")
            deployed.deploy_seconds = time.monotonic() - started
            print(f"site-local deployed in {deployed.deploy_seconds:.0f} s")
            assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
            yield deployed
        finally:
            if not deployed.torn_down:
                down = deployed.play("teardown.yml")
                if down.returncode != 0:
                    deployed.force_stop()
            deployed.receiver.close()


def _verified_context(bundle: Path) -> ssl.SSLContext:
    # Hostname checking stays on: the gateway's certificate names 127.0.0.1.
    return ssl.create_default_context(cafile=str(bundle))


def _gateway_get(
    port: int, path: str, context: ssl.SSLContext, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=20, source_address=(source, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_every_service_answers_through_the_gateway_over_verified_tls(
    site: SiteDeployment,
) -> None:
    context = _verified_context(site.bundle)
    for instance in INSTANCES:
        status, headers, body = _gateway_get(site.gateway_port(instance), "/readyz", context)
        assert status == 200, (instance, body)
        assert json.loads(body)["status"] == "ready", instance
        assert headers["strict-transport-security"].startswith("max-age=")
        # The gateway never serves the replicas' metrics.
        status, _, _ = _gateway_get(site.gateway_port(instance), "/metrics", context)
        assert status == 404, instance
    # A client that does not trust the deployment's CAs is refused.
    with pytest.raises(ssl.SSLCertVerificationError):
        _gateway_get(site.gateway_port("province-a-hall"), "/readyz", ssl.create_default_context())
    # The services know themselves by the gateway's address (issuer, audiences, links).
    discovery = json.loads(
        _gateway_get(
            site.gateway_port("province-a-identity"),
            "/.well-known/openid-configuration",
            context,
        )[2]
    )
    assert discovery["issuer"] == f"https://127.0.0.1:{site.gateway_port('province-a-identity')}"


def test_the_databases_are_per_instance_in_postgresql(site: SiteDeployment) -> None:
    expected = sorted(
        site.database_prefix + name.replace("-", "_") for name in INSTANCES for _ in range(2)
    )  # a database and a login role each
    assert _databases(site.cluster, site.database_prefix) == expected
    settings = (site.state / "etc" / "province-a-hall.yaml").read_text(encoding="utf-8")
    assert f"@127.0.0.1:{site.cluster.port}/{site.database_prefix}province_a_hall" in settings


def _targets(site: SiteDeployment) -> list[dict[str, Any]]:
    answer = _get_json(site.url(PROMETHEUS, "/api/v1/targets?state=active"))
    return list(answer["data"]["activeTargets"])


def test_prometheus_scrapes_every_replica_and_probes_every_endpoint(
    site: SiteDeployment,
) -> None:
    replicas = {
        f"127.0.0.1:{port}": (f"zwfw-{service}", region)
        for instance, (service, region, _) in INSTANCES.items()
        for port in site.replica_ports(instance)
    }
    probes = {f"https://127.0.0.1:{site.gateway_port(i)}/readyz" for i in INSTANCES}

    def all_up() -> list[dict[str, Any]] | None:
        targets = _targets(site)
        if len(targets) == len(replicas) + len(probes) and all(
            t["health"] == "up" for t in targets
        ):
            return targets
        return None

    targets = _eventually(all_up, 90, "every Prometheus target to be up")
    scraped = {
        t["labels"]["instance"]: (t["labels"]["job"], t["labels"]["region_code"])
        for t in targets
        if t["labels"]["job"] != "zwfw-probe"
    }
    assert scraped == replicas
    assert {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "zwfw-probe"} == (
        probes
    )
    # Every probe really succeeded (a probe target is "up" even when its probe fails).
    answer = _get_json(
        site.url(PROMETHEUS, "/api/v1/query?query=")
        + urllib.parse.quote('probe_success{job="zwfw-probe"}')
    )
    values = {r["metric"]["instance"]: r["value"][1] for r in answer["data"]["result"]}
    assert values == dict.fromkeys(probes, "1")
    # The rules of charts/monitoring are loaded.
    rules = _get_json(site.url(PROMETHEUS, "/api/v1/rules?type=alert"))
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"ZwfwServiceDown", "ZwfwEndpointProbeFailed", "ZwfwErrorBudgetBurnFast"} <= names


def _certify(
    site: SiteDeployment, out: Path, suites: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`zwfw certify` of province A with fresh credentials, as its operator runs it."""
    certify = site.state / "certify"
    profile, env_file = certify / "province-a.yaml", certify / "province-a.env"
    assert profile.exists(), "the certification role wrote no target profile"
    assert env_file.exists(), "the certification role wrote no credentials"
    zwfw = str(VENV_BIN / "zwfw")
    # The tokens in the .env file last minutes: mint fresh ones right before the run.
    fresh = subprocess.run(
        [zwfw, "deploy", "credentials", "--plan", str(certify / "plan.json"),
         "--province", "province-a"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    loaded = subprocess.run(
        ["bash", "-c", f'set -a; . "{env_file}"; set +a; env -0'],
        capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    env = dict(entry.split("=", 1) for entry in loaded.decode().split("\0") if "=" in entry)
    result = subprocess.run(
        [zwfw, "certify", "--target", str(profile), "--out", str(out), "--suites", suites],
        env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    report = out / "results.json"
    assert report.exists(), result.stdout[-4000:] + result.stderr[-2000:]
    return result, json.loads(report.read_text(encoding="utf-8"))


def _not_passed(results: dict[str, Any]) -> dict[str, str]:
    return {
        r["id"]: f"{r['status']}: {r.get('reason') or ''}"
        for r in results["requirements"]
        if r.get("level") == "MUST" and r.get("in_scope") and r.get("status") != "pass"
    }


def test_province_a_certifies_through_the_gateway_with_the_security_suite(
    site: SiteDeployment, tmp_path: Path
) -> None:
    profile = site.state / "certify" / "province-a.yaml"
    assert f"https://127.0.0.1:{site.gateway_port('province-a-hall')}" in profile.read_text()
    # The security suite too: its callers come from `zwfw deploy credentials`, and its TLS
    # scans meet the gateway's real configuration.
    result, results = _certify(site, tmp_path / "certify", "conformance,security")
    assert result.returncode == 0, (result.stdout[-4000:], _not_passed(results))


def test_province_a_passes_every_fault_scenario_the_deployment_declares(
    site: SiteDeployment, tmp_path: Path
) -> None:
    # The certification role declared how the suite may disturb this sandbox: a replica of
    # each service and of the hub killed through supervisord, the hub stopped, the hall's
    # clock skewed, and the deployment's own database restarted.
    profile = yaml.safe_load((site.state / "certify" / "province-a.yaml").read_text("utf-8"))
    faults = profile["faults"]
    assert set(faults["replica"]) == {"identity", "hall", "elicense", "eseal", "hub"}
    assert "supervisorctl" in faults["replica"]["hall"]["cause"]["run"]
    assert "zwfw-province-a-hall-1" in faults["replica"]["hall"]["cause"]["run"]
    assert {"hub_outage", "clock_skew", "database_restart", "slow_database"} <= set(faults)
    out = tmp_path / "faults"
    result, results = _certify(site, out, "faults")
    statuses = {r["id"]: r["status"] for r in results["requirements"] if r["in_scope"]}
    ft = sorted(rid for rid in statuses if rid.startswith("FT-"))
    assert len(ft) == 8
    assert {rid: statuses[rid] for rid in ft} == dict.fromkeys(ft, "pass"), _not_passed(results)
    assert result.returncode == 0, result.stdout[-4000:]
    measured = results["measurements"]["faults"]
    replica = measured["replica"]
    assert replica["judged_services"] == ["identity", "hall", "elicense", "eseal", "hub"]
    assert replica["during"]["requests"] > 0
    assert replica["durability"]["acknowledged"] > 0
    assert replica["durability"]["lost"] == 0 == replica["durability"]["duplicated"]
    assert (
        measured["hub-outage"]["outbox"]["arrived_once"]
        == (measured["hub-outage"]["outbox"]["cases"])
    )
    assert measured["clock-skew"]["skew"]["probe"]["status"] == 401
    assert measured["database-restart"]["durability"]["lost"] == 0
    slow = measured["slow-database"]["restart"]["away"]
    assert slow["failures_by_answer"].get("HTTP 503", 0) > 0, slow
    assert slow["not_503"] == 0 == slow["over_answer_bound"], slow
    # Every killed replica runs again: the scenarios leave the deployment as they found it.
    status = site.supervisorctl("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("RUNNING") == len(INSTANCES) * REPLICAS, status.stdout


class Traffic(threading.Thread):
    """Light traffic through the gateway, from its own client address (127.0.0.2) so the
    probes' share of the per-client rate limit does not count against it."""

    def __init__(self, port: int, context: ssl.SSLContext, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.port, self.context, self.every = port, context, every
        self.results: list[tuple[float, int | str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status, _, _ = _gateway_get(self.port, "/readyz", self.context, "127.0.0.2")
                self.results.append((time.monotonic(), status))
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((time.monotonic(), repr(exc)))
            self.stopping.wait(self.every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def _firing(site: SiteDeployment, instance: str) -> list[dict[str, Any]]:
    alerts = _get_json(site.url(PROMETHEUS, "/api/v1/alerts"))["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == "ZwfwServiceDown"
        and a["labels"].get("instance") == instance
        and a["state"] == "firing"
    ]


def test_killing_a_hall_replica_under_traffic_loses_no_request_and_pages(
    site: SiteDeployment,
) -> None:
    context = _verified_context(site.bundle)
    victim_port = site.replica_ports("province-a-hall")[0]
    victim, survivor = f"127.0.0.1:{victim_port}", f"127.0.0.1:{victim_port + 1}"
    program = "zwfw-province-a-hall-1"
    pid = int(site.supervisorctl("pid", program).stdout.strip())

    traffic = Traffic(site.gateway_port("province-a-hall"), context)
    traffic.start()
    try:
        time.sleep(3)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        # supervisord would restart it; keep it down so the alert has something to report.
        site.supervisorctl("stop", program)
        time.sleep(6)
    finally:
        traffic.stop()
    try:
        before = [s for t, s in traffic.results if t < killed_at]
        after = [s for t, s in traffic.results if t >= killed_at]
        assert len(before) >= 5, traffic.results
        assert len(after) >= 10, traffic.results
        failed = [status for _, status in traffic.results if status != 200]
        assert not failed, failed
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", victim_port)) != 0, "the replica still answers"

        # Prometheus notices the dead replica, and only that one ...
        firing = _eventually(
            lambda: _firing(site, victim) or None, 120, f"ZwfwServiceDown for {victim} to fire"
        )
        assert firing[0]["labels"]["job"] == "zwfw-hall"
        assert firing[0]["labels"]["region_code"] == "340000"
        assert firing[0]["labels"]["severity"] == "page"
        assert not _firing(site, survivor)

        # ... Alertmanager has it ...
        def in_alertmanager() -> list[dict[str, Any]] | None:
            query = urllib.parse.quote('alertname="ZwfwServiceDown"')
            alerts = _get_json(site.url(ALERTMANAGER, f"/api/v2/alerts?filter={query}"))
            found = [a for a in alerts if a["labels"].get("instance") == victim]
            return found or None

        (held,) = _eventually(in_alertmanager, 90, "the alert to reach Alertmanager")
        assert held["status"]["state"] == "active"

        # ... and sends it to the operators' receiver.
        assert site.receiver is not None
        receiver = site.receiver

        def notified() -> list[dict[str, Any]] | None:
            found = [
                a
                for a in receiver.alerts()
                if a["labels"].get("alertname") == "ZwfwServiceDown"
                and a["labels"].get("instance") == victim
                and a["status"] == "firing"
            ]
            return found or None

        _eventually(notified, 90, "Alertmanager's notification of the webhook receiver")

        # The public endpoint never stopped answering: its probe keeps succeeding.
        hall_probe = f"https://127.0.0.1:{site.gateway_port('province-a-hall')}/readyz"
        answer = _get_json(
            site.url(PROMETHEUS, "/api/v1/query?query=")
            + urllib.parse.quote(f'min_over_time(probe_success{{instance="{hall_probe}"}}[30s])')
        )
        assert [r["value"][1] for r in answer["data"]["result"]] == ["1"]
    finally:
        site.supervisorctl("start", program)


def _nginx_workers(master: int) -> set[int]:
    """PIDs of the processes the nginx master ``master`` runs (its workers)."""
    workers = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid …": comm may hold spaces and parentheses.
            parent = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if parent == master:
            workers.add(int(stat_file.parent.name))
    return workers


def _changed_tasks(output: str) -> list[str]:
    """The task and handler names (without their role) that reported "changed" in a run."""
    changed, task = [], ""
    for line in output.splitlines():
        header = re.match(r"(?:TASK|RUNNING HANDLER) \[(?:[^\]]* : )?([^\]]*)\]", line)
        if header:
            task = header.group(1)
        elif line.startswith("changed:"):
            changed.append(task)
    return changed


def test_rerun_reloads_only_what_changed(
    site: SiteDeployment,
    supervised: Callable[[Path], dict[str, int]],
    recap: Callable[[str], dict[str, int]],
) -> None:
    services_conf = site.state / "etc" / "supervisord.conf"
    monitoring_conf = site.state / "monitoring" / "supervisord.conf"
    master = int((site.state / "gateway" / "nginx.pid").read_text())
    services, monitoring, workers = (
        supervised(services_conf), supervised(monitoring_conf), _nginx_workers(master),
    )  # fmt: skip
    assert {"prometheus", "alertmanager", "blackbox-exporter"} <= monitoring.keys()
    assert workers

    # Two rendered files edited by hand: the rerun puts them back and changes nothing else
    # (every other task of the play is idempotent), nginx reloads them (same master, new
    # workers) and Prometheus restarts; Alertmanager, the exporter and the replicas stay.
    edited = [site.state / "gateway" / "nginx.conf", site.state / "monitoring" / "prometheus.yml"]
    rendered = {path: path.read_text(encoding="utf-8") for path in edited}
    for path, text in rendered.items():
        path.write_text(text + "# edited by hand\n", encoding="utf-8")
    fixed = site.play("site.yml")
    assert fixed.returncode == 0, fixed.stdout[-6000:] + fixed.stderr[-3000:]
    assert sorted(_changed_tasks(fixed.stdout)) == sorted([
        "Render the nginx configuration (checked with nginx -t when nginx is installed)",
        "Reload nginx",
        "Prometheus configuration (checked with promtool)",
        "Restart Prometheus",
    ]), fixed.stdout[-6000:]  # fmt: skip
    assert recap(fixed.stdout)["changed"] == 4, fixed.stdout[-3000:]
    assert {path: path.read_text(encoding="utf-8") for path in edited} == rendered
    assert supervised(services_conf) == services
    now = supervised(monitoring_conf)
    assert {name for name in monitoring if now[name] != monitoring[name]} == {"prometheus"}
    assert int((site.state / "gateway" / "nginx.pid").read_text()) == master
    _eventually(
        lambda: (_nginx_workers(master) - workers) or None, 30, "nginx workers started by a reload"
    )


def test_teardown_stops_everything_and_drops_the_databases(site: SiteDeployment) -> None:
    assert _databases(site.cluster, site.database_prefix)
    down = site.play("teardown.yml")
    site.torn_down = True
    assert down.returncode == 0, down.stdout[-6000:] + down.stderr[-3000:]
    # Nothing of the deployment listens any more (the alert receiver is the test's own).
    listening = []
    for offset in PORT_SPAN:
        if offset == WEBHOOK:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", site.port_base + offset)) == 0:
                listening.append(site.port_base + offset)
    assert not listening
    assert _databases(site.cluster, site.database_prefix) == []
    for pid in ("run/supervisord.pid", "monitoring/run/supervisord.pid", "gateway/nginx.pid"):
        assert not (site.state / pid).exists(), pid
