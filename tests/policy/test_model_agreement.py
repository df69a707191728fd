"""The two models of a policy document agree: the runtime model (models.py, msgspec) that every
command and the daemon read policies with, and the pydantic schema (schema.py) that explains a
refused document and prints `gpu-scheduler schema`. Over documents hypothesis derives from the
real programme's (a value replaced, a key dropped or added), both accept the same ones, with equal
values, and refuse the same ones (docs/policy.md, "How a policy is read")."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from scheduler.policy import models, schema
from scheduler.policy.yamlmarks import load_documents

ROOT = Path(__file__).resolve().parents[2]
SEOUL = ZoneInfo("Asia/Seoul")


def _documents() -> list[dict[str, Any]]:
    docs = []
    for folder in (ROOT / "policies", ROOT / "docs" / "examples"):
        for path in sorted(folder.rglob("*.yaml")):
            found, problems = load_documents(path.read_text(), str(path))
            assert not problems, (path, problems)
            docs += [d.data for d in found if isinstance(d.data, dict) and d.data.get("kind") in models.KINDS]
    return docs


DOCUMENTS = _documents()


def runtime(kind: str, data: Any) -> Any:
    try:
        return models.read(models.KINDS[kind], data, SEOUL)
    except models.Refused:
        return None


def pydantic(kind: str, data: Any) -> Any:
    try:
        return schema.KINDS[kind].model_validate(data, context={"timezone": SEOUL})
    except ValidationError:
        return None


def plain(value: Any) -> Any:
    """A model's value as builtins, by field name, whichever library built it."""
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, BaseModel):
        return {f: plain(getattr(value, f)) for f in type(value).model_fields}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a value sits (mapping keys and list items), the root's children first."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*here, key))
        found += paths(child, (*here, key))
    return found


# values a policy's author might write by mistake, or that sit at a rule's edge
EDGES = [
    True, False, None, 0, 1, -1, 8, 63, 2**31, 10_000_000, 10_000_001, 1.5, 25.0, 100.5, -0.0,
    math.nan, math.inf, "", "x", "lg", "abc\n", "UPPER", "a" * 63, "a" * 64, "-a", "a-", "pending", "units",
    "14d", "2h", "1d12h", "0s", "P14D", "14", "2026-08-01", "2026-08-01T09:00", "2026-08-01T09:00:00+09:00",
    "2026-08-01T09:00:00Z", "2026-13-01", "0001-01-01", "9001-01-01", "Asia/Seoul", "UTC", "Mars/Base", "hold",
    "step", "linear", "bogus", "8", "1e3", [], ["lg"], ["lg", {"consortium": "skt", "from": "2026-01-01"}],
    [{"consortium": "lg", "from_": "2026-01-01"}], {}, {"H100": 8}, {"units": 8}, {"units": 8, "H100": 8},
    {"H100": True}, {"a": "b"}, {"a": 1}, {"nodes": 2}, {"nodes": 2, "gpusPerNode": 0}, {"name": "x"},
    {"units": 2}, {"mode": "hold"}, {"gracePeriod": "7d"}, {"keepPercent": 50}, {1: "a"},
]
values = st.one_of(
    st.sampled_from(EDGES),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)


def alike(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same shape: most documents drawn this way are still valid, so that
    the values both models read are compared, not only their refusals."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(0, 5000)
    if isinstance(value, float):
        return st.floats(0, 100)
    if isinstance(value, str) and value[:4].isdigit():
        return st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat(timespec="minutes")))
    if isinstance(value, str) and value[-1:] in ("d", "h", "m", "s", "w") and value[:1].isdigit():
        return st.from_regex(r"([1-9][0-9]{0,2}[wdhms]){1,3}", fullmatch=True)
    if isinstance(value, str):
        return st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
    return st.just(value)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A document of the real programme with one to three mistakes, and the kind the loader took
    it for (it dispatches on `kind` before either model sees the document)."""
    data = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    kind = data["kind"]
    for _ in range(draw(st.integers(1, 3))):
        places = paths(data)
        if not places:
            break
        *parent_path, key = draw(st.sampled_from(places))
        parent: Any = data
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["alike", "alike", "alike", "replace", "replace", "drop", "add", "rename"]))
        if action == "alike":
            parent[key] = draw(alike(parent[key]))
        elif action == "replace":
            parent[key] = draw(values)
        elif action == "drop":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "from", "from_", "units", "name", "spec"]))] = draw(values)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["Name", "from_", f"{key}s", "start "]))] = parent.pop(key)
    return kind, data


def test_the_real_programme_reads_the_same_in_both():
    assert DOCUMENTS
    for data in DOCUMENTS:
        fast, reference = runtime(data["kind"], data), pydantic(data["kind"], data)
        assert fast is not None and reference is not None, data["metadata"]
        assert plain(fast) == plain(reference)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_both_models_accept_and_refuse_the_same_documents_with_equal_values(document):
    kind, data = document
    fast, reference = runtime(kind, data), pydantic(kind, data)
    note(f"runtime: {fast!r}\npydantic: {reference!r}")
    event("accepted" if reference is not None else "refused")
    assert (fast is None) == (reference is None)
    if fast is not None:
        assert plain(fast) == plain(reference)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("metadata", "name"), "lg\n"),  # `$` of Python's re matches before a final newline
        (("spec", "windDown", "keepPercent"), True),  # a boolean is not a percentage
        (("spec", "windDown", "keepPercent"), "25"),  # nor is text
        (("spec", "windDown", "keepPercent"), math.nan),
        (("spec", "gpuModels", "H100", "units"), 2.0),  # counts are integers written as integers
        (("spec", "timezone"), "Mars/Base"),
        (("spec", "windDown", "gracePeriod"), "P14D"),  # the policy's durations, not ISO 8601's
    ],
)
def test_edges_each_model_once_read_differently_are_refused_by_both(path, value):
    program = copy.deepcopy(next(d for d in DOCUMENTS if d["kind"] == "Program"))
    parent = program
    for step in path[:-1]:
        parent = parent.setdefault(step, {})
    parent[path[-1]] = value
    assert runtime("Program", program) is None
    assert pydantic("Program", program) is None


def test_reading_a_valid_policy_does_not_load_pydantic():
    """pydantic, and the time building its models takes, is for explaining a refused document."""
    code = (
        "import sys; from scheduler.policy import load_policy; load_policy(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "policies")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_object_has_the_same_fields_and_defaults_in_both():
    pairs = [
        (getattr(models, name), cls)
        for name, cls in vars(schema).items()
        if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == schema.__name__
        and not name.startswith("_")
    ]
    assert len(pairs) == 14  # Program, Stage and every object inside them
    for struct, model in pairs:
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        assert set(fields) == {f.alias or name for name, f in model.model_fields.items()}, struct
        for name, f in model.model_fields.items():
            mine = fields[f.alias or name]
            if f.is_required():
                assert mine.required, (struct, name)
                continue
            default = mine.default_factory() if mine.default_factory is not msgspec.NODEFAULT else mine.default
            assert plain(default) == plain(f.get_default(call_default_factory=True)), (struct, name)
