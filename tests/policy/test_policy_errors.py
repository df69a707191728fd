"""Every policy mistake is reported as `file:line: field.path: message` (docs/policy.md, "Validation,
and every error").

Each test writes a small policy inline and names the exact file, line and field of the mistake.
Lines are counted by hand from the dedented YAML; the offending line carries a `# line N` comment.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent, indent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.cli import main
from scheduler.policy import PolicyError, PolicyIssue, load_policy_texts

REAL_POLICY = Path(__file__).resolve().parents[2] / "policies"

# A small valid programme. Stage tests below use it unchanged as program.yaml.
PROGRAM = dedent("""\
    apiVersion: gpu-scheduler.sovereign-ai.kr/v1
    kind: Program
    metadata: {name: test-programme}
    spec:
      gpuModels:
        H100: {units: 1}
        B200: {units: 2}
      pools:
        - name: h100
          gpuModel: H100
          nodeSelector: {pool: h100}
        - name: b200
          gpuModel: B200
          nodeSelector: {pool: b200}
      consortia:
        - name: lg
          namespaces: [lg-exaone]
        - name: upstage
          namespaces: [upstage-solar]
    """)


def problems(texts: dict[str, str]) -> list[PolicyIssue]:
    """The issues of a policy that must not load; anything but PolicyError fails the test."""
    with pytest.raises(PolicyError) as caught:
        load_policy_texts(texts)
    return caught.value.issues


def only_problem(texts: dict[str, str]) -> PolicyIssue:
    found = problems(texts)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def with_stages(stages: str) -> dict[str, str]:
    return {"program.yaml": PROGRAM, "stages.yaml": dedent(stages)}


def program_plus(spec_lines: str) -> dict[str, str]:
    """PROGRAM with more lines under its `spec:` (from line 20 on)."""
    return {"program.yaml": PROGRAM + indent(dedent(spec_lines), "  ")}


def where(issue: PolicyIssue) -> str:
    return f"{issue.file}:{issue.line}: {issue.field}"


# --- the format ------------------------------------------------------------------------------


def test_an_issue_prints_as_file_colon_line_colon_field_path_colon_message():
    issue = PolicyIssue("stages.yaml", 8, "spec.quotas.lg.B200", "-8 is out of range")
    assert str(issue) == "stages.yaml:8: spec.quotas.lg.B200: -8 is out of range"


def test_an_issue_about_a_whole_document_prints_document_as_its_field():
    assert str(PolicyIssue("stages.yaml", 1, "", "oops")) == "stages.yaml:1: (document): oops"


def test_policy_error_lists_its_issues_sorted_by_file_then_line_one_per_line():
    err = PolicyError([PolicyIssue("b.yaml", 1, "x", "m"), PolicyIssue("a.yaml", 9, "y", "m"), PolicyIssue("a.yaml", 2, "z", "m")])
    assert [where(i) for i in err.issues] == ["a.yaml:2: z", "a.yaml:9: y", "b.yaml:1: x"]
    assert str(err) == "a.yaml:2: z: m\na.yaml:9: y: m\nb.yaml:1: x: m"


# --- YAML itself -----------------------------------------------------------------------------


def test_a_yaml_syntax_error_names_the_line_where_the_parser_stopped():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
           eligible: [lg]              # line 6: indented one space too far
        """))
    assert (issue.file, issue.line) == ("stages.yaml", 6)
    assert str(issue).startswith("stages.yaml:6: (document): YAML syntax error")


def test_a_duplicate_key_is_an_error_at_its_second_occurrence():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg, upstage]
          quotas:
            lg: {B200: 8}
            lg: {H100: 8}              # line 9
        """))
    assert where(issue) == "stages.yaml:9: spec.quotas.lg"
    assert "duplicate key 'lg'" in issue.message


# --- unknown keys: typos are errors ----------------------------------------------------------


def test_a_misspelt_key_inside_wind_down_is_an_error_at_the_keys_line():
    issue = only_problem(program_plus("""\
        windDown:
          gracePeriod: 14d
          drainTimout: 2h              # line 22
        """))
    assert where(issue) == "program.yaml:22: spec.windDown.drainTimout"
    assert "unknown field" in issue.message


def test_quota_instead_of_quotas_is_an_error_at_the_keys_line():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quota:                       # line 7
            lg: {B200: 8}
        """))
    assert where(issue) == "stages.yaml:7: spec.quota"
    assert "unknown field" in issue.message


