"""create, update (PUT), patch, delete, deletecollection, and pods/eviction.

Each write is one critical section on the store lock: read the current object, check the
client's resourceVersion (409 Conflict when stale), apply the kind's strategy and validation,
then the validating admission policies (policies.py), store. An update or patch that changes
nothing is not written (the resourceVersion stays and no watch event is sent), as in
kube-apiserver. Objects with finalizers are marked with a deletionTimestamp and go once an update
empties `metadata.finalizers`. Deleting a namespace deletes what is in it at once (no namespace
controller runs here).
"""

from __future__ import annotations

from typing import Any

from scheduler.sandbox import admission, errors, policies, render
from scheduler.sandbox import patch as patching
from scheduler.sandbox.admission import timestamp, utc_now
from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.media import negotiate
from scheduler.sandbox.protocol import Context, Request, Response, json_response
from scheduler.sandbox.reads import include_object, select
from scheduler.sandbox.resources import ALL, NAMESPACES, PODS, VALIDATING_ADMISSION_POLICY_BINDINGS, ResourceType
from scheduler.sandbox.routing import Target
from scheduler.sandbox.store import Stored, body_of, stamp

Obj = dict[str, Any]


def _respond(ctx: Context, req: Request, code: int, rtype: ResourceType, stored: Stored) -> Response:
    how = negotiate(req.header("Accept"), allow_table=True)
    return Response(code, render.one(rtype, stored, how, utc_now(ctx.clock), include_object(req)))


def _to_storage(rtype: ResourceType, obj: Obj) -> Obj:
    return rtype.to_storage(obj) if rtype.to_storage else obj


def _dry(obj: Obj, rv: int) -> Stored:
    obj = stamp(obj, rv)
    return Stored(obj, body_of(obj), rv)


def _key(target: Target, name: str | None = None) -> tuple[str, str]:
    return target.namespace or "", name if name is not None else target.name or ""


def _parse_rv(rtype: ResourceType, name: str, text: Any) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(text)
    except (TypeError, ValueError):
        raise errors.invalid(
            rtype.group,
            rtype.kind,
            name,
            [("metadata.resourceVersion", "FieldValueInvalid", f'Invalid value: "{text}": must be an integer')],
        ) from None


def _served_form(rtype: ResourceType, obj: Obj | None) -> Obj | None:
    """An object as the request's API version has it (what admission policies see)."""
    if obj is None:
        return None
    full = {"kind": rtype.kind, "apiVersion": rtype.stored_api_version, **obj}
    return rtype.from_storage(full) if rtype.from_storage else {**full, "apiVersion": rtype.api_version}


_OPTIONS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def _admit(
    ctx: Context,
    req: Request,
    operation: str,
    rtype: ResourceType,
    sub: str | None,
    name: str,
    obj: Obj | None,
    old: Obj | None,
    options: Obj | None = None,
    kind: tuple[str, str, str] | None = None,
) -> None:
    """Validating admission policies for one write (caller holds the store lock)."""
    if not ctx.store.count(VALIDATING_ADMISSION_POLICY_BINDINGS.store_key):
        return
    if rtype is NAMESPACES:
        namespace = name if operation != "CREATE" else ""
    else:
        namespace = ((obj if obj is not None else old) or {}).get("metadata", {}).get("namespace", "")
    attrs = policies.Attributes(
        operation,
        rtype,
        sub or "",
        name,
        namespace,
        obj if kind else _served_form(rtype, obj),
        _served_form(rtype, old),
        req.user,
        req.dry_run,
        {"kind": _OPTIONS[operation], "apiVersion": "meta.k8s.io/v1", **(options or {})},
        kind,
    )
    try:
        policies.admit(ctx.store, attrs)
    finally:
        req.warnings.extend(attrs.warnings)


def _check_namespace_exists(ctx: Context, rtype: ResourceType, namespace: str) -> None:
    if rtype.namespaced and ctx.store.get(NAMESPACES.store_key, ("", namespace)) is None:
        raise errors.not_found("", "namespaces", namespace)


