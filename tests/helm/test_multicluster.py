"""The chart for a programme whose pools sit in several Kubernetes clusters: the home release
(`clusters.home`, `clusters.remote`, `createNamespaces`), which mounts one kubeconfig Secret per
remote cluster and passes it to the daemon, and the release installed in each remote cluster
(`remote: true`), which renders what the home controller needs there: its ServiceAccount, a
least-privilege ClusterRole (no Lease: leader election stays in the home cluster) and the token
Secret the operator builds the kubeconfig from, by the commands the release notes print; and, as
the home release does, the admission policies (`admission.enabled`) and the node agent
(`agent.enabled`), so every cluster enforces the allocation and reports its GPUs' health.

Rendered with the real helm, validated as every other render (test_render.py: helm lint --strict,
kubernetes-validate strict against the 1.35 API); the remote admission policies are applied to the
sandbox API server, which evaluates their CEL, and the controller writes through them with the
identity of the kubeconfig the release notes build.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes_validate import ValidationError, validate

from scheduler.actuator.connect import connect
from scheduler.cli.parser import build_parser
from scheduler.cluster.synthetic import builtin_cluster
from scheduler.sandbox import SandboxServer, UserInfo
from scheduler.telemetry.agent import NodeAnnotationPublisher
from tests.helm.conftest import CHART, NAMESPACE, RELEASE, VALUE_SETS, VALUES, Render, run_helm, template
from tests.helm.test_admission import ENGINEER, LG, POLICY_KINDS, PREFIX, Enforced, agent_on, rendered_admission
from tests.helm.test_rbac import granted, table
from tests.security.conftest import Cluster, loaded_programme

KUBERNETES = "1.35.0"
FULL = f"{RELEASE}-gpu-scheduler"
CLUSTERS_DIR = "/etc/gpu-scheduler/clusters"
# the username the home release's admission policies exempt as the controller's (test_admission.py)
HOME_CONTROLLER = f"system:serviceaccount:{NAMESPACE}:{FULL}"
POLICIES = ("consortium-pods", "managed-nodes", "managed-namespaces", "managed-quotas")
# what a release never renders in remote mode, whatever its values say
NEVER_REMOTE = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "Role", "RoleBinding",
                "ServiceMonitor", "PrometheusRule"}

# what the controller may do in a remote cluster: the home ClusterRole's rules, nothing of leases
REMOTE_GRANTS = {
    ("", "nodes"): {"get", "list", "watch", "patch"},
    ("", "namespaces"): {"list", "watch", "patch"},
    ("", "resourcequotas"): {"list", "watch", "create", "patch"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/eviction"): {"create"},
    ("", "events"): {"create", "get"},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


HOME = {
    "clusters": {
        "home": "kisti",
        "remote": [
            {"name": "nhn"},                                   # every default
            {"name": "kt-cloud", "secretName": "kt-admin", "key": "config.yaml",
             "apiServerCidrs": ["203.0.113.10/32"]},
        ],
    },
}
OFF = {"admission": {"enabled": False}, "agent": {"enabled": False}}
MC_SETS: dict[str, dict[str, Any]] = {
    "remote": {"remote": True},
    "remote-create-namespaces": {"remote": True, "createNamespaces": True},
    # the admission policies and the agent switched off: the release of old, its minimal set
    "remote-minimal": {"remote": True, **OFF},
    "remote-minimal-create-namespaces": {"remote": True, "createNamespaces": True, **OFF},
    "remote-agent-off": {"remote": True, "agent": {"enabled": False}},
    "remote-admission-off": {"remote": True, "admission": {"enabled": False}},
    # the controller's identity set another way: an existing ServiceAccount
    "remote-existing-sa": {"remote": True,
                           "controller": {"serviceAccount": {"create": False, "name": "gpu-controller"}}},
    # every optional object of the chart switched on: remote mode must still render none but the
    # admission policies and the agent
    "remote-everything-on": _merge(VALUE_SETS["monitoring-on"], {
        "remote": True, "agent": {"enabled": True}, "admission": {"enabled": True},
        "networkPolicy": {"enabled": True}, "podDisruptionBudget": {"enabled": True},
        "controller": {"replicas": 3}, "policy": {"files": {"program.yaml": "kind: Program\n"}},
    }),
    "remote-customised": _merge(VALUE_SETS["customised"], {"remote": True}),
    "home": HOME,
    "home-create-namespaces": {**HOME, "createNamespaces": True},
    "home-cidrs": {"clusters": {"home": "kisti", "remote": [
        {"name": "nhn", "apiServerCidrs": ["198.51.100.7/32", "198.51.100.8/32"]},
        {"name": "kt-cloud", "apiServerCidrs": ["203.0.113.10/32"]}]}},
}
REMOTE_SETS = [name for name in MC_SETS if name.startswith("remote")]


@pytest.fixture(scope="session")
def mc_render(helm, tmp_path_factory) -> Callable[[str], Render]:
    """mc_render(name) -> the chart rendered with MC_SETS[name] (cached for the session)."""
    cache: dict[str, Render] = {}

    def _render(name: str) -> Render:
        if name not in cache:
            done = template(helm, MC_SETS[name], tmp_path_factory.mktemp(f"mc-{name}"))
            assert done.returncode == 0, f"helm template with the {name!r} values failed:\n{done.stderr}"
            cache[name] = Render(MC_SETS[name], [o for o in yaml.safe_load_all(done.stdout) if o])
        return cache[name]

    return _render


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb, names in granted(role):
        assert not names, f"{resource}: limited to {names}"
        out.setdefault((group, resource), set()).add(verb)
    return out


def controller_container(r: Render) -> dict[str, Any]:
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


# -- every render is valid, as the suite checks the others ----------------------------------------
@pytest.mark.parametrize("name", sorted(MC_SETS))
def test_helm_lint_strict_passes(helm, tmp_path, name):
    done = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, values=MC_SETS[name], tmp=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("name", sorted(MC_SETS))
def test_every_rendered_object_is_valid_kubernetes_1_35(mc_render, name):
    problems = []
    for obj in mc_render(name).objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # no schema in kubernetes-validate; test_monitoring.py checks their shape
        try:
            validate(obj, KUBERNETES, strict=True)
        except ValidationError as err:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, err.path))}: {err.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(MC_SETS))
def test_objects_carry_the_standard_labels_and_land_in_the_release_namespace(mc_render, name):
    for obj in mc_render(name).objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE and labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/component"] in ("controller", "agent")
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                           "ValidatingAdmissionPolicyBinding"):
            assert "namespace" not in obj["metadata"]
        elif not obj["metadata"]["name"].endswith("-dashboard"):
            assert obj["metadata"]["namespace"] == NAMESPACE, (obj["kind"], obj["metadata"]["name"])


# -- remote mode ---------------------------------------------------------------------------------
def expected_remote(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every object a remote release renders with these values."""
    v = _merge(VALUES, values)
    full = v["fullnameOverride"] or FULL
    agent = f"{full}-agent"
    out = [("Secret", f"{full}-token")]
    if v["controller"]["serviceAccount"]["create"]:
        out.append(("ServiceAccount", v["controller"]["serviceAccount"]["name"] or full))
    if v["rbac"]["create"]:
        out += [("ClusterRole", f"{full}-controller"), ("ClusterRoleBinding", f"{full}-controller")]
    if v["agent"]["enabled"]:
        out.append(("DaemonSet", agent))
        if v["agent"]["serviceAccount"]["create"]:
            out.append(("ServiceAccount", v["agent"]["serviceAccount"]["name"] or agent))
        if v["rbac"]["create"]:
            out += [("ClusterRole", agent), ("ClusterRoleBinding", agent)]
    if v["admission"]["enabled"]:
        out += [(kind, f"{full}-{policy}") for policy in POLICIES for kind in POLICY_KINDS]
    return sorted(out)