def test_a_missing_required_field_is_reported_at_the_key_that_should_hold_it():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:                          # line 4
          start: 2026-01-15
          quotas: {}
        """))
    assert where(issue) == "stages.yaml:4: spec.eligible"
    assert "required field 'eligible' is missing" in issue.message


# --- names that must exist -------------------------------------------------------------------


def test_an_unknown_consortium_in_eligible_is_an_error_at_its_list_item():
    found = problems(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible:
            - lg
            - kt                                     # line 8
            - {consortium: motif, from: 2026-02-20}  # line 9
        """))
    assert [where(i) for i in found] == ["stages.yaml:8: spec.eligible[1]", "stages.yaml:9: spec.eligible[2]"]
    assert "unknown consortium 'kt'" in found[0].message
    assert "unknown consortium 'motif'" in found[1].message


def test_a_consortium_listed_twice_in_eligible_is_an_error_at_the_second():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible:
            - lg
            - {consortium: lg, from: 2026-02-20}     # line 8
        """))
    assert where(issue) == "stages.yaml:8: spec.eligible[1]"
    assert "listed twice" in issue.message


def test_a_quota_for_an_unknown_consortium_is_an_error_at_its_key():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {B200: 8}
            kt: {B200: 8}              # line 9
        """))
    assert where(issue) == "stages.yaml:9: spec.quotas.kt"
    assert "unknown consortium 'kt'" in issue.message


def test_a_quota_in_an_unknown_gpu_model_is_an_error_at_the_models_key():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg:
              B200: 8
              A100: 8                  # line 10
        """))
    assert where(issue) == "stages.yaml:10: spec.quotas.lg.A100"
    assert "unknown GPU model 'A100'" in issue.message


def test_a_pool_of_an_unknown_gpu_model_is_an_error_at_its_gpu_model():
    issue = only_problem({"program.yaml": PROGRAM.replace("gpuModel: B200", "gpuModel: A100  # line 13")})
    assert where(issue) == "program.yaml:13: spec.pools[1].gpuModel"
    assert "unknown GPU model 'A100'" in issue.message


def test_a_quota_for_a_consortium_not_eligible_in_that_stage_is_an_error():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {B200: 8}
            upstage: {B200: 8}         # line 9
        """))
    assert where(issue) == "stages.yaml:9: spec.quotas.upstage"
    assert "not eligible in this stage" in issue.message


def test_a_pending_stage_cannot_set_quotas():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-08-01
          eligible: pending
          quotas:                      # line 7
            lg: {B200: 8}
        """))
    assert where(issue) == "stages.yaml:7: spec.quotas"
    assert "pending stage cannot set quotas" in issue.message


# --- stages must not collide -----------------------------------------------------------------


def test_two_stages_with_the_same_start_name_both_files_and_lines():
    first = dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15            # line 5
          eligible: [lg]
        """)
    second = dedent("""\
        # The same instant, written with its offset instead of as a naive Korean date.
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-01-15T00:00:00+09:00   # line 6
          eligible: [lg]
        """)
    issue = only_problem({"program.yaml": PROGRAM, "a/stage-1.yaml": first, "b/stage-2.yaml": second})
    assert where(issue) == "b/stage-2.yaml:6: spec.start"
    assert "two stages start at 2026-01-15T00:00:00+09:00" in issue.message
    assert "a/stage-1.yaml:5" in issue.message


