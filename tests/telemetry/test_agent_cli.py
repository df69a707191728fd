"""`gpu-scheduler agent --once --dry-run`: one JSON document on stdout, nothing else, exit 0.

Run as a subprocess, the way an operator (or the chart's probe) runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from scheduler.wire.telemetry import SCHEMA_PATH, decode

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
XID79 = FIXTURES / "dgx-h200-xid79.json"


def agent(*args: str | Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("gpu-scheduler")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "scheduler.cli"]
    return subprocess.run([*command, "agent", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def the_one_document(stdout: str) -> dict:
    """stdout holds exactly one JSON document and nothing else (a trailing newline aside)."""
    decoder = json.JSONDecoder()
    document, end = decoder.raw_decode(stdout)
    assert stdout[end:].strip() == "", f"more than one document on stdout: {stdout[end:]!r}"
    assert stdout.count("\n") == 1
    return document


def test_dry_run_once_prints_one_annotation_naming_the_failed_gpu():
    done = agent("--once", "--dry-run", "--nvml-fake", XID79, "--node-name", "n1")

    assert done.returncode == 0, done.stderr
    document = the_one_document(done.stdout)
    assert (document["total_gpus"], document["healthy_gpus"], document["error"]) == (8, 7, "")
    assert [(g["index"], g["reason"]) for g in document["gpus"] if not g["healthy"]] == [(3, "xid-79")]
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(document)
    assert decode(done.stdout.strip()).gpus[3].uuid == "GPU-844b76e8-57f6-5082-8330-7eb042eb2724"


def test_dry_run_once_on_a_machine_without_nvidia_libraries_reports_library_not_found():
    """This machine (and CI) has no GPU: pynvml cannot load libnvidia-ml. The agent says so in the
    annotation (never '0 healthy GPUs') and exits 0."""
    done = agent("--once", "--dry-run", "--node-name", "n1")

    assert done.returncode == 0, done.stderr
    document = the_one_document(done.stdout)
    assert document["error"] == "library-not-found"
    assert (document["total_gpus"], document["healthy_gpus"], document["gpus"]) == (0, 0, [])


def test_ignored_xids_are_configurable_on_the_command_line():
    done = agent("--once", "--dry-run", "--nvml-fake", XID79, "--node-name", "n1", "--ignore-xids", "13,79")

    assert done.returncode == 0, done.stderr
    assert the_one_document(done.stdout)["healthy_gpus"] == 8


def test_a_bad_fake_nvml_file_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken-node.json"
    bad.write_text(json.dumps({"driver_version": "580.65.06",
                               "gpus": [{"index": 0, "uuid": "GPU-0", "name": "NVIDIA H200", "utilization_gpu": 140}]}))

    done = agent("--once", "--dry-run", "--nvml-fake", bad, "--node-name", "n1")

    assert done.returncode == 2
    assert done.stdout == ""
    assert str(bad) in done.stderr
    assert "$.gpus[0].utilization_gpu" in done.stderr


def test_a_fake_nvml_file_that_is_not_json_or_missing_exits_2_naming_it(tmp_path):
    not_json = tmp_path / "not-json.json"
    not_json.write_text("{driver_version: 580")

    for path in (not_json, tmp_path / "missing.json"):
        done = agent("--once", "--dry-run", "--nvml-fake", path, "--node-name", "n1")
        assert (done.returncode, done.stdout) == (2, ""), path
        assert str(path) in done.stderr
