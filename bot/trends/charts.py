"""PNG charts of narrative volumes, rendered headless with matplotlib's Agg backend.

No pyplot: every chart is its own `matplotlib.figure.Figure`, so nothing global is shared
between the bot's threads, and a lock serialises rendering (font caches are not thread-safe).
Text from feeds (source names) is made safe for matplotlib: `$` would start mathtext and a
leading `_` hides a legend entry. Glyphs the installed fonts lack (CJK without a CJK font)
fall back to matplotlib's bundled Last Resort font: boxes, never a crash or a warning.
"""

from __future__ import annotations

import io
import threading
import warnings
from functools import cache

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.trends.spikes import DailySeries

WIDTH, HEIGHT, DPI = 1000, 500, 100
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABEL_CHARS = 40
TITLE_CHARS = 90
# Tableau 10, then greys for "other"
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f")
OTHER_COLOR = "#bab0ac"
SPIKE_COLOR = "#d62728"
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
                 "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
                 "AR PL UMing CN", "Microsoft YaHei", "SimHei", "PingFang SC")
_LOCK = threading.Lock()


@cache
def font_families() -> tuple[str, ...]:
    """DejaVu Sans (Latin, Cyrillic), any installed CJK font, then the Last Resort font."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    families = ["DejaVu Sans", *(f for f in _CJK_FAMILIES if f in installed)]
    if "Last Resort High-Efficiency" in installed:
        families.append("Last Resort High-Efficiency")
    return tuple(families)


def safe_label(text: str, limit: int = LABEL_CHARS) -> str:
    """A feed-provided string as matplotlib text: one line, no mathtext, not hidden, bounded."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.lstrip("_").replace("$", r"\$") or "?"


def _day_label(series: DailySeries, i: int) -> str:
    return f"{series.days[i]:%d %b}"


def build_trend_figure(series: DailySeries, *, subtitle: str | None = None,
                       width: int = WIDTH, height: int = HEIGHT) -> Figure:
    """The chart as a Figure: daily bars stacked by series.by, spike days marked."""
    families = list(font_families())
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(len(series.days)))
    bottom = [0] * len(x)
    for n, (key, counts) in enumerate(series.stacks.items()):
        color = OTHER_COLOR if key == "other" else PALETTE[n % len(PALETTE)]
        ax.bar(x, counts, bottom=bottom, width=0.8, color=color, label=safe_label(key),
               linewidth=0, gid=f"stack:{n}")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    top = max(bottom, default=0)
    spikes = [i for i, day in enumerate(series.days) if day in series.spike_days]
    if spikes:
        pad = max(top * 0.04, 0.2)
        ax.scatter(spikes, [bottom[i] + pad for i in spikes], marker="v", s=70, color=SPIKE_COLOR,
                   zorder=3, label="spike", gid="spikes")
    if top == 0:
        ax.text(0.5, 0.5, "no matches in this period", transform=ax.transAxes, ha="center",
                va="center", color="#666666", fontfamily=families)
    ax.set_ylim(0, max(top * 1.15, 1))
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, round(len(x) / 10))
    ticks = x[::-1][::step][::-1]  # always label the last day
    ax.set_xticks(ticks, [_day_label(series, i) for i in ticks])
    ax.set_ylabel("matches per day", fontfamily=families)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if subtitle is None and series.days:
        subtitle = (f"{series.total} matches · {series.days[0]:%d %b} – {series.days[-1]:%d %b %Y}"
                    f" ({series.timezone}) · by {series.by}")
    ax.set_title(safe_label(series.title or "All narratives", TITLE_CHARS), loc="left",
                 fontsize=15, fontfamily=families, pad=18 if subtitle else 6)
    if subtitle:
        ax.text(0, 1.01, safe_label(subtitle, 140), transform=ax.transAxes, fontsize=9,
                color="#555555", va="bottom", fontfamily=families)
    if series.stacks or spikes:
        ax.legend(loc="upper left", frameon=False, fontsize=9, title=f"by {series.by}",
                  ncols=2 if len(series.stacks) > 5 else 1, prop={"family": families})
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with _LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": "narrative-bot"})
    return buffer.getvalue()


def render_trend(series: DailySeries, *, subtitle: str | None = None, width: int = WIDTH,
                 height: int = HEIGHT) -> bytes:
    """The trend chart as PNG bytes, exactly width × height pixels."""
    with _LOCK:
        fig = build_trend_figure(series, subtitle=subtitle, width=width, height=height)
    return figure_png(fig)
