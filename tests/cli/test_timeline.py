"""The programme at a glance: `simulate -o png=FILE|svg=FILE` (the timeline picture) and
`simulate --summary` (one row per change that matters), checked against `simulate -o json`.

Nothing here knows the real programme's numbers (the policy changes as the programme does): every
expectation is derived from the policy and from what `simulate -o json` says. The pictures are
checked for what they must be (a valid PNG of the asked size, SVG text a person and a tool can
read), never pixel by pixel; each PNG drawn is kept as a test artefact (pytest's tmp dir, and
$TEST_ARTEFACTS when set) for a person to look at.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from scheduler.cli import main
from scheduler.cli.timeline import instant, short_of, summary_rows, timeline_series
from scheduler.policy import load_policy
from tests.builders import program_yaml, stage_yaml

KOREAN_NAME = "엘지 AI 연구원"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def policy():
    return load_policy("policies")


@pytest.fixture(scope="module")
def span(policy):
    """From a few days before the first stage to a month after the last one (as `make replay`)."""
    first, last = policy.stages[0].spec.start, policy.stages[-1].spec.start
    return (first - timedelta(days=3)).date().isoformat(), (last + timedelta(days=30)).date().isoformat()


def simulate_json(capsys, *argv):
    code, out, err = run(capsys, "simulate", *argv, "-o", "json")
    assert code == 0, err
    return json.loads(out)


def keep(path: Path) -> None:
    """A picture for a person to look at: copied to $TEST_ARTEFACTS when set."""
    folder = os.environ.get("TEST_ARTEFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def svg_texts(path: Path) -> tuple[ElementTree.Element, list[str]]:
    root = ElementTree.parse(path).getroot()
    return root, ["".join(el.itertext()) for el in root.iter("{http://www.w3.org/2000/svg}text")]


def korean_policy(tmp_path: Path) -> Path:
    """policies/ with the first consortium's displayName in Korean (not a cluster's: `clusters`
    may come first)."""
    folder = tmp_path / "policies"
    shutil.copytree("policies", folder)
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        section = re.search(r"(?m)^\s+consortia:.*$", text)
        if section is None:
            continue
        head, tail = text[:section.end()], text[section.end():]
        edited, n = re.subn(r"(?m)^(\s+displayName:).*$", rf"\g<1> {KOREAN_NAME}", tail, count=1)
        if n:
            path.write_text(head + edited, encoding="utf-8")
            return folder
    pytest.fail("no consortium's displayName in policies/ to edit")


# --- the series behind the picture ----------------------------------------------------------------


def test_the_pictures_series_are_what_simulate_json_says_at_each_step(capsys, monkeypatch, tmp_path, policy, span):
    import scheduler.cli.picture as picture

    drawn = {}
    monkeypatch.setattr(picture, "write", lambda data, fmt, path, size: drawn.update(data=data, fmt=fmt, size=size))
    code, _, err = run(capsys, "simulate", "--from", span[0], "--to", span[1], "-o", f"png={tmp_path / 'x.png'}")
    assert code == 0, err
    data = drawn["data"]
    docs = simulate_json(capsys, "--from", span[0], "--to", span[1])

    assert [t.isoformat() for t in data.times] == [d["at"] for d in docs]
    assert data.end.date().isoformat() == span[1] and drawn["size"] == (1600, 900)
    units = {m: policy.units(m) for m in policy.models}
    for i, doc in enumerate(docs):
        for c in doc["consortia"]:
            assert data.held_gpus[c["name"]][i] == sum(c["allocated"].values())
            assert data.held_units[c["name"]][i] == sum(n * units[m] for m, n in c["allocated"].items())
            short = c.get("short") or {}
            assert data.short_gpus[c["name"]][i] == sum(n for m, n in short.items() if m != "units")
        for p in doc["pools"]:
            assert data.capacity_gpus[p["name"]][i] == (p["capacity_gpus"] if p["available"] else 0)
            assert data.free_gpus[p["name"]][i] == p["free_gpus"]
        assert data.open_gpus[i] == sum(p["capacity_gpus"] for p in doc["pools"] if p["available"])
        assert data.idle_gpus[i] == sum(p["free_gpus"] for p in doc["pools"])
        assert data.open_units[i] == sum(p["capacity_gpus"] * units[p["gpu_model"]]
                                         for p in doc["pools"] if p["available"])
    assert sorted(data.teams) == sorted(c["name"] for c in docs[0]["consortia"])
    assert data.display == {c.name: c.displayName or c.name for c in policy.consortia}


def test_the_picture_marks_stage_starts_rounds_due_and_lease_ends_from_the_policy(capsys, policy, span):
    docs = simulate_json(capsys, "--from", span[0], "--to", span[1])
    data = timeline_series(docs, policy)
    marked = {(e.at, e.kind) for e in data.events}
    start, end = data.start, data.end
    for stage in policy.stages:
        if start < stage.spec.start <= end:
            assert (stage.spec.start, "round-due" if stage.spec.pending else "stage") in marked
    for pool in policy.pools:
        if pool.availableUntil is not None and start < pool.availableUntil <= end:
            assert (pool.availableUntil, "lease-ends") in marked
            assert any(pool.name in e.text for e in data.events if e.kind == "lease-ends")
        if pool.availableFrom is not None and start < pool.availableFrom <= end:
            assert (pool.availableFrom, "pool-opens") in marked
    # cuts: every team whose status leaves active or pending for winding-down or eliminated
    for prev, doc in zip(docs, docs[1:]):
        was = {c["name"]: c["status"] for c in prev["consortia"]}
        for c in doc["consortia"]:
            if was[c["name"]] in ("active", "pending") and c["status"] in ("winding-down", "eliminated"):
                assert any(e.kind == "cut" and data.display[c["name"]] in e.text for e in data.events)


def test_shortfalls_are_drawn_when_plans_carry_them_and_absent_keys_mean_none(capsys, policy, span):
    docs = simulate_json(capsys, "--from", span[0], "--to", span[1])
    for doc in docs:  # plans from before shortfalls were reported: no `short` key at all
        for c in doc["consortia"]:
            c.pop("short", None)
            c.pop("short_reason", None)
    data = timeline_series(docs, policy)
    assert not any(any(v) for v in data.short_units.values())
    assert not any("short" in change for row in summary_rows(docs, policy) for change in row.changes)

    model, units = policy.models[0], policy.units(policy.models[0])
    team = docs[-1]["consortia"][0]["name"]
    i = len(docs) // 2
    for doc in docs[i:i + 1]:
        c = next(c for c in doc["consortia"] if c["name"] == team)
        c["short"], c["short_reason"] = {model: 8}, "no pool of that model is open"
    if i + 1 < len(docs):
        c = next(c for c in docs[i + 1]["consortia"] if c["name"] == team)
        c["short"] = {"units": 16}
    data = timeline_series(docs, policy)
    assert data.short_gpus[team][i] == 8 and data.short_units[team][i] == 8 * units
    if i + 1 < len(docs):
        assert data.short_gpus[team][i + 1] == 0 and data.short_units[team][i + 1] == 16
    assert any(e.kind == "short" and e.at.isoformat() == docs[i]["at"] for e in data.events)
    rows = {r.at.isoformat(): r for r in summary_rows(docs, policy)}
    assert any(f"{team} short {model}:8 (no pool of that model is open)" == ch for ch in rows[docs[i]["at"]].changes)
    assert short_of({"short": {"units": 0}}) == {} and short_of({}) == {}


# --- the files: PNG and SVG ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, "1280x720"])
def test_the_png_is_a_valid_png_of_the_asked_size(capsys, tmp_path, span, size):
    path = tmp_path / f"timeline-{size or 'default'}.png"
    extra = ["--size", size] if size else []
    code, out, err = run(capsys, "simulate", "--from", span[0], "--to", span[1], "-o", f"png={path}", *extra)
    assert code == 0, err
    keep(path)
    width, height = (int(n) for n in (size or "1600x900").split("x"))
    assert str(path) in out and f"{width}x{height}" in out
    chunks = png_chunks(path.read_bytes())
    kind, ihdr = chunks[0]
    assert kind == b"IHDR" and len(ihdr) == 13
    assert struct.unpack(">II", ihdr[:8]) == (width, height)
    assert chunks[-1][0] == b"IEND" and any(k == b"IDAT" for k, _ in chunks)


def test_the_svg_has_the_asked_size_and_names_and_stage_labels_as_text(capsys, tmp_path, policy, span):
    path = tmp_path / "timeline.svg"
    code, _, err = run(capsys, "simulate", "--from", span[0], "--to", span[1], "-o", f"svg={path}", "--size", "1200x700")
    assert code == 0, err
    root, texts = svg_texts(path)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("1200", "700")
    shown = "\n".join(texts)
    for consortium in policy.consortia:
        assert (consortium.displayName or consortium.name) in shown
    for stage in policy.stages:
        if stage.spec.start.date().isoformat() > span[0]:
            label = f"{stage.metadata.name} due (undecided)" if stage.spec.pending else f"{stage.metadata.name} starts"
            assert label in shown


def test_korean_display_names_render_with_a_font_that_has_hangul(capsys, tmp_path, span):
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from scheduler.cli.picture import hangul_font

    font = hangul_font()
    assert font is not None, "no font with Hangul: pip install -e '.[picture]'"
    assert font_manager.findfont(font_manager.FontProperties(family=font.family), fallback_to_default=False)
    ft = FT2Font(font.path)
    assert all(ft.get_char_index(ord(ch)) for ch in KOREAN_NAME if not ch.isspace())

    folder = korean_policy(tmp_path)
    png, svg = tmp_path / "timeline-korean.png", tmp_path / "timeline-korean.svg"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for out in (f"png={png}", f"svg={svg}"):
            code, _, err = run(capsys, "simulate", "--policy", str(folder), "--from", span[0], "--to", span[1],
                               "-o", out, "--size", "1000x600")
            assert code == 0, err
    assert not [w for w in caught if "missing from" in str(w.message)], "a glyph is missing from the fonts"
    keep(png)
    _, texts = svg_texts(svg)
    assert KOREAN_NAME in texts


# --- a programme of several clusters: --by-cluster -------------------------------------------------

CLUSTERS = "[{name: kakao, provider: Kakao}, {name: nhn, displayName: NHN Cloud, provider: NHN Cloud}]"
CLUSTER_POOLS = (  # nhn's B200 fit one team; the second stage's 400 B200 do not, and are split
    "{name: nhn-b200, gpuModel: B200, cluster: nhn, nodeSelector: {pool: b200}, topologyKey: block, "
    "size: {nodes: 40, gpusPerNode: 8}}",
    "{name: kakao-b200, gpuModel: B200, cluster: kakao, nodeSelector: {pool: b200}, topologyKey: block, "
    "size: {nodes: 20, gpusPerNode: 8}}",
    "{name: kakao-h100, gpuModel: H100, cluster: kakao, nodeSelector: {pool: h100}, topologyKey: block, "
    "size: {nodes: 40, gpusPerNode: 8}, availableFrom: 2026-02-01T00:00:00+09:00}",
)
CLUSTER_SPAN = ("2025-12-28", "2026-04-01")


def policy_folder(folder: Path, **program_kw) -> Path:
    """A programme of three teams and two stages (the second cuts b), written as a policy folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "program.yaml").write_text(program_yaml(**program_kw), encoding="utf-8")
    stages = (
        stage_yaml("s1", "2026-01-01T00:00:00+09:00", "[a, b, c]", "{a: {B200: 320}, b: {B200: 128}, c: {units: 200}}"),
        stage_yaml("s2", "2026-03-01T00:00:00+09:00", "[a, c]", "{a: {B200: 400}, c: {H100: 256}}"),
    )
    (folder / "stages.yaml").write_text("---\n".join(stages), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory):
    return policy_folder(tmp_path_factory.mktemp("two-clusters"), pools=CLUSTER_POOLS, clusters=CLUSTERS)


