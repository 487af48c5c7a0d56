"""bench/bench_mutation.py: figures from a run's results, merged into bench/results.json."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_mutation", BENCH / "bench_mutation.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_mutation", module)
    spec.loader.exec_module(module)
    return module


def tally(killed: int, survived: int, not_covered: int) -> dict[str, object]:
    scored = killed + survived
    return {
        "killed": killed,
        "survived": survived,
        "not_covered": not_covered,
        "scored": scored,
        "score": killed / scored if scored else None,
    }


RESULTS = {
    "generated_at": "2026-12-01T23:00:00+00:00",
    "overall": tally(6, 4, 2),
    "services": {"hall": tally(3, 1, 1), "eseal": tally(3, 3, 1)},
    "requirements": {"IC-SEAL-001": tally(2, 2, 0)},
}


def test_figures_pair_scores_with_reach_and_the_overall_score(
    bench: ModuleType, tmp_path: Path
) -> None:
    figures = {f.name: f for f in bench.figures_from(RESULTS)}
    hall = figures["mutation score of hall (4 mutants, run of 2026-12-01)"]
    assert (hall.value, hall.baseline_value) == (75.0, 75.0)
    eseal = figures["mutation score of eseal (6 mutants, run of 2026-12-01)"]
    assert (eseal.value, round(eseal.baseline_value, 1)) == (50.0, 83.3)
    seal = next(f for f in figures.values() if "IC-SEAL-001" in f.name)
    assert (seal.value, seal.baseline_value) == (50.0, 60.0)


def test_merge_replaces_only_its_own_figures(bench: ModuleType, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS), encoding="utf-8")
    out = tmp_path / "bench.json"
    other = {"name": "certify", "value": 20.0, "module": "bench_certify"}
    stale = {"name": "old score", "value": 1.0, "module": "bench_mutation"}
    out.write_text(json.dumps({"python": "3.11", "figures": [other, stale]}), encoding="utf-8")
    assert bench.merge(results, out) == 0
    merged = json.loads(out.read_text(encoding="utf-8"))
    assert merged["python"] == "3.11"
    names = [f["name"] for f in merged["figures"]]
    assert names[0] == "certify"
    assert "old score" not in names
    assert len(names) == 1 + 3
    assert all(f["module"] == "bench_mutation" for f in merged["figures"][1:])
