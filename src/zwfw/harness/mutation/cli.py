"""`zwfw mutation`: mutation testing of the reference services against the conformance suites.

Exit codes: 0 the run gave a verdict on every mutant it ran (and met ``--fail-under`` and the
sample file's expectations, when given); 1 it did not meet them, or ``equivalents`` found
stale entries; 2 usage or configuration error, or no verdict (the platform did not start, the
suites do not pass on it, a clean run failed twice).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Literal

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zwfw.harness.errors import HarnessConfigError, describe_validation_error
from zwfw.harness.mutation.equivalents import MutantRef

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DEFAULT_OUT = Path("out") / "mutation"
RUN_FACTS = ("seed", "sample_size", "sample_file", "workers", "duration")

mutation_app = typer.Typer(
    name="mutation",
    help="Mutation testing of the reference services against the conformance suites.",
    no_args_is_help=True,
)


def _fail(command: str, error: object) -> typer.Exit:
    line = " ".join(str(error).split())
    if len(line) > 400:
        line = line[:399] + "…"
    typer.echo(f"zwfw mutation {command}: error: {line}", err=True)
    return typer.Exit(EXIT_CONFIG)


def _root() -> Path:
    from zwfw.harness.runner import suites_root

    return suites_root().resolve()


def _config_path(given: Path | None) -> Path:
    from zwfw.harness.mutation.config import CONFIG_PATH
    from zwfw.harness.requirements import conformance_dir

    return given if given is not None else conformance_dir() / CONFIG_PATH


def _equivalents_path(given: Path | None) -> Path:
    from zwfw.harness.mutation.config import EQUIVALENTS_PATH
    from zwfw.harness.requirements import conformance_dir

    return given if given is not None else conformance_dir() / EQUIVALENTS_PATH


def _require_cosmic_ray() -> None:
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        raise HarnessConfigError(
            "cosmic-ray is not installed: install the development extras (make install)"
        ) from None


class Expected(MutantRef):
    """A mutant of the fixed sample and the outcome it must have."""

    expect: Literal["killed", "survived", "incompetent", "timeout"]
    # For a killed mutant: requirements its run must fail.
    fails: list[str] = Field(default_factory=list)


class SampleFile(BaseModel):
    """A fixed sample (``conformance/mutation/ci-sample.yaml``): suites, platform, mutants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suites: list[str] = Field(min_length=1)
    provinces: int = Field(2, ge=1, le=2)
    mutants: list[Expected] = Field(min_length=1)


def load_sample_file(path: Path) -> SampleFile:
    from zwfw.harness.mutation.config import MutationConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise MutationConfigError(f"{path}: cannot read: {error}") from None
    except yaml.YAMLError:
        raise MutationConfigError(f"{path}: invalid YAML") from None
    try:
        return SampleFile.model_validate(data)
    except ValidationError as error:
        raise MutationConfigError(f"{path}: {describe_validation_error(error)}") from None


def _print_report(results: Any, root: Path, out: Path) -> None:
    from zwfw.harness.mutation.report import survivor_text

    survivors = results.survivors
    if survivors:
        typer.echo(f"\nSurvivors not marked equivalent ({len(survivors)}):")
        texts = [survivor_text(result, root) for result in survivors]
        (out / "survivors.txt").write_text("\n".join(texts), encoding="utf-8")
        for text in texts:
            typer.echo("\n" + text.rstrip())
    else:
        (out / "survivors.txt").write_text("", encoding="utf-8")
    typer.echo(
        "\nMutation scores (killed / killed + survived, equivalents and incompetents aside):"
    )
    for service, tally in results.by_service().items():
        data = tally.as_dict()
        score = "—" if data["score"] is None else f"{100 * data['score']:.1f}%"
        interval = data["interval"]
        span = f" [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}%]" if interval else ""
        typer.echo(
            f"  {service:<9} {score:>6}{span}  killed {data['killed']} (timeout "
            f"{data['timeout']}), survived {data['survived']} (not reached "
            f"{data['not_covered']}), equivalent {data['equivalent']}, incompetent "
            f"{data['incompetent']}, error {data['error']}"
        )
    overall = results.overall().as_dict()
    score = "—" if overall["score"] is None else f"{100 * overall['score']:.1f}%"
    typer.echo(f"  {'all':<9} {score:>6}  ({overall['scored']} scored mutants)")
    typer.echo(f"results: {out / 'results.json'}; survivors with diffs: {out / 'survivors.txt'}")


