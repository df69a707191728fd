"""ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1), as kube-apiserver enforces it.

A policy is checked when it is written (its CEL compiled; 422 Invalid with the field and
cel-go's message otherwise) and defaulted (`failurePolicy: Fail`, `matchPolicy: Equivalent`,
empty selectors, `scope: "*"`). Every create, update (a patch is an update) and delete then goes
through `admit`, after the object's own validation, with each binding whose policy exists:

- match: the policy's `matchConstraints` and the binding's `matchResources` (resourceRules with
  operations, apiGroups, apiVersions, resources and subresources, scope and resourceNames;
  excludeResourceRules; namespaceSelector, which a cluster-scoped object always matches and a
  Namespace matches with its own labels; objectSelector, on the new or the old object);
- `matchConditions`: any false skips the policy, an error falls to the failure policy;
- `variables` (lazy), then every validation: false denies with `messageExpression`, else
  `message`, else `failed expression: EXPR`; an error is a denial under `failurePolicy: Fail`
  (`expression 'EXPR' resulted in error: ...`) and nothing under `Ignore`;
- the binding's `validationActions`: Deny answers the first denial as kube-apiserver does: status
  and reason from the validation's `reason` (default Invalid, 422), message
  `<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding
  '<binding>' denied request: <message>` and that text as the one cause; Warn adds a `Warning`
  header; Audit has nothing to write to (the sandbox keeps no audit log).

Not evaluated: `paramKind` (a policy with one is refused when written, saying so), `authorizer`,
matchPolicy Equivalent's conversions (a rule matches the version it names). Requests on policies
and bindings themselves are exempt, as in kube-apiserver.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.sandbox.errors import ApiError
from scheduler.sandbox.expressions import Activation, Compiled, CompileError, EvalError, compile_expression
from scheduler.sandbox.identity import UserInfo
from scheduler.sandbox.render import served
from scheduler.sandbox.resources import (
    ADMISSION_GROUP,
    NAMESPACES,
    VALIDATING_ADMISSION_POLICIES,
    VALIDATING_ADMISSION_POLICY_BINDINGS,
    ResourceType,
)
from scheduler.sandbox.selectors import from_label_selector, label_selector_errors
from scheduler.sandbox.store import Store

Obj = dict[str, Any]
Cause = tuple[str, str, str]

POLICY_KIND = VALIDATING_ADMISSION_POLICIES.kind
BINDING_KIND = VALIDATING_ADMISSION_POLICY_BINDINGS.kind
OPERATIONS = ("*", "CREATE", "UPDATE", "DELETE", "CONNECT")
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
ACTIONS = ("Deny", "Warn", "Audit")
_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_MAX_MESSAGE = 5 * 1024  # celconfig.MaxEvaluatedMessageExpressionSizeBytes


def _q(text: Any) -> str:
    """A value as Go's %q prints it in a field error."""
    return json.dumps(text, ensure_ascii=False) if isinstance(text, str) else json.dumps(text)


