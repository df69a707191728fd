"""The chart's ValidatingAdmissionPolicies (templates/admission-policies.yaml), rendered by the real
helm, applied with the real kubectl to the sandbox API server, which evaluates their CEL as
kube-apiserver does; then every refusal shown with the real kubectl, as the person who meets it
would see it, and the controller (a real `Reconciler` with the project's `Writer`, under the
controller's ServiceAccount) and the node agent (its `NodeAnnotationPublisher`, under the agent's
pod-bound token) shown to do their work through them.

The programme is the security review's (tests/security/conftest.py): LG and Upstage share an H100
and a B200 pool, with free nodes left over.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from scheduler.actuator.connect import connect
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.sandbox import SandboxServer, UserInfo
from scheduler.telemetry.agent import NodeAnnotationPublisher
from tests.helm.conftest import NAMESPACE, template
from tests.security.conftest import Cluster, loaded_programme

PREFIX = "gpu-scheduler.sovereign-ai.kr/"
LG, LG_NS, UPSTAGE, UPSTAGE_NS = "lg", "lg-exaone", "upstage", "upstage-solar"
CONTROLLER = UserInfo.service_account(NAMESPACE, "gs-gpu-scheduler")
ENGINEER = UserInfo("kim@lgresearch.example", ("lg-exaone-engineers", "system:authenticated"))
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def agent_on(node: str) -> UserInfo:
    """The agent's ServiceAccount token as the kubelet mounts it in the agent pod on `node`."""
    return UserInfo.service_account(NAMESPACE, "gs-gpu-scheduler-agent", node=node, pod=f"gs-gpu-scheduler-agent-{node}")


def rendered_admission(helm: Path, tmp: Path, values: dict[str, Any] | None = None) -> str:
    done = template(helm, values or {}, tmp, "--show-only", "templates/admission-policies.yaml")
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the render ------------------------------------------------------------------------------------
def test_the_chart_renders_four_policies_each_with_its_binding(render):
    objects = [o for o in render("default").objects if o["kind"] in POLICY_KINDS]
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == POLICY_KINDS[0]}
    bindings = {o["metadata"]["name"]: o for o in objects if o["kind"] == POLICY_KINDS[1]}
    assert sorted(policies) == ["gs-gpu-scheduler-consortium-pods", "gs-gpu-scheduler-managed-namespaces",
                                "gs-gpu-scheduler-managed-nodes", "gs-gpu-scheduler-managed-quotas"]
    for name, b in bindings.items():
        assert b["spec"]["policyName"] == name and b["spec"]["validationActions"] == ["Deny"]
    assert set(bindings) == set(policies)
    for p in policies.values():
        assert p["spec"]["failurePolicy"] == "Fail" and "paramKind" not in p["spec"]
    consortium_namespaces = {"matchExpressions": [{"key": PREFIX + "consortium", "operator": "Exists"}]}
    assert bindings["gs-gpu-scheduler-consortium-pods"]["spec"]["matchResources"]["namespaceSelector"] == \
        consortium_namespaces
    conditions = policies["gs-gpu-scheduler-managed-nodes"]["spec"]["matchConditions"]
    assert conditions[0]["expression"] == \
        "request.userInfo.username != 'system:serviceaccount:gpu-scheduler-system:gs-gpu-scheduler'"


def test_the_policies_follow_the_label_prefix_and_the_service_account_names(render):
    text = json.dumps([o for o in render("customised").objects if o["kind"] in POLICY_KINDS])
    assert "gpu-scheduler.sovereign-ai.kr" not in text
    assert "'sched.example.org/consortium'" in text and "'sched.example.org/telemetry'" in text
    assert "system:serviceaccount:gpu-scheduler-system:fleet'" in text
    assert "system:serviceaccount:gpu-scheduler-system:gpu-agent'" in text


