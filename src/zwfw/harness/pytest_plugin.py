"""Pytest plugin: runs conformance suites against a target profile."""
