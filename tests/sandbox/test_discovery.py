"""Discovery as the official client reads it (version, API versions, resource lists, the
dynamic client) and the aggregated form kubectl 1.35 asks for first."""

from __future__ import annotations

import json

from kubernetes import client, dynamic

from scheduler.sandbox import SandboxServer

from .conftest import raw

AGGREGATED_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                     "application/json")


def test_version(api):
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "35")
    assert info.git_version.startswith("v1.35.")


def test_core_and_group_versions(api):
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g.preferred_version.group_version
              for g in client.ApisApi(api).get_api_versions().groups}
    assert groups == {"events.k8s.io": "events.k8s.io/v1", "coordination.k8s.io": "coordination.k8s.io/v1",
                      "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1"}


def test_core_v1_resource_list(core):
    by_name = {r.name: r for r in core.get_api_resources().resources}
    assert set(by_name) == {"nodes", "nodes/status", "namespaces", "namespaces/status",
                            "resourcequotas", "resourcequotas/status", "pods", "pods/eviction",
                            "pods/status", "events"}
    nodes = by_name["nodes"]
    assert (nodes.singular_name, nodes.namespaced, nodes.kind, nodes.short_names) == ("node", False, "Node", ["no"])
    assert set(nodes.verbs) == {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
    assert [by_name[n].short_names for n in ("namespaces", "resourcequotas", "pods", "events")] == \
        [["ns"], ["quota"], ["po"], ["ev"]]
    evict = by_name["pods/eviction"]
    assert (evict.group, evict.version, evict.kind, evict.verbs) == ("policy", "v1", "Eviction", ["create"])
    assert by_name["nodes/status"].verbs == ["get", "patch", "update"]


def test_group_resource_lists(api):
    leases = client.CoordinationV1Api(api).get_api_resources().resources
    assert [(r.name, r.kind, r.namespaced) for r in leases] == [("leases", "Lease", True)]
    events = client.EventsV1Api(api).get_api_resources().resources
    assert [(r.name, r.kind, r.short_names) for r in events] == [("events", "Event", ["ev"])]
    admission = client.AdmissionregistrationV1Api(api).get_api_resources().resources
    assert [(r.name, r.kind, r.namespaced, r.group) for r in admission] == [
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", False, None),
        ("validatingadmissionpolicies/status", "ValidatingAdmissionPolicy", False, None),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False, None)]
    assert all(r.categories == ["api-extensions"] for r in admission if "/" not in r.name)


def test_the_dynamic_client_finds_every_served_resource(api, server):
    dyn = dynamic.DynamicClient(api)
    nodes = dyn.resources.get(api_version="v1", kind="Node")
    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    assert (nodes.name, nodes.namespaced, leases.name) == ("nodes", False, "leases")
    server.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    assert [n.metadata.name for n in nodes.get().items] == ["n1"]


def test_aggregated_discovery_when_asked_for_it(server):
    status, headers, body = raw(server, "GET", "/api", headers={"Accept": AGGREGATED_ACCEPT})
    assert status == 200
    assert headers["content-type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    doc = json.loads(body)
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    [core] = doc["items"]
    resources = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert resources["nodes"]["scope"] == "Cluster" and resources["pods"]["scope"] == "Namespaced"
    assert {s["subresource"] for s in resources["pods"]["subresources"]} == {"eviction", "status"}
    _, _, body = raw(server, "GET", "/apis", headers={"Accept": AGGREGATED_ACCEPT})
    assert sorted(i["metadata"]["name"] for i in json.loads(body)["items"]) == \
        ["admissionregistration.k8s.io", "coordination.k8s.io", "events.k8s.io"]


def test_plain_discovery_when_aggregated_is_off_or_not_asked():
    with SandboxServer(aggregated_discovery=False) as srv:
        _, headers, body = raw(srv, "GET", "/api", headers={"Accept": AGGREGATED_ACCEPT})
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["kind"] == "APIVersions"
    with SandboxServer() as srv:
        _, _, body = raw(srv, "GET", "/apis", headers={"Accept": "application/json"})
        assert json.loads(body)["kind"] == "APIGroupList"


def test_openapi_v3_says_the_server_validates_fields_and_v2_is_not_served(server):
    status, _, body = raw(server, "GET", "/openapi/v3")
    assert status == 200
    paths = json.loads(body)["paths"]
    assert set(paths) == {"api/v1", "apis/events.k8s.io/v1", "apis/coordination.k8s.io/v1",
                          "apis/admissionregistration.k8s.io/v1"}
    url = paths["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    status, _, body = raw(server, "GET", url)
    patch = json.loads(body)["paths"]["/api/v1/nodes/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Node"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "requestBody" not in patch  # no strategic-merge-patch schema: kubectl uses its own types
    assert raw(server, "GET", "/openapi/v3/apis/example.org/v1")[0] == 404
    assert raw(server, "GET", "/openapi/v2")[0] == 404


def test_only_json_is_served(server):
    status, _, body = raw(server, "GET", "/api/v1/nodes",
                          headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert status == 406 and json.loads(body)["reason"] == "NotAcceptable"
    status, _, _ = raw(server, "GET", "/api/v1/nodes",
                       headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert status == 200
