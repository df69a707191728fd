"""The GitHub Actions workflows (.github/workflows): jactionlint (actionlint's checks, with
shellcheck on every `run:` script) and zizmor (offline: no GitHub API here) find nothing, and the
release publishes exactly what the chart and docs/operations.md point at."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.release.tools import REPO, linter, run

WORKFLOWS = REPO / ".github" / "workflows"
CHART = REPO / "deploy" / "helm" / "gpu-scheduler"
IMAGE = "ghcr.io/sovereign-ai/gpu-scheduler"
CHARTS = "ghcr.io/sovereign-ai/charts"


def load(name: str) -> dict:
    # YAML 1.1 reads the key `on` as True
    return {("on" if k is True else k): v for k, v in yaml.safe_load((WORKFLOWS / name).read_text()).items()}


CI, RELEASE = load("ci.yml"), load("release.yml")
RELEASE_TEXT = (WORKFLOWS / "release.yml").read_text()
OPERATIONS = (REPO / "docs" / "operations.md").read_text()


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_jactionlint_finds_nothing() -> None:
    linter("shellcheck")  # found on PATH by jactionlint: without it the scripts go unchecked
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / ".github").rglob("*.yml"))
    assert ".github/dependabot.yml" in files and ".github/workflows/release.yml" in files
    done = run(linter("jactionlint"), "--no-online", "--no-color", "--strict-exit", *files)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_zizmor_finds_nothing() -> None:
    done = run(linter("zizmor"), "--offline", "--no-progress", "--format", "json", ".github")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_every_action_is_pinned_by_commit_with_its_version(name: str) -> None:
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", (WORKFLOWS / name).read_text(), re.MULTILINE)
    assert uses
    for ref, rest in uses:
        if ref.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.match(r"\s+# v\d+\.\d+\.\d+\b", rest), f"{ref}: no '# vX.Y.Z' comment"


@pytest.mark.parametrize("workflow", [CI, RELEASE], ids=["ci", "release"])
def test_least_privilege(workflow: dict) -> None:
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert "permissions" in job
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_only_the_signing_job_gets_an_oidc_token() -> None:
    grants = {name: job["permissions"] for name, job in RELEASE["jobs"].items()}
    assert [name for name, p in grants.items() if p.get("id-token") == "write"] == ["sign"]
    assert {name for name, p in grants.items() if p.get("packages") == "write"} == {"image", "chart", "sign"}
    assert all(p.get("contents", "read") == "read" for p in grants.values())
    assert all(p["permissions"] == {"contents": "read"} for p in CI["jobs"].values())


def test_ci_runs_make_test_on_pull_requests_and_main() -> None:
    assert set(CI["on"]) == {"pull_request", "push", "workflow_call"}
    assert CI["on"]["push"] == {"branches": ["main"]}
    assert [s["run"] for s in steps(CI) if s.get("run") == "make test"] == ["make test"]


def test_release_runs_on_version_tags_after_the_tests() -> None:
    assert RELEASE["on"] == {"push": {"tags": ["v*"]}}
    jobs = RELEASE["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert set(jobs["image"]["needs"]) == {"version", "test"}
    assert "image" in jobs["chart"]["needs"] and {"image", "chart"} <= set(jobs["sign"]["needs"])


def test_the_image_is_multi_arch_with_sbom_and_provenance() -> None:
    build = next(s for s in steps(RELEASE) if s.get("uses", "").startswith("docker/build-push-action@"))["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["sbom"] is True and build["provenance"].startswith("mode=")
    assert build["push"] is True and build["context"] == "."


def test_the_release_publishes_what_the_chart_deploys_by_default() -> None:
    """The chart's image.repository is the published image, and its default tag (the appVersion,
    set to the tag less its "v") is the one published: metadata-action's {{version}}."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == IMAGE == RELEASE["env"]["IMAGE"]
    assert values["image"]["tag"] == ""
    meta = next(s for s in steps(RELEASE) if s.get("uses", "").startswith("docker/metadata-action@"))["with"]
    assert meta["images"] == "${{ env.IMAGE }}"
    assert meta["tags"] == "type=semver,pattern={{version}}" and meta["flavor"] == "latest=false"
    assert RELEASE["env"]["CHARTS"] == CHARTS
    assert 'helm package deploy/helm/gpu-scheduler --version "$VERSION" --app-version "$VERSION"' in RELEASE_TEXT
    assert 'version="${TAG#v}"' in RELEASE_TEXT


def test_operations_installs_and_verifies_what_the_release_publishes() -> None:
    assert f"helm install gpu-scheduler oci://{CHARTS}/gpu-scheduler --version" in OPERATIONS
    assert f"cosign verify {IMAGE}:" in OPERATIONS
    assert f"cosign verify {CHARTS}/gpu-scheduler:" in OPERATIONS
    identity = "https://github.com/sovereign-ai/gpu-scheduler/.github/workflows/release.yml@refs/tags/v"
    assert identity in OPERATIONS
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in OPERATIONS
