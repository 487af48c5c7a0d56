"""Workload profiles of the load suite (`loadtests/profiles/*.yaml`) and the SLO targets it
judges by (`charts/monitoring/slo-profile.yaml`, the file the Prometheus rules follow).

A workload profile says how much load, of which kind, for how long::

    name: certify
    model: open                 # open: arrivals at a constant rate; closed: fixed users
    arrivals_per_second: 4      # journeys started per second once ramped up
    ramp_seconds: 5             # linear ramp from 0 to the rate
    duration_seconds: 30        # the steady window the figures are taken over
    mix: {citizen: 2, staff: 1, system: 2}
    max_concurrency: 60         # open model: journeys in flight at most (the user pool)
    signins_per_minute: 20      # citizen sign-ins at most, below the IdP's per-address limit

Open model: a slow server cannot slow the load down; arrivals the pool could not start on
time are counted, and a shortfall makes the verdict inconclusive. Closed model: `users`
each run journeys back to back with `think_seconds` between them (what a slow server can hide
behind); the same shortfall check applies to it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zwfw.harness.errors import HarnessConfigError, describe_validation_error

JOURNEYS = ("browse", "citizen", "staff", "system")
Journey = Literal["browse", "citizen", "staff", "system"]
# The steps each journey measures (the names the figures and RESP-LAT-* use).
JOURNEY_STEPS: dict[str, tuple[str, ...]] = {
    "browse": ("discovery", "catalog", "guide"),
    "citizen": ("discovery", "catalog", "guide", "signin.page", "signin.login",
                "signin.consent", "signin.token", "case.submit", "case.track", "case.rate"),
    "staff": ("staff.queue", "staff.accept", "staff.review", "staff.conclude"),
    "system": ("system.token", "system.licence", "system.seal", "system.hub-report"),
}  # fmt: skip


def mix_cycle(mix: dict[str, int]) -> list[str]:
    """One period of a journey mix, interleaved (smooth weighted round-robin): arrival n is
    of journey `cycle[n % len(cycle)]`, so every window holds the mix's proportions."""
    weights = {name: weight for name, weight in mix.items() if weight > 0}
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    cycle = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        chosen = max(current, key=lambda name: current[name])
        current[chosen] -= total
        cycle.append(chosen)
    return cycle


class WorkloadError(HarnessConfigError):
    """The workload profile or the SLO profile is missing or invalid."""


