"""Prometheus metrics, one registry per app so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets in seconds, around the ≤ 3 s page response that provincial tenders ask for.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

# Requests that matched no route share one label value, so scanners cannot blow up cardinality.
UNMATCHED_ROUTE = "<unmatched>"


class Metrics:
    """Request count and latency by method, route template and status."""

    def __init__(self, *, service: str, version: str, region_code: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "zwfw_http_requests",
            "HTTP requests handled, by route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "zwfw_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template and status.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "zwfw_http_requests_in_progress",
            "HTTP requests being handled now.",
            registry=self.registry,
        )
        info = Gauge(
            "zwfw_service_info",
            "Constant 1, labelled with what this process serves.",
            ("service", "version", "region_code"),
            registry=self.registry,
        )
        info.labels(service=service, version=version, region_code=region_code).set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
