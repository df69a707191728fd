"""The chart's RBAC is exactly what the code calls: one table below, one line per permission,
each naming the Kubernetes client call that needs it.

Both directions are checked against the source: every client call in scheduler/ must be covered
by a line of the table (a new call without its RBAC rule fails here, not in production with a
403), and every line must still be used by a call (a permission nobody needs is taken away).
The rendered ClusterRoles and Role must then grant the table, nothing more.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.helm.conftest import NAMESPACE, REPO, VALUE_SETS

SOURCE = REPO / "scheduler"
# the agent's code (telemetry/ holds the NVML reader, health rules, the agent and its wiring);
# every other module runs in the controller
AGENT_SOURCE = SOURCE / "telemetry"
# the sandbox is an API *server* for tests and `run --simulate`: it makes no client calls to a cluster
NOT_A_CLIENT = SOURCE / "sandbox"

# role: "controller" (ClusterRole <fullname>-controller), "leader-election" (Role in the release
# namespace, bound to the controller's ServiceAccount), "agent" (ClusterRole <fullname>-agent),
# "create-namespaces" (the controller's ClusterRole, only with `createNamespaces: true`; see
# tests/helm/test_multicluster.py)
# (role, apiGroup, resource, verb, client call)
RBAC = [
    # cluster/kube.py read_snapshot (_LISTS): every reconcile lists the nodes; plan/status --in-cluster too
    ("controller", "", "nodes", "list", "list_node"),
    # cluster/kube.py Watcher: kubernetes.watch.Watch streams the same list call to wake reconciles
    ("controller", "", "nodes", "watch", "list_node"),
    # cluster/kube.py Writer._rebase_taints: reads the live node's taints before a taint patch
    ("controller", "", "nodes", "get", "read_node"),
    # cluster/kube.py Writer._send: node labels, taints and drain annotations (merge patch)
    ("controller", "", "nodes", "patch", "patch_node"),
    # cluster/kube.py read_snapshot: namespace labels the plan compares against
    ("controller", "", "namespaces", "list", "list_namespace"),
    # cluster/kube.py Watcher: a hand edit of a namespace label wakes a reconcile
    ("controller", "", "namespaces", "watch", "list_namespace"),
    # cluster/kube.py Writer._send: namespace labels and the allocation annotation
    ("controller", "", "namespaces", "patch", "patch_namespace"),
    # cluster/kube.py read_snapshot: the ResourceQuota gpu-scheduler of every namespace
    ("controller", "", "resourcequotas", "list", "list_resource_quota_for_all_namespaces"),
    # cluster/kube.py Watcher: a hand edit of the quota wakes a reconcile
    ("controller", "", "resourcequotas", "watch", "list_resource_quota_for_all_namespaces"),
    # cluster/kube.py Writer._send: the first quota of a consortium namespace
    ("controller", "", "resourcequotas", "create", "create_namespaced_resource_quota"),
    # cluster/kube.py Writer._send: the quota follows the plan
    ("controller", "", "resourcequotas", "patch", "patch_namespaced_resource_quota"),
    # cluster/kube.py read_snapshot: GPU pods (drains wait for them; reclaim prefers idle nodes)
    ("controller", "", "pods", "list", "list_pod_for_all_namespaces"),
    # cluster/kube.py Watcher: a GPU pod ending on a draining node wakes a reconcile
    ("controller", "", "pods", "watch", "list_pod_for_all_namespaces"),
    # cluster/kube.py Writer._send: a drain past its deadline evicts (honours PodDisruptionBudgets)
    ("controller", "", "pods/eviction", "create", "create_namespaced_pod_eviction"),
    # cluster/kube.py Writer._send: Events on consortium namespaces, PolicyInvalid in the release namespace
    ("controller", "", "events", "create", "create_namespaced_event"),
    # cluster/kube.py Writer._event_exists: a create answered 409 reads the Event back
    ("controller", "", "events", "get", "read_namespaced_event"),
    # actuator/writer.py Writer._send: `run --create-namespaces` makes a namespace a team needs in a cluster
    ("create-namespaces", "", "namespaces", "create", "create_namespace"),
    # daemon/leader.py try_acquire_or_renew and stop: every replica reads the Lease
    ("leader-election", "coordination.k8s.io", "leases", "get", "read_namespaced_lease"),
    # daemon/leader.py try_acquire_or_renew: the first replica creates it (404 on read)
    ("leader-election", "coordination.k8s.io", "leases", "create", "create_namespaced_lease"),
    # daemon/leader.py try_acquire_or_renew and stop: take over, renew, hand back (replace)
    ("leader-election", "coordination.k8s.io", "leases", "update", "replace_namespaced_lease"),
    # telemetry/agent.py NodeAnnotationPublisher.publish: merge-patches <prefix>/telemetry onto its own node
    ("agent", "", "nodes", "patch", "patch_node"),
]

# the verb a client method needs, from its name (watch is a list call streamed by Watch)
VERB_OF_PREFIX = {"list": {"list", "watch"}, "read": {"get"}, "create": {"create"}, "patch": {"patch"},
                  "replace": {"update"}, "delete": {"delete"}, "connect": {"create", "get"}}
LEASE = "gpu-scheduler-leader"


@functools.cache
def client_methods() -> frozenset[str]:
    """Every request method of the official client's API classes (CoreV1Api.list_node, ...),
    read from the client's source: importing all 66 API modules costs seconds."""
    folder = Path(kubernetes.__file__).parent / "client" / "api"
    names: set[str] = set()
    for path in folder.glob("*_api.py"):
        names |= set(re.findall(r"^    def ([a-z][a-z0-9_]*)\(\s*self\b", path.read_text(encoding="utf-8"), re.M))
    return frozenset(n for n in names if n.split("_")[0] in VERB_OF_PREFIX and not n.endswith("_with_http_info"))


