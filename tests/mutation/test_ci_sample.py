"""The fixed sample end to end, as `make mutation` runs a session: a reference platform, the
attribution run under coverage, a mutant that certification must kill and one reviewed as
equivalent, clean runs, and the results, survivors and table written from the session.

This is what keeps the mutation machinery from rotting: if a refactoring breaks any step
(cosmic-ray's mutation in the worker's copy, the restart from it, the scoped certify run, the
attribution, the equivalent file), this test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zwfw.harness.mutation.report import TABLE_BEGIN, TABLE_END

REPO = Path(__file__).resolve().parents[2]
ZWFW = str(Path(sys.executable).with_name("zwfw"))
SAMPLE = REPO / "conformance" / "mutation" / "ci-sample.yaml"


def zwfw(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZWFW_", "PYTEST_"))}
    return subprocess.run(
        [ZWFW, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_fixed_sample_kills_one_mutant_and_finds_the_equivalent_one(tmp_path: Path) -> None:
    out = tmp_path / "mutation"
    run = zwfw("mutation", "run", "--sample-file", SAMPLE, "--out", out, "--workers", "1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    results = {r["context"]: r for r in document["results"]}
    killed = results["if end <= start:"]
    assert killed["outcome"] == "killed"
    assert {"IC-SEAL-001", "IC-SEAL-002", "IC-SEAL-003"} <= set(killed["failed"])
    # Attributed through the attribution run: the seal suite's tests reach make_seal.
    assert killed["suites"] == ["conformance/seal/test_seal.py"]
    assert "IC-SEAL-003" in killed["requirements"]
    equivalent = results["_STATUS_CACHE_LIMIT = 10_000"]
    assert equivalent["outcome"] == "survived"
    assert equivalent["equivalent"]
    assert document["survivors"] == []
    assert document["services"]["eseal"]["score"] == 1.0
    assert document["services"]["eseal"]["equivalent"] == 1
    assert document["requirements"]["IC-SEAL-003"]["failed_it"] == 1
    assert "Survivors not marked equivalent" not in run.stdout
    attribution = json.loads((out / "attribution.json").read_text(encoding="utf-8"))
    assert any(test.startswith("conformance/seal/") for test in attribution["tests"])

    # The session is cosmic-ray's: its own report reads it.
    dump = subprocess.run(
        [str(Path(sys.executable).with_name("cosmic-ray")), "dump", str(out / "session.sqlite")],
        capture_output=True,
        text=True,
        check=True,
    )
    outcomes = [json.loads(line)[1] for line in dump.stdout.splitlines()]
    assert sum(1 for o in outcomes if o and o.get("test_outcome") == "killed") == 1

    readme = tmp_path / "README.md"
    readme.write_text(f"# Scores\n\n{TABLE_BEGIN}\n{TABLE_END}\n", encoding="utf-8")
    table = zwfw("mutation", "table", "--results", out / "results.json", "--readme", readme)
    assert table.returncode == 0, table.stderr
    assert "| eseal | 1 | 0 (0) | 1 | 0 | 100%" in readme.read_text(encoding="utf-8")

    # Without the reviewed entry the equivalent mutant is a survivor, printed with its diff,
    # and the rewritten results say so.
    empty = tmp_path / "no-equivalents.yaml"
    empty.write_text("[]\n", encoding="utf-8")
    report = zwfw("mutation", "report", "--out", out, "--equivalents", empty)
    assert report.returncode == 0, report.stderr
    assert "Survivors not marked equivalent (1)" in report.stdout
    assert "-_STATUS_CACHE_LIMIT = 10_000" in report.stdout
    assert "+_STATUS_CACHE_LIMIT = 10001" in report.stdout
    rewritten = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(rewritten["survivors"]) == 1
    assert rewritten["services"]["eseal"]["score"] == 0.5
    assert rewritten["sample_file"] == str(SAMPLE)


def test_a_bad_sample_file_is_a_usage_error(tmp_path: Path) -> None:
    sample = tmp_path / "sample.yaml"
    sample.write_text(
        SAMPLE.read_text(encoding="utf-8").replace("if end <= start:", "if end < start:"),
        encoding="utf-8",
    )
    run = zwfw("mutation", "run", "--sample-file", sample, "--out", tmp_path / "out")
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "the code changed" in errors[0]
