"""Provisioning a platform through its services' APIs (see ``apply`` and ``plan``)."""

from zwfw.provisioning.apply import (
    Change,
    Outcome,
    Provisioner,
    ProvisioningError,
    apply_plan,
    public_jwks,
    seal_body,
)
from zwfw.provisioning.plan import PlanError, ProvisioningPlan

__all__ = [
    "Change",
    "Outcome",
    "PlanError",
    "Provisioner",
    "ProvisioningError",
    "ProvisioningPlan",
    "apply_plan",
    "public_jwks",
    "seal_body",
]
