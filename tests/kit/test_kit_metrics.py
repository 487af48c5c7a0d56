"""Prometheus metrics labelled by route template, one registry per app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from kit_example_service import build
from prometheus_client.parser import text_string_to_metric_families


def _samples(client: TestClient, name: str) -> list:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    for code in ("alpha", "beta", "110101199003074578"):
        client.get(f"/notes/{code}")
    client.get("/greeting")
    client.get("/random/scanner/path")
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in _samples(client, "zwfw_http_requests_total")
    }
    assert counts[("GET", "/notes/{code}", "404")] == 3
    assert counts[("GET", "/greeting", "200")] == 1
    assert counts[("GET", "<unmatched>", "404")] == 1
    assert not any("alpha" in route or "scanner" in route for _, route, _ in counts)


def test_latency_histogram_by_route_and_status(client: TestClient) -> None:
    client.get("/greeting")
    buckets = [
        s
        for s in _samples(client, "zwfw_http_request_duration_seconds_bucket")
        if s.labels["route"] == "/greeting"
    ]
    assert {s.labels["status"] for s in buckets} == {"200"}
    assert max(s.value for s in buckets) == 1  # the +Inf bucket holds the one request
    assert "3.0" in {s.labels["le"] for s in buckets}


def test_each_app_has_its_own_registry(make_settings: Callable) -> None:
    with TestClient(build(make_settings())) as first, TestClient(build(make_settings())) as second:
        first.get("/greeting")
        first.get("/greeting")
        second.get("/greeting")

        def count(client: TestClient) -> float:
            return sum(
                s.value
                for s in _samples(client, "zwfw_http_requests_total")
                if s.labels["route"] == "/greeting"
            )

        assert (count(first), count(second)) == (2, 1)


def test_service_info_is_exposed(make_settings: Callable) -> None:
    with TestClient(build(make_settings(region_code="330000"))) as client:
        info = _samples(client, "zwfw_service_info")
    assert info[0].labels == {"service": "example", "version": "0.0.1", "region_code": "330000"}