def objects(r: Render) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in r.objects)


def test_remote_mode_with_the_defaults_renders_the_controllers_access_the_agent_and_the_policies(mc_render):
    assert objects(mc_render("remote")) == sorted([
        ("ServiceAccount", FULL), ("Secret", f"{FULL}-token"),
        ("ClusterRole", f"{FULL}-controller"), ("ClusterRoleBinding", f"{FULL}-controller"),
        ("ServiceAccount", f"{FULL}-agent"), ("ClusterRole", f"{FULL}-agent"), ("ClusterRoleBinding", f"{FULL}-agent"),
        ("DaemonSet", f"{FULL}-agent"),
        *[(kind, f"{FULL}-{policy}") for policy in POLICIES for kind in POLICY_KINDS],
    ])


@pytest.mark.parametrize("name", ["remote-minimal", "remote-minimal-create-namespaces"])
def test_remote_mode_without_admission_and_agent_renders_only_the_service_account_its_role_and_its_token(
        mc_render, name):
    assert objects(mc_render(name)) == sorted([("ServiceAccount", FULL), ("Secret", f"{FULL}-token"),
                                               ("ClusterRole", f"{FULL}-controller"),
                                               ("ClusterRoleBinding", f"{FULL}-controller")])


@pytest.mark.parametrize("name", REMOTE_SETS)
def test_remote_mode_renders_exactly_what_its_toggles_ask_and_nothing_of_the_controller(mc_render, name):
    r = mc_render(name)
    assert objects(r) == expected_remote(r.values)
    assert not NEVER_REMOTE & set(r.kinds())


@pytest.mark.parametrize("values", [{"remote": True, "rbac": {"create": False}},
                                    {"remote": True, "rbac": {"create": False}, **OFF}])
def test_remote_mode_without_rbac_renders_no_role(helm, tmp_path, values):
    done = template(helm, values, tmp_path)
    assert done.returncode == 0, done.stderr
    rendered = sorted((o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(done.stdout) if o)
    assert rendered == expected_remote(values)
    assert not [kind for kind, _ in rendered if kind.startswith(("ClusterRole", "Role"))]
    if values.get("agent") is None:
        assert ("DaemonSet", f"{FULL}-agent") in rendered


def controller_role(r: Render) -> dict[str, Any]:
    return next(o for o in r.all("ClusterRole")
                if o["metadata"]["labels"]["app.kubernetes.io/component"] == "controller")


@pytest.mark.parametrize("name", REMOTE_SETS)
def test_the_remote_role_grants_exactly_the_listed_verbs_and_no_lease(mc_render, name):
    r = mc_render(name)
    role = controller_role(r)
    expected = {k: set(v) for k, v in REMOTE_GRANTS.items()}
    if r.values.get("createNamespaces"):
        expected[("", "namespaces")].add("create")
    assert grants(role) == expected
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not [v for v in rule.get(key, []) if "*" in v], rule
        assert "nonResourceURLs" not in rule
        assert "coordination.k8s.io" not in rule["apiGroups"] and "leases" not in rule["resources"]
        assert not {"secrets", "configmaps", "serviceaccounts", "serviceaccounts/token"} & set(rule["resources"])
        assert not {"delete", "deletecollection", "update", "escalate", "bind", "impersonate"} & set(rule["verbs"])
    assert role.get("aggregationRule") is None
    assert not r.all("Role") and not r.all("RoleBinding")
    # the agent's role, when there is one, is its single rule at home: patch nodes
    for other in r.all("ClusterRole"):
        if other is not role:
            assert other["metadata"]["labels"]["app.kubernetes.io/component"] == "agent"
            assert grants(other) == {("", "nodes"): {"patch"}}


def test_the_remote_role_is_the_home_controllers_cluster_role(mc_render, render):
    """Both come from one list of rules, kept equal to the code's calls by test_rbac.py."""
    assert {(g, res, v) for g, res, v, _ in granted(controller_role(mc_render("remote")))} == table("controller")
    assert controller_role(mc_render("remote"))["rules"] == \
        render("default").one("ClusterRole", f"{FULL}-controller")["rules"]
    assert controller_role(mc_render("remote-create-namespaces"))["rules"] == \
        mc_render("home-create-namespaces").one("ClusterRole", f"{FULL}-controller")["rules"]


@pytest.mark.parametrize("name, full, sa, created", [("remote", FULL, FULL, True),
                                                     ("remote-customised", "fleet", "fleet", True),
                                                     ("remote-existing-sa", FULL, "gpu-controller", False)])
def test_the_binding_and_the_token_secret_name_the_controllers_service_account(mc_render, name, full, sa, created):
    r = mc_render(name)
    assert (r.one("ServiceAccount", sa) is not None) if created else \
        not [o for o in r.all("ServiceAccount") if o["metadata"]["name"] == sa]
    binding = r.one("ClusterRoleBinding", f"{full}-controller")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": f"{full}-controller"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
    secret = r.one("Secret", f"{full}-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": sa}
    assert "data" not in secret and "stringData" not in secret  # the token controller fills it


# -- remote mode: the agent and the admission policies, as at home ---------------------------------
AGENT_KINDS = ("DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")


def agent_objects(r: Render) -> list[dict[str, Any]]:
    return sorted((o for o in r.objects if o["kind"] in AGENT_KINDS
                   and o["metadata"]["labels"]["app.kubernetes.io/component"] == "agent"),
                  key=lambda o: (o["kind"], o["metadata"]["name"]))


def admission_objects(r: Render) -> list[dict[str, Any]]:
    return sorted((o for o in r.objects if o["kind"] in POLICY_KINDS), key=lambda o: (o["kind"], o["metadata"]["name"]))


@pytest.mark.parametrize("remote, home", [("remote", "default"), ("remote-customised", "customised"),
                                          ("remote-everything-on", "monitoring-on")])
def test_the_remote_agent_is_the_home_releases_agent(mc_render, render, remote, home):
    """The DaemonSet, its ServiceAccount, its ClusterRole and binding: the very objects of the home
    release with the same values."""
    there = agent_objects(mc_render(remote))
    assert [o["kind"] for o in there] == ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"]
    assert there == agent_objects(render(home))


@pytest.mark.parametrize("remote, home", [("remote", "default"), ("remote-customised", "customised"),
                                          ("remote-agent-off", "agent-off")])
def test_the_remote_admission_policies_are_the_home_releases(mc_render, render, remote, home):
    there = admission_objects(mc_render(remote))
    assert len(there) == 8
    assert there == admission_objects(render(home))


def exempted(r: Render) -> tuple[set[str], set[str]]:
    """The usernames the policies exempt as the controller, and recognise as the agent."""
    controller, agent = set(), set()
    for policy in r.all("ValidatingAdmissionPolicy"):
        for condition in policy["spec"].get("matchConditions", []):
            controller |= set(re.findall(r"request\.userInfo\.username != '([^']+)'", condition["expression"]))
        for variable in policy["spec"].get("variables", []):
            agent |= set(re.findall(r"request\.userInfo\.username == '([^']+)'", variable["expression"]))
    return controller, agent


@pytest.mark.parametrize("name", [n for n in REMOTE_SETS if _merge(VALUES, MC_SETS[n])["admission"]["enabled"]])
def test_the_remote_policies_exempt_the_identity_of_the_token_the_kubeconfig_carries(mc_render, name):
    """The home controller reaches a remote cluster as the ServiceAccount of the token Secret (the
    kubeconfig the release notes build): that username is the one the policies there exempt, and
    the agent they recognise is the DaemonSet's ServiceAccount."""
    r = mc_render(name)
    (secret,) = r.all("Secret")
    token_user = (f"system:serviceaccount:{secret['metadata']['namespace']}:"
                  f"{secret['metadata']['annotations']['kubernetes.io/service-account.name']}")
    controller, agent = exempted(r)
    assert controller == {token_user}
    assert len(r.all("ValidatingAdmissionPolicy")) == 4
    if _merge(VALUES, r.values)["agent"]["enabled"]:
        sa = r.one("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        assert agent == {f"system:serviceaccount:{NAMESPACE}:{sa}"}
    else:
        assert agent == set()


@pytest.mark.parametrize("remote, home, user", [
    ("remote", "default", HOME_CONTROLLER),
    ("remote-customised", "customised", f"system:serviceaccount:{NAMESPACE}:fleet"),
])
def test_installed_with_the_home_releases_name_and_namespace_the_controller_is_one_identity(
        mc_render, render, remote, home, user):
    assert exempted(mc_render(remote))[0] == exempted(render(home))[0] == {user}
    (binding,) = [o for o in mc_render(remote).all("ClusterRoleBinding")
                  if o["metadata"]["name"].endswith("-controller")]
    assert binding["subjects"] == render(home).one("ClusterRoleBinding", binding["metadata"]["name"])["subjects"]


def test_the_controller_writes_through_the_remote_policies_with_the_token_and_nobody_else_does(
        helm, kubectl, mc_render, tmp_path):
    """The remote release's policies applied to the sandbox API server: a kubeconfig with other
    credentials (here an administrator's) gets every managed write refused; the controller, as the
    token Secret's ServiceAccount, hands the programme out; hand edits are refused, and the remote
    agent writes its own node's telemetry and no other's."""
    r = mc_render("remote")
    (secret,) = r.all("Secret")
    controller = UserInfo.service_account(secret["metadata"]["namespace"],
                                          secret["metadata"]["annotations"]["kubernetes.io/service-account.name"])
    source = loaded_programme(tmp_path / "policies")
    server = SandboxServer(port=0, seed=1).start()
    try:
        server.load_list(builtin_cluster(source.policy))
        admin_kubeconfig = server.write_kubeconfig(tmp_path / "admin")
        applied = subprocess.run([str(kubectl), "--kubeconfig", str(admin_kubeconfig), "apply", "-f", "-"],
                                 input=rendered_admission(helm, tmp_path, {"remote": True}),
                                 capture_output=True, text=True, timeout=60)
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.count(" created") == 8, applied.stdout

        with connect(str(admin_kubeconfig)) as admin:
            refused = Cluster(server, admin, admin_kubeconfig, source).reconciler.reconcile()
        assert refused.failed > 0
        assert not [n for n in server.list("nodes") if PREFIX + "consortium" in n["metadata"].get("labels", {})]

        controller_kubeconfig = server.write_kubeconfig(tmp_path / "controller", user=controller)
        with connect(str(controller_kubeconfig)) as api:
            cluster = Cluster(server, api, controller_kubeconfig, source)
            assert cluster.reconcile().writes > 0  # labels, taints, quotas, Events: all admitted
            assert cluster.reconcile().writes == 0
            enforced = Enforced(cluster, kubectl, tmp_path)
            own, other = cluster.nodes_of(LG)[:2]
            message = enforced.refused(ENGINEER, "label", "node", own, f"{PREFIX}consortium=upstage", "--overwrite")
            assert message == (f"node {own}: label {PREFIX}consortium is managed by gpu-scheduler "
                               f"(assigned to {LG}); edit the policy instead")
            report = cluster.telemetry(healthy=8)
            with connect(str(enforced.kubeconfig(agent_on(own)))) as agent_api:
                publisher = NodeAnnotationPublisher(agent_api, PREFIX + "telemetry", sleep=lambda s: None)
                publisher.publish(own, report)
                with pytest.raises(ApiException) as foreign:
                    publisher.publish(other, report)
            assert foreign.value.status == 403
            assert cluster.node_annotation(own, "telemetry") == report
            assert cluster.node_annotation(other, "telemetry") is None
    finally:
        server.stop()


def notes(helm, tmp_path: Path, values: dict[str, Any]) -> str:
    done = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                    values=values, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


def test_remote_notes_say_how_to_build_the_kubeconfig_and_nothing_of_a_controller(helm, tmp_path):
    text = notes(helm, tmp_path, {"remote": True})
    assert "REMOTE MODE" in text
    assert f"kubectl -n {NAMESPACE} get secret {FULL}-token" in text
    assert f"create secret generic {FULL}-kubeconfig-$CLUSTER --from-file=kubeconfig=$CLUSTER.kubeconfig" in text
    assert "get lease" not in text and "gpu_scheduler_leader" not in text
    assert "port-forward" not in text and "logs deploy" not in text
    assert "namespace create" in notes(helm, tmp_path, {"remote": True, "createNamespaces": True})


def test_remote_notes_name_the_agent_the_policies_and_the_identity_they_exempt(helm, tmp_path):
    text = " ".join(notes(helm, tmp_path, {"remote": True}).split())
    assert f"the node agent (DaemonSet {FULL}-agent" in text and f"kubectl -n {NAMESPACE} get ds {FULL}-agent" in text
    assert f"admission policies {FULL}-consortium-pods" in text
    # the identity the policies exempt, the one `auth whoami` must print with the built kubeconfig
    assert f"let only the controller's identity, {HOME_CONTROLLER}, write" in text
    (whoami,) = [line for line in notes(helm, tmp_path, {"remote": True}).splitlines() if " auth whoami " in line]
    assert whoami.startswith("  kubectl --kubeconfig=$CLUSTER.kubeconfig auth whoami")
    assert whoami.endswith(f"# {HOME_CONTROLLER}")
    assert "Install this release with the home release's namespace and release name" in text
    assert "labelPrefix (gpu-scheduler.sovereign-ai.kr here) must be the home release's" in text
    bare = " ".join(notes(helm, tmp_path, {"remote": True, **OFF}).split())
    assert "get ds" not in bare and "node agent" not in bare and "admission policies" not in bare
    assert "Install this release with the home release's namespace and release name" in bare
    existing = " ".join(notes(helm, tmp_path, MC_SETS["remote-existing-sa"]).split())
    assert f"system:serviceaccount:{NAMESPACE}:gpu-controller" in existing


def test_the_notes_commands_build_a_kubeconfig_for_the_home_releases_default_secret(helm, kubectl, tmp_path):
    """The shell lines of the remote release notes, run with the real kubectl: `get secret` and
    `wait` answer as a cluster whose token controller filled the Secret; every `kubectl config`
    line is the real one. The result reaches this cluster with the token, and the home-cluster
    Secret it makes is the one a clusters.remote entry {name: CLUSTER} mounts by default."""
    text = notes(helm, tmp_path, {"remote": True})
    block = text.split("  CLUSTER=", 1)[1].split("\n\nDeleting", 1)[0]
    lines = ("CLUSTER=" + block).replace("\\\n", " ").splitlines()
    commands = [line.split("   #")[0].split("  #")[0].strip() for line in lines
                if line.strip() and " auth " not in line and line.startswith(("CLUSTER=", "  kubectl", "  rm"))]
    store = "--from-file=kubeconfig=$CLUSTER.kubeconfig"
    script = ("\n".join(commands).replace("CLUSTER=name-in-the-policy", "CLUSTER=nhn")
              .replace(store, f"{store} --dry-run=client -o yaml > home-secret.yaml"))
    token, ca = "eyJhbGciOiJSUzI1NiJ9.remote-token", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/bash\n"
                    'echo "$*" >> "$CALLS"\n'
                    'case "$*" in\n'
                    '  *" wait secret/"*) exit 0 ;;\n'
                    f"  *\" get secret \"*data.token*) printf %s {base64.b64encode(token.encode()).decode()} ;;\n"
                    f"  *\" get secret \"*ca*crt*) printf %s {base64.b64encode(ca.encode()).decode()} ;;\n"
                    f'  *) exec {shlex.quote(str(kubectl))} "$@" ;;\n'
                    "esac\n")
    fake.chmod(0o755)
    here = tmp_path / "remote-admin"
    here.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@nhn",
        "clusters": [{"name": "nhn-admin", "cluster": {"server": "https://nhn.example:6443"}}],
        "users": [{"name": "admin", "user": {"token": "admin-token"}}],
        "contexts": [{"name": "admin@nhn", "context": {"cluster": "nhn-admin", "user": "admin"}}]}))
    work = tmp_path / "work"
    work.mkdir()
    # keep ca.crt and the kubeconfig for the checks below: the notes end by removing them
    script = script.replace("\nrm ca.crt $CLUSTER.kubeconfig", "")
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "KUBECONFIG": str(here),
           "CALLS": str(tmp_path / "calls")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, script + "\n" + done.stdout + done.stderr
    assert "rm ca.crt $CLUSTER.kubeconfig" in text
    calls = (tmp_path / "calls").read_text()
    assert f"-n {NAMESPACE} wait secret/{FULL}-token" in calls
    assert len(re.findall(rf"-n {NAMESPACE} get secret {FULL}-token ", calls)) == 2

    built = yaml.safe_load((work / "nhn.kubeconfig").read_text())
    assert built["current-context"] == "nhn"
    (context,) = built["contexts"]
    (cluster,) = built["clusters"]
    (user,) = built["users"]
    assert context == {"name": "nhn", "context": {"cluster": "nhn", "user": "gpu-scheduler"}}
    assert cluster["cluster"]["server"] == "https://nhn.example:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode() == ca
    assert user == {"name": "gpu-scheduler", "user": {"token": token}}

    secret = yaml.safe_load((work / "home-secret.yaml").read_text())
    mounted = next(v for v in home_volumes(helm, tmp_path, {"clusters": {"remote": [{"name": "nhn"}]}})
                   if "secret" in v)
    # the home release's namespace is the remote release's (same name, same namespace)
    assert secret["metadata"] == {"name": mounted["secret"]["secretName"], "namespace": NAMESPACE}
    assert list(secret["data"]) == [mounted["secret"]["items"][0]["key"]] == ["kubeconfig"]
    assert yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"])) == built


