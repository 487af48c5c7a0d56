"""The zwfw policy pack: ``pulumi preview --policy-pack infra/policy`` (see infra/README.md)."""

from pulumi_policy import EnforcementLevel, PolicyPack
from zwfw_policy.policies import POLICIES

PolicyPack(name="zwfw-gov-cloud", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
