"""The monitoring files under test, and the two ways the tests read them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_FILES = REPO / "deploy" / "helm" / "gpu-scheduler" / "files"
ALERTS = CHART_FILES / "alerts.yaml"
DASHBOARD = CHART_FILES / "dashboard.json"
OPERATIONS_MD = REPO / "docs" / "operations.md"


def alert_rules() -> list[dict]:
    """Every alerting rule of alerts.yaml, in file order."""
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}, "a plain rules file: only `groups:` at the top"
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(source: dict) -> list[dict]:
    """Every panel of a dashboard, rows and the panels inside collapsed rows included."""
    out = []
    for panel in source["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a file's headings: lower case, punctuation dropped, spaces to
    hyphens, `-1`, `-2`... for repeats."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link: its text
        text = text.replace("`", "").replace("*", "")
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors
