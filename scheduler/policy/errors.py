"""Policy errors that people can act on: each names the file, line and field path."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The hint ` (did you mean 'lg'?)` when a known name is close to `name` (a typo), else ""."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One problem in the policy, located as precisely as the YAML allows."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        field = self.field or "(document)"
        return f"{self.file}:{self.line}: {field}: {self.message}"


class PolicyError(ValueError):
    """The policy cannot take effect; carries every issue found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]):
        self.issues = sorted(set(issues))
        super().__init__("\n".join(str(i) for i in self.issues))
