"""The real tools the tests drive (kubectl, helm, promtool, prometheus), installed into
`.tools/bin` by tests/tools/install.sh. A missing tool is installed on first use; a tool that
cannot be installed fails the test that needs it (never a skip: CI must run every check)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".tools" / "bin"
INSTALL = REPO / "tests" / "tools" / "install.sh"
_VERSION_ARGS = {"kubectl": ["version", "--client"], "helm": ["version"],
                 "promtool": ["--version"], "prometheus": ["--version"]}


def tool(name: str) -> Path:
    """Path of a real tool binary, installing the set when it does not run yet."""
    path = BIN / name
    if not _runs(path, name):
        done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not _runs(path, name):
            pytest.fail(f"cannot install {name} with {INSTALL}:\n{done.stdout}\n{done.stderr}")
    return path


def _runs(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    return subprocess.run([str(path), *_VERSION_ARGS[name]], capture_output=True).returncode == 0