@pytest.fixture(scope="module")
def one_cluster(tmp_path_factory):
    return policy_folder(tmp_path_factory.mktemp("one-cluster"))  # no `clusters`: the one named "default"


def picture_data(capsys, monkeypatch, tmp_path, *argv):
    """The TimelineData `simulate ... -o png=FILE` draws."""
    import scheduler.cli.picture as picture

    drawn = {}
    monkeypatch.setattr(picture, "write", lambda data, fmt, path, size: drawn.update(data=data))
    code, _, err = run(capsys, "simulate", *argv, "-o", f"png={tmp_path / 'x.png'}")
    assert code == 0, err
    return drawn["data"]


def panels(root: ElementTree.Element) -> int:
    """The picture's panels: its axes (matplotlib's <g id="axes_N">) but the strip of labels."""
    axes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if re.fullmatch(r"axes_\d+", g.get("id", ""))]
    return len(axes) - 1


def test_by_cluster_series_add_up_to_the_whole_programmes_at_every_step(capsys, monkeypatch, tmp_path, two_clusters):
    policy = load_policy(str(two_clusters))
    argv = ("--policy", str(two_clusters), "--from", CLUSTER_SPAN[0], "--to", CLUSTER_SPAN[1])
    data = picture_data(capsys, monkeypatch, tmp_path, *argv, "--by-cluster")
    plain = picture_data(capsys, monkeypatch, tmp_path, *argv)
    docs = simulate_json(capsys, *argv)

    assert data.by_cluster and not plain.by_cluster
    assert data.clusters == policy.cluster_names == ["kakao", "nhn"]
    # the whole programme's series are the same with the flag as without
    assert (data.times, data.teams, data.held_gpus, data.held_units) == \
        (plain.times, plain.teams, plain.held_gpus, plain.held_units)
    assert (data.capacity_gpus, data.free_gpus, data.events) == (plain.capacity_gpus, plain.free_gpus, plain.events)
    for i, doc in enumerate(docs):
        for c in doc["consortia"]:
            for k in data.clusters:
                assert data.cluster_held_gpus[k][c["name"]][i] == sum(c["clusters"].get(k, {}).values())
            assert sum(data.cluster_held_gpus[k][c["name"]][i] for k in data.clusters) == data.held_gpus[c["name"]][i]
        for k in data.clusters:
            pools = [p for p in doc["pools"] if p["cluster"] == k]
            assert data.cluster_open_gpus(k)[i] == sum(p["capacity_gpus"] for p in pools if p["available"])
            assert data.cluster_idle_gpus(k)[i] == sum(p["free_gpus"] for p in pools)
        assert sum(data.cluster_open_gpus(k)[i] for k in data.clusters) == data.open_gpus[i]
        assert sum(data.cluster_idle_gpus(k)[i] for k in data.clusters) == data.idle_gpus[i]
    # not vacuous: both clusters hold GPUs, and a team is split across them at some step
    for k in data.clusters:
        assert any(any(series) for series in data.cluster_held_gpus[k].values()), k
    assert any(all(data.cluster_held_gpus[k]["a"][i] for k in data.clusters) for i in range(len(docs)))


