"""Kubernetes target: rendering a 30-tenant stack (the national side, 9 provinces and 20
departments, production settings) under Pulumi's mocks, and how many objects it makes.

Baselines, same run: rendering a one-tenant stack (the national side alone) for the time and
object count, and plain YAML dumping of the same 30-tenant objects, which shows what the
program and the mocks cost above merely writing the manifests.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml
from figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))

from zwfw_infra.render import Rendered, ordered, render  # noqa: E402

TENANTS = 30
PROVINCES = (
    "110000",
    "120000",
    "130000",
    "310000",
    "320000",
    "330000",
    "340000",
    "350000",
    "360000",
)


def _values(provinces: tuple[str, ...], departments: int) -> dict[str, Any]:
    backup = {"method": "volumeSnapshot", "snapshotClass": "csi-snapshots"}
    return {
        "environment": "production",
        "domain": "zwfw.bench.example",
        "image": {
            "repository": "registry.bench.example/zwfw/zwfw",
            "tag": "0.1.0",
            "digest": "sha256:" + "ab" * 32,
        },
        "publicIssuer": {"kind": "ClusterIssuer", "name": "bench-ca"},
        "cluster": {"apiServerCidrs": ["10.0.0.1/32"]},
        "national": {"database": {"backup": backup}},
        "provinces": [
            {"name": f"province-{code}", "regionCode": code, "database": {"backup": backup}}
            for code in provinces
        ],
        "departments": [{"name": f"department-{n:02d}"} for n in range(departments)],
    }


def _timed_render(values: dict[str, Any]) -> tuple[float, Rendered]:
    started = time.perf_counter()
    rendered = render("bench", values=values)
    return time.perf_counter() - started, rendered


def figures() -> list[Figure]:
    one_seconds, one = _timed_render(_values((), 0))
    many_seconds, many = _timed_render(_values(PROVINCES, TENANTS - 1 - len(PROVINCES)))
    assert len(many.of_kind("Namespace")) == TENANTS
    started = time.perf_counter()
    for obj in many.objects:
        yaml.safe_dump(ordered(obj), sort_keys=False, allow_unicode=True)
    dump_seconds = time.perf_counter() - started
    return [
        Figure(
            "infra_render_30_tenants_seconds",
            many_seconds,
            "s",
            "infra_render_1_tenant_seconds",
            one_seconds,
            higher_is_better=False,
        ),
        Figure(
            "infra_objects_30_tenants",
            len(many.objects),
            "objects",
            "infra_objects_1_tenant",
            len(one.objects),
        ),
        Figure(
            "infra_render_30_tenants_seconds_vs_yaml_dump",
            many_seconds,
            "s",
            "yaml_dump_30_tenant_objects_seconds",
            dump_seconds,
            higher_is_better=False,
        ),
    ]
