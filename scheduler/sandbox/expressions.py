"""CEL for admission policies: compiling an expression as kube-apiserver's policy compiler would
(refusing what it would refuse, and what the sandbox cannot evaluate), and evaluating it with
the admission bindings (`object`, `oldObject`, `request`, `namespaceObject`, `params`, and
`variables`, each variable evaluated lazily, at most once per request).

The engine is `common-expression-language` (import `cel`), CEL's reference semantics in Rust.
It lacks Kubernetes' CEL libraries, so the few functions admission policies commonly use are
implemented here (`KUBERNETES_FUNCTIONS`); an expression calling anything else, or naming an
undeclared variable, is refused when the policy is written, naming the function, as
kube-apiserver refuses an expression that does not compile. `variables.NAME` is rewritten to one
identifier per variable, which the engine resolves through a callback: that is what makes
variables lazy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cel

# the identifiers an admission expression may name (kube-apiserver declares these)
ADMISSION_VARIABLES = ("object", "oldObject", "request", "namespaceObject", "params", "variables")
_NOT_EVALUATED = ("authorizer",)  # declared by Kubernetes, not evaluated by the sandbox
_TYPE_NAMES = ("int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn")
_KEYWORDS = ("true", "false", "null", "in")
_MACROS = ("has", "all", "exists", "exists_one", "map", "filter")
_VARIABLE_IDENT = "sandbox_variable_"
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[uU]?")
_STRING_START = re.compile(r"([rR][bB]?|[bB][rR]?)?('''|\"\"\"|'|\")")
_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", ".?")

# what the engine itself provides (checked by tests/sandbox/test_admission_policies.py)
ENGINE_FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "bytes",
        "timestamp",
        "duration",
        "type",
        "dyn",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        # optional values: optional.of(x), optional.none(), .value(), .hasValue(), .orValue(), .or()
        "of",
        "none",
        "value",
        "hasValue",
        "orValue",
        "or",
    }
)
_NAMESPACED_FUNCTIONS = frozenset({"optional.of", "optional.none"})


class CompileError(Exception):
    """What kube-apiserver answers for an expression that does not compile (the detail after
    `compilation failed: `)."""


class EvalError(Exception):
    """An expression that failed at run time (cel-go's wording where it matters)."""


# -- the Kubernetes CEL library functions the sandbox implements ---------------------------------
def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"string() does not convert {type(value).__name__}")


def _index_of(target: Any, item: Any, offset: int = 0) -> int:
    if isinstance(target, str):
        return target.find(item, offset)
    return next((i for i, v in enumerate(target) if v == item), -1)


def _last_index_of(target: Any, item: Any) -> int:
    if isinstance(target, str):
        return target.rfind(item)
    return next((i for i in range(len(target) - 1, -1, -1) if target[i] == item), -1)


def _split(text: str, sep: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    if sep == "":
        parts = list(text)
        return parts if limit < 0 or limit >= len(parts) else [*parts[: limit - 1], "".join(parts[limit - 1 :])]
    return text.split(sep, limit - 1 if limit > 0 else -1)


def _replace(text: str, old: str, new: str, limit: int = -1) -> str:
    return text.replace(old, new, limit)


def _substring(text: str, start: int, end: int | None = None) -> str:
    end = len(text) if end is None else end
    if not 0 <= start <= end <= len(text):
        raise IndexError(f"substring({start}, {end}) out of range")
    return text[start:end]


def _is_sorted(items: list[Any]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(items))


def _find(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    return found.group(0) if found else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in re.finditer(pattern, text)]
    return found if limit < 0 else found[:limit]


KUBERNETES_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    # strings (cel-go ext strings, as Kubernetes enables it)
    "string": _string,  # the engine's own lacks string(bool)
    "lowerAscii": lambda s: "".join(c.lower() if c.isascii() else c for c in s),
    "upperAscii": lambda s: "".join(c.upper() if c.isascii() else c for c in s),
    "trim": lambda s: s.strip(),
    "split": _split,
    "join": lambda items, sep="": sep.join(items),
    "replace": _replace,
    "substring": _substring,
    "charAt": lambda s, i: s[i] if i < len(s) else "",
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    # Kubernetes' lists and regex libraries
    "isSorted": _is_sorted,
    "sum": lambda items: sum(items),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
    "find": _find,
    "findAll": _find_all,
}
SUPPORTED_FUNCTIONS = ENGINE_FUNCTIONS | frozenset(KUBERNETES_FUNCTIONS)


# -- reading an expression -------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "string", "number", "punct"
    text: str
    start: int
    end: int


