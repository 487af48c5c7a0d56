"""The mutation machinery without a platform: mutant identity and filters, the sample, the
equivalent-mutant file, the configuration, attribution and the scores and table."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from zwfw.harness.mutation.attribution import Attribution
from zwfw.harness.mutation.config import MutationConfigError, load_config, with_overrides
from zwfw.harness.mutation.equivalents import Equivalent, load_equivalents
from zwfw.harness.mutation.mutants import Mutant, name_mutants
from zwfw.harness.mutation.report import (
    TABLE_BEGIN,
    TABLE_END,
    MutantResult,
    Results,
    markdown_table,
    replace_table,
    wilson,
)
from zwfw.harness.mutation.sampling import stratified_sample
from zwfw.harness.mutation.session import all_mutants
from zwfw.harness.mutation.worker import restore_sqlite

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "conformance" / "mutation" / "cosmic-ray.toml"
MODULE = "src/zwfw/services/eseal/rules.py"

SOURCE = """
from __future__ import annotations

LIMIT = 10


class Window:
    def contains(self, start: int, end: int | None, *, now: int) -> bool:
        if end is None:
            return start <= now
        return start <= now < end


@staticmethod
def width(start: int, end: int) -> int:
    return end - start
"""


def mutants_of(root: Path, source: str) -> list[Mutant]:
    from cosmic_ray.commands import init
    from cosmic_ray.work_db import WorkDB, use_db

    path = root / MODULE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    with use_db(str(root / "session.sqlite"), WorkDB.Mode.create) as db:
        init([path], db, {})
        return all_mutants(db.work_items, root)


def find(mutants: list[Mutant], operator: str, context: str) -> list[Mutant]:
    return [m for m in mutants if m.operator == operator and m.context == context]


def test_identity_survives_edits_elsewhere_and_changes_with_the_line(tmp_path: Path) -> None:
    before = mutants_of(tmp_path, SOURCE)
    lt = find(before, "core/ReplaceComparisonOperator_Lt_Gt", "return start <= now < end")
    assert [m.function for m in lt] == ["Window.contains"]
    assert (
        lt[0].key
        == "zwfw.services.eseal.rules:Window.contains core/ReplaceComparisonOperator_Lt_Gt #0"
    )
    assert lt[0].service == "eseal"
    # Code added above shifts cosmic-ray's occurrences, not the identities.
    edited = SOURCE.replace(
        "LIMIT = 10\n", "LIMIT = 10\n\n\ndef first(a: int) -> bool:\n    return a < 3\n"
    )
    after = mutants_of(tmp_path, edited)
    moved = find(after, "core/ReplaceComparisonOperator_Lt_Gt", "return start <= now < end")
    assert moved[0].identity == lt[0].identity
    assert moved[0].occurrence != lt[0].occurrence
    assert {m.identity for m in before} <= {m.identity for m in after}
    # The line itself changed: that mutant is another one.
    changed = mutants_of(tmp_path, SOURCE.replace("start <= now < end", "start <= now < end + 0"))
    assert lt[0].identity not in {m.identity for m in changed}


def test_ordinals_tell_apart_mutants_of_one_line(tmp_path: Path) -> None:
    mutants = mutants_of(tmp_path, SOURCE)
    numbers = find(mutants, "core/NumberReplacer", "LIMIT = 10")
    assert [m.ordinal for m in numbers] == [0, 1]
    assert {m.function for m in numbers} == {"<module>"}
    decorator = find(mutants, "core/RemoveDecorator", "@staticmethod")
    assert decorator[0].function == "width"


def test_annotations_and_parameter_stars_are_told_from_operations(tmp_path: Path) -> None:
    mutants = mutants_of(tmp_path, SOURCE)
    union = [m for m in mutants if m.operator.startswith("core/ReplaceBinaryOperator_BitOr")]
    assert union
    assert all(m.in_annotation for m in union)
    star = [
        m
        for m in mutants
        if m.operator.startswith("core/ReplaceBinaryOperator_Mul") and "*, now" in m.context
    ]
    assert star
    assert not any(m.operation for m in star)
    minus = [m for m in mutants if m.operator.startswith("core/ReplaceBinaryOperator_Sub")]
    assert minus
    assert all(m.operation and not m.in_annotation for m in minus)


def mutant(path: str, number: int, operator: str = "core/AddNot") -> Mutant:
    return Mutant(
        job_id=f"{path}-{operator}-{number}",
        path=path,
        operator=operator,
        occurrence=number,
        start=(number + 1, 4),
        end=(number + 1, 8),
        function="f",
        context=f"line {number}",
        ordinal=0,
    )


def population() -> list[Mutant]:
    return [
        *(mutant("src/zwfw/services/hall/cases.py", n) for n in range(100)),
        *(mutant("src/zwfw/services/hall/steps.py", n) for n in range(10)),
        *(mutant("src/zwfw/services/eseal/api.py", n) for n in range(1)),
    ]


def test_the_sample_is_seeded_stratified_and_interleaved() -> None:
    sample = stratified_sample(population(), 20, seed=7)
    assert len(sample) == 20
    assert sample == stratified_sample(list(reversed(population())), 20, seed=7)
    assert sample != stratified_sample(population(), 20, seed=8)
    per_module = {path: sum(m.path == path for m in sample) for path in {m.path for m in sample}}
    assert per_module == {
        "src/zwfw/services/hall/cases.py": 18,
        "src/zwfw/services/hall/steps.py": 1,
        "src/zwfw/services/eseal/api.py": 1,
    }
    # Services take turns, so a run cut short still samples every service.
    assert [m.service for m in sample[:2]] == ["eseal", "hall"]
    assert len(stratified_sample(population(), 500, seed=7)) == 111


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


ENTRY = """
- module: zwfw.services.eseal.rules
  function: <module>
  operator: core/NumberReplacer
  line: "LIMIT  =  10"
  ordinal: 1
  reason: the bound is never reached by any request the service answers