def test_by_cluster_draws_one_panel_per_cluster_titled_by_its_name(capsys, tmp_path, two_clusters):
    policy = load_policy(str(two_clusters))
    argv = ("--policy", str(two_clusters), "--from", CLUSTER_SPAN[0], "--to", CLUSTER_SPAN[1])
    svg, png = tmp_path / "timeline-by-cluster.svg", tmp_path / "timeline-by-cluster.png"
    code, _, err = run(capsys, "simulate", *argv, "-o", f"svg={svg}", "--by-cluster", "--size", "1200x700")
    assert code == 0, err
    root, texts = svg_texts(svg)
    assert (root.get("width"), root.get("height")) == ("1200", "700")
    assert panels(root) == len(policy.clusters) == 2
    # each panel titled by the cluster's displayName and name, or its name, and its provider
    assert "NHN Cloud (nhn)" in texts and "kakao · Kakao" in texts
    shown = "\n".join(texts)
    for consortium in policy.consortia:
        assert (consortium.displayName or consortium.name) in shown

    code, _, err = run(capsys, "simulate", *argv, "-o", f"png={png}", "--by-cluster", "--size", "1280x720")
    assert code == 0, err
    keep(png)
    kind, ihdr = png_chunks(png.read_bytes())[0]
    assert kind == b"IHDR" and struct.unpack(">II", ihdr[:8]) == (1280, 720)

    plain = tmp_path / "timeline-plain.svg"
    code, _, err = run(capsys, "simulate", *argv, "-o", f"svg={plain}")
    assert code == 0, err
    root, texts = svg_texts(plain)
    assert panels(root) == 2 and "NHN Cloud (nhn)" not in texts  # GPUs and units, as without clusters