def _check_expectations(results: Any, sample: Any) -> list[str]:
    by_identity = {r.mutant.identity: r for r in results.results}
    problems = []
    for expected in sample.mutants:
        result = by_identity.get(expected.identity)
        if result is None:
            problems.append(f"{expected.key}: no result")
            continue
        outcome = (
            "killed"
            if result.outcome == "timeout" and expected.expect == "killed"
            else result.outcome
        )
        if outcome != expected.expect:
            problems.append(f"{expected.key}: {result.outcome}, expected {expected.expect}")
        missing = sorted(set(expected.fails) - set(result.failed))
        if missing:
            problems.append(f"{expected.key}: did not fail {', '.join(missing)}")
    return problems


@mutation_app.command("run")
def run_command(
    config_file: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="Default: conformance/mutation/cosmic-ray.toml."
    ),
    out: Path = typer.Option(DEFAULT_OUT, "--out", metavar="DIR", help="Session and results."),
    size: int | None = typer.Option(None, "--size", help="Sample size (default: the file's)."),
    seed: int | None = typer.Option(None, "--seed", help="Sample seed (default: the file's)."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel workers."),
    budget: float | None = typer.Option(
        None, "--budget-minutes", help="Stop starting mutants after this long."
    ),
    sample_file: Path | None = typer.Option(
        None,
        "--sample-file",
        metavar="FILE",
        help="Run these mutants (and check their expected outcomes) instead of a sample.",
    ),
    equivalents_file: Path | None = typer.Option(None, "--equivalents", metavar="FILE"),
    fail_under: float | None = typer.Option(
        None, "--fail-under", metavar="PERCENT", help="Exit 1 when the overall score is lower."
    ),
) -> None:
    """Run a session: sample, attribution run, mutants, clean runs; print the survivors not
    marked equivalent (with diffs) and the scores; write DIR/results.json."""
    from zwfw.harness.mutation.config import DISTRIBUTOR, load_config, with_overrides
    from zwfw.harness.mutation.equivalents import load_equivalents
    from zwfw.harness.mutation.report import collect
    from zwfw.harness.mutation.session import create_session
    from zwfw.harness.mutation.worker import WorkerError
    from zwfw.reference import PlatformError

    started = time.monotonic()
    try:
        _require_cosmic_ray()
        root = _root()
        sample = load_sample_file(sample_file) if sample_file is not None else None
        config = load_config(_config_path(config_file))
        config = with_overrides(
            config,
            workers=workers,
            budget_minutes=budget,
            size=size,
            seed=seed,
            provinces=sample.provinces if sample is not None else None,
        )
        equivalents = load_equivalents(_equivalents_path(equivalents_file))
        out = out.resolve()
        typer.echo("mutation: enumerating mutants (cosmic-ray init)", err=True)
        session = create_session(
            config, root, out, fixed=sample.mutants if sample is not None else None
        )
    except HarnessConfigError as error:
        raise _fail("run", error) from None
    typer.echo(
        f"mutation: {len(session.mutants)} mutants; running {len(session.selected)}; skipped: "
        + ", ".join(f"{n} {reason}" for reason, n in session.skipped.items()),
        err=True,
    )
    from cosmic_ray.commands import execute
    from cosmic_ray.work_db import WorkDB, use_db

    raw = copy.deepcopy(config.raw)
    section = raw["distributor"].setdefault(DISTRIBUTOR, {})
    section.update(config.distributor.model_dump(by_alias=True))
    section.update(
        {
            "root": str(root),
            "session-dir": str(out),
            "work-dir": str(out / "work"),
            "plan": str(session.plan_path),
            "suites": sample.suites if sample is not None else ["conformance"],
        }
    )
    stopped: Exception | None = None
    try:
        with use_db(str(session.path), WorkDB.Mode.open) as db:
            execute(db, raw)
    except (WorkerError, PlatformError, OSError) as error:
        # No verdict for the rest; what was decided before is still reported below.
        stopped = error
    results = collect(session.path, root, equivalents)
    document = results.document(
        seed=config.sample.seed if sample is None else None,
        sample_size=len(session.selected),
        sample_file=str(sample_file) if sample_file is not None else None,
        workers=config.distributor.workers,
        duration=round(time.monotonic() - started, 1),
    )
    (out / "results.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    _print_report(results, root, out)
    problems = _check_expectations(results, sample) if sample is not None else []
    overall = results.overall().score
    if fail_under is not None and (overall is None or 100 * overall < fail_under):
        problems.append(f"overall score {_pct(overall)} is under {fail_under:g}%")
    for problem in problems:
        typer.echo(f"zwfw mutation run: {problem}", err=True)
    if stopped is not None:
        raise _fail("run", f"stopped before the end: {stopped}")
    raise typer.Exit(EXIT_FAILED if problems else EXIT_OK)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


@mutation_app.command("report")
def report_command(
    out: Path = typer.Option(DEFAULT_OUT, "--out", metavar="DIR", help="A run's directory."),
    equivalents_file: Path | None = typer.Option(None, "--equivalents", metavar="FILE"),
) -> None:
    """Print the survivors and scores of a finished run again, with the equivalent-mutant
    file re-read, and rewrite its results.json accordingly."""
    from zwfw.harness.mutation.equivalents import load_equivalents
    from zwfw.harness.mutation.report import collect
    from zwfw.harness.mutation.session import SESSION_FILE

    try:
        _require_cosmic_ray()
        session = out / SESSION_FILE
        if not session.is_file():
            raise HarnessConfigError(f"{out}: no mutation session there")
        results = collect(session, _root(), load_equivalents(_equivalents_path(equivalents_file)))
    except HarnessConfigError as error:
        raise _fail("report", error) from None
    results_file = out / "results.json"
    facts: dict[str, Any] = {}
    if results_file.is_file():
        # The run's own facts (seed, sample, workers, duration) stay as they were.
        previous = json.loads(results_file.read_text(encoding="utf-8"))
        facts = {k: previous[k] for k in RUN_FACTS if k in previous}
    document = results.document(**facts)
    results_file.write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    _print_report(results, _root(), out)


@mutation_app.command("table")
def table_command(
    results_file: Path = typer.Option(
        DEFAULT_OUT / "results.json", "--results", metavar="FILE", help="A run's results.json."
    ),
    readme: Path | None = typer.Option(
        None, "--readme", metavar="FILE", help="Default: conformance/README.md."
    ),
) -> None:
    """Write the scores of a run into the README, between its mutation-scores markers."""
    from zwfw.harness.mutation.report import markdown_table, replace_table
    from zwfw.harness.requirements import conformance_dir

    try:
        target = readme if readme is not None else conformance_dir() / "README.md"
        document = json.loads(results_file.read_text(encoding="utf-8"))
        updated = replace_table(target.read_text(encoding="utf-8"), markdown_table(document))
    except (OSError, ValueError, KeyError, HarnessConfigError) as error:
        raise _fail("table", error) from None
    target.write_text(updated, encoding="utf-8")
    typer.echo(f"mutation scores written to {target}")


@mutation_app.command("equivalents")
def equivalents_command(
    config_file: Path | None = typer.Option(None, "--config", metavar="FILE"),
    equivalents_file: Path | None = typer.Option(None, "--equivalents", metavar="FILE"),
) -> None:
    """Check the equivalent-mutant file against the code: exit 1 when an entry names no
    mutant any more (its line or function changed: review it again)."""
    from zwfw.harness.mutation.config import load_config
    from zwfw.harness.mutation.equivalents import load_equivalents
    from zwfw.harness.mutation.session import unmatched_refs

    try:
        _require_cosmic_ray()
        equivalents = load_equivalents(_equivalents_path(equivalents_file))
        config = load_config(_config_path(config_file))
        entries = list(equivalents.entries)
        unmatched = unmatched_refs(entries, config, _root()) if entries else []
    except HarnessConfigError as error:
        raise _fail("equivalents", error) from None
    for entry in unmatched:
        typer.echo(f"stale: {entry.key} ({entry.line!r}) names no mutant", err=True)
    typer.echo(f"{len(entries) - len(unmatched)} of {len(entries)} entries match a mutant")
    raise typer.Exit(EXIT_FAILED if unmatched else EXIT_OK)
