"""What a failed API request means for the caller, and how it reads in a log: one line."""

import json

import urllib3
from kubernetes.client.exceptions import ApiException

from scheduler.actuator.retry import AlreadyExists, Conflict, NotFound, Permanent, Transient, classify, one_line


class Response:
    """What the client wraps in an ApiException: status, reason, headers and body."""

    def __init__(self, status: int, reason: str, body: dict | None = None, headers: dict | None = None):
        self.status, self.reason = status, reason
        self.data = json.dumps(body).encode() if body is not None else b""
        self.headers = headers or {}

    def getheaders(self):
        return self.headers


def api_error(status: int, reason: str, message: str = "", headers: dict | None = None) -> ApiException:
    body = {"kind": "Status", "status": "Failure", "reason": reason, "message": message, "code": status}
    return ApiException(http_resp=Response(status, reason, body if message else None,
                                           {"Content-Type": "application/json", "Audit-Id": "x1", **(headers or {})}))


def test_each_status_says_what_to_do_next():
    assert isinstance(classify(api_error(409, "Conflict", "the object has been modified")), Conflict)
    assert isinstance(classify(api_error(409, "AlreadyExists", "exists"), "create"), AlreadyExists)
    assert isinstance(classify(api_error(404, "NotFound", 'namespaces "x" not found')), NotFound)
    assert isinstance(classify(api_error(422, "Invalid", "bad label")), Permanent)
    throttled = classify(api_error(429, "TooManyRequests", "slow down", {"Retry-After": "3"}))
    assert isinstance(throttled, Transient) and throttled.retry_after == 3.0
    assert isinstance(classify(urllib3.exceptions.ProtocolError("connection reset")), Transient)
    assert classify(KeyError("a bug")) is None  # not an API failure: the caller re-raises


def test_an_api_error_is_one_log_line_without_headers_or_body():
    err = api_error(404, "NotFound", 'namespaces "scheduler-system" not found')
    assert "HTTP response headers" in str(err)  # what the client would print
    line = one_line(err)
    assert line == '404: NotFound: namespaces "scheduler-system" not found'
    assert "\n" not in line and "Audit-Id" not in line


def test_a_broken_connection_and_a_bug_are_one_line_too():
    assert one_line(urllib3.exceptions.ProtocolError("Connection aborted.\n reset by peer")) == \
        "ProtocolError: Connection aborted. reset by peer"
    assert one_line(ValueError("the Lease has no spec")) == "ValueError: the Lease has no spec"
