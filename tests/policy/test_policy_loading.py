"""Loading the policy: the real programme, file layouts, time zones, durations, wind-down defaults,
the policy hash and the JSON Schema (docs/policy.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from scheduler.cli import main
from scheduler.policy import PolicyError, WindDown, WindDownMode, load_policy, load_policy_texts, policy_files
from scheduler.policy.types import parse_duration
from tests.builders import program_yaml, programme, stage_yaml

REAL_POLICY = Path(__file__).resolve().parents[2] / "policies"
KST = ZoneInfo("Asia/Seoul")


def real_documents() -> list[str]:
    """The real policy, one YAML document per entry (Program first, then the four stages)."""
    docs = []
    for name in ("program.yaml", "stages.yaml"):
        docs += [d.strip("\n") + "\n" for d in (REAL_POLICY / name).read_text().split("\n---\n")]
    return docs


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def same_policy(a, b) -> bool:
    return a.program == b.program and a.stages == b.stages


# --- the real programme ----------------------------------------------------------------------


def test_the_real_policy_has_four_stages_six_consortia_and_five_pools():
    policy = load_policy(REAL_POLICY)
    assert policy.name == "independent-ai-foundation-model"
    assert policy.timezone == KST
    assert [s.metadata.name for s in policy.stages] == ["stage-1", "stage-2", "stage-3", "stage-4"]
    assert [c.name for c in policy.consortia] == ["lg", "skt", "upstage", "naver", "ncai", "motif"]
    assert [p.name for p in policy.pools] == ["skt-b200-lease", "naver-h100-lease", "gov-b200-a", "gov-b200-b", "gov-b200-c"]
    assert policy.models == ["B200", "H100"]  # no source places the government H200 in the programme
    assert (policy.units("B200"), policy.units("H100")) == (2, 1)  # "512 B200 or 1,024 H100"


def test_the_real_rounds_2_and_3_are_pending_and_the_first_two_are_decided():
    policy = load_policy(REAL_POLICY)
    assert [s.spec.pending for s in policy.stages] == [False, False, True, True]
    assert [s.metadata.name for s in policy.decided_stages()] == ["stage-1", "stage-2"]
    assert all(s.spec.quotas == {} for s in policy.stages[2:])


def test_the_real_round_1_starts_after_its_afternoon_announcement():
    stage_1, stage_2 = load_policy(REAL_POLICY).stages[:2]
    assert stage_2.spec.start == datetime(2026, 1, 15, 18, tzinfo=KST)
    assert stage_1.spec.start == datetime(2025, 8, 4, 18, tzinfo=KST)


def test_the_real_stage_2_admits_motif_mid_stage_with_768_b200_and_skt_from_the_second_half_of_2026():
    stage_2 = load_policy(REAL_POLICY).stages[1]
    assert [(e.consortium, e.from_) for e in stage_2.spec.eligibility()] == [
        ("lg", None), ("upstage", None), ("motif", datetime(2026, 2, 20, tzinfo=KST)), ("skt", datetime(2026, 7, 1, tzinfo=KST)),
    ]
    assert stage_2.spec.quotas == {"lg": {"B200": 512, "H100": 512}, "upstage": {"B200": 512, "H100": 512},
                                   "motif": {"B200": 768}, "skt": {"B200": 512}}


def test_the_real_government_pools_open_in_february_2026_before_the_leases_end():
    pools = {p.name: p for p in load_policy(REAL_POLICY).pools}
    leases, government = ("skt-b200-lease", "naver-h100-lease"), ("gov-b200-a", "gov-b200-b", "gov-b200-c")
    assert {pools[p].availableUntil for p in leases} == {datetime(2026, 7, 1, tzinfo=KST)}
    assert {pools[p].availableFrom for p in government} == {datetime(2026, 2, 1, tzinfo=KST)}
    gpus = {p: pools[p].size.nodes * pools[p].size.gpusPerNode for p in leases + government}
    assert gpus == {"skt-b200-lease": 1024, "naver-h100-lease": 1024,
                    "gov-b200-a": 4080, "gov-b200-b": 2040, "gov-b200-c": 2040}  # 510 + 2 x 255 nodes


def test_a_cut_team_loses_its_gpus_at_once_in_the_real_programme():
    """The record: a team that is cut loses GPU access and keeps its data; only the drain is ours."""
    policy = load_policy(REAL_POLICY)
    assert policy.wind_down == WindDown(
        gracePeriod=timedelta(0), mode=WindDownMode.step, keepPercent=0, drainTimeout=timedelta(hours=2))
    assert all(policy.stage_wind_down(s) == policy.wind_down for s in policy.stages)


# --- file layout -----------------------------------------------------------------------------


def test_one_file_with_every_document_loads_the_same_as_the_real_two_files(tmp_path):
    write(tmp_path, {"all.yaml": "---\n".join(real_documents())})
    assert same_policy(load_policy(tmp_path), load_policy(REAL_POLICY))


def test_one_file_per_document_in_nested_folders_with_yml_and_yaml_loads_the_same(tmp_path):
    program, *stages = real_documents()
    write(tmp_path, {
        "programme.yml": program,
        "stages/2025/stage-1.yaml": stages[0],
        "stages/2026/stage-2.yml": stages[1],
        "stages/2026/later/stage-3.yaml": stages[2],
        "stage-4.YAML.yaml": stages[3],
    })
    assert same_policy(load_policy(tmp_path), load_policy(REAL_POLICY))


def test_a_single_policy_file_can_be_given_instead_of_a_folder(tmp_path):
    write(tmp_path, {"everything.yml": "---\n".join(real_documents())})
    assert same_policy(load_policy(tmp_path / "everything.yml"), load_policy(REAL_POLICY))


def test_policy_files_are_every_yaml_and_yml_file_under_the_folder_sorted(tmp_path):
    write(tmp_path, {"b.yaml": "", "a.yml": "", "z/c.yaml": "", "notes.md": "", "x.yaml.bak": "", "x.json": "{}"})
    assert policy_files(tmp_path) == [tmp_path / "a.yml", tmp_path / "b.yaml", tmp_path / "z" / "c.yaml"]


def test_hidden_files_and_folders_are_skipped(tmp_path):
    program, *stages = real_documents()
    write(tmp_path, {
        "program.yaml": program,
        "stages.yaml": "---\n".join(stages),
        ".program.yaml.swp.yaml": program,       # an editor's hidden copy
        ".git/program.yaml": program,            # a hidden folder
        "old/.stage-1.yaml": stages[0],
    })
    assert policy_files(tmp_path) == [tmp_path / "program.yaml", tmp_path / "stages.yaml"]
    assert len(load_policy(tmp_path).stages) == 4


def configmap_mount(folder: Path, files: dict[str, str], version: str) -> None:
    """What the kubelet makes of a ConfigMap volume: the files live in a hidden timestamped folder,
    `..data` points at it, and each key is a top-level symlink through `..data`."""
    (folder / version).mkdir(parents=True)
    for name, text in files.items():
        (folder / version / name).write_text(text)
    tmp_link = folder / "..data_tmp"
    tmp_link.symlink_to(version)
    os.replace(tmp_link, folder / "..data")  # the kubelet swaps the link atomically on update
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)


def test_a_configmap_mount_reads_each_document_exactly_once(tmp_path):
    files = {name: (REAL_POLICY / name).read_text() for name in ("program.yaml", "stages.yaml")}
    configmap_mount(tmp_path, files, "..2026_11_30_06_00_00.123")

    assert policy_files(tmp_path) == [tmp_path / "program.yaml", tmp_path / "stages.yaml"]
    policy = load_policy(tmp_path)  # a second read of program.yaml would be "a second Program document"
    assert len(policy.stages) == 4
    assert policy.sha256 == load_policy(REAL_POLICY).sha256


def test_a_configmap_update_is_seen_through_the_same_paths(tmp_path):
    files = {name: (REAL_POLICY / name).read_text() for name in ("program.yaml", "stages.yaml")}
    configmap_mount(tmp_path, files, "..2026_11_30_06_00_00.123")
    before = load_policy(tmp_path)

    files["stages.yaml"] = files["stages.yaml"].replace("skt: {B200: 512}",
                                                        "skt: {B200: 512}\n  windDown: {gracePeriod: 21d, mode: linear}")
    configmap_mount(tmp_path, files, "..2026_12_01_06_00_00.456")
    after = load_policy(tmp_path)

    assert after.sha256 != before.sha256
    assert after.stage_wind_down(after.stages[1]).gracePeriod == timedelta(days=21)
    assert len(after.stages) == 4


def test_files_with_only_comments_or_empty_documents_add_nothing(tmp_path):
    write(tmp_path, {"program.yaml": (REAL_POLICY / "program.yaml").read_text(),
                     "stages.yaml": (REAL_POLICY / "stages.yaml").read_text(),
                     "notes.yaml": "# to be decided in round 2\n", "empty.yaml": "", "separators.yaml": "---\n---\n"})
    assert same_policy(load_policy(tmp_path), load_policy(REAL_POLICY))


def test_a_folder_without_policy_files_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="no \\*.yaml or \\*.yml policy files found"):
        load_policy(tmp_path)


def test_a_missing_policy_folder_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="no such policy file or folder"):
        load_policy(tmp_path / "nowhere")


# --- instants --------------------------------------------------------------------------------


def test_naive_dates_are_korean_time_by_default():
    policy = programme(stage_yaml("stage-1", "2026-01-15", "[a, {consortium: b, from: '2026-02-20 09:30'}]"),
                       pools=("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, availableFrom: 2025-08-01}",))
    stage = policy.stages[0]
    assert stage.spec.start == datetime(2026, 1, 15, tzinfo=KST)
    assert stage.spec.start.utcoffset() == timedelta(hours=9)
    assert stage.spec.eligibility()[1].from_ == datetime(2026, 2, 20, 9, 30, tzinfo=KST)
    assert policy.pools[0].availableFrom == datetime(2025, 8, 1, tzinfo=KST)


def test_naive_dates_follow_the_programmes_timezone_in_every_document():
    program = program_yaml(pools=("{name: h100, gpuModel: H100, nodeSelector: {pool: h100}, availableUntil: 2026-07-01}",))
    program = program.replace("timezone: Asia/Seoul", "timezone: UTC")
    policy = load_policy_texts({"program.yaml": program, "stages.yaml": stage_yaml("stage-1", "2026-01-15", "[a]")})
    assert policy.timezone == ZoneInfo("UTC")
    assert policy.stages[0].spec.start.utcoffset() == timedelta(0)
    assert policy.stages[0].spec.start == datetime(2026, 1, 15, tzinfo=timezone.utc)
    assert policy.pools[0].availableUntil == datetime(2026, 7, 1, tzinfo=timezone.utc)  # the Program's own dates too


@pytest.mark.parametrize("written, offset", [
    ("2026-01-15T00:00:00+00:00", timedelta(0)),
    ("2026-01-15T00:00:00Z", timedelta(0)),
    ("2026-01-15T00:00:00-05:00", timedelta(hours=-5)),
    ("2026-01-15T00:00:00+09:00", timedelta(hours=9)),
])
def test_an_explicit_offset_is_kept_as_written(written, offset):
    start = programme(stage_yaml("stage-1", written, "[a]")).stages[0].spec.start
    assert start.utcoffset() == offset
    assert (start.year, start.month, start.day, start.hour) == (2026, 1, 15, 0)


def test_a_timezone_without_offset_does_not_override_an_explicit_offset():
    program = program_yaml().replace("timezone: Asia/Seoul", "timezone: UTC")
    policy = load_policy_texts({"program.yaml": program, "stages.yaml": stage_yaml("s", "2026-01-15T00:00:00+09:00", "[a]")})
    assert policy.stages[0].spec.start == datetime(2026, 1, 14, 15, tzinfo=timezone.utc)


def test_stages_are_ordered_by_start_whatever_the_file_order():
    policy = programme(stage_yaml("later", "2026-08-01", "pending"), stage_yaml("earlier", "2026-01-15", "[a]"))
    assert [s.metadata.name for s in policy.stages] == ["earlier", "later"]


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("14d", timedelta(days=14)),
    ("2w", timedelta(weeks=2)),
    ("1d12h", timedelta(days=1, hours=12)),
    ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
    ("0s", timedelta(0)),
])
def test_a_duration_is_a_number_and_a_unit_or_several(text, expected):
    assert parse_duration(text) == expected


def test_durations_in_the_policy_parse_to_timedeltas():
    policy = programme(stage_yaml("s", "2026-01-15", "[a]"), wind_down="{gracePeriod: 1d12h, drainTimeout: 90m}")
    assert policy.wind_down.gracePeriod == timedelta(days=1, hours=12)
    assert policy.wind_down.drainTimeout == timedelta(minutes=90)


# --- wind-down -------------------------------------------------------------------------------


def test_wind_down_defaults_are_14_days_step_25_percent_and_2_hours_to_drain():
    policy = programme(stage_yaml("s", "2026-01-15", "[a]"))
    assert policy.wind_down == WindDown(gracePeriod=timedelta(days=14), mode=WindDownMode.step, keepPercent=25,
                                        drainTimeout=timedelta(hours=2))
    assert policy.stage_wind_down(policy.stages[0]) == policy.wind_down


def test_a_stage_override_replaces_only_the_fields_it_names():
    policy = programme(stage_yaml("plain", "2026-01-15", "[a, b]"),
                       stage_yaml("override", "2026-08-01", "[a]", wind_down="{mode: hold}"),
                       wind_down="{gracePeriod: 7d, keepPercent: 10, drainTimeout: 4h}")
    plain, override = policy.stages
    assert policy.stage_wind_down(plain) == WindDown(gracePeriod=timedelta(days=7), mode=WindDownMode.step,
                                                     keepPercent=10, drainTimeout=timedelta(hours=4))
    assert policy.stage_wind_down(override) == WindDown(gracePeriod=timedelta(days=7), mode=WindDownMode.hold,
                                                        keepPercent=10, drainTimeout=timedelta(hours=4))


def test_a_keep_percent_of_0_and_of_100_are_both_allowed():
    policy = programme(stage_yaml("s", "2026-01-15", "[a]", wind_down="{keepPercent: 100}"), wind_down="{keepPercent: 0}")
    assert policy.wind_down.keepPercent == 0
    assert policy.stage_wind_down(policy.stages[0]).keepPercent == 100


# --- the policy hash -------------------------------------------------------------------------


def test_the_policy_sha256_is_stable_across_loads_and_folders(tmp_path):
    shutil.copytree(REAL_POLICY, tmp_path / "elsewhere")
    first, again, moved = load_policy(REAL_POLICY), load_policy(REAL_POLICY), load_policy(tmp_path / "elsewhere")
    assert re.fullmatch("[0-9a-f]{64}", first.sha256)
    assert first.sha256 == again.sha256 == moved.sha256


@pytest.mark.parametrize("change", ["edit a quota", "edit a comment", "add a file"])
def test_the_policy_sha256_changes_when_a_file_changes(tmp_path, change):
    folder = tmp_path / "policy"
    shutil.copytree(REAL_POLICY, folder)
    before = load_policy(folder).sha256
    stages = folder / "stages.yaml"
    if change == "edit a quota":
        stages.write_text(stages.read_text().replace("skt: {B200: 512}", "skt: {B200: 256}"))
    elif change == "edit a comment":
        stages.write_text(stages.read_text() + "# reviewed\n")
    else:
        (folder / "notes.yaml").write_text("# nothing yet\n")
    assert load_policy(folder).sha256 != before


# --- the JSON Schema -------------------------------------------------------------------------


def test_schema_prints_json_covering_both_kinds(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    def resolve(ref):
        return schema["$defs"][ref["$ref"].removeprefix("#/$defs/")]

    kinds = [resolve(s)["properties"]["kind"]["const"] for s in schema["oneOf"]]
    assert kinds == ["Program", "Stage"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # every reference in the combined schema resolves at its root
    refs = re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(schema))
    assert refs and all(name in schema["$defs"] for name in refs)


def test_schema_for_one_kind_is_that_documents_schema(capsys):
    assert main(["schema", "--kind", "Stage"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Stage"
    assert schema["properties"]["kind"]["const"] == "Stage"
    assert schema["additionalProperties"] is False  # typos are errors
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    spec = schema["$defs"]["StageSpec"]
    assert set(spec["properties"]) == {"start", "eligible", "quotas", "windDown"}
    assert {"const": "pending"} in spec["properties"]["eligible"]["anyOf"]


def test_schema_for_the_program_writes_durations_as_strings_with_units(capsys):
    assert main(["schema", "--kind", "Program"]) == 0
    schema = json.loads(capsys.readouterr().out)
    grace = schema["$defs"]["WindDown"]["properties"]["gracePeriod"]
    assert grace["type"] == "string" and grace["pattern"].startswith("^")
    assert schema["$defs"]["WindDown"]["additionalProperties"] is False


def test_a_schema_for_an_unknown_kind_is_refused():
    with pytest.raises(SystemExit) as exited:
        main(["schema", "--kind", "ConfigMap"])
    assert exited.value.code == 2


def test_the_builders_programme_loads_so_other_tests_can_rely_on_it():
    policy = programme(stage_yaml("s", "2026-01-15", "[a, b, c]", quotas="{a: {H100: 8}, b: {units: 16}}"))
    assert [c.name for c in policy.consortia] == ["a", "b", "c"]
    assert policy.stages[0].spec.quotas == {"a": {"H100": 8}, "b": {"units": 16}}


def test_a_stage_written_block_style_loads_the_same_as_flow_style():
    flow = stage_yaml("s", "2026-01-15", "[a, {consortium: b, from: 2026-02-20}]", quotas="{a: {H100: 8}}")
    block = dedent("""\
        apiVersion: gpu-scheduler.sovereign-ai.kr/v1
        kind: Stage
        metadata:
          name: s
        spec:
          start: 2026-01-15
          eligible:
            - a
            - consortium: b
              from: 2026-02-20
          quotas:
            a:
              H100: 8
        """)
    assert programme(flow).stages == programme(block).stages
