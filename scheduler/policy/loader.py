"""Read every policy file under a folder, validate each document, merge and cross-check.

All problems are collected and reported together as `file:line: field.path: message`; a policy
with any problem never takes effect (the caller keeps the last good one).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from scheduler.policy import limits
from scheduler.policy.capacity import overcommit_warnings
from scheduler.policy.crosscheck import crosscheck
from scheduler.policy.errors import PolicyError, PolicyIssue
from scheduler.policy.models import API_VERSION, KINDS, Program, Refused, Stage, read
from scheduler.policy.policy import Policy
from scheduler.policy.types import DEFAULT_TIMEZONE, zone_named
from scheduler.policy.yamlmarks import Document, load_documents

SUFFIXES = (".yaml", ".yml")

_Doc = TypeVar("_Doc", Program, Stage)


def policy_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every *.yaml / *.yml under `path`, sorted; hidden entries are skipped, which also skips
    the `..data` / `..2026_…` folders of a mounted ConfigMap (their files appear once, by name)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise PolicyError([PolicyIssue(str(root), 0, "", "no such policy file or folder")])
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(SUFFIXES) and not f.startswith(".")]
    return sorted(found)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load, validate and merge the policy under `path`; raise PolicyError with every issue."""
    files = policy_files(path)
    if not files:
        raise PolicyError([PolicyIssue(str(path), 0, "", "no *.yaml or *.yml policy files found")])
    texts = {}
    issues = []
    for f in files:
        try:
            texts[str(f)] = read_policy_file(f)
        except PolicyError as err:
            issues += err.issues
    if issues:
        raise PolicyError(issues)
    return load_policy_texts(texts)


def read_policy_file(path: Path) -> str:
    """The text of one policy file: a regular file (not a device, a FIFO or a socket, which could
    block or never end), at most MAX_FILE_BYTES, in UTF-8 (a bad byte is reported at its line)."""
    try:
        info = path.stat()  # follows symlinks: what would be read
        if not stat.S_ISREG(info.st_mode):
            raise PolicyError([PolicyIssue(str(path), 0, "", "not a regular file (a device, FIFO or socket?)")])
        with open(path, "rb") as fh:
            data = fh.read(limits.MAX_FILE_BYTES + 1)
    except OSError as err:
        raise PolicyError([PolicyIssue(str(path), 0, "", f"cannot read: {err.strerror or err}")]) from None
    if len(data) > limits.MAX_FILE_BYTES:
        raise PolicyError([PolicyIssue(str(path), 0, "", f"larger than {limits.MAX_FILE_BYTES:,} bytes")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise PolicyError(
            [
                PolicyIssue(
                    str(path),
                    line,
                    "",
                    f"not UTF-8: byte 0x{data[err.start]:02x} at column {column}",
                )
            ]
        ) from None


def load_policy_texts(texts: dict[str, str]) -> Policy:
    """Same as load_policy, from {file name: YAML text} (what tests and the daemon's reload use)."""
    issues: list[PolicyIssue] = []
    docs: list[Document] = []
    for file, text in sorted(texts.items()):
        found, problems = load_documents(text, file)
        issues += [PolicyIssue(file, line, fld, msg) for line, fld, msg in problems]
        docs += found

    programs: list[tuple[Document, Any]] = []
    stages: list[tuple[Document, Any]] = []
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            issues.append(
                PolicyIssue(
                    doc.file, doc.line, "", "a policy document is a mapping with apiVersion, kind, metadata and spec"
                )
            )
            continue
        kind = doc.data.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            issues.append(
                PolicyIssue(
                    doc.file,
                    doc.line_of(("kind",)),
                    "kind",
                    f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}",
                )
            )
            continue
        if doc.data.get("apiVersion") != API_VERSION:
            issues.append(
                PolicyIssue(
                    doc.file,
                    doc.line_of(("apiVersion",)),
                    "apiVersion",
                    f"expected {API_VERSION!r}, got {doc.data.get('apiVersion')!r}",
                )
            )
            continue
        (programs if kind == "Program" else stages).append((doc, doc.data))

    if not programs:
        first = sorted(texts)[0] if texts else "<policy>"
        issues.append(PolicyIssue(first, 1, "", "no Program document: the policy needs exactly one kind: Program"))
    for doc, _ in programs[1:]:
        first_doc = programs[0][0]
        issues.append(
            PolicyIssue(
                doc.file,
                doc.line_of(("kind",)),
                "kind",
                f"a second Program document (the first is in {first_doc.file}:{first_doc.line_of(('kind',))})",
            )
        )

    program: Program | None = None
    zone = DEFAULT_TIMEZONE
    if programs:
        doc, data = programs[0]
        # naive dates inside the Program itself are in its own timezone
        zone = _own_timezone(data)
        program = _read(Program, doc, data, zone, issues)
        if program is None:
            zone = DEFAULT_TIMEZONE

    parsed_stages: list[tuple[Document, Stage]] = []
    for doc, data in stages:
        stage = _read(Stage, doc, data, zone, issues)
        if stage is not None:
            parsed_stages.append((doc, stage))

    if program is not None:
        issues += crosscheck(program, programs[0][0], parsed_stages)
    if issues:
        raise PolicyError(issues)
    assert program is not None
    digest = hashlib.sha256()
    for file, text in sorted(texts.items()):
        digest.update(Path(file).name.encode() + b"\0" + text.encode() + b"\0")
    ordered = tuple(stage for _, stage in sorted(parsed_stages, key=lambda ds: ds[1].spec.start))
    warnings = tuple(sorted(overcommit_warnings(program, programs[0][0], parsed_stages)))
    return Policy(
        program=program, stages=ordered, sha256=digest.hexdigest(), files=tuple(sorted(texts)), warnings=warnings
    )


def _own_timezone(data: dict[str, Any]) -> ZoneInfo:
    """The timezone a Program names, if it names a valid one (else the default, and validation
    says what is wrong with it)."""
    spec = data.get("spec")
    name = spec.get("timezone") if isinstance(spec, dict) else None
    if not isinstance(name, str):
        return DEFAULT_TIMEZONE
    try:
        return zone_named(name)
    except ValueError:
        return DEFAULT_TIMEZONE


def _read(kind: type[_Doc], doc: Document, data: Any, zone: ZoneInfo, issues: list[PolicyIssue]) -> _Doc | None:
    """The document as the runtime model; when that refuses it, the pydantic schema says why, as
    `file:line: field: message` for every problem in it."""
    try:
        return read(kind, data, zone)
    except Refused as refused:
        from scheduler.policy.schema import explain

        explained = explain(kind.__name__, doc, data, zone)
        # the two models agree (tested); should they not, the document is still refused
        issues += explained or [PolicyIssue(doc.file, doc.line, "", f"refused: {refused}")]
        return None
