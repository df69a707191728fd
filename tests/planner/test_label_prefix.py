"""The label prefix is configuration, not behaviour: the real programme planned, landed and
settled under `--label-prefix example.com` is the same programme as under the default prefix,
with every key renamed, and a settled cluster needs no write at all under either."""

import functools
import json
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.actuator.writes import desired_writes
from scheduler.cli.render import plan_json
from scheduler.cluster import Keys, decode_snapshot
from scheduler.cluster.synthetic import builtin_cluster, dumps
from scheduler.planner import plan
from scheduler.planner.simulate import settle, simulate
from scheduler.policy import load_policy
from tests.builders import t
from tests.realpolicy import one_cluster_dir, one_cluster_policy  # the real programme as one cluster

REPO = Path(__file__).resolve().parents[2]
POLICY = one_cluster_policy()
DEFAULT, OTHER = Keys(), Keys("example.com")
START, END = t("2025-08-01 00:00"), t("2027-01-31 00:00")


def renamed(text: str) -> str:
    """Text written under OTHER's prefix, as it reads under the default prefix."""
    return text.replace(OTHER.prefix + "/", DEFAULT.prefix + "/")


@functools.cache
def change_points():
    """The instants the real programme changes at (stages, rounds, grace ends, lease ends), and of
    the ones that repeat node by node (a linear wind-down's steps, drain deadlines) the first
    three and the last: every kind of change, at a fraction of the 266 points."""
    snapshot = decode_snapshot(dumps(builtin_cluster(POLICY)), DEFAULT)
    steps = simulate(POLICY, snapshot, START, END, DEFAULT)
    kinds: dict[str, list] = {}
    for step in steps:
        kinds.setdefault(" ".join(step.why.split()[:3]), []).append(step.at)
    return sorted({at for ats in kinds.values() for at in (*ats[:3], ats[-1])})


def timeline(keys: Keys):
    """(instant, settled plan, settled cluster) at every change point, under `keys`."""
    snapshot = decode_snapshot(dumps(builtin_cluster(POLICY)), keys)
    out = []
    for at in change_points():
        result, snapshot = settle(POLICY, snapshot, at, keys)
        out.append((at, result, snapshot))
    return out


@pytest.fixture(scope="module")
def both():
    return timeline(DEFAULT), timeline(OTHER)


def test_the_programme_has_drains_for_the_prefix_to_matter(both):
    default, _ = both
    assert any(i.drain_reason for _, p, _ in default for i in p.node_intents.values()), \
        "no step drains a node: this test would prove nothing about drain annotations"


@pytest.mark.parametrize("keys", [DEFAULT, OTHER], ids=["default-prefix", "example.com"])
def test_a_settled_cluster_needs_no_write(both, keys):
    """At rest means at rest: once a change point has landed, the next reconcile plans exactly
    what the cluster already carries (drain reasons included)."""
    for at, _, snapshot in both[0] if keys == DEFAULT else both[1]:
        left = desired_writes(plan(POLICY, snapshot, at, keys), snapshot, POLICY, keys)
        assert left == [], f"{at.isoformat()}: {[w.describe() + ' ' + w.reason for w in left[:5]]}"


def test_a_minute_later_both_prefixes_make_the_same_writes_renamed(both):
    """A minute after each change point (drains under way, a linear wind-down moving on), the
    writes under example.com are the default prefix's, renamed: none more, none less."""
    for (at, _, ours), (_, _, theirs) in zip(*both, strict=True):
        later = at + timedelta(minutes=1)
        mine = desired_writes(plan(POLICY, ours, later, DEFAULT), ours, POLICY, DEFAULT)
        other = desired_writes(plan(POLICY, theirs, later, OTHER), theirs, POLICY, OTHER)
        assert [renamed(dumps_write(w)) for w in other] == [dumps_write(w) for w in mine], later.isoformat()


def dumps_write(w) -> str:
    return f"{w.describe()} {w.phase} {json.dumps(w.body, sort_keys=True)}"


def test_every_plan_is_the_default_prefix_plan_renamed(both):
    for (at, ours, _), (_, theirs, _) in zip(*both, strict=True):
        assert renamed(plan_json(theirs)) == plan_json(ours), at.isoformat()
        assert theirs.node_intents == ours.node_intents, at.isoformat()  # drain reasons included
        for ns, labels in ours.namespace_labels.items():
            assert {renamed(k): v for k, v in theirs.namespace_labels[ns].items()} == labels
            assert {renamed(k): renamed(v) for k, v in theirs.namespace_annotations[ns].items()} == \
                ours.namespace_annotations[ns]


def test_every_managed_key_on_the_settled_cluster_carries_the_configured_prefix(both):
    _, other = both
    managed = ("consortium", "node-state", "drain-started", "drain-deadline", "drain-reason", "draining")
    seen = set()
    for _, _, snapshot in other:
        for node in snapshot.nodes:
            keys = {*node.labels, *node.annotations, *(t.key for t in node.taints)}
            assert not {f"{DEFAULT.prefix}/{name}" for name in managed} & keys, node.name
            seen |= {k for k in keys if k.startswith(OTHER.prefix + "/")}
    assert seen == {f"{OTHER.prefix}/{name}" for name in managed}