def test_two_stages_with_the_same_name_are_an_error_naming_the_other():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}      # line 3
        spec:
          start: 2026-01-15
          eligible: [lg]
        ---
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}      # line 10
        spec:
          start: 2026-08-01
          eligible: pending
        """))
    assert where(issue) == "stages.yaml:10: metadata.name"
    assert "stage 'stage-1' is defined twice (also in stages.yaml:3)" in issue.message


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("date, why", [("2026-02-30", "day is out of range"), ("2026-13-01", "month must be in 1..12")])
def test_an_impossible_date_is_an_error_at_its_line(date, why):
    issue = only_problem(with_stages(f"""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {{name: stage-1}}
        spec:
          start: 2026-01-15
          eligible:
            - lg
            - {{consortium: upstage, from: {date}}}   # line 8
        """))
    assert where(issue) == "stages.yaml:8: spec.eligible[1].from"
    assert f"'{date}' is not a valid date" in issue.message
    assert why in issue.message


@pytest.mark.parametrize("duration", ["14 days", "2x", "14", "d", "-1d"])
def test_a_duration_needs_a_number_and_one_of_the_units_w_d_h_m_s(duration):
    issue = only_problem(with_stages(f"""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {{name: stage-1}}
        spec:
          start: 2026-01-15
          eligible: [lg]
          windDown:
            gracePeriod: {duration}    # line 8
        """))
    assert where(issue) == "stages.yaml:8: spec.windDown.gracePeriod"
    assert "is not a duration" in issue.message


def test_an_absurdly_long_duration_is_an_error_not_a_crash():
    issue = only_problem(program_plus("""\
        windDown:
          drainTimeout: 99999999999999d   # line 21
        """))
    assert where(issue) == "program.yaml:21: spec.windDown.drainTimeout"
    assert "too long" in issue.message


def test_a_negative_quota_is_an_error_at_its_model():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {B200: -8}             # line 8
        """))
    assert where(issue) == "stages.yaml:8: spec.quotas.lg.B200"
    assert "-8 is out of range" in issue.message


@pytest.mark.parametrize("percent", ["125", "-1", "100.5"])
def test_keep_percent_outside_0_to_100_is_an_error(percent):
    issue = only_problem(program_plus(f"""\
        windDown:
          mode: step
          keepPercent: {percent}       # line 22
        """))
    assert where(issue) == "program.yaml:22: spec.windDown.keepPercent"
    assert f"{percent} is out of range" in issue.message


@pytest.mark.parametrize("percent", ['"25"', "true"])
def test_keep_percent_is_a_number_written_as_a_number(percent):
    issue = only_problem(program_plus(f"""\
        windDown:
          keepPercent: {percent}       # line 21
        """))
    assert where(issue) == "program.yaml:21: spec.windDown.keepPercent"
    assert issue.message == "Input should be a valid number"


