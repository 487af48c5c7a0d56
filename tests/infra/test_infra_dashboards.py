"""The Grafana dashboards (charts/monitoring/dashboards): well-formed, and every query asks for
series that really exist: metrics the services export, the rules' recorded series, route
templates and methods the services serve, the jobs and labels the scrape configuration sets."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from zwfw_infra.monitoring import dashboard_files, rule_files
from zwfw_infra.render import Rendered

from zwfw.services.hub.service.supervision import SupervisionCollector
from zwfw.services.kit.metrics import Metrics
from zwfw.services.kit.outbox import Dispatcher

# A series selector; quoted values may hold braces (route templates such as /cases/{number}).
SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[^}"]|"[^"]*")*)\}')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
VARIABLE = re.compile(r"\$(\w+)")
LABEL_VALUES = re.compile(
    r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s*,\s*(\w+)\s*\)"
)
SERVICES = ("identity", "hall", "elicense", "eseal", "hub")
# Series Prometheus itself and the blackbox exporter make.
BUILTIN = {"up", "probe_success", "probe_ssl_earliest_cert_expiry"}
# Labels on every zwfw target (the ServiceMonitor's and Probe's relabelling, Prometheus).
TARGET_LABELS = {"job", "instance", "region_code", "service", "namespace", "pod", "endpoint"}


def _sample_names(registry: CollectorRegistry) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(
            family.type, [""]
        )
        labels = {label for sample in family.samples for label in sample.labels}
        for suffix in suffixes:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


@cache
def known_series() -> dict[str, set[str]]:
    """Series name → its own labels, from the code that exports them."""
    registry = CollectorRegistry()
    metrics = Metrics(service="hall", version="0", region_code="340000")
    metrics.observe("GET", "/items", 200, 0.1)
    series = _sample_names(metrics.registry)
    series["zwfw_http_requests_in_progress"] = set()
    dispatcher_registry = CollectorRegistry()
    Dispatcher(None, None, registry=dispatcher_registry)  # type: ignore[arg-type]
    series.update(
        {
            "zwfw_outbox_messages": {"state"},
            **{n: {"outcome"} for n in _sample_names(dispatcher_registry) if n.endswith("_total")},
        }
    )
    for family in SupervisionCollector(None, None)._families():  # type: ignore[arg-type]
        series[family.name] = {"region_code"}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    series[rule["record"]] = set()
    for name in BUILTIN:
        series[name] = set()
    del registry
    return series


@cache
def served_routes(service: str) -> set[tuple[str, str]]:
    module = __import__(f"zwfw.services.{service}.openapi", fromlist=["document"])
    document = module.document()
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    found += [
        ("templating", variable["query"])
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def problems(dashboard: dict[str, Any]) -> list[str]:
    """What is wrong with a dashboard: structure, and queries for series nobody exports."""
    found: list[str] = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            found.append(f"no {key}")
    if found:
        return found
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids = [p.get("id") for p in dashboard["panels"]]
    if len(ids) != len(set(ids)) or None in ids:
        found.append("panel ids are missing or repeated")
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            found.append(f"panel {panel.get('title')}: no gridPos")
            continue
        if grid["x"] + grid["w"] > 24:
            found.append(f"panel {panel['title']}: wider than the 24-column grid")
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        if mine & cells:
            found.append(f"panel {panel['title']}: overlaps another panel")
        cells |= mine
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            found.append(f"panel {panel['title']}: not on the dashboard's data source variable")
        if not panel.get("targets"):
            found.append(f"panel {panel['title']}: no query")
        for target in panel.get("targets", []):
            if not target.get("refId") or not target.get("expr"):
                found.append(f"panel {panel['title']}: a target without refId or expr")
    series = known_series()
    for title, query in _queries(dashboard):
        for variable in VARIABLE.findall(query):
            if variable not in variables:
                found.append(f"{title}: ${variable} is not a dashboard variable")
        variable_query = LABEL_VALUES.fullmatch(query.strip())
        if variable_query:
            name, matchers, label = variable_query.groups()
            if label not in series.get(name, set()) | TARGET_LABELS:
                found.append(f"{title}: {name} has no label {label}")
            query = f"{name}{matchers or '{}'}"
        selectors = SELECTOR.findall(query)
        if not selectors:
            found.append(f"{title}: no series selector in {query!r}")
        for name, matchers in selectors:
            if name not in series:
                found.append(f"{title}: no service exports or records {name}")
                continue
            parsed = MATCHER.findall(matchers)
            labels = {label: (op, value) for label, op, value in parsed}
            for label in labels:
                if label not in series[name] | TARGET_LABELS:
                    found.append(f"{title}: {name} has no label {label}")
            job = labels.get("job")
            if job and job[0] == "=":
                service = job[1].removeprefix("zwfw-")
                if service not in (*SERVICES, "probe"):
                    found.append(f"{title}: no scrape job {job[1]}")
                elif "route" in labels and labels["route"][0] == "=":
                    method = labels.get("method", ("=", "GET"))[1]
                    if (method, labels["route"][1]) not in served_routes(service):
                        found.append(f"{title}: {service} serves no {method} {labels['route'][1]}")
    return found


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in dashboard_files()}


def test_the_three_dashboards_are_there(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"services.json", "case-deadlines.json", "evaluations.json"}
    assert len({d["uid"] for d in dashboards.values()}) == 3


@pytest.mark.parametrize("name", ["services.json", "case-deadlines.json", "evaluations.json"])
def test_a_dashboard_is_well_formed_and_queries_real_series(
    dashboards: dict[str, dict[str, Any]], name: str
) -> None:
    assert problems(dashboards[name]) == []


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (
            lambda d: d["panels"][0]["targets"][0].__setitem__(
                "expr", 'rate(zwfw_http_request_total{job="zwfw-hall"}[5m])'
            ),
            "no service exports or records zwfw_http_request_total",
        ),
        (
            lambda d: d["panels"][2]["targets"][0].__setitem__(
                "expr", d["panels"][2]["targets"][0]["expr"].replace("/cases", "/case")
            ),
            "hall serves no POST /case",
        ),
        (
            lambda d: d["panels"][2]["targets"][0].__setitem__(
                "expr", d["panels"][2]["targets"][0]["expr"].replace("zwfw-hall", "zwfw-halls")
            ),
            "no scrape job zwfw-halls",
        ),
        (
            lambda d: d["panels"][0]["targets"][0].__setitem__(
                "expr", 'max(zwfw_hub_overdue_cases{province="340000"})'
            ),
            "has no label province",
        ),
        (
            lambda d: d["panels"][0]["targets"][0].__setitem__(
                "expr", 'max(zwfw_hub_overdue_cases{region_code=~"$province"})'
            ),
            "$province is not a dashboard variable",
        ),
        (
            lambda d: d["panels"][3]["targets"][0].__setitem__(
                "expr",
                d["panels"][3]["targets"][0]["expr"].replace("{number}/steps", "{case}/steps"),
            ),
            "hall serves no POST /cases/{case}/steps",
        ),
        (lambda d: d["panels"][1]["gridPos"].__setitem__("x", 0), "overlaps"),
        (lambda d: d["panels"][1].__setitem__("id", 1), "repeated"),
    ],
)
def test_the_check_catches_a_broken_dashboard(
    dashboards: dict[str, dict[str, Any]], breaks, message: str
) -> None:
    dashboard = copy.deepcopy(dashboards["case-deadlines.json"])
    breaks(dashboard)
    assert any(message in p for p in problems(dashboard)), problems(dashboard)


def test_dashboards_ship_as_configmaps_for_the_grafana_sidecar(
    stack: Rendered, dashboards: dict[str, dict[str, Any]]
) -> None:
    shipped = {
        c["metadata"]["name"]: c
        for c in stack.of_kind("ConfigMap")
        if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    }
    assert len(shipped) == len(dashboards)
    for name, dashboard in dashboards.items():
        config_map = shipped[f"zwfw-dashboard-{name.removesuffix('.json')}"]
        assert config_map["metadata"]["namespace"] == "monitoring"
        assert json.loads(config_map["data"][name]) == dashboard