class GeneratorLimits(BaseModel):
    """When the load generator's own figures are not to be trusted (verdict inconclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Share of wall time a generator process was running or waiting for a CPU: at 0.9 it
    # had no room left, and the latencies it measured include its own queueing.
    max_cpu_demand: float = Field(default=0.9, gt=0, le=1)
    # Share of wall time a generator process was ready to run but waited for a CPU (other
    # processes had it): its timestamps are late by that queueing.
    max_cpu_wait_share: float = Field(default=0.25, gt=0, le=1)
    # Median of the per-second worst event-loop lag: how late the generator notices an answer
    # that arrived, in most seconds.
    max_loop_lag_ms: float = Field(default=100.0, gt=0)
    # An arrival started later than this after its due time counts as not offered on time.
    late_arrival_seconds: float = Field(default=1.0, gt=0)
    # Share of the profile's arrivals that must start on time.
    min_arrivals_on_time: float = Field(default=0.95, gt=0, le=1)


class Workload(BaseModel):
    """One workload profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    model: Literal["open", "closed"] = "open"
    arrivals_per_second: float = Field(gt=0, le=5000)
    ramp_seconds: float = Field(default=5.0, ge=0, le=3600)
    duration_seconds: float = Field(gt=0, le=24 * 3600)
    mix: dict[Journey, int] = Field(min_length=1)
    max_concurrency: int = Field(default=64, ge=1, le=100_000)
    users: int | None = Field(default=None, ge=1, le=100_000)
    think_seconds: tuple[float, float] = (1.0, 3.0)
    signins_per_minute: float = Field(default=20.0, gt=0)
    # 0: one generator process per core.
    processes: int = Field(default=0, ge=0, le=256)
    # How long journeys still running at the end may take to finish before they are cut.
    stop_timeout_seconds: float = Field(default=30.0, ge=0, le=600)
    generator: GeneratorLimits = Field(default_factory=GeneratorLimits)

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if any(weight < 0 for weight in self.mix.values()) or not any(self.mix.values()):
            raise ValueError("mix: weights are whole numbers >= 0, at least one above 0")
        if self.model == "closed" and self.users is None:
            raise ValueError("a closed model needs users")
        low, high = self.think_seconds
        if not 0 <= low <= high:
            raise ValueError("think_seconds: [min, max] with 0 <= min <= max")
        return self

    @property
    def run_seconds(self) -> float:
        return self.ramp_seconds + self.duration_seconds

    def generator_processes(self) -> int:
        return self.processes or max(1, len(os.sched_getaffinity(0)))

    def pool(self) -> int:
        """Locust users: the open model's pool of journeys in flight, or the closed users."""
        size = self.max_concurrency if self.model == "open" else int(self.users or 1)
        # At least one per generator process, so that every process takes arrivals.
        return max(size, self.generator_processes())

    def spawn_rate(self, pool: int) -> float:
        """Locust users started per second: the open model's pool at once (its arrivals pace
        the load), the closed model's users over the ramp."""
        return float(pool) if self.model == "open" else pool / max(self.ramp_seconds, 1.0)

    def arrival_offset(self, n: int) -> float:
        """When the open model's arrival number `n` (0-based) is due, in seconds from the
        start: the arrival rate ramps linearly to `arrivals_per_second`, then stays. The
        steady window [ramp, ramp + duration) holds rate x duration arrivals."""
        rate, ramp = self.arrivals_per_second, self.ramp_seconds
        if ramp > 0 and n <= rate * ramp / 2:
            return math.sqrt(2 * n * ramp / rate)
        return n / rate + ramp / 2

    def rate_of(self, journey: str) -> float:
        return self.arrivals_per_second * self.mix.get(journey, 0) / sum(self.mix.values())  # type: ignore[call-overload]

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def scaled(self, rate: float, **changes: Any) -> Workload:
        """The same workload at another arrival rate (capacity mode's steps)."""
        return self.model_copy(update={"arrivals_per_second": rate, **changes})


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkloadError(f"{what} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WorkloadError(f"{what} {path}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WorkloadError(f"{what} {path}: invalid YAML{where}") from None


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload profile; problems raise `WorkloadError` in one line."""
    path = Path(path)
    data = _read_yaml(path, "workload profile")
    if not isinstance(data, dict):
        raise WorkloadError(f"workload profile {path}: expected a mapping")
    try:
        return Workload.model_validate(data)
    except ValidationError as error:
        raise WorkloadError(
            f"workload profile {path}: {describe_validation_error(error)}"
        ) from None


class LoadTargets(BaseModel):
    """The figures the responsiveness requirements are judged by, from the SLO profile."""

    model_config = ConfigDict(frozen=True)

    p95_seconds: float = Field(gt=0)
    p99_seconds: float = Field(gt=0)
    error_budget: float = Field(ge=0, lt=1)
    throughput_tolerance: float = Field(ge=0, lt=1)
    source: str

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def slo_profile_path() -> Path:
    """`charts/monitoring/slo-profile.yaml` of the checkout (beside `conformance/`)."""
    from zwfw.harness.requirements import conformance_dir

    return conformance_dir().parent / "charts" / "monitoring" / "slo-profile.yaml"


def load_targets(path: Path | None = None) -> LoadTargets:
    """The load targets of the SLO profile: p95 is the latency objective the alerts watch,
    the error budget is what the availability objective leaves."""
    path = path or slo_profile_path()
    data = _read_yaml(path, "SLO profile")
    try:
        latency, load = data["latency"], data["load"]
        quantile = float(latency["quantile"])
        if quantile != 0.95:
            raise WorkloadError(f"SLO profile {path}: latency.quantile is {quantile}, not 0.95")
        return LoadTargets(
            p95_seconds=float(latency["threshold_seconds"]),
            p99_seconds=float(load["p99_seconds"]),
            error_budget=round(1.0 - float(data["availability"]["objective"]), 9),
            throughput_tolerance=float(load["throughput_tolerance"]),
            source=str(data.get("source", "")),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, WorkloadError):
            raise
        raise WorkloadError(f"SLO profile {path}: missing or invalid {error}") from None
