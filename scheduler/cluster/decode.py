"""Decode `kubectl get nodes,namespaces,resourcequotas,pods -A -o json` (a v1 List, or a NodeList)
straight into the snapshot model.

Typed selective decoding with msgspec: only the fields planning needs are materialised, the
rest of each ~10 KB node (images, addresses, managed fields) is skipped by the parser. This is
several times faster and smaller than json.loads followed by walking dicts.
"""

from __future__ import annotations

import functools
import gc
import mmap
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Union

import msgspec

from scheduler.cluster.labels import GPU_RESOURCE, RESOURCE_QUOTA_NAME, Keys
from scheduler.cluster.snapshot import EMPTY, GpuPod, Namespace, Node, Snapshot, Taint
from scheduler.wire import quota, telemetry, timestamps

_EMPTY_MAP = msgspec.Raw(b"{}")


class _Meta(msgspec.Struct, frozen=True):
    name: str = ""
    namespace: str = ""
    # left as bytes at first: a node's 25-30 labels are decoded only as far as planning reads them
    # (_labels), so parsing a fleet makes no dict of labels nobody reads
    labels: msgspec.Raw = _EMPTY_MAP
    annotations: msgspec.Raw = _EMPTY_MAP  # likewise: a node's are read only for gpu-scheduler's keys


class _Condition(msgspec.Struct, frozen=True):
    type: str = ""
    status: str = ""


class _Taint(msgspec.Struct, frozen=True):
    key: str = ""
    value: str = ""
    effect: str = ""


class _Resources(msgspec.Struct, frozen=True):
    requests: dict[str, str | int | float] = {}
    limits: dict[str, str | int | float] = {}


class _Container(msgspec.Struct, frozen=True):
    resources: _Resources = _Resources()


class _Spec(msgspec.Struct, frozen=True):
    unschedulable: bool = False
    taints: list[_Taint] = []
    nodeName: str = ""
    containers: list[_Container] = []
    initContainers: list[_Container] = []
    hard: dict[str, str | int | float] = {}


class _Status(msgspec.Struct, frozen=True):
    allocatable: dict[str, str | int | float] = {}
    conditions: list[_Condition] = []
    phase: str = ""


class _Item(msgspec.Struct, frozen=True):
    kind: str = ""
    metadata: _Meta = _Meta()
    spec: _Spec = _Spec()
    status: _Status = _Status()


class _List(msgspec.Struct, frozen=True):
    kind: str = ""
    items: list[_Item] = []


_DECODER = msgspec.json.Decoder(_List)
_ITEM_KIND = {"NodeList": "Node", "NamespaceList": "Namespace", "ResourceQuotaList": "ResourceQuota", "PodList": "Pod"}


class SnapshotError(ValueError):
    """The cluster file is not what `kubectl get ... -o json` prints."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector: decoding and planning make tens of thousands of acyclic objects,
    and the collections they trigger would rescan them again and again for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode_snapshot(data: bytes | str, keys: Keys, list_kind: str = "") -> Snapshot:
    """Decode a cluster dump, with the cycle collector paused (it would cost more than decoding).
    `list_kind` ("NodeList", ...) is what the caller asked the API for, when it knows: the items
    of an API server's list carry no `kind` of their own."""
    with paused_gc():
        return _decoded([data], keys, list_kind)


def decode_snapshot_file(path: str, keys: Keys) -> Snapshot:
    """As decode_snapshot, reading the file where it lies: a regular file is mapped read-only
    and parsed from the page cache, not first copied into a bytes object (a tenth of the time
    of decoding 10,000 nodes went to that copy), and the mapping goes once the parse no longer
    refers to it; anything else (a pipe) is read."""
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            held: list[_Source] = [mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)]
        else:
            held = [fh.read()]
    with paused_gc():
        return _decoded(held, keys, "")


_Source = bytes | str | mmap.mmap


