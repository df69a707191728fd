"""The chart ships the real programme: files/policies/ is policies/ byte for byte (Helm cannot read
files outside the chart, so it keeps a copy; this test keeps the copy from drifting), and the
ConfigMap the chart renders is a policy the daemon loads."""

from __future__ import annotations

from scheduler.policy import load_policy_texts
from tests.helm.conftest import CHART, REPO, VALUE_SETS

POLICIES = REPO / "policies"
COPY = CHART / "files" / "policies"


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_charts_policies_are_the_repositorys_byte_for_byte():
    original, copy = _files(POLICIES), _files(COPY)
    assert original, "policies/ is empty"
    assert sorted(copy) == sorted(original), \
        "file sets differ: copy policies/* to deploy/helm/gpu-scheduler/files/policies/"
    for name, content in original.items():
        assert copy[name] == content, f"files/policies/{name} differs from policies/{name}: copy it again"


def test_default_policy_configmap_holds_exactly_the_shipped_files(render):
    cm = render("default").one("ConfigMap", "gs-gpu-scheduler-policy")
    assert cm["data"] == {name: content.decode("utf-8") for name, content in _files(COPY).items()}
    policy = load_policy_texts(cm["data"])  # raises PolicyError with file:line: field if invalid
    assert policy.stages and policy.consortia


def test_policy_files_from_values_replace_the_shipped_ones(render):
    cm = render("customised").one("ConfigMap", "fleet-policy")
    assert cm["data"] == VALUE_SETS["customised"]["policy"]["files"]
    load_policy_texts(cm["data"])