def test_keep_percent_outside_0_to_100_is_an_error_in_a_stage_override_too():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          windDown: {keepPercent: 125}   # line 7
        """))
    assert where(issue) == "stages.yaml:7: spec.windDown.keepPercent"


def test_an_unknown_wind_down_mode_is_an_error():
    issue = only_problem(program_plus("windDown: {mode: gradual}"))  # line 20
    assert where(issue) == "program.yaml:20: spec.windDown.mode"
    assert "'hold', 'step' or 'linear'" in issue.message


def test_a_consortium_name_that_is_not_a_dns_1123_label_is_an_error():
    issue = only_problem({"program.yaml": PROGRAM.replace("- name: lg", "- name: LG_AI  # line 16")})
    assert where(issue) == "program.yaml:16: spec.consortia[0].name"
    assert "'LG_AI' is not a DNS-1123 label" in issue.message


def test_a_pool_name_with_capitals_is_an_error():
    issue = only_problem({"program.yaml": PROGRAM.replace("- name: h100", "- name: H100-Pool  # line 9")})
    assert where(issue) == "program.yaml:9: spec.pools[0].name"
    assert "'H100-Pool' is not a DNS-1123 label" in issue.message


def test_a_namespace_name_that_is_not_a_dns_1123_label_is_an_error():
    program = PROGRAM.replace("namespaces: [upstage-solar]", "namespaces:\n      - upstage-solar\n      - Solar_Pro  # line 21")
    issue = only_problem({"program.yaml": program})
    assert where(issue) == "program.yaml:21: spec.consortia[1].namespaces[1]"
    assert "'Solar_Pro' is not a DNS-1123 label" in issue.message


def test_a_name_longer_than_63_characters_is_an_error():
    issue = only_problem({"program.yaml": PROGRAM.replace("- name: lg", f"- name: {'l' * 64}")})
    assert where(issue) == "program.yaml:16: spec.consortia[0].name"
    assert "longer than 63 characters" in issue.message


def test_an_unknown_timezone_is_an_error_at_its_line():
    program = PROGRAM.replace("spec:\n", "spec:\n  timezone: Asia/Pyongyang-ish\n")  # line 5
    issue = only_problem({"program.yaml": program})
    assert where(issue) == "program.yaml:5: spec.timezone"
    assert "'Asia/Pyongyang-ish' is not an IANA timezone" in issue.message


def test_units_mixed_with_per_model_counts_is_an_error_at_that_consortiums_quota():
    found = problems(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg, upstage]
          quotas:
            lg: {B200: 8, units: 16}   # line 8
            upstage:                   # line 9
              units: 16
              H100: 8
        """))
    assert [where(i) for i in found] == ["stages.yaml:8: spec.quotas.lg", "stages.yaml:9: spec.quotas.upstage"]
    assert all("either `units` or GPUs per model, not both" in i.message for i in found)


# --- pools and quotas that could never be held -----------------------------------------------


def test_a_pool_whose_window_ends_before_it_starts_is_an_error_at_its_end():
    program = PROGRAM.replace("nodeSelector: {pool: b200}\n",
                              "nodeSelector: {pool: b200}\n      availableFrom: 2026-07-01\n      availableUntil: 2026-06-01\n")
    issue = only_problem({"program.yaml": program})
    assert where(issue) == "program.yaml:16: spec.pools[1].availableUntil"
    assert "ends (2026-06-01T00:00:00+09:00) before it starts (2026-07-01T00:00:00+09:00)" in issue.message


def test_a_pool_whose_window_ends_the_instant_it_starts_is_an_error_too():
    program = PROGRAM.replace("nodeSelector: {pool: b200}\n",
                              "nodeSelector: {pool: b200}\n      availableFrom: 2026-07-01\n      availableUntil: 2026-07-01\n")
    assert where(only_problem({"program.yaml": program})) == "program.yaml:16: spec.pools[1].availableUntil"


LEASED_AND_BOUGHT = dedent("""\
    apiVersion: gpu-scheduler.sovereign-ai.kr/v1
    kind: Program
    metadata: {name: test-programme}
    spec:
      gpuModels:
        H100: {units: 1}
        B200: {units: 2}
      pools:
        - name: b200-lease
          gpuModel: B200
          nodeSelector: {pool: lease}
          availableUntil: 2026-07-01
          size: {nodes: 64}
        - name: b200-gov
          gpuModel: B200
          nodeSelector: {pool: gov}
          availableFrom: 2026-07-01
          size: {nodes: 32, gpusPerNode: 8}
        - name: h100-gov
          gpuModel: H100
          nodeSelector: {pool: h100}
          availableFrom: 2027-01-01
      consortia:
        - name: lg
        - name: upstage
    """)


def test_a_quota_is_an_error_when_no_pool_of_its_model_is_available_during_the_stage():
    issue = only_problem({"program.yaml": LEASED_AND_BOUGHT, "stages.yaml": dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {B200: 8, H100: 8}     # line 8: the H100 pool only opens in 2027
        ---
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-09-01
          eligible: [lg]
        """)})
    assert where(issue) == "stages.yaml:8: spec.quotas.lg.H100"
    assert "no H100 pool is available at any time during this stage" in issue.message


def test_a_decided_stage_stays_in_force_through_a_pending_one_so_a_later_pool_can_hold_its_quota():
    policy = load_policy_texts({"program.yaml": LEASED_AND_BOUGHT, "stages.yaml": dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {H100: 8}              # held once h100-gov opens in 2027: stage-2 is undecided
        ---
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-09-01
          eligible: pending
        """)})
    assert [s.metadata.name for s in policy.stages] == ["stage-1", "stage-2"]


