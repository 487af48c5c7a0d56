"""The Containerfile builds what the Kubernetes target runs: a pinned slim base, the project
installed in a build stage, a final stage without build tools, running as the uid the pods
run as."""

from __future__ import annotations

import re

from zwfw_infra.paths import REPOSITORY
from zwfw_infra.service import RUN_AS

CONTAINERFILE = REPOSITORY / "Containerfile"


def _stages() -> list[list[str]]:
    lines: list[str] = []
    for raw in CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_two_stages_on_one_pinned_slim_base() -> None:
    stages = _stages()
    assert len(stages) == 2
    bases = [stage[0].split()[1] for stage in stages]
    assert bases[0] == bases[1]
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-[a-z]+", bases[0])


def test_the_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    build, final = _stages()
    assert any("build-essential" in line for line in build)
    assert not any(re.search(r"apt-get|build-essential|gcc|pip install", line) for line in final)
    assert any(line.startswith("COPY --from=build /opt/zwfw /opt/zwfw") for line in final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users == [f"{RUN_AS}:{RUN_AS}"]
    assert 'ENTRYPOINT ["zwfw"]' in final
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in final)
