"""The programme at a glance, as data: what the timeline picture draws (`timeline_series`) and the
rows of `simulate --summary` (`summary_rows`), both pure functions of the steps that
`simulate -o json` prints (a list of plan objects, each with `why`) and of the policy.

Nothing here draws: `picture.py` turns a `TimelineData` into a PNG or an SVG. Keeping the data
apart lets the tests compare every number behind the picture with `simulate -o json`.

A consortium's shortfall (quota the fleet cannot meet) is read from the optional keys `short`
(GPUs per model, or `{"units": n}`) and `short_reason` of each consortium; plans without them
simply show none.

A programme of several clusters: each consortium's GPUs per cluster are read from its `clusters`
(cluster -> model -> GPUs) and each pool's cluster from its `cluster`, for `simulate --by-cluster`
(one panel per cluster). Plans without these keys count everything in the programme's first cluster.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler.planner.model import ACTIVE, ELIMINATED, INELIGIBLE, PENDING, WINDING_DOWN
from scheduler.policy import Policy
from scheduler.policy.models import UNITS, Cluster

Doc = Mapping[str, Any]  # one step of `simulate -o json`
DEFAULT_SIZE = (1600, 900)  # the picture's, in pixels

# kinds of event, drawn as vertical lines in the picture (picture.py gives each its style)
STAGE, ROUND_DUE, CUT, ADDED, POOL_OPENS, LEASE_ENDS, SHORT = (
    "stage",
    "round-due",
    "cut",
    "added",
    "pool-opens",
    "lease-ends",
    "short",
)


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    text: str


@dataclass
class TimelineData:
    """Step series (value i holds from `times[i]` to `times[i + 1]`, the last one to `end`)."""

    title: str
    timezone: str
    start: datetime
    end: datetime
    times: list[datetime]
    teams: list[str]  # consortium names, in stacking order (bottom first)
    display: dict[str, str]  # consortium name -> displayName (or the name)
    held_gpus: dict[str, list[int]]  # GPUs allocated per consortium (the plan's `allocated`)
    held_units: dict[str, list[int]]
    short_gpus: dict[str, list[int]]  # shortfall given per model, in GPUs
    short_units: dict[str, list[int]]  # every shortfall, in units
    pools: list[str]
    capacity_gpus: dict[str, list[int]]  # per pool: its capacity while open (available), else 0
    free_gpus: dict[str, list[int]]  # per pool: GPUs on usable nodes nobody holds
    pool_units: dict[str, int]  # units of one GPU of each pool's model
    unit_note: str  # how GPUs count as units, e.g. "1 B200 = 2 units; H100, H200 = 1 unit"
    events: list[Event] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)  # the programme's clusters, in the policy's order
    cluster_titles: dict[str, str] = field(default_factory=dict)  # cluster -> its panel's title
    pool_cluster: dict[str, str] = field(default_factory=dict)  # pool -> the cluster it is in
    # cluster -> consortium -> GPUs held there (they add up to held_gpus)
    cluster_held_gpus: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    by_cluster: bool = False  # the picture: one panel per cluster (GPUs), not GPUs and units

    def total(self, series: Mapping[str, list[int]], weights: Mapping[str, int] | None = None) -> list[int]:
        return [
            sum(values[i] * (weights[key] if weights else 1) for key, values in series.items())
            for i in range(len(self.times))
        ]

    def _in_cluster(self, series: Mapping[str, list[int]], cluster: str) -> dict[str, list[int]]:
        return {pool: values for pool, values in series.items() if self.pool_cluster.get(pool) == cluster}

    def cluster_open_gpus(self, cluster: str) -> list[int]:
        """GPUs of the cluster's open pools."""
        return self.total(self._in_cluster(self.capacity_gpus, cluster))

    def cluster_idle_gpus(self, cluster: str) -> list[int]:
        """GPUs of the cluster's pools on usable nodes nobody holds."""
        return self.total(self._in_cluster(self.free_gpus, cluster))

    @property
    def open_gpus(self) -> list[int]:
        return self.total(self.capacity_gpus)

    @property
    def idle_gpus(self) -> list[int]:
        return self.total(self.free_gpus)

    @property
    def open_units(self) -> list[int]:
        return self.total(self.capacity_gpus, self.pool_units)

    @property
    def idle_units(self) -> list[int]:
        return self.total(self.free_gpus, self.pool_units)


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` in pixels, e.g. 1600x900."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--size {text!r}: write WIDTHxHEIGHT in pixels, e.g. 1600x900")
    width, height = int(match.group(1)), int(match.group(2))
    if not (320 <= width <= 10000 and 240 <= height <= 10000):
        raise ValueError(f"--size {text!r}: each side between 320x240 and 10000x10000 pixels")
    return width, height


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def short_of(consortium: Doc) -> dict[str, int]:
    """The consortium's shortfall (`short`), {} when it has none or the plan does not say."""
    short = consortium.get("short") or {}
    return {str(k): int(v) for k, v in short.items() if v}


def _units(policy: Policy, model: str) -> int:
    return policy.units(model) if model in policy.program.spec.gpuModels else 1


def _in_units(policy: Policy, per_model: Mapping[str, int]) -> int:
    return sum(n if model == UNITS else n * _units(policy, model) for model, n in per_model.items())


def unit_note(policy: Policy) -> str:
    """How GPUs count as units, e.g. "1 B200 = 2 units; H100, H200: 1 unit each"."""
    by_units: dict[int, list[str]] = {}
    for model in policy.models:
        by_units.setdefault(policy.units(model), []).append(model)
    parts = []
    for n, models in sorted(by_units.items(), reverse=True):
        units = f"{n} unit{'s' if n != 1 else ''}"
        parts.append(f"1 {models[0]} = {units}" if len(models) == 1 else f"{', '.join(models)}: {units} each")
    return "; ".join(parts)


def cluster_title(cluster: Cluster) -> str:
    """A cluster's panel title: its displayName and name, or its name; and its provider unless
    the displayName says it, e.g. "NHN Cloud (nhn)", "kakao · Kakao"."""
    title = cluster.displayName or cluster.name
    if title != cluster.name:
        title += f" ({cluster.name})"
    if cluster.provider and cluster.provider not in (cluster.displayName or ""):
        title += f" · {cluster.provider}"
    return title


def timeline_series(
    docs: Sequence[Doc], policy: Policy, end: datetime | None = None, *, by_cluster: bool = False
) -> TimelineData:
    """Everything the picture shows, from the steps of `simulate -o json` (`end`: where the last
    step stops; default: the last step's instant; `by_cluster`: the picture has one panel per
    cluster)."""
    if not docs:
        raise ValueError("no step to draw")
    times = [instant(d["at"]) for d in docs]
    end = max(end or times[-1], times[-1])
    names = [c["name"] for c in docs[0]["consortia"]]
    held: dict[str, list[int]] = {n: [] for n in names}
    held_units: dict[str, list[int]] = {n: [] for n in names}
    short_gpus: dict[str, list[int]] = {n: [] for n in names}
    short_units: dict[str, list[int]] = {n: [] for n in names}
    pool_names = [p["name"] for p in docs[0]["pools"]]
    capacity: dict[str, list[int]] = {p: [] for p in pool_names}
    free: dict[str, list[int]] = {p: [] for p in pool_names}
    pool_units = {p["name"]: _units(policy, p["gpu_model"]) for p in docs[0]["pools"]}
    home = policy.cluster_names[0]  # where plans that do not say count everything
    in_policy = {p.name: policy.cluster_of(p) for p in policy.pools}
    pool_cluster = {p["name"]: p.get("cluster") or in_policy.get(p["name"], home) for p in docs[0]["pools"]}
    clusters = list(policy.cluster_names)
    clusters += sorted(
        {c for c in pool_cluster.values() if c not in clusters}
        | {k for d in docs for c in d["consortia"] for k in (c.get("clusters") or {}) if k not in clusters}
    )
    by_cluster_held: dict[str, dict[str, list[int]]] = {k: {n: [] for n in names} for k in clusters}
    for doc in docs:
        by_name = {c["name"]: c for c in doc["consortia"]}
        for name in names:
            c = by_name.get(name, {})
            allocated = c.get("allocated") or {}
            held[name].append(sum(allocated.values()))
            where = (c["clusters"] or {}) if "clusters" in c else {home: allocated}
            for k in clusters:
                by_cluster_held[k][name].append(sum((where.get(k) or {}).values()))
            held_units[name].append(_in_units(policy, allocated))
            short = short_of(c)
            short_gpus[name].append(sum(n for model, n in short.items() if model != UNITS))
            short_units[name].append(_in_units(policy, short))
        pools = {p["name"]: p for p in doc["pools"]}
        for name in pool_names:
            p = pools.get(name, {})
            capacity[name].append(int(p.get("capacity_gpus", 0)) if p.get("available", False) else 0)
            free[name].append(int(p.get("free_gpus", 0)))
    display = {c.name: c.displayName or c.name for c in policy.consortia}
    data = TimelineData(
        title=policy.name,
        timezone=policy.program.spec.timezone,
        start=times[0],
        end=end,
        times=times,
        teams=_stacking_order(names, times, held),
        display={n: display.get(n, n) for n in names},
        held_gpus=held,
        held_units=held_units,
        short_gpus=short_gpus,
        short_units=short_units,
        pools=pool_names,
        capacity_gpus=capacity,
        free_gpus=free,
        pool_units=pool_units,
        unit_note=unit_note(policy),
        clusters=clusters,
        cluster_titles={k: k for k in clusters} | {c.name: cluster_title(c) for c in policy.clusters},
        pool_cluster=pool_cluster,
        cluster_held_gpus=by_cluster_held,
        by_cluster=by_cluster,
    )
    data.events = _events(docs, policy, data)
    return data


def _stacking_order(names: list[str], times: list[datetime], held: Mapping[str, list[int]]) -> list[str]:
    """Teams that hold GPUs longest at the bottom (the survivors), those cut early on top, and
    teams that never hold anything last."""

    def key(name: str) -> tuple[int, float, float, str]:
        holding = [t for t, n in zip(times, held[name], strict=True) if n]
        if not holding:
            return (1, 0.0, 0.0, name)
        return (0, -holding[-1].timestamp(), holding[0].timestamp(), name)

    return sorted(names, key=key)


def _join(names: Sequence[str]) -> str:
    return ", ".join(names)


def _events(docs: Sequence[Doc], policy: Policy, data: TimelineData) -> list[Event]:
    """The instants a reader should see marked: stage starts and rounds due, cuts, teams added,
    pools opening and leases ending, shortfalls appearing."""
    start, end = data.start, data.end
    events: list[Event] = []
    for stage in policy.stages:
        at = stage.spec.start
        if start < at <= end:
            name = stage.metadata.name
            events.append(
                Event(at, ROUND_DUE, f"{name} due (undecided)")
                if stage.spec.pending
                else Event(at, STAGE, f"{name} starts")
            )
    stage_starts = {s.spec.start for s in policy.stages}
    for prev, doc in itertools.pairwise(docs):
        at = instant(doc["at"])
        before = {c["name"]: c for c in prev["consortia"]}
        cut, added, short = [], [], []
        for c in doc["consortia"]:
            old = before.get(c["name"], {})
            was, now = old.get("status", INELIGIBLE), c["status"]
            if was in (ACTIVE, PENDING) and now in (WINDING_DOWN, ELIMINATED):
                cut.append(data.display[c["name"]])
            elif now == ACTIVE and was != ACTIVE and at not in stage_starts:
                added.append(data.display[c["name"]])
            if short_of(c) and not short_of(old):
                short.append(data.display[c["name"]])
        if cut:
            events.append(Event(at, CUT, f"{_join(cut)} cut"))
        if added:
            events.append(Event(at, ADDED, f"{_join(added)} {'joins' if len(added) == 1 else 'join'}"))
        if short:
            events.append(Event(at, SHORT, f"{_join(short)} short of quota"))
    opens: dict[datetime, list[str]] = {}
    ends: dict[datetime, list[str]] = {}
    for pool in policy.pools:
        if pool.availableFrom is not None and start < pool.availableFrom <= end:
            opens.setdefault(pool.availableFrom, []).append(pool.name)
        if pool.availableUntil is not None and start < pool.availableUntil <= end:
            ends.setdefault(pool.availableUntil, []).append(pool.name)
    for at, pools in ends.items():
        events.append(Event(at, LEASE_ENDS, f"lease{'s' if len(pools) > 1 else ''} end: {_join(pools)}"))
    for at, pools in opens.items():
        events.append(Event(at, POOL_OPENS, f"{_join(pools)} open{'s' if len(pools) == 1 else ''}"))
    order = {k: i for i, k in enumerate((STAGE, ROUND_DUE, CUT, ADDED, LEASE_ENDS, POOL_OPENS, SHORT))}
    return sorted(events, key=lambda e: (e.at, order[e.kind], e.text))


# --- the summary: one row per instant at which something that matters changes -----------------


@dataclass
class SummaryRow:
    at: datetime
    stage: str | None  # the stage in force
    decision_pending: bool  # a later round is due and undecided
    changes: list[str]
    cells: dict[str, str]  # per consortium: GPUs held, and marks (see SUMMARY_LEGEND)
    consortia: dict[str, dict[str, Any]]  # per consortium: status, held_gpus, draining_nodes, short
    open_gpus: int
    idle_gpus: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "stage": self.stage,
            "decision_pending": self.decision_pending,
            "changes": self.changes,
            "consortia": self.consortia,
            "open_gpus": self.open_gpus,
            "idle_gpus": self.idle_gpus,
        }


SUMMARY_LEGEND = (
    "GPUs held per consortium after the change: '-' not in the programme, 'pend' eligible later in the stage, "
    "'wd' winding down, 'out' eliminated, 'dN' N nodes draining, 'short N' quota that cannot be met; "
    "OPEN = GPUs in open pools, IDLE = of those, held by nobody; * = a later round is pending"
)


def _fmt(d: Mapping[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(d.items())) or "none"


def _cell(c: Doc) -> str:
    status = c["status"]
    held = sum((c.get("allocated") or {}).values())
    draining = len(c.get("draining_nodes") or [])
    if status == INELIGIBLE and not held and not draining:
        return "-"
    if status == ELIMINATED and not held:
        out = "out"
    elif status == PENDING and not held:
        out = "pend"
    else:
        mark = {ACTIVE: "", WINDING_DOWN: " wd", PENDING: " pend", ELIMINATED: " out"}.get(status, f" {status}")
        out = f"{held}{mark}"
    if draining:
        out += f" d{draining}"
    short = short_of(c)
    if short:
        out += " short " + "+".join(f"{n}{'u' if model == UNITS else ''}" for model, n in sorted(short.items()))
    return out


def _stage(row: SummaryRow) -> str:
    return (row.stage or "-") + ("*" if row.decision_pending else "")


def _status_changes(prev: Doc, doc: Doc, stage_started: bool) -> list[str]:
    before = {c["name"]: c for c in prev["consortia"]}
    grouped: dict[str, list[str]] = {}
    quotas: list[str] = []
    for c in doc["consortia"]:
        name, old = c["name"], before.get(c["name"], {})
        was, now = old.get("status", INELIGIBLE), c["status"]
        if was != now:
            if now == ACTIVE:
                what = "selected" if stage_started and was == INELIGIBLE else "added"
                quota = c.get("quota") or {}
                if quota and quota != (old.get("quota") or {}):
                    quotas.append(f"{name} quota {_fmt(quota)}")
            elif now == PENDING:
                what = "eligible later in the stage"
                quotas.append(f"{name} quota {_fmt(c.get('quota') or {})} (from when it is eligible)")
            elif now == WINDING_DOWN:
                what = "cut, winding down"
            elif now == ELIMINATED:
                what = "wind-down over, eliminated" if was == WINDING_DOWN else "cut"
            elif now == INELIGIBLE:
                what = "no longer eligible"
            else:
                what = f"{was} -> {now}"
            grouped.setdefault(what, []).append(name)
        elif now in (ACTIVE, PENDING) and (old.get("quota") or {}) != (c.get("quota") or {}):
            quotas.append(f"{name} quota {_fmt(old.get('quota') or {})} -> {_fmt(c.get('quota') or {})}")
    return [f"{_join(names)} {what}" for what, names in grouped.items()] + quotas


def _short_changes(prev: Doc, doc: Doc) -> list[str]:
    before = {c["name"]: c for c in prev["consortia"]}
    out = []
    for c in doc["consortia"]:
        old, new = short_of(before.get(c["name"], {})), short_of(c)
        if new == old:
            continue
        if not new:
            out.append(f"{c['name']} no longer short")
        else:
            reason = c.get("short_reason")
            out.append(f"{c['name']} short {_fmt(new)}" + (f" ({reason})" if reason else ""))
    return out


def _pool_changes(prev: Doc, doc: Doc, policy: Policy, tz: Any) -> list[str]:
    before = {p["name"]: p for p in prev["pools"]}
    windows = {p.name: p for p in policy.pools}
    at = instant(doc["at"])
    opened, closed = [], []
    for p in doc["pools"]:
        was = before.get(p["name"], {}).get("available", p["available"])
        if was == p["available"]:
            continue
        if p["available"]:
            opened.append(p["name"])
        else:
            closed.append(p["name"])
    out = []
    if opened:
        out.append(f"pool{'s' if len(opened) > 1 else ''} {_join(opened)} open{'s' if len(opened) == 1 else ''}")
    lease: dict[datetime | None, list[str]] = {}
    for name in closed:
        until = windows[name].availableUntil if name in windows else None
        lease.setdefault(until, []).append(name)
    for until, names in lease.items():
        pools = f"pool{'s' if len(names) > 1 else ''} {_join(names)}"
        if until is not None and at < until:
            out.append(f"{pools} drained for the lease end at {until.astimezone(tz):%Y-%m-%d %H:%M}")
        elif until is not None:
            out.append(f"{pools} lease ends")
        else:
            out.append(f"{pools} closed")
    return out


def summary_rows(docs: Sequence[Doc], policy: Policy) -> list[SummaryRow]:
    """One row per instant at which something that matters changes: a stage starts or a round
    falls due, a team is selected, added, cut or wound down, a quota changes, a pool opens or
    closes for its lease end, a shortfall appears or ends. Node-by-node steps (drains, wind-down
    steps, drain deadlines) make no row: their effect shows in the GPUs of the next row."""
    tz = policy.timezone
    rows: list[SummaryRow] = []
    for i, doc in enumerate(docs):
        if i == 0:
            changes = [f"{doc.get('why') or 'start'}" + (f" ({doc['stage']} in force)" if doc.get("stage") else "")]
        else:
            prev = docs[i - 1]
            changes = []
            stage_started = doc.get("stage") != prev.get("stage")
            if stage_started and doc.get("stage"):
                changes.append(f"stage {doc['stage']} starts")
            if doc.get("decision_pending") and (
                doc.get("pending_stage") != prev.get("pending_stage") or not prev.get("decision_pending")
            ):
                changes.append(f"round {doc.get('pending_stage')} is due, undecided: {doc.get('stage')} stays in force")
            changes += _status_changes(prev, doc, stage_started)
            changes += _pool_changes(prev, doc, policy, tz)
            changes += _short_changes(prev, doc)
            if not changes:
                continue
        consortia = doc["consortia"]
        pools = doc["pools"]
        rows.append(
            SummaryRow(
                at=instant(doc["at"]),
                stage=doc.get("stage"),
                decision_pending=bool(doc.get("decision_pending")),
                changes=changes,
                cells={c["name"]: _cell(c) for c in consortia},
                consortia={
                    c["name"]: {
                        "status": c["status"],
                        "held_gpus": sum((c.get("allocated") or {}).values()),
                        "draining_nodes": len(c.get("draining_nodes") or []),
                        "short": short_of(c),
                    }
                    for c in consortia
                },
                open_gpus=sum(p["capacity_gpus"] for p in pools if p["available"]),
                idle_gpus=sum(p["free_gpus"] for p in pools),
            )
        )
    return rows


def summary_table(rows: Sequence[SummaryRow], policy: Policy) -> str:
    """The rows for a terminal: one line per change (the first line of an instant carries its
    time, stage and GPUs; further changes at the same instant follow on lines of their own)."""
    from scheduler.cli.render import table

    names = list(rows[0].cells) if rows else []
    tz = policy.timezone
    lines: list[list[str]] = []
    for row in rows:
        at = row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        cells = [row.cells.get(n, "") for n in names]
        lines.append([at, _stage(row), *cells, str(row.open_gpus), str(row.idle_gpus), row.changes[0]])
        lines += [["", "", *("" for _ in names), "", "", more] for more in row.changes[1:]]
    zone = tz.key
    head = table([f"AT ({zone})", "STAGE", *names, "OPEN", "IDLE", "CHANGE"], lines)
    return head + "\n\n" + SUMMARY_LEGEND
