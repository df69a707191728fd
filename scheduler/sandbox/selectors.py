"""Label and field selectors, with the grammar and semantics of k8s.io/apimachinery.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a` (exists), `!a`
(does not exist), `a>1`/`a<1` (integers), joined by commas (AND). `!=` and `notin` match objects
without the label, as in Kubernetes. Field selectors: `f=v`, `f==v`, `f!=v` on the fields the
resource allows (see resources.py); `\\`, `,` and `=` in values are escaped with a backslash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.sandbox.errors import ApiError, bad_request
from scheduler.sandbox.resources import ResourceType

_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label or annotation key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return (
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return not has or labels[self.key] not in self.values
        if not has:
            return False
        try:
            have = int(labels[self.key])
        except ValueError:
            return False
        want = int(self.values[0])
        return have > want if self.op == ">" else have < want


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: found unexpected {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.error("found '', expected: identifier")
        self.i += 1
        return tok

    def error(self, what: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {what} (selector {self.text!r})")

    def parse(self) -> LabelSelector:
        reqs: list[Requirement] = []
        while self.peek() is not None:
            reqs.append(self.requirement())
            tok = self.peek()
            if tok is None:
                break
            if tok != ",":
                raise self.error(f"found {tok!r}, expected: ','")
            self.take()
            if self.peek() is None:
                raise self.error("found '', expected: identifier after ','")
        return LabelSelector(tuple(reqs))

    def key(self) -> str:
        key = self.take()
        if key in ("==", "!=", "=", "!", "(", ")", ",", ">", "<"):
            raise self.error(f"found {key!r}, expected: identifier")
        why = label_key_error(key)
        if why:
            raise self.error(f"key {key!r}: {why}")
        return key

    def value(self) -> str:
        val = self.take()
        if val in ("==", "!=", "=", "!", "(", ")", ",", ">", "<"):
            raise self.error(f"found {val!r}, expected: value")
        why = label_value_error(val)
        if why:
            raise self.error(f"value {val!r}: {why}")
        return val

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "=="):
            if self.peek() in (None, ","):
                return Requirement(key, "=", ("",))
            return Requirement(key, "=", (self.value(),))
        if op == "!=":
            if self.peek() in (None, ","):
                return Requirement(key, "!=", ("",))
            return Requirement(key, "!=", (self.value(),))
        if op in (">", "<"):
            val = self.take()
            if not re.fullmatch(r"-?\d+", val):
                raise self.error(f"for 'Gt', 'Lt' operators, the value must be an integer: {val!r}")
            return Requirement(key, op, (val,))
        if op in ("in", "notin"):
            if self.take() != "(":
                raise self.error("expected: '(' after 'in' or 'notin'")
            values: list[str] = []
            while True:
                tok = self.peek()
                if tok == ")":
                    self.take()
                    break
                if tok == ",":
                    self.take()
                    if not values:
                        values.append("")
                    if self.peek() in (",", ")"):
                        values.append("")
                    continue
                values.append(self.value())
            if not values:
                raise self.error("for 'in', 'notin' operators, values set can't be empty")
            return Requirement(key, op, tuple(values))
        raise self.error(f"found {op!r}, expected: in, notin, =, ==, !=, gt, lt")


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    return _Parser(text).parse()


_SELECTOR_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_errors(selector: Any, path: str) -> list[tuple[str, str]]:
    """(field, message) for what kube-apiserver refuses in a metav1.LabelSelector object."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [(path, "Invalid value: must be an object")]
    out: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        why = label_key_error(str(key)) or (label_value_error(value) if isinstance(value, str) else "must be a string")
        if why:
            out.append((f"{path}.matchLabels", f'Invalid value: "{key}": {why}'))
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{i}]"
        op = (expr or {}).get("operator")
        values = (expr or {}).get("values") or []
        if op not in _SELECTOR_OPERATORS:
            out.append((f"{where}.operator", f'Invalid value: "{op}": not a valid selector operator'))
        elif op in ("In", "NotIn") and not values:
            out.append((f"{where}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            out.append(
                (f"{where}.values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            )
    return out


def from_label_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector object (matchLabels, matchExpressions); None or {} selects all."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = _SELECTOR_OPERATORS[expr["operator"]]
        reqs.append(Requirement(str(expr["key"]), op, tuple(str(v) for v in expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldTerm:
    getter: Callable[[dict[str, Any]], str]
    value: str
    negate: bool

    def matches(self, obj: dict[str, Any]) -> bool:
        return (self.getter(obj) == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(t.matches(obj) for t in self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence in {value!r}")
            out.append(value[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise bad_request(f"invalid field selector: unescaped {ch!r} in {value!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def parse_field_selector(text: str | None, rtype: ResourceType) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    terms: list[FieldTerm] = []
    for part in _split_unescaped(text, ","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        label, op, raw = m.group(1).strip(), m.group(2), m.group(3)
        getter = rtype.field_getter(label)
        if getter is None:
            raise bad_request(f"field label not supported: {label}")
        terms.append(FieldTerm(getter, _unescape(raw), op == "!="))
    return FieldSelector(tuple(terms))


class Filter:
    """What a list or watch keeps: a namespace, a label selector and a field selector."""

    def __init__(self, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields.empty or self.fields.matches(obj)
