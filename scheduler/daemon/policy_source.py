"""The policy as the daemon sees it: the last good one, reloaded when the files change.

A mounted ConfigMap updates by swapping a symlink, so changes are detected by content hash, not
by inotify or mtimes. A policy with errors never takes effect: the last good one stays, and the
errors are kept for the Event, the log line and the `policy_valid` metric.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from scheduler.policy import Policy, PolicyError, PolicyIssue, load_policy, policy_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reload:
    changed: bool  # a new policy took effect
    error: PolicyError | None = None  # the files changed but are invalid (the last good one stays)


class PolicySource:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._digest: str | None = None
        self.policy: Policy | None = None
        self.error: PolicyError | None = None
        self.reload_errors = 0

    def _files_digest(self) -> str:
        digest = hashlib.sha256()
        try:
            for f in policy_files(self.path):
                digest.update(str(f.relative_to(self.path) if self.path.is_dir() else f.name).encode() + b"\0")
                digest.update(f.read_bytes() + b"\0")
        except (OSError, PolicyError) as err:
            digest.update(repr(err).encode())
        return digest.hexdigest()

    @property
    def digest(self) -> str | None:
        """Digest of the files last looked at (valid or not)."""
        return self._digest

    @property
    def valid(self) -> bool:
        return self.error is None and self.policy is not None

    def reload(self) -> Reload:
        """Load the files if their content changed since the last look."""
        with self._lock:
            digest = self._files_digest()
            if digest == self._digest:
                return Reload(False, self.error)
            self._digest = digest
            try:
                policy = _load(self.path)
            except PolicyError as err:
                self.error = err
                self.reload_errors += 1
                kept = f"keeping policy {self.policy.sha256[:12]}" if self.policy else "no policy in force yet"
                log.error("policy in %s is invalid (%d problem(s)); %s:\n%s", self.path, len(err.issues), kept, err)
                return Reload(False, err)
            self.error = None
            if self.policy is not None and policy.sha256 == self.policy.sha256:
                return Reload(False)
            log.info("policy %s loaded from %s (%d stages)", policy.sha256[:12], self.path, len(policy.stages))
            for warning in policy.warnings:
                log.warning("policy warning: %s", warning)
            self.policy = policy
            return Reload(True)


def _load(path: Path) -> Policy:
    """load_policy, where any failure at all is a policy error: a file the loader did not foresee
    (RecursionError, MemoryError, a parser bug) must not escape as a traceback, leave the old
    verdict in place, or be forgotten once its digest is recorded."""
    try:
        return load_policy(path)
    except PolicyError:
        raise
    except Exception as err:  # noqa: BLE001 - reported as a policy error: the last good policy stays
        detail = " ".join(str(err).split())[:300]
        raise PolicyError([PolicyIssue(str(path), 0, "", f"cannot load: {type(err).__name__}: {detail}")]) from None
