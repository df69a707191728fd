"""Fault-injection soak: the whole real programme, with API faults, killed daemons and invalid
policies, must end exactly where a fault-free run ends, without ever giving a node to two teams,
deleting anything or resetting a drain clock.

    .venv/bin/python -m pytest -q -s tests/soak                          # CI size, prints the counts
    SOAK_SEED=7 SOAK_SCALE=8 SOAK_FAULT_RATE=0.05 pytest -s tests/soak/test_soak.py  # bigger, rougher

How it works: tests/soak/soak.py; the knobs: tests/soak/config.py. A failure names the seed and
the programme instant, and the same seed replays the same run request for request.
"""

import json
import time

import pytest

from tests.soak.checks import differences, end_state
from tests.soak.cluster import LEASE_NAMESPACE
from tests.soak.config import SoakConfig
from tests.soak.soak import Soak


@pytest.fixture
def soak(tmp_path):
    s = Soak(SoakConfig.from_env(), tmp_path)
    yield s
    s.close()


@pytest.mark.slow
def test_the_programme_survives_faults_restarts_and_bad_policies_and_ends_as_a_fault_free_run(soak):
    started = time.monotonic()
    try:
        soak.run()
    finally:  # the counts, also when an invariant broke part-way
        report = soak.report()
        report["seconds"] = round(time.monotonic() - started, 1)
        print("\nsoak:", json.dumps(report, indent=1, default=str))
    watcher_ok, watcher_detail = soak.watcher_consistent()

    # the end state equals the fault-free run's at the same final instant (checked after every
    # instant too, where a difference stops the soak)
    assert not differences(end_state(soak.reference, soak.namespaces), end_state(soak.server, soak.namespaces))
    assert watcher_ok, f"the Watcher's cache differs from a fresh read after the soak: {watcher_detail}"
    # each distinct invalid policy was reported once, whichever process saw it first
    reported = [e for e in soak.server.list("events", LEASE_NAMESPACE) if e["reason"] == "PolicyInvalid"]
    assert len(reported) == len(soak.bad_policies)

    # the soak tested something: every kind of trouble happened
    faults = report["faults injected"]
    tally = soak.tally
    for kind in ("409", "410", "429", "500", "slow"):
        assert faults.get(kind, 0) > 0, f"no {kind} was injected: {faults}"
    assert sum(soak.retries.values()) > 0
    assert tally.restarts > 0 and tally.restarts_while_draining > 0
    assert tally.kills > 0 and tally.kills_while_draining > 0
    assert tally.invalid_windows > 0 and tally.reconciles_on_invalid_policy > 0
    assert tally.evictions_seen > 0 and tally.jobs_finished > 0 and tally.max_draining > 0
    if soak.config.watch:
        assert tally.watch_expiries > 0 and faults.get("410", 0) > 0