def test_a_quota_is_an_error_when_it_exceeds_every_sized_pool_of_its_model_together():
    # Until 2026-07-01 only the lease (64 x 8 = 512 B200) is there; from then only gov (32 x 8 = 256).
    issue = only_problem({"program.yaml": LEASED_AND_BOUGHT, "stages.yaml": dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-07-01
          eligible: [lg, upstage]
          quotas:
            lg: {B200: 256}            # fits exactly
            upstage: {B200: 257}       # line 9
        """)})
    assert where(issue) == "stages.yaml:9: spec.quotas.upstage.B200"
    assert "257 B200 GPUs exceed the 256 that the B200 pools (b200-gov) could hold" in issue.message


def test_a_units_quota_is_an_error_when_it_exceeds_all_sized_pools_together():
    issue = only_problem({"program.yaml": LEASED_AND_BOUGHT, "stages.yaml": dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {units: 1025}          # line 8: 512 B200 = 1024 units is all there is
        ---
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-07-01
          eligible: [lg]
        """)})
    assert where(issue) == "stages.yaml:8: spec.quotas.lg.units"
    assert "1025 units exceed the 1024 units" in issue.message


def test_a_zero_quota_needs_no_pool():
    policy = load_policy_texts({"program.yaml": LEASED_AND_BOUGHT, "stages.yaml": dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {H100: 0}
        """)})
    assert policy.stages[0].spec.quotas == {"lg": {"H100": 0}}


# --- documents -------------------------------------------------------------------------------


STAGE = dedent("""\
    apiVersion: gpu-scheduler.sovereign-ai.kr/v1
    kind: Stage
    metadata: {name: stage-1}
    spec:
      start: 2026-01-15
      eligible: [lg]
    """)


def test_a_policy_without_a_program_is_an_error_at_the_first_file():
    issue = only_problem({"b.yaml": STAGE, "a.yaml": STAGE.replace("stage-1", "stage-0").replace("01-15", "01-01")})
    assert str(issue) == "a.yaml:1: (document): no Program document: the policy needs exactly one kind: Program"


def test_a_second_program_document_is_an_error_at_its_kind_naming_the_first():
    issue = only_problem({"a.yaml": PROGRAM, "b.yaml": "# the same programme again\n---\n" + PROGRAM})
    assert where(issue) == "b.yaml:4: kind"
    assert "a second Program document (the first is in a.yaml:2)" in issue.message


def test_an_unknown_kind_is_an_error_at_its_line():
    issue = only_problem({"program.yaml": PROGRAM, "stages.yaml": STAGE + dedent("""\
        ---
        apiVersion: v1
        kind: ConfigMap                # line 9
        metadata: {name: gpu-policy}
        """)})
    assert where(issue) == "stages.yaml:9: kind"
    assert "unknown kind 'ConfigMap': expected one of Program, Stage" in issue.message


def test_a_wrong_api_version_is_an_error_at_its_line():
    issue = only_problem({"program.yaml": PROGRAM, "stages.yaml": STAGE.replace("/v1", "/v1beta1")})
    assert where(issue) == "stages.yaml:1: apiVersion"
    assert "expected 'gpu-scheduler.sovereign-ai.kr/v1', got 'gpu-scheduler.sovereign-ai.kr/v1beta1'" in issue.message


def test_a_document_that_is_not_a_mapping_is_an_error():
    issue = only_problem({"program.yaml": PROGRAM, "stages.yaml": "---\n- lg\n- upstage\n"})
    assert str(issue).startswith("stages.yaml:2: (document): a policy document is a mapping")


# --- the programme's own lists ---------------------------------------------------------------


def test_a_consortium_defined_twice_is_an_error_at_the_second():
    issue = only_problem({"program.yaml": PROGRAM + "    - name: lg        # line 20\n"})
    assert where(issue) == "program.yaml:20: spec.consortia[2].name"
    assert "consortium 'lg' is defined twice" in issue.message


def test_a_pool_defined_twice_is_an_error_at_the_second():
    issue = only_problem({"program.yaml": PROGRAM.replace("- name: b200", "- name: h100  # line 12")})
    assert where(issue) == "program.yaml:12: spec.pools[1].name"
    assert "pool 'h100' is defined twice" in issue.message


def test_a_namespace_claimed_by_two_consortia_is_an_error_at_the_second_claim():
    program = PROGRAM.replace("namespaces: [upstage-solar]", "namespaces:\n      - upstage-solar\n      - lg-exaone  # line 21")
    issue = only_problem({"program.yaml": program})
    assert where(issue) == "program.yaml:21: spec.consortia[1].namespaces[1]"
    assert "namespace 'lg-exaone' already belongs to consortium 'lg'" in issue.message


# --- all at once, and never a traceback ------------------------------------------------------


def test_every_mistake_is_reported_at_once_not_just_the_first():
    found = problems(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg, kt]           # line 6: unknown consortium
        ---
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-2}
        spec:
          start: 2026-08-01
          eligible: [lg]
          quotas: {lg: {B200: -1}}     # line 14: negative
          windDown: {gracePeriod: 2x}  # line 15: bad duration
        """))
    assert [where(i) for i in found] == [
        "stages.yaml:6: spec.eligible[1]",
        "stages.yaml:14: spec.quotas.lg.B200",
        "stages.yaml:15: spec.windDown.gracePeriod",
    ]