def test_without_the_agent_nobody_may_write_telemetry(render):
    nodes = next(o for o in render("agent-off").objects if o["metadata"]["name"] == "gs-gpu-scheduler-managed-nodes")
    variables = {v["name"]: v["expression"] for v in nodes["spec"]["variables"]}
    assert variables["isAgent"] == "false" and "agentNode" not in variables


def test_admission_enabled_false_renders_no_policy(helm, tmp_path):
    done = template(helm, {"admission": {"enabled": False}}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert not [o for o in yaml.safe_load_all(done.stdout) if o and o["kind"] in POLICY_KINDS]


# -- enforced by the API server --------------------------------------------------------------------
@dataclass
class Enforced:
    cluster: Cluster
    kubectl: Path
    tmp: Path

    @property
    def server(self) -> SandboxServer:
        return self.cluster.server

    def kubeconfig(self, user: UserInfo | None, namespace: str = "default") -> Path:
        name = "admin" if user is None else user.username.replace(":", "_").replace("@", "_")
        return self.server.write_kubeconfig(self.tmp / f"{name}-{namespace}", namespace, user)

    def run(self, user: UserInfo | None, *args: str, stdin: str | None = None,
            namespace: str = "default") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.kubectl), "--kubeconfig", str(self.kubeconfig(user, namespace)), *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    def refused(self, user: UserInfo | None, *args: str, stdin: str | None = None, namespace: str = "default") -> str:
        """What kubectl prints for a request the API server refuses with a policy."""
        done = self.run(user, *args, stdin=stdin, namespace=namespace)
        assert done.returncode == 1, done.stdout
        assert "Error from server (Forbidden)" in done.stderr, done.stderr
        return done.stderr.strip().split(" denied request: ", 1)[1]

    def ok(self, user: UserInfo | None, *args: str, stdin: str | None = None, namespace: str = "default") -> str:
        done = self.run(user, *args, stdin=stdin, namespace=namespace)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def enforced(helm, kubectl, tmp_path: Path) -> Iterator[Enforced]:
    """The rendered policies applied with kubectl, then the programme handed out by the controller
    under its own ServiceAccount: every one of its writes passed the policies."""
    source = loaded_programme(tmp_path / "policies")
    server = SandboxServer(port=0, seed=1).start()
    try:
        server.load_list(builtin_cluster(source.policy))
        admission = rendered_admission(helm, tmp_path)
        applied = subprocess.run([str(kubectl), "--kubeconfig", str(server.write_kubeconfig(tmp_path / "admin")),
                                  "apply", "-f", "-"], input=admission, capture_output=True, text=True, timeout=60)
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.count(" created") == 8, applied.stdout
        controller_kubeconfig = server.write_kubeconfig(tmp_path / "controller", user=CONTROLLER)
        api = connect(str(controller_kubeconfig))
        try:
            cluster = Cluster(server, api, controller_kubeconfig, source)
            assert cluster.reconcile().writes > 0  # labels, taints, quotas, Events: all admitted
            assert cluster.reconcile().writes == 0
            cluster.settled()
            yield Enforced(cluster, kubectl, tmp_path)
        finally:
            api.close()
    finally:
        server.stop()


def pod(name: str, namespace: str, tolerate: str | None = None, **spec: Any) -> str:
    body: dict[str, Any] = {"containers": [{"name": "trainer", "image": "nvcr.io/nvidia/nemo:25.09",
                                            "resources": {"limits": {"nvidia.com/gpu": "8"}}}], **spec}
    if tolerate:
        body["tolerations"] = [{"key": PREFIX + "consortium", "operator": "Equal", "value": tolerate,
                                "effect": "NoSchedule"}]
        body["nodeSelector"] = {PREFIX + "consortium": tolerate}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                       "spec": body})


def test_a_pod_tolerating_another_consortiums_taint_is_refused(enforced: Enforced):
    message = enforced.refused(ENGINEER, "apply", "-f", "-", stdin=pod("train-0", LG_NS, tolerate=UPSTAGE))
    assert message == f"namespace {LG_NS} belongs to consortium {LG}: pods here may not tolerate the taint of " \
                      f"consortium {UPSTAGE}"
    assert enforced.server.get("pods", "train-0", LG_NS) is None


