"""The alerting rules in charts/monitoring: valid, unit-tested per alert, and in line with the
SLO profile and the metrics the services really export."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from zwfw.services.kit.metrics import LATENCY_BUCKETS

MONITORING = Path(__file__).resolve().parents[2] / "charts" / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.test.yml"))

# What the issue asks the monitoring to catch; each must be an alert in the rules.
REQUIRED_ALERTS = {
    "ZwfwServiceDown",
    "ZwfwEndpointProbeFailed",
    "ZwfwErrorBudgetBurnFast",
    "ZwfwErrorBudgetBurnSlow",
    "ZwfwLatencyBudgetBurnFast",
    "ZwfwLatencyBudgetBurnSlow",
    "ZwfwCertificateExpiringSoon",
    "ZwfwOverdueCases",
    "ZwfwOverdueRectifications",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in _load(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = rule
    return found


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_promtool_accepts_every_rule_file(promtool: str) -> None:
    assert RULE_FILES, "no rule files in charts/monitoring/rules"
    result = _run(promtool, "check", "rules", *map(str, RULE_FILES), cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert TEST_FILES, "no promtool tests in charts/monitoring/tests"
    result = _run(promtool, "test", "rules", *map(str, TEST_FILES), cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_reports_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """A quiet service must not fire ZwfwServiceDown; claiming it does is a failing test."""
    wrong = {
        "rule_files": [str(MONITORING / "rules" / "zwfw-availability.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'up{job="zwfw-hall", instance="a", region_code="340000"}',
                        "values": "1x10",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "ZwfwServiceDown",
                        "exp_alerts": [{"exp_labels": {"severity": "page", "job": "zwfw-hall"}}],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "wrong.test.yml"
    test_file.write_text(yaml.safe_dump(wrong), encoding="utf-8")
    result = _run(promtool, "test", "rules", str(test_file), cwd=tmp_path)
    assert result.returncode != 0
    assert "ZwfwServiceDown" in result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    missing = REQUIRED_ALERTS - set(_alerts())
    assert not missing, f"alerts missing from charts/monitoring/rules: {sorted(missing)}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), f"alerts never tested firing: {sorted(alerts - firing)}"
    assert alerts - quiet == set(), f"alerts never tested quiet: {sorted(alerts - quiet)}"


def test_slo_alerts_use_the_slo_profile() -> None:
    profile = _load(MONITORING / "slo-profile.yaml")
    assert profile["normative"] is False
    alerts = _alerts()
    availability_budget = f"(1 - {profile['availability']['objective']:g})"
    latency_budget = f"(1 - {profile['latency']['quantile']:g})"
    rates = {f"{b['burn_rate']:g}" for b in profile["burn_rate_alerts"]}
    for name, budget in (
        ("ZwfwErrorBudgetBurnFast", availability_budget),
        ("ZwfwErrorBudgetBurnSlow", availability_budget),
        ("ZwfwLatencyBudgetBurnFast", latency_budget),
        ("ZwfwLatencyBudgetBurnSlow", latency_budget),
    ):
        expr = alerts[name]["expr"]
        thresholds = re.findall(r"\(([\d.]+) \* (\(1 - [\d.]+\))\)", expr)
        assert thresholds, f"{name}: no burn-rate threshold in {expr!r}"
        for rate, used_budget in thresholds:
            assert used_budget == budget, f"{name} uses {used_budget}, the profile says {budget}"
            assert rate in rates, f"{name} burns at {rate}x, not a rate of the profile"
    # Every window pair of the profile appears in some burn-rate alert.
    exprs = " ".join(alerts[n]["expr"] for n in alerts if "BudgetBurn" in n)
    for pair in profile["burn_rate_alerts"]:
        for window in (pair["long_window"], pair["short_window"]):
            assert f":rate{window} " in exprs, f"window {window} of the profile is unused"


def test_latency_threshold_is_a_bucket_the_services_export() -> None:
    """`le` must be a real bucket bound of the kit's histogram, spelt as the client spells it."""
    threshold = _load(MONITORING / "slo-profile.yaml")["latency"]["threshold_seconds"]
    assert threshold in LATENCY_BUCKETS
    rules = (MONITORING / "rules" / "zwfw-slo.rules.yml").read_text(encoding="utf-8")
    bounds = set(re.findall(r'le="([^"]+)"', rules))
    assert bounds == {repr(float(threshold))}


@pytest.mark.parametrize(
    "metric",
    ["zwfw_http_requests_total", "zwfw_http_request_duration_seconds_bucket"],
)
def test_rules_name_metrics_the_kit_exports(metric: str) -> None:
    from zwfw.services.kit.metrics import Metrics

    metrics = Metrics(service="hall", version="1", region_code="340000")
    metrics.observe("GET", "/items", 200, 0.2)
    exposition = metrics.exposition().decode()
    assert f"\n{metric}{{" in exposition
    rules = (MONITORING / "rules" / "zwfw-slo.rules.yml").read_text(encoding="utf-8")
    assert metric in rules


@pytest.mark.parametrize("gauge", ["zwfw_hub_overdue_cases", "zwfw_hub_overdue_rectifications"])
def test_supervision_rules_name_the_hub_gauges(gauge: str) -> None:
    import inspect

    from zwfw.services.hub.service import supervision

    assert f'"{gauge}"' in inspect.getsource(supervision.SupervisionCollector)
    rules = (MONITORING / "rules" / "zwfw-supervision.rules.yml").read_text(encoding="utf-8")
    assert f"({gauge})" in rules
