"""The policy language: pydantic models, a loader that keeps line numbers, and cross-checks."""

from scheduler.policy.errors import PolicyError, PolicyIssue
from scheduler.policy.loader import load_policy, load_policy_texts, policy_files
from scheduler.policy.models import UNITS, Consortium, Pool, Program, Stage, WindDown, WindDownMode
from scheduler.policy.policy import Policy

__all__ = [
    "UNITS",
    "Consortium",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "Pool",
    "Program",
    "Stage",
    "WindDown",
    "WindDownMode",
    "load_policy",
    "load_policy_texts",
    "policy_files",
]
