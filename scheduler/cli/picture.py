"""The programme's timeline as a picture (`simulate -o png=FILE` / `-o svg=FILE`): GPUs held per
consortium over time as stacked step areas, in GPUs (top) and in units (bottom), with the open
capacity, the idle capacity, shortfalls, and the stage starts, cuts, additions, pool openings and
lease ends marked and labelled. Dates are in the programme's time zone. With `--by-cluster`:
one panel per cluster of the programme instead (GPUs held there, its open and idle capacity),
each consortium in the same colour in every panel.

matplotlib (Agg, no display) is imported by this module only, and this module only by the
picture command: the rest of the command line never pays for it. Korean display names need a
font with Hangul: NanumGothic from the `koreanize-matplotlib` package (the `picture` extra), else
a system font that has Hangul (Debian's fonts-nanum or fonts-noto-cjk).
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

from matplotlib import dates as mdates  # after matplotlib.use: the backend is chosen first
from matplotlib import font_manager
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from scheduler.cli.timeline import (
    ADDED,
    CUT,
    DEFAULT_SIZE,
    LEASE_ENDS,
    POOL_OPENS,
    ROUND_DUE,
    SHORT,
    STAGE,
    Event,
    TimelineData,
)

FORMATS = ("png", "svg")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DPI = 100

# consortium colours, in the policy's order; no pure red (red marks cuts and shortfalls)
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#64B5CD", "#CCB974", "#8C8C8C")
IDLE_COLOUR, CAPACITY_COLOUR, SHORT_COLOUR = "#bdbdbd", "#222222", "#b03a2e"
LineStyle = Literal["-", "--", "-.", ":"]
LINE_STYLE: dict[str, tuple[str, LineStyle, str]] = {  # kind -> colour, line style, legend label
    STAGE: ("#333333", "-", "stage starts"),
    ROUND_DUE: ("#333333", "--", "round due, undecided"),
    CUT: ("#c0392b", ":", "teams cut"),
    ADDED: ("#1e8449", ":", "team added"),
    LEASE_ENDS: ("#d35400", "-.", "lease ends"),
    POOL_OPENS: ("#2471a3", "-.", "pools open"),
    SHORT: (SHORT_COLOUR, ":", "shortfall begins"),
}
HANGUL_PROBE = "한국어"
# system fonts with Hangul, best first (Debian: fonts-nanum, fonts-noto-cjk, fonts-unfonts-core)
HANGUL_FAMILIES = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic", "Apple SD Gothic Neo", "UnDotum")


@dataclass(frozen=True)
class HangulFont:
    family: str
    path: str
    bold: str | None = None  # its bold face's file, for the title


def _has_glyphs(path: str, text: str) -> bool:
    try:
        font = FT2Font(path)
    except (OSError, RuntimeError):
        return False
    return all(font.get_char_index(ord(ch)) for ch in text if not ch.isspace())


def hangul_font() -> HangulFont | None:
    """A font with Hangul glyphs, registered with matplotlib's font manager: NanumGothic shipped
    by `koreanize-matplotlib` (located without importing it: its import restyles matplotlib
    globally), else the first installed system font of HANGUL_FAMILIES that has the glyphs."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        regular = Path(folder, "fonts", "NanumGothic.ttf")
        if regular.is_file() and _has_glyphs(str(regular), HANGUL_PROBE):
            bold = Path(folder, "fonts", "NanumGothicBold.ttf")
            font_manager.fontManager.addfont(str(regular))
            family = font_manager.FontProperties(fname=str(regular)).get_name()
            return HangulFont(family, str(regular), str(bold) if bold.is_file() else None)
    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for family in HANGUL_FAMILIES:
        path = installed.get(family)
        if path and _has_glyphs(path, HANGUL_PROBE):
            return HangulFont(family, path)
    return None


def _num(at: datetime) -> float:
    """matplotlib's date number (days since its epoch, fixed to 1970 in `draw`) of an instant."""
    return (at - EPOCH).total_seconds() / 86400


def _edges(data: TimelineData) -> list[float]:
    """x of each step's start, and of the end of the last step (matplotlib date numbers)."""
    return [float(_num(t)) for t in [*data.times, data.end]]


def _steps(values: Sequence[float]) -> list[float]:
    return [*values, values[-1]]


def _thousands(value: float, _pos: object = None) -> str:
    return f"{int(value):,}"


