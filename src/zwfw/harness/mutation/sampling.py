"""The seeded, stratified sample of mutants a run executes.

Every (service, module) stratum gets a share of the sample proportional to its number of
candidate mutants (largest remainders; every non-empty stratum at least one while the sample
allows), drawn with `random.Random(seed)`: the same seed over the same code draws the same
mutants, and per-service scores are estimates over a uniform draw of that service's mutants.
The run order interleaves services and is random within each, so that a run cut short by its
time budget still holds a uniform sub-sample of every service.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from zwfw.harness.mutation.mutants import Mutant


def _allocate(sizes: dict[tuple[str, str], int], total: int) -> dict[tuple[str, str], int]:
    strata = sorted(k for k, n in sizes.items() if n > 0)
    population = sum(sizes[k] for k in strata)
    if total >= population:
        return {k: sizes[k] for k in strata}
    shares = {k: total * sizes[k] / population for k in strata}
    given = {k: int(shares[k]) for k in strata}
    # A stratum too small for a whole share still gets one mutant while the sample allows.
    for k in sorted(strata, key=lambda k: (-shares[k], k)):
        if given[k] == 0 and sum(given.values()) < total:
            given[k] = 1
    for k in sorted(strata, key=lambda k: (-(shares[k] - int(shares[k])), k)):
        if sum(given.values()) >= total:
            break
        if given[k] < sizes[k] and given[k] == int(shares[k]):
            given[k] += 1
    while sum(given.values()) > total:
        largest = max(strata, key=lambda k: (given[k], k))
        given[largest] -= 1
    return given


def stratified_sample(candidates: Sequence[Mutant], size: int, seed: int) -> list[Mutant]:
    """`size` mutants of `candidates` (all of them when fewer), in run order."""
    strata: dict[tuple[str, str], list[Mutant]] = defaultdict(list)
    for mutant in sorted(candidates, key=lambda m: (m.path, m.operator, m.occurrence)):
        strata[(mutant.service, mutant.path)].append(mutant)
    quota = _allocate({k: len(v) for k, v in strata.items()}, size)
    rng = random.Random(seed)
    per_service: dict[str, list[Mutant]] = defaultdict(list)
    for key in sorted(strata):
        per_service[key[0]].extend(rng.sample(strata[key], quota.get(key, 0)))
    for mutants in per_service.values():
        rng.shuffle(mutants)
    return interleave(per_service)


def interleave(per_service: dict[str, list[Mutant]]) -> list[Mutant]:
    """Round-robin over services (in name order), keeping each service's own order."""
    queues = {service: list(mutants) for service, mutants in sorted(per_service.items())}
    order: list[Mutant] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                order.append(queue.pop(0))
    return order
