"""The nodetype/noderesult state machine, on its own."""

from __future__ import annotations

import itertools

import pytest

from zwfw.services.hall.steps import (
    ALLOWED_RESULTS,
    RULES,
    CaseState,
    IllegalStep,
    apply_step,
)

S = CaseState


def walk(*steps: tuple[int, int]) -> tuple[CaseState, CaseState | None]:
    state, resume, middle = S.SUBMITTED, None, 0
    for nodetype, noderesult in steps:
        outcome = apply_step(state, resume, nodetype, noderesult, middle_steps_taken=middle)
        state, resume = outcome.state, outcome.resume_state
        middle += nodetype == 2 and noderesult in (0, 1)
    return state, resume


def refused(state: CaseState, nodetype: int, noderesult: int, **kw: object) -> str:
    with pytest.raises(IllegalStep) as info:
        apply_step(
            state,
            kw.get("resume"),  # type: ignore[arg-type]
            nodetype,
            noderesult,
            middle_steps_taken=int(kw.get("middle", 0)),  # type: ignore[arg-type]
        )
    assert info.value.rule in RULES
    return info.value.rule


def test_allowed_results_are_the_standard_table() -> None:
    assert {1: {4, 5, 6}, 2: {0, 1, 5, 6, 7}, 3: {0, 1}, 4: {1, 2, 3, 4}} == ALLOWED_RESULTS


@pytest.mark.parametrize(
    ("nodetype", "noderesult"),
    [
        (nt, nr)
        for nt, nr in itertools.product(range(0, 6), range(0, 9))
        if nr not in ALLOWED_RESULTS.get(nt, set())
    ],
)
def test_pairs_outside_the_table_are_refused_in_every_state(nodetype: int, noderesult: int) -> None:
    for state in CaseState:
        assert refused(state, nodetype, noderesult, resume=S.SUBMITTED) == "step-result-allowed"


def test_a_full_promise_case() -> None:
    assert walk((1, 4), (2, 1), (2, 1), (3, 1)) == (S.FINISHED, None)


def test_start_equals_end_outcomes() -> None:
    assert walk((4, 1))[0] is S.FINISHED
    assert walk((4, 4))[0] is S.FINISHED
    assert walk((4, 2))[0] is S.NOT_ACCEPTED
    assert walk((4, 3))[0] is S.NOT_ACCEPTED


def test_acceptance_sets_the_clock_only_once() -> None:
    outcome = apply_step(S.SUBMITTED, None, 1, 4, middle_steps_taken=0)
    assert outcome.accepts
    assert not outcome.finishes
    assert refused(S.ACCEPTED, 1, 4) == "step-start-once"
    assert refused(S.IN_PROGRESS, 4, 1) == "step-start-once"


def test_middle_and_end_need_acceptance() -> None:
    assert refused(S.SUBMITTED, 2, 1) == "step-start-first"
    assert refused(S.SUBMITTED, 3, 1) == "step-start-first"


def test_final_states_take_nothing() -> None:
    for state in (S.FINISHED, S.NOT_ACCEPTED):
        for nodetype, results in ALLOWED_RESULTS.items():
            for noderesult in results:
                assert refused(state, nodetype, noderesult) == "step-final"


def test_correction_waits_for_the_applicant() -> None:
    assert walk((1, 5)) == (S.CORRECTION, S.SUBMITTED)
    assert refused(S.CORRECTION, 1, 4, resume=S.SUBMITTED) == "step-correction-waits"
    assert refused(S.CORRECTION, 3, 1, resume=S.IN_PROGRESS) == "step-correction-waits"
    # 不予受理 may end a case that was never accepted while it waits...
    assert apply_step(S.CORRECTION, S.SUBMITTED, 4, 3, middle_steps_taken=0).state is (
        S.NOT_ACCEPTED
    )
    # ...but not one that was accepted.
    assert refused(S.CORRECTION, 4, 3, resume=S.IN_PROGRESS) == "step-correction-waits"
    assert walk((1, 4), (2, 5)) == (S.CORRECTION, S.ACCEPTED)


def test_special_procedure_continues_where_it_started() -> None:
    assert walk((1, 4), (2, 1), (2, 6)) == (S.SPECIAL, S.IN_PROGRESS)
    assert walk((1, 4), (2, 1), (2, 6), (3, 1))[0] is S.FINISHED
    assert refused(S.SPECIAL, 2, 6, resume=S.IN_PROGRESS) == "step-special-once"
    assert refused(S.SPECIAL, 1, 4, resume=S.IN_PROGRESS) == "step-start-once"
    assert walk((1, 6), (1, 4))[0] is S.ACCEPTED
    assert refused(S.SPECIAL, 2, 1, resume=S.SUBMITTED) == "step-start-first"


def test_return_needs_an_earlier_middle_step() -> None:
    assert refused(S.ACCEPTED, 2, 7) == "step-return-needs-previous"
    assert walk((1, 4), (2, 1), (2, 7))[0] is S.IN_PROGRESS
    assert walk((1, 4), (2, 0), (3, 0))[0] is S.FINISHED