def _panel(
    ax: Axes,
    data: TimelineData,
    x: list[float],
    held: dict[str, list[int]],
    idle: list[int],
    open_: list[int],
    short: dict[str, list[int]],
    colours: dict[str, str],
    ylabel: str,
) -> None:
    base = [0.0] * len(data.times)
    for name in data.teams:
        top = [b + v for b, v in zip(base, held[name], strict=True)]
        if any(held[name]):
            ax.fill_between(x, _steps(base), _steps(top), step="post", color=colours[name], linewidth=0)
        base = top
    top = [b + v for b, v in zip(base, idle, strict=True)]
    ax.fill_between(
        x, _steps(base), _steps(top), step="post", facecolor="white", edgecolor=IDLE_COLOUR, hatch="///", linewidth=0
    )
    base = top
    short_total = [sum(v[i] for v in short.values()) for i in range(len(data.times))]
    if any(short_total):
        top = [b + v for b, v in zip(base, short_total, strict=True)]
        ax.fill_between(
            x, _steps(base), _steps(top), step="post", facecolor="none", edgecolor=SHORT_COLOUR, hatch="xx", linewidth=0
        )
        base = top
    ax.step(x, _steps(open_), where="post", color=CAPACITY_COLOUR, linewidth=1.6)
    ax.set_ylim(0, max([*base, *open_, 1]) * 1.1)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


@dataclass
class _Label:
    at: datetime
    kinds: list[str]
    lines: list[str]


def _labels(events: Sequence[Event], tz: ZoneInfo, span_s: float) -> list[_Label]:
    """Events at (nearly) the same instant, within 1% of the time shown, share one label: one line
    each, the first dated, a later one dated too when its day differs."""
    labels: list[_Label] = []
    day = ""
    for event in events:
        when = f"{event.at.astimezone(tz):%Y-%m-%d}"
        if labels and (event.at - labels[-1].at).total_seconds() <= span_s * 0.01:
            labels[-1].kinds.append(event.kind)
            labels[-1].lines.append(event.text if when == day else f"{when}  {event.text}")
        else:
            labels.append(_Label(event.at, [event.kind], [f"{when}  {event.text}"]))
        day = when
    return labels


def _place_labels(fig: Figure, canvas: FigureCanvasAgg, strip: Axes, labels: Sequence[_Label], fontsize: float) -> None:
    """Each label in the first rows of the strip (top first) where it overlaps nothing, starting
    at its line (or ending there, when it would run past the right edge); a thin line joins it
    to the line it names. Where they do not all fit, smaller type, down to 60%."""
    for shrink in (1.0, 0.9, 0.8, 0.7):
        if _try_labels(fig, canvas, strip, labels, fontsize * shrink, last=False):
            return
    _try_labels(fig, canvas, strip, labels, fontsize * 0.6, last=True)


