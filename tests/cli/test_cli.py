"""The offline commands as a user runs them: plan, simulate, schema, exit codes and outputs."""

import json

import pytest
from freezegun import freeze_time

import scheduler.planner  # noqa: F401  (imported before any frozen clock: pydantic builds schemas at import)
import scheduler.cli.render  # noqa: F401
from scheduler.cli import main
from scheduler.cluster.synthetic import builtin_cluster
from tests.keys import KEYS
from tests.realpolicy import one_cluster_policy


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory):
    """The built-in cluster of the real programme as if it were one cluster (tests/realpolicy.py):
    `--cluster FILE` is the way of a programme of one; test_clusters.py covers several."""
    path = tmp_path_factory.mktemp("cluster") / "cluster.json"
    path.write_text(json.dumps(builtin_cluster(one_cluster_policy())))
    return str(path)


@pytest.fixture
def one(one_cluster_policies):
    """--policy for the one-cluster rendition of the real programme."""
    return ["--policy", str(one_cluster_policies)]


def test_plan_without_at_plans_for_now_in_the_programmes_timezone(capsys, cluster_file, one):
    with freeze_time("2026-02-28T15:00:00Z", ignore=["hypothesis", "kubernetes"]):  # 2026-03-01 00:00 in Seoul
        code, now_out, _ = run(capsys, "plan", *one, "--cluster", cluster_file, "-o", "json")
    assert code == 0
    code, at_out, _ = run(capsys, "plan", *one, "--cluster", cluster_file, "--at", "2026-03-01", "-o", "json")
    assert json.loads(now_out) == json.loads(at_out)
    assert json.loads(at_out)["at"] == "2026-03-01T00:00:00+09:00"


def test_plan_json_follows_the_design_contract(capsys, cluster_file, one):
    _, out, _ = run(capsys, "plan", *one, "--cluster", cluster_file, "--at", "2026-03-01T00:00:00+09:00", "-o", "json")
    doc = json.loads(out)
    assert set(doc) >= {"at", "stage", "decision_pending", "policy_sha256", "consortia", "pools", "actions"}
    lg = next(c for c in doc["consortia"] if c["name"] == "lg")
    assert set(lg) >= {"name", "status", "quota", "target", "allocated", "nodes", "draining_nodes"}
    assert lg["status"] == "active" and lg["quota"] == {"B200": 512, "H100": 512}
    assert lg["allocated"] == {"B200": 512, "H100": 512} and len(lg["nodes"]) == 128
    pool = next(p for p in doc["pools"] if p["name"] == "skt-b200-lease")
    assert set(pool) >= {"name", "gpu_model", "capacity_gpus", "healthy_gpus", "assigned_gpus", "free_gpus"}
    assert {a["action"] for a in doc["actions"]} <= {"assign", "drain", "evict", "release", "set-quota", "label-namespace"}
    assert all(a["reason"] for a in doc["actions"])
    assert [c["name"] for c in doc["consortia"]] == sorted(c["name"] for c in doc["consortia"])


def test_plan_table_is_for_people(capsys, cluster_file, one):
    code, out, _ = run(capsys, "plan", *one, "--cluster", cluster_file, "--at", "2026-08-02", "-o", "table")
    assert code == 0
    assert "decision pending: stage-3" in out
    assert "CONSORTIUM" in out and "POOL" in out and "Actions:" in out


def test_plan_reads_a_node_list_from_stdin(capsys, monkeypatch, cluster_file, one):
    import io
    nodes = {"apiVersion": "v1", "kind": "NodeList",
             "items": [i for i in json.load(open(cluster_file))["items"] if i["kind"] == "Node"][:10]}
    for item in nodes["items"]:
        del item["kind"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(nodes).encode())))
    code, out, _ = run(capsys, "plan", *one, "--cluster", "-", "--at", "2025-09-01", "-o", "json")
    assert code == 0
    assert sum(len(c["nodes"]) for c in json.loads(out)["consortia"]) == 10