def create(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    body = admission.check_type(rtype, req.json_body())
    obj = admission.prepare_create(rtype, _to_storage(rtype, body), target.namespace, ctx.clock, ctx.rng)
    admission.validate(rtype, obj, creating=True)
    generated = not (body.get("metadata") or {}).get("name")
    with ctx.store.lock:
        _check_namespace_exists(ctx, rtype, obj["metadata"].get("namespace", ""))
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        tries = 0
        while ctx.store.get(rtype.store_key, key) is not None:
            tries += 1
            if not generated or tries > 8:
                raise errors.already_exists(rtype.group, rtype.plural, key[1])
            obj["metadata"]["name"] = admission.generate_name(obj["metadata"]["generateName"], ctx.rng)
            key = (key[0], obj["metadata"]["name"])
        _admit(ctx, req, "CREATE", rtype, None, "" if generated else key[1], obj, None)
        stored = _dry(obj, ctx.store.resource_version) if req.dry_run else ctx.store.put(rtype.store_key, obj)
    return _respond(ctx, req, 201, rtype, stored)


def _write_update(ctx: Context, rtype: ResourceType, cur: Stored, new: Obj, sub: str | None, req: Request) -> Stored:
    """Store `new` (client form converted to storage) over `cur`: strategy, validation,
    admission policies, no-op detection, finalizers. Caller holds the store lock."""
    name = cur.obj["metadata"]["name"]
    want_rv = _parse_rv(rtype, name, (new.get("metadata") or {}).get("resourceVersion"))
    if want_rv is not None and want_rv != cur.rv:
        raise errors.conflict(rtype.group, rtype.plural, name)
    obj = admission.prepare_update(rtype, cur.obj, new, sub)
    admission.validate(rtype, obj, creating=False)
    obj = stamp(obj, cur.rv)
    _admit(ctx, req, "UPDATE", rtype, sub, name, obj, cur.obj)  # even a no-op update is admitted
    if obj == cur.obj:
        return cur
    if req.dry_run:
        return _dry(obj, cur.rv)
    meta = obj["metadata"]
    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
        ctx.store.remove(rtype.store_key, cur.key)
        return _dry(obj, cur.rv)
    return ctx.store.put(rtype.store_key, obj)


def update(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    body = admission.check_type(rtype, req.json_body())
    meta = body.get("metadata") or {}
    if meta.get("name") != target.name:
        raise errors.bad_request(
            f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({target.name})"
        )
    if rtype.namespaced and meta.get("namespace") and meta["namespace"] != target.namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    new = _to_storage(rtype, body)
    with ctx.store.lock:
        cur = ctx.store.get(rtype.store_key, _key(target))
        if cur is None:
            if rtype.create_on_update and target.subresource is None:
                return create(ctx, target, req)
            raise errors.not_found(rtype.group, rtype.plural, target.name or "")
        stored = _write_update(ctx, rtype, cur, new, target.subresource, req)
    return _respond(ctx, req, 200, rtype, stored)


def patch(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    content_type = req.header("Content-Type")
    with ctx.store.lock:
        cur = ctx.store.get(rtype.store_key, _key(target))
        if cur is None:
            raise errors.not_found(rtype.group, rtype.plural, target.name or "")
        original = render.served(rtype, cur)
        patched = patching.apply(content_type, original, req.body, rtype.kind)
        admission.check_type(rtype, patched)
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise errors.bad_request("the patched object has no metadata")
        if meta.get("name") != target.name or (rtype.namespaced and meta.get("namespace") != target.namespace):
            raise errors.invalid(
                rtype.group,
                rtype.kind,
                target.name or "",
                [("metadata.name", "FieldValueInvalid", f'Invalid value: "{meta.get("name")}": field is immutable')],
            )
        stored = _write_update(ctx, rtype, cur, _to_storage(rtype, patched), target.subresource, req)
    return _respond(ctx, req, 200, rtype, stored)


def _delete_options(req: Request) -> Obj:
    if not req.body:
        return {}
    options = req.json_body()
    if not isinstance(options, dict):
        raise errors.bad_request("DeleteOptions must be a JSON object")
    return options


def _check_preconditions(rtype: ResourceType, cur: Stored, options: Obj) -> None:
    pre = options.get("preconditions") or {}
    meta = cur.obj["metadata"]
    name = meta["name"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict(
            rtype.group,
            rtype.plural,
            name,
            f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
        )
    if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(cur.rv):
        raise errors.conflict(
            rtype.group,
            rtype.plural,
            name,
            f"Precondition failed: ResourceVersion in precondition: "
            f"{pre['resourceVersion']}, ResourceVersion in object meta: {cur.rv}",
        )


def _delete_one(
    ctx: Context, rtype: ResourceType, cur: Stored, options: Obj, dry_run: bool, req: Request | None
) -> tuple[Stored, bool]:
    """(the object as answered, whether it is gone). Caller holds the store lock. `req`: the
    request to admit the deletion for (None: a deletion admission does not see, as an eviction's)."""
    _check_preconditions(rtype, cur, options)
    meta = cur.obj["metadata"]
    if req is not None:
        _admit(ctx, req, "DELETE", rtype, None, meta["name"], None, cur.obj, options)
    if rtype is NAMESPACES:
        obj = stamp(cur.obj, cur.rv)
        obj["metadata"] = {**obj["metadata"], "deletionTimestamp": timestamp(ctx.clock)}
        obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
        if not dry_run:
            _delete_namespace_contents(ctx, meta["name"])
            ctx.store.remove(rtype.store_key, cur.key)
        return _dry(obj, cur.rv), True
    if meta.get("finalizers"):
        if meta.get("deletionTimestamp") or dry_run:
            return cur, False
        obj = stamp(cur.obj, cur.rv)
        obj["metadata"] = {
            **obj["metadata"],
            "deletionTimestamp": timestamp(ctx.clock),
            "deletionGracePeriodSeconds": 0,
        }
        return ctx.store.put(rtype.store_key, obj), False
    if not dry_run:
        ctx.store.remove(rtype.store_key, cur.key)
    return cur, True


def _delete_namespace_contents(ctx: Context, namespace: str) -> None:
    for storage in sorted({r.store_key for r in ALL if r.namespaced}):
        _, items = ctx.store.list(storage, namespace)
        for item in items:
            ctx.store.remove(storage, item.key)


def delete(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    options = _delete_options(req)
    with ctx.store.lock:
        cur = ctx.store.get(rtype.store_key, _key(target))
        if cur is None:
            raise errors.not_found(rtype.group, rtype.plural, target.name or "")
        answered, gone = _delete_one(ctx, rtype, cur, options, req.dry_run, req)
    if gone and not rtype.delete_returns_object and rtype is not NAMESPACES:
        return json_response(200, render.status_success(rtype, answered))
    return _respond(ctx, req, 200, rtype, answered)


def deletecollection(ctx: Context, target: Target, req: Request) -> Response:
    rtype = target.rtype
    options = _delete_options(req)
    deleted: list[Stored] = []
    with ctx.store.lock:
        rv, items = select(ctx, target, req)
        for cur in items:
            answered, _ = _delete_one(ctx, rtype, cur, options, req.dry_run, req)
            deleted.append(answered)
        rv = ctx.store.resource_version
    return Response(200, render.list_bytes(rtype, deleted, render.list_meta(rv, None, None)))


def evict(ctx: Context, target: Target, req: Request) -> Response:
    """POST pods/NAME/eviction: the pod is deleted (no PodDisruptionBudgets are served here)."""
    body = req.json_body()
    if (
        not isinstance(body, dict)
        or body.get("kind") not in (None, "", "Eviction")
        or body.get("apiVersion") not in (None, "", "policy/v1", "policy/v1beta1", "v1")
    ):
        raise errors.bad_request("the body of an eviction must be a policy/v1 Eviction")
    name = (body.get("metadata") or {}).get("name")
    if name and name != target.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    with ctx.store.lock:
        cur = ctx.store.get(PODS.store_key, _key(target))
        if cur is None:
            raise errors.not_found("", "pods", target.name or "")
        dry_run = req.dry_run or "All" in (options.get("dryRun") or [])
        eviction = {**body, "kind": "Eviction", "apiVersion": "policy/v1"}
        eviction["metadata"] = {**(body.get("metadata") or {}), "name": target.name, "namespace": target.namespace}
        _admit(
            ctx, req, "CREATE", PODS, "eviction", target.name or "", eviction, None, kind=("policy", "v1", "Eviction")
        )
        _delete_one(ctx, PODS, cur, options, dry_run, None)
    return json_response(201, render.status_success(PODS, None, 201))


def too_many_requests_for(resource: str, retry_after: int) -> ApiError:
    if resource == "pods/eviction":
        return errors.too_many_requests(
            retry_after,
            "Cannot evict pod as it would violate the pod's disruption budget.",
            [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget sandbox-fault needs 1 healthy pods and has 1 currently",
                }
            ],
        )
    return errors.too_many_requests(retry_after)