def _try_labels(
    fig: Figure, canvas: FigureCanvasAgg, strip: Axes, labels: Sequence[_Label], fontsize: float, last: bool
) -> bool:
    """One layout at this size: True when every label found room; else (unless `last`) nothing
    is left drawn."""
    drawn: list[Artist] = []
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]  # matplotlib leaves it unannotated
    box = strip.get_window_extent(renderer)
    row_height = fontsize * 1.45 * fig.dpi / 72
    rows = max(1, int(box.height // row_height))
    taken: list[list[tuple[float, float]]] = [[] for _ in range(rows)]
    pad = fontsize * 0.6 * fig.dpi / 72
    to_x = strip.get_xaxis_transform()
    for label in labels:
        x = float(_num(label.at))
        px = strip.transData.transform((x, 0))[0]
        texts = [
            strip.text(x, 0, line, fontsize=fontsize, va="center", ha="left", color="#222222", transform=to_x)
            for line in label.lines
        ]
        width = max(t.get_window_extent(renderer).width for t in texts)
        span = min(len(texts), rows)
        choice = None
        for row in range(rows - span + 1):
            for left in (px + pad, px - pad - width):
                right = left + width
                if left < 2 or right > fig.bbox.width - 2:
                    continue
                # its text clear of every text and joining line in its rows, and its own joining
                # line clear of every text in the rows below it
                free = all(
                    right + pad < a or left - pad > b for r in range(row, row + span) for a, b in taken[r]
                ) and all(px + 2 < a or px - 2 > b for r in range(row + span, rows) for a, b in taken[r])
                if free:
                    choice = (row, left, right)
                    break
            if choice:
                break
        drawn += texts
        if choice is None and not last:
            for artist in drawn:
                artist.remove()
            return False
        if choice is None:  # no room left at the smallest size: the lowest rows, overlapping
            choice = (rows - span, px + pad, px + pad + width)
        row, left, right = choice
        for r in range(row, row + span):
            taken[r].append((left, right))
        for r in range(row + span, rows):
            taken[r].append((px - 2, px + 2))
        anchor = x if left > px else float(strip.transData.inverted().transform((px - pad, 0))[0])
        ys = []
        for i, text in enumerate(texts):
            y_px = box.y1 - (min(row + i, rows - 1) + 0.5) * row_height
            ys.append(float(strip.transAxes.inverted().transform((0, y_px))[1]))
            text.set_position((anchor if left < px else x, ys[-1]))
            if left < px:
                text.set_horizontalalignment("right")
            else:
                text.set_x(float(strip.transData.inverted().transform((px + pad, 0))[0]))
        colour, style, _ = LINE_STYLE[label.kinds[0]]
        drawn += strip.plot([x, x], [0, ys[0]], transform=to_x, color=colour, linestyle=style, linewidth=1)
        drawn += strip.plot([x], [ys[0]], transform=to_x, marker="o", markersize=3.5, color=colour)
    return True


def draw(data: TimelineData, fmt: str, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """The picture as PNG or SVG bytes, exactly `size` pixels (SVG: width and height attributes)."""
    if fmt not in FORMATS:
        raise ValueError(f"picture format {fmt!r}: one of {', '.join(FORMATS)}")
    width, height = size
    font = hangul_font()
    if font is None:
        print(
            "gpu-scheduler: no font with Hangul found (pip install 'gpu-scheduler[picture]'): "
            "Korean names will not render",
            file=sys.stderr,
        )
    scale = max(0.6, min(width / 1600, height / 900, 2.0))
    fontsize = 10.5 * scale
    families = [font.family, "DejaVu Sans"] if font else ["DejaVu Sans"]
    style = {
        "font.family": families,
        "font.size": fontsize,
        "axes.unicode_minus": False,
        "date.epoch": "1970-01-01T00:00:00",  # what _num counts from
        "svg.fonttype": "none",  # text stays text: names can be searched and read by tools
        "svg.hashsalt": "gpu-scheduler",  # the same picture gives the same bytes
        "hatch.linewidth": 0.8,
    }
    with matplotlib.rc_context(style):  # type: ignore[arg-type]  # its stub wants literal keys
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        _compose(fig, FigureCanvasAgg(fig), data, fontsize, font)
        out = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(out, format=fmt, dpi=DPI, metadata=metadata)
    body = out.getvalue()
    if fmt == "svg":  # matplotlib sizes SVG in points; say pixels, as asked (the viewBox scales)
        size_attrs = f'width="{width}" height="{height}"'.encode()
        body = re.sub(rb'width="[\d.]+pt" height="[\d.]+pt"', size_attrs, body, count=1)
    return body


def _whole_programme(
    fig: Figure, strip: Axes, data: TimelineData, x: list[float], colours: dict[str, str], left: float, right: float
) -> list[Axes]:
    """Two panels: GPUs held (top) and units held (bottom)."""
    gpus = fig.add_axes((left, 0.42, right - left, 0.30), sharex=strip)
    units = fig.add_axes((left, 0.085, right - left, 0.30), sharex=strip)
    _panel(gpus, data, x, data.held_gpus, data.idle_gpus, data.open_gpus, data.short_gpus, colours, "GPUs held")
    _panel(units, data, x, data.held_units, data.idle_units, data.open_units, data.short_units, colours, "units held")
    return [gpus, units]


def _per_cluster(
    fig: Figure,
    strip: Axes,
    data: TimelineData,
    x: list[float],
    colours: dict[str, str],
    left: float,
    right: float,
    fontsize: float,
) -> list[Axes]:
    """One panel per cluster, top to bottom in the policy's order, each titled above its top
    left corner: GPUs held there, its open and idle capacity (a shortfall is the programme's,
    not a cluster's: not drawn here)."""
    top, bottom = 0.72, 0.085
    title_room = (fontsize * 1.45 + 6) * fig.dpi / 72 / fig.bbox.height  # the title, and its pad
    count = max(1, len(data.clusters))
    height = max(0.02, (top - bottom - count * title_room) / count)  # many clusters in a small picture: overlap
    panels = []
    for i, cluster in enumerate(data.clusters):
        y = top - (i + 1) * (title_room + height)  # the panel's bottom
        ax = fig.add_axes((left, y, right - left, height), sharex=strip)
        held = data.cluster_held_gpus[cluster]
        idle, open_ = data.cluster_idle_gpus(cluster), data.cluster_open_gpus(cluster)
        _panel(ax, data, x, held, idle, open_, {}, colours, "GPUs held")
        ticks = int(height * fig.bbox.height / (fontsize * 1.6 * fig.dpi / 72))  # as many as fit, up to 6
        ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, min(6, ticks)), integer=True))
        ax.set_title(data.cluster_titles.get(cluster, cluster), loc="left", fontsize=fontsize * 1.05, pad=4)
        panels.append(ax)
    return panels