def test_mistakes_in_different_files_are_reported_together():
    program = PROGRAM.replace("- name: b200", "- name: h100")  # line 12: pool defined twice
    stages = STAGE.replace("start: 2026-01-15", "start: 2026-01-15\n  strat: 2026-01-16")  # line 6: typo
    found = problems({"program.yaml": program, "stages.yaml": stages, "broken.yaml": "a: [\n"})
    assert [(i.file, i.line, i.field) for i in found] == [
        ("broken.yaml", 2, ""),
        ("program.yaml", 12, "spec.pools[1].name"),
        ("stages.yaml", 6, "spec.strat"),
    ]


NASTY = {
    "kind is a list": "apiVersion: gpu-scheduler.sovereign-ai.kr/v1\nkind: [Stage]\n",
    "kind is a mapping": "apiVersion: gpu-scheduler.sovereign-ai.kr/v1\nkind: {Stage: 1}\n",
    "kind with a python tag": "kind: !!python/object/apply:os.system [echo]\n",
    "undefined alias": "kind: *nope\n",
    "tab indentation": "kind: Stage\nspec:\n\tstart: 2026-01-15\n",
    "binary metadata": STAGE.replace("{name: stage-1}", "!!binary aGVsbG8="),
    "null spec": STAGE.split("spec:")[0] + "spec:\n",
    "spec is a list": STAGE.split("spec:")[0] + "spec: [1, 2]\n",
    "eligible is a number": STAGE.replace("[lg]", "7"),
    "eligible is null": STAGE.replace("[lg]", "~"),
    "quotas is a list": STAGE + "  quotas: [lg]\n",
    "quota is a string": STAGE + "  quotas: {lg: lots}\n",
    "start is a boolean": STAGE.replace("2026-01-15", "yes"),
    "start is a huge number": STAGE.replace("2026-01-15", "1e400"),
    "start with a bad offset": STAGE.replace("2026-01-15", "2026-01-15T00:00:00+25:00"),
    "keys that are not strings": STAGE + "  quotas: {lg: {1: 3, ~: 2, [a]: 1}}\n",
    "keepPercent is NaN": STAGE + "  windDown: {keepPercent: .nan}\n",
    "keepPercent is infinite": STAGE + "  windDown: {keepPercent: .inf}\n",
    "duration is a list": STAGE + "  windDown: {gracePeriod: [14d]}\n",
    "not UTF-8 friendly": "kind: \"\\uD800\"\n",
}