def calls_in(files: list[Path]) -> dict[str, list[str]]:
    """client method -> where it is referenced ("path:line")."""
    methods = client_methods()
    found: dict[str, list[str]] = {}
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"\.\s*([a-z][a-z0-9_]*)\b", line.split("#")[0]):
                if name in methods:
                    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                    found.setdefault(name, []).append(f"{where}:{lineno}")
    return found


def sources(component: str) -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    if component == "agent":
        return [f for f in files if f.is_relative_to(AGENT_SOURCE)]
    return [f for f in files if not f.is_relative_to(AGENT_SOURCE) and not f.is_relative_to(NOT_A_CLIENT)]


def table(*roles: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for role, group, resource, verb, _ in RBAC if role in roles}


# -- the table against the code ---------------------------------------------------------------
def test_the_table_names_real_client_methods_with_matching_verbs():
    methods = client_methods()
    for role, group, resource, verb, call in RBAC:
        assert call in methods, f"{call} is not a kubernetes client method"
        assert verb in VERB_OF_PREFIX[call.split("_")[0]], f"{call} does not need {verb} on {resource}"
    assert len(RBAC) == len({row[:4] for row in RBAC}), "a permission is listed twice"


def test_the_scan_finds_client_calls_however_they_are_written(tmp_path):
    code = tmp_path / "new_feature.py"
    code.write_text("def f(core, coord, name):\n"
                    "    core.delete_namespaced_pod(name, 'ns')\n"
                    "    coord . patch_namespaced_lease(name, 'ns', {})\n"
                    "    handler = client.CoreV1Api(api).read_namespaced_config_map\n"
                    "    # core.list_secret_for_all_namespaces() in a comment is not a call\n"
                    "    path.read_text(); snapshot = read_snapshot(api)\n")
    assert sorted(calls_in([code])) == ["delete_namespaced_pod", "patch_namespaced_lease", "read_namespaced_config_map"]


@pytest.mark.parametrize("component, roles", [("controller", ("controller", "leader-election", "create-namespaces")),
                                              ("agent", ("agent",))])
def test_every_client_call_in_the_code_has_its_rbac_rule(component, roles):
    calls = calls_in(sources(component))
    covered = {call for role, *_, call in RBAC if role in roles}
    missing = {call: where for call, where in calls.items() if call not in covered}
    assert not missing, (f"the {component} calls the API without an RBAC rule in the chart; add a line to "
                         f"RBAC here and the rule to templates/rbac.yaml: {missing}")


