"""The Kubernetes target's tests: the Pulumi program (infra/) run under Pulumi's mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The program and the policy pack are Pulumi projects, not parts of the zwfw package.
for folder in (ROOT / "infra", ROOT / "infra" / "policy"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from zwfw_infra.render import Rendered, render  # noqa: E402

STACKS = ("demo", "province-example")


@pytest.fixture(scope="session")
def rendered_stacks() -> dict[str, Rendered]:
    return {stack: render(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def demo(rendered_stacks: dict[str, Rendered]) -> Rendered:
    return rendered_stacks["demo"]


@pytest.fixture(scope="session")
def province(rendered_stacks: dict[str, Rendered]) -> Rendered:
    return rendered_stacks["province-example"]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, rendered_stacks: dict[str, Rendered]) -> Rendered:
    return rendered_stacks[request.param]
