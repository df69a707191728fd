"""YAML loading that keeps line numbers, so every policy error can point at its line.

PyYAML's composer gives nodes with start marks; we build plain Python values from them and
record, for each path into the document, the line it came from. Timestamps are kept as strings
so that pydantic parses them (and reports impossible dates as field errors, not tracebacks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type: dates stay strings for pydantic."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Document:
    """One YAML document: its data, the file it came from and a line for every path in it."""

    file: str
    index: int
    data: Any
    line: int
    lines: dict[Path, int] = field(default_factory=dict)
    key_lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path, *, key: bool = False) -> int:
        """Line of the longest known prefix of `path` (key line when asked and known)."""
        p = tuple(path)
        while p:
            if key and p in self.key_lines:
                return self.key_lines[p]
            if p in self.lines:
                return self.lines[p]
            if p in self.key_lines:
                return self.key_lines[p]
            p = p[:-1]
        return self.line


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, path: Path):
        self.key, self.line, self.path = key, line, path


def load_documents(text: str, file: str) -> tuple[list[Document], list[tuple[int, str, str]]]:
    """Parse every document in `text`.

    Returns the documents and a list of (line, field, message) syntax problems; a file with a
    syntax error yields no documents (nothing half-read takes effect).
    """
    loader = _Loader(text)
    docs: list[Document] = []
    problems: list[tuple[int, str, str]] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, index=index, data=None, line=node.start_mark.line + 1)
            try:
                doc.data = _build(loader, node, (), doc)
            except DuplicateKey as dup:
                problems.append((dup.line, _dotted(dup.path), f"duplicate key {dup.key!r}"))
                return [], problems
            docs.append(doc)
            index += 1
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        msg = " ".join(str(p) for p in (err.context, err.problem) if p)
        problems.append((line, "", f"YAML syntax error: {msg}"))
        return [], problems
    except yaml.YAMLError as err:  # pragma: no cover - defensive
        problems.append((1, "", f"YAML error: {err}"))
        return [], problems
    finally:
        loader.dispose()
    return docs, problems


def _build(loader: _Loader, node: yaml.Node, path: Path, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                key = str(key)
            key = key if isinstance(key, str) else str(key)
            child = (*path, key)
            if key in out:
                raise DuplicateKey(key, key_node.start_mark.line + 1, child)
            doc.key_lines[child] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
