"""meta.k8s.io Table responses and the ages kubectl prints."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.sandbox import SandboxServer
from scheduler.sandbox.tables import human_duration

from .conftest import CONSORTIUM, node, raw

TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 300, "3h5m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"),
    (400 * 86400, "400d"), (730 * 86400, "2y"), (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_human_duration_matches_apimachinery(seconds: int, text: str):
    assert human_duration(seconds) == text


def test_node_table_with_partial_object_metadata():
    created = datetime(2026, 1, 15, tzinfo=timezone.utc)
    with SandboxServer(clock=lambda: created + timedelta(days=3, hours=4)) as srv:
        srv.put(node("b200-0001", {CONSORTIUM: "lg"}, metadata={
            "name": "b200-0001", "labels": {CONSORTIUM: "lg"}, "creationTimestamp": "2026-01-15T00:00:00Z"}))
        status, _, body = raw(srv, "GET", "/api/v1/nodes", headers={"Accept": TABLE})
    table = json.loads(body)
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == \
        ["Name", "Status", "Roles", "Age", "Version"]
    [row] = table["rows"]
    assert row["cells"][:5] == ["b200-0001", "Ready", "<none>", "3d4h", "v1.35.0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["labels"] == {CONSORTIUM: "lg"}
    assert table["metadata"]["resourceVersion"] == str(srv.resource_version)


def test_include_object_object_and_none(server):
    server.put(node("n1"))
    _, _, body = raw(server, "GET", "/api/v1/nodes?includeObject=Object", headers={"Accept": TABLE})
    assert json.loads(body)["rows"][0]["object"]["kind"] == "Node"
    _, _, body = raw(server, "GET", "/api/v1/nodes/n1?includeObject=None", headers={"Accept": TABLE})
    assert "object" not in json.loads(body)["rows"][0]


def test_the_v1beta1_table_when_only_it_is_asked_for(server):
    server.put(node("n1"))
    _, _, body = raw(server, "GET", "/api/v1/nodes",
                     headers={"Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"})
    assert json.loads(body)["apiVersion"] == "meta.k8s.io/v1beta1"


def test_partial_object_metadata_list(server):
    server.put(node("n1", {"a": "b"}))
    _, _, body = raw(server, "GET", "/api/v1/nodes",
                     headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
    doc = json.loads(body)
    assert doc["kind"] == "PartialObjectMetadataList"
    assert doc["items"][0]["metadata"]["labels"] == {"a": "b"}
    assert "status" not in doc["items"][0]


def test_event_table_columns(server):
    server.put({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
                "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "NodeAssigned",
                "message": "to lg ", "type": "Normal", "count": 3})
    _, _, body = raw(server, "GET", "/api/v1/events", headers={"Accept": TABLE})
    table = json.loads(body)
    visible = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert visible == ["Last Seen", "Type", "Reason", "Object", "Message"]
    cells = table["rows"][0]["cells"]
    assert cells[1:4] == ["Normal", "NodeAssigned", "node/n1"] and cells[6] == "to lg" and cells[8] == 3
