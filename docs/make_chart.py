"""Draw docs/trend.png with the bot's own code: a month of matches recorded in a real Store,
read back as hourly volumes, turned into a daily series and rendered by bot.trends.charts.

The month is synthetic but shaped like the real thing: a trickle of one or two matches a day
from Chinese portals, then a story that spreads in four days across Chinese, Russian-language,
Kazakh, Kyrgyz and Uzbek outlets, and fades. Deterministic (fixed seed):

    python docs/make_chart.py            # writes docs/trend.png
"""

from __future__ import annotations

import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from bot.config import TrendsConfig
from bot.models import Article, Match, Passage
from bot.storage.store import Store
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series

END = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
TITLE = "Kazakhstan wants to return to China"
SOURCES = [  # (name, language, weight in the trickle, weight in the wave)
    ("Sohu", "zh", 4, 6), ("NetEase 网易", "zh", 2, 5), ("Toutiao", "zh", 1, 4),
    ("Sputnik Казахстан", "ru", 1, 4), ("Tengrinews", "ru", 0, 3), ("Azattyq Қазақ", "kk", 0, 3),
    ("24.kg", "ky", 0, 2), ("Kun.uz", "uz", 0, 2), ("Asia-Plus", "tg", 0, 1),
]
WAVE = {19: 3, 20: 14, 21: 26, 22: 17, 23: 9, 24: 5, 25: 3}  # day of the month → matches


def fill(store: Store, rng: random.Random) -> None:
    start = END - timedelta(days=44)  # 30 days shown + a 14-day baseline before them
    n = 0
    for day in range(45):
        date = start + timedelta(days=day)
        wave = WAVE.get(day - 14 + 1, 0)
        trickle = rng.choice([0, 1, 1, 2, 2, 3])
        for count, column in ((trickle, 2), (wave, 3)):
            names = [s for s in SOURCES if s[column]]
            weights = [s[column] for s in names]
            for _ in range(count):
                name, language, *_ = rng.choices(names, weights)[0]
                at = date.replace(hour=rng.randrange(24), minute=rng.randrange(60))
                if at > END:
                    continue
                n += 1
                article = Article(key=f"a{n}", source=name, url=f"https://example.org/{n}",
                                  title=f"Story {n}", text="…", published=at, language=language)
                match = Match("kz-return-to-china", TITLE, 0.7, 0.63, Passage(0, "…"), "…")
                with time_machine.travel(at + timedelta(minutes=7), tick=False):
                    store.record_article(article, 1, [match], [])


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.sqlite3")
        fill(store, random.Random(2026))
        series = daily_series(store.volumes(END - timedelta(days=46)), end=END, days=30,
                              by="language", title=TITLE, narrative_id="kz-return-to-china",
                              spikes=TrendsConfig())
        store.close()
    out.write_bytes(render_trend(series))
    print(f"{out}: {series.total} matches, spike days {sorted(map(str, series.spike_days))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("trend.png"))
