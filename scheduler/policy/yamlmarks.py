"""YAML loading that keeps line numbers, so every policy error can point at its line.

PyYAML's composer gives nodes with start marks; we build plain Python values from them and
record, for each path into the document, the line it came from. Timestamps are kept as strings
so that pydantic parses them (and reports impossible dates as field errors, not tracebacks).

Plain scalars resolve as YAML 1.2's core schema does: `true`/`false` are the only booleans and
integers are decimal, 0o octal or 0x hex, so `yes`, `on` or `17:04` stay strings (YAML 1.1 reads
them as a boolean and the base-60 number 1024) and a quota field refuses them.

Every file is bounded before it is built (limits.py): its nesting depth and alias uses are
counted on the parser's event stream, which needs no recursion, and the values an alias expands
to are counted while building, so a "billion laughs" file is refused at its line in about
a second and a few megabytes instead of taking gigabytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from scheduler.policy import limits

Path = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans and integers, and no implicit timestamps (dates
    stay strings for pydantic)."""

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        return str(node.value).lower() == "true"

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(node.value).replace("_", "")
        if text.startswith(("0o", "0x")):
            return int(text, 0)
        return int(text, 10)


def _core(first: str | None, resolvers: list[tuple[str, re.Pattern[str]]]) -> list[tuple[str, re.Pattern[str]]]:
    kept = [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", _BOOL, _INT)]
    if first is not None and first in "tTfF":
        kept.append((_BOOL, _CORE_BOOL))
    if first is not None and first in "-+0123456789":
        kept.append((_INT, _CORE_INT))
    return kept


_Loader.yaml_implicit_resolvers = {
    first: _core(first, resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor(_BOOL, _Loader.construct_yaml_bool)
_Loader.add_constructor(_INT, _Loader.construct_yaml_int)


class TooBig(Exception):
    """The file is beyond one of the limits; `line` is where it crossed it."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


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


def check_bounds(text: str) -> None:
    """Raise TooBig when `text` nests deeper than MAX_DEPTH or uses more than MAX_ALIASES aliases.
    Walks the parser's events (iterative), so even a file nested 100,000 deep is refused quickly."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.MAX_DEPTH:
                raise TooBig(_line(event), f"nested more than {limits.MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.MAX_ALIASES:
                raise TooBig(_line(event), f"more than {limits.MAX_ALIASES} YAML aliases (*name)")


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _codepoint(character: str | int) -> str:
    code = ord(character) if isinstance(character, str) else int(character)
    return f"character U+{code:04X}"


def _reader_line(text: str, err: yaml.reader.ReaderError) -> int:
    return text.count("\n", 0, max(0, err.position)) + 1


_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")  # what PyYAML counts as a line break
_CLOSING = {"[": "]", "{": "}"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _line_above(lines: list[str], n: int) -> int | None:
    """The last line before line index `n` with something on it other than a comment."""
    return next((i for i in range(n - 1, -1, -1) if lines[i].strip() and not lines[i].lstrip().startswith("#")), None)


def _keyless(line: str) -> str | None:
    """The text of a mapping entry written without its ':' (`start 2026-01-15`), else None."""
    code = re.split(r"\s#", line, maxsplit=1)[0].strip()
    if not code or code.startswith(("-", "[", "{", "'", '"', "#")) or re.search(r":(\s|$)", code):
        return None
    return code


def syntax_error(text: str, err: yaml.MarkedYAMLError) -> tuple[int, str, str]:
    """(line, field, message) for a YAML syntax error, at the line where the mistake is.

    PyYAML stops where it can no longer go on, which is often a line or more after the mistake:
    after an unclosed bracket or quote, at the end of the file or the next key; after a key with
    no ':', at the next key. The line reported here is the one to fix."""
    problem, context = err.problem_mark, err.context_mark
    words = " ".join(str(p) for p in (err.context, err.problem) if p)
    lines = _BREAK.split(text)

    def at(mark: yaml.Mark | None, message: str) -> tuple[int, str, str]:
        return (mark.line + 1 if mark else 1), "", f"YAML syntax error: {message}"

    def text_at(mark: yaml.Mark) -> str:
        return lines[mark.line][mark.column :] if mark.line < len(lines) else ""

    if problem is not None and context is not None and problem.line > context.line:
        if str(err.context).startswith(("while parsing a flow sequence", "while parsing a flow mapping")):
            opening = text_at(context)[:1] or "["
            closing = _CLOSING.get(opening, "]")
            # closed further down, inside the entry that opened it: a ',' is missing, not the bracket
            depth, closed = 0, False
            for n, line in enumerate(lines[context.line :]):
                if n and line.strip() and _indent(line) <= _indent(lines[context.line]):
                    break
                for char in line[context.column :] if n == 0 else line:
                    depth += (char == opening) - (char == closing)
                    closed = closed or depth == 0
                if closed:
                    break
            if closed:
                return at(problem, f"{words} (a ',' missing before it?)")
            return at(
                context, f"the {opening!r} at column {context.column + 1} is never closed with {closing!r} ({words})"
            )
        if str(err.context).startswith("while scanning a quoted scalar"):
            quote = text_at(context)[:1] or "'"
            return at(context, f"the {quote} at column {context.column + 1} is never closed ({words})")
        if str(err.context).startswith("while scanning a simple key"):
            key = text_at(context).strip()
            return at(context, f"no ':' after {key!r} (a mapping entry is 'key: value'; {words})")
    if problem is not None and str(err.problem).startswith("mapping values are not allowed"):
        here = lines[problem.line] if problem.line < len(lines) else ""
        if ": " in here[: problem.column] or here[: problem.column].rstrip().endswith(":"):
            return at(problem, f"{words} (a value that holds ': ' must be quoted)")
        above = _line_above(lines, problem.line)
        if above is not None:
            if _indent(here) > _indent(lines[above]):
                return at(
                    problem,
                    f"this line is indented more than line {above + 1} above it, so it reads as the rest of "
                    f"that line's value ({words}); line it up with the keys of its mapping",
                )
            keyless = _keyless(lines[above])
            if keyless is not None:
                return (above + 1, "", f"YAML syntax error: no ':' after {keyless!r} (a mapping entry is 'key: value')")
    if problem is not None and str(err.problem).startswith("expected <block end>"):
        if str(err.problem).endswith(("']'", "'}'")):
            return at(problem, f"{words} (a closing bracket that closes nothing)")
        here = lines[problem.line] if problem.line < len(lines) else ""
        above = _line_above(lines, problem.line)
        keyless = _keyless(lines[above]) if above is not None else None
        if above is not None and keyless is not None and _indent(lines[above]) == _indent(here):
            return (above + 1, "", f"YAML syntax error: no ':' after {keyless!r} (a mapping entry is 'key: value')")
        return at(problem, f"{words} (check this line's indentation against the lines above)")
    if "'\\t'" in str(err.problem):
        return at(problem, f"{words} (indent with spaces: YAML does not allow tabs there)")
    return at(problem or context, words)


def load_documents(text: str, file: str) -> tuple[list[Document], list[tuple[int, str, str]]]:
    """Parse every document in `text`.

    Returns the documents and a list of (line, field, message) syntax problems; a file with a
    syntax error yields no documents (nothing half-read takes effect).
    """
    docs: list[Document] = []
    problems: list[tuple[int, str, str]] = []
    try:
        check_bounds(text)
        loader = _Loader(text)
    except TooBig as big:
        return [], [(big.line, "", f"refused: {big.message}")]
    except yaml.reader.ReaderError as err:
        return [], [(_reader_line(text, err), "", f"not a YAML text: {err.reason} ({_codepoint(err.character)})")]
    except yaml.MarkedYAMLError as err:
        return [], [syntax_error(text, err)]
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(file=file, index=index, data=None, line=node.start_mark.line + 1)
            try:
                doc.data = _build(loader, node, (), doc, [0])
            except DuplicateKey as dup:
                problems.append((dup.line, _dotted(dup.path), f"duplicate key {dup.key!r}"))
                return [], problems
            except TooBig as big:
                problems.append((big.line, "", f"refused: {big.message}"))
                return [], problems
            docs.append(doc)
            index += 1
    except yaml.MarkedYAMLError as err:
        problems.append(syntax_error(text, err))
        return [], problems
    except yaml.YAMLError as err:  # any other parser failure is still a policy problem, never a crash
        problems.append((1, "", f"YAML error: {' '.join(str(err).split())}"))
        return [], problems
    finally:
        loader.dispose()
    return docs, problems


def _build(loader: _Loader, node: yaml.Node, path: Path, doc: Document, count: list[int]) -> Any:
    """Plain values from `node`, recording lines; `count` is the number of values built so far in
    this document (aliases expanded), bounded by MAX_VALUES."""
    count[0] += 1
    if count[0] > limits.MAX_VALUES:
        raise TooBig(
            node.start_mark.line + 1,
            f"the document expands to more than {limits.MAX_VALUES:,} values (YAML aliases that repeat each other?)",
        )
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise TooBig(key_node.start_mark.line + 1, "a mapping key must be a plain value, not a list or mapping")
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                key = str(key)
            key = key if isinstance(key, str) else str(key)
            child = (*path, key)
            if key in out:
                raise DuplicateKey(key, key_node.start_mark.line + 1, child)
            doc.key_lines[child] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, child, doc, count)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc, count) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
