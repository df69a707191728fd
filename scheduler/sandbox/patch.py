"""PATCH bodies by content type: RFC 6902 JSON patch (the `jsonpatch` library), RFC 7386 merge
patch, and Kubernetes strategic merge patch (strategic.py). Errors are the apiserver's: a body
that is not a patch is 400 BadRequest, a JSON patch that cannot be applied (a failed `test`, a
missing path) is 422.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer
import msgspec

from scheduler.sandbox import strategic
from scheduler.sandbox.errors import bad_request, unprocessable, unsupported_media_type

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


def apply(content_type: str, original: dict[str, Any], body: bytes, kind: str) -> dict[str, Any]:
    """The object `original` patched with `body`; `original` is not modified."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_TYPES:
        raise unsupported_media_type(content_type)
    try:
        patch = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError as e:
        raise bad_request(f"error decoding patch: {e}") from None
    if media == JSON_PATCH:
        result = _json_patch(original, patch)
    elif media == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise bad_request("merge patch must be a JSON object")
        result = merge_patch(original, patch)
    else:
        result = strategic.apply(original, patch, kind)
    if not isinstance(result, dict):
        raise bad_request("the patched object is not a JSON object")
    return result


def _json_patch(original: dict[str, Any], patch: Any) -> Any:
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise bad_request("json patch must be a list of operations")
    try:
        ops = jsonpatch.JsonPatch(patch)
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException) as e:
        raise bad_request(f"invalid json patch: {e}") from None
    try:
        return ops.apply(original, in_place=False)
    except jsonpatch.InvalidJsonPatch as e:
        raise bad_request(f"invalid json patch: {e}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise unprocessable(f"the server rejected our request due to an error in our request: {e}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