def test_the_same_pod_is_accepted_in_its_own_consortiums_namespace(enforced: Enforced):
    enforced.ok(None, "apply", "-f", "-", stdin=pod("train-0", UPSTAGE_NS, tolerate=UPSTAGE))
    enforced.ok(ENGINEER, "apply", "-f", "-", stdin=pod("train-0", LG_NS, tolerate=LG))
    assert enforced.server.get("pods", "train-0", LG_NS) is not None


def test_a_pod_pinned_to_a_node_at_create_is_refused(enforced: Enforced):
    node = enforced.cluster.nodes_of(UPSTAGE)[0]
    message = enforced.refused(ENGINEER, "apply", "-f", "-", stdin=pod("train-0", LG_NS, nodeName=node))
    assert message == (f"namespace {LG_NS} belongs to consortium {LG}: pods here may not set spec.nodeName ({node}), "
                       f"which bypasses the scheduler and the consortium taints; select nodes with nodeSelector "
                       f"{PREFIX}consortium={LG} instead")


@pytest.mark.parametrize("where", ["containers", "initContainers"])
def test_nvidia_visible_devices_is_refused(enforced: Enforced, where):
    spec = json.loads(pod("train-0", LG_NS, tolerate=LG))
    container = {"name": "peek", "image": "ubuntu:24.04", "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]}
    spec["spec"].setdefault(where, []).append(container)
    message = enforced.refused(ENGINEER, "apply", "-f", "-", stdin=json.dumps(spec))
    assert message == (f"namespace {LG_NS} belongs to consortium {LG}: pods here may not set NVIDIA_VISIBLE_DEVICES "
                       "or NVIDIA_DRIVER_CAPABILITIES (container peek); request nvidia.com/gpu and the device plugin "
                       "sets them")


@pytest.mark.parametrize("spec, says", [
    ({"tolerations": [{"operator": "Exists"}]}, "tolerate every consortium's taint"),
    ({"tolerations": [{"key": PREFIX + "consortium", "operator": "Exists", "effect": "NoSchedule"}]},
     "tolerate every consortium's taint"),
    ({"tolerations": [{"key": PREFIX + "draining", "operator": "Exists"}]}, f"tolerate the taint {PREFIX}draining"),
    ({"nodeSelector": {PREFIX + "consortium": UPSTAGE}}, f"select the nodes of consortium {UPSTAGE}"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": PREFIX + "consortium", "operator": "In", "values": [LG, UPSTAGE]}]}]}}}},
     f"require the nodes of consortium {UPSTAGE}"),
    ({"containers": [{"name": "root", "image": "x", "securityContext": {"privileged": True}}]},
     "run privileged containers (root)"),
    ({"volumes": [{"name": "gpus", "hostPath": {"path": "/dev/nvidia0"}}]},
     "mount GPU devices from the host (hostPath volume gpus (/dev/nvidia0))"),
])
def test_the_other_ways_onto_a_gpu_are_refused(enforced: Enforced, spec, says):
    message = enforced.refused(ENGINEER, "apply", "-f", "-", stdin=pod("train-0", LG_NS, **spec))
    assert message.startswith(f"namespace {LG_NS} belongs to consortium {LG}: pods here may not {says}"), message


def test_pods_from_before_the_policies_can_still_be_updated_and_deleted(enforced: Enforced):
    node = enforced.cluster.nodes_of(UPSTAGE)[0]
    stray = json.loads(pod("stray", LG_NS, tolerate=UPSTAGE, nodeName=node))
    stray["metadata"]["finalizers"] = ["example.org/cleanup"]
    enforced.server.put(stray)  # created while the policies were off
    enforced.ok(None, "label", "pod", "stray", "-n", LG_NS, "reviewed=yes")
    enforced.ok(None, "delete", "pod", "stray", "-n", LG_NS, "--wait=false")
    enforced.ok(None, "patch", "pod", "stray", "-n", LG_NS, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert enforced.server.get("pods", "stray", LG_NS) is None
    # a toleration it adds is judged
    enforced.server.put(json.loads(pod("stray", LG_NS, tolerate=LG)))
    more = json.dumps({"spec": {"tolerations": [
        {"key": PREFIX + "consortium", "operator": "Equal", "value": LG, "effect": "NoSchedule"},
        {"key": PREFIX + "consortium", "operator": "Equal", "value": UPSTAGE, "effect": "NoSchedule"}]}})
    message = enforced.refused(None, "patch", "pod", "stray", "-n", LG_NS, "--type=merge", "-p", more)
    assert message.endswith(f"may not tolerate the taint of consortium {UPSTAGE}")


def test_pods_outside_consortium_namespaces_are_not_concerned(enforced: Enforced):
    node = enforced.cluster.nodes_of(UPSTAGE)[0]
    enforced.ok(None, "apply", "-f", "-", stdin=pod("debug", "default", nodeName=node))


def test_an_engineer_relabelling_a_node_is_refused_naming_the_owner(enforced: Enforced):
    node = enforced.cluster.nodes_of(UPSTAGE)[0]
    message = enforced.refused(ENGINEER, "label", "node", node, f"{PREFIX}consortium={LG}", "--overwrite")
    assert message == (f"node {node}: label {PREFIX}consortium is managed by gpu-scheduler (assigned to {UPSTAGE}); "
                       "edit the policy instead")
    message = enforced.refused(ENGINEER, "taint", "node", node, f"{PREFIX}consortium:NoSchedule-")
    assert message == (f"node {node}: taint {PREFIX}consortium is managed by gpu-scheduler (assigned to {UPSTAGE}); "
                       "edit the policy instead")
    assert enforced.cluster.node_label(node, "consortium") == UPSTAGE
    enforced.ok(ENGINEER, "label", "node", node, "example.org/rack=r12")  # labels outside the contract are free,
    enforced.ok(None, "label", "node", node, f"{PREFIX}pool=h100-spare", "--overwrite")  # the pools' included


def test_hand_edits_of_namespaces_and_quotas_are_refused(enforced: Enforced):
    message = enforced.refused(ENGINEER, "label", "ns", LG_NS, f"{PREFIX}quota-gpus=9999", "--overwrite")
    assert message == (f"namespace {LG_NS}: label {PREFIX}quota-gpus is managed by gpu-scheduler (consortium {LG}); "
                       "edit the policy instead")
    edit = json.dumps({"metadata": {"labels": {PREFIX + "quota-a100": "8"}, "annotations": {PREFIX + "allocation": None}}})
    message = enforced.refused(None, "patch", "ns", LG_NS, "--type=merge", "-p", edit)
    assert message == (f"namespace {LG_NS}: label {PREFIX}quota-a100, annotation {PREFIX}allocation are managed "
                       f"by gpu-scheduler (consortium {LG}); edit the policy instead")
    enforced.ok(None, "label", "ns", LG_NS, "pod-security.kubernetes.io/enforce=baseline")
    impostor = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "lg-shadow", "labels": {PREFIX + "consortium": LG}}}
    assert enforced.refused(None, "apply", "-f", "-", stdin=json.dumps(impostor)) == (
        f"namespace lg-shadow: label {PREFIX}consortium is managed by gpu-scheduler (no consortium); "
        "edit the policy instead")
    quota = ("'namespace lg-exaone: the ResourceQuota gpu-scheduler holds the GPUs of consortium lg and is managed by "
             "gpu-scheduler; it may not be {} by hand: edit the policy instead'")
    patch = json.dumps({"spec": {"hard": {"requests.nvidia.com/gpu": "9999"}}})
    assert enforced.refused(None, "patch", "quota", "gpu-scheduler", "-n", LG_NS, "-p", patch) == \
        quota.format("changed").strip("'")
    assert enforced.refused(None, "delete", "quota", "gpu-scheduler", "-n", LG_NS) == quota.format("deleted").strip("'")
    assert enforced.cluster.quota_hard(LG_NS) == "40"
    spare = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": UPSTAGE_NS},
             "spec": {"hard": {"requests.nvidia.com/gpu": "9999"}}}
    enforced.ok(CONTROLLER, "delete", "quota", "gpu-scheduler", "-n", UPSTAGE_NS)  # the controller may
    assert enforced.refused(None, "apply", "-f", "-", stdin=json.dumps(spare)) == \
        quota.format("created").strip("'").replace(LG_NS, UPSTAGE_NS).replace(f"consortium {LG}", f"consortium {UPSTAGE}")
    enforced.ok(None, "label", "quota", "gpu-scheduler", "-n", LG_NS, "example.org/reviewed=yes")


