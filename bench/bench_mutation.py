"""Mutation scores of the reference services against the conformance suites.

A mutation run takes up to an hour, so `make bench` does not start one: the figures come from
the last `make mutation` (`out/mutation/results.json`, or `$ZWFW_MUTATION_RESULTS`), which
also merges them into bench/results.json itself (`python bench/bench_mutation.py`).

Figures (killed / killed + survived, over competent mutants not marked equivalent):
- per service: the score, beside the share of its run mutants that some conformance test
  executes at all (a mutant never executed cannot be killed: the baseline is the ceiling
  the suites' reach puts on the score);
- per requirement: the score of the mutants its tests exercise, beside the run's overall score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from figure import Figure

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "out" / "mutation" / "results.json"
MODULE = "bench_mutation"


def _percent(value: float | None) -> float:
    return 100.0 * value if value is not None else 0.0


def figures_from(document: dict[str, Any]) -> list[Figure]:
    when = document["generated_at"][:10]
    overall = document["overall"]
    figures = []
    for service, tally in document["services"].items():
        reached = tally["scored"] - tally["not_covered"]
        figures.append(
            Figure(
                f"mutation score of {service} ({tally['scored']} mutants, run of {when})",
                _percent(tally["score"]),
                "%",
                "share of those mutants a conformance test executes",
                100.0 * reached / tally["scored"] if tally["scored"] else 0.0,
            )
        )
    for requirement, tally in document["requirements"].items():
        figures.append(
            Figure(
                f"mutation score of {requirement} ({tally['scored']} mutants its tests "
                f"exercise, run of {when})",
                _percent(tally["score"]),
                "%",
                "overall mutation score of the run",
                _percent(overall["score"]),
            )
        )
    return figures


def _results_path() -> Path:
    return Path(os.environ.get("ZWFW_MUTATION_RESULTS", DEFAULT_RESULTS))


def figures() -> list[Figure]:
    path = _results_path()
    if not path.is_file():
        print(f"bench_mutation: no mutation results at {path}; run make mutation", file=sys.stderr)
        return []
    return figures_from(json.loads(path.read_text(encoding="utf-8")))


def merge(results: Path, out: Path) -> int:
    """Replace this module's figures in `out` (bench/results.json) with those of `results`."""
    document = json.loads(results.read_text(encoding="utf-8"))
    existing: dict[str, Any] = {"figures": []}
    if out.is_file():
        existing = json.loads(out.read_text(encoding="utf-8"))
    kept = [f for f in existing.get("figures", []) if f.get("module") != MODULE]
    fresh = [{**figure.as_dict(), "module": MODULE} for figure in figures_from(document)]
    existing["figures"] = kept + fresh
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(existing, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"bench_mutation: {len(fresh)} figures merged into {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=_results_path())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args()
    if not args.results.is_file():
        print(f"bench_mutation: {args.results}: no such file; run make mutation", file=sys.stderr)
        return 2
    return merge(args.results, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
