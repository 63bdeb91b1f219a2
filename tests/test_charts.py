"""Charts rendered from known counts, checked on the image: PNG, size, bar heights, fonts."""

from __future__ import annotations

import io
import warnings
from datetime import date, timedelta

import numpy as np
from matplotlib.image import imread

from bot.trends.charts import (
    HEIGHT,
    PALETTE,
    PNG_MAGIC,
    WIDTH,
    build_trend_figure,
    figure_png,
    render_trend,
    safe_label,
)
from bot.trends.spikes import DailySeries

DAYS = tuple(date(2026, 11, 1) + timedelta(days=i) for i in range(7))


def series(stacks: dict[str, tuple[int, ...]], spikes: frozenset[date] = frozenset(),
           title: str = "Kazakhstan wants to return to China", by: str = "language") -> DailySeries:
    return DailySeries(title=title, days=DAYS, stacks=stacks, by=by, narrative_id="kz",
                       spike_days=spikes)


def pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")


def hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def test_png_of_the_fixed_size() -> None:
    png = render_trend(series({"ru": (1, 2, 3, 4, 5, 6, 7)}))
    assert png.startswith(PNG_MAGIC)
    image = pixels(png)
    assert image.shape[:2] == (HEIGHT, WIDTH) == (500, 1000)


def test_the_spike_days_bar_is_taller_in_the_picture() -> None:
    counts = (2, 2, 3, 2, 12, 2, 2)
    data = series({"zh": counts}, spikes=frozenset({DAYS[4]}))
    fig = build_trend_figure(data)
    png = figure_png(fig)  # draws the figure: its transforms are final
    image = pixels(png)[:, :, :3]
    ax = fig.axes[0]
    color = hex_rgb(PALETTE[0])

    def bar_height(i: int) -> int:
        x, _ = ax.transData.transform((i, 0))
        column = image[:, round(x), :]
        return int(np.sum(np.all(np.abs(column - color) < 0.02, axis=1)))

    heights = [bar_height(i) for i in range(len(DAYS))]
    assert heights[4] == max(heights) and heights[4] > 5 * heights[0] > 0
    assert abs(heights[4] / heights[0] - 6) < 0.5  # pixel heights follow the counts
    # the spike marker (red) sits above the spike bar only
    red = hex_rgb("#d62728")

    def red_pixels(i: int) -> int:
        x, _ = ax.transData.transform((i, 0))
        column = image[:, round(x), :]
        return int(np.sum(np.all(np.abs(column - red) < 0.05, axis=1)))

    assert red_pixels(4) > 5 and red_pixels(0) == 0


def test_stacked_layers_add_up() -> None:
    fig = build_trend_figure(series({"ru": (4,) * 7, "kk": (2,) * 7, "zh": (1,) * 7}))
    ax = fig.axes[0]
    tops = {round(p.get_y() + p.get_height()) for p in ax.patches}
    assert tops == {4, 6, 7}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ru", "kk", "zh"]


def test_cyrillic_cjk_and_hostile_names_render_without_warnings() -> None:
    stacks = {"新华社": (1,) * 7, "Sputnik Казахстан": (2,) * 7, "$5 $News$": (1,) * 7,
              "_hidden": (1,) * 7, "Tab\tand\nnewline" + "x" * 80: (1,) * 7}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = render_trend(series(stacks, title="哈萨克斯坦为何急于回归中国 · Қазақстан",
                                  by="source"))
    assert png.startswith(PNG_MAGIC)
    fig = build_trend_figure(series(stacks, by="source"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:4] == ["新华社", "Sputnik Казахстан", r"\$5 \$News\$", "hidden"]
    assert labels[4].startswith("Tab and newline") and len(labels[4]) == 40
    assert safe_label("") == "?"


def test_an_empty_period_still_renders() -> None:
    png = render_trend(series({}))
    assert pixels(png).shape[:2] == (500, 1000)
    fig = build_trend_figure(series({}))
    assert any("no matches" in t.get_text() for t in fig.axes[0].texts)
