"""The legal step transitions of a case (办件环节), as a state machine.

Step codes follow the national-aligned case data set (one province's practice):

=========  ==================  =========================================================
nodetype   step                allowed noderesult
=========  ==================  =========================================================
1          start (受理环节)      4 受理, 5 补齐补正, 6 特别程序
2          middle (审查/决定)    0 不同意, 1 同意, 5 补齐补正, 6 特别程序, 7 退回
3          end (办结)            0 不同意, 1 同意
4          start = end (即办)    1 同意, 2 不受理, 3 不予受理, 4 受理
=========  ==================  =========================================================

Case states and what moves them:

- ``submitted`` (applied, not yet accepted): a start step (1) or a start=end step (4).
  1/4 受理 -> ``accepted`` (the promised deadline starts); 1/5 -> ``correction``;
  1/6 -> ``special``; 4/1 and 4/4 -> ``finished`` (accepted and concluded at once);
  4/2 and 4/3 -> ``not_accepted``.
- ``accepted`` / ``in_progress``: middle steps (2) and the end step (3). 2/0 and 2/1 ->
  ``in_progress``; 2/5 -> ``correction``; 2/6 -> ``special``; 2/7 退回 (back to the previous
  middle step) needs an earlier middle step and stays ``in_progress``; 3/0 and 3/1 ->
  ``finished``.
- ``correction`` (补齐补正): no step is taken until the applicant supplies the missing
  materials, which returns the case where it was; only 不予受理 (4/3) may end a case that
  was never accepted while it waits.
- ``special`` (特别程序: hearing, expert review, ...): the steps of the state it came from
  continue it, except another special procedure.
- ``finished`` / ``not_accepted``: final; no step is taken.

Every refusal names the rule it breaks (``RULES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CaseState(StrEnum):
    SUBMITTED = "submitted"
    CORRECTION = "correction"
    SPECIAL = "special"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    NOT_ACCEPTED = "not_accepted"


FINAL_STATES = frozenset({CaseState.FINISHED, CaseState.NOT_ACCEPTED})

NODE_TYPES: dict[int, str] = {1: "start", 2: "middle", 3: "end", 4: "start=end"}
NODE_RESULTS: dict[int, str] = {
    0: "不同意",
    1: "同意",
    2: "不受理",
    3: "不予受理",
    4: "受理",
    5: "补齐补正",
    6: "特别程序",
    7: "退回",
}
ALLOWED_RESULTS: dict[int, frozenset[int]] = {
    1: frozenset({4, 5, 6}),
    2: frozenset({0, 1, 5, 6, 7}),
    3: frozenset({0, 1}),
    4: frozenset({1, 2, 3, 4}),
}

RULES: dict[str, str] = {
    "step-result-allowed": "each nodetype allows only its own noderesult codes "
    "(1: 4,5,6; 2: 0,1,5,6,7; 3: 0,1; 4: 1,2,3,4)",
    "step-start-first": "a case not yet accepted takes a start step (nodetype 1) or a "
    "start=end step (nodetype 4) first",
    "step-start-once": "a case is accepted once: start and start=end steps (nodetype 1, 4) "
    "cannot follow acceptance",
    "step-correction-waits": "while 补齐补正 is pending no step is taken until the applicant "
    "supplies the materials (only 不予受理 4/3 may end an unaccepted case)",
    "step-special-once": "a special procedure (noderesult 6) cannot start while one is running",
    "step-return-needs-previous": "退回 (2/7) returns to an earlier middle step; there must be one",
    "step-final": "a finished or not-accepted case takes no further step",
}


@dataclass(frozen=True)
class Outcome:
    """What a legal step does to the case."""

    state: CaseState
    resume_state: CaseState | None
    accepts: bool  # the step accepts the case: the promised deadline starts now
    finishes: bool
    result: str | None  # approved | disapproved | not_accepted, when it finishes


class IllegalStep(Exception):
    """A step the rules forbid; ``rule`` is a key of ``RULES``."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


def step_name(nodetype: int, noderesult: int) -> str:
    node = NODE_TYPES.get(nodetype, "?")
    return f"{node} {nodetype}/{noderesult} {NODE_RESULTS.get(noderesult, '?')}"


def _refuse(rule: str, state: CaseState, nodetype: int, noderesult: int, why: str) -> IllegalStep:
    return IllegalStep(
        rule, f"step {nodetype}/{noderesult} is not allowed in state {state.value}: {why}"
    )


def apply_step(
    state: CaseState,
    resume_state: CaseState | None,
    nodetype: int,
    noderesult: int,
    *,
    middle_steps_taken: int,
) -> Outcome:
    """The outcome of step ``nodetype``/``noderesult`` on a case in ``state``, or
    ``IllegalStep`` naming the rule it breaks."""
    allowed = ALLOWED_RESULTS.get(nodetype)
    if allowed is None or noderesult not in allowed:
        raise IllegalStep(
            "step-result-allowed",
            f"nodetype {nodetype} does not allow noderesult {noderesult}"
            + (f" (allowed: {', '.join(map(str, sorted(allowed)))})" if allowed else ""),
        )
    if state in FINAL_STATES:
        raise _refuse("step-final", state, nodetype, noderesult, "the case is closed")
    if state is CaseState.CORRECTION:
        if resume_state is CaseState.SUBMITTED and (nodetype, noderesult) == (4, 3):
            return Outcome(CaseState.NOT_ACCEPTED, None, False, True, "not_accepted")
        raise _refuse(
            "step-correction-waits",
            state,
            nodetype,
            noderesult,
            "the applicant has not supplied the missing materials yet",
        )
    base: CaseState = state
    if state is CaseState.SPECIAL:
        if noderesult == 6:
            raise _refuse(
                "step-special-once", state, nodetype, noderesult, "one is already running"
            )
        assert resume_state is not None
        base = resume_state

    if base is CaseState.SUBMITTED:
        return _from_submitted(state, nodetype, noderesult)
    return _from_accepted(state, base, nodetype, noderesult, middle_steps_taken)


def _from_submitted(state: CaseState, nodetype: int, noderesult: int) -> Outcome:
    if nodetype not in (1, 4):
        raise _refuse(
            "step-start-first", state, nodetype, noderesult, "the case has not been accepted"
        )
    if nodetype == 1:
        if noderesult == 4:
            return Outcome(CaseState.ACCEPTED, None, True, False, None)
        target = CaseState.CORRECTION if noderesult == 5 else CaseState.SPECIAL
        return Outcome(target, CaseState.SUBMITTED, False, False, None)
    if noderesult in (1, 4):
        return Outcome(CaseState.FINISHED, None, True, True, "approved")
    return Outcome(CaseState.NOT_ACCEPTED, None, False, True, "not_accepted")


def _from_accepted(
    state: CaseState, base: CaseState, nodetype: int, noderesult: int, middle_steps_taken: int
) -> Outcome:
    if nodetype in (1, 4):
        raise _refuse(
            "step-start-once", state, nodetype, noderesult, "the case was accepted already"
        )
    if nodetype == 3:
        result = "approved" if noderesult == 1 else "disapproved"
        return Outcome(CaseState.FINISHED, None, False, True, result)
    if noderesult == 5:
        return Outcome(CaseState.CORRECTION, base, False, False, None)
    if noderesult == 6:
        return Outcome(CaseState.SPECIAL, base, False, False, None)
    if noderesult == 7 and middle_steps_taken == 0:
        raise _refuse(
            "step-return-needs-previous",
            state,
            nodetype,
            noderesult,
            "no middle step has been taken yet",
        )
    return Outcome(CaseState.IN_PROGRESS, None, False, False, None)
