"""Where the shared deployment material is: ``charts/`` at the repository root."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
CHARTS = REPOSITORY / "charts"
PREREQUISITES = CHARTS / "prerequisites.yaml"
RULES = CHARTS / "monitoring" / "rules"
DASHBOARDS = CHARTS / "monitoring" / "dashboards"
CRDS = CHARTS / "crds"
LOADTESTS = REPOSITORY / "loadtests"
LOAD_PROFILES = LOADTESTS / "profiles"
