"""Policy files are parsed by libyaml (in C) where it can, and by PyYAML's own parser, whose
messages docs/policy.md lists, for any file libyaml finds a problem in. Both read the same files
alike: over the real programme's files and texts hypothesis derives from them (characters YAML
gives a meaning to, inserted, dropped or replaced), both accept the same texts with the same
values and the same line for every value, and refuse the same texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler.policy import yamlmarks

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "policies").rglob("*.yaml"), *(ROOT / "docs" / "examples").rglob("*.yaml")])
TEXTS = [p.read_text() for p in FILES]

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml here")


def read(text: str, loader: Any) -> Any:
    """What one parser makes of `text`: its documents with their lines, or None if it refuses it."""
    try:
        docs, problems = yamlmarks._load(text, "policy.yaml", loader)
    except Exception:  # noqa: BLE001 - a refusal, whatever its kind
        return None
    if problems:
        return None
    return [(d.index, d.data, d.line, d.lines, d.key_lines) for d in docs]


def test_the_real_programme_and_the_examples_read_the_same_with_both_parsers():
    assert len(TEXTS) >= 4
    for path, text in zip(FILES, TEXTS, strict=True):
        fast = read(text, yamlmarks._FastLoader)
        assert fast is not None, path
        assert fast == read(text, yamlmarks._Loader), path


MARKS = [":", ": ", "-", "- ", " ", "  ", "\t", "\n", "\r", "[", "]", "{", "}", "#", "'", '"', "&a ", "*a", "!",
         "!!str ", "|", ">", "%", "@", "`", ",", "?", "~", "\\", "\x85", "\u2028", "\ufeff", "\x00", "\x07", "é",
         "한", "0x1F", "0o17", "1_000", "yes", "null", ".nan", "2026-01-01", "<<: *a", "---\n", "...\n"]


@st.composite
def edited(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.sampled_from(["", *MARKS])) + text[at + cut :]
    return text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited())
def test_both_parsers_accept_and_refuse_the_same_texts_alike(text):
    fast, reference = read(text, yamlmarks._FastLoader), read(text, yamlmarks._Loader)
    event("accepted" if reference is not None else "refused")
    assert (fast is None) == (reference is None)
    assert fast == reference


def test_a_file_libyaml_refuses_is_explained_by_pyyamls_parser():
    text = TEXTS[0].replace("spec:", "spec: [", 1)
    docs, problems = yamlmarks.load_documents(text, "program.yaml")
    assert docs == [] and problems == yamlmarks._load(text, "program.yaml", yamlmarks._Loader)[1]
    assert problems and problems[0][2].startswith("YAML syntax error")
