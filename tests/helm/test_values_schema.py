"""values.schema.json: a typo or a wrong type in an operator's values file fails `helm template`
(and so `helm install` and `helm lint`) with a message naming the key, instead of being ignored."""

from __future__ import annotations

import pytest

from tests.helm.conftest import SCHEMA, chart_levels, template

# schema objects whose keys are free by design (labels, annotations, env, policy files, quantities)
MAPS = {"stringMap", "envMap", "files", "requests", "limits"}


@pytest.mark.parametrize("values, mentions", [
    ({"controler": {"replicas": 3}}, "controler"),                                  # unknown top-level key
    ({"controller": {"replica": 3}}, "replica"),                                     # unknown nested key
    ({"controller": {"replicas": "two"}}, "replicas"),                               # wrong type
    ({"controller": {"dryRun": "yes"}}, "dryRun"),                                   # a string is not a boolean
    ({"controller": {"securityContext": {"readOnlyRootFileSystem": True}}}, "readOnlyRootFileSystem"),
    ({"controller": {"resources": {"request": {"cpu": "1"}}}}, "request"),
    ({"controller": {"tolerations": [{"key": "a", "operater": "Exists"}]}}, "operater"),
    ({"controller": {"affinity": {"podAntiAfinity": {}}}}, "podAntiAfinity"),
    ({"controller": {"metricsPort": 70000}}, "metricsPort"),
    ({"agent": {"enable": False}}, "enable"),
    ({"agent": {"interval": "30 seconds"}}, "interval"),                             # not a duration
    ({"agent": {"nodeSelector": {"nvidia.com/gpu.present": True}}}, "gpu.present"),  # label values are strings
    ({"policy": {"existingConfigmap": "x"}}, "existingConfigmap"),
    ({"policy": {"files": {"program.json": "{}"}}}, "program.json"),                  # only *.yaml / *.yml
    ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
    ({"metrics": {"prometheusRules": {"enabled": True}}}, "prometheusRules"),
    ({"metrics": {"dashboard": {"enabled": "true"}}}, "enabled"),
    ({"labelPrefix": "Not_A_Domain"}, "labelPrefix"),
    ({"networkPolicy": {"apiServer": {"port": [443]}}}, "port"),
])
def test_a_values_typo_fails_helm_template(helm, tmp_path, values, mentions):
    done = template(helm, values, tmp_path)
    assert done.returncode != 0, f"helm template accepted {values}"
    assert "schema" in done.stderr.lower() and mentions in done.stderr, done.stderr


def _objects(node, path="", ref_name=None):
    """Every object schema under node: (path, its schema, the definition it came from)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        yield from _objects(SCHEMA["definitions"][name], path, name)
        return
    if node.get("type") == "object" or "properties" in node:
        yield path, node, ref_name
        for key, child in node.get("properties", {}).items():
            yield from _objects(child, f"{path}.{key}", None)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield from _objects(extra, f"{path}.*", None)
    if node.get("type") == "array" and "items" in node:
        yield from _objects(node["items"], f"{path}[]", None)


def test_every_level_of_the_schema_is_closed():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    for path, node, ref_name in _objects(SCHEMA):
        if path == ".global":
            continue  # Helm's own key for values shared with subcharts
        if node.get("additionalProperties") is False:
            continue
        leaf = ref_name or path.rsplit(".", 1)[-1]
        assert leaf in MAPS and isinstance(node.get("additionalProperties"), dict), \
            f"{path or '<root>'} accepts unknown keys"


def test_values_yaml_spells_out_every_option_of_the_schema():
    """Each chart option has its default in values.yaml, so the README, which documents
    values.yaml, documents every option."""
    levels = 0
    for path, values, schema, _ in chart_levels():
        declared = set(schema["properties"]) - {"global"}
        assert declared == set(values), f"{path or '<root>'}: schema {sorted(declared)} vs values {sorted(values)}"
        levels += 1
    assert levels >= 12
