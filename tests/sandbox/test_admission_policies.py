"""ValidatingAdmissionPolicies in the sandbox, as kube-apiserver evaluates them: what a policy
matches (matchConstraints, the binding's matchResources, namespace and object selectors,
matchConditions), lazy variables, messages and reasons, failure policies, validation actions,
what is refused when a policy is written (an expression that does not compile, a function the
sandbox does not implement), and who makes a request (tokens, impersonation).

Requests go over HTTP (the official client, raw requests, the real kubectl) to a started sandbox.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler.sandbox import SandboxServer, UserInfo
from scheduler.sandbox.expressions import ENGINE_FUNCTIONS, Activation, CompileError, compile_expression

from .conftest import api_client_for, namespace, node, pod

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


# -- helpers --------------------------------------------------------------------------------------
def request(server: SandboxServer, method: str, path: str, body: Any = None,
            headers: list[tuple[str, str]] | dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
    """One HTTP request whose headers may repeat: (status, headers, decoded JSON body)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.putrequest(method, path)
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if data is not None and not any(k.lower() == "content-type" for k, _ in items):
            items.append(("Content-Type", "application/json"))
        for key, value in items:
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(data or b"")))
        conn.endheaders(data)
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, resp.headers, json.loads(text) if text else None
    finally:
        conn.close()


def policy(name: str, *validations: dict[str, Any], rules: list[dict[str, Any]] | None = None,
           **spec: Any) -> dict[str, Any]:
    match = spec.pop("matchConstraints", {})
    match.setdefault("resourceRules", rules or [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}])
    body: dict[str, Any] = {"matchConstraints": match, **spec}
    if validations:
        body["validations"] = list(validations)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name}, "spec": body}


def binding(name: str, policy_name: str | None = None, actions: tuple[str, ...] = ("Deny",),
            **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": policy_name or name, "validationActions": list(actions), **spec}}


def install(server: SandboxServer, pol: dict[str, Any], *bindings: dict[str, Any]) -> None:
    status, _, body = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicies", pol)
    assert status == 201, body
    for b in bindings or (binding(pol["metadata"]["name"]),):
        status, _, body = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicybindings", b)
        assert status == 201, body


def create_pod(server: SandboxServer, p: dict[str, Any], headers: Any = None) -> tuple[int, Any]:
    status, _, body = request(server, "POST", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods", p, headers)
    return status, body


def denial(body: dict[str, Any]) -> str:
    return body["details"]["causes"][0]["message"].split(" denied request: ", 1)[1]


NO_NODE_NAME = {"expression": "!has(object.spec.nodeName)", "message": "pods may not name their node"}


# -- how a denial is answered ---------------------------------------------------------------------
def test_a_denial_is_answered_as_kube_apiserver_answers_it(server):
    install(server, policy("no-node-name", {"expression": "!has(object.spec.nodeName)"}), binding("no-node-name-b", "no-node-name"))

    status, body = create_pod(server, pod("train-0", node_name="b200-0001"))

    # the default reason is Invalid (422); admission.NewForbidden's message; the text as the one cause
    cause = ("ValidatingAdmissionPolicy 'no-node-name' with binding 'no-node-name-b' denied request: "
             "failed expression: !has(object.spec.nodeName)")
    assert status == 422
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f'pods "train-0" is forbidden: {cause}', "reason": "Invalid",
                    "details": {"name": "train-0", "kind": "pods", "causes": [{"message": cause}]}, "code": 422}
    assert server.get("pods", "train-0", "default") is None
    assert create_pod(server, pod("train-1"))[0] == 201


@pytest.mark.parametrize("reason, code", [("Forbidden", 403), ("Unauthorized", 401), ("Invalid", 422),
                                          ("RequestEntityTooLarge", 413)])
def test_the_reason_of_a_validation_gives_the_status_code(server, reason, code):
    install(server, policy("p", {**NO_NODE_NAME, "reason": reason}))
    status, body = create_pod(server, pod("x", node_name="n1"))
    assert (status, body["reason"], body["code"]) == (code, reason, code)
    assert denial(body) == "pods may not name their node"


@pytest.mark.parametrize("validation, message", [
    ({"messageExpression": "'node ' + object.spec.nodeName + ' is not yours'", "message": "static"},
     "node n1 is not yours"),
    ({"messageExpression": "object.spec.missing", "message": "static"}, "static"),  # an error: the message
    ({"messageExpression": "'  '", "message": "static"}, "static"),  # blank
    ({"messageExpression": "'two\\nlines'", "message": "static"}, "static"),  # a line break
    ({"messageExpression": "'  padded  '"}, "padded"),
    ({}, "failed expression: !has(object.spec.nodeName)"),
])
def test_message_expression_then_message_then_the_expression(server, validation, message):
    install(server, policy("p", {"expression": " !has(object.spec.nodeName) ", **validation}))
    assert denial(create_pod(server, pod("x", node_name="n1"))[1]) == message


def test_the_first_failing_validation_is_reported(server):
    install(server, policy("p", {"expression": "true", "message": "never"},
                           {"expression": "object.metadata.name != 'x'", "message": "first"},
                           {"expression": "false", "message": "second"}))
    assert denial(create_pod(server, pod("x"))[1]) == "first"


def test_kubectl_shows_the_denial(server, kubectl, tmp_path):
    install(server, policy("p", {**NO_NODE_NAME, "reason": "Forbidden"}))
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
                          input=json.dumps(pod("x", node_name="n1")), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "x" is forbidden: '
        "ValidatingAdmissionPolicy 'p' with binding 'p' denied request: pods may not name their node")