def _decoded(held: list[_Source], keys: Keys, list_kind: str) -> Snapshot:
    """In one pass where it can (_Fast: each node's labels and annotations are read as the node
    is parsed, only those planning reads), else in two: the general pass, which also explains
    what is wrong with a file. `held` holds the bytes; they are let go of once parsed."""
    data = held.pop()
    fast = _fast(keys)
    try:
        typed = fast.decoder(list_kind).decode(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included: a shape it does not take
        typed = None
    if typed is not None and typed.kind in ("List", *_ITEM_KIND):
        del data
        return _assemble(((_TAGS.get(type(i), "Node"), i) for i in typed.items), keys, fast.node)
    doc = _parse(data)
    del data
    return _build(doc, keys)


def _parse(data: _Source) -> _List:
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as err:
        raise SnapshotError(f"not a Kubernetes List in JSON: {err}") from None
    except RecursionError:
        raise SnapshotError("not a Kubernetes List in JSON: nested too deep") from None


def _build(doc: _List, keys: Keys) -> Snapshot:
    default_kind = _ITEM_KIND.get(doc.kind, "")
    if doc.kind not in ("List", *_ITEM_KIND):
        raise SnapshotError(f"expected kind List or NodeList, got {doc.kind!r}")
    return _assemble(((item.kind or default_kind, item) for item in doc.items), keys, lambda i: node_from(i, keys))


def _assemble(items: Iterable[tuple[str, Any]], keys: Keys, node: Callable[[Any], Node]) -> Snapshot:
    nodes: list[Node] = []
    namespaces: dict[str, Namespace] = {}
    quotas: dict[str, str] = {}
    pods: list[GpuPod] = []
    for kind, item in items:
        if kind == "Node":
            nodes.append(node(item))
        elif kind == "Namespace":
            m = item.metadata
            namespaces[m.name] = Namespace(
                m.name,
                MappingProxyType(_strings(m, "labels")),
                MappingProxyType(_ours(_strings(m, "annotations"), keys)),
            )
        elif kind == "ResourceQuota":
            if item.metadata.name == RESOURCE_QUOTA_NAME:
                hard = quota.decode_hard(item.spec.hard)
                if hard is not None:
                    quotas[item.metadata.namespace] = hard
        elif kind == "Pod":
            pod = gpu_pod_from(item)
            if pod is not None:
                pods.append(pod)
        if kind not in ("Node", "Namespace"):  # never read, but a file with malformed ones is still refused
            _strings(item.metadata, "labels")
            _strings(item.metadata, "annotations")
    nodes.sort(key=lambda n: n.name)
    _refuse_duplicates(nodes)
    pods.sort(key=lambda p: (p.node, p.namespace, p.name))
    return Snapshot(nodes=tuple(nodes), namespaces=namespaces, quotas=quotas, pods=tuple(pods))


class _NodeSpec(msgspec.Struct, frozen=True, gc=False):
    unschedulable: bool = False
    taints: list[_Taint] = []


class _Allocatable(msgspec.Struct, frozen=True, gc=False):
    gpus: str | int | float | None = msgspec.field(default=None, name=GPU_RESOURCE)  # the rest is skipped


class _NodeStatus(msgspec.Struct, frozen=True, gc=False):
    allocatable: _Allocatable = _Allocatable()
    conditions: list[_Condition] = []


class _Tagged(msgspec.Struct, frozen=True):
    metadata: _Meta = _Meta()
    spec: _Spec = _Spec()
    status: _Status = _Status()


class _NamespaceItem(_Tagged, frozen=True, tag_field="kind", tag="Namespace"):
    pass


class _QuotaItem(_Tagged, frozen=True, tag_field="kind", tag="ResourceQuota"):
    pass


class _PodItem(_Tagged, frozen=True, tag_field="kind", tag="Pod"):
    pass


_TAGS: dict[type, str] = {_NamespaceItem: "Namespace", _QuotaItem: "ResourceQuota", _PodItem: "Pod"}


def _ours(annotations: dict[str, str], keys: Keys) -> dict[str, str]:
    prefix = keys.prefix + "/"
    return {k: v for k, v in annotations.items() if k.startswith(prefix)}


MAX_GPUS_PER_OBJECT = 1_000_000  # far above any node or pod; keeps every sum in range
_COUNT = re.compile(r"^\+?[0-9]{1,7}$")


def _quantity(value: str | int | float | None, what: str | Callable[[], str]) -> int:
    """A GPU count as Kubernetes writes one (an extended resource is a whole number: "8" or 8);
    absent is 0. Anything else ("inf", "1e400", "-8", 5,000 digits) is not a cluster the API
    server could have sent: refused, naming the object, rather than guessed at."""
    if value is None:
        return 0
    if type(value) is str and value.isdigit() and len(value) <= 7 and value.isascii():  # "8": nearly always
        gpus = int(value)
        if gpus <= MAX_GPUS_PER_OBJECT:
            return gpus
    if isinstance(value, bool):
        raise SnapshotError(f"{what if isinstance(what, str) else what()}: {value!r} is not a GPU count")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_GPUS_PER_OBJECT:
        return value
    if isinstance(value, str) and _COUNT.match(value.strip()) and int(value) <= MAX_GPUS_PER_OBJECT:
        return int(value)
    shown = repr(value) if len(str(value)) <= 40 else f"{str(value)[:20]!r}... ({len(str(value))} characters)"
    raise SnapshotError(f"{what if isinstance(what, str) else what()}: {shown} is not a GPU count")


def _refuse_duplicates(nodes: list[Node]) -> None:
    """Two nodes of one name would be handed to two teams at once: a file with them is refused."""
    counts = Counter(n.name for n in nodes)
    dups = sorted(name for name, n in counts.items() if n > 1)
    if dups:
        shown = ", ".join(f"{name} ({counts[name]} times)" for name in dups[:10])
        more = f" and {len(dups) - 10} more" if len(dups) > 10 else ""
        raise SnapshotError(f"duplicate node names: {shown}{more}")


def node_from(item: _Item, keys: Keys) -> Node:
    """A node from the general pass: its labels and annotations decoded from their bytes."""
    m = item.metadata
    spec, status = item.spec, item.status
    return _node(
        m.name,
        _node_labels(m, keys.node_labels),
        _node_annotations(m, keys),
        spec.unschedulable,
        spec.taints,
        status.allocatable.get(GPU_RESOURCE),
        status.conditions,
        keys,
    )


def _node(
    name: str,
    labels: Mapping[str, str],
    ann: dict[str, str],
    unschedulable: bool,
    taints: list[_Taint],
    gpus: Any,  # allocatable nvidia.com/gpu, as listed
    conditions: list[_Condition],
    keys: Keys,
) -> Node:
    # called once per node of the fleet, by both passes: plain loops, positional arguments and the
    # common case first (a GPU count as a short string, no annotations of ours), no per-node
    # generators, keyword unpacking or closures
    ready = False
    for c in conditions:
        if c.type == "Ready":
            ready = c.status == "True"
            break
    if type(gpus) is str and len(gpus) <= 6 and gpus.isdigit() and gpus.isascii():  # "8": below the bound
        gpus = int(gpus)
    else:
        gpus = _quantity(gpus, f"node {name}: allocatable {GPU_RESOURCE}")
    healthy_gpus = utilization = telemetry_at = drain_started = drain_deadline = drain_reason = None
    annotations = EMPTY
    if ann:
        report = ann.get(keys.telemetry)
        if report:
            healthy_gpus, utilization, telemetry_at = _telemetry(report)
        drain_started = timestamps.decode(ann.get(keys.drain_started))
        drain_deadline = timestamps.decode(ann.get(keys.drain_deadline))
        drain_reason = ann.get(keys.drain_reason)
        annotations = MappingProxyType(ann)
    return Node(
        name,
        labels,
        gpus,
        ready,
        unschedulable,
        _owner(labels.get(keys.consortium), taints, keys),
        labels.get(keys.node_state) or None,
        drain_started,
        drain_deadline,
        drain_reason,
        _taints(tuple(taints)) if taints else (),
        annotations,
        healthy_gpus,
        utilization,
        telemetry_at,
    )


class _Fast:
    """The one-pass decoders for one set of keys: a node's labels and annotations are structs of
    the keys planning reads, so the parser skips the other labels (most of them) without making a
    Python object of them, and a node is built with no second parse. Items are told apart by
    their `kind`, or by the list's (an API server's list items have none)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        labels = _wanted(keys.node_labels) if keys.node_labels is not None else None
        annotations = _wanted(_read_on_nodes(keys))
        meta = msgspec.defstruct(
            "NodeMeta",
            [
                ("name", str, ""),
                ("labels", labels or dict[str, str], msgspec.field(default_factory=labels or dict)),
                ("annotations", annotations, msgspec.field(default_factory=annotations)),
            ],
            frozen=True,
            gc=False,
        )
        self.item = msgspec.defstruct(
            "NodeItem",
            [
                ("metadata", meta, msgspec.field(default_factory=meta)),
                ("spec", _NodeSpec, _NodeSpec()),
                ("status", _NodeStatus, _NodeStatus()),
            ],
            frozen=True,
            gc=False,
            tag_field="kind",
            tag="Node",
        )
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self._some_labels = labels is not None
        self._no_annotations = annotations()  # most nodes: compared in C, nothing to pick out

    def decoder(self, list_kind: str) -> msgspec.json.Decoder[Any]:
        """A decoder of a `list_kind` list (its items of that kind), or of any list whose items
        say their kind ("" or "List": what kubectl prints)."""
        item_kind = _ITEM_KIND.get(list_kind, "")
        found = self._decoders.get(item_kind)
        if found is None:
            items = {"Node": self.item, **{t: c for c, t in _TAGS.items()}}
            item_type = items[item_kind] if item_kind else Union[tuple(items.values())]  # noqa: UP007
            found = self._decoders[item_kind] = msgspec.json.Decoder(
                msgspec.defstruct("TypedList", [("kind", str, ""), ("items", list[item_type], [])], frozen=True)  # type: ignore[valid-type]
            )
        return found

    def node(self, item: Any) -> Node:
        m = item.metadata
        labels = _shared_labels(m.labels) if self._some_labels else MappingProxyType(m.labels)
        ann = {} if m.annotations == self._no_annotations else _present(m.annotations)
        spec, status = item.spec, item.status
        return _node(
            m.name, labels, ann, spec.unschedulable, spec.taints, status.allocatable.gpus, status.conditions, self.keys
        )


@functools.cache
def _fast(keys: Keys) -> _Fast:
    return _Fast(keys)


_STRING_MAP = msgspec.json.Decoder(dict[str, str])


@functools.cache
def _wanted(wanted: frozenset[str]) -> type[msgspec.Struct]:
    """A struct of the `wanted` keys of a string map (the parser skips the rest without making a
    Python object of them); its fields' encoded names are the keys."""
    keys = sorted(wanted)
    fields = [(f"k{i}", str | None, None) for i in range(len(keys))]
    return msgspec.defstruct(
        "Labels", fields, rename={f"k{i}": key for i, key in enumerate(keys)}, frozen=True, gc=False
    )


@functools.cache
def _wanted_decoder(wanted: frozenset[str]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(_wanted(wanted))


def _decode_wanted(m: _Meta, field: str, wanted: frozenset[str]) -> msgspec.Struct:
    """The `wanted` keys of an item's labels or annotations, decoded from their bytes (general pass)."""
    try:
        found: msgspec.Struct = _wanted_decoder(wanted).decode(getattr(m, field))
    except msgspec.DecodeError as err:  # ValidationError included: a value that is not a string
        raise SnapshotError(f"not a Kubernetes List in JSON: {m.name or 'an item'}: metadata.{field}: {err}") from None
    return found


def _present(found: msgspec.Struct) -> dict[str, str]:
    """The keys a struct of wanted keys found, with their values."""
    values = msgspec.structs.astuple(found)
    return {k: v for k, v in zip(found.__struct_encode_fields__, values, strict=True) if v is not None}


def _node_labels(m: _Meta, wanted: frozenset[str] | None) -> Mapping[str, str]:
    """A node's labels, read-only (general pass)."""
    if wanted is None:
        return MappingProxyType(_strings(m, "labels"))
    return _shared_labels(_decode_wanted(m, "labels", wanted))


@functools.lru_cache(maxsize=65536)
def _shared_labels(found: msgspec.Struct) -> Mapping[str, str]:
    """When only the labels planning reads are kept, nodes of one pool, block, team and state
    carry the same few, and they share one mapping: a fleet's cache holds a handful of them
    instead of one per node (what is shared is immutable). Keyed by the struct itself: hashed in
    C, its type (the keys) and values alike."""
    return MappingProxyType(_present(found))


@functools.lru_cache(maxsize=4096)
def _taints(taints: tuple[_Taint, ...]) -> tuple[Taint, ...]:
    """A node's taints, shared by every node that carries the same ones (most carry one or two)."""
    return tuple(Taint(t.key, t.value, t.effect) for t in taints)


def _node_annotations(m: _Meta, keys: Keys) -> dict[str, str]:
    """The annotations gpu-scheduler reads on a node (its drain record and the agent's report)."""
    if m.annotations is _EMPTY_MAP:
        return {}
    return _present(_decode_wanted(m, "annotations", _read_on_nodes(keys)))


@functools.cache
def _read_on_nodes(keys: Keys) -> frozenset[str]:
    return frozenset((keys.drain_started, keys.drain_deadline, keys.drain_reason, keys.telemetry))


def _strings(m: _Meta, field: str) -> dict[str, str]:
    try:
        decoded: dict[str, str] = _STRING_MAP.decode(getattr(m, field))
    except msgspec.DecodeError as err:  # ValidationError included: a value that is not a string
        raise SnapshotError(f"not a Kubernetes List in JSON: {m.name or 'an item'}: metadata.{field}: {err}") from None
    return decoded


def _owner(label: str | None, taints: Iterable[_Taint], keys: Keys) -> str | None:
    """Who holds the node. The label and the NoSchedule taint are written together in one patch;
    while the taint is there it names the owner, whatever the label says (or whether the label is
    there at all): it is what keeps other teams' pods off the node, and a relabelled or unlabelled
    node must not change hands (the label is put back on the next reconcile and counted as
    drift). A label without a taint (a node labelled by hand, or by an older version) still counts."""
    key = keys.consortium
    for t in taints:
        if t.key == key and t.effect == "NoSchedule" and t.value:
            return t.value
    return label or None


def _telemetry(text: str) -> tuple[int | None, float | None, Any]:
    """The agent's report as (healthy GPUs, utilisation, when). A malformed report, or one saying
    NVML could not be read, is no telemetry (the node keeps its allocatable GPUs): a broken agent
    must not take GPUs away, and the device plugin already zeroes allocatable when the driver is
    really gone."""
    try:
        report = telemetry.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None, None, None
    if report.error:  # the agent could not read NVML: it knows nothing about the GPUs
        return None, None, None
    return report.healthy_gpus, report.utilization, report.timestamp


def gpu_pod_from(item: _Item) -> GpuPod | None:
    if item.status.phase in ("Succeeded", "Failed"):
        return None
    spec = item.spec
    what = f"pod {item.metadata.namespace}/{item.metadata.name}: {GPU_RESOURCE}"
    running = sum(_container_gpus(c, what) for c in spec.containers)
    init = max((_container_gpus(c, what) for c in spec.initContainers), default=0)
    gpus = max(running, init)  # Kubernetes' effective request
    if gpus <= 0:
        return None
    return GpuPod(item.metadata.namespace, item.metadata.name, spec.nodeName, gpus, item.status.phase or "Pending")


def _container_gpus(c: _Container, what: str) -> int:
    r = c.resources
    return _quantity(r.requests.get(GPU_RESOURCE, r.limits.get(GPU_RESOURCE)), what)