def test_a_bad_cluster_file_is_a_clear_error(capsys, tmp_path, one):
    bad = tmp_path / "c.json"
    bad.write_text('{"kind": "ConfigMap"}')
    code, _, err = run(capsys, "plan", *one, "--cluster", str(bad), "--at", "2026-03-01")
    assert code == 2 and "c.json" in err and "ConfigMap" in err
    code, _, err = run(capsys, "plan", *one, "--cluster", str(tmp_path / "missing.json"), "--at", "2026-03-01")
    assert code == 2 and "missing.json" in err


def test_a_bad_policy_stops_plan_with_the_errors(capsys, tmp_path, cluster_file):
    (tmp_path / "p.yaml").write_text("apiVersion: gpu-scheduler.sovereign-ai.kr/v1\nkind: Stage\n")
    code, _, err = run(capsys, "plan", "--policy", str(tmp_path), "--cluster", cluster_file)
    assert code == 1 and "p.yaml:" in err


def test_plan_and_status_read_a_live_cluster_over_the_api(capsys, tmp_path, cluster_file, one):
    from scheduler.sandbox import SandboxServer

    with SandboxServer(port=0) as server:
        server.load_list(open(cluster_file, "rb").read())
        kubeconfig = str(server.write_kubeconfig(tmp_path / "kubeconfig"))
        code, live, _ = run(capsys, "plan", *one, "--kubeconfig", kubeconfig, "--at", "2026-03-01", "-o", "json")
        _, offline, _ = run(capsys, "plan", *one, "--cluster", cluster_file, "--at", "2026-03-01", "-o", "json")
        assert code == 0 and json.loads(live) == json.loads(offline)
        code, out, _ = run(capsys, "status", "--kubeconfig", kubeconfig, "-o", "json")
        assert code == 0 and json.loads(out) == []  # nothing written yet: no namespace carries our labels


def test_an_unreachable_cluster_is_a_clear_error(capsys, tmp_path, one):
    code, _, err = run(capsys, "plan", *one, "--kubeconfig", str(tmp_path / "missing"), "--at", "2026-03-01")
    assert code == 2 and "cannot read the cluster" in err


def test_simulate_prints_one_plan_per_change_point(capsys, cluster_file, one):
    code, out, _ = run(capsys, "simulate", *one, "--cluster", cluster_file, "--from", "2026-01-14",
                       "--to", "2026-02-21", "-o", "json")
    assert code == 0
    steps = json.loads(out)
    assert steps[0]["at"] == "2026-01-14T00:00:00+09:00" and steps[0]["why"] == "start of the simulation"
    whys = [s["why"] for s in steps]
    assert "stage stage-2 starts" in whys
    assert "motif becomes eligible (stage-2)" in whys
    assert not any("grace period" in w for w in whys)  # a cut team loses its GPUs at the stage start
    assert any(w.startswith("drain deadline") for w in whys)
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    last = {c["name"]: c for c in steps[-1]["consortia"]}
    assert last["motif"]["status"] == "active" and last["motif"]["allocated"] == {"B200": 768}
    assert last["ncai"]["status"] == "eliminated" and last["ncai"]["nodes"] == [] and last["ncai"]["draining_nodes"] == []


def test_simulate_steps_add_regular_plans(capsys, cluster_file, one):
    _, out, _ = run(capsys, "simulate", *one, "--cluster", cluster_file, "--from", "2025-09-01", "--to", "2025-09-04",
                    "--step", "1d", "-o", "json")
    assert [s["at"][:10] for s in json.loads(out)] == ["2025-09-01", "2025-09-02", "2025-09-03", "2025-09-04"]


def test_simulate_refuses_an_end_before_its_start(capsys):
    code, _, err = run(capsys, "simulate", "--from", "2026-02-01", "--to", "2026-01-01")
    assert code == 2 and "--to" in err


def test_simulate_table_shows_the_timeline(capsys):
    code, out, _ = run(capsys, "simulate", "--from", "2025-08-01", "--to", "2025-08-05", "-o", "table")
    assert code == 0
    assert "stage stage-1 starts" in out and "assign:" in out