# -- what a policy matches ------------------------------------------------------------------------
NODE_RULE = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["nodes"]}
FROZEN_LABEL = {"expression": "!has(object.metadata.labels) || !('frozen' in object.metadata.labels)",
                "message": "frozen"}


def test_operations_resources_and_subresources_match_exactly(server, core):
    install(server, policy("p", FROZEN_LABEL, rules=[NODE_RULE]))
    server.put(node("n1"))
    with pytest.raises(ApiException) as refused:
        core.patch_node("n1", {"metadata": {"labels": {"frozen": "yes"}}})
    assert refused.value.status == 422
    core.create_node(node("n2", labels={"frozen": "yes"}))  # CREATE is not in the rule
    core.patch_node_status("n1", {"metadata": {"labels": {"frozen": "yes"}}})  # nodes/status is not "nodes"
    assert server.get("nodes", "n1")["metadata"]["labels"] == {"frozen": "yes"}


def test_subresource_rules_and_wildcards(server, core):
    install(server, policy("status", FROZEN_LABEL, rules=[{**NODE_RULE, "resources": ["nodes/status"]}]))
    server.put(node("n1"))
    server.put(node("n2"))
    core.patch_node("n1", {"metadata": {"labels": {"frozen": "yes"}}})
    with pytest.raises(ApiException):
        core.patch_node_status("n2", {"metadata": {"labels": {"frozen": "yes"}}})
    # "nodes/*" is the resource and every subresource (kube-apiserver's rules matcher: "*" == "")
    install(server, policy("all", FROZEN_LABEL, rules=[{**NODE_RULE, "resources": ["nodes/*"]}]))
    with pytest.raises(ApiException):
        core.patch_node("n2", {"metadata": {"labels": {"frozen": "yes"}}})


