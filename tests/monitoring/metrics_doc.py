"""docs/metrics.md as data: its two metric tables are the one list of metric names, types and
labels that the tests compare the code, the alert rules and the dashboard with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METRICS_MD = REPO / "docs" / "metrics.md"
SECTIONS = {"controller": "## Controller metrics", "agent": "## Agent metrics"}
COLUMNS = ["metric", "type", "labels", "meaning", "example"]


@dataclass(frozen=True)
class DocumentedMetric:
    name: str
    type: str
    labels: frozenset[str]
    meaning: str
    example: str
    line: int


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row; `\\|` is a literal bar inside a cell."""
    inner = row.strip()
    if not (inner.startswith("|") and inner.endswith("|")):
        raise ValueError(f"not a table row: {row!r}")
    parts = re.split(r"(?<!\\)\|", inner[1:-1])
    return [p.strip().replace("\\|", "|") for p in parts]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    if not match:
        raise ValueError(f"expected one `code` span, got {cell!r}")
    return match.group(1)


def documented_metrics(section: str, path: Path = METRICS_MD) -> dict[str, DocumentedMetric]:
    """The first table after the section's heading: metric name -> its row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    heading = SECTIONS[section]
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise AssertionError(f"{path}: no heading {heading!r}") from None
    i = start + 1
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        if lines[i].startswith("## "):
            raise AssertionError(f"{path}: no table under {heading!r}")
        i += 1
    header = [c.lower() for c in _cells(lines[i])]
    if header != COLUMNS:
        raise AssertionError(f"{path}:{i + 1}: table columns {header}, expected {COLUMNS}")
    out: dict[str, DocumentedMetric] = {}
    for j in range(i + 2, len(lines)):
        line = lines[j]
        if not line.lstrip().startswith("|"):
            break
        cells = _cells(line)
        if len(cells) != len(COLUMNS):
            raise AssertionError(f"{path}:{j + 1}: {len(cells)} cells, expected {len(COLUMNS)}: {line}")
        name = _code(cells[0])
        labels = frozenset() if cells[2] in ("", "-", "—") else frozenset(
            _code(part.strip()) for part in cells[2].split(","))
        if name in out:
            raise AssertionError(f"{path}:{j + 1}: {name} documented twice")
        out[name] = DocumentedMetric(name, cells[1], labels, cells[3], _code(cells[4]), j + 1)
    return out