def home_volumes(helm, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    done = template(helm, values, tmp_path)
    assert done.returncode == 0, done.stderr
    deployment = next(o for o in yaml.safe_load_all(done.stdout) if o and o["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["volumes"]


# -- the home release ----------------------------------------------------------------------------
def test_the_controller_is_told_its_home_cluster_and_each_remote_kubeconfig(mc_render):
    args = controller_container(mc_render("home"))["args"]
    assert args.count("--home-cluster=kisti") == 1
    assert [a for a in args if a.startswith("--cluster-kubeconfig")] == [
        f"--cluster-kubeconfig=nhn={CLUSTERS_DIR}/nhn/kubeconfig",
        f"--cluster-kubeconfig=kt-cloud={CLUSTERS_DIR}/kt-cloud/config.yaml",
    ]
    assert "--create-namespaces" not in args
    assert "--in-cluster" in args and f"--lease-namespace={NAMESPACE}" in args  # the Lease stays at home


def _run_flags() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {flag for action in sub.choices["run"]._actions for flag in action.option_strings}


MULTI_CLUSTER_FLAGS = {"--home-cluster", "--cluster-kubeconfig", "--create-namespaces"}


@pytest.mark.parametrize("name", ["home", "home-create-namespaces"])
def test_the_cli_accepts_the_multi_cluster_command_line(mc_render, name):
    """The chart and scheduler/cli agree on the flags (argparse exits 2 on an unknown one)."""
    assert MULTI_CLUSTER_FLAGS <= _run_flags()
    args = controller_container(mc_render(name))["args"]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"gpu-scheduler rejects the chart's command line: {' '.join(args)}")
    assert parsed.command == "run" and parsed.in_cluster


def test_each_kubeconfig_secret_is_mounted_read_only_at_its_clusters_folder(mc_render):
    r = mc_render("home")
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in controller_container(r)["volumeMounts"]}
    for name, secret, key in [("nhn", f"{FULL}-kubeconfig-nhn", "kubeconfig"),
                              ("kt-cloud", "kt-admin", "config.yaml")]:
        mount = mounts[f"{CLUSTERS_DIR}/{name}"]
        assert mount["readOnly"] is True and "subPath" not in mount  # a folder: a rotated Secret arrives
        volume = volumes[mount["name"]]
        assert volume["secret"] == {"secretName": secret, "items": [{"key": key, "path": key}], "defaultMode": 0o440}
        arg = f"--cluster-kubeconfig={name}={mount['mountPath']}/{volume['secret']['items'][0]['path']}"
        assert arg in controller_container(r)["args"]
    assert not r.all("Secret")  # the kubeconfig Secrets are the operator's, never rendered


def test_create_namespaces_adds_the_flag_and_namespace_create_to_the_home_role(mc_render):
    r = mc_render("home-create-namespaces")
    assert "--create-namespaces" in controller_container(r)["args"]
    home = grants(r.one("ClusterRole", f"{FULL}-controller"))
    assert home[("", "namespaces")] == {"list", "watch", "patch", "create"}
    without = grants(mc_render("home").one("ClusterRole", f"{FULL}-controller"))
    assert without[("", "namespaces")] == {"list", "watch", "patch"}
    assert {k: v for k, v in home.items() if k != ("", "namespaces")} == \
        {k: v for k, v in without.items() if k != ("", "namespaces")}
    leader = r.one("Role", f"{FULL}-leader-election")  # leader election is unchanged
    assert {res for _, res, _, _ in granted(leader)} == {"leases"}


def egress(r: Render) -> list[dict[str, Any]]:
    return r.one("NetworkPolicy", FULL)["spec"]["egress"]


def test_the_controllers_network_policy_lets_it_reach_the_remote_api_servers(mc_render, render):
    default = egress(render("default"))
    # an entry without apiServerCidrs: any address on the API server ports
    anywhere = egress(mc_render("home"))
    assert len(anywhere) == len(default) + 1 and anywhere[:1] == default[:1] and anywhere[-1] == default[-1]
    assert anywhere[1] == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
    # every entry with its CIDRs: only those
    only = egress(mc_render("home-cidrs"))[1]
    assert [p["ipBlock"]["cidr"] for p in only["to"]] == ["198.51.100.7/32", "198.51.100.8/32", "203.0.113.10/32"]
    agent = mc_render("home").one("NetworkPolicy", f"{FULL}-agent")["spec"]["egress"]
    assert agent == render("default").one("NetworkPolicy", f"{FULL}-agent")["spec"]["egress"]


def test_the_home_notes_list_the_clusters(helm, tmp_path):
    text = notes(helm, tmp_path, HOME)
    assert "Clusters (this one is kisti)" in text
    assert f"nhn: kubeconfig from Secret {FULL}-kubeconfig-nhn (key kubeconfig)" in text
    assert "kt-cloud: kubeconfig from Secret kt-admin (key config.yaml)" in text
    assert "gpu_scheduler_cluster_up" in text


# -- values the schema or the chart refuses ------------------------------------------------------
@pytest.mark.parametrize("values, mentions", [
    ({"clusters": {"remote": [{"name": "NHN_Cloud"}]}}, "/clusters/remote/0/name"),       # not a DNS label
    ({"clusters": {"remote": [{"name": "a" * 64}]}}, "/clusters/remote/0/name"),          # too long
    ({"clusters": {"remote": [{"secretName": "nhn-kubeconfig"}]}}, "missing property 'name'"),
    ({"clusters": {"remote": [{"name": "nhn", "kubeconfig": "x"}]}}, "kubeconfig"),       # unknown key
    ({"clusters": {"remote": [{"name": "nhn", "key": "../etc/passwd"}]}}, "/clusters/remote/0/key"),
    ({"clusters": {"remote": [{"name": "nhn", "secretName": "Bad Name"}]}}, "/clusters/remote/0/secretName"),
    ({"clusters": {"remote": {"name": "nhn"}}}, "/clusters/remote"),                       # a list, not a map
    ({"clusters": {"home": "KISTI"}}, "/clusters/home"),
    ({"clusters": {"homeCluster": "kisti"}}, "homeCluster"),
    ({"createNamespaces": "yes"}, "/createNamespaces"),
    ({"remote": "true"}, "/remote"),
])
def test_invalid_cluster_values_are_refused_by_the_schema(helm, tmp_path, values, mentions):
    done = template(helm, values, tmp_path)
    assert done.returncode != 0, f"helm template accepted {values}"
    assert "schema" in done.stderr.lower() and mentions in done.stderr, done.stderr


@pytest.mark.parametrize("values, says", [
    ({"clusters": {"remote": [{"name": "nhn"}, {"name": "nhn", "secretName": "other"}]}},
     'cluster "nhn" is listed twice'),
    ({"clusters": {"home": "nhn", "remote": [{"name": "nhn"}]}}, 'cluster "nhn" is clusters.home'),
])
def test_contradictory_cluster_lists_fail_the_render(helm, tmp_path, values, says):
    done = template(helm, values, tmp_path)
    assert done.returncode != 0 and says in done.stderr, done.stderr


# -- nothing changes for a release that sets none of it ------------------------------------------
NEW_DEFAULTS = {"clusters": {"home": "", "remote": []}, "createNamespaces": False, "remote": False}


@pytest.mark.parametrize("name", ["default", "customised", "monitoring-on", "agent-off"])
def test_the_new_values_at_their_defaults_change_no_byte_of_the_render(helm, tmp_path, name):
    without = template(helm, VALUE_SETS[name], tmp_path)
    explicit = template(helm, _merge(VALUE_SETS[name], NEW_DEFAULTS), tmp_path)
    assert without.returncode == 0 and explicit.returncode == 0, without.stderr + explicit.stderr
    assert without.stdout == explicit.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_existing_value_sets_render_nothing_of_multiple_clusters(render, name):
    r = render(name)
    text = yaml.safe_dump_all(r.objects)
    for needle in ("--home-cluster", "--cluster-kubeconfig", "--create-namespaces", CLUSTERS_DIR,
                   "service-account-token", "clusters.remote"):
        assert needle not in text, needle
    assert "Secret" not in r.kinds()
    for role in r.all("ClusterRole"):
        assert "create" not in grants(role).get(("", "namespaces"), set())


def test_the_values_file_keeps_every_multi_cluster_option_off():
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert {k: values[k] for k in NEW_DEFAULTS} == NEW_DEFAULTS