def tokens(source: str) -> list[Token]:
    """CEL's lexical tokens (comments and whitespace dropped); enough to find identifiers."""
    out: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
            continue
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        string = _STRING_START.match(source, i)
        if string:
            raw = "r" in (string.group(1) or "").lower()
            quote = string.group(2)
            j = string.end()
            while j < n and not source.startswith(quote, j):
                j += 2 if source[j] == "\\" and not raw else 1
            out.append(Token("string", source[i : j + len(quote)], i, j + len(quote)))
            i = j + len(quote)
            continue
        ident = _IDENT.match(source, i)
        if ident:
            out.append(Token("ident", ident.group(0), i, ident.end()))
            i = ident.end()
            continue
        number = _NUMBER.match(source, i)
        if number and number.group(0):
            out.append(Token("number", number.group(0), i, number.end()))
            i = number.end()
            continue
        two = source[i : i + 2]
        width = 2 if two in _PUNCT else 1
        out.append(Token("punct", source[i : i + width], i, i + width))
        i += width
    return out


@dataclass(frozen=True)
class Reading:
    """What an expression names, read from its tokens."""

    rewritten: str  # variables.NAME replaced by one identifier per variable
    variables: tuple[str, ...]  # the NAMEs of variables.NAME, in order of appearance
    free: tuple[str, ...]  # top-level identifiers that are neither bound nor declared
    namespaced_calls: tuple[str, ...]  # calls such as sets.contains(...)


def read(source: str, declared: Iterable[str]) -> Reading:
    toks = tokens(source)
    declared = set(declared)
    bound: set[str] = set()
    for i, tok in enumerate(toks[:-4]):  # .exists(x, ...), .map(x, ...), ...
        if (
            tok.text == "."
            and toks[i + 1].text in _MACROS
            and toks[i + 2].text == "("
            and toks[i + 3].kind == "ident"
            and toks[i + 4].text == ","
        ):
            bound.add(toks[i + 3].text)
    out, names, free, calls = [], [], [], []
    last = 0
    for i, tok in enumerate(toks):
        if tok.kind != "ident" or (i > 0 and toks[i - 1].text in (".", ".?")):
            continue
        after = toks[i + 1].text if i + 1 < len(toks) else ""
        if after == "(":
            continue  # a global function or macro, checked by the engine's list of functions
        if tok.text == "variables":
            if after == "." and i + 2 < len(toks) and toks[i + 2].kind == "ident":
                out.append(source[last : tok.start] + _VARIABLE_IDENT + toks[i + 2].text)
                last = toks[i + 2].end
                names.append(toks[i + 2].text)
            else:
                free.append("variables")  # only variables.NAME is an expression
            continue
        if tok.text in declared or tok.text in bound or tok.text in _TYPE_NAMES or tok.text in _KEYWORDS:
            continue
        if tok.text in _NOT_EVALUATED:
            free.append(tok.text)
            continue
        if after == "." and i + 3 < len(toks) and toks[i + 2].kind == "ident" and toks[i + 3].text == "(":
            calls.append(f"{tok.text}.{toks[i + 2].text}")
            continue
        free.append(tok.text)
    out.append(source[last:])
    return Reading("".join(out), tuple(names), tuple(dict.fromkeys(free)), tuple(dict.fromkeys(calls)))


# -- compiling ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    source: str
    program: cel.Program
    variables: tuple[str, ...]  # the variables it reads


def _issue(source: str, message: str, at: int = 0) -> str:
    """cel-go's issue format: `ERROR: <input>:LINE:COL: message` and the line with a caret."""
    at = max(at, 0)
    line = source.count("\n", 0, at) + 1
    column = at - (source.rfind("\n", 0, at) + 1)
    text = source.splitlines()[line - 1] if source else ""
    return f"ERROR: <input>:{line}:{column + 1}: {message}\n | {text}\n | {'.' * column}^"


