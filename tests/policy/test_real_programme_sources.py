"""policies/ says what the public record says: every number carries a source ([n], listed at the end
of program.yaml with its publisher and date or address) or is labelled `# assumption:`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOT_NUMBERS = {"apiVersion", "name", "gpuModel", "timezone", "namespaces", "topologyKey",
               "nvidia.com/gpu.product", "gpu-scheduler.sovereign-ai.kr/pool"}


def sources() -> dict[str, str]:
    text = (POLICIES / "program.yaml").read_text()
    block = text[text.index("# Sources"):]
    found: dict[str, str] = {}
    current = None
    for line in block.splitlines()[1:]:
        m = re.match(r"# \[(\d+)\]\s+(.*)", line)
        if m:
            current = m.group(1)
            found[current] = m.group(2)
        elif current and line.startswith("#  "):
            found[current] += " " + line.lstrip("# ")
    return found


def split(line: str) -> tuple[str, str]:
    """(YAML, comment) of one line; no value in these files contains ' #'."""
    code, _, comment = line.partition(" #") if not line.lstrip().startswith("#") else ("", "", line)
    return code.rstrip(), comment


def numbers(path: Path):
    """(line number, line, the justification in reach) for every line that states a number."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        code, comment = split(line)
        key = code.strip().lstrip("- {").split(":")[0].strip()
        if not code.strip() or key in NOT_NUMBERS or code.strip() == "---" or not re.search(r":\s*.*\d", code):
            continue
        reach = [comment]
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("#"):  # the comment block right above
            reach.append(lines[j])
            j -= 1
        indent = len(code) - len(code.lstrip(" -"))
        for k in range(i - 1, -1, -1):  # the enclosing line (a pool's name line, `quotas:`)
            parent, parent_comment = split(lines[k])
            parent_indent = len(parent) - len(parent.lstrip(" -"))
            item_header = parent.lstrip().startswith("- ") and parent_indent == indent  # `- name: ...`
            if parent.strip() and (parent_indent < indent or item_header):
                reach.append(parent_comment)
                break
        yield i + 1, line, " ".join(reach)


@pytest.mark.parametrize("name", ["program.yaml", "stages.yaml"])
def test_every_number_in_the_real_policy_is_sourced_or_an_assumption(name):
    known = sources()
    unsourced = []
    for lineno, line, reach in numbers(POLICIES / name):
        cited = re.findall(r"\[(\d+)\]", reach)
        if not cited and "assumption" not in reach:
            unsourced.append(f"{name}:{lineno}: {line.strip()}")
        unknown = [n for n in cited if n not in known]
        assert not unknown, f"{name}:{lineno} cites [{', '.join(unknown)}], which is not in the list of sources"
    assert not unsourced, "numbers without a source or an assumption label:\n" + "\n".join(unsourced)


def test_every_source_names_its_publisher_and_a_date_or_an_address():
    listed = sources()
    assert len(listed) >= 10
    for n, text in listed.items():
        assert re.match(r"[A-Z][\w./() -]+[,:]", text), f"[{n}] names no publisher: {text}"
        assert re.search(r"\b20\d\d\b|https://", text), f"[{n}] has neither a date nor an address: {text}"


def test_every_source_listed_is_cited():
    text = "".join((POLICIES / f).read_text() for f in ("program.yaml", "stages.yaml"))
    for n in sources():
        assert re.search(rf"\[{n}\]", text.replace(f"# [{n}] ", "")), f"[{n}] is listed but never cited"
