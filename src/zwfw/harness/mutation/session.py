"""A mutation-testing session: cosmic-ray's session database, its filters and the run's plan.

`create_session` runs cosmic-ray's ``init`` over the configured modules (every operator, every
position), then marks as skipped, the way cosmic-ray's own filters do:

- mutants of operators the configuration excludes (``operators-filter``);
- binary-operator mutants inside type annotations: ``X | None`` there is a type union, not
  behaviour (where FastAPI or pydantic evaluate it, ``X & None`` only stops the start);
- binary-operator mutants of tokens that are no binary operation (the ``*`` of a parameter
  list or an unpacking: cosmic-ray's parso operator offers them; they do not compile);
- mutants outside the run's selection: the seeded stratified sample, or a fixed list.

What is left pending is what ``cosmic-ray exec`` (the ``zwfw-reference`` distributor) runs, in
the order written to ``plan.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zwfw.harness.mutation.config import MutationConfig, MutationConfigError
from zwfw.harness.mutation.equivalents import MutantRef
from zwfw.harness.mutation.mutants import Mutant, RawMutation, module_name, name_mutants
from zwfw.harness.mutation.sampling import interleave, stratified_sample

SESSION_FILE = "session.sqlite"
PLAN_FILE = "plan.json"
SKIP_OPERATOR = "operator excluded by the configuration"
SKIP_ANNOTATION = "binary operator in a type annotation"
SKIP_NOT_OPERATION = "star of a parameter list or an unpacking, not a binary operation"
SKIP_UNSELECTED = "not in this run's sample"


def discover_modules(config: MutationConfig, root: Path) -> list[Path]:
    """The modules to mutate (absolute), as cosmic-ray's module-path and excluded-modules say."""
    found: set[Path] = set()
    for entry in config.module_paths:
        path = root / entry
        if path.is_file() and path.suffix == ".py":
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob("*.py"))
        else:
            raise MutationConfigError(f"{config.path}: module-path {entry}: not found")
    excluded = {p.resolve() for pattern in config.excluded_modules for p in root.glob(pattern)}
    return sorted(found - excluded)


def all_mutants(work_items: Sequence[object], root: Path) -> list[Mutant]:
    from zwfw.harness.mutation.distributor import raw_mutation

    raw: list[RawMutation] = [raw_mutation(item, root) for item in work_items]  # type: ignore[arg-type]
    return name_mutants(raw, root)


@dataclass(frozen=True)
class Session:
    path: Path
    mutants: dict[str, Mutant]  # job id -> mutant, every one cosmic-ray made
    selected: list[Mutant]  # in run order
    skipped: dict[str, int]  # reason -> count

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def plan_path(self) -> Path:
        return self.dir / PLAN_FILE


def resolve_refs(refs: Sequence[MutantRef], mutants: Sequence[Mutant]) -> list[Mutant]:
    by_identity = {m.identity: m for m in mutants}
    chosen = []
    for ref in refs:
        mutant = by_identity.get(ref.identity)
        if mutant is None:
            raise MutationConfigError(
                f"no mutant {ref.key} on the line {ref.line!r}: the code changed; update the list"
            )
        chosen.append(mutant)
    return chosen


def modules_of(refs: Sequence[MutantRef], config: MutationConfig, root: Path) -> list[Path]:
    """The configured modules the references name; one outside them is an error."""
    wanted = {ref.module for ref in refs}
    modules = [
        m
        for m in discover_modules(config, root)
        if module_name(m.relative_to(root).as_posix()) in wanted
    ]
    missing = wanted - {module_name(m.relative_to(root).as_posix()) for m in modules}
    if missing:
        raise MutationConfigError(f"{sorted(missing)[0]}: not among the modules to mutate")
    return modules


def unmatched_refs(
    refs: Sequence[MutantRef], config: MutationConfig, root: Path
) -> list[MutantRef]:
    """The references that name no mutant of the current code."""
    import tempfile

    from cosmic_ray.commands import init
    from cosmic_ray.work_db import WorkDB, use_db

    with (
        tempfile.TemporaryDirectory() as scratch,
        use_db(str(Path(scratch) / SESSION_FILE), WorkDB.Mode.create) as db,
    ):
        init(modules_of(refs, config, root), db, config.raw.operators_config)
        known = {m.identity for m in all_mutants(db.work_items, root)}
    return [ref for ref in refs if ref.identity not in known]


def create_session(
    config: MutationConfig,
    root: Path,
    out_dir: Path,
    *,
    fixed: Sequence[MutantRef] | None = None,
) -> Session:
    """A new session in `out_dir` (a previous one there is replaced)."""
    from cosmic_ray.commands import init
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    modules = discover_modules(config, root) if fixed is None else modules_of(fixed, config, root)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SESSION_FILE
    for stale in (path, out_dir / PLAN_FILE, out_dir / "attribution.json"):
        stale.unlink(missing_ok=True)
    with use_db(str(path), WorkDB.Mode.create) as db:
        init(modules, db, config.raw.operators_config)
        mutants = all_mutants(db.work_items, root)
        skipped: dict[str, list[str]] = {
            SKIP_OPERATOR: [],
            SKIP_ANNOTATION: [],
            SKIP_NOT_OPERATION: [],
            SKIP_UNSELECTED: [],
        }
        candidates = []
        for mutant in mutants:
            if config.operator_excluded(mutant.operator):
                skipped[SKIP_OPERATOR].append(mutant.job_id)
            elif mutant.in_annotation and "BinaryOperator" in mutant.operator:
                skipped[SKIP_ANNOTATION].append(mutant.job_id)
            elif not mutant.operation:
                skipped[SKIP_NOT_OPERATION].append(mutant.job_id)
            else:
                candidates.append(mutant)
        if fixed is not None:
            selected = resolve_refs(fixed, candidates)
            by_service: dict[str, list[Mutant]] = {}
            for mutant in selected:
                by_service.setdefault(mutant.service, []).append(mutant)
            selected = interleave(by_service)
        else:
            selected = stratified_sample(candidates, config.sample.size, config.sample.seed)
        chosen = {m.job_id for m in selected}
        skipped[SKIP_UNSELECTED] = [m.job_id for m in candidates if m.job_id not in chosen]
        for reason, jobs in skipped.items():
            if jobs:
                db.set_multiple_results(
                    jobs, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=reason)
                )
    (out_dir / PLAN_FILE).write_text(
        json.dumps([m.job_id for m in selected], indent=0) + "\n", encoding="utf-8"
    )
    return Session(
        path=path,
        mutants={m.job_id: m for m in mutants},
        selected=selected,
        skipped={reason: len(jobs) for reason, jobs in skipped.items()},
    )