def _compose(
    fig: Figure, canvas: FigureCanvasAgg, data: TimelineData, fontsize: float, font: HangulFont | None
) -> None:
    tz = ZoneInfo(data.timezone)
    left, right = 0.065, 0.80
    strip = fig.add_axes((left, 0.735, right - left, 0.17))
    x = _edges(data)
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(data.teams, key=list(data.display).index))}
    panels = (
        _per_cluster(fig, strip, data, x, colours, left, right, fontsize)
        if data.by_cluster
        else _whole_programme(fig, strip, data, x, colours, left, right)
    )
    bottom = panels[-1]  # the dates go under it
    for ax in panels:
        for event in data.events:
            colour, style, _ = LINE_STYLE[event.kind]
            ax.axvline(float(_num(event.at)), color=colour, linestyle=style, linewidth=1.1, alpha=0.9)
    for ax in panels[:-1]:
        ax.tick_params(labelbottom=False)
    span_days = (data.end - data.start).total_seconds() / 86400
    monthly = span_days > 120
    # as many dates as fit side by side (about 4.5 ems each), every month or every few months
    room = max(2, int(fig.bbox.width * (right - left) / (fontsize * 0.85 * 4.5 * fig.dpi / 72)))
    every = max(1, math.ceil(span_days / 30.44 / room))
    # matplotlib leaves the date locators and formatters unannotated
    locator = (
        mdates.MonthLocator(interval=every, tz=tz)  # type: ignore[no-untyped-call]
        if monthly
        else mdates.AutoDateLocator(tz=tz, maxticks=min(room, 14))  # type: ignore[no-untyped-call]
    )
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m" if monthly else "%Y-%m-%d", tz=tz))  # type: ignore[no-untyped-call]
    for tick in bottom.get_xticklabels():
        tick.set_rotation(0)
    bottom.tick_params(axis="x", labelsize=fontsize * 0.85)
    strip.set_axis_off()
    strip.set_ylim(0, 1)
    title = "GPUs held per consortium, by cluster" if data.by_cluster else "GPUs held per consortium"
    fig.text(left, 0.965, f"{title}: {data.title}", **_title_font(font, fontsize * 1.6))
    what = (
        "One panel per cluster: the GPUs held there (a quota is one number across clusters)."
        if data.by_cluster
        else f"Top: GPUs; bottom: units ({data.unit_note})."
    )
    fig.text(
        left,
        0.93,
        f"{data.start.astimezone(tz):%Y-%m-%d} to {data.end.astimezone(tz):%Y-%m-%d}, dates in {data.timezone}. "
        + what,
        fontsize=fontsize,
        color="#444444",
    )
    fig.text(
        left,
        0.012,
        "Replayed by gpu-scheduler simulate on a fully used fleet (every drain runs to its deadline).",
        fontsize=fontsize * 0.85,
        color="#666666",
    )
    canvas.draw()  # type: ignore[no-untyped-call]  # unannotated; drawn once so labels can be measured
    _place_labels(fig, canvas, strip, _labels(data.events, tz, (data.end - data.start).total_seconds()), fontsize)
    fig.legend(
        handles=_legend(data, colours),
        loc="upper left",
        bbox_to_anchor=(right + 0.015, 0.72),
        frameon=False,
        fontsize=fontsize,
        borderaxespad=0,
    )


def _title_font(font: HangulFont | None, size: float) -> dict[str, Any]:
    """The bold face by its file when there is one (its weight, 600, is not what "bold" finds)."""
    if font is not None and font.bold:
        return {"fontproperties": font_manager.FontProperties(fname=font.bold, size=size)}
    return {"fontsize": size, "weight": "bold"}


def _legend(data: TimelineData, colours: dict[str, str]) -> list[Patch | Line2D]:
    handles: list[Patch | Line2D] = []
    for name in reversed(data.teams):  # top of the stack first, as drawn
        label = data.display[name]
        if not any(data.held_gpus[name]):
            label += " (none held)"
        handles.append(Patch(facecolor=colours[name], label=label))
    handles.append(Patch(facecolor="white", edgecolor=IDLE_COLOUR, hatch="///", label="idle (open, held by nobody)"))
    if not data.by_cluster and any(any(v) for v in data.short_units.values()):
        handles.append(Patch(facecolor="white", edgecolor=SHORT_COLOUR, hatch="xx", label="quota that cannot be met"))
    handles.append(Line2D([], [], color=CAPACITY_COLOUR, linewidth=1.6, label="open capacity"))
    kinds = {e.kind for e in data.events}
    for kind, (colour, style, label) in LINE_STYLE.items():
        if kind in kinds:
            handles.append(Line2D([], [], color=colour, linestyle=style, linewidth=1.3, label=label))
    return handles


def write(data: TimelineData, fmt: str, path: str, size: tuple[int, int] = DEFAULT_SIZE) -> None:
    Path(path).write_bytes(draw(data, fmt, size))
