"""Certification harness: target profiles, the requirement catalog, the pytest plugin, runs.

A run takes a target profile (the province under test), collects the conformance suites with
the `zwfw` pytest plugin, and turns per-test outcomes into a verdict per requirement.
"""

from __future__ import annotations

from zwfw.harness.errors import CatalogError, HarnessConfigError, ProfileError, SuiteError

__all__ = ["CatalogError", "HarnessConfigError", "ProfileError", "SuiteError"]
