"""The real programme (policies/), and the same programme as if all its pools sat in one cluster.

The real programme spans five providers' clusters. Tests of machinery that works the same for
one cluster as for several (the writes, the writer, one daemon over one API, the soak) run on the
one-cluster rendition, which differs from policies/ only in having no `clusters:` list and no
pool `cluster:`; tests/daemon/test_clusters.py runs the real programme across its clusters.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

from scheduler.policy import Policy, load_policy_texts

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "policies"


def one_cluster_text(text: str) -> str:
    """A policy file's text without its `clusters:` list and its pools' `cluster:` lines."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if re.match(r"^  clusters:", line):
            skipping = True
            continue
        if skipping and re.match(r"^  \S", line) and not line.lstrip().startswith("#"):
            skipping = False
        if skipping or re.match(r"^\s+cluster: ", line):
            continue
        out.append(line)
    return "".join(out)


@functools.cache
def one_cluster_texts() -> dict[str, str]:
    return {p.name: one_cluster_text(p.read_text()) for p in sorted(REAL.glob("*.yaml"))}


@functools.cache
def one_cluster_policy() -> Policy:
    return load_policy_texts(one_cluster_texts())


def copy_one_cluster(folder: Path) -> Path:
    """Write the one-cluster rendition into `folder` (made if need be); returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in one_cluster_texts().items():
        (folder / name).write_text(text)
    return folder


@functools.cache
def one_cluster_dir() -> Path:
    """The one-cluster rendition as a policy folder, written once per test process."""
    return copy_one_cluster(Path(tempfile.mkdtemp(prefix="gpu-scheduler-one-cluster-")) / "policies")
