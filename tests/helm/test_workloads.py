"""The controller Deployment and the agent DaemonSet as rendered: the command lines the CLI must
accept, probes, security, scheduling of the agent onto GPU nodes, and the policy mount."""

from __future__ import annotations

import pytest
import yaml

import scheduler
from scheduler.cli.parser import build_parser
from tests.helm.conftest import CHART, NAMESPACE, VALUE_SETS

PREFIX = "gpu-scheduler.sovereign-ai.kr"


def controller(render, name="default"):
    return render(name).one("Deployment")


def agent(render, name="default"):
    return render(name).one("DaemonSet")


def container(workload):
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def parse(args: list[str]):
    """The container's args as gpu-scheduler's own parser reads them (argparse exits on an
    unknown flag or subcommand: turned into a failure that names the command line)."""
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"gpu-scheduler rejects the chart's command line: {' '.join(args)}")


def flags(c) -> dict[str, str | bool]:
    """--flag=value and bare --flag arguments of a container, as a dict."""
    out: dict[str, str | bool] = {}
    for arg in c["args"][1:]:
        if arg.startswith("--"):
            key, eq, value = arg.partition("=")
            out[key] = value if eq else True
    return out


# -- security ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_container_runs_restricted(render, name):
    r = render(name)
    seen = 0
    for workload, c in r.containers():
        pod = workload["spec"]["template"]["spec"]
        sc = c["securityContext"]
        where = f"{name}: {workload['kind']} container {c['name']}"
        assert sc["runAsNonRoot"] is True or pod["securityContext"]["runAsNonRoot"] is True, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc.get("privileged", False) is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), where
        assert all("hostPath" not in v for v in pod.get("volumes", [])), where
        seen += 1
    assert seen == (1 if r.values.get("agent", {}).get("enabled") is False else 2)


def test_containers_have_resources_and_pull_policy(render):
    for _, c in render("default").containers():
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["resources"]["limits"]["memory"]
        assert c["imagePullPolicy"] == "IfNotPresent"


# -- controller -------------------------------------------------------------------------------
def test_controller_runs_two_replicas_spread_over_nodes_with_a_disruption_budget(render):
    d = controller(render)
    assert d["spec"]["replicas"] == 2
    anti = d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    pdb = render("default").one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]


def test_a_single_replica_gets_no_disruption_budget_that_would_block_drains(render):
    assert render("customised").values["controller"]["replicas"] == 1
    assert "PodDisruptionBudget" not in render("customised").kinds()


def test_controller_command_line(render):
    c = container(controller(render))
    assert c["command"] == ["gpu-scheduler"]
    assert c["args"][0] == "run"
    assert flags(c) == {"--in-cluster": True, "--policy": "/etc/gpu-scheduler/policies", "--metrics-port": "9090",
                        "--lease-namespace": NAMESPACE, "--reconcile-every": "30", "--label-prefix": PREFIX}


def test_controller_command_line_follows_the_values(render):
    c = container(controller(render, "customised"))
    f = flags(c)
    assert f["--dry-run"] is True and f["--verbose"] is True
    assert f["--reconcile-every"] == "12.5" and f["--metrics-port"] == "9191"
    assert f["--label-prefix"] == "sched.example.org"
    assert c["args"][-2:] == ["--time-scale", "1"]  # extraArgs, last
    assert c["ports"] == [{"name": "metrics", "containerPort": 9191, "protocol": "TCP"}]
    assert c["image"] == "registry.example/gpu-scheduler:1.2.3" and c["imagePullPolicy"] == "Always"
    assert {"name": "TZ", "value": "Asia/Seoul"} in c["env"]


def test_the_cli_accepts_the_controller_command_line(render):
    """The chart and scheduler/cli.py agree on every flag (argparse exits 2 on an unknown one)."""
    for name in ("default", "customised"):
        args = container(controller(render, name))["args"]
        parsed = parse(args)
        assert parsed.command == "run" and parsed.in_cluster
        assert parsed.lease_namespace == NAMESPACE
        assert parsed.label_prefix == VALUE_SETS[name].get("labelPrefix", PREFIX)


def test_probes_hit_healthz_and_readyz_on_the_metrics_port(render):
    for c in (container(controller(render)), container(agent(render))):
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    c = container(controller(render))
    assert c["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    svc = render("default").one("Service", "gs-gpu-scheduler")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == controller(render)["spec"]["selector"]["matchLabels"]


def test_image_tag_defaults_to_the_app_version_which_is_the_package_version(render):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == scheduler.__version__
    assert container(controller(render))["image"] == f"ghcr.io/sovereign-ai/gpu-scheduler:{chart['appVersion']}"
    assert container(agent(render))["image"] == container(controller(render))["image"]


def test_the_default_label_prefix_is_the_codes(render):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["labelPrefix"] == scheduler.DOMAIN == PREFIX


def test_controller_scheduling_values_reach_the_pod(render):
    spec = controller(render, "customised")["spec"]["template"]
    pod = spec["spec"]
    v = VALUE_SETS["customised"]["controller"]
    assert pod["nodeSelector"] == v["nodeSelector"]
    assert pod["tolerations"] == v["tolerations"]
    assert pod["affinity"] == v["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["terminationGracePeriodSeconds"] == 120
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["metadata"]["annotations"] == {"example.org/a": "b"}
    assert spec["metadata"]["labels"]["team"] == "platform"


# -- policy -----------------------------------------------------------------------------------
def _policy_volume(deployment):
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] == "policy"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "policy"]
    return mount, volume


