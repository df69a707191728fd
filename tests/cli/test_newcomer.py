"""What a newcomer meets first: the commands `run --simulate` prints to follow the programme run as
printed (kubectl from .tools/bin when `make tools` put it there; `status -o table` without it), a
mistyped time names the formats accepted, and a mistyped name suggests the closest known one."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from scheduler.cli import main
from scheduler.cli.commands import follow_commands
from scheduler.cli.parser import build_parser
from tests.keys import KEYS

FORMATS = "use 2026-08-01, 2026-08-01T09:00 or 2026-08-01T09:00:00+09:00"


def commands_in(text: str) -> list[list[str]]:
    return [shlex.split(line) for line in text.splitlines() if line.startswith("  ")]


def test_the_printed_kubectl_is_the_one_make_tools_installed(tmp_path, monkeypatch):
    kubectl = tmp_path / ".tools" / "bin" / "kubectl"
    kubectl.parent.mkdir(parents=True)
    kubectl.write_text("#!/bin/sh\n")
    kubectl.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    text = follow_commands("/tmp/k/kubeconfig", KEYS)
    kubectl_lines = [c for c in commands_in(text) if "status" not in c]
    assert len(kubectl_lines) == 2
    assert all(c[:3] == [".tools/bin/kubectl", "--kubeconfig", "/tmp/k/kubeconfig"] for c in kubectl_lines)
    assert "not installed" not in text


def test_without_any_kubectl_it_says_how_to_get_one_and_what_to_use_instead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    text = follow_commands("/tmp/k/kubeconfig", KEYS)
    assert "(not installed: `make tools` puts one in .tools/bin)" in text
    assert "or, without kubectl:" in text


def test_the_printed_status_command_is_a_table_and_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = next(c for c in commands_in(follow_commands("/tmp/k/kubeconfig", KEYS)) if "status" in c)
    assert os.path.basename(status[0]) == "gpu-scheduler" or status[1:3] == ["-m", "scheduler.cli"]
    argv = status[status.index("status") :]
    args = build_parser().parse_args(argv)
    assert (args.command, args.kubeconfig, args.output) == ("status", "/tmp/k/kubeconfig", "table")


def test_status_takes_table_output(capsys, tmp_path):
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lg-exaone", "labels": {
        f"{KEYS.prefix}/consortium": "lg", f"{KEYS.prefix}/quota-gpus": "1024"}}}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [ns]}))
    assert main(["status", "--cluster", str(path), "-o", "table"]) == 0
    out = capsys.readouterr().out
    assert "lg-exaone" in out and not out.lstrip().startswith("[")


@pytest.mark.parametrize("argv, flag", [
    (["plan", "--at", "tomorrow"], "--at"),
    (["simulate", "--from", "2026/08/01"], "--from"),
    (["simulate", "--to", "2026-8-1"], "--to"),
    (["run", "--simulate", "--start", "2026-08-01 9:00"], "--start"),
    (["plan", "--at", "2026-02-30"], "--at"),
])
def test_a_mistyped_time_names_its_flag_and_the_formats_accepted(capsys, argv, flag):
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert f"error: argument {flag}: '{argv[-1]}' is not a valid date or datetime" in err
    assert FORMATS in err and "Traceback" not in err


def test_a_mistyped_schema_kind_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as done:
        main(["schema", "--kind", "stage"])
    assert done.value.code == 2
    assert "argument --kind: unknown kind 'stage' (did you mean 'Stage'?): one of Program, Stage" in capsys.readouterr().err
    assert main(["schema", "--kind", "Stage"]) == 0


def test_a_mistyped_consortium_in_status_suggests_the_closest(capsys, tmp_path):
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
        f"{KEYS.prefix}/consortium": name}}} for ns, name in (("lg-exaone", "lg"), ("upstage-solar", "upstage"))]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert main(["status", "--cluster", str(path), "--consortium", "upstag"]) == 1
    assert "consortium 'upstag' carries gpu-scheduler labels (did you mean 'upstage'?)" in capsys.readouterr().err