def test_by_cluster_on_a_programme_of_one_cluster_draws_one_panel(capsys, monkeypatch, tmp_path, one_cluster):
    argv = ("--policy", str(one_cluster), "--from", CLUSTER_SPAN[0], "--to", CLUSTER_SPAN[1])
    data = picture_data(capsys, monkeypatch, tmp_path, *argv, "--by-cluster")
    assert data.clusters == ["default"]
    assert data.cluster_held_gpus["default"] == data.held_gpus and any(any(v) for v in data.held_gpus.values())
    assert data.cluster_open_gpus("default") == data.open_gpus
    assert data.cluster_idle_gpus("default") == data.idle_gpus
    monkeypatch.undo()

    svg = tmp_path / "timeline-one-cluster.svg"
    code, _, err = run(capsys, "simulate", *argv, "-o", f"svg={svg}", "--by-cluster")
    assert code == 0, err
    root, texts = svg_texts(svg)
    assert panels(root) == 1 and "default" in texts


def test_by_cluster_goes_with_a_picture_and_leaves_the_json_as_it_was(capsys, two_clusters):
    argv = ("--policy", str(two_clusters), "--from", CLUSTER_SPAN[0], "--to", CLUSTER_SPAN[1])
    for output in ("json", "table"):
        code, _, err = run(capsys, "simulate", *argv, "-o", output, "--by-cluster")
        assert code == 2 and "--by-cluster" in err
    code, _, err = run(capsys, "simulate", *argv, "-o", "json", "--summary", "--by-cluster")
    assert code == 2 and "--by-cluster" in err


