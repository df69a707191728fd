"""The Dockerfile, read: hadolint finds nothing, and what the chart and the release rely on is in
it. tests/image builds and runs it."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.release.tools import REPO, linter, run

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_hadolint_finds_nothing() -> None:
    done = run(linter("hadolint"), "--no-color", "Dockerfile")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_no_rule_is_switched_off() -> None:
    assert "hadolint ignore" not in DOCKERFILE
    assert not (REPO / ".hadolint.yaml").exists() and not (REPO / ".hadolint.yml").exists()


def test_the_default_base_is_pinned_by_digest() -> None:
    base = re.search(r"^ARG BASE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert base, "the base image is ARG BASE"
    assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    # every stage starts from it: the venv points at the base's interpreter
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE) == ["${BASE}", "${BASE}"]


def test_the_build_stage_takes_a_ca_bundle_for_pip() -> None:
    build = DOCKERFILE.split("\nFROM ${BASE}\n")[0]
    assert 'ARG PIP_CERT=""' in build


def test_runtime_settings() -> None:
    final = DOCKERFILE.split("\nFROM ${BASE}\n")[1]
    assert re.search(r"^USER 65532:65532$", final, re.MULTILINE)
    assert 'ENTRYPOINT ["gpu-scheduler"]' in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert "COPY policies/ /etc/gpu-scheduler/policies/" in final
    assert re.search(r"^COPY --from=build /opt/venv /opt/venv$", final, re.MULTILINE)
    for label in ("source", "version", "licenses", "title", "description"):
        assert f"org.opencontainers.image.{label}=" in final


def test_the_build_context_is_what_the_image_is_made_of() -> None:
    text = (REPO / ".dockerignore").read_text()
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]
    assert lines[0] == "*"
    assert {x[1:] for x in lines if x.startswith("!")} == {"pyproject.toml", "README.md", "scheduler", "policies"}


def test_one_version_everywhere() -> None:
    """The package, the chart's appVersion (its default image tag) and the release tag (v + the
    package's version, checked by the release workflow) agree."""
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((REPO / "deploy" / "helm" / "gpu-scheduler" / "Chart.yaml").read_text())
    assert chart["appVersion"] == package
    from scheduler import __version__

    assert __version__ == package
