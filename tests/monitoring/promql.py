"""Just enough PromQL reading for the monitoring tests: which metric names an expression reads.

Not a parser: it removes what cannot be a metric name (strings, label matchers, range and subquery
brackets, grouping clauses, Grafana variables, numbers and durations), then takes the identifiers
that are neither functions nor keywords. Good for the expressions we write; a test that feeds it
something it cannot read fails loudly rather than passing.
"""

from __future__ import annotations

import re

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression: `sum by (le) (rate(x_bucket{a="b"}[5m])) / y` -> {x_bucket, y}."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    if any(c in text for c in "{}[]"):
        raise ValueError(f"cannot read {expr!r}: unbalanced brackets left: {text!r}")
    names = set()
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def variables(text: str) -> set[str]:
    """Grafana variables a query uses: `$pool`, `${pool}`, `${pool:regex}`, `[[pool]]` -> {pool}."""
    found = set(re.findall(r"\$\{(\w+)(?::[^}]*)?\}", text))
    found |= set(re.findall(r"\$(\w+)", text))
    found |= set(re.findall(r"\[\[(\w+)(?::[^\]]*)?\]\]", text))
    return found