def test_policy_is_mounted_read_only_as_a_whole_folder(render):
    mount, volume = _policy_volume(controller(render))
    assert mount == {"name": "policy", "mountPath": "/etc/gpu-scheduler/policies", "readOnly": True}
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    assert volume["configMap"]["name"] == "gs-gpu-scheduler-policy"
    render("default").one("ConfigMap", "gs-gpu-scheduler-policy")


def test_existing_configmap_is_mounted_and_none_is_rendered(render):
    r = render("existing-configmap")
    _, volume = _policy_volume(r.one("Deployment"))
    assert volume["configMap"]["name"] == "fleet-policy"
    assert r.all("ConfigMap") == []


def test_no_checksum_restarts_pods_on_a_policy_change(render):
    """The daemon reloads the mounted ConfigMap by itself: a policy edit must roll no pod."""
    for name in VALUE_SETS:
        for workload, _ in render(name).pod_specs():
            annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
            assert not [k for k in annotations if "checksum" in k], (name, annotations)


# -- agent ------------------------------------------------------------------------------------
def test_agent_runs_only_on_gpu_nodes_and_tolerates_the_schedulers_taints(render):
    pod = agent(render)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": f"{PREFIX}/consortium", "operator": "Exists", "effect": "NoSchedule"},
        {"key": f"{PREFIX}/draining", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert pod["runtimeClassName"] == "nvidia"


def test_agent_tolerates_the_taints_under_a_custom_prefix_plus_extra_ones(render):
    pod = agent(render, "customised")["spec"]["template"]["spec"]
    keys = [t["key"] for t in pod["tolerations"]]
    assert keys == ["sched.example.org/consortium", "sched.example.org/draining", "nvidia.com/gpu",
                    "example.org/maintenance"]
    assert pod["nodeSelector"] == {"example.org/gpu": "true"}
    assert "runtimeClassName" not in pod  # "" leaves the cluster's default runtime
    assert pod["serviceAccountName"] == "gpu-agent"
    assert agent(render, "customised")["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 5


def test_agent_sees_gpus_the_nvidia_way_without_requesting_any(render):
    c = container(agent(render))
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"]["value"] == "utility"
    for section in ("requests", "limits"):
        assert not [r for r in c["resources"].get(section, {}) if r.startswith("nvidia.com/")]


def test_agent_command_line(render):
    c = container(agent(render))
    assert c["command"] == ["gpu-scheduler"]
    assert c["args"][0] == "agent"
    assert flags(c) == {"--in-cluster": True, "--node-name": "$(NODE_NAME)", "--metrics-port": "9401",
                        "--interval": "10s", "--heartbeat": "5m", "--label-prefix": PREFIX}
    assert c["ports"] == [{"name": "metrics", "containerPort": 9401, "protocol": "TCP"}]
    custom = flags(container(agent(render, "customised")))
    assert (custom["--interval"], custom["--heartbeat"], custom["--metrics-port"]) == ("15s", "2m", "9402")
    assert custom["--label-prefix"] == "sched.example.org" and custom["--verbose"] is True


def test_the_cli_accepts_the_agent_command_line(render):
    for name in ("default", "customised"):
        args = container(agent(render, name))["args"]
        parsed = parse(args)
        assert parsed.command == "agent"
        assert parsed.label_prefix == VALUE_SETS[name].get("labelPrefix", PREFIX)


def test_agent_metrics_service_is_headless_and_selects_the_agents(render):
    r = render("default")
    svc = r.one("Service", "gs-gpu-scheduler-agent")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == agent(render)["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == 9401


# -- network ----------------------------------------------------------------------------------
def test_network_policies_allow_only_metrics_in_and_api_server_and_dns_out(render):
    """By default only the monitoring namespace may scrape; with no cluster to look the API
    server up in (helm template), egress is open on the API server's ports only."""
    r = render("default")
    for np in r.all("NetworkPolicy"):
        spec = np["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
        api, dns = spec["egress"]
        assert api == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
        assert {p["port"] for p in dns["ports"]} == {53}
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    selected = [np["spec"]["podSelector"]["matchLabels"] for np in r.all("NetworkPolicy")]
    assert sorted(s["app.kubernetes.io/component"] for s in selected) == ["agent", "controller"]


def test_network_policy_restrictions_from_values(render):
    np = render("customised").one("NetworkPolicy", "fleet")
    assert np["spec"]["ingress"][0]["from"] == VALUE_SETS["customised"]["networkPolicy"]["metricsFrom"]
    assert np["spec"]["egress"][0] == {"ports": [{"port": 6443, "protocol": "TCP"}],
                                       "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]}
