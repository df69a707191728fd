"""The faults the soak injects: on every verb the daemon uses, each request fails with each
fault kind that verb can meet at `rate`, from one seeded schedule per verb.

`Faults` lets the first matching rule decide, so one rule per verb carries a mixed sequence
(None = a normal answer) rather than one fraction rule per kind, which would shadow the others.
A sequence that runs out leaves that verb fault-free; `LENGTH` outlasts the default soak.

A 429 says `Retry-After: 0`: the kubernetes client's urllib3 retries a GET (list, get, watch) that
got a 429 with a Retry-After by itself, sleeping that long for real (up to 3 times, before the
daemon sees anything), so a longer Retry-After would cost the soak real seconds.
"""

from __future__ import annotations

import random

from scheduler.sandbox import Fault, Faults

LENGTH = 40_000
KINDS_BY_VERB = {
    "list": (410, 429, 500, "slow"),      # a reconcile's four reads
    "watch": (410, 429, 500, "slow"),     # 410: the watch gets an Expired ERROR event and lists again
    "get": (429, 500, "slow"),            # a node before a taint patch, an Event after a 409
    "patch": (409, 429, 500, "slow"),     # nodes, namespaces, ResourceQuotas
    "create": (409, 429, 500, "slow"),    # Events, ResourceQuotas, pods/eviction (429 = a PodDisruptionBudget)
}


def inject(faults: Faults, seed: int | str, rate: float, slow_s: float, verbs: tuple[str, ...] = tuple(KINDS_BY_VERB)) -> None:
    for verb in verbs:
        kinds = KINDS_BY_VERB[verb]
        rng = random.Random(f"{seed}/faults/{verb}")
        made = [Fault.slow(slow_s) if k == "slow" else Fault(status=k, retry_after=0) for k in kinds]
        sequence: list[Fault | None] = []
        for _ in range(LENGTH):
            draw = rng.random()
            sequence.append(made[int(draw / rate)] if draw < rate * len(made) else None)
        faults.add(verb=verb, sequence=sequence)


def by_kind(*faults: Faults) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faults:
        for (_, _, kind), n in f.counts.items():
            out[kind] = out.get(kind, 0) + n
    return dict(sorted(out.items()))


def by_verb(*faults: Faults) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faults:
        for (verb, _, _), n in f.counts.items():
            out[verb] = out.get(verb, 0) + n
    return dict(sorted(out.items()))
