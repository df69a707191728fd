"""The soak's knobs, read from the environment so CI runs a small, fixed soak and a person can
run a bigger one: `SOAK_SEED=7 SOAK_SCALE=8 SOAK_FAULT_RATE=0.05 pytest -s tests/soak/test_soak.py`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SoakConfig:
    seed: int = 1              # SOAK_SEED: faults, restarts, kills, jobs and instants all derive from it
    steps: int = 0             # SOAK_STEPS: most programme instants to visit; 0 = the whole programme
                               # (about 165); under ~60 stops before round 1's drains, and the soak's
                               # "it tested something" checks fail
    scale: int = 16            # SOAK_SCALE: the built-in cluster's pools divided by this; 1 = the built-in cluster
    fault_rate: float = 0.02   # SOAK_FAULT_RATE: chance of each fault kind on each request of a verb the daemon uses
    slow_s: float = 0.02       # SOAK_SLOW_S: how long a slow answer waits
    restart_rate: float = 0.08  # SOAK_RESTART_RATE: chance of a restart before a reconcile
    kill_rate: float = 0.25    # SOAK_KILL_RATE: chance a reconcile with writes to make is killed part-way
    invalid_rate: float = 0.05  # SOAK_INVALID_RATE: chance an instant starts with an invalid policy on disk
    midpoint_rate: float = 0.15  # SOAK_MIDPOINT_RATE: chance of an extra instant between two change points
    watch: bool = True         # SOAK_WATCH: run the daemon's Watcher too (through its own API door, so a
                               # seed's reconciles replay request for request either way)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SoakConfig:
        values = {}
        for f in fields(cls):
            text = env.get(f"SOAK_{f.name.upper()}")
            if text is None:
                continue
            if f.type == "bool":
                values[f.name] = text.strip().lower() not in ("0", "false", "no", "off", "")
            else:
                values[f.name] = (int if f.type == "int" else float)(text)
        return cls(**values)

    def describe(self) -> str:
        return " ".join(f"SOAK_{f.name.upper()}={getattr(self, f.name)}" for f in fields(self))