# --- the summary -----------------------------------------------------------------------------------


def test_the_summary_has_one_row_per_change_that_matters(capsys, policy, span):
    # --step 1d adds a plan a day: the full table grows, the summary must not
    full = simulate_json(capsys, "--from", span[0], "--to", span[1], "--step", "1d")
    code, out, err = run(capsys, "simulate", "--from", span[0], "--to", span[1], "--step", "1d",
                         "-o", "json", "--summary")
    assert code == 0, err
    rows = json.loads(out)
    assert rows[0]["at"] == full[0]["at"]
    assert len(rows) * 10 < len(full)
    by_at = {d["at"]: d for d in full}
    changes = {instant(r["at"]): " | ".join(r["changes"]) for r in rows}
    start, end = instant(full[0]["at"]), instant(full[-1]["at"])
    for stage in policy.stages:
        at = stage.spec.start
        if start < at <= end:
            what = f"round {stage.metadata.name} is due" if stage.spec.pending else f"stage {stage.metadata.name} starts"
            assert what in changes[at]
    for pool in policy.pools:
        if pool.availableUntil is not None and start < pool.availableUntil <= end:
            assert any(pool.name in c and "lease end" in c for c in changes.values()), pool.name
        if pool.availableFrom is not None and start < pool.availableFrom <= end:
            assert pool.name in changes[pool.availableFrom]
    for row in rows:  # the GPUs after each change are the plan's at that instant
        doc = by_at[row["at"]]
        assert row["stage"] == doc["stage"] and row["decision_pending"] == doc["decision_pending"]
        for c in doc["consortia"]:
            held = row["consortia"][c["name"]]
            assert held["held_gpus"] == sum(c["allocated"].values()) and held["status"] == c["status"]
        assert row["idle_gpus"] == sum(p["free_gpus"] for p in doc["pools"])
    # a plan left out changed nothing that matters: stage, statuses, quotas, pools' windows, shortfalls
    kept = {r["at"] for r in rows}
    for prev, doc in zip(full, full[1:]):
        if doc["at"] in kept:
            continue
        assert (doc["stage"], doc["decision_pending"]) == (prev["stage"], prev["decision_pending"])
        assert [(c["status"], c["quota"], c.get("short")) for c in doc["consortia"]] == \
            [(c["status"], c["quota"], c.get("short")) for c in prev["consortia"]]
        assert [p["available"] for p in doc["pools"]] == [p["available"] for p in prev["pools"]]


def test_the_summary_table_prints_one_line_per_change_and_the_instant_once(capsys, span):
    code, out, _ = run(capsys, "simulate", "--from", span[0], "--to", span[1], "-o", "json", "--summary")
    rows = json.loads(out)
    code, table, _ = run(capsys, "simulate", "--from", span[0], "--to", span[1], "-o", "table", "--summary")
    assert code == 0
    lines = table.split("\n\n")[0].splitlines()
    assert lines[0].startswith("AT (") and "CHANGE" in lines[0] and "IDLE" in lines[0]
    dated = [line for line in lines[1:] if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", line)]
    assert len(dated) == len(rows)
    assert len(lines) - 1 == sum(len(r["changes"]) for r in rows)
    assert "quota that cannot be met" in table  # the legend


# --- the command line ------------------------------------------------------------------------------


def test_picture_options_are_checked_before_anything_runs(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", "-o", f"png={tmp_path / 'x.png'}", "--summary")
    assert code == 2 and "--summary" in err
    code, _, err = run(capsys, "simulate", "-o", f"png={tmp_path / 'x.png'}", "--size", "big")
    assert code == 2 and "--size" in err
    for bad in ("pdf=x.pdf", "png", "png=", "yaml"):
        with pytest.raises(SystemExit) as exit_:
            main(["simulate", "-o", bad])
        assert exit_.value.code == 2
    assert "png=FILE" in capsys.readouterr().err
    code, _, err = run(capsys, "simulate", "--from", "2025-08-01", "--to", "2025-08-02",
                       "-o", f"png={tmp_path / 'missing' / 'x.png'}")
    assert code == 2 and "missing" in err


def test_only_the_picture_imports_matplotlib():
    """`--help` and the text outputs stay fast: matplotlib is imported by the picture only."""
    script = (
        "import sys, io, contextlib\n"
        "from scheduler.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['simulate', '--from', '2025-08-01', '--to', '2025-08-05', '-o', 'table', '--summary'])\n"
        "    main(['simulate', '--from', '2025-08-01', '--to', '2025-08-05', '-o', 'json'])\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
