"""wire/quota.py: the ResourceQuota `gpu-scheduler` in each consortium namespace, one object with one
field (`spec.hard["requests.nvidia.com/gpu"]`) that the API server enforces (docs/daemon.md,
"ResourceQuota `gpu-scheduler`"). The actuator creates it whole or merge-patches the one field;
the snapshot decoder reads the number back from either."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.wire import MANAGED_BY, quota
from tests.wire.strategies import words

gpu_counts = st.integers(0, 100_000)
spellings = gpu_counts | gpu_counts.map(str)  # the planner's int, or the string the API server returns


def test_the_names_the_api_server_knows_it_by():
    assert quota.NAME == "gpu-scheduler"
    assert quota.HARD == "requests.nvidia.com/gpu"


# -- the create body ------------------------------------------------------------------------------------
def test_the_create_body_is_a_whole_resource_quota_in_the_namespace():
    assert quota.encode("lg-exaone", 64) == {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone",
                     "labels": {"app.kubernetes.io/managed-by": "gpu-scheduler"}},
        "spec": {"hard": {"requests.nvidia.com/gpu": "64"}}}


def test_the_create_body_carries_the_managed_by_label():
    assert quota.encode("lg-exaone", 64)["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpu-scheduler"


def test_each_create_body_has_its_own_labels():
    """Labels are copied, so a caller adding one to a body changes neither MANAGED_BY nor the next body."""
    first = quota.encode("a", 8)
    first["metadata"]["labels"]["extra"] = "x"
    assert quota.encode("b", 8)["metadata"]["labels"] == MANAGED_BY == {"app.kubernetes.io/managed-by": "gpu-scheduler"}


# -- the patch body -----------------------------------------------------------------------------------------
def test_the_patch_sets_the_gpu_limit_and_nothing_else():
    """A merge patch: other limits someone put in the same quota (requests.cpu, ...) are kept."""
    assert quota.encode_patch(64) == {"spec": {"hard": {"requests.nvidia.com/gpu": "64"}}}


# -- the round trip: create and patch bodies both give the GPU count -------------------------------------
@given(words, spellings)
def test_decoding_a_create_body_gives_the_gpu_count(namespace, gpus):
    assert quota.decode(quota.encode(namespace, gpus)) == str(gpus)


@given(spellings)
def test_decoding_a_patch_body_gives_the_gpu_count(gpus):
    assert quota.decode(quota.encode_patch(gpus)) == str(gpus)


@given(words, spellings)
def test_create_and_patch_bodies_of_one_count_decode_alike(namespace, gpus):
    assert quota.decode(quota.encode(namespace, gpus)) == quota.decode(quota.encode_patch(gpus))


def test_a_count_is_spelt_as_a_kubernetes_quantity_string():
    assert quota.encode_patch(0)["spec"]["hard"][quota.HARD] == "0"
    assert quota.encode("a", "64")["spec"]["hard"][quota.HARD] == "64"


# -- decoding what the API server returns ------------------------------------------------------------------
def test_a_live_quota_with_other_limits_and_a_status_decodes_to_its_gpu_limit():
    live = {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "gpu-scheduler", "namespace": "lg-exaone", "resourceVersion": "812"},
            "spec": {"hard": {"requests.cpu": "10", "requests.nvidia.com/gpu": "64"}},
            "status": {"hard": {"requests.nvidia.com/gpu": "64"}, "used": {"requests.nvidia.com/gpu": "40"}}}
    assert quota.decode(live) == "64"


@pytest.mark.parametrize("obj", [
    {}, {"spec": None}, {"spec": {}}, {"spec": {"hard": None}}, {"spec": {"hard": {"requests.cpu": "10"}}},
    {"metadata": {"name": "gpu-scheduler"}},
])
def test_a_quota_or_patch_without_a_gpu_limit_decodes_to_none(obj):
    assert quota.decode(obj) is None


def test_decode_hard_reads_spec_hard_alone_and_spells_numbers_as_strings():
    assert quota.decode_hard({"requests.nvidia.com/gpu": 64}) == "64"
    assert quota.decode_hard({"requests.nvidia.com/gpu": "1k"}) == "1k"  # as the API server spells it
    assert quota.decode_hard({"limits.nvidia.com/gpu": "8"}) is None