def test_the_agent_writes_only_its_own_nodes_telemetry(enforced: Enforced):
    own, other = enforced.cluster.nodes_of(LG)[:2]
    report = enforced.cluster.telemetry(healthy=8)
    with connect(str(enforced.kubeconfig(agent_on(own)))) as api:
        publisher = NodeAnnotationPublisher(api, PREFIX + "telemetry", sleep=lambda s: None)
        publisher.publish(own, report)
        assert enforced.cluster.node_annotation(own, "telemetry") == report
        with pytest.raises(ApiException) as refused:
            publisher.publish(other, report)
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["details"]["causes"][0]["message"].endswith(
        f"denied request: node {other}: the gpu-scheduler node agent on {own} may write only its own node")
    assert enforced.cluster.node_annotation(other, "telemetry") is None

    message = enforced.refused(agent_on(own), "label", "node", own, f"{PREFIX}node-state=free", "--overwrite")
    assert message == f"node {own}: the gpu-scheduler node agent may change only the annotation {PREFIX}telemetry"
    forged = enforced.cluster.telemetry(healthy=0)
    message = enforced.refused(ENGINEER, "annotate", "node", own, f"{PREFIX}telemetry={forged}", "--overwrite")
    assert message == f"node {own}: annotation {PREFIX}telemetry is written by the gpu-scheduler node agent on this node"


