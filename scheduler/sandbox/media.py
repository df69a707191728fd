"""Content negotiation: which of the forms a client listed in Accept the sandbox answers with.

Clients list forms in order of preference, e.g. kubectl get:
`application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`
and discovery: `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`.
Only JSON is served (no protobuf, no YAML); a request accepting nothing JSON gets 406.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.sandbox.errors import not_acceptable


@dataclass(frozen=True)
class MediaType:
    type: str
    params: dict[str, str]

    @property
    def json_compatible(self) -> bool:
        return self.type in ("application/json", "application/*", "*/*")

    def is_as(self, as_: str, group: str) -> bool:
        return self.params.get("as") == as_ and self.params.get("g") == group


def parse_accept(header: str | None) -> list[MediaType]:
    out = []
    for part in (header or "").split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        if params.get("q") == "0":
            continue
        out.append(MediaType(pieces[0].lower(), params))
    return out


@dataclass(frozen=True)
class Negotiated:
    form: str  # "object", "table", "metadata", "discovery"
    version: str = ""  # meta.k8s.io or apidiscovery.k8s.io version


OBJECT = Negotiated("object")


def negotiate(header: str | None, allow_table: bool = False, allow_discovery: bool = False) -> Negotiated:
    types = parse_accept(header)
    if not types:
        return OBJECT
    for mt in types:
        if not mt.json_compatible:
            continue
        as_ = mt.params.get("as")
        if as_ is None:
            return OBJECT
        version = mt.params.get("v", "")
        if allow_table and mt.is_as("Table", "meta.k8s.io") and version in ("v1", "v1beta1"):
            return Negotiated("table", version)
        if (
            allow_table
            and mt.params.get("g") == "meta.k8s.io"
            and version in ("v1", "v1beta1")
            and as_ in ("PartialObjectMetadata", "PartialObjectMetadataList")
        ):
            return Negotiated("metadata", version)
        if (
            allow_discovery
            and mt.is_as("APIGroupDiscoveryList", "apidiscovery.k8s.io")
            and version in ("v2", "v2beta1")
        ):
            return Negotiated("discovery", version)
    raise not_acceptable(header or "")
