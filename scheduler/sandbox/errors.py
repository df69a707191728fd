"""API errors as the real apiserver writes them: a metav1 Status with code, reason and details.

Every failure the sandbox answers goes through `ApiError`, so the status line, the body and the
headers (Retry-After) always agree. Messages copy kube-apiserver's wording, since clients and
people match on them (for example client-go's `IsConflict`, or "not found" in scripts).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request that failed; `status()` is the metav1 Status body the client receives."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(group: str, resource: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(group, resource)} "{name}" not found', _details(group, resource, name)
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{_qualified(group, resource)} "{name}" already exists', _details(group, resource, name)
    )


def conflict(
    group: str,
    resource: str,
    name: str,
    why: str = "the object has been modified; please apply your changes to the latest version and try again",
) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        _details(group, resource, name),
    )


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, reason, message) with reason FieldValueInvalid, FieldValueRequired..."""
    text = "; ".join(f"{field}: {message}" for field, _, message in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{field}: {message}" for field, _, message in causes) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    details = _details(group, kind, name)
    details["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {text}', details)


def unprocessable(message: str) -> ApiError:
    """A 422 without field causes (a JSON patch that cannot be applied)."""
    return ApiError(422, "Invalid", message, {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types "
        f"include: application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json (got {content_type!r})",
        {},
    )


def not_acceptable(accept: str) -> ApiError:
    return ApiError(
        406, "NotAcceptable", f"only the following media types are accepted: application/json (got {accept!r})", {}
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def too_many_requests(
    retry_after: int,
    message: str = "Too many requests, please try again later.",
    causes: list[dict[str, str]] | None = None,
) -> ApiError:
    details: dict[str, Any] = {"retryAfterSeconds": retry_after}
    if causes:
        details["causes"] = causes
    return ApiError(429, "TooManyRequests", message, details, {"Retry-After": str(retry_after)})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_old(requested: int, oldest: int) -> ApiError:
    return expired(f"too old resource version: {requested} ({oldest})")


def forbidden(group: str, resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        403, "Forbidden", f'{_qualified(group, resource)} "{name}" is forbidden: {why}', _details(group, resource, name)
    )
