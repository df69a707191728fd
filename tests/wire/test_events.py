"""wire/events.py: the core/v1 Events gpu-scheduler writes (docs/daemon.md, "Events"). An Event lives
in the namespace it is about, so engineers see theirs with `kubectl get events -n <namespace>`;
its name is deterministic, so a retried create finds the Event already there instead of writing
it twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.wire import MANAGED_BY, events
from scheduler.wire.events import MESSAGE_LIMIT, EventRecord, decode, encode
from tests.wire.strategies import instants, words

KST = timezone(timedelta(hours=9))
AT = datetime(2026, 3, 1, 0, 0, tzinfo=KST)
CONSORTIUM = "gpu-scheduler.sovereign-ai.kr/consortium"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")

label_keys = words.filter(lambda k: k not in MANAGED_BY) | st.just(CONSORTIUM)
records = st.builds(
    EventRecord,
    name=st.builds(events.name, st.none() | instants(), words, words, words),
    namespace=words,
    reason=st.sampled_from(["QuotaChanged", "Eliminated", "NodeAssigned", "DrainStarted", "PolicyInvalid"]),
    message=st.text(max_size=MESSAGE_LIMIT),
    warning=st.booleans(),
    at=instants(whole_seconds=True),
    labels=st.dictionaries(label_keys, words, max_size=3),
    related=st.none() | st.tuples(st.sampled_from(["Node", "Namespace"]), words),
)


def record(**changes) -> EventRecord:
    fields = {"name": events.name(AT, "QuotaChanged", "lg-exaone", "quota"), "namespace": "lg-exaone",
              "reason": "QuotaChanged", "message": "GPU quota 56 -> 64", "warning": False, "at": AT,
              "labels": {CONSORTIUM: "lg-exaone"}, **changes}
    return EventRecord(**fields)


# -- the round trip -----------------------------------------------------------------------------------
@given(records)
def test_every_event_survives_encode_and_decode(r):
    assert decode(encode(r)) == r


def test_the_instant_is_written_in_utc_to_the_second():
    """metav1.Time: what `kubectl get events` shows as LAST SEEN."""
    body = encode(record(at=AT.replace(microsecond=500_000)))
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-02-28T15:00:00Z"
    assert decode(body).at == AT


# -- the Event object ------------------------------------------------------------------------------------
def test_an_event_is_about_the_namespace_it_lives_in_and_names_gpu_scheduler():
    body = encode(record(related=("Node", "h100-007")))
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Namespace", "name": "lg-exaone",
                                      "namespace": "lg-exaone"}
    assert body["related"] == {"apiVersion": "v1", "kind": "Node", "name": "h100-007"}
    assert body["source"] == {"component": "gpu-scheduler"}
    assert body["reportingComponent"] == body["reportingInstance"] == "gpu-scheduler"
    assert (body["apiVersion"], body["kind"], body["count"]) == ("v1", "Event", 1)


def test_an_event_about_a_pod_names_it_and_reads_back_the_same():
    r = record(about=("Pod", "stowaway"))
    body = encode(r)
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "stowaway",
                                      "namespace": r.namespace}
    assert decode(body) == r


def test_an_event_carries_the_managed_by_label_beside_its_own():
    labels = encode(record())["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "gpu-scheduler", CONSORTIUM: "lg-exaone"}


def test_the_managed_by_label_is_not_part_of_what_an_event_says_when_read_back():
    assert decode(encode(record(labels={}))).labels == {}


@pytest.mark.parametrize("warning, kind", [(False, "Normal"), (True, "Warning")])
def test_the_type_is_normal_or_warning(warning, kind):
    body = encode(record(warning=warning))
    assert body["type"] == kind
    assert decode(body).warning is warning


def test_an_event_about_nothing_else_has_no_related_object():
    body = encode(record())
    assert "related" not in body
    assert decode(body).related is None


# -- messages are cut at 1024 characters ----------------------------------------------------------------
def test_a_message_of_1024_characters_is_kept_whole():
    assert encode(record(message="x" * 1024))["message"] == "x" * 1024


def test_a_longer_message_is_cut_at_1024_characters():
    body = encode(record(message="x" * 1024 + "y" * 500))
    assert body["message"] == "x" * 1024
    assert decode(body) == record(message="x" * 1024)


# any text, repeated past the limit (cheaper to draw than 1,000 random characters)
long_messages = st.builds(lambda unit, length: (unit * length)[:length],
                          st.text(min_size=1, max_size=16), st.integers(MESSAGE_LIMIT + 1, 3 * MESSAGE_LIMIT))


@given(long_messages)
def test_a_long_message_decodes_to_its_first_1024_characters(message):
    assert decode(encode(record(message=message))).message == message[:MESSAGE_LIMIT]


# -- names: deterministic, and one per instant, reason, namespace and subject ------------------------------
def test_a_name_is_gpu_scheduler_and_a_digest():
    assert re.fullmatch(r"gpu-scheduler\.[0-9a-f]{20}", events.name(AT, "QuotaChanged", "lg-exaone", "quota"))


def test_names_are_the_same_in_every_process_and_version():
    """A digest of the fields (not Python's per-process hash): a restarted or newer replica
    retrying the same reconcile finds the Events an older one wrote. Changing these values
    doubles every Event of the round in progress on upgrade."""
    assert events.name(AT, "QuotaChanged", "lg-exaone", "quota") == "gpu-scheduler.c65e647d7de3632fd5eb"
    assert events.name(None, "Eliminated", "lg-exaone", "round-1") == "gpu-scheduler.18fe63314764f17a6ac8"


@given(st.none() | instants(), st.text(), st.text(), st.text())
def test_the_same_instant_reason_namespace_and_subject_always_give_the_same_name(at, reason, namespace, subject):
    """What lets a retried reconcile find the Event its first try created."""
    name = events.name(at, reason, namespace, subject)
    assert name == events.name(at, reason, namespace, subject)
    assert DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253  # a valid object name, whatever the inputs


@given(st.none() | instants(), words, words, words, words)
def test_names_differ_by_reason_namespace_and_subject(at, reason, namespace, subject, other):
    name = events.name(at, reason, namespace, subject)
    if other != reason:
        assert events.name(at, other, namespace, subject) != name
    if other != namespace:
        assert events.name(at, reason, other, subject) != name
    if other != subject:
        assert events.name(at, reason, namespace, other) != name


@given(instants(), st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)))
def test_names_differ_by_instant(at, later):
    assert events.name(at, "QuotaChanged", "lg-exaone", "quota") != \
        events.name(at + later, "QuotaChanged", "lg-exaone", "quota")


@given(instants())
def test_an_event_named_once_differs_from_every_instants(at):
    """`at=None`: an Event that is to exist once whatever the instant (one per round)."""
    once = events.name(None, "Eliminated", "lg-exaone", "round-1")
    assert once != events.name(at, "Eliminated", "lg-exaone", "round-1")


# -- decoding what is not one of ours -------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"kind": "Pod"},
    {"metadata": {"namespace": "lg-exaone"}},                       # no name
    {"lastTimestamp": None, "firstTimestamp": None},               # no instant
    {"lastTimestamp": "2026-03-01T00:00:00", "firstTimestamp": None},  # an instant without an offset
    {"lastTimestamp": "soon", "firstTimestamp": "soon"},
])
def test_an_object_that_is_not_a_named_and_timed_event_raises_value_error(change):
    with pytest.raises(ValueError):
        decode({**encode(record()), **change})


def test_an_event_with_only_a_first_timestamp_decodes_to_it():
    body = {**encode(record()), "lastTimestamp": None}
    assert decode(body).at == datetime(2026, 2, 28, 15, 0, tzinfo=UTC)