@pytest.mark.parametrize("component, roles", [("controller", ("controller", "leader-election", "create-namespaces")),
                                              ("agent", ("agent",))])
def test_every_rbac_rule_is_used_by_the_code(component, roles):
    files = sources(component)
    calls = calls_in(files)
    unused = [row for row in RBAC if row[0] in roles and row[4] not in calls]
    assert not unused, f"permissions no {component} code path needs any more: remove them: {unused}"
    if any(row[3] == "watch" for row in RBAC if row[0] in roles):
        assert any("kubernetes.watch" in f.read_text(encoding="utf-8") for f in files), \
            "watch is granted but nothing uses kubernetes.watch"


def test_the_lease_name_is_the_one_the_daemon_uses():
    assert f'"{LEASE}"' in (SOURCE / "daemon" / "app.py").read_text(encoding="utf-8")


# -- the rendered chart against the table -----------------------------------------------------
def granted(role_obj) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    for rule in role_obj["rules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule["verbs"]:
                    yield group, resource, verb, tuple(rule.get("resourceNames", ()))


@pytest.mark.parametrize("name", ["default", "customised"])
def test_rendered_roles_grant_exactly_the_table(render, name):
    r = render(name)
    full = "fleet" if name == "customised" else "gs-gpu-scheduler"
    controller = r.one("ClusterRole", f"{full}-controller")
    leader = r.one("Role", f"{full}-leader-election")
    agent = r.one("ClusterRole", f"{full}-agent")
    assert {g[:3] for g in granted(controller)} == table("controller")
    assert {g[:3] for g in granted(leader)} == table("leader-election")
    assert {g[:3] for g in granted(agent)} == table("agent")
    assert len(r.all("ClusterRole")) == 2 and len(r.all("Role")) == 1


def test_lease_access_is_limited_to_the_release_namespace_and_the_lease_name(render):
    r = render("default")
    role = r.one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    by_verb = {verb: names for _, _, verb, names in granted(role)}
    assert by_verb == {"create": (), "get": (LEASE,), "update": (LEASE,)}  # create cannot be limited by name
    args = r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--lease-namespace={NAMESPACE}" in args


def test_nothing_is_granted_beyond_least_privilege(render):
    for name in VALUE_SETS:
        for obj in render(name).all("ClusterRole") + render(name).all("Role"):
            for rule in obj["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    assert "*" not in rule.get(key, []), (name, obj["metadata"]["name"], rule)
                    assert not [v for v in rule.get(key, []) if "*" in v]
                assert "nonResourceURLs" not in rule
                assert not {"secrets", "configmaps", "nodes/status", "nodes/proxy", "serviceaccounts/token"} \
                    & set(rule["resources"])
                assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert obj.get("aggregationRule") is None


def test_bindings_give_each_role_to_its_own_service_account(render):
    r = render("default")
    subjects = {b["metadata"]["name"]: (b["roleRef"], b["subjects"]) for b in
                r.all("ClusterRoleBinding") + r.all("RoleBinding")}
    controller_sa = [{"kind": "ServiceAccount", "name": "gs-gpu-scheduler", "namespace": NAMESPACE}]
    agent_sa = [{"kind": "ServiceAccount", "name": "gs-gpu-scheduler-agent", "namespace": NAMESPACE}]
    assert subjects == {
        "gs-gpu-scheduler-controller": ({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                         "name": "gs-gpu-scheduler-controller"}, controller_sa),
        "gs-gpu-scheduler-leader-election": ({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                              "name": "gs-gpu-scheduler-leader-election"}, controller_sa),
        "gs-gpu-scheduler-agent": ({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                    "name": "gs-gpu-scheduler-agent"}, agent_sa),
    }
    workloads = {w["kind"]: w["spec"]["template"]["spec"]["serviceAccountName"] for w, _ in r.pod_specs()}
    assert workloads == {"Deployment": "gs-gpu-scheduler", "DaemonSet": "gs-gpu-scheduler-agent"}
    assert {sa["metadata"]["name"] for sa in r.all("ServiceAccount")} == {"gs-gpu-scheduler", "gs-gpu-scheduler-agent"}