@pytest.mark.parametrize("text", NASTY.values(), ids=NASTY.keys())
def test_a_malformed_document_raises_policy_error_and_nothing_else(text):
    assert problems({"program.yaml": PROGRAM, "stages.yaml": text})


REAL_TEXTS = {name: (REAL_POLICY / name).read_text() for name in ("program.yaml", "stages.yaml")}
SCRAPS = ["-1", "0", "~", "[]", "{}", "yes", "pending", "2026-02-30", "99999999999999999999d", "'x'", "*a",
          "[a, b]", "{a: 1}", "2h", "units", "B200", "lg", ".nan", "1e400", "!!binary aGk="]


@given(file=st.sampled_from(sorted(REAL_TEXTS)), edits=st.lists(
    st.tuples(st.sampled_from(["delete", "set", "duplicate", "dedent"]), st.integers(0, 10_000), st.sampled_from(SCRAPS)),
    min_size=1, max_size=3))
def test_no_edit_of_the_real_policy_raises_anything_but_policy_error(file, edits):
    lines = REAL_TEXTS[file].splitlines()
    for op, at, scrap in edits:
        k = at % len(lines)
        if op == "delete":
            del lines[k]
        elif op == "set" and ":" in lines[k]:
            lines[k] = lines[k].split(":")[0] + ": " + scrap
        elif op == "duplicate":
            lines.insert(k, lines[(at * 7) % len(lines)])
        elif op == "dedent":
            lines[k] = lines[k].replace(" ", "", 1)
    texts = dict(REAL_TEXTS, **{file: "\n".join(lines) + "\n"})
    try:
        load_policy_texts(texts)
    except PolicyError as err:
        assert err.issues and all(isinstance(i, PolicyIssue) and i.file in texts for i in err.issues)


# --- the CLI ---------------------------------------------------------------------------------


def test_validate_exits_1_and_prints_one_line_per_problem_to_stderr(tmp_path, capsys):
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "program.yaml").write_text(PROGRAM.replace("- name: lg", "- name: LG_AI"))  # line 16
    (folder / "stages.yaml").write_text(STAGE.replace("2026-01-15", "2026-02-30"))         # line 5

    assert main(["validate", "--policy", str(folder)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{folder / 'program.yaml'}:16: spec.consortia[0].name: 'LG_AI' is not a DNS-1123 label")
    assert lines[1].startswith(f"{folder / 'stages.yaml'}:5: spec.start: '2026-02-30' is not a valid date")
    assert lines[2:] == ["policy invalid: 2 problem(s)"]


def test_validate_exits_0_on_the_real_policy(capsys):
    assert main(["validate", "--policy", str(REAL_POLICY)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "valid (2 file(s), 4 stage(s), 6 consortia, 5 pools" in out


def test_validate_exits_1_on_a_folder_without_policy_files(tmp_path, capsys):
    (tmp_path / "README.md").write_text("nothing to see")
    assert main(["validate", "--policy", str(tmp_path)]) == 1
    assert "no *.yaml or *.yml policy files found" in capsys.readouterr().err


def test_a_gpu_model_name_must_fit_in_a_label_key():
    from scheduler.policy import PolicyError, load_policy_texts
    from tests.builders import program_yaml

    text = program_yaml(models="{H100 SXM: {units: 1}}", pools=("{name: p, gpuModel: H100 SXM, nodeSelector: {pool: p}}",))
    with pytest.raises(PolicyError) as err:
        load_policy_texts({"program.yaml": text})
    assert any(i.field.startswith("spec.gpuModels") and i.line == 6 for i in err.value.issues), str(err.value)