def test_resource_names_exclude_rules_and_scope(server, core):
    named = {**NODE_RULE, "resourceNames": ["n1"]}
    install(server, policy("named", FROZEN_LABEL, rules=[named]))
    server.put(node("n1"))
    server.put(node("n2"))
    with pytest.raises(ApiException):
        core.patch_node("n1", {"metadata": {"labels": {"frozen": "yes"}}})
    core.patch_node("n2", {"metadata": {"labels": {"frozen": "yes"}}})

    everything = {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"],
                  "scope": "Namespaced"}
    install(server, policy("namespaced", {"expression": "false", "message": "namespaced"}, rules=[everything],
                           matchConstraints={"excludeResourceRules": [
                               {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"],
                                "resources": ["events"]}]}))
    status, body = create_pod(server, pod("x"))
    assert denial(body) == "namespaced"
    core.create_namespace(namespace("free-for-all"))  # a Namespace is cluster-scoped
    core.create_namespaced_event("default", {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod"}})


def test_namespace_selectors_of_policy_and_binding(server, core):
    install(server, policy("p", NO_NODE_NAME, rules=[
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods", "nodes"]}]),
            binding("p", matchResources={"namespaceSelector": {
                "matchExpressions": [{"key": "team", "operator": "Exists"}]}}))
    core.create_namespace(namespace("lg-exaone", {"team": "lg"}))
    core.create_namespace(namespace("sandbox"))
    assert create_pod(server, pod("x", "lg-exaone", node_name="n1"))[0] == 422
    assert create_pod(server, pod("x", "sandbox", node_name="n1"))[0] == 201

    # a cluster-scoped object always matches a namespace selector
    install(server, policy("nodes", {"expression": "object.metadata.name != 'n9'", "message": "no n9"}, rules=[
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["nodes"]}],
        matchConstraints={"namespaceSelector": {"matchLabels": {"team": "lg"}}}))
    with pytest.raises(ApiException):
        core.create_node(node("n9"))


def test_a_namespace_is_matched_by_its_own_new_labels(server, core):
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"]}
    install(server, policy("p", {"expression": "false", "message": "locked"}, rules=[rule],
                           matchConstraints={"namespaceSelector": {"matchLabels": {"locked": "yes"}}}))
    core.create_namespace(namespace("a"))
    with pytest.raises(ApiException) as refused:
        core.patch_namespace("a", {"metadata": {"labels": {"locked": "yes"}}})
    assert denial(json.loads(refused.value.body)) == "locked"
    core.patch_namespace("a", {"metadata": {"labels": {"other": "x"}}})


def test_object_selector_matches_the_new_or_the_old_object(server, core):
    install(server, policy("p", {"expression": "false", "message": "protected"}, rules=[NODE_RULE],
                           matchConstraints={"objectSelector": {"matchLabels": {"protected": "yes"}}}))
    server.put(node("n1", labels={"protected": "yes"}))
    server.put(node("n2"))
    with pytest.raises(ApiException):  # removing the label: the old object matches
        core.patch_node("n1", {"metadata": {"labels": {"protected": None}}})
    with pytest.raises(ApiException):  # adding it: the new object matches
        core.patch_node("n2", {"metadata": {"labels": {"protected": "yes"}}})
    core.patch_node("n2", {"metadata": {"labels": {"other": "x"}}})


def test_match_conditions_skip_the_policy_when_one_is_false(server, core):
    install(server, policy("p", {"expression": "false", "message": "denied"}, rules=[NODE_RULE],
                           matchConditions=[{"name": "only-n1", "expression": "object.metadata.name == 'n1'"},
                                            {"name": "errs-for-n3", "expression": "object.metadata.name != 'n3' "
                                                                                  "|| object.spec.missing"}]))
    for n in ("n1", "n2", "n3"):
        server.put(node(n))
    with pytest.raises(ApiException):
        core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    core.patch_node("n2", {"metadata": {"labels": {"a": "b"}}})
    core.patch_node("n3", {"metadata": {"labels": {"a": "b"}}})  # a false condition wins over an error


def test_a_binding_without_its_policy_does_nothing(server):
    status, _, _ = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicybindings", binding("orphan", "gone"))
    assert status == 201
    assert create_pod(server, pod("x", node_name="n1"))[0] == 201


def test_policies_and_bindings_themselves_are_exempt(server):
    everything = {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}
    install(server, policy("deny-all", {"expression": "false"}, rules=[everything]))
    status, _, body = request(server, "DELETE", f"{ADMISSION}/validatingadmissionpolicybindings/deny-all")
    assert status == 200, body
    assert create_pod(server, pod("x"))[0] == 201


# -- what an expression sees ---------------------------------------------------------------------
def test_variables_are_evaluated_lazily_and_compose(server):
    install(server, policy(
        "p",
        {"expression": "variables.name.size() < 10", "messageExpression": "'too long: ' + variables.shout"},
        {"expression": "object.metadata.name != 'boom' || variables.broken == ''", "message": "unused"},
        variables=[{"name": "name", "expression": "object.metadata.name"},
                   {"name": "shout", "expression": "variables.name.upperAscii()"},
                   {"name": "broken", "expression": "object.spec.nodeName"}]))
    assert create_pod(server, pod("fine"))[0] == 201  # `broken` is never evaluated
    assert denial(create_pod(server, pod("much-too-long"))[1]) == "too long: MUCH-TOO-LONG"
    assert denial(create_pod(server, pod("boom"))[1]) == (
        "expression 'object.metadata.name != 'boom' || variables.broken == ''' resulted in error: "
        'composited variable "broken" fails to evaluate: no such key: nodeName')


def test_a_variable_may_be_null(server):
    install(server, policy("p", {"expression": "variables.old == null", "message": "not a create"},
                           variables=[{"name": "old", "expression": "oldObject"}]))
    assert create_pod(server, pod("x"))[0] == 201


@pytest.mark.parametrize("failure, status", [("Fail", 422), ("Ignore", 201)])
def test_an_error_falls_to_the_failure_policy(server, failure, status):
    install(server, policy("p", {"expression": "object.spec.nodeName == ''"}, failurePolicy=failure))
    code, body = create_pod(server, pod("x"))
    assert code == status
    if failure == "Fail":
        assert denial(body) == "expression 'object.spec.nodeName == ''' resulted in error: no such key: nodeName"


def test_request_object_old_object_and_namespace_object(server, core):
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["pods"]}
    install(server, policy("p", {"expression": "false", "messageExpression": (
        "request.operation + ' ' + request.namespace + '/' + request.name + ' ' + request.resource.resource + "
        "' old=' + string(oldObject != null) + ' new=' + string(object != null) + ' ns=' + "
        "namespaceObject.metadata.labels['team'] + ' dry=' + string(request.dryRun)")},
        rules=[rule], failurePolicy="Ignore"), binding("p", actions=("Warn",)))
    core.create_namespace(namespace("lg-exaone", {"team": "lg"}))
    status, headers, _ = request(server, "POST", "/api/v1/namespaces/lg-exaone/pods?dryRun=All", pod("x", "lg-exaone"))
    assert status == 201
    assert "CREATE lg-exaone/x pods old=false new=true ns=lg dry=true" in headers["Warning"]
    create_pod(server, pod("x", "lg-exaone"))
    _, headers, _ = request(server, "PATCH", "/api/v1/namespaces/lg-exaone/pods/x", {"metadata": {"labels": {"a": "b"}}},
                            MERGE)
    assert "UPDATE lg-exaone/x pods old=true new=true" in headers["Warning"]
    _, headers, _ = request(server, "DELETE", "/api/v1/namespaces/lg-exaone/pods/x")
    assert "DELETE lg-exaone/x pods old=true new=false" in headers["Warning"]


def test_warn_answers_with_a_warning_header_and_audit_with_nothing(server, core, api):
    install(server, policy("p", NO_NODE_NAME), binding("warn", "p", ("Warn",)), binding("audit", "p", ("Audit",)))
    status, headers, _ = request(server, "POST", "/api/v1/namespaces/default/pods", pod("x", node_name="n1"))
    assert status == 201
    assert headers.get_all("Warning") == [
        "299 - \"Validation failed for ValidatingAdmissionPolicy 'p' with binding 'warn': pods may not name their node\""]


# -- what is refused when a policy is written ----------------------------------------------------
@pytest.mark.parametrize("spec, field, fragment", [
    ({"validations": [{"expression": "object.metadata.name.format([1]) == ''"}]},
     "spec.validations[0].expression", "undeclared reference to 'format'"),
    ({"validations": [{"expression": "quantity('1Gi').isLessThan(quantity('2Gi'))"}]},
     "spec.validations[0].expression", "undeclared reference to 'quantity'"),
    ({"validations": [{"expression": "sets.contains([1], [1])"}]},
     "spec.validations[0].expression", "undeclared reference to 'sets.contains'"),
    ({"validations": [{"expression": "objekt.metadata.name == ''"}]},
     "spec.validations[0].expression", "undeclared reference to 'objekt'"),
    ({"validations": [{"expression": "authorizer.group('').resource('pods').check('get').allowed()"}]},
     "spec.validations[0].expression", "'authorizer' is not evaluated by the sandbox API server"),
    ({"validations": [{"expression": "variables.nope"}]},
     "spec.validations[0].expression", "undefined field 'nope'"),
    ({"variables": [{"name": "a", "expression": "variables.b"}, {"name": "b", "expression": "1"}],
      "validations": [{"expression": "true"}]},
     "spec.variables[0].expression", "undefined field 'b'"),
    ({"validations": [{"expression": "object.metadata.name =="}]},
     "spec.validations[0].expression", "Syntax error"),
    ({"validations": [{"expression": "true", "messageExpression": "'x'.lowerAscii().title()"}]},
     "spec.validations[0].messageExpression", "undeclared reference to 'title'"),
    ({"matchConditions": [{"name": "c", "expression": "variables.x"}],
      "variables": [{"name": "x", "expression": "true"}], "validations": [{"expression": "true"}]},
     "spec.matchConditions[0].expression", "undefined field 'x'"),
    ({"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "validations": [{"expression": "true"}]},
     "spec.paramKind", "does not evaluate policy parameters"),
    ({}, "spec.validations", "validations or auditAnnotations must contain at least one item"),
    ({"validations": [{"expression": "true", "reason": "Teapot"}]}, "spec.validations[0].reason",
     'Unsupported value: "Teapot"'),
    ({"failurePolicy": "Sometimes", "validations": [{"expression": "true"}]}, "spec.failurePolicy",
     'Unsupported value: "Sometimes"'),
])
def test_a_policy_that_does_not_compile_is_refused(server, spec, field, fragment):
    status, _, body = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicies", policy("bad", **spec))
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: ')
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert fragment in causes[field], causes
    assert server.count("validatingadmissionpolicies") == 0


def test_the_compile_error_has_cel_gos_form(server):
    status, _, body = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicies",
                              policy("bad", {"expression": "object.metadata.name.reverse() == ''"}))
    assert status == 422
    assert body["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.validations[0].expression",
        "message": ('Invalid value: "object.metadata.name.reverse() == \'\'": compilation failed: '
                    "ERROR: <input>:1:22: undeclared reference to 'reverse' (in container '')\n"
                    " | object.metadata.name.reverse() == ''\n | .....................^")}]


@pytest.mark.parametrize("actions, fragment", [
    ([], "spec.validationActions: Required value"),
    (["Deny", "Warn"], "must not contain both Deny and Warn"),
    (["Block"], 'Unsupported value: "Block"'),
])
def test_a_bad_binding_is_refused(server, actions, fragment):
    status, _, body = request(server, "POST", f"{ADMISSION}/validatingadmissionpolicybindings",
                              binding("b", "p", tuple(actions)))
    assert status == 422 and fragment in body["message"], body


def test_a_policy_is_defaulted_and_counts_its_generations(server):
    install(server, policy("p", NO_NODE_NAME))
    stored = server.get("validatingadmissionpolicies", "p")
    assert stored["spec"]["failurePolicy"] == "Fail"
    assert stored["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert stored["spec"]["matchConstraints"]["namespaceSelector"] == {}
    assert stored["spec"]["matchConstraints"]["resourceRules"][0]["scope"] == "*"
    assert stored["metadata"]["generation"] == 1
    request(server, "PATCH", f"{ADMISSION}/validatingadmissionpolicies/p", {"spec": {"failurePolicy": "Ignore"}}, MERGE)
    assert server.get("validatingadmissionpolicies", "p")["metadata"]["generation"] == 2


STAMP = "timestamp('2026-01-02T03:04:05Z')"
ENGINE_SAMPLES = {
    "size": "size('ab') == 2", "contains": "'ab'.contains('b')", "startsWith": "'ab'.startsWith('a')",
    "endsWith": "'ab'.endsWith('b')", "matches": "'ab'.matches('^a')", "int": "int('2') == 2",
    "uint": "uint(2) == 2u", "double": "double(2) == 2.0", "bytes": "bytes('a') == b'a'",
    "timestamp": f"{STAMP} != timestamp('2026-01-01T00:00:00Z')", "duration": "duration('1m') == duration('60s')",
    "type": "type(1) == int", "dyn": "dyn(1) == 1", "getFullYear": f"{STAMP}.getFullYear() == 2026",
    "getMonth": f"{STAMP}.getMonth() == 0", "getDayOfYear": f"{STAMP}.getDayOfYear() == 1",
    "getDayOfMonth": f"{STAMP}.getDayOfMonth() == 1", "getDate": f"{STAMP}.getDate() == 2",
    "getDayOfWeek": f"{STAMP}.getDayOfWeek() == 5", "getHours": f"{STAMP}.getHours() == 3",
    "getMinutes": f"{STAMP}.getMinutes() == 4", "getSeconds": f"{STAMP}.getSeconds() == 5",
    "getMilliseconds": f"{STAMP}.getMilliseconds() == 0", "of": "optional.of(1).value() == 1",
    "none": "!optional.none().hasValue()", "value": "optional.of(1).value() == 1",
    "hasValue": "optional.of(1).hasValue()", "orValue": "optional.none().orValue(2) == 2",
    "or": "optional.none().or(optional.of(3)).value() == 3",
}


@pytest.mark.parametrize("name", sorted(ENGINE_FUNCTIONS))
def test_every_function_the_engine_is_trusted_with_works(name):
    assert Activation({}, {}).evaluate(compile_expression(ENGINE_SAMPLES[name])) is True


def test_the_optional_field_syntax_is_refused_rather_than_misread():
    with pytest.raises(CompileError, match=re.escape("unsupported syntax '.?'")):
        compile_expression("object.spec.?nodeName.orValue('') == ''")


def test_the_kubernetes_functions_the_sandbox_implements():
    cases = {
        "'Ab-C'.lowerAscii()": "ab-c", "'ab'.upperAscii()": "AB", "'  x '.trim()": "x",
        "'a/b/c'.split('/')": ["a", "b", "c"], "'a/b/c'.split('/', 2)": ["a", "b/c"],
        "['a', 'b'].join(', ')": "a, b", "['a', 'b'].join()": "ab", "'aXbX'.replace('X', '-')": "a-b-",
        "'hello'.substring(1, 3)": "el", "'hello'.charAt(1)": "e", "'hello'.indexOf('l')": 2,
        "'hello'.lastIndexOf('l')": 3, "[1, 2, 3].indexOf(2)": 1, "[1, 2].isSorted()": True,
        "[1, 2, 3].sum()": 6, "[3, 1].min()": 1, "[3, 1].max()": 3, "'gpu-07'.find('[0-9]+')": "07",
        "'a1b22'.findAll('[0-9]+')": ["1", "22"], "string(true)": "true", "string(12)": "12",
        "'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b') && 'abc'.matches('^a')": True,
        "optional.none().orValue(3)": 3, "size([1, 2])": 2,
    }
    for source, want in cases.items():
        assert Activation({}, {}).evaluate(compile_expression(source)) == want, source
    with pytest.raises(CompileError, match="undeclared reference to 'format'"):
        compile_expression("'%s'.format(['x'])")


# -- who makes a request --------------------------------------------------------------------------
WHO = policy("who", {"expression": "false", "messageExpression": (
    "request.userInfo.username + ' ' + request.userInfo.groups.join(',') + ' ' + "
    "(request.userInfo.extra.size() == 0 ? '-' : request.userInfo.extra.size() == 1 ? '' : '(2) ') + "
    "('authentication.kubernetes.io/node-name' in request.userInfo.extra ? "
    "'node=' + request.userInfo.extra['authentication.kubernetes.io/node-name'].join('+') : '')")})


def test_a_known_token_is_its_user_and_anything_else_the_admin(tmp_path):
    agent = UserInfo.service_account("gpu-scheduler", "agent", node="gpu-07", pod="agent-x1")
    with SandboxServer(tokens={"agent-token": agent}) as server:
        install(server, WHO)
        as_agent = [("Authorization", "Bearer agent-token")]
        assert denial(create_pod(server, pod("x"), as_agent)[1]) == (
            "system:serviceaccount:gpu-scheduler:agent "
            "system:serviceaccounts,system:serviceaccounts:gpu-scheduler,system:authenticated (2) node=gpu-07")
        for headers in ([], [("Authorization", "Bearer unknown")]):
            assert denial(create_pod(server, pod("x"), headers)[1]) == "system:admin system:masters,system:authenticated -"
        # the official client sends the token of a user's kubeconfig
        with api_client_for(server.write_kubeconfig(tmp_path / "agent", user="agent-token")) as api:
            with pytest.raises(ApiException) as refused:
                client.CoreV1Api(api).create_namespaced_pod("default", pod("x"))
        assert denial(json.loads(refused.value.body)).startswith("system:serviceaccount:gpu-scheduler:agent ")


def test_impersonation_headers_switch_the_user(server):
    install(server, WHO)
    headers = [("Impersonate-User", "system:serviceaccount:gs:gs-agent"),
               ("Impersonate-Extra-Authentication.kubernetes.io%2fnode-Name", "gpu-07")]
    assert denial(create_pod(server, pod("x"), headers)[1]) == (
        "system:serviceaccount:gs:gs-agent system:serviceaccounts,system:serviceaccounts:gs,system:authenticated "
        "node=gpu-07")
    headers = [("Impersonate-User", "kim"), ("Impersonate-Group", "lg"), ("Impersonate-Group", "ml")]
    assert denial(create_pod(server, pod("x"), headers)[1]) == "kim lg,ml,system:authenticated -"
    status, body = create_pod(server, pod("x"), [("Impersonate-Group", "lg")])
    assert (status, body["reason"]) == (400, "BadRequest")


def test_kubectl_acts_as_the_user_of_its_kubeconfig(server, kubectl, tmp_path):
    install(server, WHO)
    engineer = UserInfo("kim@lg.example", ("lg-engineers", "system:authenticated"))
    kubeconfig = server.write_kubeconfig(tmp_path / "kim", user=engineer)
    done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
                          input=json.dumps(pod("x")), capture_output=True, text=True, timeout=60)
    assert "denied request: kim@lg.example lg-engineers,system:authenticated -" in done.stderr


def test_a_required_token_still_refuses_everyone_else():
    with SandboxServer(token="secret", tokens={"kim": UserInfo("kim")}) as server:
        assert request(server, "GET", "/api/v1/nodes")[0] == 401
        assert request(server, "GET", "/api/v1/nodes", headers={"Authorization": "Bearer secret"})[0] == 200
        assert request(server, "GET", "/api/v1/nodes", headers={"Authorization": "Bearer kim"})[0] == 200


def test_kubectl_applies_and_lists_policies(server, kubectl, tmp_path):
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    manifest = "\n---\n".join(json.dumps(o) for o in (policy("p", NO_NODE_NAME), binding("p")))

    def kc(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "validatingadmissionpolicy.admissionregistration.k8s.io/p created" in kc("apply", "-f", "-", stdin=manifest)
    assert "unchanged" in kc("apply", "-f", "-", stdin=json.dumps(binding("p")))
    rows = [line.split() for line in kc("get", "validatingadmissionpolicies").splitlines()]
    assert rows[0] == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"] and rows[1][:3] == ["p", "1", "<unset>"]
    rows = [line.split() for line in kc("get", "validatingadmissionpolicybindings").splitlines()]
    assert rows[0] == ["NAME", "POLICYNAME", "PARAMREF", "AGE"] and rows[1][:3] == ["p", "p", "<unset>"]