# -- defaults and validation, when a policy or a binding is written --------------------------------
def _default_match(match: Obj) -> None:
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    match.setdefault("matchPolicy", "Equivalent")
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in match.get(key) or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def set_defaults(kind: str, obj: Obj) -> None:
    """What kube-apiserver's defaulting fills in (in place)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec = obj["spec"] = copy.deepcopy(spec)  # it may be the stored object's
    if kind == POLICY_KIND:
        spec.setdefault("failurePolicy", "Fail")
        if isinstance(spec.get("matchConstraints"), dict):
            _default_match(spec["matchConstraints"])
    elif kind == BINDING_KIND and isinstance(spec.get("matchResources"), dict):
        _default_match(spec["matchResources"])


def _rule_causes(rules: Any, path: str, named: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        where = f"{path}[{i}]"
        if not isinstance(rule, dict):
            causes.append((where, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        for key in ("apiGroups", "apiVersions", "resources", "operations"):
            if not rule.get(key):
                causes.append((f"{where}.{key}", "FieldValueRequired", "Required value"))
        for j, op in enumerate(rule.get("operations") or []):
            if op not in OPERATIONS:
                causes.append(
                    (
                        f"{where}.operations[{j}]",
                        "FieldValueNotSupported",
                        f'Unsupported value: {_q(op)}: supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"',
                    )
                )
        if rule.get("scope", "*") not in ("*", "Cluster", "Namespaced"):
            causes.append(
                (
                    f"{where}.scope",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_q(rule.get("scope"))}: supported values: "*", "Cluster", "Namespaced"',
                )
            )
        if rule.get("resourceNames") and not named:
            causes.append((f"{where}.resourceNames", "FieldValueForbidden", "Forbidden: not supported here"))
    return causes


def _match_causes(match: Any, path: str, require_rules: bool) -> list[Cause]:
    if match is None:
        return [(path, "FieldValueRequired", "Required value")] if require_rules else []
    if not isinstance(match, dict):
        return [(path, "FieldValueInvalid", "Invalid value: must be an object")]
    causes: list[Cause] = []
    if require_rules and not match.get("resourceRules"):
        causes.append((f"{path}.resourceRules", "FieldValueRequired", "Required value"))
    causes += _rule_causes(match.get("resourceRules"), f"{path}.resourceRules", True)
    causes += _rule_causes(match.get("excludeResourceRules"), f"{path}.excludeResourceRules", True)
    for key in ("namespaceSelector", "objectSelector"):
        causes += [(f, "FieldValueInvalid", m) for f, m in label_selector_errors(match.get(key), f"{path}.{key}")]
    if match.get("matchPolicy", "Equivalent") not in ("Exact", "Equivalent"):
        causes.append(
            (
                f"{path}.matchPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {_q(match.get("matchPolicy"))}: supported values: "Equivalent", "Exact"',
            )
        )
    return causes


@dataclass(frozen=True)
class Validation:
    expression: Compiled
    message: str
    message_expression: Compiled | None
    reason: str


@dataclass(frozen=True)
class CompiledPolicy:
    failure_policy: str
    match: Obj
    conditions: tuple[tuple[str, Compiled], ...]
    variables: Mapping[str, Compiled]
    validations: tuple[Validation, ...]


def _compile(path: str, source: Any, variables: list[str], causes: list[Cause]) -> Compiled | None:
    if not isinstance(source, str) or not source.strip():
        causes.append((path, "FieldValueRequired", "Required value: expression is not specified"))
        return None
    try:
        return compile_expression(source.strip(), variables)
    except CompileError as e:
        causes.append((path, "FieldValueInvalid", f"Invalid value: {_q(source)}: compilation failed: {e}"))
        return None


def compile_policy(spec: Any) -> tuple[CompiledPolicy | None, list[Cause]]:
    """The policy as evaluated, or the causes kube-apiserver (and the sandbox) would refuse it for."""
    if not isinstance(spec, dict):
        return None, [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    if spec.get("paramKind") is not None:
        causes.append(
            (
                "spec.paramKind",
                "FieldValueForbidden",
                "Forbidden: the sandbox API server does not evaluate policy parameters (paramKind, paramRef)",
            )
        )
    causes += _match_causes(spec.get("matchConstraints"), "spec.matchConstraints", True)
    failure = spec.get("failurePolicy", "Fail")
    if failure not in ("Fail", "Ignore"):
        causes.append(
            (
                "spec.failurePolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {_q(failure)}: supported values: "Fail", "Ignore"',
            )
        )
    variables: dict[str, Compiled] = {}
    names: list[str] = []
    for i, var in enumerate(spec.get("variables") or []):
        where = f"spec.variables[{i}]"
        name = (var or {}).get("name")
        if not name:
            causes.append((f"{where}.name", "FieldValueRequired", "Required value: name is not specified"))
        elif not _IDENTIFIER.match(name):
            causes.append(
                (f"{where}.name", "FieldValueInvalid", f"Invalid value: {_q(name)}: name is not a valid CEL identifier")
            )
        elif name in names:
            causes.append((f"{where}.name", "FieldValueDuplicate", f"Duplicate value: {_q(name)}"))
        compiled = _compile(f"{where}.expression", (var or {}).get("expression"), names, causes)
        if name:
            names.append(name)
            if compiled is not None:
                variables[name] = compiled
    conditions: list[tuple[str, Compiled]] = []
    seen: set[str] = set()
    for i, cond in enumerate(spec.get("matchConditions") or []):
        where = f"spec.matchConditions[{i}]"
        name = (cond or {}).get("name") or ""
        if not name:
            causes.append((f"{where}.name", "FieldValueRequired", "Required value"))
        elif not _QUALIFIED_NAME.match(name):
            causes.append(
                (f"{where}.name", "FieldValueInvalid", f"Invalid value: {_q(name)}: must be a qualified name")
            )
        elif name in seen:
            causes.append((f"{where}.name", "FieldValueDuplicate", f"Duplicate value: {_q(name)}"))
        seen.add(name)
        compiled = _compile(f"{where}.expression", (cond or {}).get("expression"), [], causes)
        if compiled is not None:
            conditions.append((name, compiled))
    validations: list[Validation] = []
    for i, val in enumerate(spec.get("validations") or []):
        where = f"spec.validations[{i}]"
        val = val or {}
        compiled = _compile(f"{where}.expression", val.get("expression"), names, causes)
        message = val.get("message") or ""
        if "\n" in message:
            causes.append(
                (
                    f"{where}.message",
                    "FieldValueInvalid",
                    f"Invalid value: {_q(message)}: message must not contain line breaks",
                )
            )
        message_expression = None
        if val.get("messageExpression"):
            message_expression = _compile(f"{where}.messageExpression", val["messageExpression"], names, causes)
        reason = val.get("reason") or ""
        if reason and reason not in REASON_CODES:
            causes.append(
                (
                    f"{where}.reason",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_q(reason)}: supported values: "Forbidden", "Invalid", '
                    f'"RequestEntityTooLarge", "Unauthorized"',
                )
            )
        if compiled is not None:
            validations.append(Validation(compiled, message.strip(), message_expression, reason))
    audits = spec.get("auditAnnotations") or []
    for i, audit in enumerate(audits):
        _compile(f"spec.auditAnnotations[{i}].valueExpression", (audit or {}).get("valueExpression"), names, causes)
    if not spec.get("validations") and not audits:
        causes.append(
            (
                "spec.validations",
                "FieldValueRequired",
                "Required value: validations or auditAnnotations must contain at least one item",
            )
        )
    if causes:
        return None, causes
    policy = CompiledPolicy(
        failure, copy.deepcopy(spec["matchConstraints"]), tuple(conditions), variables, tuple(validations)
    )
    return policy, []


def binding_causes(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    if not spec.get("policyName"):
        causes.append(("spec.policyName", "FieldValueRequired", "Required value"))
    actions = spec.get("validationActions") or []
    if not actions:
        causes.append(("spec.validationActions", "FieldValueRequired", "Required value"))
    for i, action in enumerate(actions):
        if action not in ACTIONS:
            causes.append(
                (
                    f"spec.validationActions[{i}]",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_q(action)}: supported values: "Audit", "Deny", "Warn"',
                )
            )
        elif action in actions[:i]:
            causes.append((f"spec.validationActions[{i}]", "FieldValueDuplicate", f"Duplicate value: {_q(action)}"))
    if "Deny" in actions and "Warn" in actions:
        causes.append(
            (
                "spec.validationActions",
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(actions)}: must not contain both Deny and Warn (repeating the same "
                f"validation failure information in the API response and headers serves no purpose)",
            )
        )
    causes += _match_causes(spec.get("matchResources"), "spec.matchResources", False)
    return causes


def validate(kind: str, obj: Obj) -> list[Cause]:
    """The causes to refuse a policy or a binding being written for (empty: it is fine)."""
    if kind == POLICY_KIND:
        spec = obj.get("spec")
        key = json.dumps(spec, sort_keys=True)
        if _cached(key) is not None:
            return []
        compiled, causes = compile_policy(spec)
        if compiled is not None:
            _remember(key, compiled)
        return causes
    if kind == BINDING_KIND:
        return binding_causes(obj.get("spec"))
    return []


# compiled policies by their spec's JSON: compiling is the slow part, and a spec means one thing
_CACHE: OrderedDict[str, CompiledPolicy] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def _cached(key: str) -> CompiledPolicy | None:
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
        return found


def _remember(key: str, policy: CompiledPolicy) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = policy
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def compiled(spec: Any) -> CompiledPolicy | str:
    """The policy ready to evaluate, or why it cannot be (a policy loaded without validation)."""
    key = json.dumps(spec, sort_keys=True)
    found = _cached(key)
    if found is not None:
        return found
    policy, causes = compile_policy(spec)
    if policy is None:
        return "; ".join(f"{f}: {m}" for f, _, m in causes)
    _remember(key, policy)
    return policy


# -- admission --------------------------------------------------------------------------------------
@dataclass
class Attributes:
    """One request as admission sees it (k8s.io/apiserver admission.Attributes)."""

    operation: str  # CREATE, UPDATE, DELETE
    rtype: ResourceType
    subresource: str
    name: str  # "" for a create whose name is generated
    namespace: str  # the request's namespace; a Namespace's own name for requests on it by name
    obj: Obj | None
    old: Obj | None
    user: UserInfo
    dry_run: bool = False
    options: Obj | None = None
    kind: tuple[str, str, str] | None = None  # (group, version, kind) when not the resource's own
    warnings: list[str] = field(default_factory=list)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))  # one per request, as request.uid

    @property
    def gvk(self) -> tuple[str, str, str]:
        return self.kind or (self.rtype.group, self.rtype.version, self.rtype.kind)

    def request(self) -> Obj:
        """`request` in CEL: the admission.k8s.io/v1 AdmissionRequest, every field present."""
        group, version, kind = self.gvk
        gvk = {"group": group, "version": version, "kind": kind}
        gvr = {"group": self.rtype.group, "version": self.rtype.version, "resource": self.rtype.plural}
        return {
            "uid": self.uid,
            "kind": gvk,
            "resource": gvr,
            "subResource": self.subresource,
            "requestKind": gvk,
            "requestResource": gvr,
            "requestSubResource": self.subresource,
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": self.user.cel(),
            "dryRun": self.dry_run,
            "options": self.options,
        }


def _rule_matches(rule: Obj, a: Attributes) -> bool:
    def listed(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    if not (
        listed("operations", a.operation)
        and listed("apiGroups", a.rtype.group)
        and listed("apiVersions", a.rtype.version)
    ):
        return False
    for resource in rule.get("resources") or []:
        res, _, sub = str(resource).partition("/")
        if (res in ("*", a.rtype.plural)) and (sub == "*" or sub == a.subresource):
            break
    else:
        return False
    scope = rule.get("scope") or "*"
    is_namespace = a.rtype is NAMESPACES
    if scope == "Cluster" and not (is_namespace or not a.namespace):
        return False
    if scope == "Namespaced" and (is_namespace or not a.namespace):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _labels(obj: Obj | None) -> dict[str, str] | None:
    if obj is None:
        return None
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _matches(match: Obj, a: Attributes, namespace_labels: dict[str, str] | None) -> bool:
    selector = from_label_selector(match.get("namespaceSelector"))
    if not selector.empty and (a.namespace or a.rtype is NAMESPACES):
        if not selector.matches(namespace_labels or {}):
            return False
    objects = from_label_selector(match.get("objectSelector"))
    if not objects.empty:
        if not any(labels is not None and objects.matches(labels) for labels in (_labels(a.obj), _labels(a.old))):
            return False
    if any(_rule_matches(r, a) for r in match.get("excludeResourceRules") or []):
        return False
    rules = match.get("resourceRules") or []
    return not rules or any(_rule_matches(r, a) for r in rules)


@dataclass(frozen=True)
class Decision:
    deny: bool
    message: str = ""
    reason: str = ""


def _message(v: Validation, act: Activation) -> str:
    if v.message_expression is not None:
        try:
            value = act.evaluate(v.message_expression)
        except EvalError:
            value = None
        if isinstance(value, str):
            value = value.strip()
            if value and len(value) <= _MAX_MESSAGE and "\n" not in value:
                return value
    return v.message or f"failed expression: {v.expression.source.strip()}"


def evaluate(policy: CompiledPolicy, a: Attributes, namespace_obj: Obj | None) -> list[Decision]:
    """The denials of one policy for one request (empty: admitted, or not applicable)."""
    fail = policy.failure_policy == "Fail"
    bindings = {
        "object": a.obj,
        "oldObject": a.old,
        "request": a.request(),
        "namespaceObject": namespace_obj,
        "params": None,
    }
    act = Activation(bindings, policy.variables)
    problems: list[str] = []
    for _, condition in policy.conditions:
        try:
            result = act.evaluate(condition)
        except EvalError as e:
            problems.append(f"expression '{condition.source}' resulted in error: {e}")
            continue
        if result is False:
            return []
        if result is not True:
            problems.append(f"expression '{condition.source}' resulted in error: no such overload")
    if problems:
        return [Decision(True, problems[0])] if fail else []
    out: list[Decision] = []
    for v in policy.validations:
        try:
            result = act.evaluate(v.expression)
        except EvalError as e:
            if fail:
                out.append(Decision(True, f"expression '{v.expression.source}' resulted in error: {e}"))
            continue
        if result is not True:
            out.append(Decision(True, _message(v, act), v.reason or "Invalid"))
    return out


def _denied(a: Attributes, policy: str, binding: str, decision: Decision) -> ApiError:
    """admission.NewForbidden with the policy's reason and code, as the validating dispatcher builds it."""
    text = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {decision.message}"
    reason = decision.reason or "Invalid"
    meta = ((a.obj if a.obj is not None else a.old) or {}).get("metadata") or {}
    name = a.name or meta.get("name") or meta.get("generateName") or "Unknown"
    group, plural = a.rtype.group, a.rtype.plural
    details: Obj = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    details["causes"] = [{"message": text}]
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(REASON_CODES.get(reason, 422), reason, f'{qualified} "{name}" is forbidden: {text}', details)


