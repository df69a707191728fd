"""A batch of writes cut short (the daemon killed, the Lease lost, a write given up after its
retries) and planned again must end where the whole batch ends: the soak's end-state check,
pinned to the two instants where the soak found it broken, on the soak's cluster (the real
programme's pools at 1/16, so stage 1's units quotas meet a shortage).

The planner test applies every prefix of the first plan's node writes to the snapshot in memory
and settles from there; the daemon test does the same over HTTP with a killed process.
"""

from collections import Counter
from dataclasses import replace
from datetime import datetime

import msgspec
import pytest

from scheduler.cluster.decode import decode_snapshot
from scheduler.actuator.writes import desired_writes
from scheduler.planner.plan import plan as make_plan
from scheduler.planner.apply import node_after
from scheduler.planner.simulate import settle
from scheduler.policy import load_policy
from scheduler.sandbox import SandboxServer

from tests.soak.checks import differences, end_state
from tests.soak.cluster import soak_cluster
from tests.soak.process import DaemonProcess, Killed, ProgrammeWall
from tests.soak.soak import REPO
from tests.keys import KEYS
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster

POLICY = one_cluster_policy()
NAMESPACES = sorted(ns for c in POLICY.consortia for ns in c.namespaces)
STAGE_ONE = "2025-08-04T00:00:00+09:00"     # three units teams share a short fleet
GOV_POOLS_OPEN = "2026-07-01T00:00:00+09:00"  # the leases end; lg, upstage, skt share gov-b200


def cluster_snapshot():
    cluster = soak_cluster(POLICY, 16)
    with SandboxServer(port=0) as server:  # decoded as the daemon decodes what it lists
        server.load_list(cluster)
        items = [dict(n, kind="Node", apiVersion="v1") for n in server.list("nodes")] + \
                [dict(ns, kind="Namespace", apiVersion="v1") for ns in server.list("namespaces")]
    return decode_snapshot(msgspec.json.encode({"kind": "List", "apiVersion": "v1", "items": items}), KEYS)


@pytest.mark.parametrize("instant", [STAGE_ONE, GOV_POOLS_OPEN])
def test_a_plan_cut_short_and_planned_again_ends_where_the_whole_plan_ends(instant):
    at = datetime.fromisoformat(instant)
    start = cluster_snapshot()
    whole_plan, whole = settle(POLICY, start, at, KEYS, busy=False)
    expected = ({n.name: n.owner for n in whole.nodes}, {c.name: c.target for c in whole_plan.consortia})
    first = make_plan(POLICY, start, at, KEYS)
    order = [w.name for w in desired_writes(first, start, POLICY, KEYS) if w.resource == "nodes"]
    diverging = []
    for k in range(len(order)):
        done = set(order[:k])
        cut = replace(start, nodes=tuple(node_after(n, first.node_intents[n.name], KEYS) if n.name in done else n
                                         for n in start.nodes))
        again_plan, again = settle(POLICY, cut, at, KEYS, busy=False)
        got = ({n.name: n.owner for n in again.nodes}, {c.name: c.target for c in again_plan.consortia})
        if got != expected:
            moved = sorted(n for n in expected[0] if expected[0][n] != got[0][n])
            targets = {c: (expected[1][c], got[1][c]) for c in expected[1] if expected[1][c] != got[1][c]}
            diverging.append(f"cut after {k} node writes: {len(moved)} nodes change hands "
                             f"(e.g. {moved[:3]}); targets (whole, cut) {targets}")
    assert not diverging, f"{len(diverging)} of {len(order)} cuts end elsewhere:\n" + "\n".join(diverging[:5])


def test_a_daemon_killed_mid_batch_at_stage_one_and_restarted_ends_where_an_uninterrupted_one_ends(tmp_path):
    def run(kill_after):
        with SandboxServer(port=0) as server:
            server.load_list(soak_cluster(POLICY, 16))
            kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
            wall = ProgrammeWall(datetime.fromisoformat(STAGE_ONE).timestamp())

            def process():
                return DaemonProcess(kubeconfig, one_cluster_dir(), wall, seed=1, writes=Counter(), retries=Counter())

            proc = process()
            if kill_after is not None:
                with pytest.raises(Killed):
                    proc.reconcile(kill_after=kill_after)
                proc.die()
                proc = process()
            writes = [proc.reconcile().writes]
            while writes[-1]:
                writes.append(proc.reconcile().writes)
            proc.die()
            return end_state(server, NAMESPACES), writes

    expected, writes = run(None)
    diverging = {}
    for k in range(0, writes[0], 5):
        diff = differences(expected, run(k)[0], limit=4)
        if diff:
            diverging[k] = [d for d in diff if not d.startswith("node")] or diff
    assert not diverging, "killed after k writes, then restarted: " + "; ".join(
        f"k={k}: {d}" for k, d in list(diverging.items())[:2])