def test_an_agent_token_without_its_node_writes_nothing(enforced: Enforced):
    node = enforced.cluster.nodes_of(LG)[0]
    unbound = UserInfo.service_account(NAMESPACE, "gs-gpu-scheduler-agent")  # a legacy Secret token
    message = enforced.refused(unbound, "annotate", "node", node, f"{PREFIX}telemetry=x", "--overwrite")
    assert "names no node" in message


def test_the_controller_still_makes_every_change_of_plan(enforced: Enforced):
    """A cordoned node is taken back from its team and another assigned: the controller (not the
    cordon's author) taints, labels and annotates nodes and the namespace through the policies,
    then releases the drained node. The refused hand edit before it left nothing to revert."""
    cluster = enforced.cluster
    enforced.refused(ENGINEER, "label", "ns", LG_NS, f"{PREFIX}quota-gpus=9999", "--overwrite")
    node = cluster.nodes_of(LG)[0]
    enforced.ok(None, "cordon", node)  # not a field of the scheduler's: an operator may

    outcome = cluster.reconcile()

    assert outcome.failed == 0 and outcome.writes > 0
    assert cluster.node_label(node, "node-state") == "draining"
    assert (PREFIX + "draining", "", "NoSchedule") in {(k, "", e) for k, _, e in cluster.our_taints(node)}
    assert cluster.node_annotation(node, "drain-deadline")
    assert cluster.reconcile().writes > 0  # no GPU pod on it: released
    assert cluster.node_label(node, "node-state") == "free" and not cluster.our_taints(node)
    assert cluster.reconcile().writes == 0
    assert cluster.drift("namespace") == 0 and cluster.drift("node") == 0
