"""No policy file, however it was written, can take the process's memory or time, or escape as a
traceback: each is refused with `file:line` (docs/policy.md, "Limits"), and a daemon that meets
one keeps its last good policy, with its memory flat."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from scheduler.daemon.policy_source import PolicySource
from scheduler.policy import PolicyError, PolicyIssue, limits, load_policy, load_policy_texts
from tests.builders import program_yaml, stage_yaml

PROGRAM = program_yaml()
STAGE = stage_yaml("s1", "2026-01-01", "[a, b]", "{a: {H100: 8}, b: {units: 16}}")


def refused(texts: dict[str, str]) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        load_policy_texts(texts)
    return caught.value.issues


def alias_bomb(width: int = 9, depth: int = 7) -> str:
    """The "billion laughs": each level lists the one before `width` times (9**7 = 4.8 million
    values at depth 7 from about 700 bytes)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, depth + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return STAGE.replace("  quotas:", "  bomb:\n" + "\n".join("    " + line for line in lines) + "\n  quotas:")


def test_an_alias_bomb_is_refused_at_its_line_with_memory_to_spare():
    text = alias_bomb()
    assert len(text) < 1200
    tracemalloc.start()
    try:
        issues = refused({"program.yaml": PROGRAM, "stage.yaml": text})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(i.file, i.message) for i in issues] == [
        ("stage.yaml", f"refused: the document expands to more than {limits.MAX_VALUES:,} values "
                       "(YAML aliases that repeat each other?)")]
    assert 8 <= issues[0].line <= 15  # inside the bomb
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_too_many_aliases_are_refused_even_when_each_is_small():
    body = "\n".join(f"    x{i}: *a" for i in range(limits.MAX_ALIASES + 1))
    text = STAGE.replace("  quotas:", "  many:\n    base: &a 1\n" + body + "\n  quotas:")
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": text})
    assert issue.message == f"refused: more than {limits.MAX_ALIASES} YAML aliases (*name)"
    assert issue.line == 9 + limits.MAX_ALIASES  # the first alias past the limit


@pytest.mark.parametrize("depth", [limits.MAX_DEPTH + 1, 500, 100_000])
def test_deep_nesting_is_refused_without_recursing(depth):
    text = STAGE.replace("  quotas:", "  deep: " + "[" * depth + "]" * depth + "\n  quotas:")
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": text})
    assert issue.message == f"refused: nested more than {limits.MAX_DEPTH} levels deep"
    assert issue.line == 7


def test_a_nul_byte_is_reported_at_its_line():
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": STAGE.replace("s1}", "s1\0}")})
    assert (issue.file, issue.line) == ("stage.yaml", 3)
    assert issue.message == "not a YAML text: special characters are not allowed (character U+0000)"


def test_a_file_that_is_not_utf8_is_reported_at_the_line_of_its_first_bad_byte(tmp_path):
    (tmp_path / "program.yaml").write_text(PROGRAM)
    (tmp_path / "stage.yaml").write_bytes(STAGE.encode().replace(b"s1}", b"s\xe91}"))
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    issue, = caught.value.issues
    assert (Path(issue.file).name, issue.line) == ("stage.yaml", 3)
    assert issue.message == "not UTF-8: byte 0xe9 at column 19"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    (tmp_path / "program.yaml").write_text(PROGRAM + "#" * limits.MAX_FILE_BYTES)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [i.message for i in caught.value.issues] == [f"larger than {limits.MAX_FILE_BYTES:,} bytes"]


@pytest.mark.parametrize("make", ["fifo", "link-to-dev-zero"])
def test_a_fifo_or_a_device_in_the_policy_folder_is_refused_not_read(tmp_path, make):
    (tmp_path / "program.yaml").write_text(PROGRAM)
    odd = tmp_path / "stage.yaml"
    if make == "fifo":
        os.mkfifo(odd)  # reading it would block forever
    else:
        odd.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [(Path(i.file).name, i.message) for i in caught.value.issues] == [
        ("stage.yaml", "not a regular file (a device, FIFO or socket?)")]


@pytest.mark.parametrize("written", ["true", "yes", "on", "17:04", "'1024'", "1024.0", "1_024"])
def test_a_quota_is_an_integer_in_the_file_nothing_else(written):
    """YAML 1.1 reads `yes`/`on`/`true` as booleans and 17:04 as the base-60 number 1024; none of
    them is a count of GPUs."""
    stage = stage_yaml("s1", "2026-01-01", "[a]", f"{{a: {{units: {written}}}}}")
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": stage})
    assert (issue.line, issue.field) == (7, "spec.quotas.a.units")


def test_a_quota_beyond_any_fleet_is_refused():
    stage = stage_yaml("s1", "2026-01-01", "[a]", f"{{a: {{H100: {limits.MAX_GPUS + 1}}}}}")
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": stage})
    assert issue.field == "spec.quotas.a.H100" and "less than or equal to 10000000" in issue.message


def test_an_addition_dated_after_the_next_stage_starts_is_refused():
    stages = "---\n".join([stage_yaml("s1", "2026-01-01", "[a, {consortium: b, from: 2026-08-01}]"),
                           stage_yaml("s2", "2026-07-01", "[a]")])
    issue, = refused({"program.yaml": PROGRAM, "stages.yaml": stages})
    assert (issue.line, issue.field) == (6, "spec.eligible[1].from")
    assert "after the next stage starts" in issue.message


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+14:00", "9999-12-31"])
def test_an_instant_no_programme_can_be_about_is_refused(start):
    issue, = refused({"program.yaml": PROGRAM, "stage.yaml": stage_yaml("s1", start, "[a]")})
    assert issue.field == "spec.start" and "outside the years 1970-9000" in issue.message


def test_a_daemon_meeting_a_bomb_keeps_its_policy_and_its_memory(tmp_path):
    (tmp_path / "program.yaml").write_text(PROGRAM)
    (tmp_path / "stage.yaml").write_text(STAGE)
    source = PolicySource(tmp_path)
    assert source.reload().changed
    good = source.policy
    (tmp_path / "stage.yaml").write_text(alias_bomb())
    tracemalloc.start()
    try:
        result = source.reload()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error is not None and not source.valid and source.policy is good
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_any_failure_to_load_is_a_policy_error_retried_when_the_content_changes(tmp_path, monkeypatch):
    """Whatever a loader did not foresee (here a RecursionError) is reported like any invalid
    policy, counted once, and looked at again as soon as the files change."""
    import scheduler.daemon.policy_source as module

    (tmp_path / "program.yaml").write_text(PROGRAM)
    (tmp_path / "stage.yaml").write_text(STAGE)
    source = PolicySource(tmp_path)
    source.reload()
    good = source.policy
    real = module.load_policy

    def broken(path):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(module, "load_policy", broken)
    (tmp_path / "stage.yaml").write_text(STAGE + "# touched\n")
    result = source.reload()
    assert result.error is not None and source.policy is good and source.reload_errors == 1
    assert "RecursionError" in str(result.error)
    assert source.reload().error is not None and source.reload_errors == 1  # same content: not counted twice
    monkeypatch.setattr(module, "load_policy", real)
    (tmp_path / "stage.yaml").write_text(STAGE + "# fixed\n")
    assert source.reload().changed and source.valid
