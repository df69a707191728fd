"""One request in, one response out: authentication, routing, the verb, injected faults,
discovery, and the counters and request log tests read. Independent of the HTTP transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scheduler.sandbox import discovery, errors, openapi, reads, watch, writes
from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.faults import Fault
from scheduler.sandbox.identity import UserInfo, authenticate
from scheduler.sandbox.media import negotiate
from scheduler.sandbox.protocol import (
    Context,
    Request,
    RequestRecord,
    Response,
    error_response,
    json_response,
)
from scheduler.sandbox.routing import Discovery, Target, route

Handler = Callable[[Context, Target, Request], Response]

_WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
_HANDLERS: dict[str, Handler] = {
    "get": reads.get,
    "list": reads.list_,
    "watch": watch.watch,
    "create": writes.create,
    "update": writes.update,
    "patch": writes.patch,
    "delete": writes.delete,
    "deletecollection": writes.deletecollection,
}


def verb_of(method: str, target: Target, req: Request) -> str:
    """The apiserver's verb for this request, or 405 MethodNotAllowed."""
    rtype, sub = target.rtype, target.subresource
    if target.legacy_watch:
        if method != "GET":
            raise errors.method_not_allowed()
        return "watch"
    if sub is not None:
        allowed = rtype.subresource(sub).verbs  # type: ignore[union-attr]
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create"}.get(method, "")
        if verb not in allowed:
            raise errors.method_not_allowed()
        return verb
    if target.name is None:
        verb = {"GET": "watch" if req.flag("watch") else "list", "POST": "create", "DELETE": "deletecollection"}.get(
            method, ""
        )
    else:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "")
    if verb not in rtype.verbs:
        raise errors.method_not_allowed()
    if rtype.namespaced and target.namespace is None and verb not in ("list", "watch"):
        raise errors.path_not_found()  # /api/v1/pods serves only list and watch
    return verb


def _warning_header(warnings: list[str]) -> str:
    """RFC 7234 warn-values with code 299, as kube-apiserver writes admission warnings."""
    quoted = ('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in warnings)
    return ", ".join(f"299 - {q}" for q in quoted)


class Api:
    def __init__(
        self,
        ctx: Context,
        token: str | None,
        aggregated_discovery: bool,
        address: Callable[[], str],
        tokens: Mapping[str, UserInfo] | None = None,
    ) -> None:
        self.ctx = ctx
        self.token = token
        self.tokens: Mapping[str, UserInfo] = tokens if tokens is not None else {}
        self.aggregated_discovery = aggregated_discovery
        self.address = address

    def handle(self, req: Request) -> Response:
        verb = resource = ""
        try:
            req.user = authenticate(req.headers, self.token, self.tokens)
            where = route(req.path)
            if isinstance(where, Discovery):
                resp = self._discovery(where, req)
            else:
                verb = verb_of(req.method, where, req)
                resource = where.rtype.plural + (f"/{where.subresource}" if where.subresource else "")
                resp = self._resource(verb, resource, where, req)
        except ApiError as e:
            resp = error_response(e)
        if req.warnings:
            resp.headers["Warning"] = _warning_header(req.warnings)
        self.ctx.log.append(
            RequestRecord(
                req.method,
                req.path,
                "&".join(f"{k}={v}" for k, v in req.query.items()),
                req.header("Accept"),
                req.header("Content-Type"),
                resp.status,
                verb,
                resource,
            )
        )
        return resp

    def _resource(self, verb: str, resource: str, target: Target, req: Request) -> Response:
        ctx = self.ctx
        ctx.count(ctx.requests, verb, resource)
        fault = ctx.faults.pick(verb, resource)
        expire = False
        if fault is not None:
            if fault.delay:
                ctx.stopping.wait(fault.delay)
            if fault.status == 410 and verb == "watch":
                expire = True
            elif fault.status is not None:
                raise self._fault_error(fault, verb, resource, target)
        if verb == "watch":
            return watch.watch(ctx, target, req, expire=expire)
        if target.subresource == "eviction":
            resp = writes.evict(ctx, target, req)
        else:
            resp = _HANDLERS[verb](ctx, target, req)
        if verb in _WRITE_VERBS and not req.dry_run:
            ctx.count(ctx.writes, verb, resource)
        return resp

    @staticmethod
    def _fault_error(fault: Fault, verb: str, resource: str, target: Target) -> ApiError:
        rtype, name = target.rtype, target.name or ""
        if fault.status == 409:
            if verb == "create":
                return errors.already_exists(rtype.group, rtype.plural, name or "injected")
            return errors.conflict(rtype.group, rtype.plural, name)
        if fault.status == 410:
            return errors.expired(
                "The provided continue parameter is too old to display a "
                "consistent list result. You can start a new list without the "
                "continue parameter."
            )
        if fault.status == 429:
            return writes.too_many_requests_for(resource, fault.retry_after)
        return errors.internal(f"injected fault on {verb} {resource}")

    def _discovery(self, where: Discovery, req: Request) -> Response:
        if req.method != "GET":
            raise errors.method_not_allowed()
        if where.what == "health":
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if where.what == "version":
            return json_response(200, discovery.version())
        if where.what == "openapi":
            raise errors.path_not_found()
        if where.what == "openapi-v3":
            doc = openapi.document(where.group, where.version) if where.version else openapi.index()
            if doc is None:
                raise errors.path_not_found()
            return json_response(200, doc)
        if where.what in ("api", "apis"):
            how = negotiate(req.header("Accept"), allow_discovery=self.aggregated_discovery)
            if how.form == "discovery":
                return json_response(
                    200,
                    discovery.aggregated(where.what == "api", how.version),
                    discovery.AGGREGATED_MEDIA.format(version=how.version),
                )
            if where.what == "api":
                return json_response(200, discovery.api_versions(self.address()))
            return json_response(200, discovery.api_group_list())
        if where.what == "group":
            doc = discovery.api_group(where.group)
        else:
            doc = discovery.api_resource_list(where.group, where.version)
        if doc is None:
            raise errors.path_not_found()
        return json_response(200, doc)
