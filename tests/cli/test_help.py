"""What a newcomer reads about the command line agrees with the parser: `gpu-scheduler --help`
lists every command with a one-line description, and README's synopsis ("The command line")
names only commands, flags and choices that exist, and every command there is."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from scheduler.cli.parser import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def synopsis() -> dict[str, str]:
    """README's synopsis block, one entry per command: its flags and values (comments dropped,
    continuation lines joined, a command given on several lines merged)."""
    text = README.read_text()
    section = text[text.index("## The command line") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    found: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        code = line.split("#", 1)[0]
        if line.startswith("gpu-scheduler "):
            name = code.split()[1]
            found[name] = found.get(name, "") + " " + " ".join(code.split()[2:])
        elif code.strip():
            assert name, f"a continuation line before any command: {line!r}"
            found[name] += " " + code.strip()
    return found


def test_help_lists_every_command_with_a_one_line_description(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    listing = out.splitlines() + [""]
    for name in commands():
        line = next((line for line in listing if line.split()[:1] == [name]), None)
        assert line is not None, f"{name} missing from --help:\n{out}"
        assert len(line.split()) > 1, f"{name} has no description on its line in --help:\n{out}"
        following = listing[listing.index(line) + 1]
        # a description that wraps continues on an indented line of its own
        assert not following.startswith(" " * (len(line) - len(line.lstrip()) + len(name) + 2)), out


def test_readme_synopsis_names_every_command_and_only_real_flags():
    parsers = commands()
    documented = synopsis()
    assert set(documented) == set(parsers), "README's synopsis and the parser list different commands"
    for name, usage in documented.items():
        options = parsers[name]._option_string_actions
        for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", usage):
            assert flag in options, f"README: `gpu-scheduler {name}` has no {flag}"
        for flag, values in re.findall(r"(--?[a-z][a-z0-9-]*) ([\w=]+(?:\|[\w=]+)+)", usage):
            action = options[flag]
            for value in values.split("|"):
                if action.type is not None and callable(action.type):
                    value = action.type(value)
                assert action.choices is None or value in action.choices, (
                    f"README: `gpu-scheduler {name} {flag}` does not take {value!r}"
                )


def test_every_command_that_reads_a_cluster_takes_the_label_prefix():
    """README: "Every command that reads or writes the cluster takes --label-prefix"."""
    for name, parser in commands().items():
        options = parser._option_string_actions
        if "--kubeconfig" in options or "--cluster" in options:
            assert "--label-prefix" in options, name


def test_help_loads_neither_the_commands_nor_pydantic():
    """`--help` and usage errors build the parser alone: the policy stack (pydantic) loads only for a
    command that runs (docs/performance.md, start-up)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom scheduler.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('pydantic', 'scheduler.cli.commands', 'scheduler.policy.models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_parsers_kinds_are_the_policys():
    from scheduler.cli.parser import KINDS
    from scheduler.policy.models import KINDS as MODELS

    assert KINDS == tuple(MODELS)
