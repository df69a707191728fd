"""Policy errors that say how to fix them (docs/policy.md, "Validation, and every error"): a bad
date names the formats accepted, a YAML syntax error is reported at the line where the mistake
is (not where the parser gave up), and an unknown name suggests the closest known one.

Written like test_policy_errors.py: a small policy inline, the offending line marked `# line N`.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from tests.policy.test_policy_errors import PROGRAM, only_problem, where, with_stages

FORMATS = "use 2026-08-01, 2026-08-01T09:00 or 2026-08-01T09:00:00+09:00"


# --- dates and times -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["tomorrow", "2026/08/01", "2026-8-1", "2026-08-01 9:00", "2026-02-30"])
def test_a_bad_date_names_the_formats_accepted(value):
    issue = only_problem(with_stages(f"""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {{name: stage-1}}
        spec:
          start: "{value}"             # line 5
          eligible: [lg]
        """))
    assert where(issue) == "stages.yaml:5: spec.start"
    assert issue.message.startswith(f"'{value}' is not a valid date or datetime")
    assert FORMATS in issue.message
    assert "Invalid isoformat string" not in issue.message  # the formats say it better


def test_a_date_that_is_not_a_string_names_the_formats_accepted():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 20260801              # line 5
          eligible: [lg]
        """))
    assert where(issue) == "stages.yaml:5: spec.start"
    assert issue.message.startswith("expected a date or datetime; " + FORMATS)


# --- YAML syntax: the line to fix ------------------------------------------------------------


def syntax_problem(stages: str):
    issue = only_problem(with_stages(stages))
    assert issue.field == "" and issue.message.startswith("YAML syntax error: "), str(issue)
    return issue


def test_an_unclosed_bracket_is_reported_where_it_opens_not_at_the_next_key():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg, upstage       # line 6
          quotas:
            lg: {units: 8}
        """)
    assert str(issue).startswith("stages.yaml:6: (document): YAML syntax error: the '[' at column 13 is never closed")


def test_an_unclosed_brace_at_the_end_of_the_file_is_reported_where_it_opens():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {units: 8              # line 8
        """)
    assert (issue.line, issue.message[:49]) == (8, "YAML syntax error: the '{' at column 9 is never c")


def test_a_missing_comma_inside_brackets_that_close_is_reported_at_the_item_after_it():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas: {lg: {units: 8},
            upstage: {units: 8}
            skt: {units: 8}}           # line 9
        """)
    assert issue.line == 9 and "a ',' missing before it?" in issue.message


def test_an_unclosed_quote_is_reported_where_it_opens_not_at_the_end_of_the_file():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: "stage-1}     # line 3
        spec:
          start: 2026-01-15
          eligible: [lg]
        """)
    assert issue.line == 3 and 'the " at column 18 is never closed' in issue.message


def test_a_key_indented_too_far_is_reported_at_its_own_line():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
            eligible: [lg]             # line 6
        """)
    assert issue.line == 6 and "indented more than line 5" in issue.message


def test_a_key_indented_too_little_is_reported_at_its_own_line():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {units: 8}
           upstage: {units: 8}         # line 9
        """)
    assert issue.line == 9 and "indentation" in issue.message


@pytest.mark.parametrize("after", ["  eligible: [lg]\n", ""])
def test_a_key_without_its_colon_is_reported_at_its_line_not_at_the_next_one(after):
    issue = syntax_problem(dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start 2026-01-15             # line 5
          windDown: {mode: hold}
        """) + after)
    assert issue.line == 5 and "no ':' after 'start 2026-01-15" in issue.message


def test_a_value_holding_colon_space_says_to_quote_it():
    issue = syntax_problem("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata:
          name: stage: one             # line 4
        spec: {start: 2026-01-15, eligible: [lg]}
        """)
    assert issue.line == 4 and "must be quoted" in issue.message


def test_a_tab_in_the_indentation_says_to_use_spaces():
    issue = syntax_problem("apiVersion: gpu-scheduler.sovereign-ai.kr/v1\nkind: Stage\nmetadata:\n\tname: s\n")
    assert issue.line == 4 and "indent with spaces" in issue.message


# --- unknown names: the closest known one ----------------------------------------------------


def test_an_unknown_consortium_in_eligible_suggests_the_closest_known_one():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lgg]              # line 6
        """))
    assert where(issue) == "stages.yaml:6: spec.eligible[0]"
    assert issue.message.startswith("unknown consortium 'lgg' (did you mean 'lg'?): declare it")


def test_a_quota_for_an_unknown_consortium_suggests_the_closest_known_one():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg, upstage]
          quotas:
            lg: {units: 8}
            upstge: {units: 8}         # line 9
        """))
    assert str(issue) == "stages.yaml:9: spec.quotas.upstge: quota for unknown consortium 'upstge' (did you mean 'upstage'?)"


def test_an_unknown_name_far_from_every_known_one_suggests_nothing():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [naver]            # line 6
        """))
    assert "did you mean" not in issue.message


def test_a_pool_of_an_unknown_gpu_model_suggests_the_closest_declared_one():
    issue = only_problem({"program.yaml": PROGRAM.replace("gpuModel: B200", "gpuModel: b200  # line 13")})
    assert where(issue) == "program.yaml:13: spec.pools[1].gpuModel"
    assert issue.message.startswith("unknown GPU model 'b200' (did you mean 'B200'?): declare it in spec.gpuModels")


def test_a_quota_in_an_unknown_gpu_model_suggests_the_closest_one_or_units():
    issue = only_problem(with_stages("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata: {name: stage-1}
        spec:
          start: 2026-01-15
          eligible: [lg]
          quotas:
            lg: {unit: 8}              # line 8
        """))
    assert where(issue) == "stages.yaml:8: spec.quotas.lg.unit"
    assert issue.message.startswith("unknown GPU model 'unit' (did you mean 'units'?)")
