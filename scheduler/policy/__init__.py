"""The policy language: pydantic models, a loader that keeps line numbers, and cross-checks.

The names below are loaded on first use (PEP 562), so that `scheduler.policy.errors` and the
other light modules can be imported without building the pydantic models: the command line's
`--help` and usage errors stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.policy.errors import PolicyError, PolicyIssue
    from scheduler.policy.loader import load_policy, load_policy_texts, policy_files
    from scheduler.policy.models import UNITS, Consortium, Pool, Program, Stage, WindDown, WindDownMode
    from scheduler.policy.policy import Policy

_WHERE = {
    "PolicyError": "errors",
    "PolicyIssue": "errors",
    "load_policy": "loader",
    "load_policy_texts": "loader",
    "policy_files": "loader",
    "UNITS": "models",
    "Consortium": "models",
    "Pool": "models",
    "Program": "models",
    "Stage": "models",
    "WindDown": "models",
    "WindDownMode": "models",
    "Policy": "policy",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