def _warning(policy: str, binding: str, message: str) -> str:
    return f"Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{binding}': {message}"


def admit(store: Store, a: Attributes) -> None:
    """Run every bound policy on one request (caller holds the store lock). Raises the first
    denial of a Deny binding; failures of Warn bindings go to `a.warnings`."""
    if a.rtype.group == ADMISSION_GROUP:
        return  # policies and bindings are exempt (rules.IsExemptAdmissionConfigurationResource)
    _, bindings = store.list(VALIDATING_ADMISSION_POLICY_BINDINGS.store_key, None)
    if not bindings:
        return
    _, stored_policies = store.list(VALIDATING_ADMISSION_POLICIES.store_key, None)
    policies = {p.obj["metadata"]["name"]: p.obj for p in stored_policies}
    namespace_obj: Obj | None = None
    if a.namespace:
        found = store.get(NAMESPACES.store_key, ("", a.namespace))
        namespace_obj = served(NAMESPACES, found) if found is not None else None
    if a.rtype is NAMESPACES and not a.subresource and a.operation in ("CREATE", "UPDATE"):
        namespace_labels = _labels(a.obj)
    else:
        namespace_labels = _labels(namespace_obj)
    for stored in sorted(bindings, key=lambda s: s.obj["metadata"]["name"]):
        binding = stored.obj
        spec = binding.get("spec") or {}
        policy_obj = policies.get(spec.get("policyName", ""))
        if policy_obj is None:
            continue
        policy_name, binding_name = policy_obj["metadata"]["name"], binding["metadata"]["name"]
        policy = compiled(policy_obj.get("spec"))
        if isinstance(policy, str):  # stored without validation: kube-apiserver fails closed
            decisions = [Decision(True, f"failed to configure policy: {policy}")]
            if (policy_obj.get("spec") or {}).get("failurePolicy") == "Ignore":
                decisions = []
        else:
            if not _matches(policy.match, a, namespace_labels):
                continue
            if spec.get("matchResources") and not _matches(spec["matchResources"], a, namespace_labels):
                continue
            decisions = evaluate(policy, a, namespace_obj)
        actions = spec.get("validationActions") or []
        for decision in decisions:
            if "Warn" in actions:
                a.warnings.append(_warning(policy_name, binding_name, decision.message))
        if "Deny" in actions and decisions:
            raise _denied(a, policy_name, binding_name, decisions[0])
