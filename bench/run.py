"""Run every `bench/bench_*.py` module and write the figures to a JSON file.

Each module defines `figures() -> list[Figure]`. Figures are always paired with a baseline
measured in the same run, because absolute numbers on shared machines are noise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--only", action="append", default=[], help="module suffix, e.g. codes")
    args = parser.parse_args()

    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.removeprefix("bench_") in args.only]
    if not modules:
        print("bench: no benchmark modules selected", file=sys.stderr)
        return 2

    results: list[dict[str, object]] = []
    for name in modules:
        started = time.perf_counter()
        for figure in importlib.import_module(name).figures():
            entry = figure.as_dict()
            entry["module"] = name
            results.append(entry)
            print(
                f"{entry['name']}: {entry['value']} {entry['unit']} "
                f"(baseline {figure.baseline_name}: {entry['baseline']['value']}; "
                f"ratio {entry['ratio']})"
            )
        print(f"[{name}] {time.perf_counter() - started:.1f}s", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "figures": results,
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