"""


def test_equivalents_match_by_identity(tmp_path: Path) -> None:
    equivalents = load_equivalents(write(tmp_path / "eq.yaml", ENTRY))
    mutants = mutants_of(tmp_path, SOURCE)
    numbers = find(mutants, "core/NumberReplacer", "LIMIT = 10")
    assert (
        equivalents.reason(numbers[1])
        == "the bound is never reached by any request the service answers"
    )
    assert equivalents.reason(numbers[0]) is None
    assert equivalents.unmatched(mutants, {"zwfw.services.eseal.rules"}) == []
    changed = mutants_of(tmp_path, SOURCE.replace("LIMIT = 10", "LIMIT = 12"))
    assert equivalents.unmatched(changed, {"zwfw.services.eseal.rules"}) == list(
        equivalents.entries
    )
    assert load_equivalents(tmp_path / "missing.yaml").entries == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ENTRY.replace(
                "  reason: the bound is never reached by any request the service answers\n", ""
            ),
            "reason: Field required",
        ),
        (ENTRY.replace("reason: the bound", "reason: |\n    the bound\n    "), "must be one line"),
        (ENTRY + ENTRY, "is listed twice"),
        (ENTRY.replace("zwfw.services.eseal.rules", "os.path"), "module: String should match"),
        ("- [not, a, mapping]\n", "Input should be a valid dictionary"),
        ("module: [\n", "invalid YAML"),
    ],
)
def test_a_bad_equivalents_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(MutationConfigError, match=expected):
        load_equivalents(write(tmp_path / "eq.yaml", text))


def test_the_repository_configuration_loads() -> None:
    config = load_config(CONFIG)
    assert config.distributor.workers == 2
    assert config.sample.size > 0
    assert config.operator_excluded("core/ReplaceComparisonOperator_Eq_Is")
    assert not config.operator_excluded("core/ReplaceComparisonOperator_Eq_IsNot")
    assert "{suites}" in config.test_command
    overridden = with_overrides(config, workers=1, size=5, seed=3, budget_minutes=2.5)
    assert (overridden.distributor.workers, overridden.sample.size) == (1, 5)
    assert overridden.distributor.budget_minutes == 2.5
    with pytest.raises(MutationConfigError, match="workers"):
        with_overrides(config, workers=0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("--suites {suites}", "--suites {suite}"), "unknown placeholder {suite}"),
        (("--suites {suites}", ""), "must certify {profile} into {out} over {suites}"),
        (
            ('name = "zwfw-reference"', 'name = "local"'),
            "distributor.name must be 'zwfw-reference'",
        ),
        (("workers = 2", "workers = 0"), "workers: Input should be greater than or equal to 1"),
        (("timeout = 240.0", "timeout = -1"), "timeout must be positive"),
        (('    "core/VariableReplacer",', '    "core/(Variable",'), "exclude-operators"),
        (("[cosmic-ray]", "[cosmic]"), "cosmic-ray"),
    ],
)
def test_a_bad_configuration_is_refused(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    assert change[0] in text
    path = write(tmp_path / "cr.toml", text.replace(*change))
    with pytest.raises(MutationConfigError, match=expected.replace("{", r"\{").replace("(", r"\(")):
        load_config(path)


def test_attribution_reaches_mutants_through_their_function(tmp_path: Path) -> None:
    mutants = mutants_of(tmp_path, SOURCE)
    inside = find(mutants, "core/ReplaceComparisonOperator_Lt_Gt", "return start <= now < end")[0]
    early = find(mutants, "core/AddNot", "if end is None:")[0]
    width = find(mutants, "core/ReplaceBinaryOperator_Sub_Add", "return end - start")[0]
    limit = find(mutants, "core/NumberReplacer", "LIMIT = 10")[0]
    lines = {
        MODULE: {
            4: frozenset({""}),  # LIMIT = 10, at import
            9: frozenset({"conformance/seal/test_seal.py::test_a"}),
            10: frozenset({"conformance/seal/test_seal.py::test_a"}),
            11: frozenset({"conformance/licence/test_licence.py::test_b"}),
        }
    }
    attribution = Attribution(
        lines,
        {
            "conformance/seal/test_seal.py::test_a": ("IC-SEAL-001",),
            "conformance/licence/test_licence.py::test_b": ("IC-LIC-002", "IC-LIC-003"),
        },
    )
    reach = attribution.reach(inside, tmp_path)
    assert reach.executed
    # Every test that ran its function counts: IC-SEAL-001's test ran only the early return.
    assert reach.requirements == ("IC-LIC-002", "IC-LIC-003", "IC-SEAL-001")
    assert reach.suites == ("conformance/licence/test_licence.py", "conformance/seal/test_seal.py")
    assert attribution.reach(early, tmp_path).executed
    assert not attribution.reach(width, tmp_path).executed
    # Run only at import: the tests of the module stand in.
    assert attribution.reach(limit, tmp_path).tests == (
        "conformance/licence/test_licence.py::test_b",
        "conformance/seal/test_seal.py::test_a",
    )
    copy = Attribution.from_dict(attribution.as_dict())
    assert copy.lines == attribution.lines
    assert copy.requirements == attribution.requirements


def result(path: str, outcome: str, *, equivalent: str | None = None, requirements=(), failed=()):
    return MutantResult(
        mutant=mutant(path, hash(outcome + str(equivalent) + str(requirements)) % 1000),
        outcome=outcome,
        failed=tuple(failed),
        tests=(),
        requirements=tuple(requirements),
        suites=(),
        duration=1.0,
        detail=None,
        equivalent=equivalent,
    )


def test_scores_count_killed_over_competent_non_equivalent_mutants() -> None:
    hall = "src/zwfw/services/hall/cases.py"
    results = Results(
        [
            result(hall, "killed", requirements=("IC-CASE-001",), failed=("IC-CASE-001",)),
            result(hall, "timeout", requirements=("IC-CASE-001", "IC-CASE-002")),
            result(hall, "survived", requirements=("IC-CASE-002",)),
            result(hall, "not-covered"),
            result(hall, "survived", equivalent="no observable difference at all"),
            result(hall, "incompetent"),
            result("src/zwfw/services/eseal/api.py", "killed", requirements=("IC-SEAL-001",)),
        ],
        skipped={"not in this run's sample": 3},
        pending=2,
        total=12,
    )
    hall_tally = results.by_service()["hall"].as_dict()
    assert (hall_tally["killed"], hall_tally["survived"], hall_tally["scored"]) == (2, 2, 4)
    assert hall_tally["score"] == 0.5
    assert hall_tally["equivalent"] == 1
    assert hall_tally["incompetent"] == 1
    low, high = hall_tally["interval"]
    assert low < 0.5 < high
    assert [r.outcome for r in results.survivors] == ["survived", "not-covered"]
    requirements = results.by_requirement()
    assert requirements["IC-CASE-001"].as_dict()["score"] == 1.0
    assert requirements["IC-CASE-001"].failed_it == 1
    assert requirements["IC-CASE-002"].as_dict()["score"] == 0.5
    document = results.document(seed=13)
    table = markdown_table(document)
    assert "| hall | 2 | 2 (1) | 1 | 1 | 50%" in table
    assert "| IC-CASE-002 | 2 | 1 | 0 | 50% |" in table
    readme = f"# Suite\n\n{TABLE_BEGIN}\nold\n{TABLE_END}\n\nafter\n"
    updated = replace_table(readme, table)
    assert "old" not in updated
    assert updated.endswith("\n\nafter\n")
    assert replace_table(updated, table) == updated
    with pytest.raises(ValueError, match="markers"):
        replace_table("# no markers\n", table)


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(9, 10)
    assert 0.59 < low < 0.6
    assert 0.98 < high < 0.99
    assert wilson(10, 10)[1] == 1.0


def test_every_equivalent_entry_names_a_mutant_of_the_current_code() -> None:
    from typer.testing import CliRunner

    from zwfw.cli import app

    result = CliRunner().invoke(app, ["mutation", "equivalents"])
    assert result.exit_code == 0, result.stdout + result.stderr
    entries = load_equivalents(REPO / "conformance/mutation/equivalent.yaml").entries
    assert f"{len(entries)} of {len(entries)} entries match a mutant" in result.stdout
    assert all(isinstance(e, Equivalent) and e.reason for e in entries)


def test_name_mutants_reports_a_missing_module(tmp_path: Path) -> None:
    from zwfw.harness.mutation.mutants import MutantError, RawMutation

    with pytest.raises(MutantError, match="cannot read"):
        name_mutants([RawMutation("j", MODULE, "core/AddNot", 0, (1, 0), (1, 2))], tmp_path)


def test_a_restore_rolls_back_everything_but_the_kept_tables(tmp_path: Path) -> None:
    # A trial rotated the IdP's key and made a case: the case goes, the keys stay (tokens the
    # other services hold are signed by the new one).
    database, snapshot = tmp_path / "identity.sqlite3", tmp_path / "snapshot.sqlite3"
    with sqlite3.connect(snapshot) as db:
        db.execute("CREATE TABLE idn_signing_key (kid TEXT PRIMARY KEY, active INTEGER)")
        db.execute("CREATE TABLE events (name TEXT)")
        db.execute("INSERT INTO idn_signing_key VALUES ('k1', 1)")
    db.close()
    database.write_bytes(snapshot.read_bytes())
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("UPDATE idn_signing_key SET active = 0")
        db.execute("INSERT INTO idn_signing_key VALUES ('k2', 1)")
        db.execute("INSERT INTO events VALUES ('made during the trial')")
    db.close()

    restore_sqlite(snapshot, database, ("idn_signing_key",))

    db = sqlite3.connect(database)
    try:
        keys = db.execute("SELECT kid, active FROM idn_signing_key ORDER BY kid").fetchall()
        assert keys == [("k1", 0), ("k2", 1)]
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    finally:
        db.close()
    assert not (tmp_path / "identity.sqlite3.kept").exists()

    restore_sqlite(snapshot, database)  # nothing kept: the snapshot as it was
    db = sqlite3.connect(database)
    try:
        assert db.execute("SELECT kid, active FROM idn_signing_key").fetchall() == [("k1", 1)]
    finally:
        db.close()