def test_status_reads_what_the_scheduler_wrote_on_the_namespaces(capsys, tmp_path):
    from scheduler.cluster import decode_snapshot
    from scheduler.cluster.synthetic import dumps
    from scheduler.planner.simulate import settle

    from tests.builders import t

    policy = one_cluster_policy()
    cluster = builtin_cluster(policy)
    _, after = settle(policy, decode_snapshot(dumps(cluster), KEYS), t("2026-03-01 00:00"), KEYS)
    # write the settled namespaces and quotas back as kubectl would print them
    items = [{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": ns.name, "labels": dict(ns.labels), "annotations": dict(ns.annotations)}}
             for ns in after.namespaces.values()]
    items += [{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu-scheduler", "namespace": ns},
               "spec": {"hard": {"requests.nvidia.com/gpu": gpus}}} for ns, gpus in after.quotas.items()]
    dump = tmp_path / "ns.json"
    dump.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    code, out, _ = run(capsys, "status", "--cluster", str(dump), "-o", "json")
    rows = {r["consortium"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["lg"]["status"] == "active" and rows["lg"]["quota_gpus"] == "1024"
    assert rows["lg"]["allocated_gpus"] == "1024" and rows["lg"]["resource_quota"] == "1024"
    assert rows["ncai"]["status"] == "eliminated" and rows["ncai"]["resource_quota"] == "0"
    assert rows["motif"]["next_change"].startswith("pool naver-h100-lease starts draining")
    code, out, _ = run(capsys, "status", "--cluster", str(dump), "--consortium", "lg", "-o", "table")
    assert "lg-exaone" in out and "ncai" not in out


def test_a_policy_whose_built_in_cluster_would_be_huge_is_valid_with_a_note_and_plan_says_why(capsys, tmp_path):
    """A quota far beyond any unsized pool is a valid policy for a real cluster; the built-in
    cluster, which would need millions of nodes, is refused in one line instead of exhausting memory."""
    import shutil

    shutil.copytree("policies", tmp_path / "p")
    stages = tmp_path / "p" / "stages.yaml"
    stages.write_text(stages.read_text().replace("lg: {units: 1024}", "lg: {units: 9000000}"))
    program = tmp_path / "p" / "program.yaml"  # the Naver lease unsized: its size is then read from the quotas
    program.write_text(program.read_text().replace(
        "the exact count was not published\n      size: {nodes: 128, gpusPerNode: 8}\n", "the exact count was not published\n"))
    code, out, _ = run(capsys, "validate", "--policy", str(tmp_path / "p"))
    assert code == 0 and "note: the built-in cluster sized from this policy would have 1,126,404 nodes" in out
    code, out, err = run(capsys, "plan", "--policy", str(tmp_path / "p"), "-o", "json")
    assert code == 2 and out == ""
    assert err.startswith("gpu-scheduler: the built-in cluster sized from this policy would have 1,126,404 nodes")


def test_status_reads_an_edited_allocation_annotation_as_unknown_not_a_crash(capsys, tmp_path):
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lg-exaone", "labels": {
        f"{KEYS.prefix}/consortium": "lg", f"{KEYS.prefix}/quota-gpus": "1024"},
        "annotations": {KEYS.allocation: "[1]"}}}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [ns]}))
    code, out, _ = run(capsys, "status", "--cluster", str(path), "-o", "json")
    row, = json.loads(out)
    assert code == 0 and row["quota_gpus"] == "1024" and row["target"] == {} and row["next_change"] == ""


@pytest.mark.parametrize("argv", [
    ["run", "--kubeconfig", "/nonexistent/kubeconfig", "--metrics-port", "0"],
    ["agent", "--once", "--kubeconfig", "/nonexistent/kubeconfig", "--node-name", "n1",
     "--nvml-fake", "tests/telemetry/fixtures/dgx-h200.json"],
])
def test_a_missing_kubeconfig_is_one_line_and_exit_2_not_a_traceback(argv):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "scheduler.cli", *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "gpu-scheduler: cannot use the kubeconfig /nonexistent/kubeconfig: " in done.stderr
    assert "Traceback" not in done.stderr


def test_status_of_an_unknown_consortium_says_so_and_exits_1(capsys, tmp_path):
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lg-exaone", "labels": {
        f"{KEYS.prefix}/consortium": "lg"}}}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [ns]}))
    code, out, err = run(capsys, "status", "--cluster", str(path), "--consortium", "lgg")
    assert (code, out) == (1, "")
    assert err == "no namespace of consortium 'lgg' carries gpu-scheduler labels (did you mean 'lg'?) (known: lg)\n"