def compile_expression(source: str, variables: Iterable[str] = ()) -> Compiled:
    """Compile one admission expression that may read `variables` (the names defined before it).

    Raises CompileError with cel-go's wording: a syntax error, an undeclared reference (a
    variable, or a function the sandbox does not implement), an undefined field of `variables`.
    """
    if not source.strip():
        raise CompileError("expression must not be empty")
    try:
        cel.compile(source)
    except ValueError as e:
        raise CompileError(_syntax(str(e))) from None
    available = list(variables)
    reading = read(source, ADMISSION_VARIABLES)
    for name in reading.free:
        where = source.find(name)
        if name in _NOT_EVALUATED:
            raise CompileError(_issue(source, f"'{name}' is not evaluated by the sandbox API server", where))
        raise CompileError(_issue(source, f"undeclared reference to '{name}' (in container '')", where))
    for name in reading.namespaced_calls:
        if name not in _NAMESPACED_FUNCTIONS:
            raise CompileError(_issue(source, f"undeclared reference to '{name}' (in container '')", source.find(name)))
    for name in reading.variables:
        if name not in available:
            raise CompileError(_issue(source, f"undefined field '{name}'", source.find(f"variables.{name}")))
    program = cel.compile(reading.rewritten)
    unknown = [n for n in program.functions() if n[:1] not in ("_", "@", "!") and n not in SUPPORTED_FUNCTIONS]
    if unknown:
        first = min(unknown, key=lambda n: _call_at(source, n))
        raise CompileError(
            _issue(source, f"undeclared reference to '{first}' (in container '')", _call_at(source, first))
        )
    return Compiled(source, program, reading.variables)


def _call_at(source: str, function: str) -> int:
    """Where a call of `function` starts in the source (its name)."""
    found = re.search(rf"\b{re.escape(function)}\s*\(", source)
    return found.start() if found else len(source)


def _syntax(engine_message: str) -> str:
    """The engine's parse error, without its own preamble (`Failed to parse expression '...': `)."""
    head, sep, rest = engine_message.partition("': ")
    text = rest if sep and head.startswith("Failed to parse expression") else engine_message
    return text.replace("\n| ", "\n | ")


# -- evaluating --------------------------------------------------------------------------------
_UNDEFINED = re.compile(r"Undefined variable or function: '([^']+)'")


def _error_text(e: Exception) -> str:
    """The engine's exception in cel-go's words, where they differ."""
    if isinstance(e, KeyError):
        return f"no such key: {e.args[0] if e.args else ''}"
    if isinstance(e, ZeroDivisionError):
        return "division by zero"
    if isinstance(e, IndexError):
        return "index out of bounds"
    if isinstance(e, OverflowError):
        return "return error overflow"
    text = str(e)
    undefined = _UNDEFINED.search(text)
    if undefined:
        return f"undeclared reference to '{undefined.group(1)}'"
    if text.startswith("No such overload"):
        return "no such overload"
    return text.split(". Check ", 1)[0]


ENGINE_ERRORS = (KeyError, IndexError, TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError)


class Activation:
    """The bindings of one admission request for one policy, with its variables evaluated on first
    use (and at most once), as kube-apiserver's lazy `variables` map does."""

    def __init__(self, bindings: Mapping[str, Any], variables: Mapping[str, Compiled]) -> None:
        self._variables = variables
        self._values: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._nulls: set[str] = set()
        self._busy: set[str] = set()
        self._context = cel.Context(variables={**dict.fromkeys(ADMISSION_VARIABLES), **bindings})
        for name, function in KUBERNETES_FUNCTIONS.items():
            self._context.add_function(name, function)
        self._context.set_variable_resolver(self._resolve)

    def _resolve(self, ident: str) -> Any:
        if not ident.startswith(_VARIABLE_IDENT):
            return None
        name = ident[len(_VARIABLE_IDENT) :]
        if name in self._values:
            return self._values[name]
        compiled = self._variables.get(name)
        if compiled is None or name in self._errors or name in self._nulls or name in self._busy:
            return None
        self._busy.add(name)
        try:
            value = self.evaluate(compiled)
        except EvalError as e:
            self._errors[name] = f'composited variable "{name}" fails to evaluate: {e}'
            return None
        finally:
            self._busy.discard(name)
        if value is None:  # the engine reads a None from the callback as "not here"
            self._nulls.add(name)
            self._context.add_variable(ident, None)
            return None
        self._values[name] = value
        return value

    def evaluate(self, compiled: Compiled) -> Any:
        """The expression's value; EvalError when it fails (or a variable it reads does)."""
        for _ in range(len(self._variables) + 1):
            try:
                return compiled.program.execute(self._context)
            except ENGINE_ERRORS as e:
                undefined = _UNDEFINED.search(str(e))
                name = undefined.group(1)[len(_VARIABLE_IDENT) :] if undefined else ""
                if undefined and undefined.group(1).startswith(_VARIABLE_IDENT):
                    if name in self._errors:
                        raise EvalError(self._errors[name]) from None
                    if name in self._nulls:
                        continue  # now bound to null: evaluate again
                raise EvalError(_error_text(e)) from None
        raise EvalError("variables refer to each other")
