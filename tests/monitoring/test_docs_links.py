"""The two monitoring pages link only to files and headings that exist (a renamed heading in
another page would otherwise leave a runbook pointing nowhere)."""

from __future__ import annotations

import re

import pytest

from tests.monitoring.files import OPERATIONS_MD, REPO, github_anchors
from tests.monitoring.metrics_doc import METRICS_MD

LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", [METRICS_MD, OPERATIONS_MD], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in github_anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such heading in {file.relative_to(REPO)}")
    assert broken == []
